"""Run measurement jobs in fresh Python processes, watched so they cannot exhaust the machine.

A fresh process starts from a clean heap and a clean high-water mark, so its peak resident
set is its own, and it runs under the allocator setting the measurement needs (see
:mod:`.allocator`). The parent polls the child's resident set and stops it above the memory
budget: the job is then reported as over budget rather than taking down the machine (and
other people's processes) with it. Results are logged as they arrive.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..memory import process_rss_mb
from .allocator import COMPACT, allocator_environment
from .worker import MARK, run_job

PROJECT_ROOT = Path(__file__).resolve().parents[2]
POLL_SECONDS = 0.2


def run_jobs(jobs, budget_mb, isolated=True, fresh=True, allocator=COMPACT, on_result=None):
    """Run worker ``jobs`` and return one result dict per job, in order.

    Parameters
    ----------
    jobs : list of dict
        Job dicts of :mod:`.worker`.
    budget_mb : float
        Resident-set limit of a child process.
    isolated : bool
        Run in child processes (else in this one: faster, unguarded, default allocator).
    fresh : bool
        One child per job, or one child for a batch of jobs (a job that fails or is
        stopped ends its child; the jobs after it start in a new one).
    allocator : {"default", "tcmalloc", "compact"}
        The children's allocator (see :func:`.allocator.allocator_environment`).
    on_result : callable, optional
        Called with ``(job, result)`` as each result arrives.
    """
    on_result = on_result or (lambda job, result: None)
    if not isolated:
        cache, results = {}, []
        for job in jobs:
            results.append(_guarded(job, cache))
            on_result(job, results[-1])
        return results
    results = []
    while len(results) < len(jobs):
        batch = jobs[len(results) :][:1] if fresh else jobs[len(results) :]
        results += _run_in_child(batch, budget_mb, allocator, on_result)
    return results


def _guarded(job, cache):
    try:
        return run_job(job, cache)
    except Exception as error:  # report it with the other figures; the run goes on
        return {"status": "failed", "message": f"{type(error).__name__}: {error}"}


def _run_in_child(jobs, budget_mb, allocator, on_result):
    """Results of the leading jobs of ``jobs`` (at least one: the failed one, if any)."""
    env = allocator_environment(allocator)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    results, lines = [], []
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.perf.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=PROJECT_ROOT,
            text=True,
        )
        # A thread drains stdout, so results can be logged while the child still works.
        reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)
        reader.start()
        child.stdin.write(json.dumps(jobs))
        child.stdin.close()
        child_peak, over_budget = 0.0, False
        while child.poll() is None:
            _collect(lines, jobs, results, on_result)
            rss = process_rss_mb(child.pid) or 0.0
            child_peak = max(child_peak, rss)
            if rss > budget_mb:
                child.kill()
                child.wait()
                over_budget = True
                break
            time.sleep(POLL_SECONDS)
        reader.join()
        _collect(lines, jobs, results, on_result)
        if len(results) == len(jobs):
            return results
        if over_budget:
            failed = {
                "status": "over budget",
                "message": f"stopped at {child_peak:,.0f} MB resident (budget {budget_mb:,.0f} MB)",
            }
        else:
            err.seek(0)
            tail = err.read().strip().splitlines()[-3:]
            failed = {
                "status": "failed",
                "message": f"exit code {child.returncode}: " + " | ".join(tail),
            }
        on_result(jobs[len(results)], failed)
        return results + [failed]


def _collect(lines, jobs, results, on_result):
    """Turn the result lines read so far into results (each once)."""
    marked = [line for line in list(lines) if line.startswith(MARK)]
    for line in marked[len(results) : len(jobs)]:
        results.append(json.loads(line[len(MARK) :]))
        on_result(jobs[len(results) - 1], results[-1])
