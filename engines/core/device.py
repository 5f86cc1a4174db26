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


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The dtype to autocast matmuls to, or None for plain fp32.

    "auto" uses bf16 only where the hardware runs it natively (CUDA with bf16, CPUs with AVX-512 BF16/AMX):
    on this project's 2-core Xeon it trains an LSTM ~3x faster; elsewhere emulated bf16 would be slower.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ConfigError(f"unknown precision {precision!r}; choose auto, fp32 or bf16")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return None
