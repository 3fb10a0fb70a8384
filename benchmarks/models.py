"""Build the model a run asks for: a dgl_ssm model or a reference baseline."""

import dgl_ssm
from dgl_ssm.names import unknown_name

from .baselines import BASELINES
from .config import ModelConfig
from .datasets.base import BenchmarkData


def model_names():
    return list(dgl_ssm.MODELS) + list(BASELINES)


def check_model_name(name):
    if name not in dgl_ssm.MODELS and name not in BASELINES:
        raise unknown_name("model", name, model_names())


def build_for(config, data: BenchmarkData):
    """The model of ``config`` (a ModelConfig) sized for ``data``."""
    check_model_name(config.name)
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
    return dgl_ssm.build_model(
        config.name,
        data.num_features,
        config.hidden,
        data.num_outputs,
        config.num_layers,
        task=data.level,
        **kwargs,
    )


# Options of the dgl_ssm models that a fixed reference architecture cannot honour. (hop_mode
# would also have the trainer rewire the graph. max_hop and delay are ignored, as by every
# one-hop model.)
_NOT_FOR_BASELINES = ("residual", *ModelConfig.SSM_FIELDS, "hop_mode")


def _check_baseline_options(config):
    """A reference baseline is a fixed architecture: refuse options it would silently ignore."""
    given = [name for name in _NOT_FOR_BASELINES if getattr(config, name) is not None]
    if config.conv_options:
        given.append("conv_option")  # the flag is --conv-option KEY=VALUE
    if config.checkpoint:
        given.append("checkpoint")
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(
            f"{config.name!r} is a fixed reference architecture: it takes no {flags}. Drop "
            f"{'it' if len(given) == 1 else 'them'}, or use one of the dgl_ssm models "
            f"({', '.join(dgl_ssm.MODELS)})."
        )
