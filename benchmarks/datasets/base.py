"""What every dataset loader returns: graphs, splits and how the task is scored."""

from dataclasses import dataclass, field

import torch
from dgl import DGLGraph

LEVELS = ("node", "graph")
LOSSES = ("cross_entropy", "bce", "mse", "l1")


@dataclass
class BenchmarkData:
    """A benchmark task, in one of two shapes.

    Transductive (one graph, e.g. Cora): ``graph`` holds ``ndata["feat"]`` and
    ``ndata["label"]``; ``splits`` is a list of fixed splits (Planetoid has one, the
    heterophilous sets ten), each ``{"train", "val", "test"}`` → node index tensor.

    Inductive (many graphs, e.g. RingTransfer, GPP, Peptides): ``graphs[split]`` is a list of
    graphs with ``ndata["feat"]``. Graph-level targets are ``graph_labels[split]`` (one row
    per graph); node-level targets are ``ndata["label"]``, and ``ndata["target_mask"]``
    (bool), where present, marks the nodes that are scored (RingTransfer's read-out node).

    ``level`` says where the model's outputs are read (``"node"`` or ``"graph"``), ``loss``
    how it is trained and ``metric`` how it is scored (see ``dgl_ssm_bench.metrics``).

    ``edata["feat"]``, where present (``num_edge_features`` wide), goes to the backbones that
    read edge features. ``node_encoder`` / ``edge_encoder`` name the input encoders the
    published protocol uses when they are not a linear layer (``"ogb_atom"`` /
    ``"ogb_bond"``: OGB's embeddings of integer-coded atoms and bonds, see
    ``dgl_ssm_bench.models``).
    """

    name: str
    level: str
    loss: str
    metric: str
    num_features: int
    num_outputs: int
    graph: DGLGraph | None = None
    splits: list[dict[str, torch.Tensor]] = field(default_factory=list)
    graphs: dict[str, list[DGLGraph]] | None = None
    graph_labels: dict[str, torch.Tensor] | None = None
    num_edge_features: int | None = None
    node_encoder: str | None = None
    edge_encoder: str | None = None

    def __post_init__(self):
        if self.level not in LEVELS or self.loss not in LOSSES:
            raise ValueError(f"{self.name}: bad level {self.level!r} or loss {self.loss!r}")
        if (self.graph is None) == (self.graphs is None):
            raise ValueError(f"{self.name}: give either one graph with splits, or graphs")

    @property
    def transductive(self):
        return self.graph is not None

    @property
    def num_splits(self):
        return len(self.splits) if self.transductive else 1
