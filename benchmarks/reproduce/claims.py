"""Claims on runs: a run one ``reproduce`` process has started is left to it by any other.

Two processes over the same records (two terminals, overlapping ``--rows`` or ``--part``)
would otherwise both train every run neither had recorded when it started. A claim is an
exclusive ``flock`` on ``<out>/.claims/<part>-<key>``: the kernel drops it when its process
ends, however it ends (a ``kill -9`` included), so no claim outlives its run. Where ``flock``
does not exist (Windows), every claim is granted: runs are then only skipped once recorded.
The runner (:mod:`.execute`) starts the other runs meanwhile and takes a claimed one after
all if its holder ends without recording it.
"""

import contextlib
import os
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None

CLAIMS = ".claims"


@contextlib.contextmanager
def claim(out, part, key):
    """Hold the claim on run ``key`` of ``part`` under ``out`` for the block.

    Yields ``None`` when this process holds it, or a description of the process that holds
    it (``"process 1234"``) when another one does; then the caller must not run it. A claim
    this process held is removed when the block ends.

    Examples
    --------
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> with claim(out, "ring", "0123abcd") as holder:
    ...     holder is None
    True
    """
    if fcntl is None:
        yield None
        return
    folder = Path(out) / CLAIMS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{part}-{key}"
    handle = _lock(path)
    if handle is None:
        yield _holder(path)
        return
    try:
        handle.truncate(0)
        handle.write(f"process {os.getpid()}\n")
        handle.flush()
        yield None
    finally:
        # Unlinked before the lock is dropped: a process that opened this file meanwhile
        # finds it gone once it gets the lock (see _lock), and claims a new one.
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        handle.close()


def holder(out, part, key):
    """Who holds the claim on run ``key`` of ``part`` under ``out`` (``"process 1234"``), or
    None when no live process does. Looks without claiming: no claim file is made."""
    path = Path(out) / CLAIMS / f"{part}-{key}"
    if fcntl is None or not path.exists():
        return None
    try:
        with open(path) as handle:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: free when unheld
            return None
    except BlockingIOError:
        return _holder(path)
    except FileNotFoundError:  # released meanwhile
        return None


def _lock(path):
    """The open, locked claim file at ``path``, or None when another process holds it."""
    while True:
        handle = open(path, "a+")  # noqa: SIM115 (held for the whole run; closed by claim)
        if not _flock_soon(handle):
            handle.close()
            return None
        try:
            now, opened = os.stat(path), os.fstat(handle.fileno())
            current = (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino)
        except FileNotFoundError:
            current = False
        if current:
            return handle
        handle.close()  # its holder finished and removed it as we opened it: try again


def _flock_soon(handle, tries=6, pause_s=0.02):
    """Lock ``handle`` exclusively, trying again for a moment: a look (:func:`holder`, as
    ``--list`` does) holds a shared lock for microseconds on a claim file a killed run left,
    and that run must not be taken for held and set aside for a while. A run's own claim is
    held for minutes, so this pause costs nothing where the claim is really held."""
    for attempt in range(tries):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < tries:
                time.sleep(pause_s)
    return False


def _holder(path):
    try:
        return Path(path).read_text().strip() or "another process"
    except OSError:
        return "another process"
