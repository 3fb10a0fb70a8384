"""The sweep runner: one Optuna study per backbone × dataset, run by one or many workers.

Each worker repeats: under the study's lock, fail trials whose worker died (they are
re-queued with the same parameters), then take a queued trial or create a new one while the
study has fewer than the requested number; train it outside the lock with a heartbeat, and
report every epoch's validation metric so the pruner can stop it. When no trial is left,
the best configuration is re-run over several seeds and its test mean ± std is stored with
the study (``study.user_attrs["final"]``), which is all the leaderboard reads.

A plain backbone is searched over the space's ``search`` and ``plain`` keys, an SSM backbone
over ``search`` and ``ssm``, a reference baseline over ``search`` only (see
:mod:`sweeps.space`). Each study also records what its numbers may be compared with: the
space's ``protocol`` and the dataset's ``data_version`` (user attrs, read by the leaderboard).
"""

import math
import multiprocessing
import os
import statistics
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Optional

import optuna
import torch
from optuna.trial import TrialState

from benchmarks.config import RunConfig
from benchmarks.datasets import data_version, dataset_options
from benchmarks.metrics import METRICS
from benchmarks.models import check_model_name
from benchmarks.run import validate as validate_run
from benchmarks.train import load_data, train

from .space import apply_values, backbone_kind, find_space, load_space
from .storage import create_or_load_study, open_storage, trial_lock

PRUNERS = ("median", "hyperband", "none")


@dataclass
class SweepSpec:
    """What to sweep and where; the same on every worker of a study."""

    backbone: str
    dataset: str
    trials: int = 20
    storage: str = "sqlite:///runs/optuna.db"
    space: Optional[str] = None  # default: the most specific file for the pair
    seed: int = 0
    pruner: str = "median"
    heartbeat: int = 30
    data_dir: Optional[str] = None
    cache_dir: Optional[str] = None
    device: str = "auto"
    final: bool = True

    @property
    def study_name(self):
        return f"{self.backbone}__{self.dataset}"

    def load_space(self):
        return load_space(self.space or find_space(self.backbone, self.dataset))

    def base_config(self, space):
        config = RunConfig()
        config.model.name, config.data.name, config.device = (
            self.backbone,
            self.dataset,
            self.device,
        )
        config.data.data_dir, config.data.cache_dir = self.data_dir, self.cache_dir
        return apply_values(config, space.fixed)


def validate(spec: SweepSpec):
    """Every name and file checked before any worker starts (errors list the valid values)."""
    check_model_name(spec.backbone)
    dataset_options(spec.dataset)
    if spec.pruner not in PRUNERS:
        raise ValueError(f"Unknown pruner {spec.pruner!r}. Valid: {', '.join(PRUNERS)}.")
    if spec.trials < 1:
        raise ValueError("--trials must be at least 1.")
    space = spec.load_space()
    # The fixed values with each searched key at its first choice: builds a probe model, so an
    # option this backbone does not take fails here, not in a worker.
    first = {key: _first_value(p) for key, p in space.params(backbone_kind(spec.backbone)).items()}
    validate_run(apply_values(spec.base_config(space), first))


def _first_value(param):
    return param["choices"][0] if param["type"] == "categorical" else param["low"]


def run_sweep(spec: SweepSpec, workers=1, log=print):
    """Run (or resume) the study with ``workers`` processes here, then the final evaluation."""
    validate(spec)
    open_storage(spec.storage, spec.heartbeat)  # unreachable storage: one line, before forking
    if workers == 1:
        summary = work(spec, worker_index=0, log=log)
    else:
        context = multiprocessing.get_context("spawn")
        processes = [
            context.Process(target=_work_in_process, args=(spec, i, workers))
            for i in range(workers)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        failed = [i for i, p in enumerate(processes) if p.exitcode != 0]
        if failed:
            raise RuntimeError(f"worker(s) {failed} of {spec.study_name} failed; see above.")
        summary = None
    if spec.final:
        summary = final_evaluation(spec, log=log)
    return summary


def _work_in_process(spec, index, workers):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    try:
        work(spec, worker_index=index)
    except Exception as error:  # noqa: BLE001 - one line per failed worker, then exit code 1
        print(f"dgl-ssm-sweep: worker {index}: {type(error).__name__}: {error}", flush=True)
        raise SystemExit(1) from None


def open_study(spec, data, space, worker_index=0):
    storage = open_storage(spec.storage, spec.heartbeat)
    direction = "maximize" if METRICS[data.metric].higher_is_better else "minimize"
    sampler = optuna.samplers.TPESampler(seed=spec.seed + worker_index, n_startup_trials=5)
    study = create_or_load_study(storage, spec.study_name, direction, sampler, _pruner(spec))
    attrs = {"backbone": spec.backbone, "dataset": spec.dataset, "metric": data.metric,
             "direction": direction, "space": space.name, "protocol": space.protocol,
             "data_version": data_version(spec.dataset)}  # fmt: skip
    for key, value in attrs.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    return storage, study


def _pruner(spec):
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=10)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def counted(trials):
    """Trials that use up the budget: all but failures that were re-queued as a retry."""
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    return sum(1 for t in trials if t.state != TrialState.FAIL or t.number not in retried)


def work(spec: SweepSpec, worker_index=0, log=print):
    """One worker's loop (see the module docstring). Returns the number of trials it ran."""
    space = spec.load_space()
    data = load_data(spec.base_config(space))
    storage, study = open_study(spec, data, space, worker_index)
    kind = backbone_kind(spec.backbone)
    ran = 0
    while True:
        with trial_lock(storage, spec.study_name):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # fail_stale_trials is "experimental"
                optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            running = any(t.state == TrialState.RUNNING for t in trials)
            trial = None
            if waiting or counted(trials) < spec.trials:
                with warnings.catch_warnings():
                    # Optuna warns that heartbeats are meant for Study.optimize; this loop
                    # records them itself (see _Heartbeat).
                    warnings.simplefilter("ignore", UserWarning)
                    trial = study.ask()
        if trial is None:
            if not running:
                return ran
            time.sleep(min(5, spec.heartbeat))  # others' trials may still die and be re-queued
            continue
        _run_trial(spec, space, data, study, storage, trial, kind, log)
        ran += 1


def _run_trial(spec, space, data, study, storage, trial, kind, log):
    config = apply_values(spec.base_config(space), space.suggest(trial, kind))
    trial.set_user_attr("config", config.to_dict())

    def report(epoch, value):
        if value is not None and math.isfinite(value):
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    with _Heartbeat(storage, trial._trial_id, spec.heartbeat):
        try:
            result = train(config, data=data, on_epoch=report)
        except optuna.TrialPruned:
            trial.set_user_attr("status", "pruned")
            study.tell(trial, state=TrialState.PRUNED)
            log(f"{spec.study_name}: trial {trial.number} pruned")
            return
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
    attrs = {"val": result.val, "test": result.test, "status": result.status,
             "epochs": result.epochs, "wall_time_s": result.wall_time_s}  # fmt: skip
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    if result.status != "ok" or result.val is None or not math.isfinite(result.val):
        study.tell(trial, state=TrialState.FAIL)
        log(f"{spec.study_name}: trial {trial.number} {result.status}")
        return
    study.tell(trial, result.val)
    log(
        f"{spec.study_name}: trial {trial.number} {result.metric} val {result.val:.4f} "
        f"test {result.test:.4f} ({result.epochs} epochs, {result.wall_time_s:.1f} s)"
    )


class _Heartbeat:
    """Records the trial's heartbeat every ``interval`` seconds while it runs."""

    def __init__(self, storage, trial_id, interval):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self):
        while True:
            self.storage.record_heartbeat(self.trial_id)
            if self.stop.wait(self.interval):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        return False


def final_evaluation(spec: SweepSpec, log=print):
    """Re-run the best trial's configuration over the space's final seeds; store mean ± std.

    Runs once per best trial: a study resumed with a new best trial is evaluated again.
    """
    space = spec.load_space()
    data = load_data(spec.base_config(space))
    storage, study = open_study(spec, data, space)
    with trial_lock(storage, spec.study_name + ":final"):
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not completed:
            log(f"{spec.study_name}: no completed trial, no final evaluation")
            return None
        best = study.best_trial
        final = study.user_attrs.get("final")
        if final and final.get("trial") == best.number:
            log(_describe(spec, final))
            return final
        runs = int(space.final.get("runs", 3))
        seeds = list(space.final.get("seeds") or range(runs))[:runs]
        values = []
        for i, seed in enumerate(seeds):
            config = RunConfig.from_dict(best.user_attrs["config"])
            config.seed = seed
            if data.transductive:
                config.data.split = i % data.num_splits  # the heterophilous sets' 10 splits
            result = train(config, data=data)
            values.append(result.test if result.status == "ok" else None)
        finite = [v for v in values if v is not None and math.isfinite(v)]
        final = {
            "trial": best.number,
            "mean": statistics.mean(finite) if finite else None,
            "std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
            "values": values,
            "seeds": seeds,
            "params": best.params,
            "config": best.user_attrs["config"],
        }
        study.set_user_attr("final", final)
    log(_describe(spec, final))
    return final


def _describe(spec, final):
    if final["mean"] is None:
        return f"{spec.study_name}: final runs all failed"
    return (
        f"{spec.study_name}: best trial {final['trial']}, test {final['mean']:.4f} ± "
        f"{final['std']:.4f} over {len(final['values'])} run(s)"
    )
