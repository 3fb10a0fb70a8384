"""One trainer for node and graph tasks: full-batch on one graph, mini-batches of many graphs.

``train(config)`` loads the data, builds the model, trains with early stopping on the
validation metric, restores the best-validation weights and scores val and test with them.
A run never knows whether it is a trial: a sweep passes ``on_epoch(epoch, val_metric)``,
which may raise to stop it (Optuna's pruning does). ``peak_memory_mb`` is the run's own peak
(the resident set's high-water mark, reset when the run starts; on CUDA the tensors'
``max_memory_allocated`` after ``reset_peak_memory_stats``), so every trial of a sweep that
runs in one process reports its own. Where the mark cannot be reset (macOS, Windows) only a
process's first run has one; later runs report ``None``.
"""

import math
import random
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import dgl
import numpy as np
import torch

import dgl_ssm
from dgl_ssm import KHopTransform
from dgl_ssm.analysis import layer_gradient_norms
from dgl_ssm.analysis._common import run_model
from dgl_ssm.checks import check_choice

from .config import RunConfig
from .datasets import BenchmarkData, get_dataset
from .device import describe, resolve_device
from .memory import PeakMeter
from .metrics import METRICS, loss_fn
from .models import build_for
from .monitor import TrainingMonitor


@dataclass
class RunResult:
    """What a run produced. ``status`` is ``"ok"`` or ``"diverged"`` (a non-finite loss,
    predictions or metric: the run stops there, with no val or test score)."""

    status: str
    metric: str
    val: float | None
    test: float | None
    best_epoch: int
    epochs: int
    wall_time_s: float
    peak_memory_mb: float | None
    history: list[dict[str, float]] = field(default_factory=list)
    monitored: bool = False  # the history holds the monitor's entries (keep it in the record)
    calibration: dict | None = None  # dgl_ssm.calibrate's report, when the config asks for it
    device: str = "cpu"  # where it ran: "cpu" or "cuda:0 (GPU name)"


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    dgl.seed(seed)


def check_split(dataset, split, count):
    """Refuse a split index the dataset does not have (``count`` fixed splits; None or 0 for
    none, where only split 0 exists)."""
    if not 0 <= split < (count or 1):
        has = f"{count} fixed split(s)" if count else "no fixed splits"
        valid = f"0..{count - 1}" if count else "0"
        raise ValueError(f"{dataset} has {has}; split {split} does not exist (valid: {valid}).")


def prepare_graph(graph, config: RunConfig):
    """Self loops for one-hop models (but those that read edge features, when the graph has
    them); k-hop rewiring (radius K) for k-hop models."""
    model = config.model
    if model.is_khop:
        radius = model.max_hop or model.num_layers
        return KHopTransform(k=radius)(dgl.remove_self_loop(graph))
    if config.data.self_loops and not _reads_edge_feats(model, graph):
        return dgl.add_self_loop(dgl.remove_self_loop(graph))
    return graph


# Graphs rewired per batched call (the transform of a batch is the batch of the transforms,
# and one call on 512 GPP graphs costs what 60 calls on one do).
_KHOP_CHUNK = 512


def prepare_graphs(graphs, config: RunConfig):
    """:func:`prepare_graph` of each graph; for k-hop models, in batched calls."""
    if not config.model.is_khop or any(graph.batch_size != 1 for graph in graphs):
        return [prepare_graph(graph, config) for graph in graphs]
    prepared = []
    for start in range(0, len(graphs), _KHOP_CHUNK):
        chunk = graphs[start : start + _KHOP_CHUNK]
        try:
            prepared.extend(dgl.unbatch(prepare_graph(dgl.batch(chunk), config)))
        except (ValueError, dgl.DGLError):  # above max_edges together, or not batchable
            prepared.extend(prepare_graph(graph, config) for graph in chunk)
    return prepared


def _edge_feat(model, graph):
    """The graph's edge features for a model that reads them (GatedGCN), else None."""
    return graph.edata["feat"] if _reads_edge_feats(model, graph) else None


def _reads_edge_feats(model, graph):
    # A self loop has no bond to describe: a backbone that reads the graph's edge features
    # (GatedGCN on molecules) gets the graph as it is, as LRGB runs it.
    return getattr(model, "uses_edge_feats", False) and "feat" in graph.edata


def load_data(config: RunConfig):
    data = config.data
    return get_dataset(data.name, data_dir=data.data_dir, cache_dir=data.cache_dir, **data.options)


def load_each_dataset_once(configs, nothing_started):
    """Load each dataset read from files (not generated) that ``configs`` train on, once,
    before any of them runs: a wrong ``--data-dir``, or none offline, is then one error naming
    every dataset missing, not a failure per run or a suite stopped at its first such study
    after hours of the others. The processed data is cached for the runs. ``nothing_started``
    ends the error's first part (what was not started, and how to choose less)."""
    from .datasets import dataset_options

    seen, faults = set(), []
    for config in configs:
        key = (config.data.name, repr(sorted(config.data.options.items())))
        if key in seen or "data_dir" not in dataset_options(config.data.name):
            continue
        seen.add(key)
        try:
            load_data(config)
        # (a failed download is a RuntimeError, no file an OSError, a bad graph a DGLError)
        except (ValueError, OSError, RuntimeError, ImportError, dgl.DGLError) as error:
            faults.append(f"{config.data.name}: {error}")
    if faults:
        raise FileNotFoundError(
            f"{len(faults)} of the {len(seen)} datasets these runs read did not load, so "
            f"{nothing_started}: {' | '.join(faults)}"
        )


def train(
    config: RunConfig,
    data: BenchmarkData | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    progress: bool = False,
    monitor: TrainingMonitor | None = None,
) -> RunResult:
    """Train and evaluate one configuration; see the module docstring. With a ``monitor``
    (:class:`~dgl_ssm_bench.monitor.TrainingMonitor`), its entries join the history."""
    device = resolve_device(config.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # also for the work that names no device (cuda:N)
        # A sweep's or reproduction's worker runs one configuration after another: what the
        # allocator keeps cached from earlier ones goes back to the GPU that other workers share.
        torch.cuda.empty_cache()
    if monitor is not None and (monitor.entries or monitor.closed):
        raise ValueError("A TrainingMonitor records one run; give each run a new one.")
    data = load_data(config) if data is None else data
    seed_everything(config.seed)
    task = _Task(data, config, device)
    model = build_for(config.model, data).to(device)
    calibration = report = None
    if config.model.calibrate is not None:
        began = time.perf_counter()
        report, calibration = task.calibrate(
            model, config.model.calibrate, config.model.calibrate_lambda or "nearest",
            config.model.calibrate_input or "halve", progress, config.model.calibrate_memory,
        )  # fmt: skip
        # (apart from wall_time_s, which times the training: minutes for a deep GAT-SSM)
        calibration["seconds"] = time.perf_counter() - began
    optimizer = _optimizer(config, model, report)

    memory = PeakMeter(device)
    memory.start()  # this run's own peak, not the largest of any earlier run in the process
    start, history, status = time.perf_counter(), [], "ok"
    best = _BestSoFar(METRICS[data.metric], config.optim.patience)
    epochs = _epochs(config, data.name, progress)
    epoch = -1
    try:
        for epoch in epochs:
            watch = monitor if monitor is not None and monitor.due(epoch) else None
            loss = task.train_epoch(model, optimizer, epoch, watch)
            val = task.evaluate(model, "val") if math.isfinite(loss) else math.nan
            if not math.isfinite(val):  # a non-finite loss, predictions, or a metric they break
                status = "diverged"
                break
            history.append({"epoch": epoch, "loss": loss, "val": val})
            if monitor is not None:
                monitor.log_epoch(epoch, loss, val)
            stop = best.update(model, epoch, val)
            if progress:
                epochs.set_postfix(loss=f"{loss:.4f}", val=f"{val:.4f}", best=f"{best.val:.4f}")
            if on_epoch is not None:
                on_epoch(epoch, val)
            if stop:
                break
    finally:  # the monitor's helper process and TensorBoard writer end with the run
        entries = monitor.close() if monitor is not None else []
    _merge(history, entries)
    status, val, test = _final_scores(task, model, best, status)
    return RunResult(
        status=status,
        metric=data.metric,
        val=val,
        test=test,
        best_epoch=best.epoch,
        epochs=epoch + 1,
        wall_time_s=time.perf_counter() - start,
        peak_memory_mb=memory.peak_total_mb(),
        history=history,
        monitored=monitor is not None,
        calibration=calibration,
        device=describe(device),
    )


class _BestSoFar:
    """Early stopping: the best validation score so far, its epoch and the model's weights
    then, and whether ``patience`` epochs have passed without a better one."""

    def __init__(self, metric, patience):
        self.metric, self.patience = metric, patience
        self.val, self.epoch, self.state, self.waited = None, -1, None, 0

    def update(self, model, epoch, val):
        """Keep ``model``'s weights if ``val`` is the best so far; whether to stop now."""
        if self.metric.better(val, self.val):
            self.val, self.epoch, self.waited = val, epoch, 0
            # (clones: a deepcopy of the state dict costs 3-4x as much, in Python, per tensor)
            self.state = {key: value.clone() for key, value in model.state_dict().items()}
        else:
            self.waited += 1
        return self.patience is not None and self.waited > 0 and self.waited >= self.patience


def _final_scores(task, model, best, status):
    """``(status, val, test)`` of the best epoch's weights (None after a divergence)."""
    if status != "ok" or best.state is None:
        return status, None, None
    model.load_state_dict(best.state)
    val, test = task.evaluate(model, "val"), task.evaluate(model, "test")
    if not (math.isfinite(val) and math.isfinite(test)):
        return "diverged", None, None
    return status, val, test


def _epochs(config, dataset, progress):
    """The epoch numbers, with a progress bar when asked for and stderr is a terminal."""
    epochs = range(config.optim.epochs)
    if not progress:
        return epochs
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (a log file would fill with
    # carriage-return redraws).
    return tqdm(epochs, desc=f"{config.model.name} on {dataset}", leave=False, disable=None)


def _merge(history, entries):
    """Put each monitor entry into the history item of its epoch (or after it, if that epoch
    diverged and has none)."""
    by_epoch = {item["epoch"]: item for item in history}
    for entry in entries:
        if entry["epoch"] in by_epoch:
            by_epoch[entry["epoch"]].update(entry)
        else:
            history.append(dict(entry))


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def optimizer_class(name):
    """The ``torch.optim`` class an ``optim.optimizer`` name stands for."""
    return OPTIMIZERS[check_choice("optimizer", name, OPTIMIZERS)]


@contextmanager
def _calibration_bar(layers, enabled):
    """A tqdm bar over calibration's layer spectra, sweep by sweep (otherwise a deep model
    is silent for minutes before its first epoch), as its ``progress`` callback; or None."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=layers, desc="calibrating, sweep 1", unit="layer", leave=False,
               disable=None)  # as the epochs' bar: none in a log  # fmt: skip
    sweeps = [1]

    def tick(done, total):
        if done == 1 and bar.n:  # the next sweep starts
            sweeps[0] += 1
            bar.reset(total)
            bar.set_description(f"calibrating, sweep {sweeps[0]}")
        bar.update()
        if done == total:  # shown whole even when it came sooner than tqdm's redraw interval
            bar.refresh()

    try:
        yield tick
    finally:
        bar.close()


def _optimizer(config, model, calibration_report=None):
    """The configured optimizer; after a calibration (its report given), with each calibrated
    layer's weight decay rescaled unless ``optim.rescale_weight_decay`` is False (by each
    conv's output-scaling symmetry, or as if every weight scaled the output if it says
    ``"uniform"``)."""
    optim = config.optim
    kind = optimizer_class(optim.optimizer)
    params = model.parameters()
    if calibration_report is not None and optim.rescale_weight_decay is not False:
        decoupled = kind is torch.optim.AdamW
        rule = "uniform" if optim.rescale_weight_decay == "uniform" else "symmetry"
        params = calibration_report.param_groups(
            model, optim.weight_decay, decoupled=decoupled, rule=rule
        )
    return kind(params, lr=optim.lr, weight_decay=optim.weight_decay)


def _epoch_order(count, seed, epoch):
    """The order of ``count`` training graphs at ``epoch`` of the run seeded ``seed``, from a
    stream of its own: a torch seed of ``seed + epoch`` would give seed s + 1 the batches of
    seed s one epoch later, and understate the spread over seeds (records before schema 6)."""
    high, low = np.random.SeedSequence((seed, epoch)).generate_state(2, np.uint32).tolist()
    generator = torch.Generator().manual_seed(high << 32 | low)
    return torch.randperm(count, generator=generator)


class _Task:
    """Feeds a model the graphs of one dataset and scores its outputs."""

    def __init__(self, data: BenchmarkData, config: RunConfig, device):
        self.data, self.device = data, device
        self.loss = loss_fn(data.loss)
        self.metric = METRICS[data.metric].fn
        self.batch_size = config.optim.batch_size
        self.fixed_batches = config.optim.fixed_batches
        self.seed = config.seed
        self._fixed, self._eval = None, {}
        if data.transductive:
            check_split(data.name, config.data.split, data.num_splits)
            self.graph = prepare_graph(data.graph, config).to(device)
            self.index = {k: v.to(device) for k, v in data.splits[config.data.split].items()}
        else:
            self.graphs = {
                split: prepare_graphs(graphs, config) for split, graphs in data.graphs.items()
            }

    def calibrate(self, model, target, lambda_rule, input_rule, progress=False,
                  memory_bound=None):  # fmt: skip
        """``dgl_ssm.calibrate`` on the training graph (the first training batch of a
        many-graph dataset): its report, and the report as a dict for the record, with the
        ratio of the first to the last layer's gradient norm of the training loss before and
        after. With ``progress``, a bar over each sweep's layer spectra."""
        batch = (
            self._node_batch("train")
            if self.data.transductive
            else next(iter(self._train_batches(0)))
        )
        graph = batch[0]
        feat = graph.ndata["feat"]
        edge_feat = _edge_feat(model, graph)

        def loss(out):
            return self.loss(*self._targets(out, batch))

        def first_to_last():
            norms = layer_gradient_norms(model, graph, feat, loss, edge_feat)
            return norms[0] / norms[-1] if norms[-1] > 0 else math.inf

        before = first_to_last()
        with _calibration_bar(len(model.layers), progress) as tick:
            report = dgl_ssm.calibrate(
                model, graph, feat, edge_feat, target=target, lambda_rule=lambda_rule,
                input_rule=input_rule, memory_bound=memory_bound, progress=tick,
            )  # fmt: skip
        return report, {
            "ok": report.ok,
            "lambda_rule": lambda_rule,
            "input_rule": input_rule,
            "rounds": report.rounds,
            "radius_before": report.radius_before,
            "radius_after": report.radius_after,
            "norm_before": report.norm_before,
            "norm_after": report.norm_after,
            "state_scale": [after for _, after in report.state_scale],
            "input_factor": report.input_factor,
            "memory": report.memory,
            "grad_first_to_last": [before, first_to_last()],
        }

    def train_epoch(self, model, optimizer, epoch, watch=None):
        """One epoch; with ``watch`` (a monitor), its first step is recorded."""
        model.train()
        if self.data.transductive:
            return self._step(model, optimizer, self._node_batch("train"), watch, epoch)
        losses = []
        for batch in self._train_batches(epoch):
            losses.append(self._step(model, optimizer, batch, watch, epoch))
            watch = None
            if not math.isfinite(losses[-1]):
                break
        return float(np.mean(losses))

    def _train_batches(self, epoch):
        def order(seed, count):
            return torch.randperm(count, generator=torch.Generator().manual_seed(seed))

        count, size = len(self.graphs["train"]), self.batch_size
        if not self.fixed_batches:
            graphs = _epoch_order(count, self.seed, epoch)
            return (self._graph_batch("train", graphs[s : s + size]) for s in range(0, count, size))
        if self._fixed is None:  # built once: the batched graphs keep their hop structure
            graphs = order(self.seed, count)
            self._fixed = [
                self._graph_batch("train", graphs[s : s + size]) for s in range(0, count, size)
            ]
        # Seed s + 1 orders its batches as seed s did one epoch later, but each seed's batches
        # hold other graphs, so the runs still see unrelated data (and the records stand).
        return (self._fixed[i] for i in order(self.seed + 1 + epoch, len(self._fixed)).tolist())

    def _step(self, model, optimizer, batch, watch=None, epoch=None):
        with watch.watching(model, epoch) if watch is not None else nullcontext():
            pred, target = self._predict(model, batch)
            loss = self.loss(pred, target)
            optimizer.zero_grad()
            loss.backward()
        optimizer.step()
        return loss.item()

    @torch.no_grad()
    def evaluate(self, model, split):
        model.eval()
        if self.data.transductive:
            pred, target = self._predict(model, self._node_batch(split))
        else:
            parts = [self._predict(model, batch) for batch in self._eval_batches(split)]
            pred, target = torch.cat([p for p, _ in parts]), torch.cat([t for _, t in parts])
        if not bool(torch.isfinite(pred).all()):
            return math.nan  # diverged: some metrics (ROC-AUC) would raise on NaN input
        return float(self.metric(pred, target))

    def _eval_batches(self, split):
        # the same batches every evaluation: built once, with their hop structure
        if split not in self._eval:
            count, size = len(self.graphs[split]), 4 * self.batch_size
            self._eval[split] = [
                self._graph_batch(split, torch.arange(s, min(s + size, count)))
                for s in range(0, count, size)
            ]
        return self._eval[split]

    def _node_batch(self, split):
        return self.graph, self.index[split], None

    def _graph_batch(self, split, index):
        batch = dgl.batch([self.graphs[split][i] for i in index.tolist()]).to(self.device)
        labels = None
        if self.data.level == "graph":
            labels = self.data.graph_labels[split][index].to(self.device)
        return batch, None, labels

    def _predict(self, model, batch):
        graph = batch[0]
        out = run_model(model, graph, graph.ndata["feat"], _edge_feat(model, graph))
        return self._targets(out, batch)

    def _targets(self, out, batch):
        """The model's outputs and the targets they are scored against."""
        graph, index, graph_labels = batch
        if graph_labels is not None:
            return out, graph_labels
        target = graph.ndata["label"]
        if index is None and "target_mask" in graph.ndata:
            index = graph.ndata["target_mask"]
        if index is None:
            return out, target
        return out[index], target[index]
