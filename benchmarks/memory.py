"""Peak memory of a stretch of code: resident set on CPU, allocator statistics on CUDA.

Used per run by the trainer (each record's ``peak_memory_mb``) and per measurement by the
perf benchmark.

On Linux the kernel's high-water mark of the resident set (``VmHWM``, what
``getrusage().ru_maxrss`` reports) can be reset to the current size by writing ``5`` to
``/proc/self/clear_refs``, so one process can measure several stretches in turn. Where that
is not possible (macOS, Windows, a Linux that refuses the write) the mark cannot be reset:
only the first stretch of a process is measured (:attr:`PeakMeter.resettable` says whether
the mark resets, :attr:`PeakMeter.own` whether a stretch's peak is its own). A later one's
``peak_total_mb()`` is ``None``, not the process's peak so far passed off as its own, and its
``peak_mb()`` is the growth of that cumulative mark.
"""

import sys

try:
    import resource
except ImportError:  # Windows: psutil's peak working set instead
    resource = None

import psutil
import torch

CLEAR_REFS = "/proc/self/clear_refs"
STATUS = "/proc/self/status"


class PeakMeter:
    """Peak memory growth above a baseline, in MB.

    ``start()`` takes the baseline (and resets the high-water mark); ``peak_mb()`` is the
    highest usage since then minus that baseline, ``peak_total_mb()`` the highest usage itself
    (resident set on CPU, memory allocated by tensors on CUDA). Where the mark cannot be reset,
    ``peak_total_mb()`` is ``None`` unless this is the process's first CPU measurement.
    """

    _started_in_process = False  # a CPU meter has started here (the mark holds its peak)

    def __init__(self, device):
        self.device = torch.device(device)
        self.baseline = 0.0
        self.resettable = self.device.type == "cuda" or _can_reset()
        self.own = True  # the peak is this stretch's, not an earlier one's

    def start(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device) / 2**20
            return
        if self.resettable:
            _reset_high_water_mark()
        else:
            self.own = not PeakMeter._started_in_process
        PeakMeter._started_in_process = True
        self.baseline = resident_mb()

    def peak_mb(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20 - self.baseline
        return high_water_mark_mb() - self.baseline

    def peak_total_mb(self):
        return self.peak_mb() + self.baseline if self.own else None

    @property
    def method(self):
        if self.device.type == "cuda":
            return "torch.cuda.max_memory_allocated"
        if self.resettable:
            return "peak RSS (VmHWM, reset per measurement)"
        return "ru_maxrss" if resource is not None else "peak working set"


def resident_mb():
    """Current resident set size of this process, in MB."""
    return psutil.Process().memory_info().rss / 2**20


def high_water_mark_mb():
    """Highest resident set size since start (or since the last reset), in MB."""
    value = _status_kb("VmHWM")  # psutil does not read the high-water mark
    if value is not None:
        return value / 1024
    if resource is None:  # Windows: the peak working set, in bytes
        info = psutil.Process().memory_info()
        return getattr(info, "peak_wset", info.rss) / 2**20
    # Not Linux: getrusage's ru_maxrss, in bytes on macOS, KiB elsewhere.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def process_rss_mb(pid):
    """Resident set of another process, in MB (``None`` if it is gone or unreadable)."""
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return None


def _can_reset():
    try:
        _reset_high_water_mark()
    except OSError:
        return False
    return _status_kb("VmHWM") is not None


def _reset_high_water_mark():
    with open(CLEAR_REFS, "w") as clear_refs:
        clear_refs.write("5")


def _status_kb(field):
    try:
        with open(STATUS) as status:
            for line in status:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None
