"""One process at a time: an exclusive lock on a file, held for a block, on every platform.

``fcntl.flock`` on POSIX; on Windows (no ``fcntl``) ``msvcrt.locking`` on the file's first
byte. Both are released when the holder closes the file or exits, even killed. Used where
processes side by side must take turns: staging a dataset into a shared cache, creating a
sweep's next trial in a SQLite study.
"""

import contextlib
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

POLL_SECONDS = 0.05


@contextlib.contextmanager
def exclusive_lock(path):
    """Hold an exclusive lock on ``path`` (created if missing) for the block, waiting for
    any other process holding it first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
            return
        descriptor = handle.fileno()
        handle.seek(0)
        while True:  # (msvcrt's blocking mode gives up after 10 s: poll instead)
            try:
                msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
                break
            except PermissionError:  # (EACCES: another process holds it)
                time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            handle.seek(0)
            msvcrt.locking(descriptor, msvcrt.LK_UNLCK, 1)
