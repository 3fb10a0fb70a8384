"""Search spaces as YAML data files, and how a trial turns one into a run config.

A space file (``sweeps/spaces/<name>.yaml``) has up to five sections::

    extends: default            # inherit another space; keys below override its keys
    fixed:                      # run-config values that are not searched
      optim.epochs: 200
    search:                     # searched for every backbone
      optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      model.hidden: {type: categorical, choices: [32, 64]}
    ssm:                        # searched for SSM backbones only (Λ, B knobs)
      model.state_scale: {type: float, low: 0.5, high: 1.0}
    final: {runs: 4, seeds: [41, 95, 12, 35]}   # how the best configuration is re-run

Keys are dotted paths into the run config (``model.*``, ``data.*``, ``data.options.*``,
``optim.*``, ``seed``). A key set to ``null`` in a child removes the parent's entry.
For a (backbone, dataset) pair the runner uses ``<backbone>__<dataset>.yaml`` if it exists,
else ``<dataset>.yaml``, else ``default.yaml``.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from benchmarks.config import DataConfig, ModelConfig, OptimConfig, RunConfig

SPACES = Path(__file__).resolve().parent / "spaces"
SECTIONS = ("extends", "fixed", "search", "ssm", "final")
TYPES = ("float", "int", "categorical")
CONFIG_SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig}


class SpaceError(ValueError):
    """A malformed space file: the message names the file, the key and the reason."""


@dataclass
class SearchSpace:
    name: str
    fixed: dict = field(default_factory=dict)
    search: dict = field(default_factory=dict)
    ssm: dict = field(default_factory=dict)
    final: dict = field(default_factory=dict)

    def params(self, ssm):
        """The searched parameters for a plain (``ssm=False``) or SSM backbone."""
        return {**self.search, **(self.ssm if ssm else {})}

    def suggest(self, trial, ssm):
        """Ask ``trial`` for a value of every searched parameter."""
        values = {}
        for key, spec in self.params(ssm).items():
            kind = spec["type"]
            if kind == "categorical":
                values[key] = trial.suggest_categorical(key, spec["choices"])
            elif kind == "int":
                values[key] = trial.suggest_int(
                    key, spec["low"], spec["high"], step=spec.get("step", 1),
                    log=spec.get("log", False),
                )  # fmt: skip
            else:
                values[key] = trial.suggest_float(
                    key, spec["low"], spec["high"], log=spec.get("log", False)
                )
        return values


def find_space(backbone, dataset, folder=SPACES):
    """The most specific space file for the pair (see the module docstring)."""
    for name in (f"{backbone}__{dataset}", dataset, "default"):
        if (Path(folder) / f"{name}.yaml").exists():
            return name
    raise SpaceError(f"{folder}: no default.yaml, and no space for {backbone} × {dataset}.")


def load_space(name, folder=SPACES, _seen=()):
    """Load and validate a space, resolving ``extends`` chains."""
    path = Path(name) if str(name).endswith(".yaml") else Path(folder) / f"{name}.yaml"
    if not path.exists():
        available = ", ".join(sorted(p.stem for p in Path(folder).glob("*.yaml")))
        raise SpaceError(f"No search space {str(name)!r}; available: {available}.")
    if path.resolve() in _seen:
        raise SpaceError(f"{path}: extends: circular inheritance.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise SpaceError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: the top level must be a mapping of {', '.join(SECTIONS)}.")
    for section in raw:
        if section not in SECTIONS:
            raise SpaceError(f"{path}: {section}: unknown section; valid: {', '.join(SECTIONS)}.")
    parent = SearchSpace(name="")
    if raw.get("extends"):
        parent = load_space(raw["extends"], path.parent, (*_seen, path.resolve()))
    space = SearchSpace(name=path.stem)
    for section in ("fixed", "search", "ssm", "final"):
        entries = raw.get(section) or {}
        if not isinstance(entries, dict):
            raise SpaceError(f"{path}: {section}: must be a mapping.")
        merged = {**getattr(parent, section), **entries}
        setattr(space, section, {k: v for k, v in merged.items() if v is not None})
    _validate(space, path)
    return space


def _validate(space, path):
    for key, value in space.fixed.items():
        _check_path(key, path, "fixed")
        apply_values(RunConfig(), {key: value}, where=f"{path}: fixed: {key}")
    for section in ("search", "ssm"):
        for key, spec in getattr(space, section).items():
            where = f"{path}: {section}: {key}"
            _check_path(key, path, section)
            if not isinstance(spec, dict) or spec.get("type") not in TYPES:
                raise SpaceError(f"{where}: needs type: one of {', '.join(TYPES)}.")
            if spec["type"] == "categorical":
                if not isinstance(spec.get("choices"), list) or not spec["choices"]:
                    raise SpaceError(f"{where}: categorical needs a non-empty list 'choices'.")
                continue
            low, high = spec.get("low"), spec.get("high")
            number = (int,) if spec["type"] == "int" else (int, float)
            if not (isinstance(low, number) and isinstance(high, number) and low <= high):
                raise SpaceError(f"{where}: needs numbers low <= high (got {low!r}, {high!r}).")
            if spec.get("log") and low <= 0:
                raise SpaceError(f"{where}: log scale needs low > 0 (got {low!r}).")
            extra = set(spec) - {"type", "low", "high", "log", "step"}
            if extra:
                raise SpaceError(f"{where}: unknown field(s) {', '.join(sorted(extra))}.")
    unknown = set(space.final) - {"runs", "seeds"}
    if unknown:
        raise SpaceError(f"{path}: final: unknown key(s) {', '.join(sorted(unknown))}.")


def _check_path(key, path, section):
    parts = key.split(".")
    if parts == ["seed"]:
        return
    if parts[0] not in CONFIG_SECTIONS or len(parts) < 2:
        raise SpaceError(
            f"{path}: {section}: {key}: not a run-config path (model.*, data.*, optim.*, seed)."
        )
    if parts[:2] == ["data", "options"] and len(parts) == 3:
        return
    names = {f.name for f in dataclasses.fields(CONFIG_SECTIONS[parts[0]])}
    if len(parts) != 2 or parts[1] not in names:
        raise SpaceError(
            f"{path}: {section}: {key}: {parts[0]} has no field {'.'.join(parts[1:])!r}; "
            f"valid: {', '.join(sorted(names))}."
        )


def apply_values(config, values, where="value"):
    """Set dotted-path ``values`` on a RunConfig (in place) and return it."""
    for key, value in values.items():
        parts = key.split(".")
        if parts == ["seed"]:
            config.seed = value
        elif parts[:2] == ["data", "options"]:
            config.data.options[parts[2]] = value
        else:
            section = getattr(config, parts[0])
            if not hasattr(section, parts[1]):
                raise SpaceError(f"{where}: unknown field {key!r}.")
            setattr(section, parts[1], value)
    return config
