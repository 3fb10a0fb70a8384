"""How many CPU threads a command computes with: ``--threads N``.

Torch's default is one thread per core. Several runs side by side (or any other busy
process) then share the cores with threads that wait on each other at every small operation:
a calibrated 4-layer Cora run beside two busy runs on 2 cores took 116 s with 2 threads and
11 s with 1.
"""

import os
from contextlib import contextmanager, nullcontext


def threads_per_worker(threads, workers, cores=None):
    """Torch threads for each of ``workers`` processes side by side: ``threads`` if given,
    else their share of ``cores`` (default: the cores this process may run on, its CPU
    affinity, which a container or ``taskset`` narrows below the machine's count)."""
    if threads:
        return threads
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        cores = cores or os.cpu_count() or 1
    return max(1, cores // workers)


def set_threads(count, dgl_count=None):
    """Compute with ``count`` threads in torch and in DGL (``dgl_count`` there, if given).
    With PyPI's wheels the two share one OpenMP runtime (torch's libgomp) and torch's
    setting is DGL's too; a DGL built against another runtime (conda's, say) would otherwise
    keep a thread per core while the record says ``count``."""
    import dgl.utils
    import torch

    torch.set_num_threads(count)
    dgl.utils.set_num_threads(count if dgl_count is None else dgl_count)


def get_threads():
    """``(torch's, DGL's)`` thread counts, to put back with ``set_threads(*counts)``."""
    import dgl.utils
    import torch

    return torch.get_num_threads(), dgl.utils.get_num_threads()


@contextmanager
def threads(count):
    """Run with ``count`` torch and DGL (and, with threadpoolctl, BLAS) threads, then restore; with
    ``count`` None, as they are."""
    if count is None:
        yield
        return
    if count < 1:
        raise ValueError(f"--threads must be at least 1, got {count}.")
    previous = get_threads()
    set_threads(count)
    try:
        with blas_limits(count):
            yield
    finally:
        set_threads(*previous)


def blas_limits(count):
    """Limit the BLAS and OpenMP pools under numpy and scipy to ``count`` threads, at once:
    threadpoolctl's limits (used as a context manager, they are restored after the block;
    kept, they hold for the process's life), or a null context without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(count)
