"""A Ctrl-C that is never lost: noted by its handler, raised at once or at the next check.

Python raises ``KeyboardInterrupt`` wherever the main thread is when SIGINT comes. Inside a
finalizer it cannot propagate: Python prints "Exception ignored in …" and goes on as if no
Ctrl-C had come. Finalizers run all the time in training, since DGL frees each of its C objects
(a graph, a frame, an index) in a ``__del__``, so now and then a Ctrl-C is silently lost: a run
that should stop trains on to the end. :class:`CtrlC`'s handler notes the signal before it
raises, so a loop that calls :meth:`CtrlC.check` (every epoch) raises it again, and the
swallowed one is not printed.

``dgl-ssm run``, each sweep worker and a sweep's final evaluation loop under a :class:`CtrlC`;
the sweeps raise it at once only where no storage call can be cut in two
(:meth:`CtrlC.interruptible`, :meth:`CtrlC.deferred`).
"""

import signal
import sys
import threading
from contextlib import contextmanager


class CtrlC:
    """One loop's Ctrl-C: whether one came, and whether it may be raised at once.

    Made by :meth:`installed`; off the main thread (no signal reaches it there) it is inert.
    """

    def __init__(self, once=True):
        self.seen = False
        self.raise_at_once = False
        self.once = once
        self._lost = False  # the one raised was swallowed by a finalizer

    def _handle(self, signum, frame):
        # With ``once``, one interrupt per loop (a sweep worker gets the terminal's and its
        # parent's), but one lost in a finalizer does not count: the next one raises.
        if self.seen and self.once and not self._lost:
            return
        self.seen, self._lost = True, False
        if self.raise_at_once:
            raise KeyboardInterrupt

    def _swallowed(self, unraisable, hook):
        # (A signal's KeyboardInterrupt is raised in the main thread only.)
        if issubclass(unraisable.exc_type, KeyboardInterrupt) and (
            threading.current_thread() is threading.main_thread()
        ):
            self._lost = True  # (not printed: the next check raises it again)
        else:
            hook(unraisable)

    def check(self, *_):
        """Raise ``KeyboardInterrupt`` if a Ctrl-C came. (Any arguments are ignored, so it
        serves as a trainer's ``on_epoch(epoch, val)``.)"""
        if self.seen:
            self._lost = False  # raised now: the interrupt of this loop
            raise KeyboardInterrupt

    @classmethod
    @contextmanager
    def installed(cls, signals=(signal.SIGINT, signal.SIGTERM), once=True):
        """A fresh :class:`CtrlC` handling ``signals`` for the block (by default SIGTERM too: a
        scheduler's or ``timeout``'s stop, taken as a Ctrl-C); one not raised yet is raised
        when the block ends. With ``once``, a signal after the one raised is ignored (the
        stop it started is not cut short); without, each one raises, as Python's own handler
        does. A signal ignored (SIGINT in a background job) keeps being ignored; off the main
        thread the handlers are left as they are."""
        ctrl_c = cls(once)
        if threading.current_thread() is not threading.main_thread():
            yield ctrl_c
            return
        previous = {sig: signal.getsignal(sig) for sig in signals}
        taken = [sig for sig, handler in previous.items() if handler is not signal.SIG_IGN]
        for sig in taken:
            signal.signal(sig, ctrl_c._handle)
        hook = sys.unraisablehook
        sys.unraisablehook = lambda unraisable: ctrl_c._swallowed(unraisable, hook)
        try:
            yield ctrl_c
        finally:
            sys.unraisablehook = hook
            for sig in taken:
                signal.signal(sig, signal.SIG_DFL if previous[sig] is None else previous[sig])
        ctrl_c.check()

    @contextmanager
    def interruptible(self):
        """A block where Ctrl-C raises at once (for a sweep worker: one that touches no
        storage)."""
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
