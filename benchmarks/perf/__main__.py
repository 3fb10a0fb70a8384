"""``python -m benchmarks.perf``: see :mod:`benchmarks.perf.cli`."""

from .cli import main

main()
