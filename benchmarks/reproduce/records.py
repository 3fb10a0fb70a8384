"""One record per finished run, keyed by a stable hash of its resolved configuration.

The key covers what decides a run's result: the whole :class:`~dgl_ssm_bench.config.RunConfig`
less where files live, which device ran it, and options left unset (``None``: "the model's
own default"), and the version of the data it ran on (a generator that changes its output
makes new data, and every record of the old data stops counting). Keys are recomputed from
the stored config when records are read, through ``RunConfig.from_dict``, so a field added
later with a default keeps old records' keys (the ``key`` stored in a record is the one
computed when it was written, for reading by eye); a renamed or re-interpreted field bumps
``SCHEMA`` and gets a migration in ``_migrate``, so no refactor orphans a record.
"""

import functools
import hashlib
import json
import warnings

import torch

from dgl_ssm import build_model
from dgl_ssm.checks import is_real
from dgl_ssm.scaling import scaling_exponents

from ..config import RunConfig
from ..datasets import data_version, num_splits
from ..metrics import METRICS
from ..records import append_record, read_records  # noqa: F401 (one shared implementation)

# 2: calibrated runs rescale their layers' weight decay unless optim.rescale_weight_decay is
# False; schema-1 records of calibrated runs did not, and are read with it set False.
# 3: calibration takes the λ nearest the model's own unless model.calibrate_lambda says
# "centred"; earlier calibrated records centred it, and are read with "centred".
# 4: the rescaled weight decay follows each conv's output-scaling symmetry unless
# optim.rescale_weight_decay says "uniform"; earlier rescaled records scaled every weight
# alike, and are read with "uniform" (one run, and one key, where the two rules agree).
# 5: the key covers the data's version (datasets.data_version), which records store as
# "data_version"; earlier records are read with the version all of them ran on
# (DATA_BEFORE_SCHEMA_5: every committed GPP record is from PNA's generator, version 2).
# 6: runs on many graphs that re-batch them every epoch draw each epoch's order from its own
# stream (train._epoch_order); earlier ones were ordered by a torch seed of seed + epoch, so
# seed s + 1 trained on seed s's batches one epoch late. Their keys cover ORDER_BEFORE_SCHEMA_6,
# so they stop counting (fixed batches are unchanged: each seed's batches hold other graphs).
SCHEMA = 6
DATA_BEFORE_SCHEMA_5 = {"ring_transfer": "drew-v1", "gpp_diameter": "pna-v2",
                        "gpp_sssp": "pna-v2", "gpp_eccentricity": "pna-v2"}  # fmt: skip
ORDER_BEFORE_SCHEMA_6 = "seed+epoch"
NOT_IN_KEY = {"data": ("data_dir", "cache_dir"), None: ("device",)}


def canonical(config: RunConfig):
    """The config as a plain dict without locations, device and unset options: what the key
    hashes."""
    raw = config.to_dict()
    for section, names in NOT_IN_KEY.items():
        for name in names:
            (raw[section] if section else raw).pop(name, None)
    for section in ("model", "data", "optim"):
        raw[section] = {k: v for k, v in raw[section].items() if v is not None}
    for name, default in (("calibrate_lambda", "nearest"), ("calibrate_input", "halve")):
        if raw["model"].get(name) == default:
            del raw["model"][name]  # the default rule, by its name
    rule = raw["optim"].get("rescale_weight_decay")
    if config.model.calibrate is not None and (
        rule is True or (rule == "uniform" and _linear_in_all_weights(config.model))
    ):
        del raw["optim"]["rescale_weight_decay"]  # the default rule, by another name
    return raw


def _linear_in_all_weights(model):
    """Whether every weight of the model's layers scales the conv's output alike (k = 1), so
    that the "uniform" weight-decay rule is the symmetry rule (GCN, SAGE with mean)."""
    return _uniform_scaling(model.name, json.dumps(model.conv_options, sort_keys=True),
                            model.hidden)  # fmt: skip


@functools.cache
def _uniform_scaling(name, conv_options, hidden):
    """:func:`_linear_in_all_weights` for one model, read off a one-layer probe (built off
    torch's global random stream, and quietly: it is no run)."""
    with warnings.catch_warnings(), torch.random.fork_rng():
        warnings.simplefilter("ignore")
        layer = build_model(name, in_feats=1, hidden=hidden, out_feats=1, num_layers=1,
                            conv_options=json.loads(conv_options)).layers[0]  # fmt: skip
    return all(k == 1 for k in scaling_exponents(layer).values())


_LOADED = object()  # config_key's default version: the one this code loads


def config_key(config: RunConfig, version=_LOADED, batch_order=None):
    """The run's key; ``version`` is its data's (None: a dataset without versions), by
    default the one this code loads; ``batch_order`` names an older rule of ordering the
    training graphs (None: this code's)."""
    hashed = {"schema": SCHEMA, "config": canonical(config)}
    version = data_version(config.data.name) if version is _LOADED else version
    if version is not None:
        hashed["data_version"] = version
    if batch_order is not None:
        hashed["batch_order"] = batch_order
    text = json.dumps(hashed, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _migrate(config_dict, schema):
    """A stored config as this code's schema reads it (each bump adds its step here)."""
    if schema > SCHEMA:
        raise ValueError(f"record schema {schema} is newer than this code's ({SCHEMA})")
    calibrated = (config_dict.get("model") or {}).get("calibrate") is not None
    if schema < 2 and calibrated:
        optim = dict(config_dict.get("optim") or {})
        optim.setdefault("rescale_weight_decay", False)
        config_dict = {**config_dict, "optim": optim}
    if schema < 3 and calibrated:
        model = dict(config_dict["model"])
        model.setdefault("calibrate_lambda", "centred")
        config_dict = {**config_dict, "model": model}
    optim = config_dict.get("optim") or {}
    if schema < 4 and calibrated and optim.get("rescale_weight_decay") in (None, True):
        config_dict = {**config_dict, "optim": {**optim, "rescale_weight_decay": "uniform"}}
    return config_dict


def record_key(record):
    """The key of a stored record, recomputed with the current code (``KeyError``,
    ``TypeError`` or ``ValueError`` for a record whose fields a reader would trip on)."""
    stored = record["config"]
    if not isinstance(stored, dict) or any(
        not isinstance(stored.get(section) or {}, dict) for section in ("model", "optim")
    ):
        raise TypeError("its config is not a mapping of sections (model, data, optim, …)")
    schema = record.get("schema", SCHEMA)
    config = RunConfig.from_dict(_migrate(stored, schema))
    reshuffled = num_splits(config.data.name) is None and not config.optim.fixed_batches
    order = ORDER_BEFORE_SCHEMA_6 if schema < 6 and reshuffled else None
    if schema < 5:
        return config_key(config, DATA_BEFORE_SCHEMA_5.get(config.data.name), order)
    # Written by hand without it (tests, users): the data this code loads.
    return config_key(config, record.get("data_version", _LOADED), order)


def check_outcome(record, need_metric=False):
    """Refuse a record whose outcome a table or a summary could not read: a status that is
    no word, a metric of no known name (or none, with ``need_metric``), a finished run
    (status "ok") without a numeric test score."""
    status, metric, test = record["status"], record.get("metric"), record.get("test")
    if not isinstance(status, str):
        raise TypeError(f"status {status!r} is not a word such as 'ok'")
    if (need_metric or metric is not None) and metric not in METRICS:
        raise ValueError(f"metric {metric!r} is none of {', '.join(METRICS)}")
    if status == "ok" and not is_real(test):
        raise TypeError(f"test score {test!r} of a finished run is not a number")


def checked_key(record, where):
    """The record's key, or a ValueError saying which record (``where``) could not be read."""
    try:
        record["row"], record["column"]
        return record_key(record)
    except (KeyError, TypeError, ValueError) as error:
        raise _unreadable(where, error) from None


def checked_outcome(record, where):
    """Refuse, as :func:`checked_key` does, a record whose outcome a table cannot read
    (:func:`check_outcome`, and its CPU time)."""
    try:
        if missing := [f for f in ("status", "test", "cpu_time_s") if f not in record]:
            raise KeyError(*missing)
        check_outcome(record)
    except (KeyError, TypeError, ValueError) as error:
        raise _unreadable(where, error) from None


def _unreadable(where, error):
    if isinstance(error, KeyError):
        names = ", ".join(map(str, error.args))
        detail = f"missing field{'s' * (len(error.args) > 1)} {names}"
    else:
        detail = str(error)
    return ValueError(
        f"{where}: not a reproduction record this code can read ({detail}). Fix or remove "
        "that line; the other records are unaffected."
    )
