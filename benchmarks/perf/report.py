"""Records, the ratios and target verdicts made of them, and the report that shows them.

A record is a dict: one quantity (``section`` time, memory, khop, rewire, monitor, deep or
breakdown; ``metric`` seconds, peak_mb or edges) of one ``variant`` on one ``graph`` at
``depth`` layers or hop ``k``, every sample in ``values`` (per round for times: variants
timed together pair up).
"""

import csv
import io
import json
import statistics
from dataclasses import asdict

from ..files import write_together
from .isolation import COMPACT, TCMALLOC, retimed_label, split_label

SSM_OVERHEAD = 1.10  # GCN-SSM / GCN time per epoch at TARGET_DEPTH layers
TARGET_DEPTH = 64
CHECKPOINT_DEPTH = 128  # where the checkpointing goals were set (the full run's deepest)
CHECKPOINT_MEMORY = 0.25  # checkpointed / not: at least 4× lower peak memory
CHECKPOINT_TIME = 1.6
REFERENCE = 1.0  # ours / PyG time per epoch
MONITOR_OVERHEAD = 1.10  # monitored / not, time per epoch (issue 14)
DEEP_MEMORY = 2.0  # checkpointed GCN-SSM at --deep-depth / GCN-SSM at 64 layers (issue 14)
PARTS = ("ssm layer", "residual layer", "conv", "plain update", "ssm update")  # / plain layer
STEP = ("edges", "seconds", "peak_mb")  # the metrics of one k-hop step
FIELDS = ("depth", "k")  # where a ratio was measured: the numerator's, else the denominator's
KHOP_COLUMNS = "graph;transform;edges;/ input;time s;/ plain epoch;peak MB;/ plain peak"


def key(section, graph, variant, metric, depth=None, k=None):
    return (section, graph, variant, metric, depth, k)


def put(records, section, graph, variant, metric, values=(), depth=None, k=None, **status):
    """Keep a record in ``records`` under :func:`key`; ``status`` (default "ok") and ``note``
    (default "") say what went wrong, if anything."""
    found = dict(section=section, graph=graph, variant=variant, metric=metric,
                 values=list(values), depth=depth, k=k, status="ok", note="")  # fmt: skip
    records[key(section, graph, variant, metric, depth, k)] = {**found, **status}


def ok(found):
    return found is not None and found["status"] == "ok" and bool(found["values"])


def graphs(records, section):
    """Graph names with records in ``section``, in the order they were measured."""
    return list(dict.fromkeys(r["graph"] for r in records.values() if r["section"] == section))


def ratio(section, numerator, denominator, metric, paired=True):
    """``numerator / denominator`` of two measured records (else ``None``): the median, min and
    max of the per-round ratios when ``paired`` (timed in the same rounds), else of medians."""
    if not (ok(numerator) and ok(denominator)) or min(denominator["values"]) <= 0:
        return None
    a, b = numerator["values"], denominator["values"]
    if paired and len(a) == len(b):
        values = [x / y for x, y in zip(a, b)]
    else:
        values = [statistics.median(a) / statistics.median(b)]
    depth, k = (numerator[f] if numerator[f] is not None else denominator[f] for f in FIELDS)
    value, low, high = statistics.median(values), min(values), max(values)
    return {"section": section, "graph": numerator["graph"], "numerator": numerator["variant"],
            "denominator": denominator["variant"], "metric": metric, "depth": depth, "k": k,
            "value": value, "low": low, "high": high}  # fmt: skip


def all_ratios(records, config):
    """Every figure as a ratio: time and peak memory against the plain (and SSM) model, k-hop
    edges against the input's and cost against a plain epoch, layer parts against the plain
    layer."""
    first, found = config.backbones[0], []

    def get(section, graph, variant, metric, depth=None, k=None):
        return records.get(key(section, graph, variant, metric, depth, k))

    for graph in graphs(records, "time"):
        for depth in config.depths:
            time = {r["variant"]: r for k, r in records.items() if k[:2] == ("time", graph)
                    and r["depth"] == depth}  # fmt: skip
            pairs = [(f"{b}_ssm", b) for b in config.backbones]
            pairs += [(f"{first}_ssm+ckpt", first), (f"{first}_ssm+ckpt", f"{first}_ssm")]
            pairs.append(("gcn_ssm", "pyg:gcn_ssm"))
            found += [ratio("time", time.get(a), time.get(b), "seconds") for a, b in pairs]
    for graph in graphs(records, "memory"):
        plain, ssm, ckpt = (get("memory", graph, first + v, "peak_mb", config.deepest)
                            for v in ("", "_ssm", "_ssm+ckpt"))  # fmt: skip
        for a, b in ((ssm, plain), (ckpt, plain), (ckpt, ssm)):
            found.append(ratio("memory", a, b, "peak_mb", paired=False))
    for graph in graphs(records, "khop"):
        plain = {"edges": get("khop", graph, "input", "edges", k=0),
                 "seconds": get("time", graph, first, "seconds", config.depths[0]),
                 "peak_mb": get("memory", graph, first, "peak_mb", config.deepest)}  # fmt: skip
        for k in range(1, config.khop_max_k + 1):
            step = {m: get("khop", graph, f"khop(K={k})", m, k=k) for m in STEP}
            if step["edges"] is None:
                break
            for metric in STEP if ok(step["edges"]) else ("edges",):
                found.append(ratio("khop", step[metric], plain[metric], metric, paired=False))
    for graph in graphs(records, "rewire"):
        batched, one = (get("rewire", graph, v, "seconds") for v in ("batched", "one at a time"))
        found.append(ratio("rewire", batched, one, "seconds"))
    for graph in graphs(records, "monitor"):
        runs = {r["variant"]: r for k, r in records.items() if k[:2] == ("monitor", graph)}
        found.append(ratio("monitor", runs.get("gcn_ssm+monitor"), runs.get("gcn_ssm"), "seconds"))
    for graph in graphs(records, "deep"):
        for metric in ("peak_mb", "seconds"):
            base = get("deep", graph, "gcn_ssm", metric, TARGET_DEPTH)
            deep = get("deep", graph, "gcn_ssm+ckpt", metric, config.deep_depth)
            found.append(ratio("deep", deep, base, metric, paired=False))
    for graph in graphs(records, "breakdown"):
        parts = {r["variant"]: r for k, r in records.items() if k[:2] == ("breakdown", graph)}
        plain = parts.get("plain layer")
        found += [ratio("breakdown", parts.get(part), plain, "seconds") for part in PARTS]
    return [r for r in found if r is not None]


def ratio_text(found):
    """``value [min–max]``, and the allocator when it was not the default one."""
    allocator = split_label(found["graph"])[1]
    spread = f" [{found['low']:.3f}–{found['high']:.3f}]" if found["high"] > found["low"] else ""
    return f"{found['value']:.3f}{spread}" + (f" ({allocator} allocator)" if allocator else "")


def ratio_lines(ratios):
    """One ``ratio section metric label where value`` line per ratio."""
    lines = []
    for r in ratios:
        where = [r["graph"]] + [f"{r['depth']} layers"] * (r["depth"] is not None)
        where = ", ".join(where + [f"K={r['k']}"] * (r["k"] is not None))
        label = f"{r['numerator']} / {r['denominator']}"
        lines.append(
            f"ratio {r['section']:9} {r['metric']:8} {label:30} {where:28} {ratio_text(r)}"
        )
    return lines


def target(name, threshold, found, note=""):
    """A goal ``ratio ≤ threshold``: PASS, MISS, or N/A when the ratio was not measured."""
    verdict = "N/A" if found is None else ("PASS" if found["value"] <= threshold else "MISS")
    return {"name": name, "goal": f"≤ {threshold:g}", "verdict": verdict, "ratio": found,
            "note": note}  # fmt: skip


def evaluate_targets(ratios, config, large_graph):
    """Issue 6's targets with their ratios; checkpointing read on ``large_graph``, time at 64
    layers or (``--quick``) the deepest timed, saying so; a time ratio measured only under
    another allocator (:func:`.isolation.retimed_label`) stands in for the default one's.
    Only the goals of the sections run are listed; one read at another depth than the one it
    was set for says so in its note (``--quick`` reads them at 16 layers)."""
    index = {(r["section"], r["numerator"], r["denominator"], r["graph"], r["depth"]): r
             for r in ratios}  # fmt: skip

    def pick(section, numerator, denominator, graph, depth):
        for name in (graph, retimed_label(graph, TCMALLOC), retimed_label(graph, COMPACT)):
            if (section, numerator, denominator, name, depth) in index:
                return index[section, numerator, denominator, name, depth]
        return None

    timed = dict.fromkeys(split_label(r["graph"])[0] for r in ratios if r["section"] == "time")
    first, ssm, deepest = config.backbones[0], f"{config.backbones[0]}_ssm", config.deepest
    depth = TARGET_DEPTH if TARGET_DEPTH in config.depths else max(config.depths)
    note = "" if depth == TARGET_DEPTH else f"read at {depth} layers ({TARGET_DEPTH} not timed)"
    targets = [
        target(f"{ssm} / {first} time per epoch, {depth} layers, {graph}", SSM_OVERHEAD,
               pick("time", ssm, first, graph, depth), note)
        for graph in timed
    ]  # fmt: skip
    # (a checkpoint saves more the deeper the model: --quick's 16 layers miss what 128 pass)
    set_for = f"goal set for {CHECKPOINT_DEPTH} layers" if deepest != CHECKPOINT_DEPTH else ""
    for section, what, goal in (("memory", "peak memory", CHECKPOINT_MEMORY),
                                ("time", "time per epoch", CHECKPOINT_TIME)):  # fmt: skip
        if section not in config.sections:
            continue
        for den in (first, ssm):
            name = f"checkpointed / {den} {what}, {deepest} layers, {large_graph}"
            name += " (≥ 4× lower)" if section == "memory" else ""
            found = pick(section, f"{ssm}+ckpt", den, large_graph, deepest)
            targets.append(target(name, goal, found, set_for))
    ref_depths = [d for d in config.reference_depths if d in config.depths]
    ref_depth = TARGET_DEPTH if TARGET_DEPTH in ref_depths else max(ref_depths, default=None)
    at = f"{ref_depth} layers" if ref_depth else "no reference depth timed"
    for graph in timed if "reference" in config.sections else ():
        name = f"ours / PyG GCN-SSM time per epoch, {at}, {graph} (aim)"
        found = pick("time", "gcn_ssm", "pyg:gcn_ssm", graph, ref_depth)
        targets.append(target(name, REFERENCE, found))
    for found in (r for r in ratios if r["section"] == "monitor"):
        name = (f"monitored (every {config.monitor_every}) / unmonitored GCN-SSM time per epoch, "
                f"{found['depth']} layers, {found['graph']}")  # fmt: skip
        # (a shallower model spends a larger share of its epoch on the monitor's layers)
        off = found["depth"] != TARGET_DEPTH
        targets.append(target(name, MONITOR_OVERHEAD, found,
                              f"goal set for {TARGET_DEPTH} layers" if off else ""))  # fmt: skip
    if "deep" in config.sections and "cora" in config.graphs:  # N/A when a run failed
        found = next((r for r in ratios if (r["section"], r["metric"], r["graph"])
                      == ("deep", "peak_mb", "cora")), None)  # fmt: skip
        name = (f"checkpointed GCN-SSM at {config.deep_depth} layers / GCN-SSM at "
                f"{TARGET_DEPTH} peak memory, cora")  # fmt: skip
        targets.append(target(name, DEEP_MEMORY, found))
    return targets


def target_lines(targets):
    """``PASS  name: ratio (goal …)`` lines."""
    lines = []
    for t in targets:
        measured = "not measured" if t["ratio"] is None else ratio_text(t["ratio"])
        note = f" — {t['note']}" if t["note"] else ""
        lines.append(f"{t['verdict']:4}  {t['name']}: {measured} (goal {t['goal']}){note}")
    return lines


def write_report(out, config, records, ratios, targets, meta):
    """Write ``perf.md``, ``perf.csv`` and ``perf.json`` into ``out``; return the md path."""
    rows = []
    for r in records.values():
        v = r["values"]
        stats = (statistics.median(v), min(v), max(v)) if v else (None, None, None)
        rows.append({**r, **dict(zip(("median", "min", "max"), stats)), "n": len(v)})
    columns = "section graph depth k variant metric median min max n values status note".split()
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "values": " ".join(f"{v:.6g}" for v in row["values"])})
    payload = {"config": asdict(config), **meta, "records": rows, "ratios": ratios,
               "targets": targets}  # fmt: skip
    document = json.dumps(payload, indent=1, default=str)
    try:
        written = write_together(out, {  # one set: never a new table beside an old summary
            "perf.csv": table.getvalue().encode(),
            "perf.json": document.encode(),
            "perf.md": render_markdown(config, records, ratios, targets, meta).encode(),
        })  # fmt: skip
    except OSError as error:  # a full disk, say: the measurements must not go with it
        raise OSError(
            f"could not write the report into {out} ({error.strerror or error}); its "
            f"perf.json follows, to save by hand:\n{document}"
        ) from None
    return written["perf.md"]


def _samples(found, scale=1.0, digits=3):
    """``median [min–max] n=…`` of a record, or its status."""
    if not ok(found):
        return found["status"] + (f" ({found['note']})" if found["note"] else "")
    values = [v * scale for v in found["values"]]
    if len(values) == 1:
        return f"{values[0]:.{digits}g}"
    low, median, high = min(values), statistics.median(values), max(values)
    return f"{median:.{digits}g} [{low:.{digits}g}–{high:.{digits}g}] n={len(values)}"


def _table(header, rows):
    """A markdown table; ``header`` is its column names separated by ``;``."""
    lines = [f"| {header.replace(';', ' | ')} |", "|---" * (header.count(";") + 1) + "|"]
    return lines + [f"| {' | '.join(map(str, row))} |" for row in rows] + [""]


def _cells(ratios, section, graph, variant, depth=None):
    """The ratio column of a record: ``/ denominator: ratio; …``."""
    cells = []
    for f in ratios:
        if (f["section"], f["graph"]) == (section, graph) and depth in (None, f["depth"]):
            if f["numerator"] == variant:
                cells.append(f"/ {f['denominator']}: {ratio_text(f)}")
            elif f["denominator"] == variant and variant.startswith("pyg"):
                cells.append(f"ours / PyG: {ratio_text(f)}")
    return "; ".join(cells)


def render_markdown(config, records, ratios, targets, meta):
    lines = ["# Performance of GNN-SSM against plain twins (issue 6)", "", "## Machine", ""]
    lines += [f"- {line}" for line in meta["machine_lines"]] + ["", "## Run", ""]
    lines += [
        f"- command: `{meta['command']}`",
        f"- wall time: {meta['wall_s']:.0f} s",
        f"- hidden {config.hidden}; depths {', '.join(map(str, config.depths))}; per model "
        f"and depth {config.warmup} untimed + {config.repeats} timed rounds, interleaved (A B "
        "A B …); in each round every model runs `torch.utils.benchmark.Timer.blocked_autorange"
        f"(min_run_time={config.min_time / config.repeats:.3g})` (one untimed epoch, then "
        "epochs until that time is spent); value = median of the per-round medians, range = "
        "their min–max",
        f"- graphs: {'; '.join(meta['graphs'])}",
        "- every figure is a ratio against the plain DGL model measured in this run; ratios "
        "of times are medians of per-round ratios (each round times every model back to "
        "back), with their min–max",
        "",
        "## Targets",
        "",
    ]
    lines += _table("verdict;target;measured;goal", [
        (t["verdict"], t["name"] + (f" ({t['note']})" if t["note"] else ""),
         "not measured" if t["ratio"] is None else ratio_text(t["ratio"]), t["goal"])
        for t in targets
    ])  # fmt: skip
    lines += _time_section(config, records, ratios) + _memory_section(config, records, ratios)
    lines += _khop_section(config, records, ratios) + _rewire_section(config, records, ratios)
    lines += _deep_section(config, records, ratios)
    lines += ["## Reference: PyTorch Geometric", "", meta["reference"], ""]
    lines += _breakdown_section(records, ratios, meta["breakdown_ops"])
    lines += ["## All ratios", "", "```", *ratio_lines(ratios), "```", ""]
    if meta["notes"]:
        lines += ["## Notes", ""] + [f"- {note}" for note in meta["notes"]] + [""]
    return "\n".join(lines)


def _time_section(config, records, ratios):
    first = config.backbones[0]
    lines = ["## Time per training epoch", "",
             "Forward + backward + Adam step, full batch, cross-entropy on random labels. Ratio "
             f"column: this variant / the plain model (`{first}`), and for `{first}_ssm+ckpt` "
             f"also / `{first}_ssm`; for PyG: ours (`gcn_ssm`) / PyG.", ""]  # fmt: skip
    for graph in graphs(records, "time"):
        rows = [
            (r["depth"], r["variant"], _samples(r),
             _cells(ratios, "time", graph, r["variant"], r["depth"])
             or ("1 (reference)" if ok(r) else "—"))
            for r in records.values() if (r["section"], r["graph"]) == ("time", graph)
        ]  # fmt: skip
        lines += [f"### {graph}", ""]
        lines += _table("layers;variant;s/epoch median [min–max];ratio", rows)
    return lines


def _peaks_and_seconds(records, section):
    """The peak-memory records of ``section``, each with its seconds record (or None)."""
    return [(r, records.get(key(section, r["graph"], r["variant"], "seconds", r["depth"])))
            for r in records.values()
            if r["section"] == section and r["metric"] == "peak_mb"]  # fmt: skip


def _memory_section(config, records, ratios):
    peaks = _peaks_and_seconds(records, "memory")
    if not peaks:
        return []
    rows = []
    for r, seconds in peaks:
        rows.append((r["graph"], r["variant"], _samples(r, digits=5),
                     _cells(ratios, "memory", r["graph"], r["variant"]) or "1 (reference)",
                     _samples(seconds) if seconds else "—"))  # fmt: skip
    return [
        "## Peak memory per epoch", "",
        f"One training epoch at {config.deepest} layers, each variant in a fresh process "
        "(unless `--no-subprocess`): peak above the memory held just before the epoch (graph, "
        f"features, model, optimizer). Method: {peaks[0][0]['note'] or 'see JSON'}.", "",
    ] + _table("graph;variant;peak MB;ratio;one epoch, s", rows)  # fmt: skip


def _deep_section(config, records, ratios):
    peaks = _peaks_and_seconds(records, "deep")
    if not peaks:
        return []
    rows = []
    for r, seconds in peaks:
        found = {f["metric"]: ratio_text(f) for f in ratios if f["section"] == "deep"
                 and (f["graph"], f["numerator"]) == (r["graph"], r["variant"])}  # fmt: skip
        named = (("peak_mb", "peak"), ("seconds", "time"))
        ratio_cell = "; ".join(f"{what} {found[m]}" for m, what in named if m in found)
        reference = ok(r) and r["depth"] == TARGET_DEPTH and r["variant"] == "gcn_ssm"
        ratio_cell = ratio_cell or ("1 (reference)" if reference else "—")
        rows.append((r["graph"], r["depth"], r["variant"], _samples(r, digits=5),
                     _samples(seconds) if seconds else "—", ratio_cell))  # fmt: skip
    return [
        f"## {config.deep_depth} layers", "",
        f"GCN-SSM at {config.deep_depth} layers with checkpointing against GCN-SSM at "
        f"{TARGET_DEPTH} layers without, "
        + ("each in a fresh process" if config.subprocess else "in this process (--no-subprocess)")
        + ": peak of one epoch above the memory held before it (compact allocator), and "
        f"{config.repeats} epochs timed after an untimed one (median [min–max]; "
        f"{config.allocator} allocator). The input scale β does not change the cost.", "",
    ] + _table("graph;layers;variant;peak MB;s/epoch;ratio", rows)  # fmt: skip


def _khop_section(config, records, ratios):
    steps = [r for r in records.values() if r["section"] == "khop" and r["metric"] == "edges"]
    if not steps:
        return []
    index = {(f["graph"], f["k"], f["metric"]): f for f in ratios if f["section"] == "khop"}
    rows = []
    for r in steps:  # the input (K = 0), then K = 1, 2, …; or the failure
        seconds, peak = (
            records.get(key("khop", r["graph"], r["variant"], m, k=r["k"])) for m in STEP[1:]
        )
        found = (index.get((r["graph"], r["k"], m)) for m in STEP)
        edges_ratio, seconds_ratio, peak_ratio = (ratio_text(f) if f else "" for f in found)
        count = f"{r['values'][0]:,}" if ok(r) else _samples(r)
        rows.append((r["graph"], r["variant"], count, edges_ratio,
                     _samples(seconds) if seconds else "", seconds_ratio,
                     f"{peak['values'][0]:,.0f}" if peak else "", peak_ratio))  # fmt: skip
    return [
        "## k-hop transform", "",
        f"`KHopTransform(K, max_edges={config.khop_max_edges:,})` on the graph without self "
        "loops, K = 1, 2, … in one fresh process per graph (peak reset per K). Time ratio: / "
        f"one plain `{config.backbones[0]}` epoch at {config.depths[0]} layers; memory ratio: / "
        f"the plain epoch's peak at {config.deepest} layers (where measured).", "",
    ] + _table(KHOP_COLUMNS, rows)  # fmt: skip


def _breakdown_section(records, ratios, profiles):
    parts = [r for r in records.values() if r["section"] == "breakdown"]
    if not parts:
        return []
    lines = [
        "## Where the SSM time goes (one layer, forward + backward)", "",
        "Each part timed alone on the benchmark graph (interleaved), as a ratio of the plain "
        "layer (`GraphConv` + relu). The SSM layer's extra time is what a deep GCN-SSM pays per "
        "layer; the op list below shows which ops make it (profiler, per layer).", "",
    ]  # fmt: skip
    lines += _table("graph;part;ms median [min–max];/ plain layer", [
        (r["graph"], r["variant"], _samples(r, 1e3),
         _cells(ratios, "breakdown", r["graph"], r["variant"]) or "1 (reference)")
        for r in parts
    ])  # fmt: skip
    for graph, ops in profiles.items():
        lines += [f"Ops that differ, SSM layer vs plain layer ({graph}, per fwd+bwd):", ""]
        lines += _table("op;plain calls;SSM calls;plain ms;SSM ms;Δ ms", [
            (f"`{o['op']}`", f"{o['plain_calls']:g}", f"{o['ssm_calls']:g}",
             f"{o['plain_ms']:.3f}", f"{o['ssm_ms']:.3f}", f"{o['delta_ms']:+.3f}")
            for o in ops[:12]
        ])  # fmt: skip
    return lines


def _rewire_section(config, records, ratios):
    rows = [(r["graph"], r["variant"], _samples(r),
             _cells(ratios, "rewire", r["graph"], r["variant"])
             or ("1 (reference)" if ok(r) else "—"))
            for r in records.values() if r["section"] == "rewire"]  # fmt: skip
    if not rows:
        return []
    return [
        "## k-hop rewiring of many small graphs", "",
        f"What a k-hop GPP run does before training: {config.rewire_graphs} graphs of the GPP "
        "generator's families and sizes (25–34 nodes), rewired at the shipped kGCN-SSM "
        "config's K, one `prepare_graph` call a graph, or `prepare_graphs` (batched calls, as "
        "training does), timed in interleaved rounds in one fresh process. Both give the same "
        "graphs (checked in the run; a difference is a failed record, in the notes).", "",
    ] + _table("graphs;variant;s median [min–max];ratio", rows)  # fmt: skip
