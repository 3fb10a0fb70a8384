"""What the benchmark trains: the graphs, the model variants, one epoch, the PyG reference."""

from dataclasses import dataclass
from pathlib import Path

import dgl
import torch
import torch.nn.functional as F
from torch import nn

from dgl_ssm import build_model

NUM_CLASSES = 8  # random labels: the task only has to produce a loss and gradients
PYG = "pyg:gcn_ssm"  # the reference GCN-SSM on PyG


@dataclass(frozen=True)
class GraphSpec:
    """How to rebuild a benchmark graph anywhere: ``"cora"``, or ``"synthetic"`` (``edges / 2``
    random pairs drawn from ``seed``, stored in both directions, before self loops)."""

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
        for size, suffix in ((1_000_000, "M"), (1_000, "k")):
            if self.nodes % size == 0:
                return f"random-{self.nodes // size}{suffix}"
        return f"random-{self.nodes}"


def graph_specs(config):
    """The graphs a run measures, in the order of ``config.graphs``."""
    cora = GraphSpec("cora", data_dir=config.data_dir, cache_dir=config.cache_dir)
    synthetic = GraphSpec("synthetic", config.synthetic_nodes, config.synthetic_edges, config.seed)
    return [cora if kind == "cora" else synthetic for kind in config.graphs]


GPP_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gpp_eccentricity.yaml"


def gpp_sized_graphs(count, seed=0):
    """``count`` bidirected graphs drawn as the GPP generator draws its graphs (its families,
    its sizes: 25 … 34 nodes in turn), from seeds ``seed``, ``seed + 1``, …: the graphs a
    k-hop GPP run rewires, without generating the whole dataset."""
    from ..datasets.gpp import BATCHES, MIN_NODES, generate_graph

    graphs = []
    for i in range(count):
        edges, *_ = generate_graph(MIN_NODES + i % BATCHES[0], seed + i)
        src, dst = torch.from_numpy(edges).T
        num_nodes = MIN_NODES + i % BATCHES[0]
        graphs.append(dgl.to_bidirected(dgl.graph((src, dst), num_nodes=num_nodes)))
    return graphs


@dataclass
class GraphData:
    """A graph with self loops, node features and random labels, on one device."""

    spec: GraphSpec
    graph: dgl.DGLGraph
    feat: torch.Tensor
    labels: torch.Tensor

    def describe(self):
        return (
            f"{self.spec.name}: {self.graph.num_nodes():,} nodes, {self.graph.num_edges():,} "
            f"edges with self loops, {self.feat.shape[1]} input features"
        )


def load_graph(spec, hidden, device):
    """The spec's graph with self loops, features and random labels, drawn from its seed."""
    generator = torch.Generator().manual_seed(spec.seed)
    graph = bare_graph(spec)
    if spec.kind == "cora":
        feat = graph.ndata["feat"]
    else:  # the synthetic graph gets hidden-wide Gaussian features
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
        from dgl_ssm_bench.datasets.planetoid import load_planetoid

        return dgl.remove_self_loop(load_planetoid("cora", spec.data_dir, spec.cache_dir))
    generator = torch.Generator().manual_seed(spec.seed)
    src = torch.randint(0, spec.nodes, (spec.edges // 2,), generator=generator)
    dst = torch.randint(0, spec.nodes, (spec.edges // 2,), generator=generator)
    graph = dgl.graph((src, dst), num_nodes=spec.nodes)
    return dgl.to_bidirected(dgl.remove_self_loop(graph))


def make_epoch(variant, data, depth, hidden, seed=0, monitor=None):
    """Build ``variant`` for ``data`` and return a function running one training epoch:
    forward, cross-entropy on the random labels, backward, Adam step. ``variant`` is a
    registered model (``gcn``, ``gcn_ssm``), ``+ckpt`` for checkpointing, or ``pyg:gcn_ssm``
    (:class:`PygGCNSSM`); twins get identical weights from ``seed``. With a ``monitor``
    (:class:`~dgl_ssm_bench.monitor.TrainingMonitor`) the function takes ``watch``: whether
    the monitor records that epoch."""
    torch.manual_seed(seed)
    in_feats = data.feat.shape[1]
    if variant == PYG:
        model = PygGCNSSM(in_feats, hidden, NUM_CLASSES, depth)
        inputs = (data.feat, edge_index(data.graph))
    else:
        name, checkpoint = variant.removesuffix("+ckpt"), variant.endswith("+ckpt")
        model = build_model(name, in_feats, hidden, NUM_CLASSES, depth, checkpoint=checkpoint)
        inputs = (data.graph, data.feat)
    model = model.to(data.feat.device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def epoch():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(*inputs), data.labels).backward()
        optimizer.step()

    if monitor is None:
        return epoch
    steps = iter(range(10**12))

    def watched_epoch(watch):
        step = next(steps)
        if not watch:
            return epoch()
        with monitor.watching(model, step):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(*inputs), data.labels).backward()
        optimizer.step()

    return watched_epoch


def pyg_available():
    """``None`` when PyG can be imported, else the reason it cannot."""
    try:
        import torch_geometric.nn  # noqa: F401
    except Exception as error:  # ImportError, or a build mismatch with this torch
        return f"{type(error).__name__}: {error}"
    return None


class PygGCNSSM(nn.Module):
    """:class:`dgl_ssm.GCNSSM` with its defaults (Λ = I, B = β·I, σ = relu) on PyG's
    ``GCNConv``: ``H ← H + β·relu(GCNConv(H))`` between a linear encoder and a linear head.
    The graph already has self loops, so ``GCNConv`` adds none and normalises by
    ``D^{-1/2} (A + I) D^{-1/2}`` like DGL's ``GraphConv(norm="both")``."""

    def __init__(self, in_feats, hidden, out_feats, num_layers, beta=0.1):
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.beta = beta
        self.encoder = nn.Linear(in_feats, hidden)
        # cached=False: the normalisation is recomputed every call, as GraphConv does.
        self.convs = nn.ModuleList(
            GCNConv(hidden, hidden, add_self_loops=False, normalize=True) for _ in range(num_layers)
        )
        self.head = nn.Linear(hidden, out_feats)

    def forward(self, feat, edge_index):
        state = self.encoder(feat)
        for conv in self.convs:
            state = torch.add(state, torch.relu(conv(state, edge_index)), alpha=self.beta)
        return self.head(state)

    @torch.no_grad()
    def copy_weights_from(self, model):
        """Take the weights of a :class:`dgl_ssm.GCNSSM` of the same sizes (for checks)."""
        self.encoder.load_state_dict(model.encoder.state_dict())
        self.head.load_state_dict(model.head.state_dict())
        for ours, layer in zip(self.convs, model.layers):
            ours.lin.weight.copy_(layer.conv.weight.t())  # GraphConv stores W as (in, out)
            ours.bias.copy_(layer.conv.bias)
        return self


def edge_index(graph):
    """The ``2 × E`` (source, destination) edge index PyG's convs read."""
    src, dst = graph.edges()
    return torch.stack([src, dst]).long()
