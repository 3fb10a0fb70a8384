"""One wrapper that turns any DGL conv ``d → d`` into a (GNN-SSM or plain) deep layer."""

import inspect
from contextlib import nullcontext

import torch
from dgl import DGLGraph
from torch import nn

from .checks import (
    check_choice,
    check_count,
    check_graph,
    check_homogeneous,
    check_real,
    shape_errors_named,
)
from .reset import remember_initial_values, reset_submodules
from .ssm import SSMUpdate, autocasting

NORMS = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


def make_norm(norm, dim):
    """``None`` → identity; ``"batch"`` / ``"layer"`` → BatchNorm1d / LayerNorm of width dim."""
    if norm is None or norm == "none":
        return nn.Identity()
    return NORMS[check_choice("norm", norm, NORMS, also=", or None")](dim)


class SSMLayer(nn.Module):
    r"""Wrap a message-passing conv ``F`` into a deep-GNN layer with a state update.

    .. math::
        H^{(\ell+1)} = \mathrm{norm}\Big( H^{(\ell)} \Lambda^\top
            + \sigma\big(F(G, \mathrm{dropout}(H^{(\ell)}))\big) B^\top \Big)

    The conv is any DGL module called as ``conv(graph, feat)`` that maps width ``d`` to ``d``:
    ``GraphConv``, ``GINConv``, ``SAGEConv``, ``GATConv`` (its ``(N, heads, d/heads)`` output
    is concatenated to ``(N, d)``) and convs that take and return edge features such as
    ``GatedGCNConv`` (called as ``conv(graph, feat, edge_feat)``, returning ``(h, e)``; the
    returned edge features pass through σ and go on to the next layer). A conv that reads
    edge features but returns node features only (``GINEConv``, ``NNConv``, ``GMMConv``'s
    ``pseudo``) passes the edge features on unchanged.

    The update rule is a module: by default :class:`~dgl_ssm.SSMUpdate` (GNN-SSM). Passing
    :class:`~dgl_ssm.PlainUpdate` gives the ordinary layer ``σ(F(G, H))``, which is how every
    plain twin shares this one code path.

    Parameters
    ----------
    conv : torch.nn.Module
        The message-passing layer ``F``.
    dim : int
        Feature width ``d`` (input and output of the conv).
    update : torch.nn.Module, optional
        The state update; default ``SSMUpdate(dim)`` (Λ = I, B = 0.1·I, relu).
    norm : {None, "batch", "layer"}, default None
        Normalisation after the update.
    dropout : float, default 0.0
        Dropout on the conv's input (the state path itself is not dropped).

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl.nn import GraphConv
    >>> from dgl_ssm import SSMLayer
    >>> g = dgl.add_self_loop(dgl.graph(([0, 1, 2], [1, 2, 0])))
    >>> layer = SSMLayer(GraphConv(8, 8), dim=8)
    >>> layer(g, torch.randn(3, 8)).shape
    torch.Size([3, 8])
    """

    def __init__(self, conv, dim, update=None, norm=None, dropout=0.0):
        super().__init__()
        dim = check_count(dim, "dim", who="SSMLayer")
        check_real(dropout, "dropout", "a number in [0, 1)", lambda p: 0 <= p < 1, "SSMLayer")
        for name, module in (("conv", conv), ("update", update)):
            if module is not None and not isinstance(module, nn.Module):
                raise TypeError(
                    f"SSMLayer: {name} must be a torch.nn.Module (e.g. dgl.nn.GraphConv({dim}, "
                    f"{dim}) as conv, dgl_ssm.SSMUpdate({dim}) as update), got "
                    f"{type(module).__name__}. For a backbone by name, use "
                    "dgl_ssm.build_model(name, ...)."
                )
        if isinstance(update, SSMUpdate) and update.dim != dim:
            raise ValueError(
                f"SSMLayer: the update acts on width {update.dim} but the layer has dim={dim}; "
                f"build both with the conv's width (e.g. SSMUpdate({dim}))."
            )
        self.conv = conv
        self.dim = dim
        self._third_argument, self._needs_third = _third_argument(conv)
        self.update = SSMUpdate(dim) if update is None else update
        self.norm = make_norm(norm, dim)
        self.dropout = nn.Dropout(dropout)
        remember_initial_values(self)

    resets_submodules = True  # (its reset_parameters walks them: see reset_submodules)

    def reset_parameters(self):
        """Reinitialise the conv and the norm as when they were built. Λ and B stay as they
        are: a calibration fitted them to the old weights, so calibrate again after a reset."""
        reset_submodules(self)

    def forward(self, graph, feat, edge_feat=None, **conv_kwargs):
        """Apply one layer.

        Returns the new node states, or ``(node states, edge features)`` when ``edge_feat``
        is given (a conv that returns node features only passes them on unchanged).
        """
        self._check_call(graph, feat, edge_feat, conv_kwargs)
        with graph.local_scope() if hasattr(graph, "local_scope") else nullcontext():
            conv_in = self.dropout(feat)
            with shape_errors_named(lambda: self._conv_call_named(feat, edge_feat)):
                if edge_feat is None:
                    out = self.conv(graph, conv_in, **conv_kwargs)
                else:
                    out = self.conv(graph, conv_in, edge_feat, **conv_kwargs)
            if isinstance(out, tuple) and edge_feat is None:
                raise TypeError(
                    f"{type(self.conv).__name__} returned {len(out)} outputs (e.g. attention, "
                    "with get_attention=True), and an SSM layer returns only its new state. "
                    "To read them, call the conv on the layer's input: "
                    "layer.conv(graph, feat, get_attention=True), with feat from "
                    "dgl_ssm.analysis.layer_inputs(model, graph, feat)[i].feat in a model."
                )
            node_out, edge_out = out if isinstance(out, tuple) else (out, None)
            node_out = self._checked_output(node_out, edge_out, feat, edge_feat)
            new_state = self.norm(self.update(feat, node_out))
            if edge_feat is None:
                return new_state
            if edge_out is None:  # the conv read them and made none: they go on as they are
                return new_state, edge_feat
            if edge_out.dim() == 3:  # multi-head edge outputs (EGATConv), as the nodes'
                edge_out = edge_out.flatten(1)
            return new_state, self.update.activation(edge_out)

    def _conv_call_named(self, feat, edge_feat):
        """What :func:`shape_errors_named` says when the conv's widths do not fit its input
        (a conv built for another width than the layer's, edge features of another width)."""
        given = f"node states of shape {tuple(feat.shape)}"
        fix = (f"SSMLayer(conv, dim={self.dim}) needs a conv that takes and returns width "
               f"{self.dim} (e.g. GraphConv({self.dim}, {self.dim}))")  # fmt: skip
        if edge_feat is not None:
            given += f" and edge features of shape {tuple(edge_feat.shape)}"
            fix += ", and edge features of the width it was built for"
        return f"SSMLayer's {type(self.conv).__name__} failed on {given}", fix + "."

    def _check_call(self, graph, feat, edge_feat, conv_kwargs):
        """Refuse arguments the conv would fail on deep inside, or silently misread."""
        if not isinstance(feat, torch.Tensor) or isinstance(graph, torch.Tensor):
            raise TypeError(
                f"SSMLayer is called as layer(graph, feat), got ({type(graph).__name__}, "
                f"{type(feat).__name__})."
            )
        if not getattr(self.conv, "takes_graph_list", False):  # MultiHopConv's hop graphs
            check_graph(graph, "SSMLayer", "layer(graph, feat)")
        if feat.dim() != 2 or feat.shape[1] != self.dim:
            raise ValueError(
                f"SSMLayer of width {self.dim} got node states of shape {tuple(feat.shape)}; "
                f"pass a (num_nodes, {self.dim}) tensor. Inside a model, a layer's own input is "
                "dgl_ssm.analysis.layer_inputs(model, graph, feat)[i].feat."
            )
        if isinstance(graph, DGLGraph):
            check_homogeneous(graph, "SSMLayer takes graphs of")
            if graph.num_nodes() != feat.shape[0]:
                raise ValueError(
                    f"SSMLayer got {feat.shape[0]} rows of node states for a graph of "
                    f"{graph.num_nodes()} nodes; pass one row per node."
                )
            edge_features = edge_feat if self._third_argument in _EDGE_FEATURES else None
            for what, per_edge in (("edge features", edge_features),  # (else refused below)
                                   ("edge weights", conv_kwargs.get("edge_weight"))):  # fmt: skip
                if per_edge is None:
                    continue
                if not isinstance(per_edge, torch.Tensor):
                    raise TypeError(f"SSMLayer's {what} must be a torch.Tensor, got "
                                    f"{type(per_edge).__name__}.")  # fmt: skip
                if per_edge.shape[:1] != (graph.num_edges(),):
                    raise ValueError(
                        f"SSMLayer got {what} of shape {tuple(per_edge.shape)} for a graph of "
                        f"{graph.num_edges()} edges; pass one row per edge, in the graph's edge "
                        "order."
                    )
        if not feat.is_floating_point():
            raise TypeError(
                f"SSMLayer got node states of dtype {feat.dtype}; states are floating point. "
                "Convert them with feat.float()."
            )
        weight = next(self.conv.parameters(), None)
        if (
            weight is not None
            and weight.is_floating_point()
            and feat.dtype != weight.dtype
            and not autocasting(feat.device)  # mixed precision: the casts are autocast's
        ):
            raise TypeError(
                f"SSMLayer got node states of dtype {feat.dtype}, but the conv's weights are "
                f"{weight.dtype}: convert one to the other (feat.to({weight.dtype}) or "
                f"layer.to({feat.dtype}))."
            )
        if edge_feat is None and self._needs_third and self._third_argument not in conv_kwargs:
            raise TypeError(
                f"{type(self.conv).__name__} needs a third argument, {self._third_argument!r}: "
                "edge features go third, layer(graph, feat, edge_feat), or by name to the "
                "diagnostics that run the layer (top_singular_values(layer, graph, feat, "
                "edge_feat=e), …) (inside a model, a layer's own are dgl_ssm.analysis."
                "layer_inputs(model, graph, feat, edge_feat)[i].edge_feat); anything else by "
                f"name, layer(graph, feat, {self._third_argument}=...)."
            )
        if edge_feat is not None and self._third_argument in _NOT_EDGE_FEATURES:
            raise TypeError(
                f"{type(self.conv).__name__} takes no edge features: its third argument is "
                f"{self._third_argument!r}. Call layer(graph, feat); conv options go by name "
                f"(layer(graph, feat, edge_weight=w) for convs that take edge weights)."
            )

    def _checked_output(self, node_out, edge_out, feat, edge_feat):
        """The conv's node output as ``(N, d)`` (heads flattened), once it fits the state."""
        if (
            edge_feat is not None
            and edge_out is None
            and self._third_argument not in _EDGE_FEATURES
        ):
            raise TypeError(
                f"{type(self.conv).__name__} returned no edge features, so it took "
                f"edge_feat as its {self._third_argument!r}: SSMLayer's third argument is "
                "edge features, for convs that return (h, e). Pass other conv arguments "
                f"by name: layer(graph, feat, {self._third_argument}=...)."
            )
        if node_out.dim() == 3:  # multi-head convs: (N, heads, d/heads) → (N, d)
            node_out = node_out.flatten(1)
        if node_out.shape != feat.shape:
            raise ValueError(
                f"{type(self.conv).__name__} returned node features of shape "
                f"{tuple(node_out.shape)}, but the layer state has shape "
                f"{tuple(feat.shape)}: the wrapped conv must map width {self.dim} to "
                f"{self.dim} (for multi-head convs, heads × out_feats = {self.dim})."
            )
        return node_out

    def extra_repr(self):
        return f"dim={self.dim}"


# Third parameters of DGL's convs that are not edge features: SSMLayer would pass edge_feat
# there, and GraphConv would take it as its weight, SAGEConv and GINConv as edge weights,
# ChebConv as λ_max, RelGraphConv as edge types, EGNNConv as coordinates.
_NOT_EDGE_FEATURES = (
    "weight", "edge_weight", "get_attention", "lambda_max", "etypes", "coord_feat"
)  # fmt: skip

# Third parameters of DGL's convs that are edge features even where the conv returns node
# features only (GINEConv, PNAConv, EdgeGATConv, CFConv, NNConv, GMMConv): the edge features
# then go on to the next layer unchanged.
_EDGE_FEATURES = ("edge_feat", "edge_feats", "efeat", "efeats", "pseudo")


def _third_argument(conv):
    """The name of ``conv.forward``'s parameter after (graph, feat) (or None), and whether
    it must be given (no default)."""
    try:
        parameters = list(inspect.signature(conv.forward).parameters.values())
    except (TypeError, ValueError):
        return None, False
    if len(parameters) < 3 or parameters[2].kind not in _POSITIONAL:
        return None, False
    return parameters[2].name, parameters[2].default is inspect.Parameter.empty


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
