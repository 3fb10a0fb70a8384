"""One run of the benchmark: every section on every graph, then ratios, targets, report."""

import shlex
import sys
import time

import torch

from benchmarks.train import resolve_device

from .allocator import COMPACT, TCMALLOC, describe_allocators, split_label
from .breakdown import measure_breakdown
from .epoch_time import time_epochs
from .graphs import graph_specs, load_graph
from .khop_cost import measure_khop
from .machine import available_memory_gb, describe_machine
from .memory import measure_memory
from .ratios import all_ratios
from .reference import pyg_available, pyg_version
from .report import ratio_lines, target_lines, write_report
from .results import Results
from .targets import evaluate_targets

NOISY_LOAD = 1.25  # load average per core above which timings are flagged as noisy
STALLED_OP_MS = 0.5  # a 64k-float relu slower than this: the threads wait for the cores

RETIMED_UNDER = {
    TCMALLOC: "tcmalloc, which reuses freed blocks without fragmenting (as compact as the live "
    "tensors and about as fast as glibc's heap)",
    COMPACT: "the compact allocator, which returns every large block to the OS. It zeroes "
    "fresh pages for every large tensor: epochs get slower and the model with more kernel "
    "outputs (SSM) pays more. Installing tcmalloc (libtcmalloc-minimal4) lets the benchmark "
    "use it instead",
}


def run(config, log=print, argv=None, prog="python -m benchmarks.perf"):
    """Measure everything ``config`` asks for and write the report into ``config.out``.

    Returns
    -------
    dict
        ``report`` (path of perf.md), ``results``, ``ratios``, ``targets``, ``machine``.
    """
    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    machine = describe_machine(device, describe_allocators(config.subprocess, config.allocator))
    budget_mb = 1024 * (config.memory_budget_gb or 0.8 * available_memory_gb())
    for line in machine.lines():
        log(f"# {line}")
    results = Results()
    specs = graph_specs(config)
    # The memory section and the checkpointing targets use the large (synthetic) graph.
    large = next((s for s in specs if s.kind == "synthetic"), specs[-1]).name
    described = []
    for spec in specs:
        data = load_graph(spec, config.hidden, device)  # for the breakdown and the report
        described.append(data.describe())
        log(f"# {data.describe()}")
        if "memory" in config.sections and spec.name == large:
            results.records += measure_memory(config, spec, device, budget_mb, log)
        if "khop" in config.sections:
            results.records += measure_khop(config, spec, budget_mb, log)
        if "time" in config.sections:
            results.records += time_epochs(config, spec, device, budget_mb, log)
        if "breakdown" in config.sections:
            records, op_diff = measure_breakdown(config, data, device, log)
            results.records += records
            results.profiles[spec.name] = op_diff
        del data
    machine.finish()
    ratios = all_ratios(results, config)
    targets = evaluate_targets(ratios, config, large)
    _add_notes(results, machine, config)
    meta = {
        "command": f"{prog} " + shlex.join(sys.argv[1:] if argv is None else argv),
        "wall_s": time.perf_counter() - started,
        "graphs": described,
        "reference": _reference_text(config),
    }
    report = write_report(config.out, machine, config, results, ratios, targets, meta)
    for line in ratio_lines(ratios):
        log(line)
    for line in target_lines(targets):
        log(line)
    log(f"# wall time {meta['wall_s']:.0f} s; report: {report}")
    return {
        "report": report,
        "results": results,
        "ratios": ratios,
        "targets": targets,
        "machine": machine,
    }


def _reference_text(config):
    if "reference" not in config.sections:
        return "Skipped (section not selected)."
    reason = pyg_available()
    if reason is not None:
        return (
            f"torch_geometric is not installed here ({reason}), so the PyG comparison was "
            "skipped. Install it (`pip install torch_geometric`; check with `--dry-run` that "
            "it keeps this torch) to get the ours / PyG ratios."
        )
    if "gcn" not in config.backbones:
        return "Skipped: the reference is a GCN-SSM, and `gcn` is not among --backbones."
    depths = [d for d in config.reference_depths if d in config.depths]
    return (
        f"torch_geometric {pyg_version()}: `GCNConv(add_self_loops=False)` on the same "
        f"self-looped graph, update `H + 0.1·relu(conv(H))`, same encoder/head sizes, timed "
        f"in the same rounds as ours at {', '.join(map(str, depths)) or 'no'} layers; "
        "ratio = ours / PyG (below 1: ours is faster)."
    )


def _add_notes(results, machine, config):
    try:
        loads = [float(x) for x in (machine.load_before + ", " + machine.load_after).split(",")]
    except ValueError:
        loads = []
    if loads and machine.cores and max(loads) / machine.cores > NOISY_LOAD:
        results.notes.append(
            f"The machine was busy (load average up to {max(loads):.1f} on {machine.cores} "
            "cores): other processes shared the CPU, so absolute times are noisy. The "
            "interleaving spreads that noise over every model; judge ratios by their min–max."
        )
    latency = max(machine.op_latency_ms, machine.op_latency_after_ms)
    if latency > STALLED_OP_MS and machine.threads > 1:
        results.notes.append(
            f"A tiny parallel op took {latency:.2f} ms instead of microseconds: "
            f"torch's {machine.threads} OpenMP threads were waiting for cores held by other "
            "processes, so every kernel cost about that much regardless of its size. Epoch "
            "times then grow with the number of kernels more than with the work, which "
            "inflates the ratio of a model that launches more (smaller) kernels. Rerun with "
            "--threads 1, or on an idle machine, to see the work-bound ratios."
        )
    for graph in results.graphs("time"):
        allocator = split_label(graph)[1]
        if allocator:
            results.notes.append(
                f"{graph}: under glibc's default allocator the deeper models did not fit in "
                "the memory budget (its heap fragments to about 4× the live tensors), so they "
                f"were timed under {RETIMED_UNDER[allocator]}; compare with the row timed "
                "under both."
            )
    seen = set()
    for record in results.records:
        where = (record.section, record.graph, record.depth, record.k)
        if record.status in ("ok", "exceeds max_edges") or where in seen:
            continue
        seen.add(where)
        depth = f" at {record.depth} layers" if record.depth else ""
        results.notes.append(
            f"{record.section}, {record.graph}{depth}: {record.status} — {record.note}"
        )
    if not config.subprocess:
        results.notes.append(
            "Peak memory was measured in the benchmark's own process (--no-subprocess)."
        )
