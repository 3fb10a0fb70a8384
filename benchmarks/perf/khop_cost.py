"""Cost of the k-hop rewiring: time, edge count and peak memory for K = 1, 2, …"""

from .isolation import run_jobs
from .results import Record


def measure_khop(config, spec, budget_mb, log):
    """Run ``KHopTransform(K)`` on ``spec``'s graph (no self loops) for growing K.

    K stops at ``config.khop_max_k``, or at the first K whose result would exceed
    ``config.khop_max_edges`` (reported with status ``exceeds max_edges``).

    Returns
    -------
    list of Record
        ``edges`` (K = 0 is the input graph), ``seconds`` and ``peak_mb`` per K.
    """
    job = {
        "task": "khop",
        "graph": spec.as_dict(),
        "ks": list(range(1, config.khop_max_k + 1)),
        "max_edges": config.khop_max_edges,
        "threads": config.threads,
    }
    (result,) = run_jobs([job], budget_mb, isolated=config.subprocess)
    name = spec.name
    if result["status"] != "ok":
        log(f"[khop] {name}: {result['message']}")
        return [
            Record("khop", name, "khop", "edges", status=result["status"], note=result["message"])
        ]
    records = [Record("khop", name, "input", "edges", [result["input_edges"]], k=0)]
    note = "" if result["resettable"] else "peak is cumulative over K (no high-water reset)"
    for step in result["steps"]:
        k, status = step["k"], step["status"]
        variant = f"khop(K={k})"
        if status == "ok":
            records.append(Record("khop", name, variant, "edges", [step["edges"]], k=k))
            log(
                f"[khop] {name} K={k}: {step['edges']:,} edges "
                f"({step['edges'] / result['input_edges']:.1f}× the input) in "
                f"{step['seconds']:.3g}s, peak +{step['peak_mb']:,.0f} MB"
            )
        else:
            log(f"[khop] {name} K={k}: stopped, {step['message']}")
            records.append(
                Record("khop", name, variant, "edges", k=k, status=status, note=step["message"])
            )
        records.append(
            Record("khop", name, variant, "seconds", [step["seconds"]], k=k, status=status)
        )
        records.append(
            Record(
                "khop", name, variant, "peak_mb", [step["peak_mb"]], k=k, status=status, note=note
            )
        )
    return records
