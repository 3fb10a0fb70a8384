"""Search spaces as YAML data files, and how a trial turns one into a run config.

A space file (``sweeps/spaces/<name>.yaml``) has up to eight sections::

    extends: default            # inherit another space; keys below override its keys
    protocol: heterophily       # which published protocol the space follows (optional)
    max_params: 500000          # parameter budget of the protocol (optional)
    fixed:                      # run-config values that are not searched
      optim.epochs: 200
    search:                     # searched for every backbone: depth, width, norm, dropout, …
      optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      model.num_layers: {type: categorical, choices: [2, 4, 8]}
    plain:                      # searched for plain backbones only (the skip connection)
      model.residual: {type: categorical, choices: [false, true]}
    ssm:                        # searched for SSM backbones only (Λ, B knobs)
      model.state_scale: {type: float, low: 0.5, high: 1.0}
    final: {runs: 4, seeds: [41, 95, 12, 35]}   # how the best configuration is re-run
                                                # (default seeds: those after the search's)

Keys are dotted paths into the run config (``model.*``, ``data.*``, ``data.options.*``,
``optim.*``, ``seed``). A key set to ``null`` in a child removes the parent's entry.
A search whose keys are all categorical is a grid: the runner takes each point once, in an
order shuffled by the sweep's seed, and stops at ``--trials`` or once every point is taken.
For a (backbone, dataset) pair the runner uses ``<backbone>__<dataset>.yaml`` if it exists,
else ``<dataset>.yaml``, else ``default.yaml``.

Fair twins: a plain model and its SSM twin are searched over the same ``search`` keys, with
the same number of trials. Each then adds the knobs only it has: the SSM twin its frozen Λ and
B (``ssm:``), the plain twin the skip connection (``plain:``) that its SSM twin's state path
already gives it. Options that only one kind of model takes (``model.residual``,
``model.state`` …) may therefore appear only in their own section. The benchmark suite's
reference baselines (``gcn_kipf``, ``gcn_platonov``: fixed published architectures) get the
``search`` keys only.

``protocol`` names the published protocol a space follows (e.g. ``gpp``, ``heterophily``,
``lrgb``), or ``smoke`` for a smoke-size budget that checks the pipeline and reproduces
nothing (the quick suite). The runner stores it with the study; the leaderboard sets a
published number beside a study only when the protocols agree. A space that extends another
inherits its protocol only if it changes none of its values (``fixed``, the searched sections,
``final``, ``max_params``): a few epochs on a small part of the data is not the protocol its
parent follows. Such a space follows no protocol unless it names one (``protocol: gpp``, when
the change keeps it), and :attr:`SearchSpace.protocol_note` says why. (``smoke`` is kept:
a smaller smoke test is still one.)

``max_params`` is the protocol's budget of trainable parameters (LRGB: 500k). The runner
counts each trial's model before training it; a configuration over the budget is refused
(its trial is pruned, with the count and the budget in ``user_attrs["error"]``), so the
searched space is in effect the part within the budget.
"""

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import dgl_ssm
from dgl_ssm.checks import check_choice, did_you_mean, is_int, unknown_name
from dgl_ssm_bench.config import SEED_LIMIT, DataConfig, ModelConfig, OptimConfig, RunConfig
from dgl_ssm_bench.references import SMOKE
from dgl_ssm_bench.yaml_files import load_yaml

SPACES = Path(__file__).resolve().parent / "spaces"
SECTIONS = ("extends", "protocol", "max_params", "fixed", "search", "plain", "ssm", "final")
SEARCHED = ("search", "plain", "ssm")  # sections of searched parameters
KINDS = ("plain", "ssm", "reference")
# Run-config keys that only one kind of model takes, so only that kind's section may search.
ONLY_FOR = {
    "model.residual": "plain",
    "model.calibrate": "ssm",
    **{f"model.{f}": "ssm" for f in ModelConfig.SSM_FIELDS},
}
TYPES = ("float", "int", "categorical")
# What the data are loaded from (once per study); ``data.options.*`` too.
LOADED_ONCE = ("data.name", "data.data_dir", "data.cache_dir")
# Options a fixed reference architecture has its own of (benchmarks.models refuses them).
NOT_FOR_REFERENCES = ("model.norm", "model.activation")
CONFIG_SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig}


class SpaceError(ValueError):
    """A malformed space file: the message names the file, the key and the reason."""


def backbone_kind(name):
    """``"ssm"``, ``"plain"`` (a dgl_ssm model), or ``"reference"`` (a fixed baseline)."""
    if name not in dgl_ssm.MODELS:
        return "reference"
    return "ssm" if dgl_ssm.is_ssm(name) else "plain"


@dataclass
class SearchSpace:
    name: str
    protocol: str | None = None
    max_params: int | None = None
    fixed: dict = field(default_factory=dict)
    search: dict = field(default_factory=dict)
    plain: dict = field(default_factory=dict)
    ssm: dict = field(default_factory=dict)
    final: dict = field(default_factory=dict)
    # The protocol of the space extended, not inherited (see the module docstring), and why.
    dropped_protocol: str | None = field(default=None, compare=False)
    protocol_note: str | None = field(default=None, compare=False)

    def params(self, kind):
        """The searched parameters for a backbone of ``kind`` (see :func:`backbone_kind`)."""
        check_choice("backbone kind", kind, KINDS)
        extra = {"plain": self.plain, "ssm": self.ssm}.get(kind, {})
        params = {**self.search, **extra}
        if kind == "reference":  # its own norm and activation: a searched one would be ignored
            params = {k: v for k, v in params.items() if k not in NOT_FOR_REFERENCES}
        return params

    def grid(self, kind):
        """Every point of the search for ``kind`` when all its keys are categorical (a finite
        grid, walked point by point rather than sampled), else None."""
        params = self.params(kind)
        if not params or any(p["type"] != "categorical" for p in params.values()):
            return None
        keys = sorted(params)
        choices = (params[key]["choices"] for key in keys)
        points = [dict(zip(keys, values)) for values in itertools.product(*choices)]
        return [p for i, p in enumerate(points) if p not in points[:i]]  # a repeated choice once

    def suggest(self, trial, kind):
        """Ask ``trial`` for a value of every parameter searched for ``kind``."""
        values = {}
        for key, spec in self.params(kind).items():
            kind_of_value = spec["type"]
            if kind_of_value == "categorical":
                values[key] = trial.suggest_categorical(key, spec["choices"])
            elif kind_of_value == "int":
                values[key] = trial.suggest_int(
                    key, spec["low"], spec["high"], step=spec.get("step", 1),
                    log=spec.get("log", False),
                )  # fmt: skip
            else:
                values[key] = trial.suggest_float(
                    key, spec["low"], spec["high"], step=spec.get("step"),
                    log=spec.get("log", False),
                )  # fmt: skip
        return values


def find_space(backbone, dataset, folder=SPACES):
    """The most specific space file for the pair (see the module docstring)."""
    for name in (f"{backbone}__{dataset}", dataset, "default"):
        if (Path(folder) / f"{name}.yaml").exists():
            return name
    raise SpaceError(f"{folder}: no default.yaml, and no space for {backbone} × {dataset}.")


def sweep_space(name, folder=SPACES):
    """:func:`load_space`, for a sweep: a space that fixes and searches nothing is refused
    (it would sweep one trial of every default, 200 epochs on Cora). A part of one, say its
    ``final`` section alone, is a space to extend, not to sweep."""
    space = load_space(name, folder)
    if not any(getattr(space, section) for section in ("fixed", *SEARCHED)):
        raise SpaceError(
            f"{name}: the space is empty: it fixes and searches nothing. Give it fixed or "
            f"{', '.join(SEARCHED)} entries, or extend one (e.g. extends: default)."
        )
    return space


def load_space(name, folder=SPACES, _seen=()):
    """Load and validate a space, resolving ``extends`` chains."""
    path = Path(name) if str(name).endswith(".yaml") else Path(folder) / f"{name}.yaml"
    if not path.exists():
        if Path(name).is_dir():
            raise SpaceError(f"--space {name} is a folder; give a space's name or its .yaml file.")
        available = sorted(p.stem for p in Path(folder).glob("*.yaml"))
        hint = did_you_mean(Path(str(name)).stem, available)
        raise SpaceError(f"No search space {str(name)!r}.{hint} Available: {', '.join(available)}.")
    if path.resolve() in _seen:
        raise SpaceError(f"{path}: extends: circular inheritance.")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:  # one line, with the position
        raise SpaceError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: the top level must be a mapping of {', '.join(SECTIONS)}.")
    for section in raw:
        if section not in SECTIONS:
            raise SpaceError(f"{path}: {section}: unknown section; valid: {', '.join(SECTIONS)}.")
    parent = SearchSpace(name="")
    if raw.get("extends"):
        parent = load_space(*_parent_of(raw["extends"], path), (*_seen, path.resolve()))
    space = SearchSpace(name=path.stem, protocol=parent.protocol, max_params=parent.max_params)
    if "max_params" in raw:
        budget = raw["max_params"]
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)
                                   or budget < 1):  # fmt: skip
            raise SpaceError(f"{path}: max_params: must be a positive integer, or null.")
        space.max_params = budget
    if "protocol" in raw:
        protocol = raw["protocol"]
        if protocol is not None and not (isinstance(protocol, str) and protocol.strip()):
            raise SpaceError(f"{path}: protocol: must be a name (e.g. gpp, smoke), or null.")
        space.protocol = protocol
    for section in ("fixed", *SEARCHED, "final"):
        entries = raw.get(section) or {}
        if not isinstance(entries, dict):
            raise SpaceError(f"{path}: {section}: must be a mapping.")
        merged = {**getattr(parent, section), **entries}
        setattr(space, section, {k: v for k, v in merged.items() if v is not None})
    if "protocol" not in raw and parent.protocol not in (None, SMOKE):
        _drop_changed_protocol(space, parent, path)
    _validate(space, path)
    return space


def _drop_changed_protocol(space, parent, path):
    """No inherited protocol for a space that changes its parent's values (a smoke budget
    stays one: it is never set beside a published number anyway)."""
    changed = [section for section in ("max_params", "fixed", *SEARCHED, "final")
               if getattr(space, section) != getattr(parent, section)]  # fmt: skip
    if not changed:
        return
    space.protocol, space.dropped_protocol = None, parent.protocol
    space.protocol_note = (
        f"{path.name} changes {', '.join(changed)} of {parent.name}, which follows the "
        f"{parent.protocol!r} protocol, so its studies follow none: the leaderboard sets no "
        f"published {parent.protocol} number beside them. If the change keeps the protocol, "
        f"say so in the file: protocol: {parent.protocol}"
    )


def _parent_of(extends, path):
    """``(name, folder)`` of the space that ``path`` extends: a YAML path relative to the
    file's folder, a name from that folder, else a name from the shipped spaces (so a space
    of one's own can extend ``cora`` without copying it)."""
    if not isinstance(extends, str) or not extends:
        raise SpaceError(f"{path}: extends: must be a space name or a YAML path, got {extends!r}.")
    if extends.endswith(".yaml"):
        parent = path.parent / extends  # an absolute path stays as it is
        if not parent.is_file():
            raise SpaceError(f"{path}: extends: no file {parent}.")
        return str(parent), path.parent
    if (path.parent / f"{extends}.yaml").exists():
        return extends, path.parent
    if not (SPACES / f"{extends}.yaml").exists():
        error = unknown_name("space", extends, sorted(p.stem for p in SPACES.glob("*.yaml")))
        raise SpaceError(
            f"{path}: extends: {error} (or a space beside it: {path.parent}/{extends}.yaml)"
        )
    return extends, SPACES


def _validate(space, path):
    for key, value in space.fixed.items():
        _check_path(key, path, "fixed")
        apply_values(RunConfig(), {key: value}, where=f"{path}: fixed: {key}")
    for section in SEARCHED:
        for key, spec in getattr(space, section).items():
            where = f"{path}: {section}: {key}"
            _check_path(key, path, section)
            if key in LOADED_ONCE or key.startswith("data.options."):
                raise SpaceError(
                    f"{where}: a study loads its data once, from the fixed values, so every "
                    "trial would train on the same data whatever it records. Set it under "
                    "'fixed:', with one study per value."
                )
            if section != "search" and key in space.search:
                raise SpaceError(
                    f"{where}: also in 'search:'; a knob both kinds of backbone have is searched "
                    "for both alike, under 'search:' only."
                )
            if key in ONLY_FOR and ONLY_FOR[key] != section:
                raise SpaceError(
                    f"{where}: only {ONLY_FOR[key]} models take this option; search it under "
                    f"'{ONLY_FOR[key]}:' (a key in '{section}:' is tried on "
                    f"{'every backbone' if section == 'search' else section + ' backbones'})."
                )
            if not isinstance(spec, dict) or spec.get("type") not in TYPES:
                raise SpaceError(f"{where}: needs type: one of {', '.join(TYPES)}.")
            if spec["type"] == "categorical":
                if not isinstance(spec.get("choices"), list) or not spec["choices"]:
                    raise SpaceError(f"{where}: categorical needs a non-empty list 'choices'.")
                _try_values(key, spec["choices"], where)
                continue
            low, high = spec.get("low"), spec.get("high")
            number = (int,) if spec["type"] == "int" else (int, float)
            if not (isinstance(low, number) and isinstance(high, number) and low <= high):
                raise SpaceError(f"{where}: needs numbers low <= high (got {low!r}, {high!r}).")
            if spec.get("log") and low <= 0:
                raise SpaceError(f"{where}: log scale needs low > 0 (got {low!r}).")
            if "step" in spec:
                _check_step(spec, number, where)
            extra = set(spec) - {"type", "low", "high", "log", "step"}
            if extra:
                raise SpaceError(f"{where}: unknown field(s) {', '.join(sorted(extra))}.")
            # A float between the bounds too: an integer option searched as float fails there.
            inside = [low + (high - low) / math.pi] if spec["type"] == "float" else []
            _try_values(key, [low, high, *inside], where)
    _check_final(space.final, path)


def _check_step(spec, number, where):
    step = spec["step"]
    if isinstance(step, bool) or not isinstance(step, number) or not step > 0:
        kind = "an integer" if spec["type"] == "int" else "a number"
        raise SpaceError(f"{where}: step must be {kind} > 0 (got {step!r}).")
    if spec.get("log") and (spec["type"] == "float" or step != 1):
        raise SpaceError(f"{where}: a log scale takes no step (Optuna's rule); drop one.")


def _check_final(final, path):
    """``final: {runs: N, seeds: [...]}``: N ≥ 1 runs, distinct seeds, at least N of them."""
    unknown = set(final) - {"runs", "seeds"}
    if unknown:
        raise SpaceError(f"{path}: final: unknown key(s) {', '.join(sorted(unknown))}.")
    runs, seeds = final.get("runs"), final.get("seeds")
    if runs is not None and (not is_int(runs) or runs < 1):
        raise SpaceError(f"{path}: final: runs must be an integer ≥ 1 (got {runs!r}).")
    if seeds is None:
        return
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(is_int(x) and 0 <= x < SEED_LIMIT for x in seeds)
    ):
        raise SpaceError(f"{path}: final: seeds must be a list of integers from 0 to "
                         f"{SEED_LIMIT - 1} (got {seeds!r}).")  # fmt: skip
    if len(set(seeds)) != len(seeds):
        raise SpaceError(f"{path}: final: seeds {seeds} repeat a seed; each run needs its own.")
    if runs is not None and runs > len(seeds):
        raise SpaceError(
            f"{path}: final: runs: {runs} but {len(seeds)} seeds; give a seed per run (runs "
            "takes the first; without runs, one run a seed)."
        )


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


def _try_values(key, values, where):
    """Refuse, now rather than at some trial, a value of the search the config would refuse."""
    for value in values:
        apply_values(RunConfig(), {key: value}, where=where)


def apply_values(config, values, where="value"):
    """Set dotted-path ``values`` on a RunConfig (in place) and return it."""
    for key, value in values.items():
        parts = key.split(".")
        if parts[:2] == ["data", "options"]:
            config.data.options[parts[2]] = value
            continue
        if parts == ["seed"]:
            section, field_name = config, "seed"
        else:
            section, field_name = getattr(config, parts[0]), parts[1]
        if not hasattr(section, field_name):
            raise SpaceError(f"{where}: unknown field {key!r}.")
        try:
            setattr(section, field_name, value)
        except ValueError as error:  # the config's own check: name the file and key
            raise SpaceError(f"{where}: {error}") from None
    return config
