"""Point DGL's own dataset classes at local files, so nothing is downloaded.

A DGL dataset looks for raw files in ``raw_dir/<internal name>_<sha1(url)[:8]>/`` and only
downloads when that folder is missing; it also writes its processed cache there. Local raw
files are therefore copied ("staged") into a writable cache folder under exactly that name.
"""

import contextlib
import hashlib
import json
import pickle
import shutil
import socket
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..locks import exclusive_lock


def dgl_layout(dataset_class, raw_dir):
    """DGL's internal name and raw folder for ``dataset_class`` under ``raw_dir``.

    The URL (and so the folder's hash suffix) is built inside the class's ``__init__``, so a
    subclass that skips loading is instantiated to read ``name`` and ``raw_path`` exactly as
    DGL computes them.
    """
    probe_class = type("_LayoutProbe", (dataset_class,), {"_load": lambda self: None})
    probe = probe_class(raw_dir=str(raw_dir), verbose=False)
    return probe.name, Path(probe.raw_path)


def stage_files(copies, target):
    """Copy ``{source path: file name}`` into the folder ``target``, all or nothing (a name
    may be a path inside ``target``, such as ``raw/edge.csv.gz``).

    Files go to ``target.partial`` first, which is renamed at the end, so a killed run never
    leaves a half-staged folder that DGL would take as complete. The folder records each
    source's size and SHA-256 (``MANIFEST``); a ``target`` whose record no longer matches the
    sources, or whose copies have the wrong size, is staged afresh, with the processed data
    DGL kept beside it. So a source that was fixed or replaced is picked up at once. Call it
    inside :func:`exclusive` (``target``), so runs side by side stage one at a time.
    """
    target = Path(target)
    manifest = {name: _fingerprint(Path(source)) for source, name in copies.items()}
    if _is_current(target, manifest):
        _drop_unsealed(target, manifest)
        return
    partial = target.with_name(f"{target.name}.partial")  # one at a time (under the lock)
    shutil.rmtree(partial, ignore_errors=True)  # what a killed run left
    partial.mkdir(parents=True)
    for source, name in copies.items():
        (partial / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, partial / name)
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


@contextlib.contextmanager
def exclusive(target):
    """Hold ``target``'s lock while staging into it and while DGL processes and saves there.

    Runs side by side (two ``reproduce`` queues, or ``--jobs 2``) would otherwise stage the
    same folder at once, one replacing it while the other renames into it or reads it, and
    both let DGL write its processed files there. An advisory ``flock`` on ``<target>.lock``
    serialises them (``msvcrt`` on Windows), and is released however its holder exits.
    """
    target = Path(target)
    with exclusive_lock(target.with_name(f"{target.name}.lock")):
        yield


MANIFEST = "staged_from.json"
SEALED = "processed_sizes.json"


def seal(target):
    """Record the sizes of the processed files DGL saved into ``target``, after a load that
    worked. A processed file not recorded so (a killed save) or cut short since is removed
    before DGL reads it (its binary reader crashes the process on one) and made afresh."""
    target = Path(target)
    sizes = {p.name: p.stat().st_size for p in target.iterdir() if p.is_file()}
    (target / SEALED).write_text(json.dumps(sizes, indent=1, sort_keys=True))


def drop_changed(target, keep=()):
    """Before DGL (or OGB) reads a folder it downloaded into (nothing staged): remove every
    file but ``keep`` (the downloaded raw files, names) that :func:`seal` did not record at
    its present size, so DGL makes it afresh rather than crash on it. That is a processed
    file cut short since the last load that worked, or one a killed save or a killed first
    processing left before any seal."""
    target = Path(target)
    if target.is_dir():
        _drop_unsealed(target, set(keep))


def _drop_unsealed(target, manifest):
    try:
        sealed = json.loads((target / SEALED).read_text())
    except (OSError, ValueError):
        sealed = {}
    for path in target.iterdir():
        own = path.name in manifest or path.name in (MANIFEST, SEALED)
        if path.is_file() and not own and sealed.get(path.name) != path.stat().st_size:
            path.unlink()


def _fingerprint(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {
        "source": str(path.resolve()),
        "size": path.stat().st_size,
        "sha256": digest.hexdigest(),
    }


def _is_current(target, manifest):
    try:
        recorded = json.loads((target / MANIFEST).read_text())
    except (OSError, ValueError):
        return False  # not staged, staged by older code, or a damaged record: stage afresh
    return recorded == manifest and all(
        (target / name).is_file() and (target / name).stat().st_size == entry["size"]
        for name, entry in manifest.items()
    )


@contextlib.contextmanager
def corrupt_files(files, staged=None, source=""):
    """Turn a truncated or corrupt data file into one line naming it and the remedy.

    ``files`` are the source files (checked one by one, only after a failure, to name the
    bad one); ``staged`` is the staged folder, removed so no bad copy or half-processed data
    outlives the fix.
    """
    try:
        yield
    except (*CORRUPT, KeyError, ValueError) as error:
        bad = next((path for path in files if not _readable(path)), None)
        if bad is None and not isinstance(error, CORRUPT) and not _named_array(error):
            raise  # every file reads whole: not a data file's fault
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
        what = (
            f"{bad} is truncated or corrupt"
            if bad
            else f"{', '.join(str(f) for f in files)}: not the expected data (truncated, "
            "corrupt or another dataset's)"
        )
        raise RuntimeError(
            f"{what} ({type(error).__name__}: {' '.join(str(error).split())}). Replace it with "
            f"a fresh copy{' from ' + source if source else ''}; the staged copy is re-made "
            "from it automatically."
        ) from None


CORRUPT = (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, zlib.error)


def _named_array(error):
    """Whether ``error`` is NumPy's for an array an ``.npz`` file does not hold."""
    return isinstance(error, KeyError) and "is not a file in the archive" in str(error)


def _readable(path):
    """Whether ``path`` loads whole: an .npz archive, a pickle, or a text file."""
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                for key in archive.files:
                    archive[key]
        elif path.name.endswith(".index"):
            [int(line) for line in path.read_text().split()]
        else:
            with open(path, "rb") as handle:
                pickle.load(handle, encoding="latin1")
    except Exception:  # any failure to read means this is the file to replace
        return False
    return True


def load_dgl_dataset(
    dataset_class,
    cache,
    raw_path,
    files,
    stage=None,
    *,
    name,
    needed,
    source,
    check=None,
    verbose=False,
):
    """``dataset_class(raw_dir=cache)``, DGL's loader of a dataset kept in ``raw_path``, under
    that folder's lock: ``stage()`` first copies local files in and returns the files to check
    (else DGL downloads into it, and a processed file not sealed at its size is dropped); a
    failed download or a bad file (``files``) is one line naming ``needed`` and ``source``;
    ``check(files)``, given, refuses files that read but that DGL would turn into a wrong
    graph or crash on (it is called with those of ``files`` that exist, before DGL reads
    them); the folder is sealed after a load that works."""
    with exclusive(raw_path):
        if stage is not None:
            files = stage()
        else:
            drop_changed(raw_path, keep=[path.name for path in files])
        with download_errors(name, needed, source, raw_path), corrupt_files(files, raw_path,
                                                                           source):  # fmt: skip
            if check is not None and all(Path(path).is_file() for path in files):
                check(files)
            dataset = dataset_class(raw_dir=str(cache), verbose=verbose)
        seal(raw_path)  # (downloaded too: a save killed or a file cut short later is seen)
    return dataset


@contextlib.contextmanager
def download_errors(dataset, needed, source, folder=None):
    """Turn a failed download into one clear line that says how to use local files. DGL's
    download makes the dataset's ``folder`` before it fetches, and DGL downloads only while
    that folder is missing: one a failed download left empty is removed, so the next run
    tries again."""
    try:
        with _network_timeout(DOWNLOAD_TIMEOUT_S):
            yield
    except (OSError, ConnectionError) as error:
        removed = ""
        if folder is not None and Path(folder).is_dir():
            if not any(p.is_file() for p in Path(folder).rglob("*")):
                shutil.rmtree(folder)
                removed = f" (the empty folder it left, {folder}, is removed: a run tries again)"
        if isinstance(error, FileNotFoundError):  # the download "succeeded" with no file
            raise RuntimeError(
                f"Could not load {dataset}: {error.filename or error} is missing (a download "
                f"that failed, or a staged copy removed){removed}. Without internet, put "
                f"{needed} in a folder and pass it with --data-dir (or set DGL_SSM_DATA); the "
                f"files are at {source}."
            ) from None
        waited = f", no answer in {DOWNLOAD_TIMEOUT_S} s" if _timed_out(error) else ""
        raise RuntimeError(
            f"Could not download {dataset} ({type(error).__name__}{waited}){removed}. Without "
            f"internet, put {needed} in a folder and pass it with --data-dir (or set "
            f"DGL_SSM_DATA); the files are at {source}."
        ) from None


DOWNLOAD_TIMEOUT_S = 60  # per connection attempt and per read, not for the whole file


@contextlib.contextmanager
def _network_timeout(seconds):
    """Give DGL's and OGB's downloads a timeout: on a network that stalls a connection (a
    firewall that drops packets) they would wait for ever. DGL calls ``requests.get`` with
    none (requests then ignores the socket default); OGB's ``urlopen`` takes the socket
    default, which is none."""
    import requests

    get, default = requests.get, socket.getdefaulttimeout()

    def get_with_timeout(url, *args, **kwargs):
        kwargs.setdefault("timeout", seconds)
        return get(url, *args, **kwargs)

    requests.get = get_with_timeout
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        requests.get = get
        socket.setdefaulttimeout(default)


def _timed_out(error, depth=0):
    """Whether ``error`` is, or wraps, a timeout: urllib wraps a connect timeout in a URLError
    (``reason``), and requests a read that stalls mid-file in a ConnectionError (``args``)."""
    import requests
    import urllib3

    if isinstance(error, urllib3.exceptions.NewConnectionError):
        return False  # refused, or no such host: a TimeoutError only for urllib3's old callers
    if isinstance(error, (TimeoutError, requests.Timeout, urllib3.exceptions.TimeoutError)):
        return True
    if not isinstance(error, BaseException) or depth > 4:
        return False
    inner = (getattr(error, "reason", None), error.__cause__, error.__context__, *error.args)
    return any(_timed_out(e, depth + 1) for e in inner if e is not None and e is not error)
