"""What every dataset loader returns: graphs, splits and how the task is scored."""

import hashlib
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

    def fingerprint(self):
        """A digest of the data themselves (structure, features, targets, splits): two loads
        agree on it only if they read the same data, wherever the files were.

        Examples
        --------
        >>> import dgl, torch
        >>> def cycle(feat):
        ...     graph = dgl.graph(([0, 1, 2], [1, 2, 0]))
        ...     graph.ndata["feat"], graph.ndata["label"] = feat, torch.tensor([0, 1, 0])
        ...     split = {"train": torch.tensor([0]), "val": torch.tensor([1]),
        ...              "test": torch.tensor([2])}
        ...     return BenchmarkData("c", "node", "cross_entropy", "accuracy", 1, 2, graph, [split])
        >>> cycle(torch.ones(3, 1)).fingerprint() == cycle(torch.ones(3, 1)).fingerprint()
        True
        >>> cycle(torch.ones(3, 1)).fingerprint() == cycle(torch.zeros(3, 1)).fingerprint()
        False
        """
        digest = hashlib.sha256()

        def add(tensor):
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())

        def add_graph(graph):
            for tensor in (*graph.edges(), *_by_key(graph.ndata), *_by_key(graph.edata)):
                add(tensor)

        if self.transductive:
            add_graph(self.graph)
            for split in self.splits:
                for tensor in _by_key(split):
                    add(tensor)
        else:
            for name in sorted(self.graphs):
                for graph in self.graphs[name]:
                    add_graph(graph)
                if self.graph_labels is not None and name in self.graph_labels:
                    add(self.graph_labels[name])
        return digest.hexdigest()[:16]


def _by_key(tensors):
    return [tensors[key] for key in sorted(tensors)]
