"""``dgl-ssm perf``: time and memory of GNN-SSM against plain twins (issue 6).

dgl-ssm perf --quick                # small sizes: depths 2 and 16, a 10k-node graph
dgl-ssm perf --out runs/perf        # the full run: Cora and a 100k-node graph
dgl-ssm perf --depths 2 64 --repeats 5 --backbones gcn gin
"""

import argparse
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from dgl_ssm import MODELS, is_khop
from dgl_ssm.checks import check_choice
from dgl_ssm_bench.arguments import parse_arguments
from dgl_ssm_bench.console import escape_unencodable
from dgl_ssm_bench.device import device_argument, resolve_device
from dgl_ssm_bench.records import make_folder

from .isolation import ALLOCATORS, find_tcmalloc

SECTIONS = ("time", "memory", "khop", "rewire", "reference", "breakdown", "monitor", "deep")
PROG = "python -m dgl_ssm_bench.perf"


@dataclass
class PerfConfig:
    """Everything a run depends on; each field is the flag of the same name (``memory_depth``
    defaults to the largest depth, ``memory_budget_gb`` to 80 % of the memory available)."""

    out: Path = Path("runs/perf")
    depths: tuple = (2, 8, 32, 64, 128)
    hidden: int = 64
    repeats: int = 5
    warmup: int = 1
    min_time: float = 2.0
    device: str = "auto"
    data_dir: str | None = None
    cache_dir: str | None = None
    backbones: tuple = ("gcn",)
    graphs: tuple = ("cora", "synthetic")
    synthetic_nodes: int = 100_000
    synthetic_edges: int = 1_000_000
    seed: int = 0
    memory_depth: int | None = None
    reference_depths: tuple = (2, 64)
    khop_max_k: int = 6
    monitor_every: int = 10
    deep_depth: int = 1024
    rewire_graphs: int = 1000
    khop_max_edges: int = 50_000_000
    memory_budget_gb: float | None = None
    subprocess: bool = True
    sections: tuple = SECTIONS
    threads: int | None = None
    allocator: str = "default"
    quick: bool = False

    def __post_init__(self):
        self.out = Path(self.out)
        self.depths = tuple(sorted(set(self.depths)))
        valid = {"sections": SECTIONS, "graphs": ("cora", "synthetic"), "allocator": ALLOCATORS}
        for name, allowed in valid.items():
            given = getattr(self, name)
            for value in [given] if isinstance(given, str) else given:
                check_choice(name.removesuffix("s"), value, allowed)
        # k-hop models need a rewired graph, which these measurements do not make.
        twins = [name for name in MODELS if f"{name}_ssm" in MODELS and not is_khop(name)]
        if unknown := [name for name in self.backbones if name not in twins]:
            plain = [name.removesuffix("_ssm") for name in unknown]
            hints = [
                f"{name}: give the plain name {bare}; its SSM twin is timed beside it"
                for name, bare in zip(unknown, plain)
                if name != bare and bare in twins
            ]
            hints += [
                f"{name}: a k-hop model, which needs a rewired graph; perf times one-hop backbones"
                for name in unknown
                if name in MODELS and is_khop(name)
            ]
            hint = f" ({'; '.join(hints)})" if hints else ""
            raise ValueError(
                f"Cannot time backbones {unknown}{hint}. Valid: {', '.join(twins)}."
            )  # fmt: skip
        at_least = {"hidden": 1, "warmup": 0, "min_time": 0, "synthetic_nodes": 1,
                    "synthetic_edges": 0, "khop_max_k": 1, "khop_max_edges": 0, "threads": 1,
                    "rewire_graphs": 1,
                    "memory_depth": 1, "memory_budget_gb": 1e-3}  # fmt: skip
        for name, least in at_least.items():
            value = getattr(self, name)
            if value is not None and not value >= least:
                raise ValueError(f"{name} must be at least {least:g}, got {value}.")
        if min(self.reference_depths, default=1) < 1:
            raise ValueError(f"reference_depths must be positive, got {self.reference_depths}.")
        if not self.depths or min(self.depths) < 1:
            raise ValueError(f"depths must be positive layer counts, got {self.depths}.")
        if self.deep_depth < 1:
            raise ValueError(f"deep_depth must be a positive layer count, got {self.deep_depth}.")
        if self.monitor_every < 1:
            raise ValueError(f"monitor_every must be at least 1, got {self.monitor_every}.")
        if self.repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {self.repeats}.")
        if self.allocator != "default" and not self.subprocess:
            raise ValueError("--allocator sets the allocator of the worker processes; it cannot "
                             "apply with --no-subprocess. Drop one of the two.")  # fmt: skip
        if self.allocator == "tcmalloc" and find_tcmalloc() is None:
            raise ValueError(
                "--allocator tcmalloc: tcmalloc is not installed. Install it (Debian/Ubuntu: apt "
                "install libtcmalloc-minimal4; conda: conda install gperftools) or use --allocator "
                "default."
            )

    @property
    def deepest(self):
        return self.memory_depth or max(self.depths)


QUICK = {
    "depths": (2, 16), "repeats": 2, "min_time": 0.3, "synthetic_nodes": 10_000,
    "synthetic_edges": 100_000, "reference_depths": (2, 16), "khop_max_k": 3, "deep_depth": 128,
    "rewire_graphs": 200,
}  # fmt: skip


def build_parser(parser=None):
    """The perf options, on ``parser`` (e.g. the ``dgl-ssm perf`` subcommand) or a new one."""
    d = PerfConfig()
    if parser is None:
        parser = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").split("\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="small sizes (depths 2 16, 10k nodes)")
    add("--out", help=f"report folder (default {d.out})")
    add("--depths", type=int, nargs="+", help=f"default {d.depths}")
    add("--hidden", type=int, help=f"state width (default {d.hidden})")
    add("--repeats", type=int, help=f"timed rounds, A B A B … (default {d.repeats})")
    add("--warmup", type=int, help=f"untimed rounds before them (default {d.warmup})")
    add("--min-time", type=float,
        help=f"least timed seconds per model, over all rounds (default {d.min_time})")  # fmt: skip
    add("--device", type=device_argument, help="auto, cpu, cuda or cuda:N")
    add("--data-dir", help="raw Cora files (default $DGL_SSM_DATA)")
    add("--cache-dir", help="processed-data cache (default $DGL_SSM_CACHE)")
    add("--backbones", nargs="+", help="plain/SSM twins to time, e.g. gcn gin (default gcn)")
    add("--graphs", nargs="+", choices=["cora", "synthetic"])
    add("--synthetic-nodes", type=int, help="default 100000")
    add("--synthetic-edges", type=int, help="before self loops; default 1e6")
    add("--seed", type=int)
    add("--memory-depth", type=int, help="default: the largest depth")
    add("--reference-depths", type=int, nargs="+", help="depths timed with PyG (default 2 64)")
    add("--khop-max-k", type=int, help=f"default {d.khop_max_k}")
    add("--khop-max-edges", type=int, help=f"default {d.khop_max_edges:,}")
    add("--monitor-every", type=int,
        help=f"EVERY of the monitor timed on Cora (default {d.monitor_every})")  # fmt: skip
    add("--deep-depth", type=int,
        help=f"layers of the checkpointed GCN-SSM set against 64 layers on Cora (default "
        f"{d.deep_depth})")  # fmt: skip
    add(
        "--rewire-graphs",
        type=int,
        help=f"GPP-sized graphs rewired one at a time and batched (default {d.rewire_graphs})",
    )
    add("--memory-budget-gb", type=float, help="stop a measurement above this (default 80%% free)")
    add("--sections", nargs="+", choices=SECTIONS, help="default: all")
    add("--threads", type=int, help="torch.set_num_threads for all measurements (default: unset)")
    add("--allocator", choices=ALLOCATORS,
        help="C allocator of the timing processes (default: glibc's, as users run; depths "
        "that do not fit are timed again under tcmalloc when installed)")  # fmt: skip
    add("--no-subprocess", dest="subprocess", action="store_false",
        help="measure in this process (faster, less isolated)")  # fmt: skip
    return parser


def config_from_args(args):
    """The run's :class:`PerfConfig`: defaults, then ``--quick``'s sizes, then given flags."""
    values = asdict(PerfConfig())
    if args.quick:
        values.update(QUICK, quick=True)
    for name in (f.name for f in fields(PerfConfig)):
        given = getattr(args, name, None)
        if given is not None and name != "quick":
            values[name] = tuple(given) if isinstance(given, list) else given
    return PerfConfig(**values)


def main(argv=None):
    """Parse ``argv`` (default ``sys.argv[1:]``), run, and return the run's result."""
    escape_unencodable()
    return run_from_args(parse_arguments(build_parser(), argv), argv=argv)


def run_from_args(args, argv=None, prog=PROG, name=None):
    """Run the benchmark for parsed ``args``; bad options exit with code 2 and one line on
    stderr, which starts with ``name`` (default ``prog``; ``dgl-ssm perf`` when ``prog`` is
    the root command whose record's command line follows it)."""
    try:
        config = config_from_args(args)
        resolve_device(config.device)  # a missing GPU is a bad option, not a crash mid-run
        make_folder(config.out)  # an unwritable --out is found now, not after the run
        if "cora" in config.graphs:  # so are missing Cora files or a bad --cache-dir
            from .workload import GraphSpec, bare_graph

            bare_graph(GraphSpec("cora", data_dir=config.data_dir, cache_dir=config.cache_dir))
    except (ValueError, RuntimeError, OSError) as error:
        print(f"{name or prog}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None  # as argparse exits on a bad option
    # On use (`dgl-ssm run` imports this module), and after the checks: importing
    # torch.utils.benchmark can print a CUDA notice, which must not precede a bad option's line.
    from .runner import run

    try:
        return run(config, argv=argv, prog=prog)
    except OSError as error:  # the report could not be written: it is in the message
        print(f"{name or prog}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
