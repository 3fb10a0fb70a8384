"""Speed and memory of GNN-SSM against its plain twins, in one run (GitHub issue 6).

``python -m benchmarks.perf [--quick]`` times training epochs of plain and SSM models side by
side (interleaved) at growing depth on Cora and on a seeded random graph, measures peak
memory with and without activation checkpointing, the cost of the k-hop rewiring, and a PyG
GCN-SSM as reference; it prints every figure as a ratio against the plain DGL model of the
same run and writes ``perf.md``, ``perf.csv`` and ``perf.json``.

Modules, one concept each: ``config`` (the run's description), ``graphs``, ``variants``
(models and one epoch), ``reference`` (PyG), ``timing`` (interleaved timer), ``isolation``
(peak memory in fresh processes, with :mod:`benchmarks.memory`'s meter), ``worker`` (what
runs in them), ``allocator``, ``epoch_time``, ``memory``, ``khop_cost``, ``breakdown`` (the
sections), ``ratios``, ``targets``, ``report``, ``machine``, ``runner`` and ``cli``.
"""

__all__ = ["main", "run"]


# Imported on call: ``python -m benchmarks.perf.worker`` imports this package first and
# should not pull in the whole benchmark with it.
def main(argv=None):
    """Run the benchmark from command-line arguments (see :mod:`benchmarks.perf.cli`)."""
    from .cli import main as cli_main

    return cli_main(argv)


def run(config, log=print):
    """Run the benchmark for a :class:`~benchmarks.perf.config.PerfConfig`."""
    from .runner import run as run_config

    return run_config(config, log)
