"""Where a model runs and in which precision, on any machine: the hardware checks are monkeypatched."""
import pytest
import torch

from engines.core import device
from engines.core.errors import ConfigError

CPU = torch.device("cpu")


@pytest.fixture
def bf16_cpu(monkeypatch):
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)


@pytest.fixture
def plain_cpu(monkeypatch):
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: False)


def test_auto_precision_uses_bf16_only_where_the_cpu_has_it(bf16_cpu):
    assert device.autocast_dtype(CPU, "auto") is torch.bfloat16
    assert device.autocast_dtype(CPU, "bf16") is torch.bfloat16
    assert device.autocast_dtype(CPU, "fp32") is None


def test_auto_precision_is_fp32_on_a_cpu_without_bf16(plain_cpu):
    assert device.autocast_dtype(CPU, "auto") is None
    assert device.autocast_dtype(CPU, "fp32") is None


def test_bf16_on_a_cpu_without_it_says_what_to_choose_instead(plain_cpu):
    with pytest.raises(ConfigError, match=r'"bf16" needs bf16 support, which this CPU does not have.*"auto".*"fp32"'):
        device.autocast_dtype(CPU, "bf16")


def test_bf16_on_a_gpu_that_only_emulates_it_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    gpu = torch.device("cuda")
    assert device.autocast_dtype(gpu, "auto") is None
    with pytest.raises(ConfigError, match="which this GPU does not have"):
        device.autocast_dtype(gpu, "bf16")


def test_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="choose auto, fp32 or bf16"):
        device.autocast_dtype(CPU, "fp16")


def test_the_bf16_check_answers_on_this_machine():
    assert isinstance(device.cpu_has_bf16(), bool)


@pytest.mark.parametrize("available, picked", [(["cpu"], "cpu"), (["cpu", "mps"], "mps"),
                                               (["cpu", "cuda"], "cuda"), (["cpu", "cuda", "mps"], "cuda")])
def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch, available, picked):
    monkeypatch.setattr(device, "available_devices", lambda: available)
    assert device.pick_device("auto") == torch.device(picked)


def test_a_named_device_is_used_when_present(monkeypatch):
    monkeypatch.setattr(device, "available_devices", lambda: ["cpu", "cuda"])
    assert device.pick_device("cuda") == torch.device("cuda")
    assert device.pick_device("cpu") == CPU


def test_a_missing_or_unknown_device_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(device, "available_devices", lambda: ["cpu"])
    with pytest.raises(ConfigError, match=r"'cuda' is not available here \(available: cpu\)"):
        device.pick_device("cuda")
    with pytest.raises(ConfigError, match="unknown device 'tpu'; choose from auto, cpu, cuda, mps"):
        device.pick_device("tpu")


def test_the_cpu_is_always_available():
    assert device.available_devices()[0] == "cpu"
    assert device.pick_device("cpu") == CPU
