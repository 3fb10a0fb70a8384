"""How many CPU threads a command computes with: ``--threads N``.

Torch's default is one thread per core. Several runs side by side (or any other busy
process) then share the cores with threads that wait on each other at every small operation:
a calibrated 4-layer Cora run beside two busy runs on 2 cores took 116 s with 2 threads and
11 s with 1.
"""

from contextlib import contextmanager, nullcontext


@contextmanager
def threads(count):
    """Run with ``count`` torch (and, with threadpoolctl, BLAS) threads, then restore; with
    ``count`` None, as they are."""
    if count is None:
        yield
        return
    if count < 1:
        raise ValueError(f"--threads must be at least 1, got {count}.")
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limits = nullcontext()
    else:
        limits = threadpool_limits(count)
    try:
        with limits:
            yield
    finally:
        torch.set_num_threads(previous)
