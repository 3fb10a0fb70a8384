"""A spawned worker acts once its parent has exited, even killed outright; not before."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

from dgl_ssm_bench.orphans import on_parent_exit

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


def test_a_worker_acts_once_its_parent_is_killed_and_not_before(tmp_path):
    (tmp_path / "family.py").write_text(FAMILY)
    done = tmp_path / "parent-gone"
    parent = subprocess.Popen([sys.executable, "family.py", str(done)], cwd=tmp_path,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    worker = None
    try:
        pid, watched = parent.stdout.readline().split()
        worker = psutil.Process(int(pid))
        assert watched == "True"
        time.sleep(1)
        assert worker.is_running() and not done.exists()  # the parent lives: nothing done
        parent.send_signal(signal.SIGKILL)  # no chance to stop its worker itself
        parent.wait(timeout=30)
        gone, alive = psutil.wait_procs([worker], timeout=30)
        assert not alive, "the worker outlived its parent"
        assert done.exists()  # it went by its act, not by some other way
    finally:  # a failed run's leftovers
        parent.kill()
        if worker is not None and worker.is_running():
            worker.kill()


def test_a_process_multiprocessing_did_not_start_is_left_alone():
    assert on_parent_exit(lambda: os._exit(1)) is False  # pytest's process: no parent watched
