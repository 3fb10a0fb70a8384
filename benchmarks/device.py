"""Which device a run uses: ``--device auto|cpu|cuda|cuda:N``.

CUDA needs two things: a GPU that torch sees, and a DGL built for CUDA. DGL's PyPI wheel is
CPU-only, so on a GPU machine with the default install torch says CUDA is there while every
graph moved to it fails. ``auto`` therefore probes DGL too and falls back to the CPU with a
warning; an explicit ``cuda`` is refused before any work, with the fix (README, GPU).
"""

import argparse
import functools
import re
import signal
import subprocess
import sys
import warnings

# torch and DGL are imported where a device is resolved: the sweeps' command line checks the
# name first and loads them (seconds) only when a sweep runs.
DEVICES = ("auto", "cpu", "cuda")
# The names that mean "the current GPU" (when one is usable), which a parallel worker chooses.
CURRENT_GPU = ("auto", "cuda")
_CUDA_INDEX = re.compile(r"cuda:\d+")


def check_device_name(name):
    """``name`` if it is a device this project runs on, else a ValueError listing them."""
    if name in DEVICES or (isinstance(name, str) and _CUDA_INDEX.fullmatch(name)):
        return name
    raise ValueError(
        f"Unknown device {name!r}. Valid: {', '.join(DEVICES)}, or cuda:N for GPU N "
        "(other accelerators, e.g. mps, have no DGL build)."
    )


def device_argument(text):
    """``--device``'s argparse type: the name checked, with the valid ones in the message."""
    try:
        return check_device_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def resolve_device(name):
    """The ``torch.device`` that ``--device name`` runs on: ``auto`` is CUDA when both torch
    and DGL can use it and the CPU otherwise; ``cuda`` or ``cuda:N`` must be usable."""
    import torch

    check_device_name(name)
    if name == "cpu":
        return torch.device("cpu")
    problem = _cuda_problem("cuda" if name == "auto" else name)
    if problem and name != "auto":
        raise RuntimeError(
            f"device {name} was asked for, but {problem}. Ask for device auto or cpu "
            "(--device), or install the CUDA builds (see README, GPU)."
        )
    if problem:
        if torch.cuda.is_available():  # a GPU left unused deserves a word
            warnings.warn(f"--device auto runs on the CPU: {problem}.", RuntimeWarning, 2)
        return torch.device("cpu")
    if name in CURRENT_GPU:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


def use_gpu_of_worker(index, device):
    """In worker process ``index`` of a parallel run on ``--device device``, make GPU
    ``index mod count`` current, so that N workers asked for ``cuda`` (or ``auto``) spread
    over the GPUs instead of all sharing GPU 0. Nothing for ``cpu`` (no CUDA context is made)
    or ``cuda:N`` (it stays where it was asked), without several GPUs, or when DGL cannot use
    them (making a GPU current would take memory on it for a run that stays on the CPU)."""
    import torch

    if device not in CURRENT_GPU:
        return
    if torch.cuda.is_available() and torch.cuda.device_count() > 1 and not _cuda_problem("cuda"):
        torch.cuda.set_device(index % torch.cuda.device_count())


# DGL's probe runs in a child process: a CUDA context made in this one would hold hundreds of
# MB of GPU memory for as long as it lives, in a sweep's or reproduction's parent that only
# checks the option, or on GPU 0 in every worker before it takes its own GPU.
_PROBE_SAYS = "dgl-ssm probe: "
_PROBE = f"""
import sys
try:
    import dgl
    dgl.graph(([0], [0])).to(sys.argv[1])
except Exception as error:
    text = str(error).strip()
    print({_PROBE_SAYS!r} + (text.splitlines()[0] if text else type(error).__name__))
    sys.exit(1)
"""
_PROBE_SECONDS = 300


@functools.lru_cache
def _cuda_problem(name):
    """Why ``name`` (``cuda`` or ``cuda:N``) cannot run a DGL graph here, or None."""
    import torch

    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    index, count = torch.device(name).index, torch.cuda.device_count()
    if index is not None and index >= count:
        return f"torch sees {count} CUDA device(s), cuda:0 … cuda:{count - 1}"
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE, name],
            capture_output=True, text=True, timeout=_PROBE_SECONDS,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"moving a DGL graph to it did not finish in {_PROBE_SECONDS} s"
    if probe.returncode == 0:
        return None
    # Its own line if it got to say why (DGL may print to stdout on a first import), else
    # what ended it.
    said = [line for line in probe.stdout.splitlines() if line.startswith(_PROBE_SAYS)]
    errors = probe.stderr.strip().splitlines()
    if said:
        reason = said[-1][len(_PROBE_SAYS) :]
    elif probe.returncode < 0:
        try:
            reason = f"the probe was killed by {signal.Signals(-probe.returncode).name}"
        except ValueError:
            reason = f"the probe was killed by signal {-probe.returncode}"
    else:
        reason = errors[-1] if errors else f"the probe exited with code {probe.returncode}"
    return (
        f"DGL cannot put a graph on it ({reason}); DGL's PyPI build is CPU-only, the "
        "CUDA build comes from DGL's wheel index"
    )


def describe(device):
    """``cpu``, or ``cuda:0 (GPU name)``: which hardware a record's run used."""
    import torch

    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
