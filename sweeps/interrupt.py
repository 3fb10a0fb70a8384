"""Ctrl-C in a sweep worker, raised only where it cannot leave the study's storage stuck.

A ``KeyboardInterrupt`` raised at an arbitrary point can land inside a storage call, between
SQLite running a query and SQLAlchemy closing its cursor. The cursor, kept alive by the
traceback, holds SQLite's shared lock, so the worker's own re-queueing of its trial then
waits on itself until the busy timeout (60 s) and fails; meanwhile the parent gives up and
kills it. So a worker loops under a :class:`~dgl_ssm_bench.ctrl_c.CtrlC`, whose handler
only notes the Ctrl-C, and raises at once only inside code marked ``interruptible``
(training, data loading, sleeping), which touches no storage. Elsewhere the interrupt is
raised at the next ``check`` (each epoch's report, the worker loop before it takes a trial)
or when the worker's block ends. A second SIGINT (the parent forwards Ctrl-C to its workers)
is ignored: one interrupt per worker.

Worker processes are started by :func:`start_holding_ctrl_c` and take Ctrl-C back with
:func:`take_back_ctrl_c`: between the two, SIGINT is blocked, so a Ctrl-C that comes while the
parent starts them or while they import (seconds of torch and DGL) is held, neither lost nor a
traceback, and raised where each process can act on it.

SIGTERM (``kill``, ``timeout``, a batch scheduler) stops a sweep as Ctrl-C does: the parent
takes it as ``KeyboardInterrupt`` (:func:`terminate_as_ctrl_c`) and forwards a stop to its
workers (:func:`forwarded_stop`), and a worker's ``CtrlC`` takes either signal. A worker
also sends itself SIGTERM once its parent has exited, even killed (:func:`stop_with_parent`),
so no worker trains on alone.
"""

import os
import signal
import threading
from contextlib import contextmanager

from dgl_ssm_bench.files import signals_held
from dgl_ssm_bench.orphans import on_parent_exit

_MASKS = hasattr(signal, "pthread_sigmask")  # POSIX; elsewhere nothing is held


@contextmanager
def terminate_as_ctrl_c():
    """SIGTERM (``kill``, ``timeout``, a batch scheduler) raises ``KeyboardInterrupt`` in the
    block, as Ctrl-C does, so the sweep stops its workers the same way: their trials queued
    again, none left running. Unchanged where SIGTERM is ignored or off the main thread."""
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    ):
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate_once)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _terminate_once(signum, frame):
    # Ignored from now on: a second SIGTERM (coreutils' timeout sends two, microseconds
    # apart) must not interrupt the stop this one starts before it can begin.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def forwarded_stop():
    """The signal that asks a worker to stop: SIGINT, but SIGTERM where SIGINT is ignored (a
    sweep started in the background: its workers inherit the ignoring, not SIGTERM's)."""
    return signal.SIGTERM if signal.getsignal(signal.SIGINT) is signal.SIG_IGN else signal.SIGINT


def stop_with_parent():
    """Have this worker stopped as on a Ctrl-C (SIGTERM to itself) once its parent, the sweep,
    has exited, even killed outright, so that no worker trains on alone. (On Windows SIGTERM
    ends a process at once: its trial is then failed by the next sweep's heartbeat check.)
    Whether there is a parent to watch (a process that multiprocessing spawned)."""
    return on_parent_exit(lambda: os.kill(os.getpid(), signal.SIGTERM))


def start_holding_ctrl_c(processes):
    """Start ``processes`` (spawned) with SIGINT blocked; a Ctrl-C that came meanwhile is
    raised here once they have all started. They inherit the mask, and their handlers are
    reset by exec: each calls :func:`take_back_ctrl_c`. Where this process ignores SIGINT (a
    background job), nothing is blocked and they inherit the ignoring."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN or not _MASKS:
        # A SIGTERM is raised once they have all started, not mid-start (an ignored SIGINT is
        # left ignored by signals_held, so they inherit that).
        with signals_held():
            for process in processes:
                process.start()
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    try:
        # multiprocessing's resource tracker unblocks SIGINT once it has started (with the
        # first process): started first, so that it does not release the hold early.
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        with signals_held():  # one that another thread of this process takes
            for process in processes:
                process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # the held one is raised here


def take_back_ctrl_c():
    """In a process started by :func:`start_holding_ctrl_c`: SIGINT unblocked, so that a
    Ctrl-C held while the process started is raised now, as ``KeyboardInterrupt``. Its handler
    is Python's own, installed at start-up, or the ignoring inherited from a background job."""
    if _MASKS:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
