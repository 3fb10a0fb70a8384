r"""The node states a deep GNN passes from layer to layer, observed with forward hooks.

A :class:`~dgl_ssm.DeepGNN` computes

.. math::
    H^{(0)} = \mathrm{encoder}(X), \qquad H^{(\ell)} = \mathrm{layer}_\ell(G_\ell,
    H^{(\ell-1)}), \quad \ell = 1, \dots, L,

and the diagnostics of this package read :math:`H^{(0)}, \dots, H^{(L)}` without touching the
model's code: hooks on ``model.layers`` record them and are removed afterwards, even when the
forward pass fails.
"""

from contextlib import contextmanager
from typing import Any, NamedTuple

import torch

from ._common import call_parts, evaluating, model_layers, node_state, run_model

__all__ = ["LayerCall", "layer_inputs", "recorded_states"]


@contextmanager
def recorded_states(model, include_input=True, who="recorded_states"):
    r"""Record the node states of every forward pass run inside the block.

    Yields a list that fills up with :math:`H^{(0)}` (the input of the first layer, i.e. the
    encoder output; only with ``include_input``) and then every layer's output
    :math:`H^{(1)}, \dots, H^{(L)}` — the very tensors the model uses, so they stay connected
    to the autograd graph. Layers that return ``(h, e)`` contribute ``h``. A checkpointed
    model (``checkpoint=True``) runs its layers again in its backward pass, and those re-runs
    append their states too: with ``backward()`` inside the block, the first ``L + 1`` (or
    ``L``) entries are still the forward pass's.

    Parameters
    ----------
    model : torch.nn.Module
        A deep GNN with a ``.layers`` list (any dgl_ssm model).
    include_input : bool, default True
        Also record :math:`H^{(0)}`.
    who : str, default "recorded_states"
        The name that error messages give the caller (a diagnostic built on this one).

    Yields
    ------
    list of torch.Tensor
        The states, filled in as the block runs the model (``L`` or ``L + 1`` tensors a
        forward pass).

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import build_model
    >>> from dgl_ssm.analysis import recorded_states
    >>> g = dgl.add_self_loop(dgl.rand_graph(6, 12))
    >>> model = build_model("gcn_ssm", in_feats=3, hidden=4, out_feats=2, num_layers=5)
    >>> with recorded_states(model) as states:
    ...     _ = model(g, torch.randn(6, 3))
    >>> len(states), tuple(states[-1].shape)
    (6, (6, 4))
    """
    layers = model_layers(model, who)
    states = []

    def keep_input(_module, args, kwargs):
        states.append(node_state(args[1] if len(args) > 1 else kwargs["feat"]))

    def keep_output(_module, _args, output):
        states.append(node_state(output))

    handles = []
    try:
        if include_input:
            handles.append(layers[0].register_forward_pre_hook(keep_input, with_kwargs=True))
        handles.extend(layer.register_forward_hook(keep_output) for layer in layers)
        yield states
    finally:
        for handle in handles:
            handle.remove()


class LayerCall(NamedTuple):
    r"""What one layer was called with: ``layer(graph, feat[, edge_feat], **kwargs)``, as
    :func:`layer_inputs` records it (``graph`` is a list of hop graphs for a cumulative k-hop
    layer).

    Attributes
    ----------
    graph : dgl.DGLGraph or list of dgl.DGLGraph
        The graph the layer read (its hop graph, or hop graphs, in a k-hop model).
    feat : torch.Tensor
        Its input states :math:`H^{(\ell-1)}`.
    edge_feat : torch.Tensor or None
        Its edge features (GatedGCN), else None.
    kwargs : dict
        Its other keyword arguments (e.g. ``edge_weight``, ``history``).

    Examples
    --------
    Re-running a recorded call gives the layer's output:

    >>> import dgl, torch
    >>> from dgl_ssm import GCNSSM
    >>> from dgl_ssm.analysis import layer_inputs
    >>> g = dgl.add_self_loop(dgl.graph(([0, 1, 2], [1, 2, 0])))
    >>> model = GCNSSM(4, 8, 2, num_layers=2).eval()
    >>> call = layer_inputs(model, g, torch.randn(3, 4))[1]
    >>> model.layers[1](call.graph, call.feat, **call.kwargs).shape
    torch.Size([3, 8])
    """

    graph: Any
    feat: torch.Tensor
    edge_feat: torch.Tensor | None
    kwargs: dict


def layer_inputs(model, graph, feat, edge_feat=None):
    r"""The arguments every layer of ``model`` receives in one forward pass (eval mode).

    Use them to linearise a layer where the model actually puts it:
    ``dense_layer_jacobian(model.layers[i], *call[:3], layer_kwargs=call.kwargs)``. This also
    gives each layer its own graph in k-hop models (the hop graph it reads) and the edge
    features of edge-feature backbones (GatedGCN).

    Parameters
    ----------
    model : torch.nn.Module
        A deep GNN with ``.layers``.
    graph, feat, edge_feat
        The model's inputs, as for ``model(graph, feat, edge_feat)``.

    Returns
    -------
    list of LayerCall
        One per layer, with detached tensors; ``kwargs`` holds extra keyword arguments (the
        state history of cumulative k-hop layers).

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import build_model
    >>> from dgl_ssm.analysis import layer_inputs
    >>> g = dgl.add_self_loop(dgl.rand_graph(6, 12))
    >>> model = build_model("gcn", in_feats=3, hidden=4, out_feats=2, num_layers=3)
    >>> calls = layer_inputs(model, g, torch.randn(6, 3))
    >>> len(calls), tuple(calls[0].feat.shape), calls[0].edge_feat is None
    (3, (6, 4), True)
    """
    layers = model_layers(model, "layer_inputs")
    calls = []

    def keep(_module, args, kwargs):
        layer_graph, state, edges, kwargs = call_parts(args, kwargs)
        extra = {k: list(v) if isinstance(v, list) else v for k, v in kwargs.items()}
        calls.append(
            LayerCall(layer_graph, state.detach(), None if edges is None else edges.detach(), extra)
        )

    handles = [layer.register_forward_pre_hook(keep, with_kwargs=True) for layer in layers]
    try:
        with evaluating(model), torch.no_grad():
            run_model(model, graph, feat, edge_feat)
    finally:
        for handle in handles:
            handle.remove()
    return calls
