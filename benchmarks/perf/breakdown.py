"""Where the SSM time goes: one layer's parts timed alone, and the profiler's op-level diff.

A GCN-SSM layer differs from its plain twin only in the update: ``H + β·relu(F)`` instead of
``relu(F)``. This section times, forward + backward on the benchmark graph, the conv alone,
each update alone, and each whole layer (where the state also feeds the conv, so autograd
sums two gradients into it), then lists the ops the profiler sees in one layer but not the
other. The layer difference is the per-layer overhead the deep models pay ``L`` times. A
plain layer with a residual connection (``H + relu(F)``) is timed too: it pays the same
gradient sum and forward add, so it is the floor of what any update carrying ``H`` costs.
"""

import os

import torch
from dgl.nn import GraphConv
from torch.profiler import ProfilerActivity, profile

from dgl_ssm import PlainUpdate, SSMLayer, SSMUpdate

from .results import Record
from .timing import interleaved


def layer_parts(data, hidden, seed=0):
    """Forward + backward closures: conv, plain/SSM update, plain/SSM layer."""
    torch.manual_seed(seed)
    device = data.feat.device
    n = data.graph.num_nodes()
    state = torch.randn(n, hidden, device=device, requires_grad=True)
    conv_out = torch.randn(n, hidden, device=device, requires_grad=True)
    upstream = torch.randn(n, hidden, device=device)
    conv = GraphConv(hidden, hidden, norm="both", allow_zero_in_degree=True).to(device)
    layers = {
        "plain layer": SSMLayer(conv, hidden, PlainUpdate()).to(device),
        "residual layer": SSMLayer(conv, hidden, PlainUpdate(residual=True)).to(device),
        "ssm layer": SSMLayer(conv, hidden, SSMUpdate(hidden)).to(device),
    }
    graph = data.graph

    def backward_of(forward):
        def run():
            state.grad = conv_out.grad = None  # the leaves' gradients would accumulate
            forward().backward(upstream)

        return run

    return {
        "conv": backward_of(lambda: conv(graph, state)),
        "plain update": backward_of(lambda: layers["plain layer"].update(state, conv_out)),
        "ssm update": backward_of(lambda: layers["ssm layer"].update(state, conv_out)),
        "plain layer": backward_of(lambda: layers["plain layer"](graph, state)),
        "residual layer": backward_of(lambda: layers["residual layer"](graph, state)),
        "ssm layer": backward_of(lambda: layers["ssm layer"](graph, state)),
    }


def measure_breakdown(config, data, device, log, repeats=None):
    """Time the parts of one layer, interleaved; return records and the op-level diff.

    Returns
    -------
    records : list of Record
    op_diff : list of dict
        Ops whose count or self time differs between the SSM and the plain layer (per
        forward + backward), largest time difference first.
    """
    parts = layer_parts(data, config.hidden, config.seed)
    repeats = repeats or max(5, 3 * config.repeats)
    samples = interleaved(parts, repeats, config.warmup + 1, device, config.min_time)
    name = data.spec.name
    plain = samples["plain layer"].median
    log(
        f"[breakdown] {name}, one layer fwd+bwd: "
        + ", ".join(f"{key} {s.median * 1e3:.3g} ms" for key, s in samples.items())
        + f"; ssm/plain layer {samples['ssm layer'].median / plain:.3f}"
    )
    records = [
        Record("breakdown", name, key, "seconds", list(s.values)) for key, s in samples.items()
    ]
    op_diff = _op_diff(parts["plain layer"], parts["ssm layer"], repeats=3)
    return records, op_diff


def _op_table(run, repeats):
    # Kineto's "STAGE: Completed …" lines would clutter the benchmark's output; the variable
    # is read when the profiler first starts.
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    run()
    with profile(activities=activities) as prof:
        for _ in range(repeats):
            run()
    table = {}
    for event in prof.key_averages():
        table[event.key] = (event.count / repeats, event.self_cpu_time_total / repeats / 1e3)
    return table


def _op_diff(plain_run, ssm_run, repeats):
    plain = _op_table(plain_run, repeats)
    ssm = _op_table(ssm_run, repeats)
    rows = []
    for op in sorted(set(plain) | set(ssm)):
        plain_count, plain_ms = plain.get(op, (0, 0.0))
        ssm_count, ssm_ms = ssm.get(op, (0, 0.0))
        if plain_count != ssm_count:
            rows.append(
                {
                    "op": op,
                    "plain_calls": plain_count,
                    "ssm_calls": ssm_count,
                    "plain_ms": plain_ms,
                    "ssm_ms": ssm_ms,
                    "delta_ms": ssm_ms - plain_ms,
                }
            )
    rows.sort(key=lambda row: -abs(row["delta_ms"]))
    return rows
