"""The measurements: interleaved epoch timings (``torch.utils.benchmark``), peak memory of one
epoch, the k-hop transform's cost (all three runnable in a fresh process: picklable arguments,
plain dicts back), and where one SSM layer's time goes."""

import os

import torch
from dgl.nn import GraphConv
from torch.profiler import ProfilerActivity, profile
from torch.utils.benchmark import Measurement, Timer, timer

from dgl_ssm import KHopTransform, PlainUpdate, SSMLayer, SSMUpdate

from ..memory import PeakMeter
from ..threads import set_threads
from .workload import GPP_CONFIG, bare_graph, gpp_sized_graphs, load_graph, make_epoch


def interleaved(runs, rounds, warmup=0, round_seconds=0.0, label="", description=""):
    """Time every ``runs[key]()`` in ``rounds`` rounds (A B A B …) after ``warmup`` untimed
    rounds, so drift and other processes hit every run alike; return ``key → [Measurement per
    round]`` (named by ``label``, ``description`` and the key, for ``Compare``).

    In each round every run gets one ``Timer.blocked_autorange(min_run_time=round_seconds)``:
    one untimed call sizes the block, then blocks are timed until ``round_seconds`` are spent
    (at least one), so cheap runs get many calls per round.
    """
    threads = torch.get_num_threads()  # Timer would otherwise run with 1 thread
    timers = {
        key: Timer("run()", globals={"run": run}, label=label, sub_label=key,
                   description=description, num_threads=threads)
        for key, run in runs.items()
    }  # fmt: skip
    for _ in range(warmup):
        for run in runs.values():
            run()
    measured = {key: [] for key in runs}
    for _ in range(rounds):
        for key, each in timers.items():
            measured[key].append(each.blocked_autorange(min_run_time=round_seconds))
    return measured


def round_medians(measurements):
    """A Measurement of the per-round medians (the report's samples), for ``Compare``."""
    return Measurement(1, [m.median for m in measurements], measurements[0].task_spec)


def _setup(config, device="cpu"):
    if config.threads:
        set_threads(config.threads)
    device = torch.device(device)
    if device.type == "cuda" and device.index is not None:
        # Timer's torch.cuda.synchronize() waits for the current device only: make it ours,
        # or times on cuda:1 would stop before its kernels do.
        torch.cuda.set_device(device)
    return device


def time_epochs(config, spec, depth, variants, label, device):
    """Seconds per training epoch of ``variants`` at ``depth`` on ``spec``'s graph, in
    ``config.repeats`` interleaved rounds; each variant runs ``config.min_time`` s in all."""
    device = _setup(config, device)
    data = load_graph(spec, config.hidden, device)
    runs = {v: make_epoch(v, data, depth, config.hidden, config.seed) for v in variants}
    seconds = config.min_time / config.repeats
    measured = interleaved(runs, config.repeats, config.warmup, seconds, label, f"{depth} layers")
    return {"status": "ok", "measurements": measured}


def time_monitor(config, spec, depth, label, device):
    """Seconds per epoch of GCN-SSM at ``depth`` on ``spec``'s graph, trained in blocks of
    ``config.monitor_every`` epochs, with and without the training monitor recording the first
    epoch of each block (:class:`~dgl_ssm_bench.monitor.TrainingMonitor`, its defaults: the
    singular values in a helper process at its own pace), in interleaved rounds."""
    from ..monitor import TrainingMonitor

    device = _setup(config, device)
    data = load_graph(spec, config.hidden, device)
    every = config.monitor_every
    monitor = TrainingMonitor(every)
    plain = make_epoch("gcn_ssm", data, depth, config.hidden, config.seed)
    watched = make_epoch("gcn_ssm", data, depth, config.hidden, config.seed, monitor=monitor)

    def block(epoch, watch_first):
        def run():
            for i in range(every):
                epoch(watch_first and i == 0)

        return run

    runs = {
        "gcn_ssm": block(lambda _watch: plain(), False),
        "gcn_ssm+monitor": block(watched, True),
    }
    seconds = config.min_time * every / config.repeats
    measured = interleaved(runs, config.repeats, config.warmup, seconds, label, f"{depth} layers")
    helper = _children_cpu_seconds()
    monitor.close()
    entries = monitor.entries
    with_spectra = sum(bool(e["singular_values"]) for e in entries)
    per_epoch = {k: [Measurement(m.number_per_run, [t / every for t in m.raw_times], m.task_spec)
                     for m in v] for k, v in measured.items()}  # fmt: skip
    return {"status": "ok", "measurements": per_epoch, "entries": len(entries),
            "with_spectra": with_spectra, "helper_cpu_s": helper}  # fmt: skip


def _children_cpu_seconds():
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def epoch_memory(config, spec, variant, device, depth=None, timed_epochs=0):
    """Peak memory of one training epoch at ``depth`` (default ``config.deepest``) layers above
    what is held before it (graph, features, model, optimizer), and that epoch's seconds;
    with ``timed_epochs``, also the seconds of each of that many epochs after it."""
    device = _setup(config, device)
    data = load_graph(spec, config.hidden, device)
    epoch = make_epoch(variant, data, depth or config.deepest, config.hidden, config.seed)
    meter = PeakMeter(device)
    meter.start()
    start = timer()  # synchronises CUDA when there is one
    epoch()
    seconds = timer() - start
    peak = meter.peak_mb()
    if not meter.own:  # (--no-subprocess where the mark holds an earlier measurement's peak)
        return {"status": "failed", "message": "this system cannot reset the peak-memory mark "
                "within a process: measure each in a fresh one (drop --no-subprocess)"}  # fmt: skip
    more = []
    for _ in range(timed_epochs):
        start = timer()
        epoch()
        more.append(timer() - start)
    return {"status": "ok", "peak_mb": peak, "seconds": seconds, "method": meter.method,
            "epoch_seconds": more}  # fmt: skip


def khop_cost(config, spec):
    """Time, edge count and peak memory of ``KHopTransform(K)`` on ``spec``'s graph without
    self loops for K = 1 … ``config.khop_max_k``, stopping at the first K whose result would
    exceed ``config.khop_max_edges`` (status ``exceeds max_edges``)."""
    _setup(config)
    graph = bare_graph(spec)
    meter = PeakMeter("cpu")  # the transform runs on CPU
    steps = []
    for k in range(1, config.khop_max_k + 1):
        meter.start()
        start = timer()
        try:
            edges = KHopTransform(k, max_edges=config.khop_max_edges)(graph).num_edges()
            status, message = "ok", ""
        except ValueError as error:
            edges, status, message = None, "exceeds max_edges", str(error)
        seconds = timer() - start
        steps.append(dict(k=k, status=status, edges=edges, seconds=seconds,
                          peak_mb=meter.peak_mb(), message=message))  # fmt: skip
        if status != "ok":
            break  # a larger K only has more edges
    return {"status": "ok", "input_edges": graph.num_edges(), "steps": steps,
            "resettable": meter.resettable}  # fmt: skip


def rewire_cost(config, label):
    """Seconds to rewire ``config.rewire_graphs`` graphs of the GPP generator's sizes for the
    shipped kGCN-SSM GPP config (K = 10), as training prepares them: one graph at a time
    (``prepare_graph``) and in batched calls (``prepare_graphs``), in interleaved rounds. Both
    must give the same graphs (edges, hop labels, node data): ``same`` says whether they did."""
    from ..config import RunConfig
    from ..train import prepare_graph, prepare_graphs

    _setup(config)
    run_config = RunConfig.from_yaml(GPP_CONFIG)
    graphs = gpp_sized_graphs(config.rewire_graphs, config.seed)
    one_by_one = [prepare_graph(graph, run_config) for graph in graphs]
    batched = prepare_graphs(graphs, run_config)
    same = len(batched) == len(one_by_one) and all(map(_same_graph, one_by_one, batched))
    runs = {
        "one at a time": lambda: [prepare_graph(graph, run_config) for graph in graphs],
        "batched": lambda: prepare_graphs(graphs, run_config),
    }
    seconds = config.min_time / config.repeats
    where = f"{len(graphs)} graphs, K={run_config.model.max_hop}"
    measured = interleaved(runs, config.repeats, config.warmup, seconds, label, where)
    edges = sum(graph.num_edges() for graph in one_by_one)
    return {"status": "ok", "measurements": measured, "same": same, "edges": edges,
            "k": run_config.model.max_hop}  # fmt: skip


def _same_graph(a, b):
    """The same nodes, edges in the same order, and the same node and edge data."""
    return (
        a.num_nodes() == b.num_nodes()
        and all(torch.equal(x, y) for x, y in zip(a.edges(), b.edges()))
        and all(
            x.keys() == y.keys() and all(torch.equal(x[name], y[name]) for name in x.keys())
            for x, y in ((a.ndata, b.ndata), (a.edata, b.edata))
        )
    )


def layer_parts(data, hidden, seed=0):
    """Forward + backward closures of one layer's parts: the conv, the plain and SSM updates,
    and the plain, residual (``H + relu(F)``: the floor of any update carrying ``H``) and SSM
    layers."""
    torch.manual_seed(seed)
    graph, device = data.graph, data.feat.device
    state, conv_out = (torch.randn(graph.num_nodes(), hidden, device=device, requires_grad=True)
                       for _ in range(2))  # fmt: skip
    upstream = torch.randn(graph.num_nodes(), hidden, device=device)
    conv = GraphConv(hidden, hidden, norm="both", allow_zero_in_degree=True).to(device)
    plain, residual, ssm = (
        SSMLayer(conv, hidden, update).to(device)
        for update in (PlainUpdate(), PlainUpdate(residual=True), SSMUpdate(hidden))
    )

    def backward_of(forward):
        def run():
            state.grad = conv_out.grad = None  # the leaves' gradients would accumulate
            forward().backward(upstream)

        return run

    return {
        "conv": backward_of(lambda: conv(graph, state)),
        "plain update": backward_of(lambda: plain.update(state, conv_out)),
        "ssm update": backward_of(lambda: ssm.update(state, conv_out)),
        "plain layer": backward_of(lambda: plain(graph, state)),
        "residual layer": backward_of(lambda: residual(graph, state)),
        "ssm layer": backward_of(lambda: ssm(graph, state)),
    }


def breakdown(config, data):
    """One layer's parts timed interleaved on ``data``, and the ops whose count differs
    between the SSM and the plain layer (profiler, per forward + backward), largest time
    difference first: ``(dict of part → list of Measurement, list of dict)``."""
    parts = layer_parts(data, config.hidden, config.seed)
    rounds = max(5, 3 * config.repeats)
    label = f"one layer fwd+bwd, {data.spec.name}"
    measured = interleaved(parts, rounds, config.warmup + 1, config.min_time / rounds, label)
    plain, ssm = (
        _op_table(parts[key], 3, data.feat.device) for key in ("plain layer", "ssm layer")
    )
    rows = []
    for op in sorted(set(plain) | set(ssm)):
        (calls, ms), (ssm_calls, ssm_ms) = plain.get(op, (0, 0)), ssm.get(op, (0, 0))
        if calls != ssm_calls:
            row = dict(op=op, plain_calls=calls, ssm_calls=ssm_calls, plain_ms=ms, ssm_ms=ssm_ms)
            rows.append({**row, "delta_ms": ssm_ms - ms})
    return measured, sorted(rows, key=lambda row: -abs(row["delta_ms"]))


def _op_table(run, repeats, device):
    """``op → (calls, self ms)`` per call of ``run``, from the profiler: time on the device
    the layer ran on (on a GPU the CPU time of an op is only its launch)."""
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # no "STAGE: Completed …" lines
    on_gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * on_gpu
    run()
    with profile(activities=activities) as prof:
        for _ in range(repeats):
            run()
    return {
        event.key: (
            event.count / repeats,
            (event.self_cuda_time_total if on_gpu else event.self_cpu_time_total) / repeats / 1e3,
        )
        for event in prof.key_averages()
    }
