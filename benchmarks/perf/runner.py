"""One run: every section on every graph, then ratios, targets, notes and the report."""

import platform
import shlex
import statistics
import sys
from dataclasses import replace
from functools import partial
from importlib.metadata import version
from math import nan

import dgl
import psutil
import torch
from torch.utils.benchmark import Compare, Timer, timer

from dgl_ssm_bench.device import resolve_device
from dgl_ssm_bench.machine import cpu_model
from dgl_ssm_bench.threads import set_threads

from . import isolation, report
from .measure import (
    breakdown,
    epoch_memory,
    khop_cost,
    rewire_cost,
    round_medians,
    time_epochs,
    time_monitor,
)
from .report import graphs, key, put
from .workload import PYG, graph_specs, load_graph, pyg_available

NOISY_LOAD = 1.25  # load average per core above which timings are flagged as noisy
STALLED_OP_MS = 0.5  # a 64k-float relu slower than this: the threads wait for the cores
RETIMED_UNDER = {
    "tcmalloc": "tcmalloc, as compact as the live tensors and about as fast as glibc's heap",
    "compact": "the compact setting, which zeroes fresh pages for every large tensor: epochs get "
    "slower, the SSM model (more kernel outputs) more so (tcmalloc, libtcmalloc-minimal4, "
    "would not)",
}


def run(config, log=print, argv=None, prog="python -m dgl_ssm_bench.perf"):
    """Measure everything ``config`` asks for and write the report into ``config.out``; return
    ``report`` (the path of perf.md), ``records``, ``ratios``, ``targets`` and ``machine``."""
    started = timer()
    if config.threads:
        set_threads(config.threads)
    if config.memory_budget_gb is None:
        config = replace(config, memory_budget_gb=0.8 * psutil.virtual_memory().available / 2**30)
    device = resolve_device(config.device)
    machine = describe_machine(device, config)
    for line in machine_lines(machine)[:-2]:  # the last two are completed at the end
        log(f"# {line}")
    records, profiles, described = {}, {}, []
    specs = graph_specs(config)
    # The memory section and the checkpointing targets use the large (synthetic) graph.
    large = next((s for s in specs if s.kind == "synthetic"), specs[-1]).name
    if "rewire" in config.sections:
        _rewire_section(config, log, records)
    for spec in specs:
        data = load_graph(spec, config.hidden, device)  # for the breakdown and the report
        described.append(data.describe())
        log(f"# {data.describe()}")
        if "memory" in config.sections and spec.name == large:
            _memory_section(config, spec, device, log, records)
        if "khop" in config.sections:
            _khop_section(config, spec, log, records)
        if "time" in config.sections:
            _time_section(config, spec, device, log, records)
        if "breakdown" in config.sections:
            profiles[spec.name] = _breakdown_section(config, data, log, records)
        if "monitor" in config.sections and spec.kind == "cora":
            _monitor_section(config, spec, device, log, records)
        if "deep" in config.sections and spec.kind == "cora":
            _deep_section(config, spec, device, log, records)
        del data
    machine.update(load_after=psutil.getloadavg(), op_latency_after_ms=op_latency_ms())
    ratios = report.all_ratios(records, config)
    targets = report.evaluate_targets(ratios, config, large)
    meta = {
        "command": f"{prog} " + shlex.join(sys.argv[1:] if argv is None else argv),
        "wall_s": timer() - started,
        "graphs": described,
        "reference": _reference_text(config),
        "machine": machine,
        "machine_lines": machine_lines(machine),
        "breakdown_ops": profiles,
        "notes": _notes(records, machine, config),
    }
    path = report.write_report(config.out, config, records, ratios, targets, meta)
    for line in [f"# {line}" for line in meta["machine_lines"][-2:]]:
        log(line)
    for line in report.ratio_lines(ratios) + report.target_lines(targets):
        log(line)
    log(f"# wall time {meta['wall_s']:.0f} s; report: {path}")
    return dict(report=path, records=records, ratios=ratios, targets=targets, machine=machine)


def _measure(config, log, where, failed, function, *args, allocator=isolation.COMPACT):
    """``function(*args)`` in a fresh process (unless ``--no-subprocess``) within the memory
    budget; if it fails, log that at ``where``, call ``failed(status=…, note=…)``, return None."""
    budget_mb = 1024 * config.memory_budget_gb
    out = isolation.isolated(function, args, budget_mb, allocator, config.subprocess)
    if out["status"] == "ok":
        return out
    log(f"{where}: {out['status']}: {out['message']}")
    failed(status=out["status"], note=out["message"])
    return None


def _memory_section(config, spec, device, log, records):
    """Peak memory of one epoch of plain, SSM and checkpointed SSM, each in a fresh process."""
    first = config.backbones[0]
    for variant in (first, f"{first}_ssm", f"{first}_ssm+ckpt"):
        keep = partial(put, records, "memory", spec.name, variant, depth=config.deepest)
        where = f"[memory] {spec.name} {config.deepest} layers {variant}"
        args = (config, spec, variant, str(device))
        if out := _measure(config, log, where, partial(keep, "peak_mb"), epoch_memory, *args):
            peak, method, seconds = out["peak_mb"], out["method"], out["seconds"]
            log(f"{where}: peak +{peak:,.0f} MB ({method}), epoch {seconds:.3g}s")
            keep("peak_mb", [peak], note=method)
            keep("seconds", [seconds])


def _khop_section(config, spec, log, records):
    """Time, edges and peak memory of ``KHopTransform(K)``, K = 1, 2, … in a fresh process."""
    name = spec.name
    failed = partial(put, records, "khop", name, "khop", "edges")
    if not (out := _measure(config, log, f"[khop] {name}", failed, khop_cost, config, spec)):
        return
    put(records, "khop", name, "input", "edges", [out["input_edges"]], k=0)
    note = "" if out["resettable"] else "peak is cumulative over K (no high-water reset)"
    for step in out["steps"]:
        k, edges, status = step["k"], step["edges"], step["status"]
        keep = partial(put, records, "khop", name, f"khop(K={k})", k=k, status=status)
        if status == "ok":
            log(f"[khop] {name} K={k}: {edges:,} edges ({edges / out['input_edges']:.1f}× the "
                f"input) in {step['seconds']:.3g}s, peak +{step['peak_mb']:,.0f} MB")  # fmt: skip
        else:
            log(f"[khop] {name} K={k}: stopped, {step['message']}")
        keep("edges", [edges] if status == "ok" else [], note=step["message"])
        keep("seconds", [step["seconds"]])
        keep("peak_mb", [step["peak_mb"]], note=note)


REWIRED = "gpp-sized"  # the rewire section's graphs (see workload.gpp_sized_graphs)
REWIRE_VARIANTS = ("one at a time", "batched")


def _rewire_section(config, log, records):
    """Seconds to k-hop rewire GPP-sized graphs one at a time and in batched calls, as training
    prepares them, in one fresh process; the two must give the same graphs."""
    where = f"[rewire] {config.rewire_graphs} {REWIRED} graphs"

    def failed(**status):
        for v in REWIRE_VARIANTS:
            put(records, "rewire", REWIRED, v, "seconds", **status)

    out = _measure(config, log, where, failed, rewire_cost, config, "k-hop rewiring",
                   allocator=config.allocator)  # fmt: skip
    if not out:
        return
    status = {} if out["same"] else {
        "status": "different graphs",
        "note": "batched rewiring gave other graphs than one graph at a time",
    }  # fmt: skip
    medians = {}
    for name, rounds in out["measurements"].items():
        put(records, "rewire", REWIRED, name, "seconds", [m.median for m in rounds], **status)
        medians[name] = round_medians(rounds).median
    one, batched = (medians[v] for v in REWIRE_VARIANTS)
    same = "the same graphs" if out["same"] else "DIFFERENT graphs (a bug: see the notes)"
    log(
        f"{where} at K={out['k']} ({out['edges']:,} edges after): one at a time {one:.3g}s, "
        f"batched {batched:.3g}s ({batched / one:.3f}×); {same}"
    )


def variants_at(config, depth):
    """The variants timed together at ``depth``: twins of every backbone; the checkpointed
    SSM model at the deepest depth; the PyG GCN-SSM at the reference depths (when PyG is
    installed and ``gcn`` is among the backbones)."""
    variants = [model for b in config.backbones for model in (b, f"{b}_ssm")]
    if depth == config.deepest:
        variants.append(f"{config.backbones[0]}_ssm+ckpt")
    reference = "reference" in config.sections and depth in config.reference_depths
    if reference and "gcn" in config.backbones and pyg_available() is None:
        variants.append(PYG)
    return variants


def _time_section(config, spec, device, log, records, depths=None, allocator=None):
    """Epoch times at every depth, each in a fresh process under ``config.allocator``. Depths
    over the memory budget under glibc's default one are timed again, with the deepest that
    fitted, under tcmalloc (or ``compact``), as graph :func:`.isolation.retimed_label`."""
    graph = isolation.retimed_label(spec.name, allocator) if allocator else spec.name
    status, table = {}, []
    for depth in depths or config.depths:
        variants, where = variants_at(config, depth), f"[time] {graph} {depth} layers"
        args = (config, spec, depth, variants, f"time per epoch, {graph}", str(device))

        def failed(depth=depth, variants=variants, **status):
            for v in variants:
                put(records, "time", graph, v, "seconds", depth=depth, **status)

        out = _measure(config, log, where, failed, time_epochs, *args,
                       allocator=allocator or config.allocator)  # fmt: skip
        if out:
            medians, per_round = {}, {}
            for name, rounds in out["measurements"].items():
                put(records, "time", graph, name, "seconds", [m.median for m in rounds], depth)
                table.append(round_medians(rounds))
                medians[name], per_round[name] = table[-1].median, [m.median for m in rounds]
            # The ratio the report and its targets use: the median of the per-round ratios
            # (each round times every model back to back), not a ratio of medians.
            plain = per_round[variants[0]]
            parts = ", ".join(
                f"{name} {t:.3g}s "
                f"({statistics.median(a / b for a, b in zip(per_round[name], plain)):.3f}×)"
                for name, t in medians.items()
            )
            log(f"{where}: {parts}; n={config.repeats} rounds")
        status[depth] = records[key("time", graph, variants[0], "seconds", depth)]["status"]
    if table:
        log(str(Compare(table)))
    over = [depth for depth, found in status.items() if found == "over budget"]
    if over and not allocator and config.subprocess and config.allocator == isolation.DEFAULT:
        again = [depth for depth, found in status.items() if found == "ok"][-1:] + over
        allocator = isolation.deep_allocator()
        depths = ", ".join(map(str, again))
        log(f"[time] {spec.name}: timing {depths} layers again under the {allocator} allocator")
        _time_section(config, spec, device, log, records, again, allocator)


def _monitor_section(config, spec, device, log, records):
    """Time per epoch of GCN-SSM with and without the training monitor (every
    ``config.monitor_every`` epochs), at 64 layers (or the deepest timed), in a fresh process."""
    depth = report.TARGET_DEPTH if report.TARGET_DEPTH in config.depths else max(config.depths)
    every, where = config.monitor_every, f"[monitor] {spec.name} {depth} layers"
    variants = ("gcn_ssm", "gcn_ssm+monitor")

    def failed(**status):
        for v in variants:
            put(records, "monitor", spec.name, v, "seconds", depth=depth, **status)

    args = (config, spec, depth, f"monitor every {every}, {spec.name}", str(device))
    out = _measure(config, log, where, failed, time_monitor, *args, allocator=config.allocator)
    if not out:
        return
    medians = {}
    for name, rounds in out["measurements"].items():
        put(records, "monitor", spec.name, name, "seconds", [m.median for m in rounds], depth)
        medians[name] = round_medians(rounds).median
    plain, watched = (medians[v] for v in variants)
    log(f"{where}: {plain:.3g}s per epoch, monitored every {every}: {watched:.3g}s "
        f"({watched / plain:.3f}×); singular values for {out['with_spectra']} of "
        f"{out['entries']} recorded epochs (the helper's pace), helper CPU "
        f"{out['helper_cpu_s']:.0f}s")  # fmt: skip


def _deep_section(config, spec, device, log, records):
    """Peak memory and time per epoch of the checkpointed GCN-SSM at ``config.deep_depth``
    layers against GCN-SSM at 64 without checkpointing: the peak of one epoch in a fresh
    process under the compact allocator (so that it follows the live tensors), the time of
    ``config.repeats`` epochs in another under ``config.allocator`` (compact's fresh pages
    would slow them)."""
    base = None
    for variant, depth in (("gcn_ssm", report.TARGET_DEPTH), ("gcn_ssm+ckpt", config.deep_depth)):
        keep = partial(put, records, "deep", spec.name, variant, depth=depth)
        where = f"[deep] {spec.name} {depth} layers {variant}"
        args = (config, spec, variant, str(device), depth)
        memory = _measure(config, log, where, partial(keep, "peak_mb"), epoch_memory, *args)
        timed = _measure(config, log, where, partial(keep, "seconds"), epoch_memory, *args,
                         config.repeats, allocator=config.allocator)  # fmt: skip
        if memory:
            keep("peak_mb", [memory["peak_mb"]], note=memory["method"])
        if timed:
            keep("seconds", timed["epoch_seconds"])
        if not (memory and timed):
            continue
        peak, seconds = memory["peak_mb"], statistics.median(timed["epoch_seconds"])
        versus = ""
        if base and min(base) > 0:
            versus = f" ({peak / base[0]:.2f}× and {seconds / base[1]:.1f}× the 64-layer model's)"
        log(f"{where}: peak +{peak:,.0f} MB, {seconds:.3g}s per epoch (median of "
            f"{config.repeats}){versus}")  # fmt: skip
        base = base or (peak, seconds)


def _breakdown_section(config, data, log, records):
    measured, op_diff = breakdown(config, data)
    medians = {}
    for part, rounds in measured.items():
        put(records, "breakdown", data.spec.name, part, "seconds", [m.median for m in rounds])
        medians[part] = round_medians(rounds).median
    parts = ", ".join(f"{part} {seconds * 1e3:.3g} ms" for part, seconds in medians.items())
    ratio = medians["ssm layer"] / medians["plain layer"]
    log(f"[breakdown] {data.spec.name}, one layer fwd+bwd: {parts}; ssm/plain layer {ratio:.3f}")
    return op_diff


def describe_machine(device, config):
    """What the numbers of one run depend on: CPU, libraries, threads, device, load."""
    if device.type == "cuda":
        device = f"cuda ({torch.cuda.get_device_name(device)})"
    return {
        "cpu": cpu_model(), "cores": psutil.cpu_count(),
        "memory_gb": psutil.virtual_memory().total / 2**30,
        "python": platform.python_version(), "torch": torch.__version__, "dgl": dgl.__version__,
        "threads": torch.get_num_threads(), "device": str(device),
        "allocator": isolation.describe_allocators(config.subprocess, config.allocator),
        "load_before": psutil.getloadavg(), "op_latency_ms": op_latency_ms(),
    }  # fmt: skip


def machine_lines(m):
    """Lines for the report's head; the last two are complete at the end of the run."""
    before, after = (
        ", ".join(f"{x:.2f}" for x in m.get(k, ())) for k in ("load_before", "load_after")
    )
    return [
        f"CPU: {m['cpu']}, {m['cores']} cores, {m['memory_gb']:.1f} GB RAM",
        f"torch {m['torch']}, dgl {m['dgl']}, Python {m['python']}",
        f"device: {m['device']}; torch threads: {m['threads']}",
        f"allocator: {m['allocator']}",
        "latency of one small parallel op (relu of 64k floats, Timer median): "
        f"{m['op_latency_ms']:.3f} ms before, {m.get('op_latency_after_ms', nan):.3f} ms after",
        f"load average (1, 5, 15 min) before: {before}; after: {after}",
    ]


def op_latency_ms():
    """Time of a tiny op that torch still splits over its threads, in ms: a few µs when idle;
    whole scheduler ticks when other processes hold the cores (then kernels cost that much)."""
    x = torch.randn(1 << 16)
    relu = Timer("torch.relu(x)", globals={"x": x}, num_threads=torch.get_num_threads())
    return 1e3 * relu.blocked_autorange(min_run_time=0.05).median


def _reference_text(config):
    if "reference" not in config.sections:
        return "Skipped (section not selected)."
    if reason := pyg_available():
        return f'Skipped: torch_geometric is not installed here ({reason}); `pip install ".[pyg]"`.'
    if "gcn" not in config.backbones:
        return "Skipped: the reference is a GCN-SSM, and `gcn` is not among --backbones."
    depths = ", ".join(str(d) for d in config.reference_depths if d in config.depths)
    return (
        f"torch_geometric {version('torch_geometric')}: `GCNConv(add_self_loops=False)` on the "
        "same self-looped graph, update `H + 0.1·relu(conv(H))`, same encoder/head sizes, timed "
        f"in the same rounds as ours at {depths or 'no'} layers; ratio = ours / PyG (below 1: "
        "ours is faster)."
    )


def _notes(records, machine, config):
    notes = []
    loads = machine["load_before"] + machine["load_after"]
    if max(loads) / machine["cores"] > NOISY_LOAD:
        notes.append(
            f"The machine was busy (load average up to {max(loads):.1f} on {machine['cores']} "
            "cores): other processes shared the CPU, so absolute times are noisy. The "
            "interleaving spreads that noise over every model; judge ratios by their min–max."
        )
    latency = max(machine["op_latency_ms"], machine["op_latency_after_ms"])
    if latency > STALLED_OP_MS and machine["threads"] > 1:
        notes.append(
            f"A tiny parallel op took {latency:.2f} ms instead of microseconds: torch's "
            f"{machine['threads']} threads waited for cores held by other processes, so every "
            "kernel cost about that much whatever its size, which inflates the ratio of a model "
            "launching more (smaller) kernels. Rerun with --threads 1, or on an idle machine."
        )
    for graph in graphs(records, "time"):
        if allocator := isolation.split_label(graph)[1]:
            notes.append(
                f"{graph}: the deeper models did not fit in the memory budget under glibc's "
                "default allocator (its heap fragments to ~4× the live tensors), so they were "
                f"timed under {RETIMED_UNDER[allocator]}. The shallowest depth was timed under "
                "both: compare its rows to see how much the allocator alone moves the ratios."
            )
    failed = {}
    for r in records.values():
        if r["status"] not in ("ok", "exceeds max_edges"):
            depth = f" at {r['depth']} layers" if r["depth"] else ""
            where = f"{r['section']}, {r['graph']}{depth}"
            failed.setdefault((where, r["k"]), f"{where}: {r['status']} — {r['note']}")
    notes += failed.values()
    if not config.subprocess:
        notes.append("Peak memory was measured in the benchmark's own process (--no-subprocess).")
    return notes
