"""Ctrl-C in a sweep worker, raised only where it cannot leave the study's storage stuck.

A ``KeyboardInterrupt`` raised at an arbitrary point can land inside a storage call, between
SQLite running a query and SQLAlchemy closing its cursor. The cursor, kept alive by the
traceback, holds SQLite's shared lock, so the worker's own re-queueing of its trial then
waits on itself until the busy timeout (60 s) and fails; meanwhile the parent gives up and
kills it. So a worker's SIGINT handler only notes the Ctrl-C, and raises at once only inside
code marked :meth:`CtrlC.interruptible` (training, data loading, sleeping), which touches no
storage. Elsewhere the interrupt is raised at the next :meth:`CtrlC.check`: the start of the
next epoch's report and of the worker loop. A second SIGINT (the parent forwards Ctrl-C to
its workers) is ignored: one interrupt per worker.
"""

import signal
import threading
from contextlib import contextmanager


class CtrlC:
    """The worker's Ctrl-C state: whether one came, and whether it may be raised at once."""

    def __init__(self):
        self.seen = False
        self.raise_at_once = False

    def _handle(self, signum, frame):
        if self.seen:
            return
        self.seen = True
        if self.raise_at_once:
            raise KeyboardInterrupt

    def check(self):
        """Raise ``KeyboardInterrupt`` if a Ctrl-C came since :meth:`installed`."""
        if self.seen:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self):
        """Handle SIGINT as above for the block (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        self.seen, self.raise_at_once = False, False
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextmanager
    def interruptible(self):
        """A block that touches no storage: Ctrl-C raises in it at once."""
        outer, self.raise_at_once = self.raise_at_once, True
        try:
            self.check()  # after raise_at_once: a Ctrl-C in between is not lost
            yield
        finally:
            self.raise_at_once = outer

    @contextmanager
    def deferred(self):
        """A storage call inside an interruptible block: Ctrl-C waits until it is done."""
        outer, self.raise_at_once = self.raise_at_once, False
        try:
            yield
        finally:
            self.raise_at_once = outer
        self.check()
