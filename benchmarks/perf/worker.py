"""Measurement jobs that need a process of their own: ``python -m benchmarks.perf.worker``.

The parent writes a JSON list of jobs to stdin; each result is printed as one line starting
with :data:`MARK` (libraries may print too). A job is a dict:

- ``{"task": "epoch", "graph": GraphSpec, "model": ..., "checkpoint": ..., "depth": ...,
  "hidden": ..., "epochs": ..., "device": ..., "seed": ...}``: peak memory of training
  epochs above the memory held before the first one (graph, features, model);
- ``{"task": "khop", "graph": GraphSpec, "ks": [1, 2, …], "max_edges": ...}``: time, edge
  count and peak memory of ``KHopTransform(k)`` for growing k, stopping at the first k whose
  result would exceed ``max_edges``;
- ``{"task": "time", "graph": GraphSpec, "depth": ..., "variants": [[model, checkpoint,
  library], …], "hidden": ..., "repeats": ..., "warmup": ..., "min_time": ..., ...}``:
  interleaved epoch times of the variants (see :func:`.timing.interleaved`).

Every job may carry ``"threads"`` (``torch.set_num_threads``) and ``"device"``.
"""

import json
import sys
import time

import torch

from dgl_ssm import KHopTransform

from ..memory import PeakMeter
from .graphs import GraphSpec, bare_graph, load_graph
from .timing import interleaved, time_once
from .variants import Variant, make_epoch

MARK = "@@perf-result "


def run_job(job, cache=None):
    """Run one job dict and return its result dict (see the module docstring)."""
    cache = {} if cache is None else cache
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    spec = GraphSpec(**job["graph"])
    device = torch.device(job.get("device", "cpu"))
    if job["task"] == "epoch":
        return _epoch_job(job, spec, device, cache)
    if job["task"] == "khop":
        return _khop_job(job, spec, cache)
    if job["task"] == "time":
        return _time_job(job, spec, device, cache)
    raise ValueError(f"Unknown job task {job['task']!r}. Valid: 'epoch', 'khop', 'time'.")


def _training_data(spec, hidden, device, cache):
    key = ("train", spec, hidden, str(device))
    if key not in cache:
        cache.clear()  # one graph at a time: the previous one would count in the baseline
        cache[key] = load_graph(spec, hidden, device)
    return cache[key]


def _time_job(job, spec, device, cache):
    data = _training_data(spec, job["hidden"], device, cache)
    variants = [Variant(m, bool(c), lib) for m, c, lib in job["variants"]]
    runs = {
        v.key: make_epoch(v, data, job["depth"], job["hidden"], job.get("seed", 0))
        for v in variants
    }
    samples = interleaved(runs, job["repeats"], job["warmup"], device, job.get("min_time", 0.0))
    return {"status": "ok", "samples": {key: s.values for key, s in samples.items()}}


def _epoch_job(job, spec, device, cache):
    data = _training_data(spec, job["hidden"], device, cache)
    variant = Variant(job["model"], bool(job.get("checkpoint", False)))
    meter = PeakMeter(device)
    epoch = make_epoch(variant, data, job["depth"], job["hidden"], job.get("seed", 0))
    meter.start()  # baseline: graph, features, model and optimizer are already in memory
    seconds = [time_once(epoch, device) for _ in range(job.get("epochs", 1))]
    return {
        "status": "ok",
        "peak_mb": meter.peak_mb(),
        "baseline_mb": meter.baseline,
        "seconds": seconds,
        "method": meter.method,
        "resettable": meter.resettable,
    }


def _khop_job(job, spec, cache):
    key = ("bare", spec)
    if key not in cache:
        cache.clear()
        cache[key] = bare_graph(spec)
    graph = cache[key]
    meter = PeakMeter("cpu")  # the transform runs on CPU whatever the graph's device
    steps = []
    for k in job["ks"]:
        meter.start()
        start = time.perf_counter()
        try:
            rewired = KHopTransform(k, max_edges=job["max_edges"])(graph)
        except ValueError as error:
            seconds = time.perf_counter() - start
            steps.append(_khop_step(k, "exceeds max_edges", None, seconds, meter, str(error)))
            break  # a larger k only has more edges
        seconds = time.perf_counter() - start
        steps.append(_khop_step(k, "ok", rewired.num_edges(), seconds, meter))
        del rewired
    return {
        "status": "ok",
        "input_edges": graph.num_edges(),
        "steps": steps,
        "resettable": meter.resettable,
    }


def _khop_step(k, status, edges, seconds, meter, message=""):
    return {
        "k": k,
        "status": status,
        "edges": edges,
        "seconds": seconds,
        "peak_mb": meter.peak_mb(),
        "message": message,
    }


def main():
    jobs = json.load(sys.stdin)
    cache = {}
    for job in jobs:
        print(MARK + json.dumps(run_job(job, cache)), flush=True)


if __name__ == "__main__":
    main()
