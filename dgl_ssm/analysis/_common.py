"""Helpers shared by the diagnostics: checking a model, evaluation mode, the one-hop graph."""

from contextlib import contextmanager

import dgl
import torch
from torch import nn

from ..checks import check_graph


def model_layers(model, who):
    """Return ``model.layers`` or raise a ``TypeError`` that says what is needed."""
    layers = getattr(model, "layers", None)
    if not isinstance(layers, (nn.ModuleList, list, tuple)) or len(layers) == 0:
        raise TypeError(
            f"{who} needs a deep GNN with a non-empty `.layers` list of layer modules (a "
            f"dgl_ssm model such as build_model('gcn', ...)), got {type(model).__name__}"
            + (" without `.layers`." if layers is None else f" with layers={layers!r}.")
        )
    for index, layer in enumerate(layers):
        if not isinstance(layer, nn.Module):
            raise TypeError(
                f"{who}: model.layers[{index}] is a {type(layer).__name__}, not an "
                "nn.Module; forward hooks can only observe modules."
            )
    return layers


def check_dtype(dtype, who):
    """Refuse a working precision that is not a floating ``torch.dtype`` (or None)."""
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise TypeError(
            f"{who}: dtype must be a floating torch.dtype such as torch.float64 (or None for "
            f"the model's own), got {dtype!r}."
        )
    if dtype in (torch.float16, torch.bfloat16):  # DGL's CPU kernels lack them, and a
        raise TypeError(  # spectrum or energy in 3 significant digits says little
            f"{who}: dtype {dtype} is too coarse to measure in; use torch.float64 (the "
            "default) or torch.float32."
        )


@contextmanager
def evaluating(model, enabled=True):
    """Put every submodule in eval mode for the block, then restore each one's own flag."""
    if not enabled:
        yield model
        return
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def run_model(model, graph, feat, edge_feat=None):
    """``model(graph, feat)``, with ``edge_feat`` third when given (a model without edge
    features takes no third argument)."""
    return model(graph, feat) if edge_feat is None else model(graph, feat, edge_feat)


def call_parts(args, kwargs):
    """``(graph, feat, edge_feat, other keyword arguments)`` of a layer's call, as a forward
    pre-hook registered ``with_kwargs=True`` sees it."""
    kwargs = dict(kwargs)
    graph = args[0] if args else kwargs.pop("graph")
    feat = args[1] if len(args) > 1 else kwargs.pop("feat")
    edge_feat = args[2] if len(args) > 2 else kwargs.pop("edge_feat", None)
    return graph, feat, edge_feat, kwargs


def node_state(value):
    """The node states of a layer's output: ``h`` of an ``(h, e)`` tuple, else the tensor."""
    if isinstance(value, tuple):
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"Expected a layer to return a tensor of node states (or an (h, e) tuple), got "
            f"{type(value).__name__}."
        )
    return value.flatten(1) if value.dim() == 3 else value  # raw multi-head conv output


def hop_field_of(model):
    """The edge field where ``model`` reads a k-hop graph's hop distances (its ``hop_field``;
    ``"hop"``, :class:`~dgl_ssm.KHopTransform`'s default, for a model that has none)."""
    return getattr(model, "hop_field", "hop")


def one_hop_graph(graph, hop_field="hop"):
    """The graph's original edges: for a graph rewired by :class:`~dgl_ssm.KHopTransform`
    (hop distances in ``edata[hop_field]``), only the hop-1 edges; otherwise the graph.

    Parameters
    ----------
    graph : dgl.DGLGraph
        A graph, rewired or not.
    hop_field : str, default "hop"
        The edge field of the hop distances.

    Returns
    -------
    dgl.DGLGraph
        The hop-1 subgraph (the same nodes), or ``graph`` itself when it has no such field.

    Examples
    --------
    >>> import dgl
    >>> from dgl_ssm import KHopTransform
    >>> from dgl_ssm.analysis import one_hop_graph
    >>> path = dgl.to_bidirected(dgl.graph(([0, 1, 2], [1, 2, 3])))
    >>> rewired = KHopTransform(k=3)(path)
    >>> rewired.num_edges(), one_hop_graph(rewired).num_edges()
    (12, 6)
    """
    check_graph(graph, "one_hop_graph", "one_hop_graph(graph)")
    if hop_field not in graph.edata:
        return graph
    # In the graph's own id type: KHopTransform keeps int32 graphs int32.
    keep = torch.nonzero(graph.edata[hop_field] == 1).view(-1).to(graph.idtype)
    return dgl.edge_subgraph(graph, keep, relabel_nodes=False, store_ids=False)
