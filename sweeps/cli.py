"""Commands: ``dgl-ssm-sweep`` (one study) and ``dgl-ssm-bench`` (runs, and the leaderboard).

    dgl-ssm-sweep --backbone gcn_ssm --dataset gpp_sssp --trials 50 --storage sqlite:///runs/optuna.db
    dgl-ssm-bench leaderboard --suite quick      # the main job: sweeps, then tables and plots

``dgl-ssm-bench`` is the benchmark suite's command with the ``leaderboard`` subcommand added
here, so the benchmark suite itself never imports the sweeps.
"""

import argparse
import sys
import time

import optuna
from dgl import DGLError

from benchmarks import cli as bench_cli

from .leaderboard import LeaderboardError
from .runner import PRUNERS, SweepSpec, run_sweep
from .space import SpaceError
from .storage import DEFAULT_STORAGE, StorageError, redact
from .suites import SUITES, suite_studies

ERRORS = (ValueError, FileNotFoundError, ImportError, RuntimeError, DGLError, SpaceError,
          StorageError, LeaderboardError)  # fmt: skip


def add_sweep_options(parser):
    """Options shared by a single sweep and a suite of them."""
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage URL")
    parser.add_argument("--workers", type=int, default=1, help="worker processes here")
    parser.add_argument(
        "--threads", type=int,
        help="torch threads per worker (default: the cores here ÷ --workers)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="sampler seed")
    parser.add_argument("--pruner", choices=PRUNERS, default="median")
    parser.add_argument(
        "--heartbeat", type=int, default=30,
        help="seconds between heartbeats; a trial silent for 3× this is failed and retried",
    )  # fmt: skip
    parser.add_argument("--data-dir", help="local raw data (default $DGL_SSM_DATA)")
    parser.add_argument("--cache-dir", help="processed-data cache (default $DGL_SSM_CACHE)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--no-final", dest="final", action="store_false",
                        help="skip re-running the best configuration over seeds")  # fmt: skip


def sweep_parser():
    parser = argparse.ArgumentParser(
        prog="dgl-ssm-sweep", description="Tune one backbone on one dataset with Optuna."
    )
    parser.add_argument("--backbone", required=True, help="a model name, e.g. gcn_ssm")
    parser.add_argument("--dataset", required=True, help="a dataset name, e.g. gpp_sssp")
    parser.add_argument("--trials", type=int, default=20, help="trials in the study, in all")
    parser.add_argument("--space", help="search space name or YAML path (default: by pair)")
    add_sweep_options(parser)
    return parser


def _spec(args, backbone, dataset, trials, space, suite=None):
    return SweepSpec(
        backbone=backbone, dataset=dataset, trials=trials, storage=args.storage, space=space,
        seed=args.seed, pruner=args.pruner, heartbeat=args.heartbeat, data_dir=args.data_dir,
        cache_dir=args.cache_dir, device=args.device, final=args.final, suite=suite,
        threads=args.threads,
    )  # fmt: skip


def _check_counts(args, prog):
    """``--workers`` / ``--threads`` below 1: the one-line error, before any work."""
    for flag, value in (("--workers", args.workers), ("--threads", args.threads)):
        if value is not None and value < 1:
            print(f"{prog}: error: {flag} must be at least 1.", file=sys.stderr)
            return False
    return True


def _guarded(action, prog, storage=""):
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the runner logs each trial itself
    try:
        action()
    except ERRORS as error:
        print(redact(f"{prog}: error: {error}", storage).splitlines()[0], file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"{prog}: interrupted; running trials are queued again, re-run to resume.",
            file=sys.stderr,
        )
        return 130
    return 0


def sweep_main(argv=None):
    args = sweep_parser().parse_args(argv)
    if not _check_counts(args, "dgl-ssm-sweep"):
        return 2
    spec = _spec(args, args.backbone, args.dataset, args.trials, args.space)
    return _guarded(lambda: run_sweep(spec, workers=args.workers), "dgl-ssm-sweep", args.storage)


def bench_parser():
    parser = bench_cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    board = commands.add_parser(
        "leaderboard", help="run a suite of sweeps, then write the leaderboard"
    )
    board.add_argument("--suite", choices=list(SUITES), default="quick")
    board.add_argument("--out", default="runs/leaderboard", help="folder for tables and plots")
    add_sweep_options(board)
    return parser


def bench_main(argv=None):
    args = bench_parser().parse_args(argv)
    if args.command != "leaderboard":
        return bench_cli.run_command(args, argv)
    if not _check_counts(args, "dgl-ssm-bench"):
        return 2

    def suite():
        from .leaderboard import build_leaderboard

        start = time.perf_counter()
        for backbone, dataset, space, trials in suite_studies(args.suite):
            spec = _spec(args, backbone, dataset, trials, space, suite=args.suite)
            run_sweep(spec, workers=args.workers)
        files = build_leaderboard(args.storage, args.out)
        minutes = (time.perf_counter() - start) / 60
        print(f"Suite {args.suite!r} done in {minutes:.1f} min. Leaderboard:")
        for path in files.values():
            print(f"  {path}")

    return _guarded(suite, "dgl-ssm-bench", args.storage)


if __name__ == "__main__":
    sys.exit(sweep_main())
