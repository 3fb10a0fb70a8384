"""Fresh processes for measurements, under a chosen C allocator, killed above a memory budget.

A fresh process has its own heap and peak resident set; the parent polls it (psutil) and
reports it over budget rather than let it take the machine down. Timings run under glibc's
default allocator, as users run, whose heap fragments (a 16-layer GCN on 100k nodes held ~4×
its live tensors); peak memory is measured ``compact`` (a 64 KiB mmap threshold, so the resident
set tracks live tensors, but epochs get 2–3× slower; a 1 MiB threshold left Cora's 0.7 MB
states on the heap: a checkpointed 256-layer GCN-SSM then held 1,033 MB instead of 54 MB);
depths that do not fit under the default allocator are timed again under tcmalloc
(``libtcmalloc-minimal4``), else ``compact``.

The child is ``python -m dgl_ssm_bench.perf.isolation JOB RESULT``: it unpickles ``(function,
args)`` from JOB and pickles ``function(*args)`` into RESULT.
"""

import ctypes.util
import os
import pickle
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

THRESHOLD_BYTES = 1 << 16
DEFAULT, TCMALLOC, COMPACT = ALLOCATORS = ("default", "tcmalloc", "compact")
ROOT = Path(__file__).resolve().parents[2]
POLL_SECONDS = 0.2


def find_tcmalloc():
    """The shared-library name of tcmalloc for ``LD_PRELOAD``, or ``None`` if not installed
    (or not Linux: macOS's loader ignores ``LD_PRELOAD``, so a timing there would not be
    tcmalloc's, whatever its label said)."""
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.util.find_library("tcmalloc_minimal") or ctypes.util.find_library("tcmalloc")


def deep_allocator():
    """The allocator for timings that do not fit under the default one."""
    return TCMALLOC if find_tcmalloc() else COMPACT


def retimed_label(graph, kind):
    """The name under which a graph's timings under allocator ``kind`` are kept."""
    return f"{graph} [{kind} allocator]"


def split_label(name):
    """``(graph, allocator kind or None)`` of a graph name made by :func:`retimed_label`."""
    for kind in (TCMALLOC, COMPACT):
        if name.endswith(f" [{kind} allocator]"):
            return name[: -len(f" [{kind} allocator]")], kind
    return name, None


def _is_glibc():
    return platform.libc_ver()[0] == "glibc"


def allocator_environment(kind, environ=None):
    """A copy of ``environ`` (default ``os.environ``) for a child under allocator ``kind``:
    ``compact`` adds the mmap-threshold tunable (glibc only), ``tcmalloc`` preloads tcmalloc."""
    env = dict(os.environ if environ is None else environ)
    if kind == TCMALLOC:
        env["LD_PRELOAD"] = ":".join(filter(None, [find_tcmalloc(), env.get("LD_PRELOAD")]))
    tunables = env.pop("GLIBC_TUNABLES", "").split(":")
    tunables = [t for t in tunables if t and not t.startswith("glibc.malloc.mmap_threshold=")]
    if kind == COMPACT and _is_glibc():
        tunables.append(f"glibc.malloc.mmap_threshold={THRESHOLD_BYTES}")
    if tunables:
        env["GLIBC_TUNABLES"] = ":".join(tunables)
    return env


def describe_allocators(subprocess=True, timing=DEFAULT):
    """One line for the report: which allocator setting each kind of figure used."""
    if not subprocess:
        return "the default one (--no-subprocess): peak memory includes heap fragmentation"
    timings = f"{timing} (--allocator)"
    if timing == DEFAULT:
        timings = f"default (as users run), depths that do not fit again under {deep_allocator()}"
    return (
        f"timings: {timings}; peak memory and k-hop: {COMPACT} (fresh processes, mmap threshold "
        f"{THRESHOLD_BYTES >> 10} KiB on glibc, so RSS tracks live tensors)"
    )


def isolated(function, args, budget_mb, allocator=COMPACT, fresh=True):
    """``function(*args)`` in a fresh Python process under ``allocator`` (or here, without
    ``fresh``); a failure or a child above ``budget_mb`` resident MB gives ``{"status":
    "failed" | "over budget", "message": ...}`` instead. Everything must be picklable."""
    if not fresh:
        try:
            return function(*args)
        except Exception as error:  # reported with the other figures; the run goes on
            return {"status": "failed", "message": f"{type(error).__name__}: {error}"}
    with tempfile.TemporaryDirectory() as folder:
        job, result, errors = (Path(folder, name) for name in ("job", "result", "stderr"))
        job.write_bytes(pickle.dumps((function, args)))
        env = allocator_environment(allocator)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "dgl_ssm_bench.perf.isolation", str(job), str(result)]
        with open(errors, "w") as stderr:
            child = psutil.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            try:
                stopped_at = _watch(child, budget_mb)
            except BaseException:  # Ctrl-C or SIGTERM here: the measurement stops with us
                _stop(child)
                raise
        if stopped_at is not None:
            message = f"stopped at {stopped_at:,.0f} MB resident (budget {budget_mb:,.0f} MB)"
            return {"status": "over budget", "message": message}
        if child.returncode != 0:
            tail = " | ".join(errors.read_text().strip().splitlines()[-3:])
            return {"status": "failed", "message": f"exit code {child.returncode}: {tail}"}
        return pickle.loads(result.read_bytes())


def _watch(child, budget_mb):
    """Wait for ``child``; if its resident set outgrows the budget, kill it and return it."""
    while True:
        try:
            child.wait(timeout=POLL_SECONDS)
            return None
        except psutil.TimeoutExpired:
            pass
        try:
            resident_mb = child.memory_info().rss / 2**20
        except psutil.Error:  # it has just ended
            continue
        if resident_mb > budget_mb:
            _stop(child)
            return resident_mb


def _stop(child):
    """Kill ``child`` and whatever it started (a worker of its own would run on alone)."""
    try:
        family = [*child.children(recursive=True), child]
    except psutil.Error:  # it has just ended
        family = [child]
    for process in family:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(family, timeout=10)


if __name__ == "__main__":
    function, args = pickle.loads(Path(sys.argv[1]).read_bytes())
    Path(sys.argv[2]).write_bytes(pickle.dumps(function(*args)))
