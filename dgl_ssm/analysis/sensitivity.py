r"""Sensitivity of a node's final state to a distant node's input: over-squashing, measured.

.. math::
    S(v, u) = \Big\| \frac{\partial h_v^{(L)}}{\partial x_u} \Big\|
    \qquad \big(\text{the } d_{\text{out}} \times d_{\text{in}} \text{ block of the Jacobian of }
    X \mapsto H^{(L)}\big)

:math:`h^{(L)}` is the output of the last layer (before the task head, read with a hook) and
:math:`x_u` the raw input features of node :math:`u` (the encoder is part of the map). A
message-passing model over-squashes when :math:`S(v, u)` decays fast with the hop distance
:math:`d(u, v)`; the paper's claim is that k-hop rewiring (shorter paths) and non-vanishing
SSM dynamics are both needed to prevent it.

Each target :math:`v` costs :math:`d_{\text{out}}` backward passes (one per coordinate of
:math:`h_v^{(L)}`), which give its sensitivity to every source :math:`u` at once.
"""

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import shortest_path

from ..checks import check_count, check_features, check_graph, check_homogeneous, is_int
from ._common import evaluating, hop_field_of, model_layers, one_hop_graph, run_model
from .states import recorded_states

__all__ = ["hop_distances", "sensitivity", "sensitivity_by_distance"]

MATRIX_NORM_ORDERS = ("fro", 2)


def _final_state_gradients(model, graph, feat, targets, edge_feat, who):
    """Yield ``(v, k, ∂h_v,k^(L)/∂X)`` for every target ``v`` and output coordinate ``k``."""
    model_layers(model, who)  # (the callers have checked graph and feat)
    with evaluating(model), torch.enable_grad():
        x = feat.detach().clone().requires_grad_(True)
        with recorded_states(model, include_input=False, who=who) as states:
            run_model(model, graph, x, edge_feat)
        last = states[-1]
        for v in targets:
            for k in range(last.shape[1]):
                grad = None
                if last.requires_grad:
                    (grad,) = torch.autograd.grad(
                        last[v, k], x, retain_graph=True, allow_unused=True
                    )
                yield v, k, torch.zeros_like(x) if grad is None else grad.detach()


def _check_nodes(nodes, num_nodes, who, what):
    """``nodes`` (a list, array or tensor of node ids) as a list of ints in range."""
    if is_int(nodes) or (hasattr(nodes, "dim") and nodes.dim() == 0):
        raise TypeError(f"{who}: {what} must be a list of node ids; for one node, pass [{nodes}].")
    listed = nodes.tolist() if hasattr(nodes, "tolist") else nodes
    if isinstance(listed, Iterable):  # 0-d tensors and NumPy scalars as Python numbers
        listed = [n.item() if getattr(n, "ndim", None) == 0 else n for n in listed]
    if not isinstance(listed, list) or not all(map(is_int, listed)):
        raise TypeError(f"{who}: {what} must be a list of integer node ids, got {nodes!r}.")
    nodes = [int(node) for node in listed]
    bad = [node for node in nodes if not 0 <= node < num_nodes]
    if bad:
        raise IndexError(
            f"{who}: {what} {bad[:5]} out of range for a graph of {num_nodes} nodes "
            f"(valid: 0..{num_nodes - 1})."
        )
    return nodes


def _node_pairs(pairs, who):
    """``pairs`` as a list of ``[v, u]`` ints, refusing anything not shaped ``(P, 2)``."""
    try:
        table = torch.as_tensor(pairs)
    except (TypeError, ValueError, RuntimeError):
        table = None
    if table is not None and table.numel() == 0:
        return []
    if (
        table is None
        or table.dim() != 2
        or table.shape[1] != 2
        or table.is_floating_point()
        or table.is_complex()
        or table.dtype == torch.bool
    ):
        raise ValueError(
            f"{who}: pairs must be (target v, source u) node pairs: a list of 2-tuples of "
            f"ints or an integer tensor of shape (P, 2), got {pairs!r}."
        )
    return table.long().tolist()


def sensitivity(model, graph, feat, pairs, *, edge_feat=None, ord="fro"):
    r"""Sensitivities :math:`\|\partial h_v^{(L)} / \partial x_u\|` for chosen ``(v, u)`` pairs.

    Parameters
    ----------
    model : torch.nn.Module
        A deep GNN with ``.layers`` (run in eval mode; restored afterwards).
    graph, feat, edge_feat
        The model's inputs (for k-hop models: the rewired graph).
    pairs : sequence of (int, int) or tensor of shape (P, 2)
        ``(target v, source u)`` node pairs.
    ord : {"fro", 2}, default "fro"
        Frobenius or spectral norm of the :math:`d_{\text{out}} \times d_{\text{in}}` block.

    Returns
    -------
    torch.Tensor
        Shape ``(P,)``, float64, in the order of ``pairs``.

    Examples
    --------
    On a path 0 – 1 – 2 – 3, two GCN layers cannot carry node 3's input to node 0:

    >>> import dgl, torch
    >>> from dgl_ssm import build_model
    >>> from dgl_ssm.analysis import sensitivity
    >>> g = dgl.add_self_loop(dgl.to_bidirected(dgl.graph(([0, 1, 2], [1, 2, 3]))))
    >>> _ = torch.manual_seed(0)
    >>> model = build_model("gcn", in_feats=3, hidden=8, out_feats=2, num_layers=2)
    >>> s = sensitivity(model, g, torch.randn(4, 3), [(0, 2), (0, 3)])
    >>> bool(s[0] > 0), s[1].item()
    (True, 0.0)
    """
    who = "sensitivity"
    if ord not in MATRIX_NORM_ORDERS:
        raise ValueError(f"{who}: ord must be 'fro' or 2, got {ord!r}.")
    check_features(graph, feat, who, call=f"{who}(model, graph, feat, pairs)", states=False)
    pairs = _node_pairs(pairs, who)
    _check_nodes([p for pair in pairs for p in pair], feat.shape[0], who, "nodes")
    sources = {}
    for v, u in pairs:
        sources.setdefault(v, []).append(u)
    blocks = {v: [] for v in sources}
    for v, _k, grad in _final_state_gradients(model, graph, feat, sources, edge_feat, who):
        blocks[v].append(grad[sources[v]].double())  # row k of the blocks of every u
    norms = {}
    for v, rows in blocks.items():
        block = torch.stack(rows, dim=1)  # (|u|, d_out, d_in)
        if ord == "fro":
            values = block.pow(2).sum(dim=(1, 2)).sqrt()
        else:
            values = torch.linalg.matrix_norm(block, ord=2)
        norms[v] = dict(zip(sources[v], values.tolist()))
    return torch.tensor([norms[v][u] for v, u in pairs], dtype=torch.float64)


def hop_distances(graph, targets, hop_field="hop"):
    r"""Hop distances :math:`d(u, v)` from every node :math:`u` to each target :math:`v`.

    The length of the shortest path :math:`u \to \dots \to v` along stored edge directions
    (the direction messages flow), by breadth-first search
    (:func:`scipy.sparse.csgraph.shortest_path`). On a graph rewired by
    :class:`~dgl_ssm.KHopTransform` only the hop-1 edges (``edata[hop_field] == 1``), i.e. the
    original graph, are used.

    Parameters
    ----------
    graph : dgl.DGLGraph
        A homogeneous graph, rewired or not.
    targets : sequence of int
        The nodes :math:`v` to measure distances to.
    hop_field : str, default "hop"
        The edge field of a rewired graph's hop distances.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(targets), n)``, float, ``inf`` where ``v`` cannot be reached from ``u``.

    Examples
    --------
    >>> import dgl
    >>> from dgl_ssm.analysis import hop_distances
    >>> g = dgl.to_bidirected(dgl.graph(([0, 1, 2], [1, 2, 3])))
    >>> hop_distances(g, [0]).tolist()
    [[0.0, 1.0, 2.0, 3.0]]
    """
    check_graph(graph, "hop_distances", "hop_distances(graph, targets)")
    check_homogeneous(graph, "hop_distances measures graphs of")
    base = one_hop_graph(graph, hop_field)
    n = base.num_nodes()
    targets = _check_nodes(targets, n, "hop_distances", "targets")
    src, dst = (t.cpu().numpy() for t in base.edges())
    # Row v of the reversed adjacency lists the nodes with an edge into v.
    reversed_adj = sp.csr_matrix((np.ones(len(src)), (dst, src)), shape=(n, n))
    return shortest_path(reversed_adj, directed=True, unweighted=True, indices=targets).reshape(
        len(targets), n
    )


def sensitivity_by_distance(
    model,
    graph,
    feat,
    targets=None,
    max_distance=None,
    *,
    distance_graph=None,
    edge_feat=None,
    num_targets=16,
    seed=0,
    hop_field=None,
):
    r"""Mean sensitivity :math:`\|\partial h_v^{(L)} / \partial x_u\|_F` per hop distance.

    For every target :math:`v` the sensitivities to all sources :math:`u` are computed
    (:math:`d_{\text{out}}` backward passes per target), grouped by the hop distance
    :math:`d(u, v)` (see :func:`hop_distances`) and averaged over all ``(v, u)`` pairs at
    that distance. Unreachable sources are left out.

    Parameters
    ----------
    model, graph, feat, edge_feat
        As for :func:`sensitivity`; for k-hop models ``graph`` is the rewired graph.
    targets : sequence of int, optional
        Target nodes. Default: every node if there are at most ``num_targets``, else
        ``num_targets`` nodes drawn without replacement with ``seed``.
    max_distance : int, optional
        Drop larger distances.
    distance_graph : dgl.DGLGraph, optional
        The graph distances are measured on. Default ``graph`` — or its hop-1 edges when it
        carries ``edata[hop_field]`` (k-hop rewired), so distances are those of the original
        graph, not of the rewiring.
    num_targets : int, default 16
        How many targets to draw when ``targets`` is not given (default 16).
    seed : int, default 0
        Seed of that draw (default 0).
    hop_field : str, optional
        The edge field of a k-hop rewired graph holding hop distances. Default: the model's
        own ``hop_field`` (``"hop"`` for a model that has none).

    Returns
    -------
    dict of int to float
        ``{distance: mean sensitivity}``, by increasing distance.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import build_model
    >>> from dgl_ssm.analysis import sensitivity_by_distance
    >>> ring = dgl.graph((torch.arange(8), (torch.arange(8) + 1) % 8))
    >>> g = dgl.add_self_loop(dgl.to_bidirected(ring))
    >>> _ = torch.manual_seed(0)
    >>> model = build_model("gcn", in_feats=3, hidden=8, out_feats=2, num_layers=3)
    >>> curve = sensitivity_by_distance(model, g, torch.randn(8, 3), targets=[0, 3])
    >>> sorted(curve), curve[0] > curve[3] > 0, curve[4]  # 3 layers reach 3 hops
    ([0, 1, 2, 3, 4], True, 0.0)
    """
    who = "sensitivity_by_distance"
    check_features(graph, feat, who, call=f"{who}(model, graph, feat)", states=False)
    n = feat.shape[0]
    num_targets = check_count(num_targets, "num_targets", who=who)
    if max_distance is not None:
        max_distance = check_count(max_distance, "max_distance", least=0, who=who)
    seed = check_count(seed, "seed", least=0, who=who)
    if targets is not None:
        given = targets
        iterable = isinstance(given, Iterable) and not isinstance(given, (str, bytes))
        targets = list(given) if iterable and getattr(given, "ndim", 1) != 0 else None
        if not targets:
            raise (TypeError if targets is None else ValueError)(
                f"{who}: targets must be a non-empty list of node ids (or None to draw "
                f"num_targets of them), got {given!r}."
            )
    if targets is None:
        if n <= num_targets:
            targets = list(range(n))
        else:
            rng = np.random.default_rng(seed)
            targets = sorted(rng.choice(n, size=num_targets, replace=False).tolist())
    targets = _check_nodes(targets, n, who, "targets")
    targets = list(dict.fromkeys(targets))
    base = graph if distance_graph is None else distance_graph
    check_graph(base, f"{who}'s distance_graph", f"{who}(model, graph, feat, distance_graph=g)")
    if base.num_nodes() != n:
        raise ValueError(
            f"{who}: distance_graph has {base.num_nodes()} nodes but the model's graph has "
            f"{n}; it must be the same graph before rewiring."
        )
    distances = hop_distances(base, targets, hop_field or hop_field_of(model))

    # Summed where the gradients are, and moved once: a copy per backward pass waits for it.
    squared = {v: torch.zeros(n, dtype=torch.float64, device=feat.device) for v in targets}
    for v, _k, grad in _final_state_gradients(model, graph, feat, targets, edge_feat, who):
        squared[v] += grad.double().pow(2).sum(dim=1)
    values = torch.stack([squared[v].sqrt() for v in targets]).cpu().numpy()

    reachable = np.isfinite(distances)
    if max_distance is not None:
        reachable &= distances <= max_distance
    hops = distances[reachable].astype(np.int64)
    sums = np.bincount(hops, weights=values[reachable])
    counts = np.bincount(hops)
    return {int(d): float(sums[d] / counts[d]) for d in np.nonzero(counts)[0]}
