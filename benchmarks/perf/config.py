"""One description of a performance run: sizes, repeats, sections, device, output folder."""

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .allocator import ALLOCATORS

SECTIONS = ("time", "memory", "khop", "reference", "breakdown")


@dataclass
class PerfConfig:
    """Everything a run of ``python -m benchmarks.perf`` depends on.

    Parameters
    ----------
    out : Path
        Folder for ``perf.md``, ``perf.csv`` and ``perf.json``.
    depths : tuple of int
        Layer counts timed on every graph.
    hidden : int
        State width ``d``.
    repeats, warmup : int
        Timed (at least) and untimed epochs per model and depth.
    min_time : float
        Cheap configurations get more timed epochs, until each model has run this many
        seconds (at most 25 epochs): the median then shrugs off stalls.
    backbones : tuple of str
        Backbones timed as plain/SSM twins (``"gcn"`` → ``gcn`` vs ``gcn_ssm``).
    graphs : tuple of str
        ``"cora"`` and/or ``"synthetic"``.
    synthetic_nodes, synthetic_edges : int
        Size of the random graph (edges before self loops, both directions counted).
    memory_depth : int, optional
        Depth of the peak-memory section; default the largest of ``depths``.
    reference_depths : tuple of int
        Depths at which the PyG reference is timed (only those also in ``depths``).
    khop_max_k, khop_max_edges : int
        K runs from 1 up to ``khop_max_k``, or until ``max_edges`` is exceeded.
    memory_budget_gb : float, optional
        A measurement whose process grows beyond this is stopped and reported as such;
        default 80 % of the memory available when the run starts.
    subprocess : bool
        Measure peak memory in fresh processes (reliable) rather than in this one.
    sections : tuple of str
        Which parts to run, out of :data:`SECTIONS`.
    threads : int, optional
        ``torch.set_num_threads`` for every measurement; default: leave torch's default.
    allocator : {"default", "tcmalloc", "compact"}
        The C allocator of the timing workers (see :mod:`.allocator`); under ``"default"``,
        depths that do not fit are timed again under tcmalloc (or the compact setting).
    """

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
        unknown = set(self.sections) - set(SECTIONS)
        if unknown:
            raise ValueError(f"Unknown sections {sorted(unknown)}. Valid: {', '.join(SECTIONS)}.")
        if not self.depths or min(self.depths) < 1:
            raise ValueError(f"depths must be positive layer counts, got {self.depths}.")
        if self.allocator not in ALLOCATORS:
            raise ValueError(
                f"Unknown allocator {self.allocator!r}. Valid: {', '.join(ALLOCATORS)}."
            )
        if self.repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {self.repeats}.")

    @property
    def deepest(self):
        return self.memory_depth or max(self.depths)

    def as_dict(self):
        values = asdict(self)
        values["out"] = str(self.out)
        return values


QUICK = {
    "depths": (2, 16),
    "repeats": 2,
    "min_time": 0.3,
    "synthetic_nodes": 10_000,
    "synthetic_edges": 100_000,
    "reference_depths": (2, 16),
    "khop_max_k": 3,
}


def quick(config):
    """The ``--quick`` sizes: well under a minute, for a first look and for CI."""
    return replace(config, quick=True, **QUICK)
