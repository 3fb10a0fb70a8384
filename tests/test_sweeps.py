"""Sweeps: search spaces, a study end to end, crash safety and many workers on PostgreSQL."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.cli import sweep_main
from sweeps.runner import SweepSpec, counted, run_sweep
from sweeps.space import SPACES, SpaceError, load_space

TINY_SPACE = """
fixed:
  data.options.ring_size: 6
  data.options.num_graphs: {graphs}
  model.hidden: 8
  model.num_layers: 2
  optim.epochs: {epochs}
search:
  optim.lr: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
ssm:
  model.state_scale: {{type: float, low: 0.5, high: 1.0}}
final: {{runs: 2}}
"""


def tiny_space(tmp_path, epochs=3, graphs=60):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE.format(epochs=epochs, graphs=graphs))
    return str(path)


def sweep_command(space, storage, trials, *extra):
    return [sys.executable, "-m", "sweeps.cli", "--backbone", "gcn_ssm", "--dataset",
            "ring_transfer", "--trials", str(trials), "--space", space, "--storage", storage,
            "--pruner", "none", *extra]  # fmt: skip


@pytest.mark.parametrize("path", sorted(SPACES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_space_is_valid(path):
    space = load_space(path.stem)
    assert space.search or space.ssm or space.fixed


def test_spaces_inherit_and_override():
    space = load_space("gpp_sssp")
    assert space.fixed["optim.lr"] == 0.003 and "optim.lr" not in space.search
    assert space.search["model.num_layers"]["choices"] == [1, 5, 10, 20]
    assert "model.state_scale" in space.ssm  # inherited from default.yaml
    assert space.final == {"runs": 4, "seeds": [41, 95, 12, 35]}


@pytest.mark.parametrize(
    "text,message",
    [
        ("search:\n  model.hiden: {type: int, low: 1, high: 2}\n",
         r"bad.yaml: search: model.hiden: model has no field 'hiden'"),
        ("search:\n  optim.lr: {type: float, low: 1, high: 0.1}\n",
         r"bad.yaml: search: optim.lr: needs numbers low <= high"),
        ("search:\n  optim.lr: {low: 1, high: 2}\n", r"bad.yaml: search: optim.lr: needs type"),
        ("serch: {}\n", r"bad.yaml: serch: unknown section"),
        ("extends: nowhere\n", r"No search space 'nowhere'"),
        ("fixed:\n  trainer.lr: 1\n", r"bad.yaml: fixed: trainer.lr: not a run-config path"),
    ],
)  # fmt: skip
def test_malformed_space_names_file_key_and_reason(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(SpaceError, match=message):
        load_space(str(tmp_path / "bad.yaml"))


def test_a_tiny_sweep_end_to_end_stores_trials_and_the_final_numbers(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = SweepSpec("gcn_ssm", "ring_transfer", trials=3, storage=storage,
                     space=tiny_space(tmp_path), pruner="none")  # fmt: skip
    final = run_sweep(spec, log=lambda *_: None)
    study = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert study.user_attrs["metric"] == "accuracy" and study.direction.name == "MAXIMIZE"
    assert final == study.user_attrs["final"] and len(final["values"]) == 2
    assert final["trial"] == study.best_trial.number
    config = study.best_trial.user_attrs["config"]
    assert config["model"]["state_scale"] == study.best_trial.params["model.state_scale"]
    # Resuming asks for more trials and keeps the first three.
    first_params = [t.params for t in study.trials]
    spec.trials = 4
    run_sweep(spec, log=lambda *_: None)
    again = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=storage)
    assert len(again.trials) == 4
    assert [t.params for t in again.trials[:3]] == first_params


def test_the_leaderboard_lists_a_finished_sweep(tmp_path):
    from sweeps.leaderboard import build_leaderboard

    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = SweepSpec("kgcn_ssm", "ring_transfer", trials=2, storage=storage,
                     space=tiny_space(tmp_path), pruner="none")  # fmt: skip
    final = run_sweep(spec, log=lambda *_: None)
    files = build_leaderboard(storage, tmp_path / "board")
    table = files["leaderboard.md"].read_text()
    row = next(line for line in table.splitlines() if line.startswith("| kGCN-SSM |"))
    assert f"{final['mean']:.4f} ± {final['std']:.4f}" in row and "(n=2)" in row
    assert "ring_transfer (accuracy ↑)" in table


def test_bad_input_is_one_line(tmp_path, capsys):
    space = tiny_space(tmp_path)
    cases = [
        (["--backbone", "gcn_sm", "--dataset", "cora"], "Unknown model 'gcn_sm'"),
        (["--backbone", "gcn", "--dataset", "kora"], "Unknown dataset 'kora'"),
        (["--backbone", "gcn", "--dataset", "cora", "--storage", "foo://x"], "Cannot open"),
        (["--backbone", "gcn", "--dataset", "ring_transfer", "--space", space, "--storage",
          "postgresql://u:secret@127.0.0.1:1/db"], "Cannot open storage"),
    ]  # fmt: skip
    for argv, message in cases:
        assert sweep_main([*argv, "--trials", "1"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "secret" not in err


def test_killed_worker_loses_nothing_and_its_trial_is_retried(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    command = sweep_command(tiny_space(tmp_path, epochs=200), storage, 3,
                            "--heartbeat", "1", "--no-final")  # fmt: skip
    worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    completed, killed = {}, None
    while time.time() < deadline:
        time.sleep(0.5)
        try:
            trials = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=storage).trials
        except Exception:  # noqa: BLE001 - the study may not exist yet
            continue
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        running = [t for t in trials if t.state == TrialState.RUNNING]
        if done and running:
            completed = {t.number: (t.params, t.value) for t in done}
            killed = running[0]
            break
    assert killed is not None, "never saw a completed and a running trial together"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    study = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=storage)
    by_number = {t.number: t for t in study.trials}
    for number, (params, value) in completed.items():
        assert by_number[number].state == TrialState.COMPLETE
        assert (by_number[number].params, by_number[number].value) == (params, value)
    assert by_number[killed.number].state == TrialState.FAIL
    retries = [t for t in study.trials if killed.number in t.system_attrs.get("retry_history", [])]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 3
    assert counted(study.trials) == 3


POSTGRES = os.environ.get("DGL_SSM_TEST_POSTGRES")


@pytest.mark.skipif(
    not POSTGRES and not os.environ.get("CI"),
    reason="set DGL_SSM_TEST_POSTGRES=postgresql://… (CI starts a server and sets it)",
)
def test_two_workers_on_an_empty_postgres_database_share_one_study(tmp_path):
    assert POSTGRES, "CI must start PostgreSQL and set DGL_SSM_TEST_POSTGRES (see .ci/run)"
    import sqlalchemy

    server, name = POSTGRES.rsplit("/", 1)
    admin = sqlalchemy.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()

    command = sweep_command(tiny_space(tmp_path), POSTGRES, 8, "--no-final")
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]  # fmt: skip
    outputs = [w.communicate(timeout=600) for w in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
    study = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=POSTGRES)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(8))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    ran = [sum("trial" in line for line in out.splitlines()) for out, _ in outputs]
    assert sum(ran) == 8
