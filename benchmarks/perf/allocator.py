"""The C allocator setting of each measurement, and why timings and memory differ in it.

Timings run under glibc's default allocator, as users run their models. Its heap is fast
(freed blocks are reused without touching the OS) but fragments: with the dynamic mmap
threshold, every ``N × d`` activation is carved out of the heap, medium temporaries split the
freed large blocks, and on the 100k-node graph a 16-layer GCN held ~4× the memory of its live
tensors (4.1 GB instead of 0.94 GB; 64 layers were killed at 18 GB). Its resident set
measures fragmentation, not the model.

Peak memory is therefore measured in fresh processes with a fixed 1 MiB mmap threshold
(glibc tunable, read at process start): every large block gets its own ``mmap`` and is
returned on ``free``, so the resident set tracks live tensors. Fresh pages are faulted in and
zeroed on every allocation, which makes epochs 2–3× slower and charges each extra kernel
output more.

Depths that do not fit under the default allocator are timed again under tcmalloc when it is
installed (``libtcmalloc-minimal4`` on Debian/Ubuntu), preloaded into the worker: it keeps
freed blocks for reuse without fragmenting, so it is both compact (a 128-layer GCN-SSM on the
100k-node graph held 6.5 GB, its live tensors) and as fast as glibc's heap. Without tcmalloc
they are timed under the compact glibc setting above. Either way those timings are marked.
"""

import ctypes.util
import os
import platform

THRESHOLD_BYTES = 1 << 20
TUNABLE = f"glibc.malloc.mmap_threshold={THRESHOLD_BYTES}"
COMPACT = "compact"
DEFAULT = "default"
TCMALLOC = "tcmalloc"
ALLOCATORS = (DEFAULT, TCMALLOC, COMPACT)


def find_tcmalloc():
    """The shared-library name of tcmalloc for ``LD_PRELOAD``, or ``None`` if not installed."""
    for name in ("tcmalloc_minimal", "tcmalloc"):
        found = ctypes.util.find_library(name)
        if found:
            return found
    return None


def check_allocator(kind):
    """Raise a ``ValueError`` saying how to install tcmalloc if ``kind`` needs it and it is not
    installed."""
    if kind == TCMALLOC and find_tcmalloc() is None:
        raise ValueError(
            "--allocator tcmalloc: tcmalloc is not installed. Install it (Debian/Ubuntu: "
            "apt install libtcmalloc-minimal4; conda: conda install gperftools) or use "
            "--allocator default."
        )


def deep_allocator():
    """The allocator for timings that do not fit under the default one (see module doc)."""
    return TCMALLOC if find_tcmalloc() else COMPACT


def retimed_label(graph, kind):
    """The name under which a graph's timings under allocator ``kind`` are kept."""
    return f"{graph} [{kind} allocator]"


def split_label(name):
    """``(graph, allocator kind or None)`` of a graph name made by :func:`retimed_label`."""
    for kind in (TCMALLOC, COMPACT):
        suffix = f" [{kind} allocator]"
        if name.endswith(suffix):
            return name[: -len(suffix)], kind
    return name, None


def _is_glibc():
    return platform.libc_ver()[0] == "glibc"


def allocator_environment(kind, environ=None):
    """A copy of ``environ`` for a child process running under allocator ``kind``.

    ``"compact"`` adds the mmap-threshold tunable (glibc only); ``"tcmalloc"`` preloads
    tcmalloc; ``"default"`` does neither.
    """
    env = dict(os.environ if environ is None else environ)
    if kind == TCMALLOC:
        preload = [find_tcmalloc(), env.get("LD_PRELOAD")]
        env["LD_PRELOAD"] = ":".join(filter(None, preload))
    current = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t]
    kept = [t for t in current if not t.startswith("glibc.malloc.mmap_threshold=")]
    if kind == COMPACT and _is_glibc():
        kept.append(TUNABLE)
    if kept:
        env["GLIBC_TUNABLES"] = ":".join(kept)
    else:
        env.pop("GLIBC_TUNABLES", None)
    return env


def describe_allocators(subprocess=True, timing=DEFAULT):
    """One line for the report: which allocator setting each kind of figure used."""
    if not _is_glibc():
        preloaded = " except timings under tcmalloc (--allocator)" if timing == TCMALLOC else ""
        return f"the platform's default allocator (not glibc) for everything{preloaded}"
    if not subprocess:
        return (
            "glibc default for everything (--no-subprocess): peak memory includes heap "
            "fragmentation"
        )
    if timing == DEFAULT:
        deep = "tcmalloc" if deep_allocator() == TCMALLOC else "the compact setting below"
        timings = (
            f"glibc default (as users run), and depths that do not fit in it again under {deep}"
        )
    else:
        timings = f"{timing} (--allocator)"
    return (
        f"timings: {timings}; peak memory and k-hop: fresh processes with mmap threshold "
        f"{THRESHOLD_BYTES // 1024} KiB, so RSS tracks live tensors"
    )
