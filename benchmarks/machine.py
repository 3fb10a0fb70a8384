"""What a CPU run's numbers depend on besides the code, the data and the seed: the CPU, and
the instruction set its math libraries take on it.

MKL and torch pick their kernels for the CPU they find (AVX2, AVX-512, …), and kernels of
different widths sum floats in other orders: one 4-layer GCN run on Cora gave seven different
results under thirteen settings of MKL_ENABLE_INSTRUCTIONS, MKL_CBWR and ATEN_CPU_CAPABILITY
on one machine (test accuracy 73.4–76.0 %). A record names both, so that a rerun that differs
can be told from one that should not.
"""

import functools
import os
import platform
import subprocess
import sys
from pathlib import Path

# Settings that choose those kernels, recorded when set.
KERNEL_SETTINGS = ("MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")


@functools.lru_cache
def cpu_model():
    """The CPU's model name (Linux names it only in /proc/cpuinfo, macOS in sysctl), else
    what platform says."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    if models:
        return models[0]
    if sys.platform == "darwin":  # e.g. "Apple M2", where platform says only "arm"
        try:
            asked = ["sysctl", "-n", "machdep.cpu.brand_string"]
            named = subprocess.run(asked, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            named = ""
        if named:
            return named
    return platform.processor() or platform.machine()


def cpu_kernels():
    """The instruction set torch's CPU kernels use here (e.g. ``AVX512``) and the settings
    of :data:`KERNEL_SETTINGS` that are set."""
    settings = {name: os.environ[name] for name in KERNEL_SETTINGS if name in os.environ}
    return {"cpu_capability": _cpu_capability(), **settings}


def _cpu_capability():
    import torch

    backend = getattr(torch.backends, "cpu", None)  # torch ≥ 2.1
    if hasattr(backend, "get_cpu_capability"):
        return backend.get_cpu_capability()
    # torch 2.0 says it only in its build summary ("CPU capability usage: AVX2").
    for line in torch.__config__.show().splitlines():
        if "CPU capability usage:" in line:
            return line.split(":", 1)[1].strip()
    return None
