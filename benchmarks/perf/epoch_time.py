"""Time per training epoch of plain/SSM twins (and checkpointed / PyG variants) by depth."""

from .allocator import DEFAULT, deep_allocator, retimed_label
from .isolation import run_jobs
from .reference import pyg_available
from .results import Record
from .variants import PYG, Variant, twins


def variants_at(config, depth):
    """The variants timed together at ``depth``: twins of every backbone, then extras.

    The checkpointed SSM model joins at the deepest depth; the PyG GCN-SSM at the reference
    depths, when PyG is installed and ``gcn`` is among the backbones.
    """
    variants = [variant for backbone in config.backbones for variant in twins(backbone)]
    if depth == config.deepest:
        variants.append(Variant(f"{config.backbones[0]}_ssm", checkpoint=True))
    if (
        "reference" in config.sections
        and depth in config.reference_depths
        and "gcn" in config.backbones
        and pyg_available() is None
    ):
        variants.append(Variant("gcn_ssm", library=PYG))
    return variants


def time_job(config, spec, depth, device):
    """The worker job timing every variant at ``depth`` on ``spec``, interleaved."""
    return {
        "task": "time",
        "graph": spec.as_dict(),
        "depth": depth,
        "variants": [[v.model, v.checkpoint, v.library] for v in variants_at(config, depth)],
        "hidden": config.hidden,
        "repeats": config.repeats,
        "warmup": config.warmup,
        "min_time": config.min_time,
        "seed": config.seed,
        "device": str(device),
        "threads": config.threads,
    }


def time_epochs(config, spec, device, budget_mb, log):
    """Interleaved epoch times at every depth on one graph.

    All depths run in one child process under ``config.allocator``, shallow first. If that is
    glibc's default allocator and some depth outgrows the memory budget there, those depths
    are timed again under tcmalloc (or glibc's compact setting; see :mod:`.allocator`),
    together with the deepest depth that did fit (so the report shows how much the allocator
    alone moves the ratios); these records carry the graph name
    :func:`.allocator.retimed_label`.

    Returns
    -------
    list of Record
    """
    jobs = [time_job(config, spec, depth, device) for depth in config.depths]

    def report(job, result):
        _log_result(log, spec.name, job, result)

    results = run_jobs(
        jobs, budget_mb, config.subprocess, fresh=False, allocator=config.allocator,
        on_result=report,
    )  # fmt: skip
    records = []
    for job, result in zip(jobs, results):
        records += _records(spec.name, job, result)
    over = [job for job, result in zip(jobs, results) if result["status"] == "over budget"]
    if over and config.subprocess and config.allocator == DEFAULT:
        fitted = [job for job, result in zip(jobs, results) if result["status"] == "ok"]
        again = fitted[-1:] + over
        allocator = deep_allocator()
        label = retimed_label(spec.name, allocator)
        depths = ", ".join(str(job["depth"]) for job in again)
        log(f"[time] {spec.name}: timing {depths} layers again under the {allocator} allocator")

        def report_again(job, result):
            _log_result(log, label, job, result)

        redone = run_jobs(
            again, budget_mb, fresh=False, allocator=allocator, on_result=report_again
        )
        for job, result in zip(again, redone):
            records += _records(label, job, result)
    return records


def _records(graph, job, result):
    keys = [Variant(m, bool(c), lib).key for m, c, lib in job["variants"]]
    if result["status"] != "ok":
        message = result.get("message", "")
        return [
            Record(
                "time",
                graph,
                key,
                "seconds",
                depth=job["depth"],
                status=result["status"],
                note=message,
            )  # fmt: skip
            for key in keys
        ]
    return [
        Record("time", graph, key, "seconds", result["samples"][key], depth=job["depth"])
        for key in keys
    ]


def _log_result(log, graph, job, result):
    depth = job["depth"]
    if result["status"] != "ok":
        log(f"[time] {graph} {depth} layers: {result['status']}: {result.get('message', '')}")
        return
    samples = result["samples"]
    first = next(iter(samples))
    plain = sorted(samples[first])[len(samples[first]) // 2]
    parts = []
    for key, values in samples.items():
        median = sorted(values)[len(values) // 2]
        parts.append(f"{key} {median:.3g}s ({median / plain:.3f}×, n={len(values)})")
    log(f"[time] {graph} {depth} layers: " + ", ".join(parts))
