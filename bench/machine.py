"""What a benchmark ran on: a speed means nothing without its CPU. Every bench records this in its JSON and
prints it above its table."""
from __future__ import annotations

import os
import platform
from pathlib import Path

# the instruction-set extensions that decide how fast torch runs here
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def machine() -> dict:
    cpu, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    import torch
    return {"cpu": cpu, "cores": os.cpu_count(), "isa": [f for f in ISA_FLAGS if f in flags],
            # torch's own choice of kernels; ATEN_CPU_CAPABILITY=avx2 forces the lower ISA on a bigger CPU
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "forced_capability": os.environ.get("ATEN_CPU_CAPABILITY"),
            "torch": torch.__version__, "python": platform.python_version()}


def describe(m: dict) -> str:
    forced = f" (forced by ATEN_CPU_CAPABILITY={m['forced_capability']})" if m["forced_capability"] else ""
    return (f"{m['cpu']}, {m['cores']} cores, ISA {' '.join(m['isa']) or 'baseline'}; "
            f"torch {m['torch']} kernels: {m['torch_cpu_capability']}{forced}")
