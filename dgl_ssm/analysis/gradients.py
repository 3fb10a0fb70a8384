r"""Gradient norms through depth: does :math:`\partial \mathcal{L} / \partial H^{(\ell)}` vanish?

For a stack :math:`H^{(\ell)} = f_\ell(H^{(\ell-1)})`, the chain rule gives

.. math::
    \frac{\partial \mathcal{L}}{\partial H^{(\ell)}}
    = \frac{\partial \mathcal{L}}{\partial H^{(L)}} \, J_L J_{L-1} \cdots J_{\ell+1},

so contractive layer Jacobians (:math:`\|J\|_2 < 1`, plain GCNs) make the norm decay
geometrically towards the first layers, while GNN-SSM layers (spectrum near 1) keep it.
"""

import torch

from ..checks import check_flag, check_graph
from ._common import evaluating, run_model
from .states import recorded_states

__all__ = ["layer_gradient_norms"]


def layer_gradient_norms(
    model, graph, feat, loss_fn, edge_feat=None, *, include_input=False, eval_mode=True
):
    r"""Frobenius norms :math:`\|\partial \mathcal{L} / \partial H^{(\ell)}\|` of the layer outputs.

    One forward pass records the layer outputs with hooks, then one
    :func:`torch.autograd.grad` call differentiates ``loss_fn(output)`` with respect to
    them. Parameter ``.grad`` fields are neither written nor zeroed, and the hooks are removed
    afterwards, even on error.

    Parameters
    ----------
    model : torch.nn.Module
        A deep GNN with ``.layers``; layers returning ``(h, e)`` contribute ``h``.
    graph, feat, edge_feat
        The model's inputs.
    loss_fn : callable
        ``loss_fn(model_output)`` → scalar tensor, e.g.
        ``lambda out: F.cross_entropy(out[mask], labels[mask])``.
    include_input : bool, default False
        Prepend the norm for :math:`H^{(0)}` (the encoder output).
    eval_mode : bool, default True
        Run the model in eval mode (no dropout, BatchNorm running statistics), restoring
        each module's flag afterwards; ``False`` uses the model's current mode.

    Returns
    -------
    list of float
        Norms for :math:`\ell = 1, \dots, L` (``0, …, L`` with ``include_input``); a state
        the loss does not depend on gets 0.

    Raises
    ------
    ValueError
        When ``loss_fn`` returns no scalar, a loss that does not depend on the output through
        autograd, or a NaN or infinite loss (an empty mask, a diverged model): the norms would
        read 0 or NaN, as if the gradients had vanished.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import build_model
    >>> from dgl_ssm.analysis import layer_gradient_norms
    >>> g = dgl.add_self_loop(dgl.to_bidirected(dgl.rand_graph(20, 40)))
    >>> model = build_model("gcn", in_feats=4, hidden=8, out_feats=2, num_layers=5)
    >>> norms = layer_gradient_norms(model, g, torch.randn(20, 4), lambda out: out.sum())
    >>> len(norms), all(p.grad is None for p in model.parameters())
    (5, True)
    """
    who = "layer_gradient_norms"
    check_graph(graph, who, f"{who}(model, graph, feat, loss_fn)")
    include_input = check_flag(include_input, "include_input", who)
    eval_mode = check_flag(eval_mode, "eval_mode", who)
    if not callable(loss_fn):  # before the forward pass, not after it
        raise TypeError(
            "layer_gradient_norms: loss_fn must be a function of the model's output returning "
            f"a scalar (e.g. lambda out: F.cross_entropy(out, labels)), got {loss_fn!r}."
        )
    with evaluating(model, eval_mode), torch.enable_grad():
        with recorded_states(model, include_input, who="layer_gradient_norms") as states:
            leaf = feat.detach().requires_grad_(True) if torch.is_floating_point(feat) else feat
            output = run_model(model, graph, leaf, edge_feat)
        loss = loss_fn(output)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(
                "layer_gradient_norms: loss_fn must return a scalar tensor, got "
                f"{type(loss).__name__}{tuple(getattr(loss, 'shape', ()))}. Reduce it, "
                "e.g. with .mean()."
            )
        if not torch.isfinite(loss.detach()).all():  # its gradients would read 0 or NaN
            cause = (
                "The model's output is not finite: the model diverged (see "
                "dgl_ssm.analysis.layer_energies; a state_scale above 1 compounds with depth)."
                if not torch.isfinite(output.detach()).all()
                else "Cross-entropy over an empty mask gives NaN: check that the mask selects "
                "nodes (mask.any())."
            )
            raise ValueError(
                f"layer_gradient_norms: loss_fn returned {loss.item()}, so the gradients would "
                f"be NaN (or 0, reading as vanished). {cause}"
            )
        connected = [i for i, state in enumerate(states) if state.requires_grad]
        if connected and not loss.requires_grad:  # else every norm would read 0: "vanished"
            raise ValueError(
                "layer_gradient_norms: loss_fn's result does not depend on the model's output "
                "through autograd (it was detached, taken through .item() or NumPy, or built "
                "under torch.no_grad()). Return a tensor computed from the output, e.g. "
                "lambda out: F.cross_entropy(out[mask], labels[mask])."
            )
        norms = [0.0] * len(states)
        if connected:
            grads = torch.autograd.grad(
                loss.reshape(()), [states[i] for i in connected], allow_unused=True
            )
            for i, grad in zip(connected, grads):
                norms[i] = 0.0 if grad is None else float(grad.detach().double().norm())
    return norms
