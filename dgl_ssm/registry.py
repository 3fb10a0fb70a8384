"""Model names for configs, CLIs and sweeps: ``build_model("gcn_ssm", ...)``."""

from . import models
from .backbones import BACKBONES
from .checks import unknown_name

#: Model name → class: the names ``build_model``, configs, sweeps and the CLI take.
MODELS = {
    "gcn": models.GCN,
    "gcn_ssm": models.GCNSSM,
    "gin": models.GIN,
    "gin_ssm": models.GINSSM,
    "gatedgcn": models.GatedGCN,
    "gatedgcn_ssm": models.GatedGCNSSM,
    "gat": models.GAT,
    "gat_ssm": models.GATSSM,
    "sage": models.SAGE,
    "sage_ssm": models.SAGESSM,
    "kgcn": models.KGCN,
    "kgcn_ssm": models.KGCNSSM,
}


def model_class(name):
    """Return the model class registered as ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS` (``"gcn"``, ``"gcn_ssm"``, …).

    Returns
    -------
    type
        The class, e.g. :class:`~dgl_ssm.GCNSSM`.

    Raises
    ------
    ValueError
        For an unknown name: a close match, if any, and the valid names.

    Examples
    --------
    >>> from dgl_ssm import model_class
    >>> model_class("gin_ssm").__name__
    'GINSSM'
    """
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise unknown_name("model", name, MODELS) from None


def build_model(name, *args, **kwargs):
    """Build the model registered as ``name`` with the given constructor arguments.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    *args, **kwargs
        The class's constructor arguments: ``in_feats, hidden, out_feats, num_layers`` and
        its options (see :class:`~dgl_ssm.models.DeepGNN`).

    Returns
    -------
    torch.nn.Module
        The model, called as ``model(graph, feat)``.

    Examples
    --------
    >>> from dgl_ssm import build_model
    >>> model = build_model("gcn_ssm", in_feats=5, hidden=16, out_feats=3, num_layers=4)
    >>> type(model).__name__
    'GCNSSM'
    """
    return model_class(name)(*args, **kwargs)


def is_ssm(name):
    """Whether the model registered as ``name`` uses the SSM update (rather than the plain
    one); unknown names raise :func:`model_class`'s error.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.

    Returns
    -------
    bool

    Examples
    --------
    >>> from dgl_ssm import is_ssm
    >>> is_ssm("gcn_ssm"), is_ssm("gcn")
    (True, False)
    """
    return issubclass(model_class(name), models.SSMGNN)


def is_khop(name):
    """Whether the model registered as ``name`` reads a k-hop rewired graph by default (its
    class's ``default_hop_mode``), as ``kgcn`` and ``kgcn_ssm`` do; unknown names raise
    :func:`model_class`'s error.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.

    Returns
    -------
    bool

    Examples
    --------
    >>> from dgl_ssm import is_khop
    >>> is_khop("kgcn_ssm"), is_khop("gcn_ssm")
    (True, False)
    """
    return model_class(name).default_hop_mode is not None


def uses_edge_feats(name):
    """Whether the model registered as ``name`` reads edge features (its backbone does, as
    GatedGCN's); unknown names raise :func:`model_class`'s error.

    Examples
    --------
    >>> from dgl_ssm.registry import uses_edge_feats
    >>> uses_edge_feats("gatedgcn_ssm"), uses_edge_feats("gcn_ssm")
    (True, False)
    """
    return BACKBONES[model_class(name).backbone].uses_edge_feats
