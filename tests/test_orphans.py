"""A spawned worker acts once its parent has exited, even killed outright; not before."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

from dgl_ssm_bench.orphans import on_parent_exit
from tests.conftest import still_running

# A parent that spawns one worker and waits for it forever; the worker prints its PID, and
# when the parent is gone writes a file (its act) and exits.
FAMILY = textwrap.dedent("""
    import multiprocessing, os, sys, time

    def worker(done):
        from dgl_ssm_bench.orphans import on_parent_exit

        watched = on_parent_exit(lambda: (open(done, "w").close(), os._exit(0)))
        print(os.getpid(), watched, flush=True)
        time.sleep(600)

    if __name__ == "__main__":
        child = multiprocessing.get_context("spawn").Process(target=worker, args=(sys.argv[1],))
        child.start()
        child.join()
""")

# A run with a training monitor, whose helper process computes spectra in the background.
# (The monitor is kept: a monitor let go shuts its helper down itself, about 2 s later.)
MONITORED_RUN = textwrap.dedent("""
    import os, time
    from dgl_ssm_bench.monitor import TrainingMonitor

    if __name__ == "__main__":
        monitor = TrainingMonitor(every=1)
        helper = monitor._executor().submit(os.getpid).result()
        print(helper, True, flush=True)
        time.sleep(600)
""")


def killed_parent_leaves(tmp_path, script):
    """Run ``script`` (which prints its worker's PID), check the worker lives while the
    script does, SIGKILL the script: the worker's psutil.Process, if it outlived it."""
    (tmp_path / "parent.py").write_text(script)
    parent = subprocess.Popen([sys.executable, "parent.py", str(tmp_path / "parent-gone")],
                              cwd=tmp_path, stdout=subprocess.PIPE, text=True)  # fmt: skip
    worker = None
    try:
        pid, watched = parent.stdout.readline().split()
        worker = psutil.Process(int(pid))
        assert watched == "True"
        # The monitor's helper runs only on idle CPU time (SCHED_IDLE, all its threads): beside
        # tests that keep the cores busy it may wait minutes for the moment it needs to exit.
        # Whether it exits is the question here, not when the scheduler lets it (a process
        # with CAP_SYS_NICE may lift the policy).
        with contextlib.suppress(AttributeError, PermissionError):
            for thread in worker.threads():
                os.sched_setscheduler(thread.id, os.SCHED_OTHER, os.sched_param(0))
        time.sleep(1)
        assert worker.is_running()  # the parent lives: nothing done
        parent.send_signal(signal.SIGKILL)  # no chance to stop its worker itself
        parent.wait(timeout=30)
        return still_running([worker], timeout=30)
    finally:  # a failed run's leftovers
        parent.kill()
        if worker is not None and worker.is_running():
            worker.kill()


def test_a_worker_acts_once_its_parent_is_killed_and_not_before(tmp_path):
    assert not killed_parent_leaves(tmp_path, FAMILY), "the worker outlived its parent"
    assert (tmp_path / "parent-gone").exists()  # it went by its act, not by some other way


def test_the_monitors_helper_ends_with_its_run(tmp_path):
    # It waits on a queue it holds itself: a run killed outright would leave it waiting.
    assert not killed_parent_leaves(tmp_path, MONITORED_RUN), "the helper outlived its run"


def test_a_process_multiprocessing_did_not_start_is_left_alone():
    assert on_parent_exit(lambda: os._exit(1)) is False  # pytest's process: no parent watched
