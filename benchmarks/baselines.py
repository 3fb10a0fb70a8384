"""Reference models that are not deep-GNN stacks, to check the harness against the literature.

- :class:`KipfGCN` (``gcn_kipf``): the two-layer GCN of Kipf & Welling (2017).
- :class:`PlatonovGCN` (``gcn_platonov``): the residual GCN of Platonov et al. (2023), whose
  numbers are the published GCN baseline on the heterophilous graphs.

Both are fixed architectures: they take the sizes, ``dropout`` and ``task`` of a run, and no
plain-twin or SSM option.
"""

import dgl.function as fn
from dgl.nn import GraphConv
from torch import nn

from dgl_ssm.checks import CheckedInputs, check_count, check_in_degrees, check_node_features


class KipfGCN(nn.Module):
    """The GCN of Kipf & Welling (2017): ``Â relu(Â X W₁) W₂`` with dropout before each conv.

    No encoder and no head: the first conv maps the input width to ``hidden`` and the last
    maps it to the classes, as in the paper (Cora: 16 hidden, dropout 0.5 → 81.5 %).
    """

    def __init__(self, in_feats, hidden, out_feats, num_layers=2, dropout=0.5, task="node"):
        super().__init__()
        if task != "node":
            raise ValueError("gcn_kipf is a node classifier; use gcn or gcn_ssm for graph tasks.")
        sizes = [("in_feats", in_feats), ("hidden", hidden), ("out_feats", out_feats),
                 ("num_layers", num_layers)]  # fmt: skip
        in_feats, hidden, out_feats, num_layers = (check_count(v, name) for name, v in sizes)
        widths = [in_feats] + [hidden] * (num_layers - 1) + [out_feats]
        self.in_feats = in_feats
        self.convs = nn.ModuleList(GraphConv(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.dropout = nn.Dropout(dropout)
        self.activation = nn.ReLU()
        self._checked_inputs = CheckedInputs()

    def reset_parameters(self):
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, graph, feat):
        self._checked_inputs.once(
            lambda: check_node_features(graph, feat, self.in_feats), graph, feat
        )
        h = feat
        for i, conv in enumerate(self.convs):
            h = conv(graph, self.dropout(h))
            if i < len(self.convs) - 1:
                h = self.activation(h)
        return h


def gcn_propagate(graph, feat):
    r"""Platonov et al.'s GCN propagation: :math:`(\hat A x)_v = \sum_{u \to v}
    x_u / \sqrt{d_u d_v}`, with :math:`d` the **out**-degree of both end nodes.

    No weight and no self loop of its own: the graph is used as given (Platonov et al. add one
    self loop per node to the graph before training their GCN; so does this suite's trainer).
    On an undirected graph the out-degree equals the in-degree, and this is
    :math:`\tilde D^{-1/2} \tilde A \tilde D^{-1/2}`, DGL ``GraphConv``'s ``norm="both"``.
    On a directed graph the two differ: ``GraphConv`` divides by the in-degree of ``v``.
    Degrees are clamped to at least 1, as ``GraphConv`` does.
    """
    with graph.local_scope():
        scale = graph.out_degrees().to(feat.dtype).clamp(min=1).pow(-0.5).unsqueeze(-1)
        graph.ndata["_h"] = feat * scale
        graph.update_all(fn.copy_u("_h", "_m"), fn.sum("_m", "_h"))
        return graph.ndata["_h"] * scale


class PlatonovBlock(nn.Module):
    r"""One pre-norm residual block of Platonov et al.'s GCN: ``h + FFN(Â LN(h))``.

    .. math::
        h' = h + \mathrm{Drop}\Big(W_2 \,\mathrm{GELU}\big(\mathrm{Drop}(W_1\,
            \hat A\, \mathrm{LN}(h) + b_1)\big) + b_2\Big)

    with :math:`\hat A` of :func:`gcn_propagate`. The propagation has no weight: the block's
    only trainable maps are the LayerNorm and the feed-forward module (``d → m·d → d``).
    Dropout comes after each linear map, before GELU in the first (their code's order).

    Parameters
    ----------
    dim : int
        Feature width ``d``.
    dropout : float
        Dropout after each of the two linear maps.
    ffn_multiplier : float
        Width of the feed-forward module's hidden layer, ``int(m · d)``. Default 1.
    """

    def __init__(self, dim, dropout=0.2, ffn_multiplier=1):
        super().__init__()
        self.dim = dim
        self.ffn_dim = int(dim * ffn_multiplier)
        if self.ffn_dim < 1:
            raise ValueError(f"ffn_multiplier={ffn_multiplier} leaves no feed-forward width.")
        self.norm = nn.LayerNorm(dim)
        self.linear_1 = nn.Linear(dim, self.ffn_dim)
        self.linear_2 = nn.Linear(self.ffn_dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.activation = nn.GELU()

    def reset_parameters(self):
        for module in (self.norm, self.linear_1, self.linear_2):
            module.reset_parameters()

    def forward(self, graph, feat):
        h = gcn_propagate(graph, self.norm(feat))
        h = self.activation(self.dropout(self.linear_1(h)))
        return feat + self.dropout(self.linear_2(h))

    def extra_repr(self):
        return f"dim={self.dim}, ffn_dim={self.ffn_dim}"


class PlatonovGCN(nn.Module):
    r"""The GCN of Platonov et al. (2023), the published GCN baseline on heterophilous graphs.

    "A critical look at the evaluation of GNNs under heterophily" (ICLR 2023), repository
    ``yandex-research/heterophilous-graphs`` (``model.py``, ``modules.py``): not a bare stack
    of convs, but a pre-norm residual network whose blocks each propagate with the GCN
    operator and then apply a feed-forward module:

    .. math::
        h^{(0)} = \mathrm{GELU}\big(\mathrm{Drop}(x W_{in} + b_{in})\big), \qquad
        h^{(\ell+1)} = h^{(\ell)} + \mathrm{FFN}_\ell\big(\hat A\,
            \mathrm{LN}_\ell(h^{(\ell)})\big), \qquad
        \hat y = \mathrm{LN}(h^{(L)})\, W_{out} + b_{out}

    (one :class:`PlatonovBlock` per layer). :math:`\hat A_{vu} = 1/\sqrt{d_u d_v}` for every
    edge ``u → v``, with :math:`d` the out-degree, self loops included; the propagation
    itself adds no self loops and has no weight (see :func:`gcn_propagate`). Platonov et al.
    add one self loop per node to the (undirected) graph for their GCN, which this suite's
    trainer does too (``data.self_loops``, on by default), so the operator is
    :math:`\tilde D^{-1/2}(A + I)\tilde D^{-1/2}`.

    Their published setting: hidden 512, 1–5 layers, dropout 0.2, ``ffn_multiplier`` 1,
    AdamW (lr 3e-5 or 3e-4, no weight decay), 1000 full-batch steps, the test score at the
    best validation step, 10 fixed splits. Binary tasks there have one logit and a BCE loss;
    here they have two and cross-entropy, as every model of this suite.

    Parameters
    ----------
    in_feats, hidden, out_feats : int
        Input width, block width ``d`` and number of outputs.
    num_layers : int
        Number of residual blocks ``L``.
    dropout : float
        Dropout after the input map and inside every feed-forward module.
    task : {"node"}
        Node tasks only, as in the paper.
    ffn_multiplier : float
        Hidden width of the feed-forward modules, as a multiple of ``hidden``. Default 1.
    allow_zero_in_degree : bool
        Skip the check for nodes with no in-edges (no message reaches them).

    Example
    -------
    >>> import dgl, torch
    >>> from dgl_ssm_bench.baselines import PlatonovGCN
    >>> ring = dgl.to_bidirected(dgl.graph(([0, 1, 2, 3, 4], [1, 2, 3, 4, 0])))
    >>> g = dgl.add_self_loop(ring)
    >>> model = PlatonovGCN(in_feats=7, hidden=16, out_feats=2, num_layers=2)
    >>> model(g, torch.randn(5, 7)).shape
    torch.Size([5, 2])
    >>> sum(p.numel() for p in model.parameters())  # 128 + 2 × 576 + 32 + 34
    1346
    """

    def __init__(
        self,
        in_feats,
        hidden,
        out_feats,
        num_layers=1,
        dropout=0.2,
        task="node",
        ffn_multiplier=1,
        allow_zero_in_degree=False,
    ):
        super().__init__()
        if task != "node":
            raise ValueError(
                "gcn_platonov is a node classifier (Platonov et al. 2023); use gcn or gcn_ssm "
                "for graph tasks."
            )
        sizes = [("in_feats", in_feats), ("hidden", hidden), ("out_feats", out_feats),
                 ("num_layers", num_layers)]  # fmt: skip
        in_feats, hidden, out_feats, num_layers = (check_count(v, name) for name, v in sizes)
        self.in_feats, self.hidden, self.out_feats = in_feats, hidden, out_feats
        self.num_layers = num_layers
        self.allow_zero_in_degree = allow_zero_in_degree
        self.encoder = nn.Linear(in_feats, hidden)
        self.input_dropout = nn.Dropout(dropout)
        self.activation = nn.GELU()
        self.blocks = nn.ModuleList(
            PlatonovBlock(hidden, dropout, ffn_multiplier) for _ in range(num_layers)
        )
        self.output_norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, out_feats)
        self._checked_inputs = CheckedInputs()

    def reset_parameters(self):
        """Reinitialise every weight (as at construction: PyTorch's defaults)."""
        for module in (self.encoder, *self.blocks, self.output_norm, self.head):
            module.reset_parameters()

    def forward(self, graph, feat):
        """Return node outputs ``(N, out_feats)``."""
        self._checked_inputs.once(lambda: self._check_inputs(graph, feat), graph, feat)
        h = self.activation(self.input_dropout(self.encoder(feat)))
        for block in self.blocks:
            h = block(graph, h)
        return self.head(self.output_norm(h))

    def _check_inputs(self, graph, feat):
        check_node_features(graph, feat, self.in_feats)
        if not self.allow_zero_in_degree:
            check_in_degrees(graph, "gcn_platonov")

    def extra_repr(self):
        return (
            f"in_feats={self.in_feats}, hidden={self.hidden}, out_feats={self.out_feats}, "
            f"layers={self.num_layers}"
        )


BASELINES = {"gcn_kipf": KipfGCN, "gcn_platonov": PlatonovGCN}
