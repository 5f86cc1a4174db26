"""What a benchmark ran on: a speed means nothing without its CPU. Every bench records this in its JSON and
prints it above its table.

To measure how a laptop-class CPU behaves on a bigger one, force the lower ISA for every library that picks its
kernels at run time, and the line printed says it was forced:

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 NUMBA_CPU_NAME=haswell .venv/bin/python bench/audio.py
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

# the instruction-set extensions that decide how fast torch and numba run here
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "asimd", "sve")
# each library's own switch for using less of the CPU than it has
FORCING_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")


def isa_level(flags: set[str]) -> str:
    """The one name people compare CPUs by: AMX > AVX-512 (with or without BF16) > AVX2 > NEON > baseline."""
    if "amx_tile" in flags:
        return "AMX"
    if "avx512f" in flags:
        return "AVX-512 BF16" if "avx512_bf16" in flags else "AVX-512"
    if "avx2" in flags:
        return "AVX2"
    return "NEON" if "asimd" in flags or platform.machine() in ("arm64", "aarch64") else "baseline"


def machine() -> dict:
    cpu, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
                break
    import torch
    try:
        import numba
        numba_version = numba.__version__
    except ImportError:
        numba_version = None
    forced = {name: os.environ[name] for name in FORCING_VARIABLES if os.environ.get(name)}
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "isa": [f for f in ISA_FLAGS if f in flags], "isa_level": isa_level(flags),
            # torch's own choice of kernels, after any forcing variable
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "forced": forced,
            "torch": torch.__version__, "numba": numba_version, "python": platform.python_version()}


def describe(m: dict) -> str:
    forced = f" (FORCED: {' '.join(f'{k}={v}' for k, v in m['forced'].items())})" if m["forced"] else ""
    return (f"{m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), {m['isa_level']} "
            f"[{' '.join(m['isa']) or 'baseline'}]; torch {m['torch']} kernels: {m['torch_cpu_capability']}, "
            f"numba {m['numba']}{forced}")


def tag(m: dict) -> str:
    """A file-name part that tells results from different ISAs apart, e.g. 'avx-512-bf16' or 'avx2-forced'."""
    if m["forced"]:
        return m["torch_cpu_capability"].lower() + "-forced"
    return m["isa_level"].replace(" ", "-").lower()
