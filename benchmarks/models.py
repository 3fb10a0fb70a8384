"""Build the model a run asks for: a dgl_ssm model or a reference baseline."""

import dgl_ssm
from dgl_ssm.checks import unknown_name

from .baselines import BASELINES
from .config import ModelConfig, option_flag
from .datasets.base import BenchmarkData


def model_names():
    return list(dgl_ssm.MODELS) + list(BASELINES)


def check_model_name(name):
    if name not in dgl_ssm.MODELS and name not in BASELINES:
        raise unknown_name("model", name, model_names())


def input_encoders(kind_node, kind_edge, hidden):
    """The input encoders a dataset's protocol names (``None``: the model's linear layer)."""
    kinds = {kind for kind in (kind_node, kind_edge) if kind is not None}
    unknown = kinds - set(ENCODERS)
    if unknown:
        raise ValueError(f"Unknown input encoder {sorted(unknown)}; known: {', '.join(ENCODERS)}.")
    if not kinds:
        return None, None
    try:
        from ogb.graphproppred import mol_encoder
    except ImportError:
        raise ImportError(
            "OGB's AtomEncoder/BondEncoder (the molecules' published encoders) need the "
            'optional ogb package: pip install "dgl-ssm[ogb]".'
        ) from None
    make = {"ogb_atom": mol_encoder.AtomEncoder, "ogb_bond": mol_encoder.BondEncoder}
    return tuple(None if kind is None else make[kind](hidden) for kind in (kind_node, kind_edge))


# Integer-coded OGB molecules: one embedding table per atom (bond) feature, summed (LRGB).
ENCODERS = ("ogb_atom", "ogb_bond")


def build_for(config, data: BenchmarkData):
    """The model of ``config`` (a ModelConfig) sized for ``data``: the dataset's own input
    encoders (OGB's atom and bond embeddings for Peptides), and its edge features for the
    backbones that read them."""
    check_model_name(config.name)
    if data.level == "node" and config.sets_graph_head:
        raise ValueError(
            f"--readout and --head-activation set a graph-level head; {data.name} is a "
            "node-level dataset, whose head outputs per node. Drop them."
        )
    if config.name in BASELINES and data.node_encoder is not None:
        raise ValueError(
            f"{config.name!r} is a fixed reference architecture with a linear input layer; "
            f"{data.name} needs the {data.node_encoder} encoder. Use one of the dgl_ssm "
            f"models ({', '.join(dgl_ssm.MODELS)})."
        )
    if config.name in BASELINES:
        _check_baseline_options(config)
        return BASELINES[config.name](
            data.num_features,
            config.hidden,
            data.num_outputs,
            config.num_layers,
            dropout=config.dropout,
            task=data.level,
        )
    kwargs = config.model_kwargs()
    if data.level == "graph":
        kwargs["readout"] = config.readout
        if config.head_activation is not None:
            kwargs["head_activation"] = config.head_activation
    if config.uses_edge_feats:
        _, kwargs["edge_encoder"] = input_encoders(None, data.edge_encoder, config.hidden)
        if kwargs["edge_encoder"] is None and data.num_edge_features is not None:
            kwargs["edge_feats"] = data.num_edge_features
    kwargs["node_encoder"], _ = input_encoders(data.node_encoder, None, config.hidden)
    return dgl_ssm.build_model(
        config.name,
        data.num_features,
        config.hidden,
        data.num_outputs,
        config.num_layers,
        task=data.level,
        **kwargs,
    )


def parameter_count(model):
    """Trainable parameters (Λ and B are buffers, so an SSM model counts as its plain twin)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# Options of the dgl_ssm models that a fixed reference architecture cannot honour (hop_mode
# would also have the trainer rewire the graph); the k-hop ones, as every one-hop model.
_NOT_FOR_BASELINES = (
    "residual", *ModelConfig.SSM_FIELDS, "hop_mode", "max_hop", "delay", "past_max_hop",
    "calibrate", "calibrate_lambda", "calibrate_input", "calibrate_memory", "head_activation",
    "norm",
)  # fmt: skip


def _check_baseline_options(config):
    """A reference baseline is a fixed architecture: refuse options it would silently ignore."""
    given = [name for name in _NOT_FOR_BASELINES if getattr(config, name) is not None]
    if config.conv_options:
        given.append("conv_option")  # the flag is --conv-option KEY=VALUE
    if config.checkpoint:
        given.append("checkpoint")
    if config.activation != ModelConfig.activation:  # each has its own (ReLU, GELU)
        given.append("activation")
    if given:
        flags = ", ".join(option_flag(name) for name in given)
        raise ValueError(
            f"{config.name!r} is a fixed reference architecture: it takes no {flags}. Drop "
            f"{'it' if len(given) == 1 else 'them'}, or use one of the dgl_ssm models "
            f"({', '.join(dgl_ssm.MODELS)})."
        )
