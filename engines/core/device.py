"""Choosing where a model runs, at run time."""
from __future__ import annotations

import torch

from .errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        devices = available_devices()
        return torch.device("cuda" if "cuda" in devices else "mps" if "mps" in devices else "cpu")
    if name not in DEVICE_CHOICES:
        raise ConfigError(f"unknown device {name!r}; choose from {', '.join(DEVICE_CHOICES)}")
    if name not in available_devices():
        raise ConfigError(f"device {name!r} is not available here (available: {', '.join(available_devices())})")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls natively, as oneDNN judges it: AVX-512 (BW/VL/DQ), AVX-512 BF16
    or AMX on x86, the BF16 extension on ARM."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The dtype to autocast matmuls to, or None for plain fp32.

    "auto" uses bf16 only where the hardware runs it natively: on this project's 2-core AVX-512 Xeon it
    trains an LSTM ~3x faster; elsewhere emulated bf16 would be slower. An explicit "bf16" on a CUDA GPU or
    CPU without it is refused rather than emulated slowly.
    """
    if precision == "fp32":
        return None
    if precision not in ("auto", "bf16"):
        raise ConfigError(f"unknown precision {precision!r}; choose auto, fp32 or bf16")
    if device.type == "cuda":   # pre-Ampere GPUs only emulate bf16, slowly
        native, hardware = torch.cuda.is_bf16_supported(including_emulation=False), "this GPU"
    elif device.type == "cpu":
        native, hardware = cpu_has_bf16(), "this CPU"
    else:   # MPS cannot be asked whether bf16 is native: only an explicit request turns it on
        return torch.bfloat16 if precision == "bf16" else None
    if precision == "bf16" and not native:
        raise ConfigError(f'train.precision = "bf16" needs bf16 support, which {hardware} does not have; '
                          'choose "auto" (bf16 only where the hardware has it) or "fp32"')
    return torch.bfloat16 if native else None
