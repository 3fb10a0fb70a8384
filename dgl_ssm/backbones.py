"""The message-passing backbones: how to build one DGL conv ``d → d`` for each name.

Every named model (plain or SSM, one hop or k hops) gets its convs from here, so adding a
backbone is one entry in :data:`BACKBONES`.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

from dgl.nn import GATConv, GatedGCNConv, GINConv, GraphConv, SAGEConv
from torch import nn

from .checks import check_choice, check_count, check_flag, check_real


@dataclass(frozen=True)
class Backbone:
    """How to build a backbone's conv, and what the conv needs from its input.

    ``make_conv(dim, **options)`` returns a fresh conv mapping width ``dim`` to ``dim``.
    ``uses_edge_feats``: the conv is called as ``conv(graph, h, e)`` and returns ``(h, e)``.
    ``needs_in_edges``: the conv's output is meaningless on nodes with no in-edges (GCN and
    GAT normalise by the in-degree), so models refuse such graphs unless told otherwise.
    ``takes_edge_weight``: the conv takes DGL's ``edge_weight=`` (one scalar an edge).
    """

    name: str
    make_conv: Callable[..., nn.Module]
    uses_edge_feats: bool = False
    needs_in_edges: bool = False
    takes_edge_weight: bool = False


def _gcn(dim):
    # Zero in-degrees are checked once per forward by the model, with a remedy in the message.
    return GraphConv(dim, dim, norm="both", allow_zero_in_degree=True)


def _gin(dim, learn_eps=False):
    mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
    learn_eps = check_flag(learn_eps, "GIN's learn_eps")  # "no" would be truthy: ε learned
    return GINConv(mlp, aggregator_type="sum", learn_eps=learn_eps)


def _gatedgcn(dim):
    # σ, the residual path and the norm belong to the wrapper, so the conv is kept linear.
    conv = GatedGCNConv(dim, dim, dim, batch_norm=False, residual=False, activation=nn.Identity())
    # DGL builds its two BatchNorms even with batch_norm=False: never used, they would count
    # 4·dim trainable parameters a layer against a parameter budget, and never train.
    conv.bn_node = conv.bn_edge = None
    return conv


def _gat(dim, heads=4, feat_drop=0.0, attn_drop=0.0, negative_slope=0.2):
    # (DGL's defaults; Veličković et al.'s Cora GAT drops 0.6 of both)
    heads = check_count(heads, "GAT's heads")
    if dim % heads:
        raise ValueError(
            f"GAT concatenates its heads, so hidden ({dim}) must be divisible by heads "
            f"({heads}). Choose e.g. hidden={dim - dim % heads or heads} or heads=1."
        )
    for name, value in (("feat_drop", feat_drop), ("attn_drop", attn_drop)):
        check_real(value, f"GAT's {name}", "a number in [0, 1)", lambda p: 0 <= p < 1)
    slope = check_real(negative_slope, "GAT's negative_slope", "a finite number ≥ 0",
                       lambda a: 0 <= a < math.inf)  # fmt: skip
    return GATConv(dim, dim // heads, heads, float(feat_drop), float(attn_drop), float(slope),
                   allow_zero_in_degree=True)  # fmt: skip


#: DGL's SAGEConv aggregators.
SAGE_AGGREGATORS = ("mean", "gcn", "pool", "lstm")


def _sage(dim, aggregator="mean"):
    aggregator = check_choice("SAGE aggregator", aggregator, SAGE_AGGREGATORS)
    return SAGEConv(dim, dim, aggregator_type=aggregator)


#: Backbone name → :class:`Backbone`: the conv each named model wraps, and what it reads.
BACKBONES = {
    "gcn": Backbone("gcn", _gcn, needs_in_edges=True, takes_edge_weight=True),
    "gin": Backbone("gin", _gin, takes_edge_weight=True),
    "gatedgcn": Backbone("gatedgcn", _gatedgcn, uses_edge_feats=True),
    "gat": Backbone("gat", _gat, needs_in_edges=True, takes_edge_weight=True),
    "sage": Backbone("sage", _sage, takes_edge_weight=True),
}
