"""Sweeps at scale (issue 11): distinct sampling per worker and resume, study identity,
divergence and errors in trials, Ctrl-C, dead workers, threads, secrets, atomic leaderboard."""

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import psutil
import pytest
from optuna.trial import TrialState

import dgl_ssm_sweeps.runner as runner
from dgl_ssm_bench.files import write_together
from dgl_ssm_bench.threads import threads_per_worker
from dgl_ssm_bench.train import RunResult
from dgl_ssm_sweeps import cli
from dgl_ssm_sweeps.cli import bench_main, sweep_main
from dgl_ssm_sweeps.leaderboard import main as leaderboard_main
from dgl_ssm_sweeps.runner import StudyMismatch, SweepSpec, counted, run_sweep
from dgl_ssm_sweeps.space import SearchSpace
from dgl_ssm_sweeps.storage import StorageError, open_storage, redact, trial_lock
from tests.conftest import fresh_postgres_database, postgres_url

STUDY = "gcn_ssm__ring_transfer"
# Every searched parameter continuous: N trials must give N distinct parameter sets.
SPACE = """
protocol: smoke
fixed:
  data.options.ring_size: 6
  data.options.num_graphs: 40
  model.hidden: 8
  model.num_layers: 2
  optim.epochs: {epochs}
  optim.patience: {epochs}
search:
  optim.lr: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
ssm:
  model.state_scale: {{type: float, low: 0.5, high: 1.0}}
final: {{runs: 2}}
"""
POSTGRES = postgres_url()


def quiet(*_):
    pass


def space_file(tmp_path, epochs=1, name="tiny"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPACE.format(epochs=epochs))
    return str(path)


def spec_for(tmp_path, storage, trials, **options):
    if "space" not in options:  # (not written over a space given under the same name)
        options["space"] = space_file(tmp_path)
    options = {"pruner": "none", "final": False, **options}
    return SweepSpec("gcn_ssm", "ring_transfer", trials=trials, storage=storage, **options)


def load(storage):
    return optuna.load_study(study_name=STUDY, storage=storage)


def params(storage):
    return [tuple(sorted(t.params.items())) for t in load(storage).trials]


def command(space, storage, trials, *extra):
    return [sys.executable, "-m", "dgl_ssm_sweeps.cli", "--backbone", "gcn_ssm", "--dataset",
            "ring_transfer", "--trials", str(trials), "--space", space, "--storage", storage,
            "--pruner", "none", *extra]  # fmt: skip


def wait_for_running(storage, count, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.3)
        try:
            trials = load(storage).trials
        except Exception:  # noqa: BLE001 - the study may not exist yet
            continue
        # Training (config recorded, heartbeat under way), not just created.
        if sum(t.state == TrialState.RUNNING and "config" in t.user_attrs for t in trials) >= count:
            return
    raise AssertionError(f"never saw {count} running trials")


# ----------------------------------------------------------------- 1. distinct sampling


def test_a_resumed_sweep_samples_new_parameters_as_one_go_would(tmp_path):
    resumed, one_go = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    run_sweep(spec_for(tmp_path, resumed, 2), log=quiet)
    run_sweep(spec_for(tmp_path, resumed, 4), log=quiet)
    assert len(params(resumed)) == 4 and len(set(params(resumed))) == 4
    # One worker, one seed: reproducible, and the same whether run in one go or resumed.
    run_sweep(spec_for(tmp_path, one_go, 4), log=quiet)
    assert params(one_go) == params(resumed)
    other_seed = f"sqlite:///{tmp_path}/c.db"
    run_sweep(spec_for(tmp_path, other_seed, 2, seed=1), log=quiet)
    assert not set(params(other_seed)) & set(params(one_go))


def test_each_new_trial_gets_a_sampler_seeded_by_worker_and_trial_count():
    spec = SweepSpec("gcn_ssm", "ring_transfer", seed=3)

    def first_value(worker, n_trials):
        study = optuna.create_study(sampler=runner._sampler(spec, worker, n_trials))
        return study.ask().suggest_float("x", 0.0, 1.0)

    values = {(w, n): first_value(w, n) for w in range(3) for n in range(3)}
    assert len(set(values.values())) == 9
    assert first_value(1, 2) == values[(1, 2)]
    assert runner._sampler(spec, 1, 2)._constant_liar


def three_workers_share_one_study(tmp_path, storage, trials=6):
    space = space_file(tmp_path, epochs=2)
    workers = [subprocess.Popen(command(space, storage, trials, "--no-final"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(3)]  # fmt: skip
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
    study = load(storage)
    assert sorted(t.number for t in study.trials) == list(range(trials))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len(set(params(storage))) == trials


@pytest.mark.slow
def test_three_workers_on_one_sqlite_study_run_n_distinct_trials(tmp_path):
    three_workers_share_one_study(tmp_path, f"sqlite:///{tmp_path}/optuna.db")


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES, reason="set DGL_SSM_TEST_POSTGRES=postgresql://…")
def test_three_workers_on_one_postgres_study_run_n_distinct_trials(tmp_path):
    fresh_postgres_database(POSTGRES)
    three_workers_share_one_study(tmp_path, POSTGRES)


# ----------------------------------------------------------------- 2. study identity


def test_a_study_refuses_another_space_or_suite_and_says_how_to_continue(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    first = spec_for(tmp_path, storage, 1)
    run_sweep(first, log=quiet)
    identity = load(storage).user_attrs["identity"]
    other_space = spec_for(tmp_path, storage, 2, space=space_file(tmp_path, 2, name="other"))
    with pytest.raises(StudyMismatch, match=rf"Study {STUDY} in .* another search space"):
        run_sweep(other_space, log=quiet)
    with pytest.raises(StudyMismatch, match=rf"continue it with `dgl-ssm sweep --backbone "
                       rf"gcn_ssm --dataset ring_transfer --space {first.space} "
                       rf"--storage {storage}`"):  # fmt: skip
        run_sweep(spec_for(tmp_path, storage, 2, suite="quick"), log=quiet)
    argv = ["--backbone", "gcn_ssm", "--dataset", "ring_transfer", "--space", other_space.space,
            "--storage", storage, "--trials", "2", "--no-final"]  # fmt: skip
    assert sweep_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"Study {STUDY}" in err
    # Nothing was mixed in; the same sweep still resumes.
    assert len(load(storage).trials) == 1 and load(storage).user_attrs["identity"] == identity
    run_sweep(spec_for(tmp_path, storage, 2), log=quiet)
    assert len(load(storage).trials) == 2


def test_a_sweep_with_its_trials_done_says_there_is_nothing_to_run(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    first = []
    run_sweep(spec_for(tmp_path, storage, 2), log=first.append)
    # Said once, when the file is made: a typo in its path would start an empty study.
    assert first[0] == f"New storage {(tmp_path / 'optuna.db').resolve()} (no file was there)."
    lines = []
    run_sweep(spec_for(tmp_path, storage, 1), log=lines.append)
    assert lines == [f"{STUDY}: 2 trial(s) done already, --trials 1; no new trial to run."]
    assert len(load(storage).trials) == 2


def test_a_suite_study_names_the_suite_command(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    run_sweep(spec_for(tmp_path, storage, 1, suite="quick"), log=quiet)
    assert load(storage).user_attrs["suite"] == "quick"
    with pytest.raises(
        StudyMismatch, match=f"`dgl-ssm leaderboard --suite quick --storage {storage}`"
    ):
        run_sweep(spec_for(tmp_path, storage, 2), log=quiet)


def test_a_study_from_before_identities_is_kept_only_with_the_same_space(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    legacy = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    legacy.set_user_attr("space", "some_other_space")
    legacy.set_user_attr("data_version", "drew-v2")  # on this data (other data: test above)
    legacy.add_trial(optuna.trial.create_trial(value=0.5))
    with pytest.raises(StudyMismatch, match="space some_other_space"):
        run_sweep(spec_for(tmp_path, storage, 2), log=quiet)
    legacy.set_user_attr("space", "tiny")  # what the old runner recorded: the space's name
    run_sweep(spec_for(tmp_path, storage, 2), log=quiet)
    assert "identity" in load(storage).user_attrs and len(load(storage).trials) == 2


def test_a_study_on_other_data_says_so_and_how_to_start_afresh(tmp_path):
    """A study made on RingTransfer before its generator changed (no data version recorded)
    is refused as other data; the message must not send the user back to the same command."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = spec_for(tmp_path, storage, 2)
    before = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    before.set_user_attr("identity", "hashed-without-a-data-version")
    before.add_trial(optuna.trial.create_trial(value=0.2))
    with pytest.raises(StudyMismatch, match=r"made on other data \(ring_transfer version "
                       r"not recorded; this code makes drew-v2\).*optuna delete-study "
                       rf"--study-name {STUDY} --storage {storage}\)\.$"):  # fmt: skip
        run_sweep(spec, log=quiet)


def test_a_study_no_sweep_made_is_named_as_such(tmp_path):
    # Made with Optuna directly under the sweep's name: it was called "made on other data".
    storage = f"sqlite:///{tmp_path}/optuna.db"
    foreign = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    foreign.add_trial(optuna.trial.create_trial(value=0.2))
    with pytest.raises(StudyMismatch, match=r"was not made by a dgl-ssm sweep \(it records no "
                       r"backbone, dataset or metric\).*optuna delete-study"):  # fmt: skip
        run_sweep(spec_for(tmp_path, storage, 2), log=quiet)
    assert len(load(storage).trials) == 1


def test_an_empty_study_set_to_the_other_direction_is_refused_before_any_trial(tmp_path):
    # `optuna create-study` minimises unless told; with load_if_exists Optuna loads such a
    # study without a word, and the sweep would minimise accuracy and keep the worst trial.
    storage = f"sqlite:///{tmp_path}/optuna.db"
    optuna.create_study(study_name=STUDY, storage=storage, direction="minimize")
    with pytest.raises(StudyMismatch, match=rf"Study {STUDY} in .* is set to minimize, but "
                       r"ring_transfer's metric \(accuracy\) is to be maximized.*optuna "
                       "delete-study"):  # fmt: skip
        run_sweep(spec_for(tmp_path, storage, 2), log=quiet)
    assert load(storage).trials == [] and load(storage).user_attrs == {}


def test_a_suite_refuses_a_study_set_to_the_other_direction_before_running_any(
    tmp_path, monkeypatch, capsys
):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    optuna.create_study(study_name="kgcn_ssm__cora", storage=storage)  # minimize, empty
    ran = []
    monkeypatch.setattr(runner, "train", lambda *a, **k: ran.append(1) / 0)
    code = bench_main(["leaderboard", "--suite", "quick", "--storage", storage,
                       "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 2 and ran == []
    assert "kgcn_ssm__cora in" in (err := capsys.readouterr().err) and "is set to minimize" in err


def test_every_section_of_the_resolved_space_is_part_of_a_studys_identity(tmp_path):
    # So a study is never resumed with a space that searches or fixes something else.
    spec = SweepSpec("gcn", "ring_transfer", space=space_file(tmp_path))
    space = spec.load_space()
    identity = runner.study_identity(spec, space)
    residual = {"model.residual": {"type": "categorical", "choices": [False, True]}}
    changes = {"protocol": "gpp", "fixed": {**space.fixed, "optim.epochs": 2}, "search": {},
               "plain": residual, "ssm": {}, "final": {"runs": 3}, "max_params": 10**6}  # fmt: skip
    for section, value in changes.items():
        other = dataclasses.replace(space, **{section: value})
        assert runner.study_identity(spec, other) != identity, section
    # Where the data are read from is not what they are.
    moved = dataclasses.replace(spec, data_dir="elsewhere", cache_dir="cache")
    assert runner.study_identity(moved, space) == identity


def test_a_study_whose_own_space_changed_is_not_sent_back_to_the_same_command(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    space = space_file(tmp_path)
    run_sweep(spec_for(tmp_path, storage, 1, space=space), log=quiet)
    Path(space).write_text(SPACE.format(epochs=2))  # the same file, edited
    with pytest.raises(
        StudyMismatch,
        match="made with this command, but its search space or "
        "data options have changed since; give this sweep another --storage",
    ):
        run_sweep(spec_for(tmp_path, storage, 2, space=space), log=quiet)


def test_a_suite_refuses_a_clashing_study_before_running_any(tmp_path, monkeypatch, capsys):
    """The quick suite's last studies are Cora's: one made by another sweep in the storage
    must stop the suite before its first study trains, not an hour in."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    optuna.create_study(study_name="kgcn_ssm__cora", storage=storage).set_user_attr(
        "identity", "made-elsewhere"
    )
    ran = []
    monkeypatch.setattr(runner, "train", lambda *a, **k: ran.append(1) / 0)
    code = bench_main(["leaderboard", "--suite", "quick", "--storage", storage,
                       "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 2 and ran == []
    assert "Study kgcn_ssm__cora" in capsys.readouterr().err
    assert optuna.get_all_study_names(storage) == ["kgcn_ssm__cora"]


def test_a_failed_sweep_leaves_no_empty_storage_file_behind(tmp_path):
    db = tmp_path / "new.db"
    spec = SweepSpec("gcn", "cora", trials=1, storage=f"sqlite:///{db}",
                     data_dir=str(tmp_path / "no-such-folder"))  # fmt: skip
    with pytest.raises(FileNotFoundError, match="No raw cora files"):
        run_sweep(spec, log=quiet)
    assert not db.exists()
    run_sweep(spec_for(tmp_path, f"sqlite:///{db}", 1), log=quiet)  # a study in it: kept
    with pytest.raises(FileNotFoundError):
        run_sweep(spec, log=quiet)
    assert db.exists()


GRID = """
protocol: smoke
fixed:
  data.options.ring_size: 6
  data.options.num_graphs: 40
  model.hidden: 8
  optim.epochs: 1
search:
  model.num_layers: {type: categorical, choices: [1, 2, 3]}
ssm:
  model.state_scale: {type: categorical, choices: [0.5, 1.0]}
"""


def test_an_all_categorical_space_is_walked_as_a_grid_each_point_once(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    space = tmp_path / "grid.yaml"
    space.write_text(GRID)
    run_sweep(spec_for(tmp_path, storage, 2, space=str(space)), log=quiet)  # part of it
    first = load(storage).trials[0]  # a repeat, as TPE sampled before grids were walked:
    load(storage).add_trial(optuna.trial.create_trial(
        params=first.params, distributions=first.distributions, value=0.1))  # fmt: skip
    run_sweep(spec_for(tmp_path, storage, 20, space=str(space), final=True), log=quiet)
    points = {(layers, scale) for layers in (1, 2, 3) for scale in (0.5, 1.0)}
    taken = [(t.params["model.num_layers"], t.params["model.state_scale"])
             for t in load(storage).trials]  # fmt: skip
    assert set(taken) == points and len(taken) == 7  # every point, none run twice here
    assert "final" in load(storage).user_attrs  # the grid done: the study is complete
    lines = []
    run_sweep(spec_for(tmp_path, storage, 20, space=str(space)), log=lines.append)
    assert lines == [f"{STUDY}: 7 trial(s) done already, --trials 20, a grid of 6 points; "
                     "no new trial to run."]  # fmt: skip


def test_a_grid_trial_interrupted_is_run_again_without_taking_another_point(tmp_path, monkeypatch):
    # The queued retry fills the study's one trial: no point of the grid beside it.
    space = tmp_path / "grid.yaml"
    space.write_text(GRID)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    fake_train(monkeypatch, [KeyboardInterrupt(), "ok"])
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec_for(tmp_path, storage, 1, space=str(space)), log=quiet)
    run_sweep(spec_for(tmp_path, storage, 1, space=str(space)), log=quiet)
    interrupted, retry = load(storage).trials
    assert (interrupted.state, retry.state) == (TrialState.FAIL, TrialState.COMPLETE)
    assert retry.params == interrupted.params


def test_the_grid_order_is_shuffled_by_the_sweep_seed(tmp_path):
    # With fewer trials than points, the order decides which points run: --seed's shuffle,
    # so sweeps with other seeds try other points first, and one seed always the same ones.
    space = tmp_path / "grid.yaml"
    space.write_text(GRID)
    points = {(layers, scale) for layers in (1, 2, 3) for scale in (0.5, 1.0)}

    def order(seed):
        spec = spec_for(tmp_path, "sqlite:///unused.db", 2, space=str(space), seed=seed)
        grid = runner._grid(spec, spec.load_space())
        return [(point["model.num_layers"], point["model.state_scale"]) for point in grid]

    orders = [order(seed) for seed in range(5)]
    assert all(len(o) == 6 and set(o) == points for o in orders)
    assert len({tuple(o) for o in orders}) > 1 and order(3) == orders[3]


# ----------------------------------------------------------------- 3. divergence, errors


def fake_train(monkeypatch, outcomes):
    """Replace the sweep's trainer: the i-th call does outcomes[i] (the rest train); "ok" is a
    finished run at once (val and test 0.5), for tests that need a trial completed, not run."""
    real, calls = runner.train, []

    def train(config, **kwargs):
        calls.append(config)
        outcome = outcomes[len(calls) - 1] if len(calls) <= len(outcomes) else None
        if outcome == "diverged":
            return RunResult("diverged", "accuracy", None, None, -1, 1, 0.1, 0.0)
        if outcome == "ok":
            return RunResult("ok", "accuracy", 0.5, 0.5, 0, 1, 0.1, 0.0)
        if isinstance(outcome, BaseException):
            raise outcome
        return real(config, **kwargs)

    monkeypatch.setattr(runner, "train", train)
    return calls


def test_a_diverged_or_raising_trial_is_failed_with_its_status_and_the_sweep_goes_on(
    tmp_path, monkeypatch
):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    nan = ValueError("Input contains NaN (from postgresql://me:hunter2@db/x).")
    fake_train(monkeypatch, ["diverged", nan])
    final = run_sweep(spec_for(tmp_path, storage, 3, final=True), log=quiet)
    trials = load(storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[0].user_attrs["status"] == "diverged"
    assert trials[1].user_attrs["status"] == "error"
    assert "Input contains NaN" in trials[1].user_attrs["error"]
    assert "hunter2" not in trials[1].user_attrs["error"]  # no secret in a record
    assert final["trial"] == 2 and len(final["values"]) == 2


def test_a_completed_trial_records_what_its_run_produced(tmp_path, monkeypatch):
    # (what optuna-dashboard shows of a trial: its epochs, time, memory and where it ran)
    result = RunResult("ok", "accuracy", 0.75, 0.5, 2, 3, 1.5, 7.0, device="cuda:0 (X)")
    monkeypatch.setattr(runner, "train", lambda config, **_: result)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    run_sweep(spec_for(tmp_path, storage, 1), log=quiet)
    (trial,) = load(storage).trials
    recorded = {
        k: trial.user_attrs.get(k)
        for k in ("val", "test", "status", "epochs", "wall_time_s", "peak_memory_mb", "device")
    }
    assert recorded == {"val": 0.75, "test": 0.5, "status": "ok", "epochs": 3, "wall_time_s": 1.5,
                        "peak_memory_mb": 7.0, "device": "cuda:0 (X)"}  # fmt: skip
    assert trial.value == 0.75


def test_trials_that_all_raise_stop_the_sweep_after_a_few(tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    fake_train(monkeypatch, [RuntimeError("a bug")] * 10)
    with pytest.raises(RuntimeError, match="3 trials in a row raised an error, the last: "):
        run_sweep(spec_for(tmp_path, storage, 6), log=quiet)
    assert [t.user_attrs["status"] for t in load(storage).trials] == ["error"] * 3


def test_a_sweep_whose_trials_raised_and_none_completed_fails(tmp_path, monkeypatch):
    """Fewer errors than stop the workers, and no trial completed: the sweep used to log "no
    completed trial" and exit 0, as if it had found something."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    fake_train(monkeypatch, ["diverged", ValueError("NaN in the features")])
    message = r"no trial completed, and 1 of 2 raised an error, the last: ValueError: NaN in"
    with pytest.raises(RuntimeError, match=message):
        run_sweep(spec_for(tmp_path, storage, 2, final=True), log=quiet)
    assert [t.user_attrs["status"] for t in load(storage).trials] == ["diverged", "error"]
    fake_train(monkeypatch, ["diverged"] * 2)  # a bad configuration is an outcome, not a fault
    other = f"sqlite:///{tmp_path}/other.db"
    assert run_sweep(spec_for(tmp_path, other, 2, final=True), log=quiet) is None


def test_a_final_run_that_raised_is_retried_when_the_sweep_runs_again(tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = spec_for(tmp_path, storage, 1, final=True)
    calls = fake_train(monkeypatch, [None, None, OSError("disk full")])  # trial, run 1, run 2
    final = run_sweep(spec, log=quiet)
    assert final["values"][1] is None and final["raised"] == [1]
    study = load(storage)  # as a sweep before "raised" was stored left it:
    study.set_user_attr("final", {k: v for k, v in final.items() if k != "raised"})
    lines = []
    final = run_sweep(spec, log=lines.append)
    assert len(calls) == 4 and calls[3].seed == final["seeds"][1]  # run 2 alone, again
    assert None not in final["values"] and final["raised"] == []
    assert run_sweep(spec, log=quiet) == final and len(calls) == 4  # done: not run again


def test_a_final_run_that_raised_does_not_stop_the_runs_after_it(tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    calls = fake_train(monkeypatch, [None, OSError("disk full")])  # the trial, final run 1
    final = run_sweep(spec_for(tmp_path, storage, 1, final=True), log=quiet)
    assert len(calls) == 3 and final["raised"] == [0]
    assert final["values"][0] is None and final["values"][1] == final["mean"]


# ----------------------------------------------------------------- 4. Ctrl-C, dead workers


def test_ctrl_c_requeues_the_trial_prints_one_line_and_exits_130(tmp_path, monkeypatch, capsys):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    fake_train(monkeypatch, [None, KeyboardInterrupt()])
    argv = ["--backbone", "gcn_ssm", "--dataset", "ring_transfer", "--space",
            space_file(tmp_path), "--storage", storage, "--trials", "3",
            "--pruner", "none"]  # fmt: skip
    assert sweep_main(argv) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err
    trials = load(storage).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]
    assert trials[1].user_attrs["status"] == "interrupted"
    assert trials[2].params == trials[1].params
    assert trials[2].system_attrs["retry_history"] == [1]

    monkeypatch.undo()  # the real trainer again
    assert sweep_main(argv) == 0
    study = load(storage)
    assert counted(study.trials) == 3 and "final" in study.user_attrs
    assert study.trials[2].state == TrialState.COMPLETE
    assert study.trials[2].params == study.trials[1].params  # re-run, same parameters
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 3


def test_sigterm_mid_trial_is_taken_as_ctrl_c(tmp_path, monkeypatch, capsys):
    # kill, timeout and batch schedulers stop a job with SIGTERM: it used to end the sweep
    # on the spot, its trial left RUNNING until a heartbeat check much later.
    storage = f"sqlite:///{tmp_path}/optuna.db"
    real = runner.train

    def terminated_in_training(config, **kwargs):
        kwargs["on_epoch"] = lambda *_: signal.raise_signal(signal.SIGTERM)
        return real(config, **kwargs)

    monkeypatch.setattr(runner, "train", terminated_in_training)
    argv = ["--backbone", "gcn_ssm", "--dataset", "ring_transfer", "--space",
            space_file(tmp_path, epochs=5), "--storage", storage, "--trials", "2",
            "--pruner", "none"]  # fmt: skip
    handler = signal.getsignal(signal.SIGTERM)
    assert sweep_main(argv) == 130
    assert "interrupted; running trials are queued again" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is handler  # put back
    trials = load(storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[0].user_attrs["status"] == "interrupted"


def test_the_parent_takes_one_sigterm_and_ignores_the_next_until_it_has_stopped():
    # coreutils' timeout sends SIGTERM twice, microseconds apart: the second must not
    # interrupt the stop the first one starts (the workers would be left running).
    from dgl_ssm_bench.files import signals_held
    from dgl_ssm_sweeps.interrupt import terminate_as_ctrl_c

    handler = signal.getsignal(signal.SIGTERM)
    with terminate_as_ctrl_c():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)  # ignored: no second KeyboardInterrupt
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        with signals_held():  # an ignored signal is not taken over (children inherit it)
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is handler


def test_sigterm_ignored_stays_ignored_and_ctrl_c_ignored_is_forwarded_as_sigterm():
    # A sweep started under nohup (SIGTERM ignored) is not made to stop by one; workers of a
    # sweep that ignores SIGINT (a background job) ignore it too, so they are sent SIGTERM.
    from dgl_ssm_sweeps.interrupt import forwarded_stop, terminate_as_ctrl_c

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with terminate_as_ctrl_c():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert forwarded_stop() == signal.SIGINT
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        assert forwarded_stop() == signal.SIGTERM
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_a_storage_call_is_raised_after_it(tmp_path, monkeypatch):
    # Raised inside a storage call, a KeyboardInterrupt can leave a cursor holding SQLite's
    # lock, and the re-queueing then waits on it: the worker must raise it after the call.
    storage = f"sqlite:///{tmp_path}/optuna.db"
    real_report, reported = optuna.trial.Trial.report, []

    def report(trial, value, step):
        if step == 4:  # the last epoch: only the end of the storage call can still stop it
            signal.raise_signal(signal.SIGINT)  # handled before the next line runs
        real_report(trial, value, step)
        reported.append(step)

    monkeypatch.setattr(optuna.trial.Trial, "report", report)
    handler = signal.getsignal(signal.SIGINT)
    space = space_file(tmp_path, epochs=5, name="five")
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec_for(tmp_path, storage, 1, space=space), log=quiet)
    assert reported == [0, 1, 2, 3, 4]  # epoch 4's report went through
    trials = load(storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert sorted(trials[0].intermediate_values) == [0, 1, 2, 3, 4]
    assert trials[0].user_attrs["status"] == "interrupted"
    assert signal.getsignal(signal.SIGINT) is handler  # put back
    # Run again, the study's one trial is the queued retry: it runs, though a study of one
    # trial already holds one (a retry fills the place of the attempt it repeats).
    fake_train(monkeypatch, ["ok"])
    run_sweep(spec_for(tmp_path, storage, 1, space=space), log=quiet)
    trials = load(storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]


def ctrl_c_as_in_a_terminal():
    """In the child: SIGINT's default action, even if the test runner was started with it
    ignored (nohup, a background job), since an ignored signal stays ignored across exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# Epochs for trials that must still be training when a test stops them. An epoch of the tiny
# space takes about 8 ms on an idle core: a trial of 300 epochs once finished in 2.3 s, before
# the stop came, and the test that expected it interrupted failed. (Minutes, not hours: a
# sweep a failing test leaves is killed at its end, but an in-process one runs out.)
UNTIL_STOPPED = 20_000
_STARTED = []  # sweeps started by two_workers_in_a_terminal, killed after each test


@pytest.fixture(autouse=True)
def _no_sweep_outlives_its_test():
    yield
    while _STARTED:
        sweep = _STARTED.pop()
        try:  # its workers are in its process group (a session of its own)
            os.killpg(sweep.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        sweep.wait()
        for pipe in (sweep.stdout, sweep.stderr):
            pipe.close()


def two_workers_in_a_terminal(tmp_path, background=False, trials=4, epochs=UNTIL_STOPPED):
    """A sweep of two workers started as from a terminal (``background``: as ``sweep &`` from
    a script, with SIGINT ignored): its storage URL and its process. By default their trials
    never end on their own."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    space = space_file(tmp_path, epochs=epochs)
    argv = command(space, storage, trials, "--workers", "2", "--no-final")
    how = ctrl_c_ignored if background else ctrl_c_as_in_a_terminal
    sweep = subprocess.Popen(argv, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True, preexec_fn=how)  # fmt: skip
    _STARTED.append(sweep)
    return storage, sweep


def ctrl_c_ignored():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def press_ctrl_c(sweep):
    """What a terminal's Ctrl-C does; the sweep must then exit 130 with one line."""
    os.killpg(sweep.pid, signal.SIGINT)
    _, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, err
    assert err.strip().splitlines() == [
        "dgl-ssm-sweep: interrupted; running trials are queued again, re-run to resume."
    ]


@pytest.mark.slow
def test_ctrl_c_with_two_workers_requeues_both_trials_in_one_line(tmp_path):
    storage, sweep = two_workers_in_a_terminal(tmp_path)
    wait_for_running(storage, 2)
    press_ctrl_c(sweep)
    trials = load(storage).trials
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 2 and not [t for t in trials if t.state == TrialState.RUNNING]
    for trial in failed:  # each worker's
        assert trial.user_attrs["status"] == "interrupted"
        retry = [t for t in trials if trial.number in t.system_attrs.get("retry_history", [])]
        assert len(retry) == 1 and retry[0].state == TrialState.WAITING
        assert retry[0].params == trial.params


@pytest.mark.slow
def test_ctrl_c_while_the_workers_still_import_stops_them_before_any_trial(tmp_path):
    # The workers import torch and DGL for seconds with SIGINT blocked (so a Ctrl-C then is
    # not a traceback): the Ctrl-C held must still stop them, not start trials that the
    # parent then has to kill, leaving them RUNNING.
    storage, sweep = two_workers_in_a_terminal(tmp_path)
    parent = psutil.Process(sweep.pid)
    deadline = time.time() + 120
    while len(workers_of(parent)) < 2 and time.time() < deadline:
        time.sleep(0.02)
    assert len(workers_of(parent)) == 2, "the sweep never started its two workers"
    press_ctrl_c(sweep)
    studies = optuna.get_all_study_summaries(storage)  # the workers create the study
    assert [s.n_trials for s in studies] in ([], [0])


@pytest.mark.slow
def test_ctrl_c_while_the_parent_starts_its_workers_is_held_not_lost(tmp_path, monkeypatch):
    # Between starting one worker and the next the parent cannot run its handler (the
    # workers must not inherit it): a Ctrl-C that comes then must still stop the sweep.
    import multiprocessing.context

    real_start = multiprocessing.context.SpawnProcess.start
    started = []

    def start_then_ctrl_c(process):
        real_start(process)
        started.append(process)
        if len(started) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # before the second worker starts

    monkeypatch.setattr(multiprocessing.context.SpawnProcess, "start", start_then_ctrl_c)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = spec_for(tmp_path, storage, 4, space=space_file(tmp_path, epochs=UNTIL_STOPPED))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    # Another thread that takes signals (as torch's or OGB's do): the kernel may give it the
    # Ctrl-C that the blocked main thread cannot take.
    done = threading.Event()
    other = threading.Thread(target=done.wait)
    other.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            runner._run_processes(spec, 2, log=lambda line: None)
    finally:
        done.set()
        other.join()
        signal.signal(signal.SIGINT, previous)
    assert len(started) == 2 and not any(p.is_alive() for p in started)
    # The workers got it from the parent (whether still importing or training by then) and
    # stopped themselves, their trials re-queued, none left RUNNING.
    assert [p.exitcode for p in started] == [130, 130]
    if optuna.get_all_study_summaries(storage):
        assert TrialState.RUNNING not in [t.state for t in load(storage).trials]


@pytest.mark.slow
def test_a_sweep_started_in_the_background_ignores_ctrl_c_in_its_workers_too(tmp_path):
    # Trials that never end on their own, so the test does not race the machine's speed: the
    # workers must train on, epoch after epoch, past a Ctrl-C meant for the script.
    storage, sweep = two_workers_in_a_terminal(tmp_path, background=True, trials=2)
    wait_for_running(storage, 2)
    before = last_epochs(storage)
    os.killpg(sweep.pid, signal.SIGINT)  # a Ctrl-C meant for the script that started it

    def trained_on(epochs):  # three epochs more than at the Ctrl-C, each worker
        return all(epochs[n] >= before.get(n, -1) + 3 for n in epochs)

    deadline = time.time() + 120
    while time.time() < deadline:  # each worker reports (and checks for a Ctrl-C) each epoch
        epochs = last_epochs(storage)
        if len(epochs) < 2 or trained_on(epochs):
            break
        time.sleep(0.3)
    assert len(epochs) == 2 and trained_on(epochs), f"stopped by the Ctrl-C: {before} {epochs}"
    assert sweep.poll() is None, sweep.communicate()[1]
    assert [t.state for t in load(storage).trials] == [TrialState.RUNNING] * 2
    sweep.send_signal(signal.SIGTERM)  # what does stop it
    _, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, err


def last_epochs(storage):
    """Each running trial's last reported epoch, by trial number."""
    return {t.number: max(t.intermediate_values, default=-1)
            for t in load(storage).trials if t.state == TrialState.RUNNING}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_a_background_sweep_stopped_or_killed_stops_its_workers(tmp_path, stop):
    # Started with `&` from a script (SIGINT ignored), then stopped by SIGTERM to the parent
    # alone (kill, timeout, a scheduler) or killed outright: the workers used to train on,
    # parentless. Now they stop as on a Ctrl-C, their trials queued again.
    storage, sweep = two_workers_in_a_terminal(tmp_path, background=True)
    wait_for_running(storage, 2)
    workers = workers_of(psutil.Process(sweep.pid))
    assert len(workers) == 2
    if stop == "sigterm":
        sweep.send_signal(signal.SIGTERM)
        _, err = sweep.communicate(timeout=120)
        assert sweep.returncode == 130, err
    else:
        sweep.kill()
        sweep.communicate(timeout=120)
    gone, alive = psutil.wait_procs(workers, timeout=120)
    assert not alive, "a worker outlived its sweep"
    trials = load(storage).trials
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert len(failed) == 2 and all(t.user_attrs["status"] == "interrupted" for t in failed)
    assert sum(t.state == TrialState.WAITING for t in trials) == 2


def workers_of(parent):
    """The sweep's spawned worker processes (not multiprocessing's resource tracker, nor a
    short-lived child some library starts and that may already be a zombie)."""
    workers = []
    for child in parent.children():
        try:
            line = " ".join(child.cmdline())
        except psutil.Error:  # gone, or a zombie
            continue
        if "spawn_main" in line and "resource_tracker" not in line:
            workers.append(child)
    return workers


@pytest.mark.slow
def test_a_killed_worker_still_lets_the_study_finish_and_be_evaluated(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    space = space_file(tmp_path, epochs=60)
    sweep = subprocess.Popen(command(space, storage, 3, "--workers", "2", "--heartbeat", "1"),
                             text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    wait_for_running(storage, 2)
    workers = workers_of(psutil.Process(sweep.pid))
    assert len(workers) == 2
    os.kill(workers[0].pid, signal.SIGKILL)
    out, err = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, err
    assert "stopped early; the others completed the study" in out
    study = load(storage)
    assert counted(study.trials) == 3 and sum(t.state == TrialState.COMPLETE
                                              for t in study.trials) == 3  # fmt: skip
    assert study.user_attrs["final"]["trial"] == study.best_trial.number


# ----------------------------------------------------------------- 5. secrets


def test_passwords_are_redacted_everywhere(tmp_path, capsys):
    url = "postgresql://me:p%40ss-w0rd@db.example:5432/sweeps"
    text = f"Cannot open {url}: FATAL for p@ss-w0rd; also mysql://root:toor@h/x?password=abc"
    shown = redact(text, url)
    assert "p%40ss-w0rd" not in shown and "p@ss-w0rd" not in shown and "toor" not in shown
    assert "abc" not in shown and "postgresql://me:***@db.example:5432/sweeps" in shown
    assert redact("sqlite:///runs/optuna.db") == "sqlite:///runs/optuna.db"
    bad = ["postgresql://u:hunter2@127.0.0.1:notaport/db", "postgresql://u:hunter2@127.0.0.1:1/db"]
    for storage in bad:
        with pytest.raises(StorageError) as error:
            open_storage(storage)
        assert "hunter2" not in str(error.value) and "u:***@" in str(error.value)
        assert leaderboard_main(["--storage", storage, "--out", str(tmp_path / "b")]) == 2
        argv = ["--backbone", "gcn", "--dataset", "ring_transfer", "--storage", storage]
        assert sweep_main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 2 and "hunter2" not in err


# ----------------------------------------------------------------- 6. threads


def test_threads_per_worker_divide_the_cores():
    assert threads_per_worker(None, 2, cores=2) == 1
    assert threads_per_worker(None, 3, cores=2) == 1
    assert threads_per_worker(None, 2, cores=8) == 4
    assert threads_per_worker(None, 3, cores=8) == 2  # 3 × 3 would be 9 threads on 8 cores
    assert threads_per_worker(3, 2, cores=8) == 3


def test_threads_per_worker_share_the_cores_this_process_may_run_on(monkeypatch):
    """A container or ``taskset`` narrows the cores below the machine's: their share is what
    each worker gets, not the machine's (8 threads each on 1 allowed core)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert threads_per_worker(None, 1) == 1
    assert threads_per_worker(None, 2) == 1


@pytest.mark.slow
def test_workers_train_with_their_share_of_the_threads(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    space = space_file(tmp_path)
    run = subprocess.run(command(space, storage, 2, "--workers", "2", "--no-final"),
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    expected = max(1, cores // 2)  # the cores this process may use, shared by the two
    assert [t.user_attrs["threads"] for t in load(storage).trials] == [expected] * 2
    storage = f"sqlite:///{tmp_path}/two.db"
    argv = ["--backbone", "gcn_ssm", "--dataset", "ring_transfer", "--space", space,
            "--storage", storage, "--trials", "1", "--no-final", "--threads", "2"]  # fmt: skip
    before = __import__("torch").get_num_threads()
    assert sweep_main(argv) == 0
    assert load(storage).trials[0].user_attrs["threads"] == 2
    assert __import__("torch").get_num_threads() == before  # restored after the sweep
    assert sweep_main([*argv, "--threads", "0"]) == 2
    assert capsys.readouterr().err.endswith("error: --threads must be at least 1.\n")


# ----------------------------------------------------------------- 7. errors, not tracebacks


def test_a_storage_under_a_regular_file_is_one_line(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    argv = ["--backbone", "gcn_ssm", "--dataset", "ring_transfer", "--space",
            space_file(tmp_path), "--storage", f"sqlite:///{tmp_path}/a_file/x.db"]  # fmt: skip
    assert sweep_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Cannot open storage" in err and "is a file" in err


@pytest.mark.parametrize("flag", ["--workers", "--threads"])
def test_leaderboard_refuses_zero_workers_before_any_work(monkeypatch, capsys, flag):
    def boom(*_, **__):
        raise AssertionError("no study may be loaded or run")

    monkeypatch.setattr("dgl_ssm_sweeps.cli.suite_studies", boom)
    monkeypatch.setattr("dgl_ssm_sweeps.runner.run_sweep", boom)
    assert bench_main(["leaderboard", flag, "0"]) == 2
    expected = f"dgl-ssm-bench leaderboard: error: {flag} must be at least 1.\n"
    assert capsys.readouterr().err == expected


def old_board(folder):
    folder.mkdir()
    for name in ("a.md", "b.csv", "c.png"):
        (folder / name).write_bytes(b"old")


def test_leaderboard_files_are_0644_under_the_usual_umask_and_respect_it(tmp_path):
    for umask, mode in ((0o022, 0o644), (0o027, 0o640)):
        previous = os.umask(umask)
        try:
            files = write_together(tmp_path, {f"x{umask}.md": b"new"})
        finally:
            os.umask(previous)
        assert (files[f"x{umask}.md"].stat().st_mode & 0o777) == mode


def test_a_failed_write_leaves_the_old_tables_and_no_temporary_file(tmp_path):
    old_board(tmp_path / "board")
    with pytest.raises(TypeError):
        write_together(tmp_path / "board", {"a.md": b"new", "b.csv": "not bytes", "c.png": b""})
    folder = tmp_path / "board"
    assert sorted(p.name for p in folder.iterdir()) == ["a.md", "b.csv", "c.png"]
    assert all(p.read_bytes() == b"old" for p in folder.iterdir())


def test_a_folder_in_the_place_of_one_file_fails_before_any_file_is_replaced(tmp_path):
    old_board(tmp_path / "board")
    (tmp_path / "board" / "c.png").unlink()
    (tmp_path / "board" / "c.png").mkdir()  # the rename of the last file would fail on it
    with pytest.raises(IsADirectoryError, match=r"board/c.png: a folder has that name"):
        write_together(tmp_path / "board", {"a.md": b"new", "b.csv": b"new", "c.png": b"new"})
    folder = tmp_path / "board"  # not a new a.md and b.csv beside the old set's remains
    assert sorted(p.name for p in folder.iterdir()) == ["a.md", "b.csv", "c.png"]
    assert [(folder / name).read_bytes() for name in ("a.md", "b.csv")] == [b"old", b"old"]


def test_one_file_is_0644_whole_or_not_there_and_a_figure_bears_no_version(tmp_path):
    """atomic_write, the home of every cache, table and figure: the usual mode, as ``open``
    gives (caches are shared); a failed write leaves the old file and no temporary one; a
    PNG has no software stamp, so an unchanged figure is an unchanged file."""
    from matplotlib.figure import Figure

    from dgl_ssm_bench.files import atomic_write, save_png

    path = tmp_path / "cache.npz"
    previous = os.umask(0o022)
    try:
        with atomic_write(path) as temporary:
            temporary.write_bytes(b"old")
    finally:
        os.umask(previous)
    assert (path.stat().st_mode & 0o777) == 0o644
    with pytest.raises(RuntimeError), atomic_write(path) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert [p.name for p in tmp_path.iterdir()] == ["cache.npz"] and path.read_bytes() == b"old"
    figure = Figure()
    figure.add_subplot().plot([0, 1])
    save_png(figure, tmp_path / "plot.png")
    png = (tmp_path / "plot.png").read_bytes()
    assert png.startswith(b"\x89PNG") and b"Software" not in png and b"atplotlib" not in png


def test_a_signal_between_files_waits_until_the_whole_set_is_written(tmp_path, monkeypatch):
    old_board(tmp_path / "board")
    real = os.replace

    def replace_then_ctrl_c(src, dst):
        real(src, dst)
        os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C after the first file

    monkeypatch.setattr(os, "replace", replace_then_ctrl_c)
    # Python's own Ctrl-C handler, even when the test runner started with SIGINT ignored (as
    # under nohup or in a background job), which would otherwise be what is restored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    done = threading.Event()  # another thread, as torch's: the signal may be delivered there
    other = threading.Thread(target=done.wait)
    other.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            write_together(tmp_path / "board", {"a.md": b"new", "b.csv": b"new", "c.png": b"new"})
    finally:
        done.set()
        other.join()
        signal.signal(signal.SIGINT, previous)
    folder = tmp_path / "board"
    assert sorted(p.name for p in folder.iterdir()) == ["a.md", "b.csv", "c.png"]
    assert all(p.read_bytes() == b"new" for p in folder.iterdir())


def test_a_suite_whose_leaderboard_cannot_be_built_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("dgl_ssm_sweeps.cli.suite_studies", lambda name: [])  # no sweep to run
    storage = f"sqlite:///{tmp_path}/missing.db"
    assert bench_main(["leaderboard", "--storage", storage, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dgl-ssm-bench leaderboard: error: no SQLite")


def test_a_leaderboard_out_that_cannot_be_a_folder_fails_before_any_sweep(
    monkeypatch, tmp_path, capsys
):
    def boom(*_, **__):
        raise AssertionError("no sweep may run: the tables would have nowhere to go")

    monkeypatch.setattr("dgl_ssm_sweeps.runner.run_sweep", boom)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    storage = f"sqlite:///{tmp_path}/optuna.db"
    assert bench_main(["leaderboard", "--suite", "tiny", "--out", str(blocker),
                       "--storage", storage]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert f"{blocker} is a file, not a folder" in err and err.count("\n") == 1


@pytest.mark.parametrize("read_only", [False, True])
def test_a_database_server_that_never_answers_fails_within_the_timeout(monkeypatch, read_only):
    """A server that accepts the connection and stays silent hung sweeps and the leaderboard."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])  # and never answer
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setattr("dgl_ssm_sweeps.storage.CONNECT_TIMEOUT", 2)
    url = f"postgresql://u:pw123@127.0.0.1:{server.getsockname()[1]}/db"
    started = time.monotonic()
    try:
        with pytest.raises(StorageError, match="annot open storage") as error:
            open_storage(url, read_only=read_only)
    finally:
        server.close()
    assert time.monotonic() - started < 60 and "pw123" not in str(error.value)


def test_each_suite_keeps_its_studies_in_a_storage_of_its_own(monkeypatch, tmp_path):
    """The suites' studies share names (gcn_ssm__ring_transfer) but not spaces: in one storage
    the second suite run would be refused. By default each has its own file and folder."""
    seen = []
    monkeypatch.setattr(runner, "check_study", lambda spec: seen.append(spec.storage))
    monkeypatch.setattr(runner, "run_sweep", lambda spec, workers: None)
    monkeypatch.setattr("dgl_ssm_sweeps.leaderboard.build_leaderboard",
                        lambda storage, out, depth_select: {"md": f"{storage} {out}"})  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for suite in ("tiny", "quick"):
        seen.clear()
        assert cli.leaderboard_main(["--suite", suite]) == 0
        assert set(seen) == {f"sqlite:///runs/{suite}/optuna.db"}
        assert (tmp_path / "runs" / suite / "leaderboard").is_dir()
    # A storage given is used as given.
    seen.clear()
    assert cli.leaderboard_main(["--suite", "tiny", "--storage", "sqlite:///x.db"]) == 0
    assert set(seen) == {"sqlite:///x.db"}
    parser = cli.suite_parser()
    assert parser.get_default("storage") is None  # resolved once the suite is known


def test_a_sqlite_uri_form_storage_keeps_its_lock_beside_its_file(tmp_path, monkeypatch):
    """``sqlite:///file:sub/u.db?uri=true`` names sub/u.db: the study lock goes beside it (it
    was looked for in a folder named ``file:sub``, which does not exist)."""
    from types import SimpleNamespace

    from dgl_ssm_sweeps.storage import trial_lock

    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    with trial_lock(SimpleNamespace(url="sqlite:///file:sub/u.db?uri=true"), "study"):
        locks = list((tmp_path / "sub").glob(".optuna-*.lock"))
    assert len(locks) == 1


def test_the_leaderboard_without_a_suite_points_to_the_suites_storages(monkeypatch, tmp_path,
                                                                       capsys):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "quick").mkdir(parents=True)
    (tmp_path / "runs" / "quick" / "optuna.db").write_bytes(b"")
    assert cli.leaderboard_main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no sweeps in sqlite:///runs/optuna.db" in err
    assert "--storage sqlite:///runs/quick/optuna.db --out runs/quick/leaderboard" in err


def test_a_space_without_final_runs_three_seeds_after_the_search(tmp_path, monkeypatch):
    path = tmp_path / "nofinal.yaml"
    path.write_text(SPACE.format(epochs=1).replace("final: {runs: 2}\n", ""))
    spec = spec_for(tmp_path, f"sqlite:///{tmp_path}/o.db", 1, space=str(path), seed=0)
    run_sweep(spec, log=quiet)
    seen = []
    monkeypatch.setattr(runner, "train", lambda config, data, **_: seen.append(config.seed)
                        or SimpleNamespace(test=0.5, status="ok", device="cpu"))  # fmt: skip
    final = runner.final_evaluation(spec, log=quiet)
    assert seen == final["seeds"] == [1, 2, 3]  # the search trained with seed 0


def test_a_study_whose_final_section_changed_is_refused(tmp_path):
    # Resumed, it returned the final numbers of seeds [1, 2] as those of the new seeds.
    storage = f"sqlite:///{tmp_path}/optuna.db"
    space = space_file(tmp_path)
    run_sweep(spec_for(tmp_path, storage, 1, space=space, final=True), log=quiet)
    Path(space).write_text(SPACE.format(epochs=1).replace("{runs: 2}", "{seeds: [41, 95]}"))
    with pytest.raises(StudyMismatch, match="search space or data options have changed since"):
        run_sweep(spec_for(tmp_path, storage, 1, space=space, final=True), log=quiet)


def test_a_study_resumes_with_its_data_in_another_folder(tmp_path):
    # Where the raw data are read from is not what they are (another machine, a moved folder).
    storage = f"sqlite:///{tmp_path}/optuna.db"
    run_sweep(spec_for(tmp_path, storage, 1, data_dir=str(tmp_path / "a")), log=quiet)
    run_sweep(spec_for(tmp_path, storage, 2, data_dir=str(tmp_path / "b"),
                       cache_dir=str(tmp_path / "cache")), log=quiet)  # fmt: skip
    assert len(load(storage).trials) == 2


def test_tpe_models_the_space_after_five_random_trials():
    # runner._sampler: 5, not Optuna's 10, or half the default 20 trials are random.
    assert runner._sampler(SweepSpec("gcn_ssm", "ring_transfer"), 0, 0)._n_startup_trials == 5


def test_errors_not_in_a_row_do_not_stop_the_sweep(tmp_path, monkeypatch):
    # README: the sweep "stops after 3 errors in a row"; these three are not in a row.
    storage = f"sqlite:///{tmp_path}/optuna.db"
    fake_train(monkeypatch, [RuntimeError("a"), None, RuntimeError("b"), None, RuntimeError("c")])
    run_sweep(spec_for(tmp_path, storage, 5), log=quiet)
    statuses = [t.user_attrs["status"] for t in load(storage).trials]
    assert statuses == ["error", "ok", "error", "ok", "error"]


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_a_trial_its_pruner_stops_is_pruned_at_that_epoch(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(runner, "make_pruner", lambda name: asked.append(name) or _AlwaysPrune())
    storage = f"sqlite:///{tmp_path}/optuna.db"
    space = space_file(tmp_path, epochs=3)
    run_sweep(spec_for(tmp_path, storage, 1, space=space, pruner="hyperband"), log=quiet)
    assert asked == ["hyperband"]  # --pruner's, not the default median
    (trial,) = load(storage).trials
    assert trial.state == TrialState.PRUNED and trial.user_attrs["status"] == "pruned"
    assert list(trial.intermediate_values) == [0]  # not trained past the first epoch


def test_a_new_best_trial_is_evaluated_with_runs_of_its_own(tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = spec_for(tmp_path, storage, 1, final=True)
    run_sweep(spec, log=quiet)  # the final of trial 0: 2 runs, seeds 1 and 2
    first = load(storage).trials[0]
    load(storage).add_trial(optuna.trial.create_trial(  # resumed: a better trial since
        params=first.params, distributions=first.distributions, value=2.0,
        user_attrs={"config": first.user_attrs["config"]}))  # fmt: skip
    scores = iter([0.9, 0.8])
    monkeypatch.setattr(runner, "train", lambda config, data, **_: SimpleNamespace(
        test=next(scores), status="ok", device="cpu"))  # fmt: skip
    final = runner.final_evaluation(spec, log=quiet)
    assert final["trial"] == 1 and final["values"] == [0.9, 0.8]


def test_a_grid_point_whose_trial_failed_is_not_taken_again(tmp_path, monkeypatch):
    # It would fail again (same configuration, same seed); taken again, it used up --trials
    # and the grid's later points never ran.
    space = tmp_path / "grid.yaml"
    space.write_text(GRID.replace("[1, 2, 3]", "[1, 2]").replace("[0.5, 1.0]", "[0.5]"))
    storage = f"sqlite:///{tmp_path}/optuna.db"
    fake_train(monkeypatch, ["diverged"])
    run_sweep(spec_for(tmp_path, storage, 20, space=str(space)), log=quiet)
    trials = load(storage).trials
    assert sorted(t.params["model.num_layers"] for t in trials) == [1, 2]
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]


def test_one_study_name_in_two_storages_takes_two_locks(tmp_path):
    # A final evaluation holds its study's lock for hours: another storage must not wait.
    a, b = (SimpleNamespace(url=f"sqlite:///{tmp_path}/{n}.db") for n in "ab")
    got = threading.Event()

    def take_b():
        with trial_lock(b, STUDY + ":final"):
            got.set()

    with trial_lock(a, STUDY + ":final"):
        thread = threading.Thread(target=take_b, daemon=True)
        thread.start()
        assert got.wait(timeout=5)
    thread.join()


def test_a_password_is_hidden_whole_not_its_decoded_prefix_first():
    url = "postgresql://me:ab%25@db/x"  # the password ab%25 reads ab% decoded
    assert redact("FATAL: password ab%25 refused", url) == "FATAL: password *** refused"


def test_a_suites_options_reach_each_of_its_sweeps(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(runner, "check_study", lambda spec: None)
    monkeypatch.setattr(runner, "run_sweep", lambda spec, workers: seen.append((spec, workers)))
    monkeypatch.setattr("dgl_ssm_sweeps.leaderboard.build_leaderboard",
                        lambda storage, out, depth_select: seen.append(depth_select)
                        or {})  # fmt: skip
    argv = ["--suite", "tiny", "--storage", "sqlite:///x.db", "--out", str(tmp_path / "b"),
            "--workers", "2", "--seed", "4", "--no-final", "--depth-select", "test"]  # fmt: skip
    assert cli.leaderboard_main(argv) == 0
    assert seen.pop() == "test"  # the tables' option reaches the tables
    assert seen == [
        (
            SweepSpec(
                "gcn_ssm",
                "ring_transfer",
                trials=1,
                storage="sqlite:///x.db",
                space="tiny_ring_transfer",
                seed=4,
                final=False,
                suite="tiny",
            ),
            2,
        )
    ]


def test_the_error_named_when_no_trial_completed_is_the_last_one(tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    fake_train(monkeypatch, [RuntimeError("first"), "diverged", RuntimeError("second")])
    with pytest.raises(RuntimeError, match=r"2 of 3 raised an error, the last: RuntimeError: "
                       r"second$"):  # fmt: skip
        run_sweep(spec_for(tmp_path, storage, 3), log=quiet)


def test_checking_a_suites_study_makes_no_storage_file(tmp_path):
    db = tmp_path / "new.db"
    assert runner.check_study(spec_for(tmp_path, f"sqlite:///{db}", 1)) is None
    assert not db.exists()  # the sweep makes it, and says so


def test_a_study_is_complete_with_its_trials_none_running_or_queued(tmp_path):
    # (what lets the final evaluation run after a worker died: runner._run_processes)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = spec_for(tmp_path, storage, 2)
    assert not runner.study_complete(spec)  # no study yet
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    assert not runner.study_complete(spec)  # 1 of 2
    study.add_trial(optuna.trial.create_trial(value=0.6))
    assert runner.study_complete(spec)  # 2 of 2
    study.enqueue_trial({})  # a retry still to run
    assert not runner.study_complete(spec)
    # A grid is complete once every point is taken, --trials or not.
    space = tmp_path / "grid.yaml"
    space.write_text(GRID)
    grid_spec = spec_for(tmp_path, f"sqlite:///{tmp_path}/grid.db", 20, space=str(space))
    grid_study = optuna.create_study(study_name=STUDY, storage=grid_spec.storage,
                                     direction="maximize")  # fmt: skip
    layers = optuna.distributions.CategoricalDistribution([1, 2, 3])
    scales = optuna.distributions.CategoricalDistribution([0.5, 1.0])
    for n, scale in [(n, s) for n in (1, 2, 3) for s in (0.5, 1.0)]:
        assert not runner.study_complete(grid_spec)
        grid_study.add_trial(optuna.trial.create_trial(
            params={"model.num_layers": n, "model.state_scale": scale},
            distributions={"model.num_layers": layers, "model.state_scale": scales},
            value=0.5))  # fmt: skip
    assert runner.study_complete(grid_spec)  # 6 trials of 20: every point


def test_a_trial_that_cannot_draw_its_values_is_failed_not_left_running(tmp_path, monkeypatch):
    # Left RUNNING, it would hold up the next sweep until its heartbeat went stale.
    def broken(self, trial, kind):
        raise ValueError("no values")

    monkeypatch.setattr(SearchSpace, "suggest", broken)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    with pytest.raises(ValueError, match="no values"):
        run_sweep(spec_for(tmp_path, storage, 1), log=quiet)
    assert [t.state for t in load(storage).trials] == [TrialState.FAIL]


def test_an_interrupt_after_the_trial_was_told_leaves_it_as_told(tmp_path):
    # _run_trial re-queues a trial interrupted before it was told, not one told already.
    storage = f"sqlite:///{tmp_path}/optuna.db"

    def log(line):
        if " val " in line:  # the line said once the trial is told
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec_for(tmp_path, storage, 1), log=log)
    assert [t.state for t in load(storage).trials] == [TrialState.COMPLETE]


def test_the_final_seeds_follow_the_seed_the_space_fixes(tmp_path, monkeypatch):
    # Not those after 0: a space that fixes seed 7 searched with it; 8 and 9 come after.
    path = tmp_path / "seeded.yaml"
    path.write_text(SPACE.format(epochs=1).replace("fixed:\n", "fixed:\n  seed: 7\n"))
    spec = spec_for(tmp_path, f"sqlite:///{tmp_path}/o.db", 1, space=str(path))
    run_sweep(spec, log=quiet)
    seen = []
    monkeypatch.setattr(runner, "train", lambda config, data, **_: seen.append(config.seed)
                        or SimpleNamespace(test=0.5, status="ok", device="cpu"))  # fmt: skip
    final = runner.final_evaluation(spec, log=quiet)
    assert seen == final["seeds"] == [8, 9]


def test_the_leaderboard_without_a_suite_reads_the_storage_given_as_asked(monkeypatch, tmp_path):
    # A suite's storage here, none at the default: a --storage given is read all the same.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "quick").mkdir(parents=True)
    (tmp_path / "runs" / "quick" / "optuna.db").write_bytes(b"")
    seen = []
    monkeypatch.setattr(cli, "write_leaderboard", lambda *args: seen.append(args) or 0)
    argv = ["--storage", "sqlite:///x.db", "--out", "board", "--depth-select", "test"]
    assert cli.leaderboard_main(argv) == 0
    assert seen == [("sqlite:///x.db", "board", "test", "dgl-ssm leaderboard")]


def test_a_suite_without_its_data_files_stops_before_any_sweep(tmp_path, monkeypatch, capsys):
    """The quick suite's Cora studies come last: offline without --data-dir, or with a wrong
    one, it used to train every RingTransfer and GPP trial (minutes) before Cora's failed."""
    ran = []
    monkeypatch.setattr(runner, "train", lambda *a, **k: ran.append(1) / 0)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    code = bench_main(["leaderboard", "--suite", "quick", "--storage", storage, "--out",
                       str(tmp_path / "out"), "--data-dir", str(tmp_path / "no-such-folder"),
                       "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and ran == []
    assert err.count("\n") == 1
    assert "1 of the 1 datasets these runs read did not load, so no sweep was started" in err
    assert "cora: No raw cora files in " in err and "no-such-folder" in err
    assert not (tmp_path / "optuna.db").exists()  # no study was made
