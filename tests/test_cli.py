"""The dgl-ssm-bench command: records, configs, and bad input that fails before training."""

import json

import pytest

from benchmarks.cli import CONFIGS, main
from benchmarks.config import RunConfig
from benchmarks.run import validate

TINY_RING = ["--dataset", "ring_transfer", "--ring-size", "6", "--num-graphs", "50",
             "--layers", "3", "--hidden", "8", "--epochs", "2", "--no-progress"]  # fmt: skip


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_appends_one_full_record_per_seed(tmp_path):
    out = tmp_path / "results.jsonl"
    argv = ["run", "--model", "kgcn_ssm", *TINY_RING, "--seeds", "2", "--output", str(out)]
    assert main(argv) == 0
    first, second = records(out)
    assert (first["config"]["seed"], second["config"]["seed"]) == (0, 1)
    assert first["config"]["model"]["name"] == "kgcn_ssm"
    assert first["config"]["data"]["options"] == {"ring_size": 6, "num_graphs": 50}
    assert first["status"] == "ok" and first["metric"] == "accuracy"
    assert 0 <= first["test"] <= 1 and first["epochs"] == 2
    assert first["wall_time_s"] > 0 and first["peak_memory_mb"] > 0
    env = first["environment"]
    assert env["torch"].startswith("2.1.2") and env["dgl"].startswith("2.1.0")
    assert "git_commit" in env


def test_yaml_config_with_flags_on_top(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "model: {name: gcn_ssm, num_layers: 2, hidden: 8, state_scale: 0.9}\n"
        "data: {name: ring_transfer, options: {ring_size: 6, num_graphs: 50}}\n"
        "optim: {epochs: 1}\n"
    )
    out = tmp_path / "r.jsonl"
    argv = ["run", "--config", str(path), "--layers", "3", "--output", str(out), "--no-progress"]
    assert main(argv) == 0
    (record,) = records(out)
    assert record["config"]["model"]["num_layers"] == 3
    assert record["config"]["model"]["state_scale"] == 0.9


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_is_valid(path):
    validate(RunConfig.from_yaml(path))


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--model", "gcn_sm"], r"Unknown model 'gcn_sm'. Did you mean 'gcn_ssm'\?"),
        (["--model", "gcn", "--state-scale", "0.5"], r"--state-scale is a SSM-model option"),
        (["--model", "gcn_ssm", "--residual"], r"--residual is a plain-model option"),
        (["--model", "gcn_ssm", "--dataset", "kora"], r"Unknown dataset 'kora'"),
        (["--model", "gcn_ssm", "--activation", "swish"], r"Unknown activation 'swish'"),
        (["--model", "gcn_ssm", "--device", "cuda"], r"no CUDA device"),
        (["--model", "gcn_ssm", "--epochs", "0"], r"--epochs must be at least 1"),
        (["--config", "nope"], r"No config file 'nope'; shipped configs: .*ring_transfer"),
    ],
)
def test_bad_input_fails_before_training_with_one_line(tmp_path, capsys, argv, message):
    import re

    out = tmp_path / "r.jsonl"
    assert main(["run", *TINY_RING, *argv, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_missing_data_directory_names_the_files(tmp_path, capsys):
    argv = [
        "run",
        "--model",
        "gcn",
        "--dataset",
        "minesweeper",
        "--data-dir",
        str(tmp_path),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--output",
        str(tmp_path / "out.jsonl"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "minesweeper.npz" in err and "heterophilous-graphs" in err


def test_malformed_yaml_names_the_file_and_key(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {name: gcn_ssm, layers: 3}\n")
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "model" in err and "layers" in err
