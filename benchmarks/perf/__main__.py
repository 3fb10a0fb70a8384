"""``python -m dgl_ssm_bench.perf``: see :mod:`dgl_ssm_bench.perf.cli`."""

from .cli import main

main()
