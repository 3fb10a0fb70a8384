"""The report: ``perf.md`` for people, ``perf.csv`` and ``perf.json`` with the raw numbers."""

import csv
import json

from .allocator import split_label

TIME_HEADERS = ("layers", "variant", "s/epoch median [min–max]", "ratio", "ratio vs")


def write_report(out, machine, config, results, ratios, targets, meta):
    """Write ``perf.md``, ``perf.csv`` and ``perf.json`` into ``out``; return the md path."""
    out.mkdir(parents=True, exist_ok=True)
    markdown = out / "perf.md"
    markdown.write_text(render_markdown(machine, config, results, ratios, targets, meta))
    with open(out / "perf.csv", "w", newline="") as handle:
        fields = [
            "section", "graph", "depth", "k", "variant", "metric", "median", "min", "max", "n",
            "values", "status", "note",
        ]  # fmt: skip
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for record in results.records:
            row = record.as_dict()
            row["values"] = " ".join(f"{v:.6g}" for v in record.values)
            writer.writerow(row)
    payload = {
        "machine": machine.as_dict(),
        "config": config.as_dict(),
        "meta": meta,
        "records": [record.as_dict() for record in results.records],
        "ratios": [found.as_dict() for found in ratios],
        "targets": [target.as_dict() for target in targets],
        "breakdown_ops": results.profiles,
        "notes": results.notes,
    }
    (out / "perf.json").write_text(json.dumps(payload, indent=1, default=str))
    return markdown


def target_lines(targets):
    """``PASS  name: ratio (goal)`` lines, for the console and the report."""
    lines = []
    for target in targets:
        measured = "not measured" if target.ratio is None else target.ratio.text()
        note = f" — {target.note}" if target.note else ""
        lines.append(f"{target.verdict:4}  {target.name}: {measured} (goal {target.goal}){note}")
    return lines


def ratio_lines(ratios):
    """One ``ratio  label  where`` line per ratio, grouped by section."""
    return [
        f"ratio {found.section:9} {found.metric:8} {found.label:30} {found.where():28} "
        f"{found.text()}"
        for found in ratios
    ]


def render_markdown(machine, config, results, ratios, targets, meta):
    lines = ["# Performance of GNN-SSM against plain twins (issue 6)", ""]
    lines += ["## Machine", ""] + [f"- {line}" for line in machine.lines()] + [""]
    lines += ["## Run", ""]
    lines += [
        f"- command: `{meta['command']}`",
        f"- wall time: {meta['wall_s']:.0f} s",
        f"- hidden {config.hidden}; depths {', '.join(map(str, config.depths))}; "
        f"{config.warmup} warm-up + at least {config.repeats} timed epochs per model (more, "
        f"up to 25, until each model ran {config.min_time:g} s), interleaved (A B A B …); "
        "value = median, range = min–max",
        f"- graphs: {'; '.join(meta['graphs'])}",
        "- every figure is a ratio against the plain DGL model measured in this run; ratios "
        "of times are medians of per-round ratios (each round times every model back to "
        "back), with their min–max",
        "",
    ]
    lines += ["## Targets", "", "| verdict | target | measured | goal |", "|---|---|---|---|"]
    for target in targets:
        measured = "not measured" if target.ratio is None else target.ratio.text()
        note = f" ({target.note})" if target.note else ""
        lines.append(f"| {target.verdict} | {target.name}{note} | {measured} | {target.goal} |")
    lines.append("")
    lines += _time_section(results, ratios)
    lines += _memory_section(config, results, ratios)
    lines += _khop_section(config, results, ratios)
    lines += _reference_section(meta)
    lines += _breakdown_section(results, ratios)
    lines += ["## All ratios", "", "```"] + ratio_lines(ratios) + ["```", ""]
    if results.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in results.notes] + [""]
    return "\n".join(lines)


def _ratio_for(ratios, section, graph, numerator, depth=None, k=None, metric=None):
    for found in ratios:
        if (found.section, found.graph, found.numerator) == (section, graph, numerator) and (
            found.depth == depth or depth is None
        ):
            if (k is None or found.k == k) and (metric is None or found.metric == metric):
                return found
    return None


def _fmt_samples(record, scale=1.0, digits=3):
    if not record.ok:
        return record.status + (f" ({record.note})" if record.note else "")
    median, low, high = (x * scale for x in (record.median, record.low, record.high))
    if len(record.values) == 1:
        return f"{median:.{digits}g}"
    return f"{median:.{digits}g} [{low:.{digits}g}–{high:.{digits}g}] n={len(record.values)}"


def _time_section(results, ratios):
    lines = ["## Time per training epoch", ""]
    lines.append(
        "Forward + backward + Adam step, full batch, cross-entropy on random labels. Ratio "
        "column: this variant / the plain model (`gcn`), and for `gcn_ssm+ckpt` also / "
        "`gcn_ssm`; for PyG: ours (`gcn_ssm`) / PyG."
    )
    lines.append("")
    for graph in results.graphs("time"):
        lines += [f"### {graph}", "", "| layers | variant | s/epoch median [min–max] | ratio |"]
        lines.append("|---|---|---|---|")

        for record in results.records:
            if record.section != "time" or record.graph != graph:
                continue

            cells = []
            for found in ratios:
                if found.section == "time" and found.graph == graph and found.depth == record.depth:
                    if found.numerator == record.variant:
                        cells.append(f"/ {found.denominator}: {found.text()}")
                    elif found.denominator == record.variant and record.variant.startswith("pyg"):
                        cells.append(f"ours / PyG: {found.text()}")
            mark = ""
            lines.append(
                f"| {record.depth} | {record.variant}{mark} | {_fmt_samples(record)} | "
                f"{'; '.join(cells) or ('1 (reference)' if record.ok else '—')} |"
            )
        allocator = split_label(graph)[1]
        if allocator:
            lines += [
                "",
                f"Timed again under the {allocator} allocator because glibc's default one did "
                "not fit in the memory budget at the deeper depths (see Notes); the shallowest "
                "row also fitted under the default allocator, so comparing it with the table "
                "above shows how much the allocator alone moves the ratios.",
            ]
        lines.append("")
    return lines


def _memory_section(config, results, ratios):
    records = [r for r in results.records if r.section == "memory" and r.metric == "peak_mb"]
    if not records:
        return []
    lines = ["## Peak memory per epoch", ""]
    lines.append(
        f"One training epoch at {config.deepest} layers, each variant in a fresh process "
        "(unless `--no-subprocess`): peak above the memory held just before the epoch "
        f"(graph, features, model, optimizer). Method: {records[0].note or 'see JSON'}."
    )
    lines += ["", "| graph | variant | peak MB | ratio | one epoch, s |", "|---|---|---|---|---|"]
    for record in records:
        seconds = results.find("memory", record.graph, record.variant, "seconds", record.depth)
        cells = [
            f"/ {f.denominator}: {f.text()}"
            for f in ratios
            if f.section == "memory" and f.graph == record.graph and f.numerator == record.variant
        ]
        lines.append(
            f"| {record.graph} | {record.variant} | {_fmt_samples(record, digits=5)} | "
            f"{'; '.join(cells) or '1 (reference)'} | "
            f"{_fmt_samples(seconds) if seconds else '—'} |"
        )
    lines.append("")
    return lines


def _khop_section(config, results, ratios):
    graphs = results.graphs("khop")
    if not graphs:
        return []
    lines = ["## k-hop transform", ""]
    lines.append(
        f"`KHopTransform(K, max_edges={config.khop_max_edges:,})` on the graph without self "
        "loops, K = 1, 2, … in one fresh process per graph (peak reset per K). Time ratio: / "
        f"one plain `{config.backbones[0]}` epoch at {config.depths[0]} layers; memory ratio: "
        f"/ the plain epoch's peak at {config.deepest} layers (where measured)."
    )
    lines.append("")
    lines += ["| graph | K | edges | / input | time s | / plain epoch | peak MB | / plain peak |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for graph in graphs:
        base = results.find("khop", graph, "input", "edges", k=0)
        if base is None:
            failed = [r for r in results.records if r.section == "khop" and r.graph == graph]
            lines.append(f"| {graph} | — | {failed[0].status}: {failed[0].note} | | | | | |")
            continue
        lines.append(f"| {graph} | 0 (input) | {int(base.median):,} | 1 | | | | |")
        for k in range(1, config.khop_max_k + 1):
            variant = f"khop(K={k})"
            edges = results.find("khop", graph, variant, "edges", k=k)
            if edges is None:
                break
            seconds = results.find("khop", graph, variant, "seconds", k=k)
            peak = results.find("khop", graph, variant, "peak_mb", k=k)

            def cell(metric, graph=graph, k=k, variant=variant):
                found = _ratio_for(ratios, "khop", graph, variant, k=k, metric=metric)
                return found.text() if found else "—"

            count = f"{int(edges.median):,}" if edges.ok else f"{edges.status}"
            lines.append(
                f"| {graph} | {k} | {count} | {cell('edges')} | {seconds.median:.3g} | "
                f"{cell('seconds')} | {peak.median:,.0f} | {cell('peak_mb')} |"
            )
            if not edges.ok:
                lines.append(f"| | | stopped: {edges.note} | | | | | |")
    lines.append("")
    return lines


def _reference_section(meta):
    return ["## Reference: PyTorch Geometric", "", meta["reference"], ""]


def _breakdown_section(results, ratios):
    graphs = results.graphs("breakdown")
    if not graphs:
        return []
    lines = ["## Where the SSM time goes (one layer, forward + backward)", ""]
    lines.append(
        "Each part timed alone on the benchmark graph (interleaved), as a ratio of the plain "
        "layer (`GraphConv` + relu). The SSM layer's extra time is what a deep GCN-SSM pays "
        "per layer; the op list below shows which ops make it (profiler, per layer)."
    )
    lines += ["", "| graph | part | ms median [min–max] | / plain layer |", "|---|---|---|---|"]
    for graph in graphs:
        for record in results.records:
            if record.section == "breakdown" and record.graph == graph:
                found = _ratio_for(ratios, "breakdown", graph, record.variant)
                lines.append(
                    f"| {graph} | {record.variant} | {_fmt_samples(record, 1e3)} | "
                    f"{found.text() if found else '1 (reference)'} |"
                )
    lines.append("")
    for graph, rows in results.profiles.items():
        lines += [f"Ops that differ, SSM layer vs plain layer ({graph}, per fwd+bwd):", ""]
        lines += [
            "| op | plain calls | SSM calls | plain ms | SSM ms | Δ ms |",
            "|---|---|---|---|---|---|",
        ]
        for row in rows[:12]:
            lines.append(
                f"| `{row['op']}` | {row['plain_calls']:g} | {row['ssm_calls']:g} | "
                f"{row['plain_ms']:.3f} | {row['ssm_ms']:.3f} | {row['delta_ms']:+.3f} |"
            )
        lines.append("")
    return lines
