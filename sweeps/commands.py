"""The sweeps' subcommands of ``dgl-ssm``: ``sweep`` and ``leaderboard``, registered by
:func:`subcommands` and imported (with Optuna) only when they run."""

from dgl_ssm_bench.commands import Subcommand


def _sweep(argv, prog):
    from .cli import sweep_main

    return sweep_main(argv, prog)


def _leaderboard(argv, prog):
    from .cli import leaderboard_main

    return leaderboard_main(argv, prog)


def subcommands():
    return {
        "sweep": Subcommand("tune one backbone on one dataset with Optuna", _sweep),
        "leaderboard": Subcommand(
            "tables and plots from the sweeps' storage (--suite: run a suite first)", _leaderboard
        ),
    }
