"""Files that are never seen half-written: the one home for atomic writes.

Every cache, table and figure the project writes goes through :func:`atomic_write` (one file)
or :func:`write_together` (a set of files): the bytes go to a hidden temporary name in the same
folder first, and only a finished file is renamed over the old one, so a killed process leaves
at most a stray ``.*.tmp`` file, never a truncated cache that a later run would trust.
"""

import contextlib
import os
import secrets
import signal
import threading
from pathlib import Path

# A file of our own, to write bytes into. (O_BINARY: Windows would otherwise open the
# descriptor in text mode, writing each "\n" byte of a PNG as "\r\n".)
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


class signals_held:
    """Hold SIGINT and SIGTERM back (main thread only) while a few writes must all happen;
    a signal that came meanwhile is delivered, to the handler it had, when the block ends.

    (Python handlers, not a signal mask: a process-directed signal would reach another
    thread, e.g. a torch or SQLite one, that does not block it.)
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.caught, self.previous = [], {}
        if threading.current_thread() is threading.main_thread():
            # An ignored signal stays ignored (processes started meanwhile inherit that).
            held = [s for s in self.SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]
            self.previous = {s: signal.signal(s, self._record) for s in held}
        return self

    def _record(self, signum, frame):
        self.caught.append(signum)

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(self.caught):
            signal.raise_signal(signum)
        return False


def _temporary_name(path):
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _check_not_folder(path):
    """Refuse a target that is a folder now: the rename at the end would fail on it, after
    all the work (and, for a set, after the first files of the set were renamed)."""
    if path.is_dir():
        raise IsADirectoryError(
            f"cannot write {path}: a folder has that name. Move or remove it, or choose "
            "another output folder."
        )


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary path beside ``path``; when the block ends without error the file
    written there is flushed to disk and renamed to ``path``, otherwise it is removed.

    The temporary file is created empty (mode 0666 less the umask, like ``open``), so writers
    that take a file name (``np.savez``, ``dgl.save_graphs``, ``Figure.savefig``) can use it::

        with atomic_write(cache) as temporary:
            np.savez(temporary, **arrays)
    """
    path = Path(path)
    _check_not_folder(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_name(path)
    os.close(os.open(temporary, NEW_FILE, 0o666))
    try:
        yield temporary
        with open(temporary, "rb+") as stream:  # the bytes on disk before the name points at them
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_png(figure, path, dpi=120):
    """Write matplotlib's ``figure`` to ``path`` as a PNG (atomically) with no software or
    version stamp, so that its bytes depend on what it shows: a figure rebuilt from unchanged
    results is an unchanged file."""
    with atomic_write(path) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi, metadata={"Software": None})


def write_together(out_dir, outputs):
    """Write ``{name: bytes}`` into ``out_dir`` as one set, as far as a file system allows.

    Every file is first written in full to a hidden temporary name (created with mode 0666,
    so the umask gives the usual 0644); only then are they renamed over the old files, one
    after the other, with SIGINT/SIGTERM held back so a Ctrl-C or kill in the middle cannot
    leave half the tables old and half new. On any error the temporary files are removed
    and the old files stay as they were (unless the renaming itself failed part-way).
    """
    out_dir = Path(out_dir)
    for name in outputs:
        _check_not_folder(out_dir / name)
    temps = {}
    with signals_held():
        try:
            for name, data in outputs.items():
                tmp = _temporary_name(out_dir / name)
                fd = os.open(tmp, NEW_FILE, 0o666)
                temps[name] = tmp
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
            for name, tmp in list(temps.items()):
                os.replace(tmp, out_dir / name)
                del temps[name]
        finally:
            for tmp in temps.values():
                tmp.unlink(missing_ok=True)
    return {name: out_dir / name for name in outputs}
