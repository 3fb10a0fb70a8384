"""The sweep runner: one Optuna study per backbone × dataset, run by one or many workers.

Each worker repeats: under the study's lock, fail trials whose worker died (they are
re-queued with the same parameters), then take a queued trial or create a new one while the
study has fewer than the requested number; train it outside the lock with a heartbeat, and
report every epoch's validation metric so the pruner can stop it. When no trial is left,
the best configuration is re-run over several seeds and its test mean ± std is stored with
the study (``study.user_attrs["final"]``), which the leaderboard ranks.

A plain backbone is searched over the space's ``search`` and ``plain`` keys, an SSM backbone
over ``search`` and ``ssm``, a reference baseline over ``search`` only (see
:mod:`dgl_ssm_sweeps.space`). Each study also records what its numbers may be compared with: the
space's ``protocol`` and the dataset's ``data_version`` (user attrs, read by the leaderboard).

A study is identified by more than its name ``<backbone>__<dataset>``: the hash of its
resolved space, suite and data options is stored with it (user attr ``identity``), and a
sweep whose hash differs refuses to resume it (:class:`StudyMismatch` names the study and the
command that continues it), so two spaces never mix in one study.

Sampling: a search whose keys are all categorical is a grid (Platonov's 10 points): each new
trial takes the next point no trial of the study has taken, in an order shuffled by the base
seed, until --trials or every point is taken. Otherwise, before each new trial the worker
seeds a fresh TPE sampler (``constant_liar=True``) from the base seed, its worker index and
the number of trials already in the study, so workers and resumed runs never repeat each
other, and one worker with one seed is reproducible (a study run in two goes samples what one
go would). Parameters are suggested under the study's lock, so each worker sees the others'
running trials.

Failures: a run that diverges or raises is recorded as a FAIL trial with its ``status`` user
attr (``diverged`` / ``error`` and the one-line ``error``), and the sweep goes on (it stops
after :data:`MAX_ERRORS_IN_A_ROW` errors in a row: that is a bug, not a bad configuration; and
it fails, once its workers end, when no trial completed and some raised). A
trial interrupted by Ctrl-C (or SIGTERM, or SystemExit) is failed and re-queued with the same
parameters, as a killed worker's trial is. A worker raises Ctrl-C only between storage calls
(:mod:`dgl_ssm_sweeps.interrupt`), so the re-queueing never waits on a lock it holds itself.
"""

import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import random
import shlex
import signal
import statistics
import threading
import time
import warnings
from dataclasses import dataclass

import optuna
import torch
from optuna.trial import TrialState

from dgl_ssm.checks import check_choice
from dgl_ssm_bench.config import ModelConfig, RunConfig
from dgl_ssm_bench.console import escape_unencodable
from dgl_ssm_bench.ctrl_c import CtrlC
from dgl_ssm_bench.datasets import data_version, dataset_metric, dataset_options
from dgl_ssm_bench.device import use_gpu_of_worker
from dgl_ssm_bench.files import signals_held
from dgl_ssm_bench.metrics import METRICS
from dgl_ssm_bench.models import build_for, check_model_name, parameter_count
from dgl_ssm_bench.run import config_of_run
from dgl_ssm_bench.run import validate as validate_run
from dgl_ssm_bench.threads import get_threads, set_threads, threads_per_worker
from dgl_ssm_bench.train import load_data, train

from .interrupt import (
    forwarded_stop,
    start_holding_ctrl_c,
    stop_with_parent,
    take_back_ctrl_c,
    terminate_as_ctrl_c,
)
from .pruners import (
    OVER_BUDGET,
    PRUNERS,
    default_pruner,
    make_pruner,
    prunes_the_protocol,
    published,
    stopped_by_a_pruner,
)
from .space import SpaceError, apply_values, backbone_kind, find_space, sweep_space
from .storage import (
    DEFAULT_STORAGE,
    create_or_load_study,
    new_sqlite_file,
    one_line,
    open_storage,
    redact,
    trial_lock,
)
from .suites import suite_storage

MAX_ERRORS_IN_A_ROW = 3  # trials of one worker that raise in a row before the sweep stops
INTERRUPT_GRACE_S = 30  # how long workers get to re-queue their trials after Ctrl-C


class StudyMismatch(ValueError):
    """The storage holds a study of that name made with another space, suite or data."""


@dataclass
class SweepSpec:
    """What to sweep and where; the same on every worker of a study."""

    backbone: str
    dataset: str
    trials: int = 20
    storage: str = DEFAULT_STORAGE
    space: str | None = None  # default: the most specific file for the pair
    seed: int = 0
    pruner: str | None = None  # default: the space's (pruners.default_pruner)
    heartbeat: int = 30
    data_dir: str | None = None
    cache_dir: str | None = None
    device: str = "auto"
    final: bool = True
    suite: str | None = None  # the suite that runs this study, part of its identity
    threads: int | None = None  # per worker (default: torch's with one, else cores ÷ workers)

    @property
    def study_name(self):
        return f"{self.backbone}__{self.dataset}"

    def load_space(self):
        return sweep_space(self.space or find_space(self.backbone, self.dataset))

    def pruner_for(self, space):
        """The pruner named, else the space's default (none under a published protocol)."""
        return self.pruner or default_pruner(space.protocol)

    def base_config(self, space):
        """The run config of the space's fixed values (what every trial shares)."""
        return self.trial_config(space, {})

    def trial_config(self, space, values):
        """The run config of a trial with the searched ``values``. A space's k-hop settings
        (``model.max_hop``, ``model.past_max_hop``) serve its k-hop backbones, and its norm
        and activation the dgl_ssm models: a one-hop twin is built without the first, a
        reference baseline without the second (each would ignore them, and is refused
        them)."""
        config = RunConfig()
        config.model.name, config.data.name, config.device = (
            self.backbone,
            self.dataset,
            self.device,
        )
        config.data.data_dir, config.data.cache_dir = self.data_dir, self.cache_dir
        config = apply_values(apply_values(config, space.fixed), values)
        if not config.model.is_khop:
            config.model.max_hop = config.model.past_max_hop = None
        if backbone_kind(self.backbone) == "reference":  # its own norm and activation
            config.model.norm, config.model.activation = None, ModelConfig.activation
        return config


def validate(spec: SweepSpec):
    """Every name and file checked before any worker starts (errors list the valid values)."""
    check_model_name(spec.backbone)
    dataset_options(spec.dataset)
    if spec.pruner is not None:
        check_choice("pruner", spec.pruner, PRUNERS)
    if spec.trials < 1:
        raise ValueError("--trials must be at least 1.")
    if spec.threads is not None and spec.threads < 1:
        raise ValueError("--threads must be at least 1.")
    space = spec.load_space()
    # The fixed values with each searched key at its first choice, then each other choice of
    # a categorical key in turn: each builds a probe model, so a value this backbone does not
    # take (a misspelt norm, a kind of Λ) fails here, naming its key, not in some trial.
    params = space.params(backbone_kind(spec.backbone))
    first = {key: _first_value(p) for key, p in params.items()}
    probes = [("the fixed values with each searched key at its first choice", first)]
    for key, param in params.items():
        if param["type"] == "categorical":
            probes += [(f"{key} = {choice!r}", {**first, key: choice})
                       for choice in param["choices"][1:]]  # fmt: skip
    for what, values in probes:
        try:
            validate_run(spec.trial_config(space, values))
        except (ValueError, TypeError) as error:
            raise SpaceError(f"search space {space.name!r}, {what}: {error}") from None


def _first_value(param):
    return param["choices"][0] if param["type"] == "categorical" else param["low"]


def run_sweep(spec: SweepSpec, workers=1, log=print):
    """Run (or resume) the study with ``workers`` processes here, then the final evaluation.

    The final evaluation runs whenever the study is complete, even if a worker died (its
    trial was re-run by the others). Ctrl-C re-queues the running trials and re-raises
    ``KeyboardInterrupt`` once the workers have stopped.
    """
    if workers < 1:
        raise ValueError("--workers must be at least 1.")
    validate(spec)
    space = spec.load_space()
    if note := space.protocol_note:
        log(f"{spec.study_name}: {note}")
    if prunes_the_protocol(spec.pruner_for(space), space.protocol):
        log(f"{spec.study_name}: --pruner {spec.pruner} stops trials that the space's "
            f"{space.protocol!r} protocol trains to their end, so once one is pruned the "
            f"leaderboard sets no published {space.protocol} number beside this study "
            "(without --pruner, such a space's sweep prunes none)")  # fmt: skip
    new = new_sqlite_file(spec.storage)
    storage = open_storage(spec.storage, spec.heartbeat)  # unreachable: one line, before forking
    if new is not None:  # a typo in the path would otherwise start an empty study unsaid
        log(f"New storage {new} (no file was there).")
    previous = get_threads()
    if spec.threads:
        set_threads(spec.threads)
    try:
        with terminate_as_ctrl_c():
            if workers == 1:
                work(spec, worker_index=0, log=log)
            else:
                _run_processes(spec, workers, log)
            _refuse_a_study_of_errors_only(spec, storage)
            return final_evaluation(spec, log=log) if spec.final else None
    except BaseException:
        if new is not None:  # e.g. a wrong --data-dir: no empty file left to find later
            _remove_if_empty(new, spec)
        raise
    finally:
        set_threads(*previous)


def _refuse_a_study_of_errors_only(spec, storage):
    """``RuntimeError`` when no trial of the study completed and some raised an error (bad
    data, a bug): the sweep found nothing, and a one-trial sweep used to exit 0 all the same.
    (Fewer than MAX_ERRORS_IN_A_ROW errors in a row do not stop the workers.)"""
    try:
        study = optuna.load_study(study_name=spec.study_name, storage=storage)
    except KeyError:  # no study: the workers stopped before creating it
        return
    trials = study.get_trials(deepcopy=False)
    errors = [t for t in trials if t.user_attrs.get("status") == "error"]
    if errors and not any(t.state == TrialState.COMPLETE for t in trials):
        raise RuntimeError(
            f"{spec.study_name}: no trial completed, and {len(errors)} of {len(trials)} raised "
            f"an error, the last: {errors[-1].user_attrs.get('error')}"
        )


def _remove_if_empty(path, spec):
    """Delete the SQLite file ``path`` this sweep created if no study got into it."""
    try:
        if not optuna.get_all_study_names(open_storage(spec.storage, spec.heartbeat)):
            path.unlink(missing_ok=True)
    except Exception:  # noqa: BLE001 - best effort: the sweep's own error is the one to show
        pass


def _run_processes(spec, workers, log):
    context = multiprocessing.get_context("spawn")
    threads = threads_per_worker(spec.threads, workers)
    processes = [
        context.Process(
            target=_work_in_process,
            args=(spec, i, threads, optuna.logging.get_verbosity()),
        )
        for i in range(workers)
    ]
    try:
        # A Ctrl-C while the workers start or import is held (see interrupt.py), and raised
        # here, in each of them, once they can act on it; the parent forwards one to them.
        start_holding_ctrl_c(processes)
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        _stop([process for process in processes if process.pid is not None])
        raise
    failed = [i for i, p in enumerate(processes) if p.exitcode != 0]
    if failed:
        if not study_complete(spec):
            raise RuntimeError(f"worker(s) {failed} of {spec.study_name} failed; see above.")
        log(f"{spec.study_name}: worker(s) {failed} stopped early; the others completed the study")


def _stop(processes):
    """Ctrl-C: let every worker re-queue its trial (they got SIGINT too, or get it now)."""
    # One stop is enough: a repeated SIGTERM (coreutils' timeout sends two) must not cut the
    # workers' grace short. A second Ctrl-C still does.
    if threading.current_thread() is not threading.main_thread():
        _stop_workers(processes)  # (no signal reaches it there)
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        _stop_workers(processes)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _stop_workers(processes):
    deadline = time.monotonic() + 2  # a terminal's Ctrl-C reached them: they stop themselves
    try:
        for process in processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:
        pass
    stop = forwarded_stop()
    for process in processes:
        # (Not on Windows: there os.kill ends a process outright, and a console's Ctrl-C
        # reaches every worker itself.)
        if process.is_alive() and os.name != "nt":
            try:
                os.kill(process.pid, stop)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + INTERRUPT_GRACE_S
    for process in processes:
        while process.is_alive() and time.monotonic() < deadline:
            try:
                process.join(timeout=0.2)
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
                deadline = 0
        if process.is_alive():
            # Its trial is failed and re-queued by the heartbeat. SIGKILL: a worker takes a
            # second SIGTERM as the Ctrl-C it has already seen, and would not stop.
            process.kill()
            process.join()


def _work_in_process(spec, index, threads, verbosity=optuna.logging.WARNING):
    try:
        stop_with_parent()  # a sweep killed outright stops them too
        escape_unencodable()
        # Ctrl-C was held while this process imported; it is raised here if one came. The
        # loop then takes it as it should (work() installs its handler).
        take_back_ctrl_c()
        optuna.logging.set_verbosity(verbosity)  # as in the parent (spawned: not inherited)
        set_threads(threads)
        use_gpu_of_worker(index, spec.device)
        work(spec, worker_index=index)
    except KeyboardInterrupt:  # the parent says it once; the trial was re-queued
        raise SystemExit(130) from None
    except Exception as error:  # noqa: BLE001 - one line per failed worker, then exit code 1
        message = redact(f"{type(error).__name__}: {error}", spec.storage)
        # (named by its study, as the trial lines are: the command's name is the parent's)
        print(f"{spec.study_name}: worker {index} failed: {message}", flush=True)
        raise SystemExit(1) from None
    finally:
        # Its work is done. Exiting waits for other threads (OGB, which DGL imports, starts
        # one that asks PyPI for its latest version): a Ctrl-C forwarded meanwhile would
        # only print a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # (SIGTERM keeps its default action: it ends the process at once, with no traceback,
        # even if exiting waits on that thread forever.)


def study_identity(spec, space, config=None):
    """What makes two sweeps the same study: pair, resolved space, suite and data options."""
    config = config if config is not None else spec.base_config(space)
    data = {k: v for k, v in config.to_dict()["data"].items()
            if k not in ("data_dir", "cache_dir")}  # fmt: skip
    identity = {
        "backbone": spec.backbone,
        "dataset": spec.dataset,
        "suite": spec.suite,
        "space": {
            "protocol": space.protocol,
            "fixed": space.fixed,
            "search": space.search,
            "plain": space.plain,
            "ssm": space.ssm,
            "final": space.final,
            # (only when set: the studies made before budgets existed keep their identity)
            **({"max_params": space.max_params} if space.max_params is not None else {}),
        },  # fmt: skip
        "data": data,
        "data_version": data_version(spec.dataset),
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _continue_command(spec, attrs):
    """The command that continues a study with the user attrs ``attrs``."""
    # The study's own storage: without it the command would open the default one.
    shown = shlex.quote(redact(spec.storage, spec.storage))  # pasted into a shell
    suite = attrs.get("suite")
    default = suite_storage(suite) if suite else DEFAULT_STORAGE
    storage = "" if spec.storage == default else f" --storage {shown}"
    if suite:
        return f"dgl-ssm leaderboard --suite {suite}{storage}"
    space = attrs.get("space_arg") or attrs.get("space")
    return (
        f"dgl-ssm sweep --backbone {spec.backbone} --dataset {spec.dataset}"
        + (f" --space {space}" if space else "")
        + storage
    )


def _check_identity(spec, study, space, identity):
    attrs = study.user_attrs
    recorded = attrs.get("identity")
    if recorded == identity:
        return
    if space.dropped_protocol is not None:
        inherited = dataclasses.replace(space, protocol=space.dropped_protocol)
        if recorded == study_identity(spec, inherited):
            # Made before a space that changes its parent's values stopped inheriting its
            # protocol: the same study, now following none.
            study.set_user_attr("identity", identity)
            study.set_user_attr("protocol", space.protocol)
            return
    where = f"Study {spec.study_name} in {redact(spec.storage, spec.storage)}"
    other_storage = "give this sweep another --storage, or delete the study " + (
        f"(optuna delete-study --study-name {spec.study_name} --storage "
        f"{shlex.quote(redact(spec.storage, spec.storage))})"
    )
    ours = ("backbone", "dataset", "metric", "direction", "identity", "space", "data_version")
    if not any(key in attrs for key in ours) and study.get_trials(deepcopy=False):
        raise StudyMismatch(
            f"{where} was not made by a dgl-ssm sweep (it records no backbone, dataset or "
            f"metric), so its trials are not this sweep's; {other_storage}."
        )
    version = data_version(spec.dataset)
    if attrs.get("data_version") != version and study.get_trials(deepcopy=False):
        raise StudyMismatch(
            f"{where} was made on other data ({spec.dataset} version "
            f"{attrs.get('data_version') or 'not recorded'}; this code makes {version}): its "
            f"trials do not count for this data; {other_storage}."
        )
    # A study made before identities were recorded: the same space's name is taken as the same.
    legacy = recorded is None and (
        not study.get_trials(deepcopy=False) or attrs.get("space") == space.name
    )
    if legacy:
        study.set_user_attr("identity", identity)
        return
    command = _continue_command(spec, attrs)
    this = {"suite": spec.suite, "space_arg": spec.space, "space": space.name}
    if command == _continue_command(spec, this):
        raise StudyMismatch(  # the same command: its space file or data options changed since
            f"{where} was made with this command, but its search space or data options have "
            f"changed since; {other_storage}."
        )
    made_with = (
        ", ".join(f"{key} {attrs[key]}" for key in ("space", "suite") if attrs.get(key))
        or "another space"
    )
    raise StudyMismatch(
        f"{where} was made with another search space, suite or data options ({made_with}); "
        f"continue it with `{command}`, or give this sweep another --storage."
    )


def _check_direction(spec, study, metric):
    """Refuse a study that optimises the other way from ``metric`` (Optuna's
    ``load_if_exists`` loads it without a word): its sampler and pruner would work against the
    metric, and the final evaluation would re-run the worst trial."""
    direction = METRICS[metric].direction
    stored = study.direction.name.lower()
    if stored == direction:
        return
    shown = redact(spec.storage, spec.storage)
    raise StudyMismatch(
        f"Study {spec.study_name} in {shown} is set to {stored}, but {spec.dataset}'s metric "
        f"({metric}) is to be {direction}d: it was not made by this sweep (`optuna "
        f"create-study` makes studies that minimize unless told). Delete it (optuna "
        f"delete-study --study-name {spec.study_name} --storage {shlex.quote(shown)}), or give "
        "this sweep another --storage."
    )


def check_study(spec: SweepSpec):
    """Refuse, before anything runs, a sweep whose study exists with another identity (a
    suite checks all its studies first, not each when its turn comes)."""
    validate(spec)
    if new_sqlite_file(spec.storage) is not None:
        return  # nothing stored yet (and no file made by looking)
    storage = open_storage(spec.storage, spec.heartbeat)
    try:
        study = optuna.load_study(study_name=spec.study_name, storage=storage)
    except KeyError:  # no such study yet
        return
    _check_direction(spec, study, dataset_metric(spec.dataset))
    space = spec.load_space()
    _check_identity(spec, study, space, study_identity(spec, space))


def _sampler(spec, worker_index, n_trials):
    """TPE seeded from the base seed, the worker and the trials already in the study."""
    digest = hashlib.sha256(f"{spec.seed}:{worker_index}:{n_trials}".encode()).digest()
    # 5 random trials before TPE models the space, not Optuna's 10: half of the default
    # budget of 20 trials would otherwise be spent at random.
    return optuna.samplers.TPESampler(
        seed=int.from_bytes(digest[:4], "big"), n_startup_trials=5, constant_liar=True
    )


def open_study(spec, data, space, worker_index=0):
    storage = open_storage(spec.storage, spec.heartbeat)
    direction = METRICS[data.metric].direction
    with trial_lock(storage, spec.study_name):
        study = create_or_load_study(
            storage,
            spec.study_name,
            direction,
            _sampler(spec, worker_index, 0),
            make_pruner(spec.pruner_for(space)),
        )
        _check_direction(spec, study, data.metric)
        _check_identity(spec, study, space, study_identity(spec, space))
        attrs = {"backbone": spec.backbone, "dataset": spec.dataset, "metric": data.metric,
                 "direction": direction, "space": space.name, "protocol": space.protocol,
                 "data_version": data_version(spec.dataset), "suite": spec.suite,
                 "space_arg": spec.space}  # fmt: skip
        for key, value in attrs.items():
            if study.user_attrs.get(key) != value and (value is not None or key in
                                                       study.user_attrs):  # fmt: skip
                study.set_user_attr(key, value)
    return storage, study


def counted(trials):
    """Trials that use up the budget: all but failures that were re-queued as a retry."""
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    return sum(1 for t in trials if t.state != TrialState.FAIL or t.number not in retried)


def _grid(spec, space):
    """The space's grid for this backbone (see :meth:`SearchSpace.grid`) in the order the
    sweep walks it, or None."""
    grid = space.grid(backbone_kind(spec.backbone))
    if grid is not None:
        random.Random(spec.seed).shuffle(grid)
    return grid


def _grid_done(grid, trials):
    """Whether every point of ``grid`` (or None: no grid) has been taken by some trial."""
    return grid is not None and _untaken(grid, trials) is None


def _untaken(grid, trials):
    """The first point of ``grid`` that no trial has taken, or None."""
    taken = [t.params for t in trials]
    return next((point for point in grid if point not in taken), None)


def study_complete(spec):
    """Whether the study has its trials, none running or queued (so the final may run)."""
    storage = open_storage(spec.storage, spec.heartbeat)
    try:
        trials = optuna.load_study(study_name=spec.study_name, storage=storage).get_trials(
            deepcopy=False
        )
    except KeyError:  # no such study
        return False
    busy = any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    grid = spec.load_space().grid(backbone_kind(spec.backbone))
    return not busy and (counted(trials) >= spec.trials or _grid_done(grid, trials))


def _check_search_settings(spec, space, study, log):
    """``--seed`` and ``--pruner`` are not part of a study's identity (it may be continued
    with others), but they shape its trials: the study keeps those it was started with, and
    a sweep continuing it with others says so. It also says when a study of a published
    protocol has trials a pruner stopped (e.g. swept before such spaces went unpruned): the
    leaderboard sets no published number beside it."""
    pruner = spec.pruner_for(space)
    now = {"seed": spec.seed, "pruner": pruner}
    first = study.user_attrs.get("search_settings")
    if first is None:
        study.set_user_attr("search_settings", now)
    elif first != now:
        named = f"--pruner {pruner}" + ("" if spec.pruner else " (the space's default)")
        log(f"{spec.study_name}: continuing with --seed {spec.seed} {named}; "
            f"the study was started with --seed {first['seed']} --pruner {first['pruner']}, "
            "so its trials are not those of one sweep with either")  # fmt: skip
    if published(space.protocol) and (pruned := sum(
        stopped_by_a_pruner(t.state.name, t.user_attrs.get("status"))
        for t in study.get_trials(deepcopy=False)
    )):  # fmt: skip
        log(f"{spec.study_name}: {pruned} of its trials were pruned, which the "
            f"{space.protocol!r} protocol does not do, so the leaderboard sets no published "
            f"{space.protocol} number beside this study; a new study (another --storage, or "
            "this one deleted) swept without --pruner follows the protocol")  # fmt: skip


def work(spec: SweepSpec, worker_index=0, log=print):
    """One worker's loop (see the module docstring). Returns the number of trials it ran."""
    with CtrlC.installed() as ctrl_c:
        return _work(spec, worker_index, log, ctrl_c)


def _work(spec, worker_index, log, ctrl_c):
    space = spec.load_space()
    with ctrl_c.interruptible():
        data = load_data(spec.base_config(space))
    storage, study = open_study(spec, data, space, worker_index)
    _check_search_settings(spec, space, study, log if worker_index == 0 else lambda *_: None)
    kind = backbone_kind(spec.backbone)
    grid = _grid(spec, space)
    ran, errors = 0, 0
    while True:
        ctrl_c.check()
        trial, values, trials, running = _claim_trial(
            spec, space, study, storage, grid, kind, worker_index, ctrl_c
        )
        if trial is None:
            if not running:
                if ran == 0 and worker_index == 0:  # a re-run of a finished sweep: say so
                    grid_size = "" if grid is None else f", a grid of {len(grid)} points"
                    log(f"{spec.study_name}: {counted(trials)} trial(s) done already, "
                        f"--trials {spec.trials}{grid_size}; no new trial to run.")  # fmt: skip
                return ran
            with ctrl_c.interruptible():  # others' trials may still die and be re-queued
                time.sleep(min(5, spec.heartbeat))
            continue
        # A GPP trial can train for an hour: say that one is under way, and with what.
        chosen = ", ".join(f"{key.split('.')[-1]}={_short(value)}" for key, value in values.items())
        log(f"{spec.study_name}: trial {trial.number} started ({chosen or 'fixed values'})")
        outcome = _run_trial(spec, space, data, study, storage, trial, values, log, ctrl_c)
        ran += 1
        errors = errors + 1 if outcome.startswith("error") else 0
        if errors >= MAX_ERRORS_IN_A_ROW:
            raise RuntimeError(
                f"{spec.study_name}: {errors} trials in a row raised an error, the last: "
                f"{outcome[len('error: ') :]}"
            )


def _claim_trial(spec, space, study, storage, grid, kind, worker_index, ctrl_c):
    """Under the study's lock: fail stale trials, then ask for the next trial (a waiting one,
    the grid's next untaken point, or TPE's) and draw its values, while the study is short of
    ``--trials``. Returns ``(trial, values, trials, running)``: ``trial`` None when there is
    none to run; ``trials`` the study's, and whether any of them is running."""
    with trial_lock(storage, spec.study_name):
        ctrl_c.check()  # one that came while this worker waited for the lock
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fail_stale_trials is "experimental"
            optuna.storages.fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        running = any(t.state == TrialState.RUNNING for t in trials)
        trial = values = None
        # A grid runs until --trials or until every point is taken (counting points, not
        # trials: a study may hold repeats, sampled by TPE before grids were walked).
        point = None if waiting or grid is None else _untaken(grid, trials)
        if waiting or (counted(trials) < spec.trials and (grid is None or point is not None)):
            study.sampler = _sampler(spec, worker_index, len(trials))
            if point is not None:
                study.enqueue_trial(point)  # the next study.ask() takes it
            with warnings.catch_warnings():
                # Optuna warns that heartbeats are meant for Study.optimize; this loop
                # records them itself (see _Heartbeat).
                warnings.simplefilter("ignore", UserWarning)
                ctrl_c.check()  # not a trial that will never train
                trial = study.ask()
            # At once, not when training starts: a worker killed before its first
            # heartbeat would leave a RUNNING trial that never goes stale.
            storage.record_heartbeat(trial._trial_id)
            try:  # under the lock: the next worker's sampler sees these parameters
                values = space.suggest(trial, kind)
            except BaseException:
                study.tell(trial, state=TrialState.FAIL)
                raise
    return trial, values, trials, running


def _short(value):
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _requeue(study, trial):
    """Queue a copy of the failed ``trial`` with its parameters, marked as its retry."""
    frozen = study._storage.get_trial(trial._trial_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental"
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=None)
    retry(study, frozen)


def _run_trial(spec, space, data, study, storage, trial, values, log, ctrl_c):
    """Train one trial and tell the study; returns ``"ok"``, ``"pruned"``, ``"over_budget"``,
    the run's status (e.g. ``"diverged"``), ``"no finite validation value"`` or
    ``"error: <one line>"``. Interrupted (Ctrl-C, SystemExit) at any point before it was
    told, the trial is failed and re-queued, and the interrupt goes on."""
    try:
        return _train_trial(spec, space, data, study, storage, trial, values, log, ctrl_c)
    except (KeyboardInterrupt, SystemExit):
        with signals_held():
            if study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
                trial.set_user_attr("status", "interrupted")
                study.tell(trial, state=TrialState.FAIL)
                _requeue(study, trial)
        raise


def _train_trial(spec, space, data, study, storage, trial, values, log, ctrl_c):
    config = spec.trial_config(space, values)
    trial.set_user_attr("config", config.to_dict())
    trial.set_user_attr("threads", torch.get_num_threads())
    if space.max_params is not None:
        count = parameter_count(build_for(config.model, data))
        trial.set_user_attr("parameters", count)
        if count > space.max_params:
            message = (
                f"{count:,} trainable parameters, over the space's budget of "
                f"{space.max_params:,} (hidden {config.model.hidden}, "
                f"{config.model.num_layers} layers); refused without training"
            )
            trial.set_user_attr("status", OVER_BUDGET)
            trial.set_user_attr("error", message)
            study.tell(trial, state=TrialState.PRUNED)  # a bad outcome TPE learns to avoid
            log(f"{spec.study_name}: trial {trial.number}: {message}")
            return OVER_BUDGET

    def report(epoch, value):
        ctrl_c.check()  # one a finalizer swallowed (see dgl_ssm_bench.ctrl_c)
        if value is None or not math.isfinite(value):
            return
        with ctrl_c.deferred():  # Ctrl-C: raised after the storage calls, not inside them
            trial.report(value, epoch)
            prune = trial.should_prune()
        if prune:
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    with _Heartbeat(storage, trial._trial_id, spec.heartbeat):
        try:
            with ctrl_c.interruptible():
                result = train(config, data=data, on_epoch=report)
        except optuna.TrialPruned:
            trial.set_user_attr("status", "pruned")
            study.tell(trial, state=TrialState.PRUNED)
            log(f"{spec.study_name}: trial {trial.number} pruned")
            return "pruned"
        except Exception as error:  # noqa: BLE001 - e.g. a metric given NaN scores
            if ctrl_c.seen:  # the Ctrl-C landed in C code that re-raised it as another error
                raise KeyboardInterrupt from error
            message = redact(one_line(error), spec.storage)
            trial.set_user_attr("status", "error")
            trial.set_user_attr("error", message)
            study.tell(trial, state=TrialState.FAIL)
            log(f"{spec.study_name}: trial {trial.number} failed: {message}")
            return f"error: {message}"
    # "device": where it ran (the config says only what was asked for, e.g. auto).
    attrs = {"val": result.val, "test": result.test, "status": result.status,
             "epochs": result.epochs, "wall_time_s": result.wall_time_s,
             "peak_memory_mb": result.peak_memory_mb, "device": result.device}  # fmt: skip
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    if result.status != "ok" or result.val is None or not math.isfinite(result.val):
        study.tell(trial, state=TrialState.FAIL)
        log(f"{spec.study_name}: trial {trial.number} {result.status}")
        return result.status if result.status != "ok" else "no finite validation value"
    study.tell(trial, result.val)
    log(
        f"{spec.study_name}: trial {trial.number} {result.metric} val {result.val:.4f} "
        f"test {result.test:.4f} ({result.epochs} epochs, {result.wall_time_s:.1f} s)"
    )
    return "ok"


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


def _final_runs(spec, best, seeds, data, study, progress, log, ctrl_c):
    """Run the final seeds not in ``progress`` yet, storing each one as it finishes."""
    for i, seed in enumerate(seeds):
        if str(i) in progress["values"]:
            continue
        config = config_of_run(RunConfig.from_dict(best.user_attrs["config"]), i, seed, data)
        config.device = spec.device  # this sweep's, not the one the best trial ran on
        try:
            with ctrl_c.interruptible():
                result = train(config, data=data, on_epoch=ctrl_c.check)
        except Exception as error:  # noqa: BLE001 - as in a trial: logged, not fatal
            message = redact(one_line(error), spec.storage)
            log(f"{spec.study_name}: final run {i + 1}/{len(seeds)} (seed {seed}) failed: "
                f"{message}")  # fmt: skip
            continue  # not stored: the next evaluation of this study retries it
        value = result.test if result.status == "ok" else None
        progress["values"][str(i)] = value
        progress["devices"][str(i)] = result.device
        study.set_user_attr("final_runs", progress)
        shown = "diverged" if value is None else f"test {value:.4g}"
        log(f"{spec.study_name}: final run {i + 1}/{len(seeds)} (seed {seed}): {shown}")


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
        stored = study.user_attrs.get("final_runs") or {}
        if final and "raised" not in final and stored.get("trial") == best.number:
            # (a final stored before "raised" was: its raised runs are those without a value)
            final["raised"] = _raised(stored)
        if final and final.get("trial") == best.number and not final.get("raised"):
            log(_describe(spec, final))
            return final
        # The space's first `runs` seeds (one run a seed without runs), by default the seeds
        # after the one the search trained with: run 0 with that seed (and split 0) would
        # repeat the winning trial itself, whose score the search chose.
        searched = RunConfig.from_dict(best.user_attrs["config"]).seed
        given = space.final.get("seeds")
        runs = space.final.get("runs") or (len(given) if given else 3)
        seeds = list(given or range(searched + 1, searched + 1 + runs))[:runs]
        # Each finished run is stored at once, so an interrupted evaluation resumes where it
        # stopped (a GPP run at the paper's protocol takes an hour).
        # "devices": where each run ran, as a trial records it (a final evaluation may run
        # on another machine than the search did).
        progress = {"trial": best.number, "seeds": seeds, "values": {}, "devices": {}}
        if (stored.get("trial"), stored.get("seeds")) == (best.number, seeds):
            progress["values"] = dict(stored["values"])
            progress["devices"] = dict(stored.get("devices") or {})
        with CtrlC.installed() as ctrl_c:  # as in a worker: raised in training, or after
            _final_runs(spec, best, seeds, data, study, progress, log, ctrl_c)
        values = [progress["values"].get(str(i)) for i in range(len(seeds))]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        final = {
            "trial": best.number,
            "mean": statistics.mean(finite) if finite else None,
            "std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
            "values": values,
            "seeds": seeds,
            "devices": [progress["devices"].get(str(i)) for i in range(len(seeds))],
            # the runs that raised (not diverged): a sweep run again retries just these
            "raised": _raised(progress),
            "params": best.params,
            "config": best.user_attrs["config"],
        }
        study.set_user_attr("final", final)
    log(_describe(spec, final))
    return final


def _raised(runs):
    """The final runs (indices) that raised: no value stored for them in ``runs``
    (``{"seeds": […], "values": {index: value}}``; a diverged run stores None)."""
    values = runs.get("values", {})
    return [i for i in range(len(runs.get("seeds", []))) if str(i) not in values]


def _describe(spec, final):
    if final["mean"] is None:
        return f"{spec.study_name}: final runs all failed"
    return (
        f"{spec.study_name}: best trial {final['trial']}, test {final['mean']:.4f} ± "
        f"{final['std']:.4f} over {len(final['values'])} run(s)"
    )
