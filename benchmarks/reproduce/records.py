"""One record per finished run, keyed by a stable hash of its resolved configuration.

The key covers what decides a run's result: the whole :class:`~benchmarks.config.RunConfig`
less where files live and which device ran it. Keys are recomputed from the stored config
when records are read, through ``RunConfig.from_dict``, so a field added later with a default
keeps old records' keys; a renamed or re-interpreted field bumps ``SCHEMA`` and gets a
migration in ``_migrate``, so no refactor orphans a record.
"""

import hashlib
import json
import warnings
from pathlib import Path

from ..config import RunConfig

SCHEMA = 1
NOT_IN_KEY = {"data": ("data_dir", "cache_dir"), None: ("device",)}


def canonical(config: RunConfig):
    """The config as a plain dict without locations and device: what the key hashes."""
    raw = config.to_dict()
    for section, names in NOT_IN_KEY.items():
        for name in names:
            (raw[section] if section else raw).pop(name, None)
    return raw


def config_key(config: RunConfig):
    text = json.dumps({"schema": SCHEMA, "config": canonical(config)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _migrate(config_dict, schema):
    if schema != SCHEMA:  # no older schema exists yet; a future bump adds its step here
        raise ValueError(f"record schema {schema} is newer than this code's ({SCHEMA})")
    return config_dict


def record_key(record):
    """The key of a stored record, recomputed with the current code."""
    config = RunConfig.from_dict(_migrate(record["config"], record.get("schema", SCHEMA)))
    return config_key(config)


def read_records(path):
    """The records of a JSON-lines file; a partial line (left by a killed writer) is skipped
    with a warning."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            warnings.warn(f"{path}:{number}: skipping a partial line", stacklevel=2)
    return records


def append_record(path, record):
    """Append one line, starting on a new line if the file ends in a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True) + "\n"
    with open(path, "a+b") as handle:
        handle.seek(0, 2)
        if handle.tell():
            handle.seek(-1, 2)
            if handle.read(1) != b"\n":
                line = "\n" + line
        handle.write(line.encode("utf-8"))
        handle.flush()
