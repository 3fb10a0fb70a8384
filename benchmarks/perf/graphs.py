"""The graphs the benchmark trains on: Cora and a seeded random graph, self loops added."""

from dataclasses import asdict, dataclass

import dgl
import torch

NUM_CLASSES = 8  # random labels: the task only has to produce a loss and gradients


@dataclass(frozen=True)
class GraphSpec:
    """How to rebuild a benchmark graph anywhere, e.g. in a fresh measurement process.

    ``kind`` is ``"cora"`` (read with :func:`benchmarks.datasets.planetoid.load_planetoid`)
    or ``"synthetic"`` (``edges`` random directed edges before self loops: ``edges / 2``
    random pairs stored in both directions, drawn from ``seed``).
    """

    kind: str
    nodes: int = 0
    edges: int = 0
    seed: int = 0
    data_dir: str | None = None
    cache_dir: str | None = None

    @property
    def name(self):
        if self.kind == "cora":
            return "cora"
        return f"random-{_short(self.nodes)}"

    def as_dict(self):
        return asdict(self)


@dataclass
class GraphData:
    """A graph with self loops, node features and random labels, on one device."""

    spec: GraphSpec
    graph: dgl.DGLGraph
    feat: torch.Tensor
    labels: torch.Tensor

    @property
    def num_classes(self):
        return NUM_CLASSES

    def describe(self):
        return (
            f"{self.spec.name}: {self.graph.num_nodes():,} nodes, {self.graph.num_edges():,} "
            f"edges with self loops, {self.feat.shape[1]} input features"
        )


def graph_specs(config):
    """The graphs a run measures, in order (cheap first)."""
    specs = []
    for kind in config.graphs:
        if kind == "cora":
            specs.append(GraphSpec("cora", data_dir=config.data_dir, cache_dir=config.cache_dir))
        elif kind == "synthetic":
            specs.append(
                GraphSpec("synthetic", config.synthetic_nodes, config.synthetic_edges, config.seed)
            )
        else:
            raise ValueError(f"Unknown graph {kind!r}. Valid: 'cora', 'synthetic'.")
    return specs


def load_graph(spec, hidden, device):
    """Build the spec's graph with self loops, its features and random labels.

    The synthetic graph gets ``hidden``-wide Gaussian features; Cora keeps its own.
    Everything is drawn from a generator seeded by ``spec.seed``.
    """
    generator = torch.Generator().manual_seed(spec.seed)
    graph = bare_graph(spec)
    if spec.kind == "cora":
        feat = graph.ndata["feat"]
    else:
        feat = torch.randn(graph.num_nodes(), hidden, generator=generator)
    graph = dgl.add_self_loop(graph)
    graph = dgl.graph(graph.edges(), num_nodes=graph.num_nodes())  # no ndata: lighter scope
    labels = torch.randint(0, NUM_CLASSES, (graph.num_nodes(),), generator=generator)
    graph = graph.to(device)
    graph.create_formats_()  # build CSR/CSC once, not inside the first timed epoch
    return GraphData(spec, graph, feat.to(device), labels.to(device))


def bare_graph(spec):
    """The graph without self loops (the input of the k-hop transform)."""
    if spec.kind == "cora":
        from benchmarks.datasets.planetoid import load_planetoid

        return dgl.remove_self_loop(load_planetoid("cora", spec.data_dir, spec.cache_dir))
    generator = torch.Generator().manual_seed(spec.seed)
    pairs = spec.edges // 2
    src = torch.randint(0, spec.nodes, (pairs,), generator=generator)
    dst = torch.randint(0, spec.nodes, (pairs,), generator=generator)
    graph = dgl.graph((src, dst), num_nodes=spec.nodes)
    return dgl.to_bidirected(dgl.remove_self_loop(graph))


def _short(n):
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)
