"""The sweeps' commands: ``dgl-ssm sweep`` (one study) and ``dgl-ssm leaderboard``.

    dgl-ssm sweep --backbone gcn_ssm --dataset gpp_sssp --trials 50 --storage sqlite:///runs/optuna.db
    dgl-ssm leaderboard --suite quick    # the main job: a suite of sweeps, then tables and plots
    dgl-ssm leaderboard --storage URL    # tables and plots of the studies already there

The old names stay: ``dgl-ssm-sweep``, ``dgl-ssm-leaderboard`` (tables only) and
``dgl-ssm-bench`` (the benchmark suite's command, whose ``leaderboard`` subcommand runs a
suite, ``quick`` by default).
"""

import argparse
import sys
import time
from pathlib import Path

import optuna

from dgl_ssm_bench.arguments import parse_arguments
from dgl_ssm_bench.console import escape_unencodable
from dgl_ssm_bench.device import device_argument

from .leaderboard import DEFAULT_OUT, DEPTH_SELECTS, LeaderboardError, write_leaderboard
from .pruners import PRUNERS
from .storage import DEFAULT_STORAGE, StorageError, redact
from .suites import SUITES, suite_output, suite_storage, suite_studies

# (A search space's SpaceError is a ValueError.) The runner, and with it torch and DGL, are
# imported only by the commands that train, so the leaderboard's tables and its bad-input
# errors come without loading them.
ERRORS = (ValueError, TypeError, OSError, ImportError, RuntimeError, StorageError,
          LeaderboardError)  # fmt: skip


def _expected_errors():
    """:data:`ERRORS`, and DGL's own error once DGL is loaded (before, nothing raised one)."""
    dgl = sys.modules.get("dgl")
    return ERRORS if dgl is None else (*ERRORS, dgl.DGLError)


def add_sweep_options(parser, storage=True):
    """Options shared by a single sweep and a suite of them (``--storage`` too, unless
    ``storage`` is False); returns their argparse actions."""
    added = []

    def add(*flags, **options):
        added.append(parser.add_argument(*flags, **options))

    if storage:
        add(
            "--storage",
            default=DEFAULT_STORAGE,
            help="Optuna storage URL (default: %(default)s, relative to the current folder)",
        )
    add("--workers", type=int, default=1, help="worker processes here")
    add("--threads", type=int,
        help="torch threads per worker (default: torch's own with one worker, the cores here "
             "÷ --workers with several)")  # fmt: skip
    add("--seed", type=int, default=0, help="sampler seed")
    add("--pruner", choices=PRUNERS,
        help="stops poor trials early (default: none in a space that follows a published "
        "protocol, which trains every configuration to its end; median in the others)")  # fmt: skip
    add("--heartbeat", type=int, default=30,
        help="seconds between heartbeats; a trial silent for 3× this is failed and "
        "retried (3 times at most)")  # fmt: skip
    add("--data-dir", help="local raw data (default $DGL_SSM_DATA)")
    add("--cache-dir", help="processed-data cache (default $DGL_SSM_CACHE)")
    add("--device", type=device_argument, default="auto", help="auto, cpu, cuda or cuda:N")
    add("--no-final", dest="final", action="store_false",
        help="skip re-running the best configuration over seeds")  # fmt: skip
    return added


def sweep_parser(prog="dgl-ssm-sweep"):
    parser = argparse.ArgumentParser(
        prog=prog, description="Tune one backbone on one dataset with Optuna."
    )
    parser.add_argument("--backbone", required=True, help="a model name, e.g. gcn_ssm")
    parser.add_argument("--dataset", required=True, help="a dataset name, e.g. gpp_sssp")
    parser.add_argument("--trials", type=int, default=20, help="trials in the study, in all")
    parser.add_argument("--space", help="search space name or YAML path (default: by pair)")
    add_sweep_options(parser)
    return parser


def _spec(args, backbone, dataset, trials, space, suite=None):
    from .runner import SweepSpec

    return SweepSpec(
        backbone=backbone, dataset=dataset, trials=trials, storage=args.storage, space=space,
        seed=args.seed, pruner=args.pruner, heartbeat=args.heartbeat, data_dir=args.data_dir,
        cache_dir=args.cache_dir, device=args.device, final=args.final, suite=suite,
        threads=args.threads,
    )  # fmt: skip


#: Longest --heartbeat, a day: far past any real need, and short of the date overflow a huge
#: one met in every heartbeat thread (which then died, leaving the trials unwatched).
MAX_HEARTBEAT_S = 86_400


def _check_counts(args, prog):
    """``--workers`` / ``--threads`` / ``--heartbeat`` below 1 (or a heartbeat above a day):
    the one-line error, before any work."""
    counts = [("--workers", args.workers), ("--threads", args.threads),
              ("--heartbeat", args.heartbeat)]  # fmt: skip
    for flag, value in counts:
        if value is not None and value < 1:
            print(f"{prog}: error: {flag} must be at least 1.", file=sys.stderr)
            return False
    if args.heartbeat is not None and args.heartbeat > MAX_HEARTBEAT_S:
        print(f"{prog}: error: --heartbeat must be at most {MAX_HEARTBEAT_S} s (a day).",
              file=sys.stderr)  # fmt: skip
        return False
    return True


def _guarded(action, prog, storage=""):
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the runner logs each trial itself
    try:
        action()
    except _expected_errors() as error:
        print(redact(f"{prog}: error: {error}", storage).splitlines()[0], file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"{prog}: interrupted; running trials are queued again, re-run to resume.",
            file=sys.stderr,
        )
        return 130
    return 0


def sweep_main(argv=None, prog="dgl-ssm-sweep"):
    escape_unencodable()
    args = parse_arguments(sweep_parser(prog), argv)
    if not _check_counts(args, prog):
        return 2

    def sweep():
        from .runner import run_sweep

        spec = _spec(args, args.backbone, args.dataset, args.trials, args.space)
        run_sweep(spec, workers=args.workers)

    return _guarded(sweep, prog, args.storage)


def suite_parser(prog="dgl-ssm leaderboard", default_suite=None):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a suite of sweeps (--suite), then write the leaderboard (Markdown, "
        "CSV and LaTeX tables, PNG plots) from the storage; without --suite, only write it.",
    )
    parser.add_argument("--suite", choices=list(SUITES), default=default_suite,
                        help="suite of sweeps to run first (resumed if already there)")  # fmt: skip
    parser.add_argument(
        "--out",
        help="folder for tables and plots (default: runs/SUITE/leaderboard with --suite, else "
        f"{DEFAULT_OUT})",
    )
    parser.add_argument("--depth-select", choices=DEPTH_SELECTS, default="val",
                        help="trial per depth in the depth plots: best val or test")  # fmt: skip
    parser.add_argument(
        "--storage",
        help="Optuna storage URL (default: sqlite:///runs/SUITE/optuna.db with --suite, each "
        f"suite a file of its own, else {DEFAULT_STORAGE}; relative to the current folder)",
    )
    suite_run = parser.add_argument_group("running the suite (only with --suite)")
    parser.suite_only = add_sweep_options(suite_run, storage=False)
    return parser


def _suite_storages():
    """When the default storage does not exist, the suites' storages that do, as the options
    that read them (else "")."""
    if Path(DEFAULT_STORAGE[len("sqlite:///") :]).exists():
        return ""
    found = [s for s in SUITES if Path(suite_storage(s)[len("sqlite:///") :]).is_file()]
    return "; ".join(f"--storage {suite_storage(s)} --out {suite_output(s)}" for s in found)


def _suite_only_options(parser, args):
    """The options given (not left at their default) that only a suite run reads."""
    return [
        action.option_strings[0]
        for action in parser.suite_only
        if getattr(args, action.dest) != action.default
    ]


def leaderboard_main(argv=None, prog="dgl-ssm leaderboard", default_suite=None):
    """``dgl-ssm leaderboard [--suite NAME]``: returns the exit code (2: bad input)."""
    escape_unencodable()
    parser = suite_parser(prog, default_suite)
    args = parse_arguments(parser, argv)
    if args.suite is None and args.storage is None and (hint := _suite_storages()):
        print(f"{prog}: error: no sweeps in {DEFAULT_STORAGE} (where dgl-ssm sweep keeps its "
              f"studies); each suite keeps its own: {hint}", file=sys.stderr)  # fmt: skip
        return 2
    if args.storage is None:
        args.storage = DEFAULT_STORAGE if args.suite is None else suite_storage(args.suite)
    if args.out is None:
        args.out = DEFAULT_OUT if args.suite is None else suite_output(args.suite)
    if args.suite is None:
        if given := _suite_only_options(parser, args):
            verb = "applies" if len(given) == 1 else "apply"
            print(f"{prog}: error: {', '.join(given)} only {verb} with --suite (they run its "
                  "sweeps); without it the leaderboard only reads the storage.",
                  file=sys.stderr)  # fmt: skip
            return 2

        return write_leaderboard(args.storage, args.out, args.depth_select, prog)
    if not _check_counts(args, prog):
        return 2

    def suite():
        from dgl_ssm_bench.records import make_folder
        from dgl_ssm_bench.train import load_each_dataset_once

        from .leaderboard import build_leaderboard, write_error
        from .runner import check_study, run_sweep

        make_folder(args.out)  # before the sweeps: the tables must have somewhere to go
        start = time.perf_counter()
        specs = [_spec(args, backbone, dataset, trials, space, suite=args.suite)
                 for backbone, dataset, space, trials in suite_studies(args.suite)]  # fmt: skip
        for spec in specs:  # a clash with a study already stored: now, not hours in
            check_study(spec)
        # Data read from files (Cora): a wrong or missing --data-dir, or no internet, now.
        load_each_dataset_once(
            [s.base_config(s.load_space()) for s in specs],
            "no sweep was started",
        )
        for spec in specs:
            run_sweep(spec, workers=args.workers)
        try:
            files = build_leaderboard(args.storage, args.out, depth_select=args.depth_select)
        except OSError as error:  # the sweeps are safe in the storage: say how to go on
            raise LeaderboardError(
                f"{write_error(args.out, error)}. The sweeps are saved in {args.storage}; "
                f"write the tables with: dgl-ssm leaderboard --storage {args.storage} --out DIR"
            ) from None
        minutes = (time.perf_counter() - start) / 60
        print(f"Suite {args.suite!r} done in {minutes:.1f} min. Leaderboard:")
        for path in files.values():
            print(f"  {path}")

    return _guarded(suite, prog, args.storage)


def bench_main(argv=None):
    """``dgl-ssm-bench``, the old name: the benchmark suite's subcommands, and
    ``leaderboard`` (a suite, ``quick`` by default, then the tables)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["leaderboard"]:
        return leaderboard_main(argv[1:], "dgl-ssm-bench leaderboard", default_suite="quick")
    from dgl_ssm_bench import cli as bench_cli

    return bench_cli.main(argv)


if __name__ == "__main__":
    sys.exit(sweep_main())
