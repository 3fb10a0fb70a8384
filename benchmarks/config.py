"""One description of a run: model, data, optimisation, seed and device.

The CLI builds a :class:`RunConfig` from flags or a YAML file, a sweep builds one from a
trial, and the JSON-lines record stores it whole. Defaults, types and ranges live here and
nowhere else: the sections are pydantic dataclasses (real dataclasses too, so
``dataclasses.fields`` / ``asdict`` keep working for the sweeps), checked when built and on every
assignment (``config.optim.epochs = 0`` is refused), with errors of one line that name the
key, the value and what is allowed.

Numbers keep the type they were given (``weight_decay: 0`` stays ``0``, ``lr: 1e-3`` stays
``0.001``), so ``to_dict()`` — which keys stored records — is what it was before the checks;
numbers written as strings (YAML reads ``1e-3`` as one) are read as floats.
"""

import dataclasses
import functools
import numbers
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)
from pydantic.dataclasses import dataclass

from dgl_ssm import MODELS, is_khop, is_ssm
from dgl_ssm.calibration import INPUT_RULES, LAMBDA_RULES
from dgl_ssm.checks import did_you_mean, is_real
from dgl_ssm.models import SSM_OPTIONS
from dgl_ssm.registry import uses_edge_feats

from .yaml_files import load_yaml


def _real(value):
    """A real number, kept as given (int or float); strings that spell one ("1e-3", which is
    how YAML reads it) become floats; booleans are refused."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError("should be a number") from None
    if not is_real(value):
        raise ValueError("should be a number")
    return value if isinstance(value, (int, float)) else value.item()  # numpy scalars


def _int(value):
    """Whole numbers written as floats or strings (``2.0``, ``"2"``) are read as ints."""
    if isinstance(value, (str, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else value
    return value.item() if isinstance(value, numbers.Integral) and hasattr(value, "item") else value


# One setting, one spelling, so that one run has one key: a YAML "none" norm is no norm (as
# --norm none is), and 0 checkpoint segments is no checkpointing.
def _none_if_none(value):
    return None if value == "none" else value


def _off_if_zero(value):
    return False if value == 0 and not isinstance(value, bool) else value


# A real number that keeps its type (int or float): a stored record's key hashes the config
# as written, so 0 must not become 0.0.
Real = Annotated[StrictInt | StrictFloat, BeforeValidator(_real), Field(allow_inf_nan=False)]
Int = Annotated[StrictInt, BeforeValidator(_int)]
Str, Bool = StrictStr, StrictBool

# A model field's command-line flag is its name in kebab case, except where the flag says the
# opposite of the field's default (shared Λ and B are the default; the flag asks for per-layer).
_FLAGS = {"shared_ssm": "--per-layer-ssm"}


def option_flag(name):
    """The command-line flag that sets the config field ``name``, for messages."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


_CHECKED = ConfigDict(validate_assignment=True, extra="forbid", strict=False)


def describe(error: ValidationError, where="config"):
    """A pydantic error as one line: where, the key, the value given and what is allowed."""
    problems = {}  # field → (value, [what it should be]); a union gives one line per member
    for item in error.errors(include_url=False):
        key = str(item["loc"][0]) if item["loc"] else "value"
        message = item["msg"].removeprefix("Value error, ").removeprefix("Input ")
        problems.setdefault(key, (item.get("input"), []))[1].append(message)
    lines = [
        f"{key} = {value!r}: {' or '.join(dict.fromkeys(messages)).replace(' or should ', ' or ')}"
        for key, (value, messages) in problems.items()
    ]
    return f"{where}: {'; '.join(lines)}."


def _checked(cls):
    """A pydantic dataclass whose construction and assignment errors are one-line
    ``ValueError`` s (pydantic's own are multi-line)."""
    cls = dataclass(cls, config=_CHECKED)
    for name in ("__init__", "__setattr__"):
        method = getattr(cls, name)

        @functools.wraps(method)
        def one_line(self, *args, _method=method, **kwargs):
            try:
                return _method(self, *args, **kwargs)
            except ValidationError as error:
                raise ValueError(describe(error, type(self).__name__)) from None

        setattr(cls, name, one_line)
    return cls


@_checked
class ModelConfig:
    """Which model and its options; ``None`` means "the model's own default"."""

    name: Str = "gcn_ssm"
    hidden: Annotated[Int, Field(ge=1)] = 64
    num_layers: Annotated[Int, Field(ge=1)] = 2
    dropout: Annotated[Real, Field(ge=0, lt=1)] = 0.0
    activation: Str = "relu"
    norm: Annotated[Str | None, BeforeValidator(_none_if_none)] = None  # "none" as None
    readout: Str = "mean"
    head_activation: Str | None = None  # graph head; None: the model's activation
    residual: Bool | None = None  # plain models only
    state: Str | None = None  # SSM models only, from here to ssm_seed
    state_scale: Real | None = None
    input: Str | None = None
    input_scale: Real | Literal["auto"] | None = None  # "auto": β = 0.1·min(1, 64/L)
    shared_ssm: Bool | None = None
    ssm_seed: Int | None = None
    hop_mode: Str | None = None  # k-hop models: "exact" | "cumulative"
    max_hop: Annotated[Int, Field(ge=1)] | None = None  # K: rewiring radius, largest hop
    delay: Annotated[Int, Field(ge=1)] | None = None  # DRew's ν
    past_max_hop: Str | None = None  # layers past K: "empty" (hop ℓ, paper) | "repeat" hop K
    conv_options: dict[Str, Any] = field(default_factory=dict)
    # activation checkpointing: True (≈√L segments) or a count (0: off, as False)
    checkpoint: Annotated[
        Bool | Annotated[StrictInt, Field(ge=0)], BeforeValidator(_off_if_zero)
    ] = False
    # SSM models: before training, set Λ and B so every layer's top Jacobian eigenvalue has
    # this modulus (dgl_ssm.calibrate on the training graph); None: keep them as built
    calibrate: Annotated[Real, Field(gt=0)] | None = None
    # with calibrate: how λ is chosen, "nearest" the built one (None: the default) or "centred"
    # (see dgl_ssm.calibrate's lambda_rule)
    calibrate_lambda: Str | None = None
    # with calibrate: how B is shrunk under the norm bound, "halve" (None: the default) or
    # "largest" (see dgl_ssm.calibrate's input_rule)
    calibrate_input: Str | None = None
    # with calibrate: keep the stack's memory Π λ/target at least 1/this (dgl_ssm.calibrate's
    # memory_bound); None: no such bound
    calibrate_memory: Annotated[Real, Field(gt=1)] | None = None

    SSM_FIELDS = SSM_OPTIONS

    @property
    def sets_graph_head(self):
        """Whether options of a graph-level head (readout, its activation) are set."""
        return self.readout != "mean" or self.head_activation is not None

    @property
    def uses_edge_feats(self):
        """Whether the model reads the graph's edge features (the reference baselines do not)."""
        return self.name in MODELS and uses_edge_feats(self.name)

    @property
    def is_khop(self):
        return self.hop_mode is not None or (self.name in MODELS and is_khop(self.name))

    def model_kwargs(self):
        """Constructor keywords for ``dgl_ssm.build_model`` (without sizes and task)."""
        ssm = is_ssm(self.name)  # unknown names fail here, with the valid ones listed
        kwargs = dict(dropout=self.dropout, activation=self.activation, norm=self.norm)
        if self.conv_options:
            kwargs["conv_options"] = dict(self.conv_options)
        if self.checkpoint:
            kwargs["checkpoint"] = self.checkpoint
        for name in ("hop_mode", "max_hop", "delay", "past_max_hop"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        optional = {f: getattr(self, f) for f in self.SSM_FIELDS + ("residual",)}
        for name, value in optional.items():
            if value is None:
                continue
            if (name == "residual") == ssm:
                kind = "plain" if ssm else "SSM"
                raise ValueError(
                    f"{option_flag(name)} is {'a' if ssm else 'an'} {kind}-model option, but "
                    f"{self.name!r} is {'an SSM' if ssm else 'a plain'} model."
                )
            kwargs[name] = value
        for flag, value, rules, what in (
            ("--calibrate-lambda", self.calibrate_lambda, LAMBDA_RULES, "chooses λ"),
            ("--calibrate-input", self.calibrate_input, INPUT_RULES, "shrinks B"),
        ):
            if value is not None and self.calibrate is None:
                raise ValueError(f"{flag} says how --calibrate {what}; add --calibrate or drop it.")
            if value not in (None, *rules):
                raise ValueError(f"unknown {flag} {value!r}; choose one of: {', '.join(rules)}.")
        if self.calibrate_memory is not None and self.calibrate is None:
            raise ValueError(
                "--calibrate-memory bounds what --calibrate may take from the stack's memory; "
                "add --calibrate or drop it."
            )
        if self.calibrate is not None and not ssm:
            raise ValueError(
                f"--calibrate sets Λ and B of SSM models, but {self.name!r} is a plain model; "
                "use its SSM twin."
            )
        if self.calibrate is not None and (
            self.state not in (None, "identity") or self.norm not in (None, "none")
        ):
            raise ValueError(
                "--calibrate needs Λ = λI and no norm after the update (a norm rescales the "
                f"state); got state={self.state!r}, norm={self.norm!r}. Drop --state/--norm "
                "or --calibrate."
            )
        return kwargs


@_checked
class DataConfig:
    """Which dataset, where its files are, and its options."""

    name: Str = "cora"
    data_dir: Str | None = None
    cache_dir: Str | None = None
    options: dict[Str, Any] = field(default_factory=dict)  # e.g. ring_size, seed, sizes
    split: Annotated[Int, Field(ge=0)] = 0  # which fixed split of datasets that have several
    # add one self loop per node (not for k-hop models, nor for backbones that read the
    # graph's edge features: a self loop has no bond to describe)
    self_loops: Bool = True


@_checked
class OptimConfig:
    optimizer: Str = "adam"  # "adam" | "adamw"
    lr: Annotated[Real, Field(gt=0)] = 0.01
    weight_decay: Annotated[Real, Field(ge=0)] = 5e-4
    epochs: Annotated[Int, Field(ge=1)] = 200
    # early stopping: stop after this many epochs without a better validation metric (0 and
    # 1 both stop at the first such epoch, as Keras' and Lightning's EarlyStopping do)
    patience: Annotated[Int, Field(ge=0)] | None = None
    batch_size: Annotated[Int, Field(ge=1)] = 64  # graphs per batch, for many-graph datasets
    # Draw the training batches once (seeded) and shuffle only their order each epoch, so
    # each batch, with its hop structure, is built once: ≈2× faster per epoch for k-hop
    # models on many small graphs (kGCN-SSM on GPP eccentricity, one thread: 2.9 → 1.5 s).
    # Default: graphs re-shuffled into new batches.
    fixed_batches: Bool = False
    # With model.calibrate: each calibrated layer's weight decay scaled to the factor its B
    # was shrunk by (see dgl_ssm.CalibrationReport.param_groups), so calibration does not
    # change what the regulariser asks of the layer's effective map. None: yes, each weight
    # by its conv's output-scaling symmetry; "uniform": every weight as if the conv were
    # linear in it (the rule before schema 4 of the records); False: no.
    rescale_weight_decay: Bool | Literal["uniform"] | None = None


SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig}
#: Seeds are below 2³¹: dgl.seed takes a C int (numpy and torch would take more).
SEED_LIMIT = 2**31


@_checked
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: Annotated[Int, Field(ge=0, lt=SEED_LIMIT)] = 0
    device: Str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw, source="config"):
        """Build from nested dicts (YAML); errors name the file, the key and the value."""
        if raw is not None and not isinstance(raw, dict):
            raise ValueError(f"{source}: expected a mapping of sections, got {raw!r}.")
        kwargs = {}
        for key, value in (raw or {}).items():
            if key in SECTIONS:
                kwargs[key] = _build(SECTIONS[key], value, f"{source}: {key}")
            elif key in ("seed", "device"):
                kwargs[key] = value
            else:
                raise ValueError(
                    f"{source}: unknown key {key!r}; valid: model, data, optim, seed, device."
                )
        try:
            return cls(**kwargs)
        except ValueError as error:
            raise ValueError(f"{source}: {error}".replace("RunConfig: ", "")) from None

    @classmethod
    def from_yaml(cls, path):
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"Config file {path} does not exist.")
        if not path.is_file():
            raise ValueError(f"Config {path} is a directory, not a YAML file.")
        try:
            raw = load_yaml(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            message = " ".join(str(error).split())
            raise ValueError(f"{path}: not valid YAML: {message}") from None
        if raw is None:  # (an empty file or only comments: almost surely the wrong file)
            raise ValueError(
                f"{path} is empty: a config sets at least one section, e.g. model: {{name: "
                "gcn_ssm}; the run's own defaults need no --config."
            )
        return cls.from_dict(raw, source=str(path))


def _build(kind, values, where):
    names = [f.name for f in dataclasses.fields(kind)]
    if values is not None and not isinstance(values, dict):
        section = where.rsplit(": ", 1)[-1]
        defaults = {name: getattr(kind(), name) for name in names}
        shown = [name for name in names if defaults[name] is not None][:2]
        example = ", ".join(f"{name}: {defaults[name]}" for name in shown)
        raise ValueError(
            f"{where}: expected a mapping of fields, e.g. {section}: {{{example}}} (or those "
            f"keys indented under {section}:), got {values!r}."
        )
    unknown = sorted(set(values or {}) - set(names))
    if unknown:
        hint = did_you_mean(unknown[0], names)
        valid = ", ".join(sorted(names))
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}.{hint} Valid: {valid}.")
    try:
        return kind(**(values or {}))
    except ValueError as error:
        raise ValueError(f"{where}.{str(error).split(': ', 1)[1]}") from None
