"""``python -m benchmarks.perf``: time and memory of GNN-SSM against plain twins (issue 6).

python -m benchmarks.perf --quick                # well under a minute
python -m benchmarks.perf --out runs/perf        # the full run: Cora and a 100k-node graph
python -m benchmarks.perf --depths 2 64 --repeats 5 --backbones gcn gin
"""

import argparse
import sys
from dataclasses import fields

from benchmarks.records import make_folder
from benchmarks.train import resolve_device

from .allocator import ALLOCATORS, check_allocator
from .config import SECTIONS, PerfConfig, quick
from .runner import run

# flag → PerfConfig field; flag defaults are None so that --quick's sizes apply unless given.
FLAGS = (
    "out", "depths", "hidden", "repeats", "warmup", "min_time", "device", "data_dir", "cache_dir",
    "backbones", "graphs", "synthetic_nodes", "synthetic_edges", "seed", "memory_depth",
    "reference_depths", "khop_max_k", "khop_max_edges", "memory_budget_gb", "sections",
    "threads", "allocator",
)  # fmt: skip
PROG = "python -m benchmarks.perf"


def build_parser(parser=None):
    """The perf options, on ``parser`` (e.g. the ``dgl-ssm-bench perf`` subcommand) or a new one."""
    defaults = PerfConfig()
    if parser is None:
        parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (depths 2 16, 10k nodes)")
    parser.add_argument("--out", help=f"report folder (default {defaults.out})")
    parser.add_argument("--depths", type=int, nargs="+", help=f"default {defaults.depths}")
    parser.add_argument("--hidden", type=int, help=f"state width (default {defaults.hidden})")
    parser.add_argument("--repeats", type=int, help=f"timed epochs (default {defaults.repeats})")
    parser.add_argument("--warmup", type=int, help=f"untimed epochs (default {defaults.warmup})")
    parser.add_argument(
        "--min-time",
        type=float,
        help=f"more epochs for cheap models, up to this many seconds (default {defaults.min_time})",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--data-dir", help="raw Cora files (default $DGL_SSM_DATA)")
    parser.add_argument("--cache-dir", help="processed-data cache (default $DGL_SSM_CACHE)")
    parser.add_argument(
        "--backbones", nargs="+", help="plain/SSM twins to time, e.g. gcn gin (default gcn)"
    )
    parser.add_argument("--graphs", nargs="+", choices=["cora", "synthetic"])
    parser.add_argument("--synthetic-nodes", type=int, help="default 100000")
    parser.add_argument("--synthetic-edges", type=int, help="before self loops; default 1e6")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--memory-depth", type=int, help="default: the largest depth")
    parser.add_argument(
        "--reference-depths", type=int, nargs="+", help="depths timed with PyG (default 2 64)"
    )
    parser.add_argument("--khop-max-k", type=int, help=f"default {defaults.khop_max_k}")
    parser.add_argument("--khop-max-edges", type=int, help=f"default {defaults.khop_max_edges:,}")
    parser.add_argument(
        "--memory-budget-gb", type=float, help="stop a measurement above this (default 80%% free)"
    )
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, help="default: all")
    parser.add_argument(
        "--threads", type=int, help="torch.set_num_threads for all measurements (default: unset)"
    )
    parser.add_argument(
        "--allocator",
        choices=ALLOCATORS,
        help="C allocator of the timing workers (default: glibc's, as users run; depths that "
        "do not fit are timed again under tcmalloc when installed)",
    )
    parser.add_argument(
        "--no-subprocess",
        dest="subprocess",
        action="store_false",
        help="measure peak memory in this process (faster, less isolated)",
    )
    return parser


def config_from_args(args):
    """The run's :class:`PerfConfig`: defaults, then ``--quick``'s sizes, then given flags."""
    config = quick(PerfConfig()) if args.quick else PerfConfig()
    given = {name: getattr(args, name) for name in FLAGS if getattr(args, name) is not None}
    for name in ("depths", "backbones", "graphs", "reference_depths", "sections"):
        if name in given:
            given[name] = tuple(given[name])
    known = {f.name for f in fields(PerfConfig)}
    values = {f.name: getattr(config, f.name) for f in fields(PerfConfig)}
    values.update({k: v for k, v in given.items() if k in known})
    values["subprocess"] = args.subprocess
    return PerfConfig(**values)


def main(argv=None):
    """Parse ``argv`` (default ``sys.argv[1:]``), run, and return :func:`run`'s result."""
    return run_from_args(build_parser().parse_args(argv), argv=argv)


def run_from_args(args, argv=None, prog=PROG):
    """Run the benchmark for parsed ``args``; bad options exit with code 2 and one line on
    stderr."""
    try:
        config = config_from_args(args)
        check_allocator(config.allocator)
        if config.allocator != "default" and not config.subprocess:
            raise ValueError(
                "--allocator sets the allocator of the worker processes; it cannot apply with "
                "--no-subprocess. Drop one of the two."
            )
        resolve_device(config.device)  # a missing GPU is a bad option, not a crash mid-run
        make_folder(config.out)  # an unwritable --out is found now, not after the run
    except (ValueError, RuntimeError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None  # as argparse exits on a bad option
    return run(config, argv=argv, prog=prog)
