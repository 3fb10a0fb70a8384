"""Model names for configs, CLIs and sweeps: ``build_model("gcn_ssm", ...)``."""

from . import models
from .checks import unknown_name

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
    """Return the model class registered as ``name``; unknown names list the valid ones."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise unknown_name("model", name, MODELS) from None


def build_model(name, *args, **kwargs):
    """Build the model registered as ``name`` with the given constructor arguments.

    Examples
    --------
    >>> from dgl_ssm import build_model
    >>> model = build_model("gcn_ssm", in_feats=5, hidden=16, out_feats=3, num_layers=4)
    >>> type(model).__name__
    'GCNSSM'
    """
    return model_class(name)(*args, **kwargs)


def is_ssm(name):
    """Whether the registered model uses the SSM update (rather than the plain one)."""
    return issubclass(model_class(name), models.SSMGNN)


def is_khop(name):
    """Whether the registered model reads a k-hop rewired graph by default (its class's
    ``default_hop_mode``), as ``kgcn`` and ``kgcn_ssm`` do."""
    return model_class(name).default_hop_mode is not None
