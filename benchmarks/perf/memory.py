"""Peak memory of one training epoch: plain, SSM and checkpointed SSM, each in a fresh process."""

from .isolation import run_jobs
from .results import Record
from .variants import Variant, twins


def memory_variants(config):
    plain, ssm = twins(config.backbones[0])
    return [plain, ssm, Variant(ssm.model, checkpoint=True)]


def measure_memory(config, spec, device, budget_mb, log):
    """Peak memory above the pre-epoch baseline at ``config.deepest`` layers on ``spec``.

    Returns
    -------
    list of Record
        ``peak_mb`` and (informative, one epoch) ``seconds`` per variant.
    """
    records = []
    depth = config.deepest
    for variant in memory_variants(config):
        job = {
            "task": "epoch",
            "graph": spec.as_dict(),
            "model": variant.model,
            "checkpoint": variant.checkpoint,
            "depth": depth,
            "hidden": config.hidden,
            "epochs": 1,
            "device": str(device),
            "seed": config.seed,
            "threads": config.threads,
        }
        (result,) = run_jobs([job], budget_mb, isolated=config.subprocess)
        if result["status"] != "ok":
            log(f"[memory] {spec.name} {depth} layers {variant.key}: {result['message']}")
            records.append(
                Record(
                    "memory",
                    spec.name,
                    variant.key,
                    "peak_mb",
                    depth=depth,
                    status=result["status"],
                    note=result["message"],
                )  # fmt: skip
            )
            continue
        log(
            f"[memory] {spec.name} {depth} layers {variant.key}: peak +{result['peak_mb']:,.0f} MB "
            f"({result['method']}), epoch {result['seconds'][0]:.3g}s"
        )
        records.append(
            Record(
                "memory",
                spec.name,
                variant.key,
                "peak_mb",
                [result["peak_mb"]],
                depth=depth,
                note=result["method"],
            )  # fmt: skip
        )
        records.append(
            Record("memory", spec.name, variant.key, "seconds", result["seconds"], depth=depth)
        )
    return records
