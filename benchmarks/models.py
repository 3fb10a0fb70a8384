"""Build the model a run asks for: a dgl_ssm model or a reference baseline."""

import dgl_ssm
from dgl_ssm.names import unknown_name

from .baselines import BASELINES
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
