"""The machine a run measured: CPU, cores, library versions, threads, device, load."""

import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass

import dgl
import torch


@dataclass
class Machine:
    """What the numbers of one run depend on, printed at the head of the report."""

    cpu: str
    cores: int
    memory_gb: float
    python: str
    torch: str
    dgl: str
    threads: int
    device: str
    allocator: str
    load_before: str
    op_latency_ms: float
    load_after: str = ""
    op_latency_after_ms: float = float("nan")

    def as_dict(self):
        return asdict(self)

    def finish(self):
        """Record the machine's state at the end of the run (load, op latency)."""
        self.load_after = load_average()
        self.op_latency_after_ms = parallel_op_latency_ms()

    def lines(self):
        """``key: value`` lines for the report's head."""
        return [
            f"CPU: {self.cpu}, {self.cores} cores, {self.memory_gb:.1f} GB RAM",
            f"torch {self.torch}, dgl {self.dgl}, Python {self.python}",
            f"device: {self.device}; torch threads: {self.threads}",
            f"latency of one small parallel op (relu of 64k floats, median): "
            f"{self.op_latency_ms:.3f} ms before, {self.op_latency_after_ms:.3f} ms after",
            f"allocator: {self.allocator}",
            f"load average (1, 5, 15 min) before: {self.load_before}; after: {self.load_after}",
        ]


def describe_machine(device, allocator):
    """Describe this machine and the run's device; ``allocator`` comes from the run."""
    if device.type == "cuda":
        device_name = f"cuda ({torch.cuda.get_device_name(device)})"
    else:
        device_name = "cpu"
    return Machine(
        cpu=cpu_model(),
        cores=os.cpu_count() or 0,
        memory_gb=_meminfo_kb("MemTotal") / 2**20,
        python=platform.python_version(),
        torch=torch.__version__,
        dgl=dgl.__version__,
        threads=torch.get_num_threads(),
        device=device_name,
        allocator=allocator,
        load_before=load_average(),
        op_latency_ms=parallel_op_latency_ms(),
    )


def parallel_op_latency_ms(repeats=50):
    """Median time of a tiny op that torch still splits over its threads, in ms.

    On an idle machine this is a few microseconds. When other processes hold the cores,
    the op's OpenMP threads wait for each other at the barrier for whole scheduler ticks
    (several ms): then every kernel of a model costs about that much whatever its size, and
    epoch times count kernels rather than work.
    """
    x = torch.randn(1 << 16)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.relu(x)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average():
    """The 1, 5 and 15 minute load averages: other processes make timings noisy."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def available_memory_gb():
    """Memory the kernel could give us now without swapping (MemAvailable), in GB."""
    return _meminfo_kb("MemAvailable") / 2**20


def _meminfo_kb(field):
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float("nan")
