"""Run a configuration over several seeds and append one JSON line per run."""

import dataclasses
import platform
import statistics
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import dgl
import numpy as np
import torch

import dgl_ssm

from .config import SEED_LIMIT, RunConfig
from .datasets import data_version, dataset_level, dataset_options, num_splits
from .device import resolve_device
from .machine import cpu_kernels, cpu_model
from .metrics import METRICS
from .models import build_for, check_model_name
from .records import append_or_show, check_writable, read_records
from .reproduce.records import SCHEMA, check_outcome, config_key, record_key
from .train import check_split, load_data, optimizer_class, train

ROOT = Path(__file__).resolve().parents[1]


def validate(config: RunConfig):
    """Fail on any invalid option before data is loaded or a model trained."""
    check_model_name(config.model.name)
    dataset_options(config.data.name)  # unknown dataset names list the valid ones
    resolve_device(config.device)
    optimizer_class(config.optim.optimizer)
    if config.optim.rescale_weight_decay is not None and config.model.calibrate is None:
        raise ValueError(  # as --calibrate-lambda is: an option for a step that will not run
            "--same-weight-decay and --uniform-weight-decay (optim.rescale_weight_decay) say "
            "how a calibrated model's weight decay is set; add --calibrate or drop them."
        )
    check_split(config.data.name, config.data.split, num_splits(config.data.name))
    # Building a one-feature model of the dataset's level runs every constructor check
    # (names, sizes, SSM options, a graph head's options on a node task).
    build_for(config.model, _Probe(level=dataset_level(config.data.name), name=config.data.name))


@dataclasses.dataclass
class _Probe:  # the fields of BenchmarkData that build_for reads
    level: str
    name: str = "probe"
    num_features: int = 1
    num_outputs: int = 1
    num_edge_features: int | None = None
    node_encoder: str | None = None
    edge_encoder: str | None = None


def _git_state(root=ROOT):
    """The commit checked out at ``root``, and whether tracked code differs from it (``None``
    for either when git cannot tell). Changes under ``results/`` are not code: long runs keep
    appending their records there."""

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
        )

    try:
        top = git("rev-parse", "--show-toplevel")
        # An installed copy may sit inside someone else's repository (a venv in a project):
        # that repository's commit says nothing about this code.
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != Path(root).resolve():
            return None, None
        head = git("rev-parse", "HEAD")
        changes = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                      ":(exclude)results")  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None, None
    if head.returncode != 0 or not head.stdout.strip():
        return None, None
    return head.stdout.strip(), (bool(changes.stdout.strip()) if changes.returncode == 0 else None)


# Read when the code is imported, not when a record is written: a run of an hour may end
# after later commits, and its record must name the code that ran (and say whether that
# code had uncommitted changes, which the commit alone would not reproduce).
_COMMIT_AT_IMPORT, _UNCOMMITTED_AT_IMPORT = _git_state()


def environment(device=None):
    """Package versions, the git commit this process's code was imported at (and whether its
    code differed from that commit), the device a run used, and the CPU and the instruction
    set of its kernels (see :mod:`dgl_ssm_bench.machine`), so a record says what produced
    it."""
    return {
        **({"device": device} if device is not None else {}),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "dgl": dgl.__version__,
        "numpy": np.__version__,
        "dgl_ssm": dgl_ssm.__version__,
        "git_commit": _COMMIT_AT_IMPORT,
        "uncommitted_changes": _UNCOMMITTED_AT_IMPORT,
        "machine": platform.platform(),
        "cpu": cpu_model(),
        **cpu_kernels(),
    }


def run_record(config: RunConfig, result):
    """What one finished run leaves: its whole config, outcome, cost and environment."""
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config.to_dict(),
        "status": result.status,
        "metric": result.metric,
        "val": result.val,
        "test": result.test,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "wall_time_s": round(result.wall_time_s, 3),
        "environment": environment(result.device),
        "key": config_key(config),
        "data_version": data_version(config.data.name),
        "schema": SCHEMA,  # the rules the key was computed under (see reproduce.records)
        **({"calibration": result.calibration} if result.calibration is not None else {}),
        **({"history": result.history} if result.monitored else {}),
    }


def config_of_run(config: RunConfig, index, seed, data):
    """A copy of ``config`` for run ``index`` of several: with ``seed`` and, on a dataset with
    fixed splits (the heterophilous sets have ten), split ``(split + index) mod count``, so
    ten runs cover the ten splits."""
    run_config = RunConfig.from_dict(config.to_dict())
    run_config.seed = seed
    if data.transductive:
        run_config.data.split = (config.data.split + index) % data.num_splits
    return run_config


def run_seeds(config: RunConfig, seeds=1, output=None, progress=True, log=print, monitor=None,
              resume=False, on_epoch=None):  # fmt: skip
    """Train ``config`` with seeds ``seed … seed+seeds-1``; append each record to ``output``.

    Run ``i`` uses the split :func:`config_of_run` gives it. With ``resume``, a run whose
    configuration (its key, :func:`~dgl_ssm_bench.reproduce.config_key`) has a record in
    ``output`` already, on the same data (``data_fingerprint``, from
    :meth:`~dgl_ssm_bench.datasets.base.BenchmarkData.fingerprint`), is not run again.
    ``monitor(seed)``
    returns a :class:`~dgl_ssm_bench.monitor.TrainingMonitor` for that run, or None;
    ``on_epoch(epoch, val_metric)`` is called after each epoch of each run, as by
    :func:`~dgl_ssm_bench.train.train`.
    """
    validate(config)
    if config.seed + seeds > SEED_LIMIT:
        raise ValueError(
            f"seeds {config.seed} … {config.seed + seeds - 1} go past the largest seed, "
            f"{SEED_LIMIT - 1} (dgl.seed takes a C int): lower --seed or --seeds."
        )
    if resume and output is None:
        raise ValueError("--resume skips the runs already in --output; give --output.")
    if output is not None:
        check_writable(output)  # before any work, so no finished run is lost
    data = load_data(config)
    fingerprint = data.fingerprint()  # the key leaves out where the files were, not what
    finished = _finished_runs(output) if resume else {}
    records, skipped = [], []  # this call's runs, and the runs found in output already
    for i in range(seeds):
        run_config = config_of_run(config, i, config.seed + i, data)
        run = f"seed {run_config.seed} split {run_config.data.split}"
        on_record = finished.get(config_key(run_config), {})  # by data fingerprint
        if (done := on_record.get(fingerprint, on_record.get(None))) is not None:
            skipped.append(done)  # (a record of before fingerprints: its data unknown, trusted)
            log(f"{run}: in {output} already (test {_fmt(done['test'])}); skipped")
            continue
        if on_record:
            log(f"{run}: in {output} on other data only (data fingerprint "
                f"{', '.join(sorted(on_record))}; now {fingerprint}); run again")  # fmt: skip
        watch = None if monitor is None else monitor(run_config.seed)
        result = train(run_config, data=data, on_epoch=on_epoch, progress=progress, monitor=watch)
        record = run_record(run_config, result)
        peak = result.peak_memory_mb
        record["peak_memory_mb"] = None if peak is None else round(peak, 1)
        record["data_fingerprint"] = fingerprint
        records.append(record)
        if output is not None:
            append_or_show(output, record, f"seed {record['config']['seed']}")
        log(
            f"{run}: {result.status}, "
            f"{result.metric} val {_fmt(result.val)} test {_fmt(result.test)} "
            f"({result.epochs} epochs, {result.wall_time_s:.1f} s)"
        )
        if result.calibration is not None:
            log(calibration_summary(result.calibration))
    _summarise(config, skipped + records, log)
    return records


def _summarise(config, records, log):
    """One line: the mean and spread of the test scores, or why there are none."""
    tests = [r["test"] for r in records if r["status"] == "ok"]
    if tests:
        spread = statistics.stdev(tests) if len(tests) > 1 else 0.0
        higher = METRICS[records[0]["metric"]].higher_is_better
        log(
            f"{config.model.name} on {config.data.name}: test {records[0]['metric']} "
            f"{statistics.mean(tests):.4f} ± {spread:.4f} over {len(tests)} run(s) "
            f"({'higher' if higher else 'lower'} is better)"
        )
    else:  # every run diverged: say so, and what usually helps, rather than end in silence
        log(
            f"{config.model.name} on {config.data.name}: no run finished with finite numbers "
            f"({', '.join(sorted({r['status'] for r in records}))}); its records say so. A "
            "non-finite loss usually asks for a lower --lr, a smaller --input-scale (SSM "
            "models) or a norm (--norm layer)."
        )


def _finished_runs(output):
    """The records of ``output`` by their configuration's key, then by their data fingerprint
    (None: recorded before fingerprints); lines no run wrote (or edited past reading), and
    records of before keys, skipped: their runs run again."""
    finished = {}
    for record in read_records(output):
        if "schema" not in record:  # written before keys were: its rules are not known
            continue
        try:
            check_outcome(record, need_metric=True)  # the summary reads its metric
            key = record_key(record)
        except (KeyError, TypeError, ValueError):
            continue
        finished.setdefault(key, {})[record.get("data_fingerprint")] = record
    return finished


def calibration_summary(calibration):
    """One line from a run record's ``calibration``: the bounds met or not, and each measured
    quantity's range before → after (λ per group, B's factor, the first-to-last-layer
    gradient norm ratio of the training loss)."""
    c, rounds = calibration, calibration["rounds"]
    gradient_before, gradient_after = c["grad_first_to_last"]
    return (
        f"  calibration: {'ok' if c['ok'] else 'NOT within its bounds'} after {rounds} "
        f"round{'s' * (rounds != 1)}; top |eigenvalue| {_span(c['radius_before'])} → "
        f"{_span(c['radius_after'])}, state norm ×{_span(c['norm_before'])} → "
        f"×{_span(c['norm_after'])}, λ {_span(c['state_scale'])}, B × "
        f"{_span(c['input_factor'])}, gradient norm ratio first/last layer {gradient_before:.3g} → "
        f"{gradient_after:.3g}"
    )


def _span(values):
    low, high = f"{min(values):.4g}", f"{max(values):.4g}"
    return low if low == high else f"{low}…{high}"


def _fmt(value):
    return "n/a" if value is None else f"{value:.4f}"
