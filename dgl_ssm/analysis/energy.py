r"""Dirichlet energy: how far node states are from being constant over the graph.

.. math::
    E(H) = \frac{1}{n} \sum_{(i, j) \in \mathcal{E}} \| h_i - h_j \|^2,
    \qquad
    E_{\mathrm{norm}}(H) = \frac{1}{n} \sum_{(i, j) \in \mathcal{E}}
        \Big\| \frac{h_i}{\sqrt{1 + d_i}} - \frac{h_j}{\sqrt{1 + d_j}} \Big\|^2

The sum runs over the graph's edge list **as stored**, i.e. over directed edges: a graph
made with :func:`dgl.to_bidirected` counts every undirected edge twice, duplicate edges count
as often as they are stored, and self loops add nothing to either energy. In the normalised
variant :math:`d_i` is the in-degree of node :math:`i` **without self loops** (the ``1 +``
stands for the self loop), whatever graph is passed: the raw graph and the same graph with
:func:`dgl.add_self_loop` give the same value. Over-smoothing is
:math:`E(H^{(\ell)}) \to 0` with depth: all node states collapse to one vector (the
normalised variant: to a multiple of :math:`\sqrt{1+d}`).
"""

import copy

import torch

from ..checks import check_features, check_flag, check_graph, shown
from ._common import check_dtype, evaluating, hop_field_of, one_hop_graph, run_model
from .states import recorded_states

__all__ = ["dirichlet_energy", "layer_energies"]


def dirichlet_energy(graph, feat, normalized=False, as_tensor=False):
    r"""The Dirichlet energy :math:`E(H)` of node states ``feat`` on ``graph``.

    Parameters
    ----------
    graph : dgl.DGLGraph
        Homogeneous graph; its stored (directed) edges are summed over.
    feat : torch.Tensor
        Node states ``(n, d)``.
    normalized : bool, default False
        Use :math:`h_i / \sqrt{1 + d_i}` with :math:`d_i` the in-degree not counting self
        loops (see the module docstring).
    as_tensor : bool, default False
        Return a 0-d float64 tensor on the states' device instead of a float, so a caller in a
        training step does not wait for a GPU to read it (a monitor reads many at once).

    Returns
    -------
    float or torch.Tensor
        The energy, summed in float64 (no gradient). The differences
        :math:`h_i - h_j` are taken in the states' own precision (float32 or float64), which
        loses nothing that matters: two close values subtract exactly (Sterbenz), others with
        a relative error below one unit in the last place, so the energy's relative error stays
        under about 1e-7 for float32 states, and half as much memory traffic is needed.

    Examples
    --------
    A path 0 → 1 → 2 with states 0, 1, 3: :math:`(1^2 + 2^2)/3`.

    >>> import dgl, torch
    >>> from dgl_ssm.analysis import dirichlet_energy
    >>> g = dgl.graph(([0, 1], [1, 2]))
    >>> round(dirichlet_energy(g, torch.tensor([[0.0], [1.0], [3.0]])), 12)
    1.666666666667
    """
    # NaN states have a NaN energy: the measure says so itself.
    who = "dirichlet_energy"
    check_graph(graph, who, f"{who}(graph, feat)")  # one graph (check_features takes lists)
    check_features(graph, feat, who, finite=False, call=f"{who}(graph, feat)")
    normalized = check_flag(normalized, "normalized", who="dirichlet_energy")
    h = feat.detach()
    if h.dtype not in (torch.float32, torch.float64):
        h = h.float()  # half precision would lose the differences
    src, dst = graph.edges()
    src, dst = src.to(h.device).long(), dst.to(h.device).long()
    if normalized:
        h = h.double()
        # d_i without self loops: the 1 in √(1 + d_i) is the self loop, so a self-looped
        # graph must not count it a second time.
        not_loop = (src != dst).double()
        degree = torch.zeros(graph.num_nodes(), dtype=h.dtype, device=h.device)
        degree.index_add_(0, dst, not_loop)
        h = h / torch.sqrt(1.0 + degree).unsqueeze(1)
    difference = h.index_select(0, src) - h.index_select(0, dst)
    # ‖·‖² accumulated in float64 without a float64 copy of the differences
    squares = torch.linalg.vector_norm(difference, dtype=torch.float64) ** 2
    energy = squares / graph.num_nodes()
    return energy if as_tensor else float(energy)


def layer_energies(
    model, graph, feat, normalized=False, *, edge_feat=None, energy_graph=None, dtype=None
):
    r"""Dirichlet energy of every state :math:`H^{(0)}, H^{(1)}, \dots, H^{(L)}` of a model.

    Entry 0 is the encoder output (the input of the first layer), entry ℓ the output of layer
    ℓ. States are read with forward hooks on ``model.layers`` in one forward pass, with the
    model in eval mode and without gradients; the hooks are removed and every module's
    train/eval flag restored afterwards, even on error.

    Parameters
    ----------
    model : torch.nn.Module
        A deep GNN with ``.layers`` (any dgl_ssm model).
    graph, feat, edge_feat
        The model's inputs.
    normalized : bool, default False
        Degree-normalised energy (see :func:`dirichlet_energy`).
    energy_graph : dgl.DGLGraph, optional
        The graph to measure on. Default: ``graph``, or for a graph rewired by
        :class:`~dgl_ssm.KHopTransform` (hop distances in the model's ``hop_field``, by
        default ``edata["hop"]``) its hop-1 edges, i.e. the original graph.
    dtype : torch.dtype, optional
        Run a copy of the model in this precision. ``torch.float64`` resolves energies
        below the float32 rounding floor (about :math:`(10^{-7}\,\|h\|)^2` per edge), which
        matters when states converge to a non-zero constant vector.

    Returns
    -------
    list of float
        ``L + 1`` energies.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import build_model
    >>> from dgl_ssm.analysis import layer_energies
    >>> g = dgl.add_self_loop(dgl.to_bidirected(dgl.rand_graph(20, 40)))
    >>> model = build_model("gcn_ssm", in_feats=4, hidden=8, out_feats=2, num_layers=6)
    >>> len(layer_energies(model, g, torch.randn(20, 4)))
    7
    """
    check_dtype(dtype, "layer_energies")
    check_graph(graph, "layer_energies", "layer_energies(model, graph, feat)")
    if isinstance(normalized, torch.Tensor):  # edge features given fourth, where calibrate has them
        raise TypeError(
            f"layer_energies: its fourth argument is normalized (True or False), got "
            f"{shown(normalized)}; pass edge features by keyword: edge_feat=…"
        )
    for name, tensor in (("feat", feat), ("edge_feat", edge_feat)):
        if tensor is not None and not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"layer_energies: {name} must be a torch.Tensor, got {type(tensor).__name__}."
            )
    if energy_graph is not None:
        check_graph(energy_graph, "layer_energies' energy_graph", "layer_energies(model, "
                    "graph, feat, energy_graph=g)")  # fmt: skip
        if energy_graph.num_nodes() != graph.num_nodes():
            raise ValueError(
                f"layer_energies: energy_graph has {energy_graph.num_nodes()} nodes but the "
                f"model's graph has {graph.num_nodes()}: measure on a graph of the same nodes "
                "(e.g. the graph before rewiring), or leave energy_graph out."
            )
    measure_on = one_hop_graph(graph, hop_field_of(model)) if energy_graph is None else energy_graph
    if dtype is not None:
        model = copy.deepcopy(model).to(dtype)
        # Integer features (atom and bond codes for an embedding) stay integers.
        feat = feat.to(dtype) if feat.is_floating_point() else feat
        if edge_feat is not None and edge_feat.is_floating_point():
            edge_feat = edge_feat.to(dtype)
        field = getattr(model, "edge_weight_field", None)
        if field is not None and field in graph.edata:  # the weights the model reads
            graph = graph.local_var()
            graph.edata[field] = graph.edata[field].to(dtype)
    with evaluating(model), torch.no_grad():
        with recorded_states(model, who="layer_energies") as states:
            run_model(model, graph, feat, edge_feat)
    return [dirichlet_energy(measure_on, state, normalized) for state in states]
