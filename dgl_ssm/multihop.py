"""Hop selection for kGNN models: which hop graph each layer of a k-hop model reads.

The input graph has been rewired by :class:`dgl_ssm.KHopTransform`, so each edge carries its
hop distance. Two modes (paper §3):

- ``"exact"``: layer ℓ aggregates only over nodes at distance exactly ℓ, with self loops
  added so the GCN normalisation is that of ``A_ℓ + I``. Past ``K`` (more layers than hops)
  the choice ``past_max_hop`` applies: ``"empty"`` (default, the paper's and the known
  re-implementation's reading: hop ℓ > K is empty, the layer sees its own node only) or
  ``"repeat"`` (every layer past K reads hop K again).
- ``"cumulative"`` (DRew): layer ℓ (from ``H^(ℓ−1)`` to ``H^(ℓ)``) sums a separate conv per
  hop ``k ≤ min(ℓ, K)``; with a delay ν, hop k reads the delayed state ``H^(ℓ−1−τ(k))``
  (``H^(0)`` at the earliest), ``τ(k) = max(0, k − ν)``.
"""

import functools
import itertools

import dgl
import torch
from dgl import DGLError
from torch import nn

from .checks import (
    check_choice,
    check_count,
    check_graph,
    check_homogeneous,
    check_node_rows,
    shape_errors_named,
)
from .khop import radius_field
from .reset import reset_submodules

HOP_MODES = ("exact", "cumulative")
PAST_MAX_HOP = ("empty", "repeat")


# Hop graphs of a rewired graph are built once and kept on the graph object itself (full-batch
# training calls the model on the same graph every epoch), so they live and die with it.
_CACHE_ATTRIBUTE = "_dgl_ssm_hop_graphs"


def hop_graphs(graph, max_hop, hop_field="hop"):
    """Split a rewired graph into ``[G_1, …, G_K]``: the hop-k edges plus one self loop a node
    (the graph's own self loops, whatever their hop label, are distance 0 and left out).

    The result is cached on the graph (for its hop tensor as it is: re-assigning or editing
    ``edata[hop_field]`` invalidates it). When the graph records the radius ``k`` of the
    :class:`~dgl_ssm.KHopTransform` that rewired it (``ndata[hop_field + "_radius"]``),
    ``max_hop > k`` is refused: hops ``k+1..K`` were never computed, so they would be empty
    whatever the graph.

    Parameters
    ----------
    graph : dgl.DGLGraph
        A graph rewired by :class:`~dgl_ssm.KHopTransform` (hop distances in
        ``edata[hop_field]``).
    max_hop : int
        K, the number of hop graphs.
    hop_field : str, default "hop"
        The edge field holding the hop distances.

    Returns
    -------
    list of dgl.DGLGraph
        ``K`` graphs on the same nodes; graph ``k − 1`` holds the edges at exactly ``k`` hops.

    Raises
    ------
    dgl.DGLError
        When the graph has no ``edata[hop_field]``, labels that are not one number per edge,
        no edge between two nodes labelled with a hop count (an integer ≥ 1: every hop graph
        would hold self loops only), or a recorded radius below ``max_hop``.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import KHopTransform, hop_graphs
    >>> path = dgl.to_bidirected(dgl.graph(([0, 1, 2], [1, 2, 3])))
    >>> [g.num_edges() for g in hop_graphs(KHopTransform(k=3)(path), 3)]  # + 4 self loops
    [10, 8, 6]
    """
    check_graph(graph, "hop_graphs", "hop_graphs(graph, max_hop)")
    check_homogeneous(graph, "hop_graphs splits graphs of")
    max_hop = check_count(max_hop, "max_hop", who="hop_graphs")
    return _hop_graphs_and_loops(graph, max_hop, hop_field, for_model=False)[:max_hop]


def layer_hop_graphs(
    graph, num_layers, max_hop, hop_mode="exact", past_max_hop="empty", hop_field="hop"
):
    """The graph (``"exact"``) or list of hop graphs (``"cumulative"``) of each layer.

    ``"exact"``: layer ℓ reads hop ℓ for ℓ ≤ K; past K, ``past_max_hop="empty"`` gives the
    self loops only (hop ℓ of a graph rewired with radius K, the paper's reading) and
    ``"repeat"`` gives hop K again. ``"cumulative"``: layer ℓ reads hops ``1..min(ℓ, K)``.
    """
    check_choice("past_max_hop", past_max_hop, PAST_MAX_HOP)
    # Either mode reads hops 1..min(L, K) only: a graph rewired that far is enough.
    graphs = _hop_graphs_and_loops(graph, max_hop, hop_field, read=min(num_layers, max_hop))
    per_hop, loops_only = graphs[:max_hop], graphs[max_hop]
    if hop_mode == "cumulative":
        return [per_hop[: min(i + 1, max_hop)] for i in range(num_layers)]
    past = loops_only if past_max_hop == "empty" else per_hop[max_hop - 1]
    return [per_hop[i] if i < max_hop else past for i in range(num_layers)]


def _hop_graphs_and_loops(graph, max_hop, hop_field, read=None, for_model=True):
    """``[G_1, …, G_K, G_loops]``, cached; ``G_loops`` holds one self loop a node only.
    ``read``: the largest hop the caller reads (default K), which the graph must hold.
    ``for_model``: errors give a model's fixes (else :func:`hop_graphs`'s)."""
    if hop_field not in graph.edata:
        # KHopTransform(hop_field=f) leaves its radius in ndata[f + "_radius"]: a graph
        # rewired under another name says which.
        other = [f for f in graph.edata.keys() if radius_field(f) in graph.ndata]
        who = "This k-hop model" if for_model else "hop_graphs"
        if not other:
            fix = f"Rewire it first: `g = dgl_ssm.KHopTransform(k={max_hop})(g)`."
        elif for_model:
            fix = (f"It was rewired with hop_field={other[0]!r}: build the model with "
                   f"hop_field={other[0]!r}.")  # fmt: skip
        else:
            fix = (f"It was rewired with hop_field={other[0]!r}: call "
                   f"hop_graphs(g, {max_hop}, hop_field={other[0]!r}).")  # fmt: skip
        raise DGLError(
            f"{who} needs edge hop distances in graph.edata[{hop_field!r}], but the "
            f"graph has none. {fix}"
        )
    hops = graph.edata[hop_field]
    if hops.dim() != 1 or not (hops.is_floating_point() or _is_integer(hops)):
        raise DGLError(
            f"graph.edata[{hop_field!r}] must hold one hop count per edge (a 1-D integer "
            f"tensor of {graph.num_edges()} entries), got {hops.dtype} of shape "
            f"{tuple(hops.shape)}. KHopTransform writes them so; labels of shape (E, 1) "
            f"become one with g.edata[{hop_field!r}] = g.edata[{hop_field!r}].squeeze(1)."
        )
    radius = (
        graph.ndata[radius_field(hop_field)] if radius_field(hop_field) in graph.ndata else None
    )
    # The hop and radius tensors themselves (ndata and edata return the stored objects), their
    # in-place edit counts, and what else could change the split.
    read = max_hop if read is None else read
    tensors = (hops,) if radius is None else (hops, radius)
    # Inference tensors (made under torch.inference_mode()) keep no edit count: never cached.
    cacheable = not any(t.is_inference() for t in tensors)
    versions = tuple(t._version for t in tensors) if cacheable else None
    key = (max_hop, read, hop_field, versions, graph.num_nodes(), graph.num_edges(),
           str(graph.device))  # fmt: skip
    cached = getattr(graph, _CACHE_ATTRIBUTE, None)
    if cached is None or cached[0] is not hops or cached[1] is not radius or cached[2] != key:
        # Checked only here: reading the radius waits for the GPU, which a training loop's
        # forward on the same graph should not.
        _check_radius(graph, read, hop_field, for_model)
        cached = (hops, radius, key, _split_hops(graph, hops, max_hop, hop_field))
        if cacheable:
            setattr(graph, _CACHE_ATTRIBUTE, cached)
    return cached[3]


def _check_radius(graph, read, hop_field, for_model=True):
    field = radius_field(hop_field)
    if field not in graph.ndata or graph.num_nodes() == 0:
        return  # rewired some other way: the radius is not known
    radius = int(graph.ndata[field].min())
    if read > radius:
        if for_model:
            reads = f"This k-hop model reads hops 1..{read} (up to max_hop, default num_layers)"
            other_fix = (f"build the model with max_hop={radius} (layers past it then follow "
                         "past_max_hop)")  # fmt: skip
        else:
            reads = f"hop_graphs was asked for hops 1..{read}"
            other_fix = f"ask for hop_graphs(g, {radius})"
        raise DGLError(
            f"{reads}, but "
            f"the graph was rewired by KHopTransform(k={radius}), which stores no hop above "
            f"{radius}: hops {radius + 1}..{read} would silently be empty. Rewire with "
            f"`KHopTransform(k={read})`, or {other_fix}."
        )


def _is_integer(tensor):
    return not tensor.is_floating_point() and not tensor.is_complex() and tensor.dtype != torch.bool


def _split_hops(graph, hops, max_hop, hop_field):
    src, dst = graph.edges()
    nodes = torch.arange(graph.num_nodes(), device=graph.device)
    # A self loop of the rewired graph is a node at distance 0, whatever its label
    # (dgl.add_self_loop after the rewiring labels them 1): each hop graph gets one a node.
    # A label that is no hop count (negative, fractional) matches no hop, and is left out.
    # (inf rounds to itself, and .long() would make it negative)
    whole = (hops == hops.round()) & torch.isfinite(hops) if hops.is_floating_point() else True
    counts = (hops >= 1) & whole
    between = src != dst
    # Hops past K are read by no layer: one bin holds them all, however large the label.
    clamped = hops.clamp(max=max_hop + 1).long()
    labels, hops = hops, torch.where(between & counts, clamped, 0)
    # One stable sort by hop, then a slice a hop (its edges in their order): a mask a hop would
    # pass over every edge K times, and a new batch of graphs is split every step.
    order = torch.argsort(hops, stable=True)
    src, dst = src[order], dst[order]
    sizes = torch.bincount(hops, minlength=max_hop + 1).tolist()
    if sizes[0] == len(hops) and bool(between.any()):  # (hops above K are fine: a subgraph's)
        found = torch.unique(labels[between]).tolist()
        shown = ", ".join(map(str, found[:5])) + (", …" if len(found) > 5 else "")
        raise DGLError(
            f"No edge between two nodes carries a hop count (an integer ≥ 1) in "
            f"graph.edata[{hop_field!r}] (labels found: {shown}), so every hop graph would "
            "hold self loops only. Rewire the original graph with "
            f"dgl_ssm.KHopTransform(k={max_hop}), which labels each edge with its hop distance."
        )
    ends = [0, *itertools.accumulate(sizes)]
    graphs = []
    for k in range(1, max_hop + 2):
        start, end = (ends[k], ends[k + 1]) if k <= max_hop else (0, 0)
        graphs.append(
            dgl.graph(
                (torch.cat([src[start:end], nodes]), torch.cat([dst[start:end], nodes])),
                num_nodes=graph.num_nodes(),
            )
        )
    return graphs


def _check_states(states, num_nodes, name, like=None):
    """``states`` when they are a float ``(num_nodes, d)`` tensor (of ``like``'s shape, when
    given); else ``TypeError`` or ``ValueError`` naming ``name``."""
    check_node_rows(states, num_nodes, "MultiHopConv", name)
    if like is not None and states.shape != like.shape:
        raise ValueError(
            f"MultiHopConv: {name} has shape {tuple(states.shape)}, but the layer's states "
            f"(feat) have shape {tuple(like.shape)}: every state in history has that shape."
        )
    return states


def _conv_failed(k, conv, states):
    """What :func:`shape_errors_named` says when hop ``k``'s conv does not fit the states."""
    width = states.shape[1] if states.dim() == 2 else "d"
    return (
        f"MultiHopConv's hop-{k} {type(conv).__name__} failed on states of shape "
        f"{tuple(states.shape)}",
        f"Pass states of the width the hop convs were built for (each maps d to d), or "
        f"build them for width {width}.",
    )


class MultiHopConv(nn.Module):
    """The cumulative (DRew) aggregation of one layer: a sum of one conv per hop.

    Called as ``conv(graphs, feat, history=states)`` where ``graphs[k-1]`` is the hop-k graph
    and ``states[j]`` is ``H^(j)`` (``states[layer_index]`` is this layer's input).

    Parameters
    ----------
    convs : list of nn.Module
        ``convs[k-1]`` aggregates hop ``k``; there are ``min(ℓ, K)`` of them at layer ℓ.
    layer_index : int
        0-based index ℓ−1 of the layer this conv belongs to.
    delay : int, optional
        ν of DRew's delay ``τ(k) = max(0, k − ν)``; ``None`` reads the current state for every
        hop.

    Examples
    --------
    Layer 2 (ℓ = 2) of a cumulative model sums a conv over hop 1 and one over hop 2:

    >>> import dgl, torch
    >>> from dgl.nn import GraphConv
    >>> from dgl_ssm import KHopTransform, MultiHopConv, hop_graphs
    >>> ring = dgl.to_bidirected(dgl.graph((torch.arange(8), (torch.arange(8) + 1) % 8)))
    >>> graphs = hop_graphs(KHopTransform(k=2)(ring), 2)
    >>> conv = MultiHopConv([GraphConv(4, 4), GraphConv(4, 4)], layer_index=1)
    >>> states = [torch.randn(8, 4), torch.randn(8, 4)]  # H⁽⁰⁾, H⁽¹⁾
    >>> conv(graphs, states[1], history=states).shape
    torch.Size([8, 4])
    """

    takes_graph_list = True  # SSMLayer then passes its list of hop graphs on unchecked

    def __init__(self, convs, layer_index, delay=None):
        super().__init__()
        convs = list(convs)
        if not convs or not all(isinstance(conv, nn.Module) for conv in convs):
            raise TypeError(
                "MultiHopConv needs a non-empty list of convs (nn.Modules), one per hop 1..K; "
                f"got {convs!r}."
            )
        self.convs = nn.ModuleList(convs)
        self.layer_index = check_count(layer_index, "layer_index", least=0, who="MultiHopConv")
        self.delay = None if delay is None else check_count(delay, "delay", 1, "MultiHopConv")

    resets_submodules = True  # (its reset_parameters walks them: see reset_submodules)

    def reset_parameters(self):
        """Reinitialise each hop's conv as when it was built."""
        reset_submodules(self)

    def forward(self, graphs, feat, history=None):
        """The sum over hops ``k`` of ``convs[k-1](graphs[k-1], state)``, each hop reading the
        current ``feat`` or (with a delay) an earlier state of ``history``."""
        if not isinstance(graphs, (list, tuple)) or len(graphs) < len(self.convs):
            got = f"{len(graphs)} graphs" if isinstance(graphs, (list, tuple)) else "one graph"
            raise TypeError(
                f"MultiHopConv reads hops 1..{len(self.convs)}: pass a list of that many hop "
                f"graphs (dgl_ssm.hop_graphs(g, {len(self.convs)})), got {got}."
            )
        for graph in graphs:
            check_graph(graph, "MultiHopConv", "conv(graphs, feat, history=states)")
        num_nodes = graphs[0].num_nodes()
        _check_states(feat, num_nodes, "feat")
        delayed = self.delay is not None and len(self.convs) > self.delay
        if delayed and (history is None or len(history) <= self.layer_index):
            raise ValueError(
                f"MultiHopConv of layer index {self.layer_index} with delay {self.delay} reads "
                f"past states: pass history, the states H(0) … H({self.layer_index}) (got "
                f"{'none' if history is None else f'{len(history)} states'})."
            )
        out = 0
        for k, conv in enumerate(self.convs, start=1):
            lag = 0 if self.delay is None else max(0, k - self.delay)
            step = max(0, self.layer_index - lag)
            source = (
                feat
                if lag == 0
                else _check_states(history[step], num_nodes, f"history[{step}]", feat)
            )
            with shape_errors_named(functools.partial(_conv_failed, k, conv, source)):
                out = out + conv(graphs[k - 1], source)
        return out

    def extra_repr(self):
        return f"hops=1..{len(self.convs)}, delay={self.delay}"
