"""The benchmark suite's subcommands of ``dgl-ssm``: ``run``, ``perf``, ``reproduce``,
``analyze``.

:func:`subcommands` registers them with the command root; each one's module is imported only
when it runs, so ``dgl-ssm run`` loads neither the sweeps nor Optuna.
"""

from collections.abc import Callable
from typing import NamedTuple


class Subcommand(NamedTuple):
    """One ``dgl-ssm`` subcommand: its one-line help, and ``main(argv, prog) -> exit code``."""

    help: str
    main: Callable


def _bench(command):
    def main(argv, prog):
        from .cli import main as bench_main

        root = prog.removesuffix(f" {command}")  # the parser adds the subcommand's name
        return bench_main([command, *argv], prog=root)

    return main


def _analyze(argv, prog):
    from .analyze import main

    return main(argv, prog=prog)


def subcommands():
    return {
        "run": Subcommand("train one configuration over one or more seeds", _bench("run")),
        "perf": Subcommand("time and memory of SSM models against their plain twins",
                           _bench("perf")),
        "reproduce": Subcommand("the paper's experiments (resumable) and their tables",
                                _bench("reproduce")),
        "analyze": Subcommand("energy, gradients, Jacobian spectra, sensitivity, figures",
                              _analyze),
    }  # fmt: skip
