"""JSON-lines records: one whole line per finished run, read back line by line.

The one implementation used by ``dgl-ssm-bench run`` and ``dgl-ssm-bench reproduce``: an
append starts on a new line when the file ends in a partial one (left by a killed writer),
and reading skips such a line with a warning, so no record is glued to or lost with it.
"""

import json
import tempfile
import warnings
from pathlib import Path


def check_writable(path):
    """Fail now, before any work, if ``path`` cannot be appended to (the error names it).

    Creates missing parent folders; a file that did not exist is not left behind.
    """
    path = Path(path)
    existed = path.exists()
    if path.is_dir():
        raise OSError(f"cannot write results to {path}: it is a folder; name a file in it.")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OSError(f"cannot write results to {path}: {blocker} is a file, not a folder.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as error:
        raise OSError(f"cannot write results to {path}: {error.strerror or error}.") from None
    if not existed:
        path.unlink()
    elif path.is_file() and not _holds_records(path):  # (a device such as /dev/full reads forever)
        raise OSError(
            f"cannot write results to {path}: it holds no JSON-lines records (a CSV, say), "
            "so records appended to it could not be read back. Name another file."
        )


def _holds_records(path):
    """Whether ``path`` is empty or has a JSON record line (a file with only one bad line
    that opens a record as ``json.dumps`` does may be a first record cut short by a kill,
    which the next append leaves behind; a one-line YAML config or note is not)."""
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    cut_short = len(lines) == 1 and lines[0].startswith(b'{"')  # as json.dumps writes one
    return not lines or cut_short or any(_is_json(line) for line in lines)


def _is_json(line):
    try:
        json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return True


def make_folder(path, flag="--out"):
    """Create the output folder ``path`` now, before any work; a path that cannot be one
    fails as a one-line ``ValueError`` naming ``flag``."""
    path = Path(path)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ValueError(f"{flag} {path}: {blocker} is a file, not a folder.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        # A probe of its own: processes sharing the folder must not remove each other's.
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write_test"):
            pass
    except OSError as error:
        raise ValueError(
            f"{flag} {path}: cannot write there ({error.strerror or error})."
        ) from None
    return path


def read_records(path):
    """The records of a JSON-lines file; a line that is not JSON (a partial one, left by a
    killed writer) is skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:  # line by line: one stray byte costs its line, not the file
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            warnings.warn(
                f"{path}:{number}: skipping a line that is not a JSON record object (a partial "
                "line left by a killed writer, or an edit)",
                stacklevel=2,
            )
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


class RecordNotAppended(OSError):
    """A finished run's record that could not be appended; the message holds the record."""


def append_or_show(path, record, what):
    """Append ``record`` to ``path``; if that fails (a full disk, say), raise
    :class:`RecordNotAppended`, which carries the record, so the run (``what``, for the
    message) is not lost with it."""
    try:
        append_record(path, record)
    except OSError as error:
        raise RecordNotAppended(
            f"could not append the record of {what} to {path} ({error.strerror or error}); "
            f"it follows, to add by hand:\n{json.dumps(record, sort_keys=True)}"
        ) from None
