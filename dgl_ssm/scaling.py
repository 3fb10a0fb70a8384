r"""How a conv's output scales with its weights: the exponents behind calibrated weight decay.

Calibration shrinks a layer's B by a factor :math:`f`, so the layer adds
:math:`f\,\sigma(F_W(G, H))\,B^\top` where it added :math:`\sigma(F_W(G, H))\,B^\top`. For a
positively homogeneous σ (ReLU) and a conv with an *output-scaling symmetry* — exponents
:math:`k_p`, one per parameter, with

.. math::
    F_{\{c^{k_p} p\}}(G, H) = c\, F_{\{p\}}(G, H) \quad \text{for every } c > 0,

— the calibrated layer at weights :math:`W` is the uncalibrated one at :math:`V` with
:math:`v_p = f^{k_p} w_p`, and the weight decay :math:`\alpha f^{2 k_p}` on each :math:`w_p`
is the decay α on :math:`V` (see :meth:`dgl_ssm.CalibrationReport.param_groups`). A weight
that carries the output's scale has :math:`k = 1`, a gate or attention input that must not
change :math:`k = 0`, and GAT's attention vectors, which read the scaled projections,
:math:`k = -1`. Treating every weight as :math:`k = 1` is exact only for convs linear in all
their weights (GCN, SAGE with the mean aggregator); for GIN's MLP it decays the first layer
:math:`f^2` too weakly, for GAT's attention vectors :math:`f^4` too weakly.

A symmetry need not be unique: GIN's MLP keeps its output × c with its first layer × c^t and
its last weight × c^(1−t) for any t (ReLU between them); the rule here is t = 0, the last
linear map carrying the scale. The exponents decide what a calibrated run trains, so
changing one for a conv changes what records of it mean: that needs a new records schema
(``benchmarks/reproduce/records.py``).
"""

import torch
from dgl.nn import GATConv, GatedGCNConv, GINConv, GraphConv, SAGEConv
from torch import nn

__all__ = ["output_scaling", "positively_homogeneous", "scaling_exponents", "unknown_convs"]

# A σ applied inside the conv keeps the symmetry only if it is positively homogeneous.
_HOMOGENEOUS_MODULES = (nn.Identity, nn.ReLU)
_HOMOGENEOUS_FUNCTIONS = (torch.relu, nn.functional.relu)


def positively_homogeneous(activation):
    """Whether σ(c·x) = c·σ(x) for every c > 0: no activation (``None``), identity or ReLU."""
    return (activation is None or isinstance(activation, _HOMOGENEOUS_MODULES)
            or activation in _HOMOGENEOUS_FUNCTIONS)  # fmt: skip


def _graph_conv(conv):
    # Without a weight the output is the aggregated input plus the bias: nothing scales it.
    if conv.weight is None or not positively_homogeneous(conv._activation):
        return None
    return {name: 1 for name, _ in conv.named_parameters()}


def _sage(conv):
    if conv.norm is not None or not positively_homogeneous(conv.activation):
        return None
    # The neighbour pooling (fc_pool, lstm) works on the input, which calibration leaves alone.
    carriers = ("fc_self.", "fc_neigh.", "bias")
    return {name: int(name.startswith(carriers)) for name, _ in conv.named_parameters()}


def _gin(conv):
    mlp = conv.apply_func
    last = mlp[-1] if isinstance(mlp, nn.Sequential) and len(mlp) else mlp
    if not isinstance(last, nn.Linear) or not positively_homogeneous(conv.activation):
        return None
    # Scaling the MLP's last linear map scales its output; the layers before it stay as they are.
    carrier = "apply_func." + (f"{len(mlp) - 1}." if last is not mlp else "")
    return {name: int(name.startswith(carrier)) for name, _ in conv.named_parameters()}


def _gat(conv):
    # An identity residual (DGL's own Identity) adds the unscaled input; a projected one
    # (nn.Linear) scales with it.
    residual_ok = conv.res_fc is None or isinstance(conv.res_fc, nn.Linear)
    if not residual_ok or not positively_homogeneous(conv.activation):
        return None
    # Projections ×c and attention vectors ×1/c keep the attention scores and scale the values.
    return {name: -1 if name in ("attn_l", "attn_r") else 1 for name, _ in conv.named_parameters()}


def _gatedgcn(conv):
    if conv.batch_norm or conv.residual or not positively_homogeneous(conv.activation):
        return None
    # A and B make the node output; C, D and E make the gates (and the edge output).
    return {name: int(name.startswith(("A.", "B."))) for name, _ in conv.named_parameters()}


_RULES = {
    GraphConv: _graph_conv,
    SAGEConv: _sage,
    GINConv: _gin,
    GATConv: _gat,
    GatedGCNConv: _gatedgcn,
}


def output_scaling(conv):
    """The exponents :math:`k_p` of ``conv``'s output-scaling symmetry (see the module
    docstring).

    Parameters
    ----------
    conv : torch.nn.Module
        A DGL conv: ``GraphConv``, ``SAGEConv``, ``GINConv``, ``GATConv`` or ``GatedGCNConv``
        (exact classes; subclasses may compute something else).

    Returns
    -------
    dict of str to int, or None
        :math:`k_p` by parameter name as ``conv.named_parameters()`` gives it; ``None`` when
        the conv's class or options have no symmetry this module knows of (an identity
        residual, a batch norm, a weightless GraphConv, an inner activation that is not
        positively homogeneous).

    Examples
    --------
    >>> from dgl.nn import GATConv
    >>> from dgl_ssm.scaling import output_scaling
    >>> output_scaling(GATConv(8, 2, num_heads=4))
    {'attn_l': -1, 'attn_r': -1, 'bias': 1, 'fc.weight': 1}
    """
    rule = _RULES.get(type(conv))
    return None if rule is None else rule(conv)


def scaling_exponents(module):
    """The exponent of every parameter of a layer holding one or more convs.

    Parameters
    ----------
    module : torch.nn.Module
        A layer, e.g. ``model.layers[i]`` of an SSM model.

    Returns
    -------
    dict of str to int
        By name as ``module.named_parameters()`` gives it: each known conv's exponents from
        :func:`output_scaling`, and 1 for the rest — weights of convs with no known symmetry,
        treated as if the output were linear in them (:func:`unknown_convs` names those).

    Examples
    --------
    >>> from dgl_ssm import GINSSM
    >>> from dgl_ssm.scaling import scaling_exponents
    >>> layer = GINSSM(in_feats=4, hidden=8, out_feats=2, num_layers=1).layers[0]
    >>> exponents = scaling_exponents(layer)  # GIN's MLP: its last linear map carries the scale
    >>> exponents["conv.apply_func.0.weight"], exponents["conv.apply_func.2.weight"]
    (0, 1)
    """
    exponents = {}
    for prefix, sub in module.named_modules():
        for name, k in (output_scaling(sub) or {}).items():
            # named_modules goes outside in, so the outermost known conv's rule decides
            exponents.setdefault(f"{prefix}.{name}" if prefix else name, k)
    return {name: exponents.get(name, 1) for name, _ in module.named_parameters()}


def unknown_convs(module):
    """The parametrised submodules of ``module`` that no known conv covers: their weights get
    :math:`k = 1` from :func:`scaling_exponents`, exact only if the output is linear in them.
    By qualified name; for the layers of the models this library builds, empty but for a
    ``norm`` (whose affine weights the normalisation, not the conv, scales)."""
    known = [prefix for prefix, sub in module.named_modules() if output_scaling(sub) is not None]

    def covered(prefix):
        return any(prefix == k or prefix.startswith(k + ".") for k in known)

    return [prefix for prefix, sub in module.named_modules()
            if prefix and list(sub.parameters(recurse=False)) and not covered(prefix)]  # fmt: skip
