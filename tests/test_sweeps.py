"""Sweeps: search spaces, a study end to end, crash safety and many workers on PostgreSQL."""

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from types import SimpleNamespace

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.pruners import NopPruner
from optuna.trial import TrialState

from dgl_ssm_bench.config import ModelConfig
from dgl_ssm_bench.datasets import DATASETS, data_version, get_dataset
from dgl_ssm_bench.references import GPP_DATA
from dgl_ssm_sweeps import runner, storage
from dgl_ssm_sweeps.cli import leaderboard_main, sweep_main
from dgl_ssm_sweeps.runner import StudyMismatch, SweepSpec, counted, run_sweep, validate
from dgl_ssm_sweeps.space import SPACES, SpaceError, backbone_kind, find_space, load_space
from dgl_ssm_sweeps.storage import OPEN_ATTEMPTS, StorageError, new_sqlite_file, open_storage
from dgl_ssm_sweeps.suites import suite_studies
from tests.conftest import TINY_SPACE, fresh_postgres_database, postgres_url, tiny_space

HETEROPHILY = ("minesweeper", "tolokers", "roman_empire", "amazon_ratings")
# Spaces for the fixed reference baselines (Platonov's protocol), not for plain/SSM twins.
REFERENCE_SPACES = {"heterophily_platonov", *(f"gcn_platonov__{d}" for d in HETEROPHILY)}
SSM_KEYS = {f"model.{name}" for name in ModelConfig.SSM_FIELDS}

# A sweep seed whose first trial draws the large model (checked by the test that uses it).
SEED_BIG_FIRST = 0


def sweep_command(space, storage, trials, *extra):
    return [sys.executable, "-m", "dgl_ssm_sweeps.cli", "--backbone", "gcn_ssm", "--dataset",
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
        ("extends: nowhere\n", r"bad.yaml: extends: Unknown space 'nowhere'\. Valid: "),
        ("extends: cor\n", r"bad.yaml: extends: Unknown space 'cor'\. Did you mean 'cora'\?"),
        ("extends: sub/none.yaml\n", r"bad.yaml: extends: no file .*sub/none.yaml"),
        ("fixed:\n  trainer.lr: 1\n", r"bad.yaml: fixed: trainer.lr: not a run-config path"),
        ("search:\n  model.residual: {type: categorical, choices: [true]}\n",
         r"bad.yaml: search: model.residual: only plain models take this option; search it "
         r"under 'plain:'"),
        ("ssm:\n  model.residual: {type: categorical, choices: [true]}\n",
         r"bad.yaml: ssm: model.residual: only plain models"),
        ("plain:\n  model.state_scale: {type: float, low: 0.5, high: 1}\n",
         r"bad.yaml: plain: model.state_scale: only ssm models take this option"),
        ("search:\n  model.input: {type: categorical, choices: [random]}\n",
         r"bad.yaml: search: model.input: only ssm models"),
        ("search:\n  model.calibrate: {type: categorical, choices: [null, 1.0]}\n",
         r"bad.yaml: search: model.calibrate: only ssm models"),
        ("protocol: [gpp]\n", r"bad.yaml: protocol: must be a name"),
        ("search:\n  model.num_layers: {type: categorical, choices: [2]}\nplain:\n"
         "  model.num_layers: {type: categorical, choices: [4]}\n",
         r"bad.yaml: plain: model.num_layers: also in 'search:'"),
        # Values the run config refuses are found when the file loads, not at some trial:
        ("fixed:\n  optim.epochs: -2\n",
         r"bad.yaml: fixed: optim.epochs: OptimConfig: epochs = -2: should be greater"),
        ("search:\n  model.num_layers: {type: float, low: 2, high: 8}\n",
         r"bad.yaml: search: model.num_layers: ModelConfig: num_layers = 3\.9\d*: should be a "
         r"valid integer"),
        ("search:\n  model.dropout: {type: categorical, choices: [0.1, 1.5]}\n",
         r"bad.yaml: search: model.dropout: ModelConfig: dropout = 1.5: should be less than 1"),
        # The data load once per study: a searched data option would be recorded, not used.
        ("search:\n  data.options.ring_size: {type: categorical, choices: [10, 30]}\n",
         r"bad.yaml: search: data.options.ring_size: a study loads its data once.*'fixed:'"),
        ("search:\n  data.name: {type: categorical, choices: [cora, citeseer]}\n",
         r"bad.yaml: search: data.name: a study loads its data once"),
        ("search:\n  model.num_layers: {type: int, low: 2, high: 8, step: 0}\n",
         r"bad.yaml: search: model.num_layers: step must be an integer > 0 \(got 0\)"),
        ("search:\n  model.hidden: {type: int, low: 8, high: 64, step: 8, log: true}\n",
         r"bad.yaml: search: model.hidden: a log scale takes no step"),
        ("search:\n  optim.lr: {type: float, low: 0.001, high: 0.1, step: 0.01, log: true}\n",
         r"bad.yaml: search: optim.lr: a log scale takes no step"),
        ("final: {runs: 2, seeds: 41}\n", r"bad.yaml: final: seeds must be a list of integers"),
        ("final: {runs: 0}\n", r"bad.yaml: final: runs must be an integer ≥ 1 \(got 0\)"),
        ("final: {runs: 3, seeds: [1, 2]}\n", r"bad.yaml: final: runs: 3 but 2 seeds"),
        ("final: {seeds: [1, 1]}\n", r"bad.yaml: final: seeds \[1, 1\] repeat a seed"),
        # dgl.seed takes a C int: 2**31 would fail in the final runs, after the whole search.
        ("final: {seeds: [2147483648]}\n",
         r"bad.yaml: final: seeds must be a list of integers from 0 to 2147483647"),
        # Every model has parameters: a budget of 0 would prune every trial of the study.
        ("max_params: 0\n", r"bad.yaml: max_params: must be a positive integer"),
        ("max_params: -5\n", r"bad.yaml: max_params: must be a positive integer"),
        # weight_decay = 0 is a valid value: Optuna would refuse the log scale at a trial.
        ("search:\n  optim.weight_decay: {type: float, low: 0, high: 1.0e-3, log: true}\n",
         r"bad.yaml: search: optim.weight_decay: log scale needs low > 0 \(got 0"),
        # Not an option: it must not set options["ring"] without a word.
        ("fixed:\n  data.options.ring.size: 6\n",
         r"bad.yaml: fixed: data.options.ring.size: data has no field 'options.ring.size'"),
        # YAML keeps the last of two equal keys: the first section was silently dropped.
        ("fixed:\n  optim.epochs: 2\nfixed:\n  optim.lr: 0.1\n",
         r"bad.yaml: not valid YAML: the key 'fixed' is given twice \(first on line 1\).*line 3"),
        ("- fixed\n", r"bad.yaml: the top level must be a mapping of extends, protocol"),
        ("extends: bad.yaml\n", r"bad.yaml: extends: circular inheritance"),
        ("max_params: true\n", r"bad.yaml: max_params: must be a positive integer"),
        ("protocol: ' '\n", r"bad.yaml: protocol: must be a name"),
        ("fixed:\n  model: 8\n", r"bad.yaml: fixed: model: not a run-config path"),
        # It would set model.hidden, not what the file says.
        ("fixed:\n  model.hidden.size: 8\n",
         r"bad.yaml: fixed: model.hidden.size: model has no field 'hidden.size'"),
        ("search:\n  data.cache_dir: {type: categorical, choices: [a, b]}\n",
         r"bad.yaml: search: data.cache_dir: a study loads its data once"),
        ("search:\n  model.hidden: {type: categorical, choices: []}\n",
         r"bad.yaml: search: model.hidden: categorical needs a non-empty list 'choices'"),
        # A misspelt field (lg: log) would be searched on a linear scale without a word.
        ("search:\n  optim.lr: {type: float, low: 1.0e-4, high: 1.0e-1, lg: true}\n",
         r"bad.yaml: search: optim.lr: unknown field\(s\) lg\."),
        ("search:\n  model.dropout: {type: float, low: 0.0, high: 1.5}\n",
         r"bad.yaml: search: model.dropout: ModelConfig: dropout = 1.5: should be less than 1"),
        ("search:\n  model.num_layers: {type: int, low: 2, high: 8, step: true}\n",
         r"bad.yaml: search: model.num_layers: step must be an integer > 0 \(got True\)"),
        ("final: {run: 3}\n", r"bad.yaml: final: unknown key\(s\) run\."),
    ],
)  # fmt: skip
def test_malformed_space_names_file_key_and_reason(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(SpaceError, match=message):
        load_space(str(tmp_path / "bad.yaml"))


def test_a_misspelt_space_name_gets_a_guess():
    with pytest.raises(
        SpaceError,
        match=r"No search space 'tiny_ring_transfr'. Did you mean "
        r"'tiny_ring_transfer'\? Available: amazon_ratings",
    ):
        load_space("tiny_ring_transfr")


def test_each_kind_of_backbone_gets_the_shared_keys_and_its_own():
    assert [backbone_kind(n) for n in ("gcn", "kgcn", "gcn_ssm", "kgcn_ssm", "gcn_platonov",
                                       "gcn_kipf")] == ["plain", "plain", "ssm", "ssm",
                                                        "reference", "reference"]  # fmt: skip
    space = load_space("default")
    shared = {"optim.lr", "optim.weight_decay", "model.hidden", "model.num_layers",
              "model.dropout", "model.norm"}  # fmt: skip
    assert set(space.params("plain")) == shared | {"model.residual"}
    assert set(space.params("ssm")) == shared | {"model.state_scale", "model.input_scale",
                                                 "model.state"}  # fmt: skip
    # A reference baseline has its own norm (and activation): searching it would change nothing.
    assert set(space.params("reference")) == shared - {"model.norm"}
    with pytest.raises(ValueError, match="Unknown backbone kind 'gnn'"):
        space.params("gnn")
    # What a trial asks for, as the runner asks it: the residual knob for plain backbones only.
    for backbone, has_residual in (("gcn", True), ("gcn_ssm", False), ("gcn_platonov", False)):
        trial = optuna.create_study().ask()
        values = space.suggest(trial, backbone_kind(backbone))
        assert ("model.residual" in values) == has_residual
        assert ("model.state_scale" in values) == (backbone == "gcn_ssm")


def test_a_trial_is_asked_for_each_parameter_as_its_space_writes_it(tmp_path):
    (tmp_path / "kinds.yaml").write_text(
        "search:\n"
        "  optim.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}\n"
        "  model.dropout: {type: float, low: 0.0, high: 0.6, step: 0.3}\n"
        "  model.hidden: {type: int, low: 16, high: 256, log: true}\n"
        "  model.num_layers: {type: int, low: 2, high: 8, step: 2}\n"
        "  model.norm: {type: categorical, choices: [null, layer]}\n"
    )
    space = load_space(str(tmp_path / "kinds.yaml"))
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    space.suggest(trial, "plain")
    assert trial.distributions == {
        "optim.lr": FloatDistribution(1e-4, 1e-1, log=True),
        "model.dropout": FloatDistribution(0.0, 0.6, step=0.3),
        "model.hidden": IntDistribution(16, 256, log=True),
        "model.num_layers": IntDistribution(2, 8, step=2),
        "model.norm": CategoricalDistribution([None, "layer"]),
    }


def test_calibration_is_an_ssm_knob(tmp_path):
    (tmp_path / "calibrated.yaml").write_text(
        "ssm:\n  model.calibrate: {type: categorical, choices: [null, 1.0]}\n"
    )
    space = load_space(str(tmp_path / "calibrated.yaml"))
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    values = space.suggest(trial, "ssm")
    assert values["model.calibrate"] in (None, 1.0)
    assert "model.calibrate" not in space.params("plain")


@pytest.mark.parametrize("path", sorted(SPACES.glob("*.yaml")), ids=lambda p: p.stem)
def test_plain_and_ssm_twins_get_the_same_structural_knobs(path):
    space = load_space(path.stem)
    # Each kind adds only the knobs only it has; depth, width, norm, dropout are shared.
    assert set(space.plain) <= {"model.residual"} and set(space.ssm) <= SSM_KEYS
    if path.stem not in REFERENCE_SPACES:
        assert space.plain == {"model.residual": {"type": "categorical",
                                                  "choices": [False, True]}}  # fmt: skip
    for key in ("model.num_layers", "model.hidden", "model.norm", "model.dropout"):
        assert key not in space.plain and key not in space.ssm


@pytest.mark.parametrize("dataset", HETEROPHILY)
def test_heterophily_spaces_offer_the_skip_connection_and_platonovs_protocol(dataset):
    space = load_space(find_space("gcn_ssm", dataset))
    assert space.name == dataset and space.protocol == "heterophily"
    assert space.fixed["model.norm"] == "layer" and "model.norm" not in space.params("plain")
    assert space.params("plain")["model.residual"]["choices"] == [False, True]
    assert "model.residual" not in space.params("ssm")
    assert space.final["runs"] == 10
    platonov = load_space(find_space("gcn_platonov", dataset))
    assert platonov.name == f"gcn_platonov__{dataset}" and platonov.protocol == "heterophily"
    assert platonov.params("reference") == {
        "model.num_layers": {"type": "categorical", "choices": [1, 2, 3, 4, 5]},
        "optim.lr": {"type": "categorical", "choices": [3.0e-5, 3.0e-4]},
    }
    fixed = {k: platonov.fixed[k] for k in ("model.hidden", "model.dropout", "optim.optimizer",
                                            "optim.weight_decay", "optim.epochs")}  # fmt: skip
    assert fixed == {"model.hidden": 512, "model.dropout": 0.2, "optim.optimizer": "adamw",
                     "optim.weight_decay": 0.0, "optim.epochs": 1000}  # fmt: skip
    assert "optim.patience" not in platonov.fixed  # the best of all 1000 steps, as theirs


def test_protocol_tags_of_the_shipped_spaces_and_suites():
    for name in ("gpp_sssp", "gpp_eccentricity", "gpp_diameter"):
        assert load_space(name).protocol == "gpp"
    for name in ("cora", "ring_transfer", "default"):
        assert load_space(name).protocol is None
    for name in ("peptides_func", "peptides_struct"):
        space = load_space(name)
        assert (space.protocol, space.max_params) == ("lrgb", 500_000)
    quick = suite_studies("quick")
    assert quick and all(load_space(space).protocol == "smoke" for _, _, space, _ in quick)
    paper = {(b, d): t for b, d, _, t in suite_studies("paper")}
    assert {d for b, d in paper if b == "gcn_platonov"} == set(HETEROPHILY)
    assert all(paper[("gcn_platonov", d)] == 10 for d in HETEROPHILY)  # the 10-point grid


def test_trials_are_told_their_validation_score_never_their_test_score(tmp_path, monkeypatch):
    # Telling Optuna the test score would search on the test set; nothing noticed it.
    import dataclasses

    real = runner.train
    monkeypatch.setattr(runner, "train", lambda config, **kw: dataclasses.replace(
        real(config, **kw), test=0.987))  # fmt: skip
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = SweepSpec("gcn_ssm", "ring_transfer", trials=3, storage=storage,
                     space=tiny_space(tmp_path), pruner="none", final=False)  # fmt: skip
    run_sweep(spec, log=lambda *_: None)
    trials = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert all(t.value == t.user_attrs["val"] != 0.987 for t in trials)


def test_a_space_that_changes_its_parents_values_does_not_inherit_its_protocol(tmp_path):
    # A pilot of the GPP protocol (2 epochs, 64 training graphs) was ranked beside the
    # published GPP numbers: the protocol came with `extends:`.
    def child(name, text):
        (tmp_path / f"{name}.yaml").write_text(f"extends: gpp_sssp\n{text}")
        return load_space(str(tmp_path / f"{name}.yaml"))

    same = child("same", "")  # nothing changed: the protocol is the parent's
    assert (same.protocol, same.protocol_note) == ("gpp", None)
    pilot = child("pilot", "fixed: {data.options.sizes: [64, 16, 32], optim.epochs: 2}\n")
    assert pilot.protocol is None
    assert pilot.protocol_note.startswith("pilot.yaml changes fixed of gpp_sssp, which follows "
                                          "the 'gpp' protocol")  # fmt: skip
    assert pilot.protocol_note.endswith("say so in the file: protocol: gpp")
    budget = child("budget", "max_params: 100000\n")  # a budget the protocol does not set
    assert budget.protocol is None and "changes max_params of gpp_sssp" in budget.protocol_note
    grid = child("grid", "search: {model.hidden: {type: categorical, choices: [10]}}\n"
                 "final: {runs: 2}\n")  # fmt: skip
    assert grid.protocol is None and "changes search, final of gpp_sssp" in grid.protocol_note
    kept = child("kept", "protocol: gpp\nfinal: {runs: 4, seeds: [41, 95, 12, 36]}\n")
    assert (kept.protocol, kept.protocol_note) == ("gpp", None)  # the user's own statement
    # A smoke budget stays one; the shipped children of a protocol change nothing.
    (tmp_path / "smoky.yaml").write_text("extends: tiny_ring_transfer\nfixed: {optim.epochs: 9}\n")
    assert load_space(str(tmp_path / "smoky.yaml")).protocol == "smoke"
    assert load_space("gcn_platonov__minesweeper").protocol == "heterophily"


def test_a_sweep_says_why_its_space_follows_no_protocol(tmp_path):
    (tmp_path / "parent.yaml").write_text(TINY_SPACE.format(epochs=3, graphs=60).replace(
        "protocol: smoke", "protocol: gpp"))  # fmt: skip
    (tmp_path / "child.yaml").write_text("extends: parent\nfixed: {optim.epochs: 1}\n")
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = SweepSpec("gcn_ssm", "ring_transfer", trials=1, storage=storage,
                     space=str(tmp_path / "child.yaml"), pruner="none", final=False)  # fmt: skip
    lines = []
    run_sweep(spec, log=lines.append)
    assert lines[0].startswith("gcn_ssm__ring_transfer: child.yaml changes fixed of parent")
    study = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=storage)
    assert study.user_attrs.get("protocol") is None and len(study.trials) == 1


def test_a_study_of_a_space_that_lost_its_inherited_protocol_is_resumed_and_retagged(tmp_path):
    # Made before the rule: its identity holds the parent's protocol. Resuming it must not
    # be refused as "your space changed", and it must stop claiming that protocol.
    (tmp_path / "parent.yaml").write_text(TINY_SPACE.format(epochs=3, graphs=60).replace(
        "protocol: smoke", "protocol: gpp"))  # fmt: skip
    child = tmp_path / "child.yaml"
    child.write_text("extends: parent\nprotocol: gpp\nfixed: {optim.epochs: 1}\n")  # as before
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = SweepSpec("gcn_ssm", "ring_transfer", trials=1, storage=storage, space=str(child),
                     pruner="none", final=False)  # fmt: skip
    run_sweep(spec, log=lambda *_: None)
    study = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=storage)
    assert study.user_attrs["protocol"] == "gpp"
    child.write_text("extends: parent\nfixed: {optim.epochs: 1}\n")  # now: no protocol
    spec.trials = 2
    run_sweep(spec, log=lambda *_: None)
    study = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=storage)
    assert len(study.trials) == 2 and study.user_attrs["protocol"] is None
    other = tmp_path / "other.yaml"  # a real change is still refused
    other.write_text("extends: parent\nfixed: {optim.epochs: 2}\n")
    with pytest.raises(StudyMismatch, match="another search space"):
        run_sweep(dataclasses.replace(spec, space=str(other)), log=lambda *_: None)


def test_the_gpp_data_version_is_the_one_the_published_numbers_use():
    from dgl_ssm_bench.datasets import gpp

    assert (gpp.GENERATOR, gpp.CACHE_VERSION) == ("pna", 2)
    assert data_version("gpp_sssp") == "pna-v2" == GPP_DATA
    assert data_version("ring_transfer") == "drew-v2" and data_version("minesweeper") is None


def test_validate_builds_the_backbone_with_the_fixed_values(tmp_path):
    path = tmp_path / "fixed_residual.yaml"
    path.write_text("fixed:\n  model.residual: true\n  optim.epochs: 1\n")
    validate(SweepSpec("gcn", "ring_transfer", space=str(path)))  # plain: takes it
    with pytest.raises(ValueError, match="--residual is a plain-model option"):
        validate(SweepSpec("gcn_ssm", "ring_transfer", space=str(path)))
    with pytest.raises(ValueError, match="fixed reference architecture"):
        validate(SweepSpec("gcn_platonov", "minesweeper", space=str(path)))


def test_every_categorical_choice_is_tried_before_any_trial_runs(tmp_path):
    # A misspelt choice used to start the sweep and fail only the trials that drew it.
    (tmp_path / "mine.yaml").write_text(
        "extends: tiny_ring_transfer\n"  # a shipped space, by name, from a folder of one's own
        "search:\n  model.norm: {type: categorical, choices: [none, layer, btach]}\n"
        "ssm:\n  model.state: {type: categorical, choices: [identity, ortho]}\n"
    )
    spec = SweepSpec("gcn_ssm", "ring_transfer", space=str(tmp_path / "mine.yaml"))
    with pytest.raises(SpaceError, match=r"'mine', model.norm = 'btach': Unknown norm"):
        validate(spec)
    (tmp_path / "mine.yaml").write_text(
        "extends: tiny_ring_transfer\n"
        "ssm:\n  model.state: {type: categorical, choices: [identity, ortho]}\n"
    )
    with pytest.raises(SpaceError, match=r"model.state = 'ortho': Unknown state matrix kind"):
        validate(spec)
    validate(SweepSpec("gcn", "ring_transfer", space=str(tmp_path / "mine.yaml")))  # no Λ


def test_a_null_in_a_child_space_removes_its_parents_entry(tmp_path):
    (tmp_path / "base.yaml").write_text("fixed: {optim.epochs: 5, optim.lr: 0.01}\n")
    (tmp_path / "child.yaml").write_text("extends: base\nfixed: {optim.epochs: null}\n")
    assert load_space(str(tmp_path / "child.yaml")).fixed == {"optim.lr": 0.01}
    # The same for a budget or a protocol ("or null", as the errors say).
    (tmp_path / "open.yaml").write_text("extends: peptides_func\nmax_params: null\n"
                                        "protocol: null\n")  # fmt: skip
    space = load_space(str(tmp_path / "open.yaml"))
    assert (space.max_params, space.protocol) == (None, None)


def test_a_space_extends_its_own_folder_first_then_the_shipped_spaces(tmp_path):
    (tmp_path / "cora.yaml").write_text("fixed:\n  optim.epochs: 7\n")
    (tmp_path / "mine.yaml").write_text("extends: cora\n")
    assert load_space(str(tmp_path / "mine.yaml")).fixed == {"optim.epochs": 7}
    (tmp_path / "cora.yaml").unlink()
    assert load_space(str(tmp_path / "mine.yaml")).fixed == load_space("cora").fixed
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.yaml").write_text("fixed:\n  optim.epochs: 5\n")
    (tmp_path / "rel.yaml").write_text("extends: sub/base.yaml\n")  # relative to the file
    assert load_space(str(tmp_path / "rel.yaml")).fixed == {"optim.epochs": 5}


def test_a_sweep_says_when_each_trial_starts_and_with_what(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = SweepSpec("gcn_ssm", "ring_transfer", trials=2, storage=storage,
                     space=tiny_space(tmp_path), pruner="none")  # fmt: skip
    lines = []
    run_sweep(spec, log=lines.append)
    study = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=storage)
    assert [trial.number for trial in study.trials] == [0, 1]
    for trial in study.trials:
        started = [i for i, line in enumerate(lines) if f"trial {trial.number} started" in line]
        done = [i for i, line in enumerate(lines) if f"trial {trial.number} accuracy" in line]
        assert len(started) == 1 and len(done) == 1 and started[0] < done[0]
        for key, value in trial.params.items():
            shown = f"{value:.3g}" if isinstance(value, float) else str(value)
            assert f"{key.split('.')[-1]}={shown}" in lines[started[0]]


def test_the_final_runs_use_this_sweeps_device_not_the_best_trials(tmp_path):
    import sqlite3

    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = SweepSpec("gcn_ssm", "ring_transfer", trials=1, storage=storage, device="cpu",
                     space=tiny_space(tmp_path), pruner="none", final=False)  # fmt: skip
    run_sweep(spec, log=lambda *_: None)
    # As if the trials had run on a GPU machine and the study were finished on this one.
    with sqlite3.connect(tmp_path / "optuna.db") as db:
        changed = db.execute(
            "UPDATE trial_user_attributes SET value_json = "
            'replace(value_json, \'"device": "cpu"\', \'"device": "cuda"\') '
            "WHERE key = 'config'"
        ).rowcount
    assert changed == 1
    spec.final = True
    lines = []
    final = run_sweep(spec, log=lines.append)
    assert final is not None and None not in final["values"], lines
    assert final["devices"] == ["cpu", "cpu"]  # where they ran, recorded per run


def test_an_interrupted_final_evaluation_resumes_where_it_stopped(tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = SweepSpec("gcn_ssm", "ring_transfer", trials=1, storage=storage,
                     space=tiny_space(tmp_path), pruner="none")  # fmt: skip
    trained = []
    real_train = runner.train

    def train_then_stop(config, **kwargs):
        if trained and len(trained) == 2:  # the trial, final run 1, then Ctrl-C in run 2
            raise KeyboardInterrupt
        trained.append(config.seed)
        return real_train(config, **kwargs)

    monkeypatch.setattr(runner, "train", train_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, log=lambda *_: None)
    assert len(trained) == 2
    monkeypatch.setattr(runner, "train", lambda config, **kw: trained.append(config.seed)
                        or real_train(config, **kw))  # fmt: skip
    lines = []
    final = run_sweep(spec, log=lines.append)
    assert trained[2:] == [2]  # only final run 2 (seed 2: the seeds after the search's 0)
    assert len(final["values"]) == 2 and None not in final["values"]
    assert final["devices"] == ["cpu", "cpu"]  # run 1's device kept through the resume
    assert any("final run 2/2 (seed 2): test" in line for line in lines)


def test_a_ctrl_c_that_c_code_turns_into_another_error_still_requeues_the_trial(
    tmp_path, monkeypatch
):
    """SIGINT inside a C extension can come back as some other exception (a callback's
    KeyboardInterrupt re-raised as a RuntimeError): the trial was interrupted, not failed."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = SweepSpec("gcn_ssm", "ring_transfer", trials=1, storage=storage,
                     space=tiny_space(tmp_path), pruner="none")  # fmt: skip

    def interrupted_in_c(config, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises here, as it would inside the C call
        except KeyboardInterrupt:
            raise RuntimeError("DGL callback failed") from None
        raise AssertionError("SIGINT was not delivered")

    monkeypatch.setattr(runner, "train", interrupted_in_c)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, log=lambda *_: None)
    trials = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]  # re-queued
    assert trials[0].user_attrs["status"] == "interrupted"
    assert trials[1].params == trials[0].params


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
    assert "model.residual" not in study.best_trial.params  # an SSM backbone
    # Where each trial ran, not only what was asked for ("auto").
    assert config["device"] == "auto"
    assert {t.user_attrs["device"] for t in study.trials} == {"cpu"}
    # What the leaderboard needs to know what the numbers may be compared with.
    assert (study.user_attrs["space"], study.user_attrs["protocol"]) == ("tiny", "smoke")
    assert study.user_attrs["data_version"] == "drew-v2"  # classes balanced per split
    # Resuming asks for more trials and keeps the first three.
    first_params = [t.params for t in study.trials]
    spec.trials = 4
    run_sweep(spec, log=lambda *_: None)
    again = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=storage)
    assert len(again.trials) == 4
    assert [t.params for t in again.trials[:3]] == first_params


def test_the_final_numbers_are_the_mean_and_sample_std_of_the_runs(tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = SweepSpec("gcn_ssm", "ring_transfer", trials=1, storage=storage,
                     space=tiny_space(tmp_path), pruner="none", final=False)  # fmt: skip
    run_sweep(spec, log=lambda *_: None)
    scores = iter([0.5, 0.7])
    monkeypatch.setattr(
        runner,
        "train",
        lambda config, data, **_: SimpleNamespace(test=next(scores), status="ok", device="cpu"),
    )
    final = runner.final_evaluation(spec, log=lambda *_: None)
    # Worked by hand: mean (0.5 + 0.7) / 2; sample std √((0.1² + 0.1²) / (2 − 1)).
    assert final["values"] == [0.5, 0.7]
    assert final["mean"] == pytest.approx(0.6) and final["std"] == pytest.approx(0.02**0.5)


def test_final_runs_take_the_spaces_seeds_and_a_split_each(
    tmp_path, monkeypatch, data_dir, cache_dir
):
    """Run i of the final evaluation: the space's i-th seed and, on a dataset with ten fixed
    splits (Minesweeper), split i; the best trial's configuration otherwise."""
    space = tmp_path / "node.yaml"
    space.write_text("protocol: smoke\n"
                     "fixed: {model.hidden: 4, model.num_layers: 1, optim.epochs: 1}\n"
                     "search: {optim.lr: {type: float, low: 1.0e-3, high: 1.0e-2}}\n"
                     "final: {runs: 3, seeds: [7, 3, 5]}\n")  # fmt: skip
    spec = SweepSpec("gcn", "minesweeper", trials=1, storage=f"sqlite:///{tmp_path}/o.db",
                     space=str(space), pruner="none", final=False, data_dir=str(data_dir),
                     cache_dir=str(cache_dir))  # fmt: skip
    run_sweep(spec, log=lambda *_: None)
    seen = []

    def fake_train(config, data, **_):  # (on_epoch: the final runs' Ctrl-C check)
        seen.append((config.seed, config.data.split, config.optim.lr))
        return SimpleNamespace(test=0.5, status="ok", device="cpu")

    monkeypatch.setattr(runner, "train", fake_train)
    final = runner.final_evaluation(spec, log=lambda *_: None)
    best_lr = final["params"]["optim.lr"]
    assert seen == [(7, 0, best_lr), (3, 1, best_lr), (5, 2, best_lr)]
    assert final["seeds"] == [7, 3, 5]

    def final_seeds(name, text):
        """The seeds of the final runs of a sweep on a space file of ``text``."""
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        other = dataclasses.replace(
            spec, space=str(path), storage=f"sqlite:///{tmp_path}/{name}.db"
        )
        monkeypatch.undo()
        run_sweep(other, log=lambda *_: None)
        monkeypatch.setattr(runner, "train", fake_train)
        seen.clear()
        final = runner.final_evaluation(other, log=lambda *_: None)
        assert [seed for seed, _, _ in seen] == final["seeds"]
        return final["seeds"]

    def with_final(line):
        return space.read_text().replace("final: {runs: 3, seeds: [7, 3, 5]}", line)

    # Without seeds in the space: those after the search's (0), so no final run repeats the
    # trial that won (seed 0 on split 0), whose test score the search picked.
    assert final_seeds("other", with_final("final: {runs: 2}")) == [1, 2]
    # Seeds without runs: one run per seed, all four (not the default three runs).
    four = with_final("final: {seeds: [41, 95, 12, 35]}")
    assert final_seeds("four", four) == [41, 95, 12, 35]
    # A space that extends one with seeds may ask for fewer runs: the first seeds.
    assert final_seeds("two", f"extends: {tmp_path / 'four.yaml'}\nfinal: {{runs: 2}}\n") == [
        41,
        95,
    ]


def test_a_lower_is_better_metric_is_minimised_and_its_lowest_trial_is_evaluated(
    tmp_path, cache_dir
):
    space = tmp_path / "gpp.yaml"
    space.write_text("protocol: smoke\n"
                     "fixed: {data.options.sizes: [40, 10, 10], model.hidden: 4,\n"
                     "        model.num_layers: 2, optim.epochs: 2}\n"
                     "search: {optim.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}}\n"
                     "final: {runs: 1}\n")  # fmt: skip
    storage = f"sqlite:///{tmp_path}/o.db"
    spec = SweepSpec("gcn", "gpp_sssp", trials=4, storage=storage, space=str(space),
                     pruner="none", cache_dir=str(cache_dir))  # fmt: skip
    final = run_sweep(spec, log=lambda *_: None)
    study = optuna.load_study(study_name="gcn__gpp_sssp", storage=storage)
    assert study.user_attrs["metric"] == "log10_mse" and study.direction.name == "MINIMIZE"
    values = {t.number: t.value for t in study.trials}
    assert len(set(values.values())) == 4  # the trials differ, so the choice matters
    assert final["trial"] == min(values, key=values.get)


def width_space(tmp_path, widths, max_params=None):
    """The tiny space (one epoch, 20 graphs) with model.hidden searched over ``widths``."""
    text = TINY_SPACE.format(epochs=1, graphs=20).replace("  model.hidden: 8\n", "")
    text = text.replace(
        "search:\n", f"search:\n  model.hidden: {{type: categorical, choices: {widths}}}\n"
    )
    if max_params is not None:
        text = text.replace("protocol: smoke\n", f"protocol: smoke\nmax_params: {max_params}\n")
    path = tmp_path / "widths.yaml"
    path.write_text(text)
    return path


def test_each_trial_records_its_own_peak_memory(tmp_path):
    # Trial 0 holds ~0.3 GB of weights, gradients and Adam moments (hidden 3072); trial 1 a
    # few KB. A process-wide high-water mark would give trial 1 trial 0's peak.
    space = width_space(tmp_path, [8, 3072])
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = SweepSpec("gcn_ssm", "ring_transfer", trials=2, storage=storage, space=str(space),
                     pruner="none", final=False, seed=SEED_BIG_FIRST)  # fmt: skip
    run_sweep(spec, log=lambda *_: None)
    trials = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=storage).trials
    assert [t.params["model.hidden"] for t in trials] == [3072, 8]
    big, small = (t.user_attrs["peak_memory_mb"] for t in trials)
    weights_mb = 2 * 3072 * 3072 * 4 / 2**20  # two layers' weight matrices alone
    assert big - small > weights_mb, (big, small)


def test_a_configuration_over_the_parameter_budget_is_refused_with_its_count(tmp_path):
    space = width_space(tmp_path, [8, 64], max_params=2000)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = SweepSpec("gcn_ssm", "ring_transfer", trials=4, storage=storage, space=str(space),
                     pruner="none", final=False)  # fmt: skip
    lines = []
    run_sweep(spec, log=lines.append)
    trials = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=storage).trials
    assert {t.params["model.hidden"] for t in trials} == {8, 64}
    data = get_dataset("ring_transfer", ring_size=6, num_graphs=20)
    for trial in trials:
        hidden = trial.params["model.hidden"]
        # Counted independently: encoder, 2 GraphConv layers (W and bias), linear head.
        count = (data.num_features + 1) * hidden + 2 * (hidden + 1) * hidden
        count += (hidden + 1) * data.num_outputs
        assert trial.user_attrs["parameters"] == count
        if hidden == 64:  # 64·… > 2000: refused before training
            assert trial.state == TrialState.PRUNED and "epochs" not in trial.user_attrs
            assert trial.user_attrs["status"] == "over_budget"
            assert f"{count:,} trainable parameters" in trial.user_attrs["error"]
            assert "budget of 2,000" in trial.user_attrs["error"]
        else:
            assert trial.state == TrialState.COMPLETE and count <= 2000
    assert any("over the space's budget" in line for line in lines)


def test_a_bad_budget_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("max_params: -5\n")
    with pytest.raises(SpaceError, match="max_params: must be a positive integer"):
        load_space(str(path))


def test_the_leaderboard_lists_a_finished_sweep(tmp_path):
    from dgl_ssm_sweeps.leaderboard import build_leaderboard

    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = SweepSpec("kgcn_ssm", "ring_transfer", trials=2, storage=storage,
                     space=tiny_space(tmp_path), pruner="none")  # fmt: skip
    final = run_sweep(spec, log=lambda *_: None)
    files = build_leaderboard(storage, tmp_path / "board")
    table = files["leaderboard.md"].read_text()
    row = next(line for line in table.splitlines() if line.startswith("| kGCN-SSM |"))
    assert f"{final['mean']:.4f} ± {final['std']:.4f}" in row and "(n=2, smoke)" in row
    assert "**Smoke-size budget, not a reproduction.**" in table  # the tiny space is smoke
    assert "ring_transfer (accuracy ↑)" in table


def test_bad_input_is_one_line(tmp_path, capsys):
    space = tiny_space(tmp_path)
    cases = [
        (["--backbone", "gcn_sm", "--dataset", "cora"], "Unknown model 'gcn_sm'"),
        (["--backbone", "gcn", "--dataset", "kora"], "Unknown dataset 'kora'"),
        (["--backbone", "gcn", "--dataset", "cora", "--storage", "foo://x"], "Cannot open"),
        (["--backbone", "gcn", "--dataset", "ring_transfer", "--space", space, "--storage",
          "postgresql://u:secret@127.0.0.1:1/db"], "Cannot open storage"),
        # Common slips get the form that works:
        (["--backbone", "gcn", "--dataset", "cora", "--storage", "sqlite://runs/x.db"],
         "A storage URL is sqlite:///relative/path.db, sqlite:////absolute/path.db"),
        (["--backbone", "gcn", "--dataset", "cora", "--storage", "/tmp/x.db"],
         "For a SQLite file at that path: sqlite:////tmp/x.db"),
        (["--backbone", "gcn", "--dataset", "cora", "--storage", "postgres://u:secret@h/x"],
         "spells the scheme postgresql://"),
        (["--backbone", "gcn", "--dataset", "cora", "--storage", "mysql://u:secret@h/x"],
         "MySQL storage needs a driver the project does not install: pip install mysqlclient"),
        # In memory, the study would vanish with the sweep (and its results with it).
        (["--backbone", "gcn", "--dataset", "cora", "--storage", "sqlite:///:memory:"],
         "is an in-memory SQLite database: the study would be lost"),
        (["--backbone", "gcn", "--dataset", "cora", "--storage", "sqlite://"], "in-memory"),
        (["--backbone", "gcn", "--dataset", "cora", "--heartbeat", "0"],
         "--heartbeat must be at least 1"),
        (["--backbone", "gcn", "--dataset", "cora", "--heartbeat", "99999999999999999999"],
         "--heartbeat must be at most 86400 s"),  # a date overflow in every heartbeat thread
    ]  # fmt: skip
    for text in ("", "fixed: {}\n", "final: {runs: 3}\n"):  # one trial of every default
        empty = tmp_path / f"empty{len(cases)}.yaml"
        empty.write_text(text)
        cases.append((["--backbone", "gcn", "--dataset", "cora", "--space", str(empty)],
                      "the space is empty: it fixes and searches nothing"))  # fmt: skip
    for argv, message in cases:
        assert sweep_main([*argv, "--trials", "1"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "secret" not in err


@pytest.mark.slow
def test_killed_worker_loses_nothing_and_its_trial_is_retried(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    command = sweep_command(tiny_space(tmp_path, epochs=200), storage, 3,
                            "--heartbeat", "1", "--no-final")  # fmt: skip
    worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 400
        killed = None
        while killed is None and time.time() < deadline:
            time.sleep(0.5)
            trials = _trials_now(storage)
            if trials is None or not _a_completed_and_a_running_trial(trials):
                continue
            # Stopped, the worker commits nothing more: the state read now is the one the kill
            # leaves (the trial seen running a moment ago may have ended since).
            os.kill(worker.pid, signal.SIGSTOP)
            trials = _trials_now(storage)
            if trials is not None and _a_completed_and_a_running_trial(trials):
                os.kill(worker.pid, signal.SIGKILL)
                killed = next(t for t in trials if t.state == TrialState.RUNNING)
                completed = {t.number: (t.params, t.value) for t in trials
                             if t.state == TrialState.COMPLETE}  # fmt: skip
            else:
                os.kill(worker.pid, signal.SIGCONT)
        assert killed is not None, "never saw a completed and a running trial together"
    finally:  # (stopped, or still running should an assertion fail)
        worker.kill()
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


def _trials_now(storage):
    """The study's trials, or None while it does not exist yet (or its file is locked)."""
    try:
        return optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=storage).trials
    except Exception:  # noqa: BLE001
        return None


def _a_completed_and_a_running_trial(trials):
    # (running with its parameters: a trial is asked, then given them, under the study's lock)
    running = [t for t in trials if t.state == TrialState.RUNNING]
    return any(t.state == TrialState.COMPLETE for t in trials) and (
        len(running) == 1 and running[0].params
    )


POSTGRES = postgres_url()


@pytest.mark.skipif(
    not POSTGRES and not os.environ.get("CI"),
    reason="set DGL_SSM_TEST_POSTGRES=postgresql://… (CI starts a server and sets it)",
)
@pytest.mark.slow
def test_two_workers_on_an_empty_postgres_database_share_one_study(tmp_path):
    assert POSTGRES, "CI must start PostgreSQL and set DGL_SSM_TEST_POSTGRES (see .ci/run)"
    fresh_postgres_database(POSTGRES)

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
    ran = [sum("accuracy val" in line for line in out.splitlines()) for out, _ in outputs]
    assert sum(ran) == 8


def test_suite_options_without_a_suite_are_refused_not_ignored(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/none.db"
    argv = ["--storage", storage, "--out", str(tmp_path / "board"), "--workers", "0",
            "--device", "cuda"]  # fmt: skip
    assert leaderboard_main(argv) == 2
    err = capsys.readouterr().err
    assert "--workers, --device only apply with --suite" in err and err.count("\n") == 1
    assert not (tmp_path / "board").exists() and not (tmp_path / "none.db").exists()


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true",
     "sqlite:///file:x?mode=memory&uri=yes", "sqlite:///file::memory:?uri=true"],
)  # fmt: skip
def test_every_in_memory_sqlite_form_is_refused(url):
    # SQLAlchemy reads uri=yes as on: that form opened a real in-memory study for a while.
    with pytest.raises(StorageError, match="is an in-memory SQLite database"):
        open_storage(url)


def test_a_sweep_does_not_fill_another_programs_sqlite_database(tmp_path):
    import sqlite3

    other = tmp_path / "notes.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE foo (x INTEGER)")
    con.close()
    before = other.read_bytes()
    with pytest.raises(StorageError, match=r"another program's SQLite database \(tables: foo\)"):
        open_storage(f"sqlite:///{other}")
    assert other.read_bytes() == before
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all\n")
    with pytest.raises(StorageError, match="file is not a database"):
        open_storage(f"sqlite:///{text}")
    assert text.read_text() == "not a database at all\n"
    empty = tmp_path / "empty.db"  # an empty file, or an Optuna storage, is fine
    empty.touch()
    no_tables = tmp_path / "versioned.db"  # a database with no table yet is empty too
    with sqlite3.connect(no_tables) as con:
        con.execute("PRAGMA user_version = 1")
    con.close()
    assert no_tables.stat().st_size > 0
    open_storage(f"sqlite:///{no_tables}").get_all_studies()
    open_storage(f"sqlite:///{empty}").get_all_studies()
    open_storage(f"sqlite:///{empty}").get_all_studies()


def test_an_optuna_storage_a_killed_writer_left_with_a_hot_journal_opens(tmp_path):
    # A read-only look cannot roll the journal back; the check must not refuse the file.
    path = tmp_path / "optuna.db"
    optuna.create_study(study_name="x", storage=f"sqlite:///{path}")
    script = (
        "import os, sqlite3, sys\n"
        "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "con.execute('PRAGMA cache_size=1')\n"
        "con.execute('BEGIN')\n"
        "con.execute('CREATE TABLE filler (x BLOB)')\n"
        "con.executemany('INSERT INTO filler VALUES (randomblob(4000))', [()] * 300)\n"
        "os._exit(0)  # killed mid-transaction: the journal stays\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    assert (tmp_path / "optuna.db-journal").is_file()
    storage = open_storage(f"sqlite:///{path}")
    assert [study.study_name for study in storage.get_all_studies()] == ["x"]


@pytest.mark.parametrize("read_only", [False, True])
def test_an_empty_storage_url_is_named_as_such(read_only):
    with pytest.raises(StorageError, match="The storage URL is empty. A storage URL is"):
        open_storage(" ", read_only=read_only)


def test_a_new_storage_in_folders_that_do_not_exist_yet_is_made_with_them(tmp_path):
    open_storage(f"sqlite:///{tmp_path}/runs/quick/optuna.db").get_all_studies()
    assert (tmp_path / "runs" / "quick" / "optuna.db").is_file()


def test_an_error_is_one_line_with_its_type_and_the_drivers_cause():
    try:
        try:
            raise OSError("Connection refused\n\tIs the server running?")
        except OSError as cause:
            raise RuntimeError("could not connect to server\nDETAIL: ...") from cause
    except RuntimeError as error:
        assert storage.one_line(error) == (
            "RuntimeError: could not connect to server (Connection refused)"
        )
        # Optuna's wrapper says only that the commit failed: its cause is the message.
        wrapped = optuna.exceptions.StorageInternalError(
            "An exception is raised during the commit."
        )
        wrapped.__cause__ = error
        assert storage.one_line(wrapped) == storage.one_line(error)
    repeated = ValueError("disk I/O error")
    repeated.__cause__ = OSError("disk I/O error")
    assert storage.one_line(repeated) == "ValueError: disk I/O error"  # said once


def test_a_short_password_is_hidden_in_its_url_not_in_every_word():
    # Replaced everywhere, a password "pw" would turn "pwd" into "***d" all through a message.
    url = "postgresql://u:pw@db/sweeps"
    shown = storage.redact(f"Cannot open {url}: no pwd", url)
    assert shown == "Cannot open postgresql://u:***@db/sweeps: no pwd"


def test_a_missing_postgresql_driver_is_named_with_the_url_that_works(monkeypatch):
    # SQLAlchemy before 2.1 reads postgresql:// with psycopg2, which the extra does not
    # install: the message must point at postgresql+psycopg://, not the extra again.
    url = "postgresql+psycopg2://me:s3cret@127.0.0.1:1/db"
    with pytest.raises(StorageError, match=r"write postgresql\+psycopg://") as error:
        open_storage(url)
    assert "s3cret" not in str(error.value)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # psycopg 3 not installed
    with pytest.raises(StorageError, match=r'pip install "dgl-ssm\[postgres\]"'):
        open_storage("postgresql+psycopg://me@127.0.0.1:1/db")


def test_a_new_sqlite_file_is_the_file_the_driver_will_make(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert new_sqlite_file("sqlite:///runs/x.db") == tmp_path / "runs" / "x.db"
    assert new_sqlite_file(f"sqlite:///file:{tmp_path}/y.db?uri=true") == tmp_path / "y.db"
    # With uri on, a name not starting with file: is a plain name, query and all.
    assert new_sqlite_file("sqlite:///z.db?mode=memory&uri=true") == tmp_path / "z.db?mode=memory"
    (tmp_path / "old.db").touch()
    assert new_sqlite_file("sqlite:///old.db") is None
    assert new_sqlite_file("sqlite://") is None and new_sqlite_file("postgresql://h/db") is None


def test_a_space_with_a_graph_head_on_a_node_dataset_is_refused_before_any_trial(tmp_path):
    space = tmp_path / "readout.yaml"
    space.write_text("fixed:\n  model.readout: sum\n  optim.epochs: 1\n")
    spec = SweepSpec("gcn_ssm", "ring_transfer", trials=1, space=str(space),
                     storage=f"sqlite:///{tmp_path}/optuna.db")  # fmt: skip
    with pytest.raises(SpaceError, match="ring_transfer is a node-level dataset"):
        validate(spec)


def test_the_level_and_metric_known_before_loading_are_the_loaded_ones(data_dir, tmp_path):
    from dgl_ssm_bench.datasets import METRIC, dataset_level, dataset_metric
    from dgl_ssm_bench.metrics import METRICS

    tiny_gpp = {"sizes": (20, 10, 10), "cache_dir": str(tmp_path)}
    local = {"data_dir": data_dir}
    for name, options in [("cora", local), ("citeseer", local), ("minesweeper", local),
                          ("tolokers", local), ("ring_transfer", {"num_graphs": 10}),
                          ("gpp_sssp", tiny_gpp), ("gpp_diameter", tiny_gpp)]:  # fmt: skip
        data = get_dataset(name, **options)
        assert (dataset_level(name), dataset_metric(name)) == (data.level, data.metric), name
    assert set(METRIC) == set(DATASETS) and set(METRIC.values()) <= set(METRICS)


@pytest.mark.parametrize("read_only", [False, True])  # a sweep's storage, the leaderboard's
def test_a_sqlite_url_naming_a_folder_says_so(tmp_path, read_only):
    with pytest.raises(StorageError, match=rf"{tmp_path} .*is a folder; name the SQLite file"):
        open_storage(f"sqlite:///{tmp_path}", read_only=read_only)
    assert list(tmp_path.iterdir()) == []


def test_a_space_that_is_a_folder_or_bad_yaml_is_one_line(tmp_path):
    with pytest.raises(SpaceError, match=rf"--space {tmp_path} is a folder"):
        load_space(str(tmp_path))
    (tmp_path / "bad.yaml").write_text("model:\n  lr: [1, 2\n")
    with pytest.raises(SpaceError) as error:
        load_space(str(tmp_path / "bad.yaml"))
    assert "\n" not in str(error.value) and "line 2, column 7" in str(error.value)


def test_a_folder_named_like_a_space_does_not_hide_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cora").mkdir()
    (tmp_path / "default").mkdir()  # the parent of the shipped spaces
    assert load_space("cora").params("ssm") == load_space(str(SPACES / "cora.yaml")).params("ssm")


def test_a_study_keeps_the_seed_and_pruner_it_was_started_with(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    spec = SweepSpec("gcn_ssm", "ring_transfer", trials=1, storage=storage, seed=7,
                     space=tiny_space(tmp_path), pruner="median", final=False)  # fmt: skip
    run_sweep(spec, log=lambda *_: None)
    lines = []
    run_sweep(dataclasses.replace(spec, trials=2, seed=99, pruner="none"), log=lines.append)
    study = optuna.load_study(study_name=spec.study_name, storage=storage)
    assert study.user_attrs["search_settings"] == {"seed": 7, "pruner": "median"}
    assert len(study.trials) == 2  # continued, not refused
    said = [line for line in lines if "continuing with --seed 99 --pruner none" in line]
    assert len(said) == 1 and "started with --seed 7 --pruner median" in said[0]


@pytest.mark.parametrize(
    "protocol, asked, used, warned",
    [("smoke", None, "median", False), ("null", None, "median", False),
     ("heterophily", None, "none", False), ("heterophily", "median", "median", True),
     ("heterophily", "none", "none", False)],
)  # fmt: skip
def test_a_published_protocol_is_swept_unpruned_unless_asked(
    tmp_path, monkeypatch, protocol, asked, used, warned
):
    """A published protocol (Platonov's grid, the A-DGN grid) trains every configuration to
    its end, so its sweep prunes none by default; a pruner asked for is used, and said to
    cost the study its published numbers."""
    space = tmp_path / "protocol.yaml"
    space.write_text(TINY_SPACE.format(epochs=1, graphs=60).replace(
        "protocol: smoke", f"protocol: {protocol}"))  # fmt: skip
    made = []
    monkeypatch.setattr(runner, "make_pruner", lambda name: made.append(name) or NopPruner())
    storage = f"sqlite:///{tmp_path}/optuna.db"
    lines = []
    run_sweep(SweepSpec("gcn_ssm", "ring_transfer", trials=1, storage=storage, space=str(space),
                        pruner=asked, final=False), log=lines.append)  # fmt: skip
    assert made == [used]
    study = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=storage)
    assert study.user_attrs["search_settings"]["pruner"] == used
    said = [line for line in lines if "protocol trains to their end" in line]
    assert len(said) == warned and all("'heterophily'" in line for line in said)
    # A study with a trial a pruner stopped (here: added by hand, as an older sweep left it)
    # is told, when continued, that it no longer follows a published protocol.
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED,
                                              user_attrs={"status": "pruned"}))  # fmt: skip
    lines.clear()
    run_sweep(SweepSpec("gcn_ssm", "ring_transfer", trials=3, storage=storage, space=str(space),
                        pruner=asked, final=False), log=lines.append)  # fmt: skip
    told = [line for line in lines if "of its trials were pruned" in line]
    assert len(told) == (protocol == "heterophily") and all("new study" in t for t in told)


def test_a_spaces_k_hop_settings_reach_its_k_hop_backbones_only():
    """quick_cora fixes max_hop 2 and past_max_hop "repeat" for the k-hop twins; the one-hop
    twins are built without them (dgl_ssm refuses options a model would ignore)."""
    space = load_space("quick_cora")
    assert space.fixed["model.max_hop"] == 2
    for backbone, khop in (("gcn", False), ("gcn_ssm", False), ("kgcn", True),
                           ("kgcn_ssm", True)):  # fmt: skip
        config = SweepSpec(backbone, "cora", space="quick_cora").trial_config(space, {})
        hops = (config.model.max_hop, config.model.past_max_hop)
        assert hops == ((2, "repeat") if khop else (None, None)), backbone
        validate(SweepSpec(backbone, "cora", space="quick_cora"))  # builds each probe model


@pytest.mark.parametrize("dataset", ["minesweeper", "gpp_sssp"])
def test_a_reference_baseline_is_swept_without_the_spaces_norm_and_activation(dataset):
    """The heterophily spaces fix norm: layer, the GPP ones activation: tanh, for the dgl_ssm
    models; a reference baseline has its own (LN and GELU, or none and ReLU) and refuses
    them, so it is built without them rather than refused."""
    space = SweepSpec("gcn_ssm", dataset).load_space()  # the dgl_ssm models' space
    fixed = {k: v for k, v in space.fixed.items() if k in ("model.norm", "model.activation")}
    assert fixed == {"minesweeper": {"model.norm": "layer"},
                     "gpp_sssp": {"model.activation": "tanh"}}[dataset]  # fmt: skip
    config = SweepSpec("gcn_platonov", dataset).trial_config(space, {})
    assert (config.model.norm, config.model.activation) == (None, "relu")
    validate(SweepSpec("gcn_platonov", dataset))
    twin = SweepSpec("gcn_ssm", dataset).trial_config(space, {})
    assert all(getattr(twin.model, k.split(".")[1]) == v for k, v in fixed.items())


def _space(tmp_path, text):
    (tmp_path / "s.yaml").write_text(text)
    return load_space(str(tmp_path / "s.yaml"))


def test_a_grid_with_a_repeated_choice_takes_each_point_once(tmp_path):
    # space.py grid(): choices [2, 2, 4] × [8] is two distinct points, not three.
    space = _space(
        tmp_path,
        "search:\n"
        "  model.num_layers: {type: categorical, choices: [2, 2, 4]}\n"
        "  model.hidden: {type: categorical, choices: [8]}\n",
    )
    assert space.grid("plain") == [
        {"model.hidden": 8, "model.num_layers": 2},
        {"model.hidden": 8, "model.num_layers": 4},
    ]


def test_values_at_the_edges_are_taken(tmp_path):
    # The message promises "low <= high"; Optuna takes low == high (one value).
    space = _space(
        tmp_path,
        "search:\n  model.dropout: {type: float, low: 0.5, high: 0.5}\n"
        "  model.hidden: {type: int, low: 16, high: 16}\n",
    )
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    assert space.suggest(trial, "plain") == {"model.dropout": 0.5, "model.hidden": 16}
    # dgl.seed takes a C int: 0 to 2**31 - 1 (2**31 is refused, see above).
    seeds = _space(tmp_path, "final: {seeds: [0, 2147483647]}\n").final["seeds"]
    assert seeds == [0, 2147483647]
    # Optuna takes a log scale with step 1 (an int's own step): not refused as "a step".
    space = _space(tmp_path, "search:\n  model.hidden: {type: int, low: 16, high: 64, log: true, "
                   "step: 1}\n")  # fmt: skip
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    assert 16 <= space.suggest(trial, "plain")["model.hidden"] <= 64


@pytest.mark.parametrize("url", ["sqlite:///?uri=true", "sqlite:///file:?uri=true"])
def test_an_empty_sqlite_file_name_is_refused_as_a_database_nothing_outlives(url):
    # SQLite opens an empty file name as a private temporary database, deleted on close:
    # as lost as :memory:, and it must be named so (not "the current folder is a folder").
    with pytest.raises(StorageError, match="is an in-memory SQLite database"):
        open_storage(url)


def test_a_schema_race_that_never_settles_raises_its_last_error(monkeypatch):
    monkeypatch.setattr(storage.time, "sleep", lambda _s: None)
    calls = []

    def always_racing():
        calls.append(1)
        raise RuntimeError(f'relation "studies" already exists ({len(calls)})')

    with pytest.raises(RuntimeError, match=rf"already exists \({OPEN_ATTEMPTS}\)"):
        storage._retrying_schema_races(always_racing)
    assert len(calls) == OPEN_ATTEMPTS  # (a None returned here would be used as a storage)


def test_a_trial_is_declared_dead_after_three_missed_heartbeats(tmp_path):
    # The docstring's contract: a trial is stale after 3 × heartbeat_interval; a grace of one
    # interval would fail (and re-queue, so run twice) a live trial whose beat is a bit late.
    opened = open_storage(f"sqlite:///{tmp_path}/optuna.db", heartbeat_interval=5, max_retry=2)
    assert opened.get_heartbeat_interval() == 5
    assert opened.grace_period == 15


def test_a_section_that_is_not_a_mapping_is_named(tmp_path):
    (tmp_path / "bad.yaml").write_text("search:\n- optim.lr\n")
    with pytest.raises(SpaceError, match=r"bad.yaml: search: must be a mapping"):
        load_space(str(tmp_path / "bad.yaml"))


def test_each_suite_runs_the_studies_its_docs_name():
    twins = ("gcn", "gcn_ssm", "kgcn", "kgcn_ssm")
    # suites.py: "tiny": one study of one short trial.
    assert suite_studies("tiny") == [("gcn_ssm", "ring_transfer", "tiny_ring_transfer", 1)]
    # README: quick tunes GCN, GCN-SSM, kGCN, kGCN-SSM on RingTransfer, GPP-SSSP and Cora, a
    # few trials each (3: the budget its "about 5 minutes" was measured with).
    quick = {(b, d): (s, t) for b, d, s, t in suite_studies("quick")}
    assert quick == {(b, d): (f"quick_{d}", 3) for b in twins
                     for d in ("ring_transfer", "gpp_sssp", "cora")}  # fmt: skip
    # docs/paper.md §4: every dataset of the paper's experiments; 50 trials (README).
    paper = {(b, d): t for b, d, _, t in suite_studies("paper") if b in twins}
    datasets = {"gpp_eccentricity", "gpp_sssp", "gpp_diameter", "ring_transfer", "cora",
                "roman_empire", "amazon_ratings", "minesweeper", "peptides_func",
                "peptides_struct"}  # fmt: skip
    assert paper == {(b, d): 50 for b in twins for d in datasets}


def test_zero_trials_or_workers_are_refused_before_any_storage_is_made(tmp_path, capsys):
    db = tmp_path / "o.db"
    argv = ["--backbone", "gcn_ssm", "--dataset", "ring_transfer", "--space",
            tiny_space(tmp_path), "--storage", f"sqlite:///{db}", "--trials", "0"]  # fmt: skip
    assert sweep_main(argv) == 2  # it exited 0 having run nothing
    assert "--trials must be at least 1" in capsys.readouterr().err
    spec = SweepSpec("gcn_ssm", "ring_transfer", trials=1, storage=f"sqlite:///{db}",
                     space=tiny_space(tmp_path), pruner="none")  # fmt: skip
    with pytest.raises(ValueError, match="--workers must be at least 1"):
        run_sweep(spec, workers=0, log=lambda *_: None)
    with pytest.raises(ValueError, match="--threads must be at least 1"):  # (not the default)
        run_sweep(dataclasses.replace(spec, threads=0), log=lambda *_: None)
    # (the command line's choices; a SweepSpec's misspelt pruner would sweep unpruned)
    with pytest.raises(ValueError, match="Unknown pruner 'medain'"):
        run_sweep(dataclasses.replace(spec, pruner="medain"), log=lambda *_: None)
    assert not db.exists()


def test_a_configuration_exactly_at_the_budget_is_trained(tmp_path):
    data, hidden = get_dataset("ring_transfer", ring_size=6, num_graphs=20), 8
    # Counted by hand as in the budget test: encoder, 2 GraphConv layers, linear head.
    count = (data.num_features + 1) * hidden + 2 * (hidden + 1) * hidden
    count += (hidden + 1) * data.num_outputs
    space = width_space(tmp_path, [hidden], max_params=count)  # only "over" is refused
    url = f"sqlite:///{tmp_path}/optuna.db"
    run_sweep(SweepSpec("gcn_ssm", "ring_transfer", trials=1, storage=url, space=str(space),
                        pruner="none", final=False), log=lambda *_: None)  # fmt: skip
    (trial,) = optuna.load_study(study_name="gcn_ssm__ring_transfer", storage=url).trials
    assert trial.user_attrs["parameters"] == count and trial.state == TrialState.COMPLETE


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_dead_trial_is_retried_three_times_at_most(tmp_path):
    # --heartbeat's help: "a trial silent for 3x this is failed and retried (3 times at most)".
    db = tmp_path / "optuna.db"
    opened = open_storage(f"sqlite:///{db}", heartbeat_interval=1)
    study = optuna.create_study(storage=opened)
    for _ in range(6):
        trial = study.ask()  # the queued retry, else a new trial
        opened.record_heartbeat(trial._trial_id)
        with sqlite3.connect(db) as con:  # its worker died long ago
            con.execute("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'")
        con.close()
        optuna.storages.fail_stale_trials(study)
        if not study.get_trials(states=(TrialState.WAITING,)):
            break
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 4  # the first and 3 retries


def test_a_database_locked_while_workers_start_is_retried(monkeypatch):
    monkeypatch.setattr(storage.time, "sleep", lambda _s: None)
    calls = []

    def locked_once():
        calls.append(1)
        if len(calls) == 1:  # as SQLAlchemy words SQLite's error
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "storage"

    assert storage._retrying_schema_races(locked_once) == "storage"


def test_every_sweep_option_reaches_the_sweep(monkeypatch):
    seen = []
    monkeypatch.setattr(runner, "run_sweep", lambda spec, workers: seen.append((spec, workers)))
    base = ["--backbone", "gcn_ssm", "--dataset", "ring_transfer"]
    argv = [*base, "--trials", "7", "--space", "s.yaml", "--storage", "sqlite:///x.db",
            "--seed", "5", "--pruner", "hyperband", "--heartbeat", "86400",  # a day: allowed
            "--data-dir", "d", "--cache-dir", "c", "--device", "cpu", "--no-final",
            "--workers", "2", "--threads", "1"]  # fmt: skip
    assert sweep_main(argv) == 0 and sweep_main(base) == 0
    assert seen == [
        (SweepSpec("gcn_ssm", "ring_transfer", trials=7, storage="sqlite:///x.db",
                   space="s.yaml", seed=5, pruner="hyperband", heartbeat=86400, data_dir="d",
                   cache_dir="c", device="cpu", final=False, threads=1), 2),
        # The defaults --help states: 20 trials, seed 0, the space's pruner, 30 s heartbeats.
        (SweepSpec("gcn_ssm", "ring_transfer", trials=20, storage="sqlite:///runs/optuna.db",
                   seed=0, pruner=None, heartbeat=30, final=True), 1),
    ]  # fmt: skip


@pytest.mark.parametrize("option", [["--workers", "2"], ["--threads", "1"], ["--seed", "3"],
                                    ["--pruner", "none"], ["--heartbeat", "5"],
                                    ["--data-dir", "d"], ["--cache-dir", "c"],
                                    ["--device", "cpu"], ["--no-final"]])  # fmt: skip
def test_each_suite_only_option_alone_is_refused_without_a_suite(tmp_path, capsys, option):
    argv = ["--storage", f"sqlite:///{tmp_path}/none.db", "--out", str(tmp_path / "b"), *option]
    assert leaderboard_main(argv) == 2
    assert f"{option[0]} only applies with --suite" in capsys.readouterr().err
