"""Speed and memory of GNN-SSM against its plain twins, in one run (GitHub issue 6): ``dgl-ssm
perf`` (:mod:`.cli`) times the models of :mod:`.workload` with ``torch.utils.benchmark``
(:mod:`.measure`), reads peak memory in fresh processes (:mod:`.isolation`) and prints every
figure as a ratio against the plain model of the same run, with PASS/MISS (:mod:`.runner`,
:mod:`.report`)."""


def main(argv=None):
    """Run the benchmark from command-line arguments (see :mod:`dgl_ssm_bench.perf.cli`)."""
    from .cli import main as cli_main  # on call: the child processes import this package

    return cli_main(argv)
