"""One description of a run: model, data, optimisation, seed and device.

The CLI builds a :class:`RunConfig` from flags or a YAML file, a sweep builds one from a
trial, and the JSON-lines record stores it whole. Defaults live here and nowhere else.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from dgl_ssm import is_ssm


@dataclass
class ModelConfig:
    """Which model and its options; ``None`` means "the model's own default"."""

    name: str = "gcn_ssm"
    hidden: int = 64
    num_layers: int = 2
    dropout: float = 0.0
    activation: str = "relu"
    norm: Optional[str] = None
    readout: str = "mean"
    residual: Optional[bool] = None  # plain models only
    state: Optional[str] = None  # SSM models only, from here to ssm_seed
    state_scale: Optional[float] = None
    input: Optional[str] = None
    input_scale: Optional[float] = None
    shared_ssm: Optional[bool] = None
    ssm_seed: Optional[int] = None
    hop_mode: Optional[str] = None  # k-hop models: "exact" | "cumulative"
    max_hop: Optional[int] = None  # K: the rewiring radius and the largest hop read
    delay: Optional[int] = None
    conv_options: dict[str, Any] = field(default_factory=dict)
    checkpoint: Any = False  # activation checkpointing: True (≈√L segments) or a count

    SSM_FIELDS = ("state", "state_scale", "input", "input_scale", "shared_ssm", "ssm_seed")

    @property
    def is_khop(self):
        return self.hop_mode is not None or self.name.startswith("k")

    def model_kwargs(self):
        """Constructor keywords for ``dgl_ssm.build_model`` (without sizes and task)."""
        ssm = is_ssm(self.name)  # unknown names fail here, with the valid ones listed
        kwargs = dict(dropout=self.dropout, activation=self.activation, norm=self.norm)
        if self.conv_options:
            kwargs["conv_options"] = dict(self.conv_options)
        if self.checkpoint:
            kwargs["checkpoint"] = self.checkpoint
        for name in ("hop_mode", "max_hop", "delay"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        optional = {f: getattr(self, f) for f in self.SSM_FIELDS + ("residual",)}
        for name, value in optional.items():
            if value is None:
                continue
            if (name == "residual") == ssm:
                kind = "plain" if ssm else "SSM"
                raise ValueError(
                    f"--{name.replace('_', '-')} is a {kind}-model option, but {self.name!r} "
                    f"is {'an SSM' if ssm else 'a plain'} model."
                )
            kwargs[name] = value
        return kwargs


@dataclass
class DataConfig:
    """Which dataset, where its files are, and its options."""

    name: str = "cora"
    data_dir: Optional[str] = None
    cache_dir: Optional[str] = None
    options: dict[str, Any] = field(default_factory=dict)  # e.g. ring_size, seed, sizes
    split: int = 0  # which fixed split of datasets that have several
    self_loops: bool = True  # add one self loop per node (not for k-hop models)


@dataclass
class OptimConfig:
    optimizer: str = "adam"  # "adam" | "adamw"
    lr: float = 0.01
    weight_decay: float = 5e-4
    epochs: int = 200
    patience: Optional[int] = None  # early stopping on the validation metric
    batch_size: int = 64  # graphs per batch, for datasets of many graphs
    # Draw the training batches once (seeded) and shuffle only their order each epoch, so
    # each batch, with its hop structure, is built once: several times faster per epoch for
    # k-hop models on many small graphs. Default: graphs re-shuffled into new batches.
    fixed_batches: bool = False


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda"

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw, source="config"):
        """Build from nested dicts (YAML); unknown keys name the file and the key."""
        raw = dict(raw or {})
        parts = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig}
        kwargs = {}
        for key, value in raw.items():
            if key in parts:
                kwargs[key] = _build(parts[key], value, f"{source}: {key}")
            elif key in ("seed", "device"):
                kwargs[key] = value
            else:
                raise ValueError(
                    f"{source}: unknown key {key!r}; valid: model, data, optim, seed, device."
                )
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path):
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"Config file {path} does not exist.")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML: {error}") from None
        return cls.from_dict(raw, source=str(path))


def _build(kind, values, where):
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values or {}) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {sorted(names)}.")
    return kind(**(values or {}))
