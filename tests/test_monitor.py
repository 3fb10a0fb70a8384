"""The training-dynamics monitor: what it records equals dgl_ssm.analysis called directly on
the model as it was at that step."""

import csv
import json
import pickle
import subprocess
import sys
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import dgl
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dgl_ssm_bench.monitor
from dgl_ssm import KHopTransform, build_model
from dgl_ssm.analysis import layer_energies, layer_gradient_norms, layer_inputs, top_singular_values
from dgl_ssm_bench.config import RunConfig
from dgl_ssm_bench.models import build_for
from dgl_ssm_bench.monitor import TrainingMonitor
from dgl_ssm_bench.train import prepare_graph, seed_everything, train
from tests.conftest import tiny_node_task


def config(**model):
    model = {"name": "gcn_ssm", "num_layers": 5, "hidden": 8, **model}
    return RunConfig.from_dict({"model": model, "optim": {"epochs": 3}, "seed": 3})


def model_as_built(run, data):
    """The model and graph of ``run`` before its first step, rebuilt from the same seed."""
    seed_everything(run.seed)
    return build_for(run.model, data), prepare_graph(data.graph, run)


def test_recorded_quantities_equal_the_analysis_of_the_model_at_that_step():
    data, run = tiny_node_task("accuracy"), config()
    monitor = TrainingMonitor(2, layers=[0, 4], spectra="inline")
    result = train(run, data=data, monitor=monitor)
    entries = [h for h in result.history if "grad_norm" in h]
    assert [e["epoch"] for e in entries] == [0, 2] and result.monitored
    # The model at epoch 0's step is the model as built.
    model, graph = model_as_built(run, data)
    feat, labels, train_index = graph.ndata["feat"], graph.ndata["label"], data.splits[0]["train"]

    def loss(out):
        return F.cross_entropy(out[train_index], labels[train_index])

    first = entries[0]
    assert first["grad_norm"] == pytest.approx(
        layer_gradient_norms(model, graph, feat, loss), rel=1e-5
    )
    assert first["energy"] == pytest.approx(layer_energies(model, graph, feat), rel=1e-5)
    calls = layer_inputs(model, graph, feat)
    for index in (0, 4):
        direct = top_singular_values(
            model.layers[index], calls[index].graph, calls[index].feat, k=3
        )
        assert first["singular_values"][str(index)] == pytest.approx(direct.tolist(), rel=1e-3)
    assert entries[1]["grad_norm"] != first["grad_norm"]  # epoch 2 saw the trained weights
    assert len(first["grad_norm"]) == 5 and len(first["energy"]) == 6


def test_a_cumulative_k_hop_model_has_its_spectra_recorded_from_what_each_layer_saw():
    """DRew-style layers read a list of hop graphs and the states so far: the monitor kept
    neither (a list has no .cpu(); the history it held by reference grew to every state)."""
    data = tiny_node_task("accuracy")
    run = config(name="kgcn_ssm", hop_mode="cumulative", num_layers=3)
    monitor = TrainingMonitor(1, layers=[0, 2], spectra="inline")
    result = train(run, data=data, monitor=monitor)
    first = next(h for h in result.history if "grad_norm" in h)
    assert "spectra" not in first  # no failure noted
    model, graph = model_as_built(run, data)
    calls = layer_inputs(model, graph, graph.ndata["feat"])
    for index in (0, 2):
        call = calls[index]
        assert len(call.kwargs["history"]) == index + 1
        direct = top_singular_values(model.layers[index], call.graph, call.feat, k=3,
                                     layer_kwargs=call.kwargs)  # fmt: skip
        assert first["singular_values"][str(index)] == pytest.approx(direct.tolist(), rel=1e-3)


def test_a_k_hop_model_reading_another_hop_field_has_its_energies_on_the_original_edges():
    # The monitor looked for the original edges in edata["hop"] only: a model built with
    # hop_field="d" had its energies taken on the whole rewired graph.
    import dgl
    import torch

    from dgl_ssm import KHopTransform, build_model

    bare = dgl.to_bidirected(dgl.graph((torch.arange(9), torch.arange(1, 10))))  # a path
    feat = torch.randn(10, 3)
    energies = []
    for field in ("hop", "d"):
        torch.manual_seed(0)
        model = build_model("kgcn_ssm", 3, 4, 2, num_layers=3, hop_field=field)
        monitor = TrainingMonitor(1, spectra="off")
        with monitor.watching(model, 0):
            model(KHopTransform(3, hop_field=field)(bare), feat).sum().backward()
        energies.append(monitor.entries[0]["energy"])
    assert energies[1] == pytest.approx(energies[0], rel=1e-6)
    torch.manual_seed(0)
    model = build_model("kgcn_ssm", 3, 4, 2, num_layers=3)
    assert energies[0] == pytest.approx(layer_energies(model, KHopTransform(3)(bare), feat))


def test_checkpointing_records_the_same_gradient_norms():
    data = tiny_node_task("accuracy")
    norms = []
    for checkpoint in (False, True):
        monitor = TrainingMonitor(1, spectra="off")
        train(config(checkpoint=checkpoint, num_layers=9), data=data, monitor=monitor)
        norms.append([e["grad_norm"] for e in monitor.entries])
    assert all(n > 0 for n in norms[1][0]) and len(norms[1]) == 3
    for with_checkpoint, without in zip(norms[1], norms[0]):
        assert with_checkpoint == pytest.approx(without, rel=1e-5)


def test_background_spectra_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = tiny_node_task("accuracy")
    monitor = TrainingMonitor(1, layers=[2], tensorboard=tmp_path / "tb")
    result = train(config(), data=data, monitor=monitor)
    entries = [h for h in result.history if "grad_norm" in h]
    assert len(entries) == 3
    for entry in entries:  # each has its values, or says the helper was busy
        assert len(entry["singular_values"].get("2", [])) == 3 or entry["spectra"] == "skipped"
    # The helper is idle at the first step, so that entry has its values, and they are the
    # analysis of the model as built (rebuilt here from the same seed).
    model, graph = model_as_built(config(), data)
    call = layer_inputs(model, graph, graph.ndata["feat"])[2]
    direct = top_singular_values(model.layers[2], call.graph, call.feat, k=3)
    assert entries[0]["singular_values"]["2"] == pytest.approx(direct.tolist(), rel=1e-3)
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "val/metric", "grad_norm/H1", "energy/H0",
            "singular_value/layer2/1"} <= set(tags)  # fmt: skip
    logged = [e.value for e in events.Scalars("grad_norm/H5")]
    assert logged == pytest.approx([e["grad_norm"][4] for e in entries], rel=1e-6)
    sigma = {e.step: e.value for e in events.Scalars("singular_value/layer2/1")}
    assert sigma[0] == pytest.approx(direct[0].item(), rel=1e-3)


def test_the_commands_record_and_draw_a_monitored_run(tmp_path, data_dir):
    records = tmp_path / "runs.jsonl"
    base = [sys.executable, "-m", "dgl_ssm_cli"]
    run = subprocess.run(
        base + ["run", "--model", "gcn_ssm", "--layers", "3", "--hidden", "8", "--dataset",
                "cora", "--data-dir", str(data_dir), "--epochs", "2", "--monitor", "1",
                "--monitor-layers", "1", "--monitor-spectra", "inline", "--output",
                str(records), "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    record = json.loads(records.read_text().splitlines()[-1])
    assert [len(h["grad_norm"]) for h in record["history"]] == [3, 3]
    assert [len(h["singular_values"]["1"]) for h in record["history"]] == [3, 3]  # inline: each
    draw = subprocess.run(base + ["analyze", "monitor", str(records), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert draw.returncode == 0, draw.stderr
    for name in ("grad_norm", "energy", "singular_values"):
        assert (tmp_path / f"monitor_{name}.png").stat().st_size > 1000
    rows = (tmp_path / "monitor.csv").read_text().splitlines()
    assert f"grad_norm,1,2,{record['history'][1]['grad_norm'][1]}" in rows


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--monitor", "0"], "positive number of epochs"),
        (["--monitor", "1", "--monitor-layers", "7"], "layers 0..2"),
        (["--tensorboard", "tb"], "need --monitor"),
        (["--monitor-spectra", "inline"], "need --monitor"),
        (["--monitor", "1", "--tensorboard", "{file}"], "is a file; give a folder"),
    ],
)
def test_bad_monitor_options_fail_before_any_work(flags, message, tmp_path):
    (tmp_path / "file").touch()
    flags = [flag.format(file=tmp_path / "file") for flag in flags]
    result = subprocess.run(
        [sys.executable, "-m", "dgl_ssm_cli", "run", "--layers", "3", "--dataset", "cora",
         "--data-dir", str(tmp_path / "absent"), "--output", str(tmp_path / "r.jsonl"), *flags],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("where", ["folder", "missing"])
def test_drawing_from_what_is_not_a_records_file_says_what_to_give(tmp_path, where):
    records = tmp_path if where == "folder" else tmp_path / "nope.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "dgl_ssm_cli", "analyze", "monitor", str(records), "--out",
         str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    what = "a folder, not a file" if where == "folder" else "no such file"
    assert f"{records}: {what}" in result.stderr and "--monitor EVERY" in result.stderr


def test_drawing_a_record_without_monitor_entries_says_how_to_get_them(tmp_path):
    records = tmp_path / "plain.jsonl"
    records.write_text(json.dumps({"config": {}, "status": "ok"}) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "dgl_ssm_cli", "analyze", "monitor", str(records), "--out",
         str(tmp_path)], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "--monitor EVERY" in result.stderr


def test_a_monitor_records_one_run_and_a_failing_helper_spares_the_run(monkeypatch):
    data = tiny_node_task("accuracy")
    monitor = TrainingMonitor(1, layers=[0], spectra="inline")

    def broken(job):
        raise RuntimeError("helper out of memory")

    monkeypatch.setattr("dgl_ssm_bench.monitor._singular_values", broken)
    result = train(config(), data=data, monitor=monitor)
    assert result.status == "ok"
    assert len(monitor.entries) == 3  # one an epoch (an empty list would pass the next line)
    assert all(e["spectra"].startswith("failed: RuntimeError") for e in monitor.entries)
    with pytest.raises(ValueError, match="new one"):
        train(config(), data=data, monitor=monitor)


def test_monitor_options_are_checked():
    with pytest.raises(ValueError, match="positive"):
        TrainingMonitor(0)
    with pytest.raises(ValueError, match="spectra"):
        TrainingMonitor(1, spectra="later")
    assert TrainingMonitor(1).chosen_layers(64) == [0, 32, 63]


def test_the_heatmaps_put_layers_up_and_epochs_across(tmp_path, monkeypatch):
    """A record whose ‖∂loss/∂H⁽ℓ⁾‖ is 10^(epoch + 10ℓ): the drawn image must be log10 of it,
    layers as rows (ℓ = 1 at the bottom), epochs as columns in order, each cell centred on
    its epoch and layer."""
    from matplotlib.axes import Axes

    from dgl_ssm_bench.figures import monitor_figures

    epochs, layers = [0, 2, 4], [1, 2, 3]
    history = [{"epoch": e, "grad_norm": [10.0 ** (e + 10 * ell) for ell in layers],
                "energy": [1.0] * 4, "singular_values": {}} for e in epochs]  # fmt: skip
    drawn = []
    show = Axes.imshow
    monkeypatch.setattr(Axes, "imshow", lambda ax, x, **k: drawn.append((x, k)) or show(ax, x, **k))
    monitor_figures({"history": history}, out=tmp_path)
    image, options = drawn[0]
    expected = [[e + 10 * ell for e in epochs] for ell in layers]
    np.testing.assert_allclose(image, expected)
    # epochs 0, 2, 4 (EVERY = 2): cells 2 wide, centred on them (±0.5 put them off their epochs)
    assert options["origin"] == "lower" and options["extent"] == (-1.0, 5.0, 0.5, 3.5)
    # Two epochs, 0 and 4 (EVERY = 4): cells 4 wide.
    drawn.clear()
    monitor_figures({"history": [history[0], {**history[2], "epoch": 4}]}, out=tmp_path)
    assert drawn[0][1]["extent"] == (-2.0, 6.0, 0.5, 3.5)


def _entry(epoch, **changes):
    return {"epoch": epoch, "grad_norm": [1.0, 2.0], "energy": [1.0, 0.5, 0.2],
            "singular_values": {"0": [1.0, 0.9]}, **changes}  # fmt: skip


@pytest.mark.parametrize(
    ("record", "fault"),
    [
        ({"history": None}, "no monitor entries"),
        ({"history": {"epoch": 0}}, "history is dict, not a list"),
        ({"history": [_entry(0), {"grad_norm": [1.0, 2.0], "energy": [1, 1, 1]}]},
         "entry 1 of this record (epoch None) is malformed: epoch None"),
        ({"history": [_entry(0), _entry("one")]}, "epoch 'one' is not an integer"),
        ({"history": [_entry(5), _entry(5)]}, "epoch 5 is not an integer greater than the last"),
        ({"history": [_entry(0, energy="abc")]}, "energy is not a list of numbers"),
        ({"history": [_entry(0), _entry(1, energy=[1.0])]}, "energy has 1 layers, not 3"),
        ({"history": [_entry(0, grad_norm=None)]}, "grad_norm is not a list of numbers"),
        ({"history": [_entry(0, singular_values={"0": "x"})]}, "singular_values is not"),
        ({"history": [_entry(0, singular_values={"top": [1.0]})]}, "singular_values is not"),
    ],
)  # fmt: skip
def test_a_malformed_monitor_record_is_named_before_anything_is_written(tmp_path, record, fault):
    from dgl_ssm_bench.figures import monitor_figures

    with pytest.raises(ValueError) as error:
        monitor_figures(record, out=tmp_path)
    assert fault in str(error.value) and "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []
    monitor_figures({"history": [_entry(0), _entry(1, energy=[None, 0.5, 0.2])]}, out=tmp_path)


@pytest.mark.parametrize("layer", [-1, 3])
def test_monitor_layers_outside_the_model_are_refused(layer):
    # A 3-layer model has layers 0, 1, 2: --monitor-layers 3 or -1 would otherwise record no
    # spectra at all (the hooks only ever see indices 0..2), silently.
    with pytest.raises(ValueError, match=r"the model has layers 0\.\.2"):
        TrainingMonitor(1, layers=[layer]).chosen_layers(3)
    assert TrainingMonitor(1, layers=[2, 0, 2]).chosen_layers(3) == [0, 2]


def test_tensorboard_gets_the_loss_as_loss_and_the_metric_as_metric(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monitor = TrainingMonitor(1, spectra="off", tensorboard=tmp_path / "tb")
    for epoch, (loss, val) in enumerate([(2.5, 0.25), (1.5, 0.75)]):
        monitor.log_epoch(epoch, loss, val)
    monitor.close()
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([2.5, 1.5])
    assert [e.value for e in events.Scalars("val/metric")] == pytest.approx([0.25, 0.75])


class _DoneWhenSubmitted:
    """An executor whose jobs are done when submitted: the helper, idle again at once."""

    def submit(self, fn, *args):
        future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self):
        pass


def tiny_gcn_ssm():
    graph = dgl.add_self_loop(dgl.to_bidirected(dgl.graph(([0, 1, 2, 3], [1, 2, 3, 4]))))
    torch.manual_seed(0)
    return build_model("gcn_ssm", 3, 4, 2, num_layers=3), graph, torch.randn(5, 3)


def test_background_spectra_resume_once_the_helper_has_finished(monkeypatch):
    # With the helper done with epoch 0's layers by epoch 1, epoch 1 gets its own singular
    # values, not "skipped" (skipping is only for a helper still busy).
    monkeypatch.setattr(TrainingMonitor, "_executor", lambda self: _DoneWhenSubmitted())
    model, graph, feat = tiny_gcn_ssm()
    monitor = TrainingMonitor(1, layers=[1], spectra="background")
    for epoch in range(3):  # no optimiser step: the model stays as built
        with monitor.watching(model, epoch):
            model(graph, feat).sum().backward()
    entries = monitor.close()
    call = layer_inputs(model, graph, feat)[1]
    direct = top_singular_values(model.layers[1], call.graph, call.feat, k=3).tolist()
    assert [e.get("spectra") for e in entries] == [None, None, None]
    for entry in entries:
        assert entry["singular_values"]["1"] == pytest.approx(direct, rel=1e-3)


def test_spectrum_options_given_override_the_default_tolerance(monkeypatch):
    # spectrum_options are laid over the default tol=1e-3: a caller asking for tol=0
    # (ARPACK to machine precision) gets it.
    seen, real = [], dgl_ssm_bench.monitor.top_singular_values
    monkeypatch.setattr(dgl_ssm_bench.monitor, "top_singular_values",
                        lambda *a, **k: seen.append(k["tol"]) or real(*a, **k))  # fmt: skip
    model, graph, feat = tiny_gcn_ssm()
    monitor = TrainingMonitor(1, layers=[0], spectra="inline", spectrum_options={"tol": 0})
    with monitor.watching(model, 0):
        model(graph, feat).sum().backward()
    assert seen == [0] and len(monitor.close()[0]["singular_values"]["0"]) == 3


def test_the_helpers_job_holds_only_the_states_its_layer_saw(monkeypatch):
    # A DRew-style layer l is called with the history H(0)..H(l), a list the model goes on
    # appending to. The job sent to the helper holds a copy of those l + 1 states, not all
    # L + 1 (at 1024 layers on Cora: hundreds of MB pickled for the last layer).
    sizes = []

    def history_length(job):  # the job: (layer, graph, feat, edge_feat, kwargs, k, options)
        sizes.append(len(pickle.loads(job)[4]["history"]))
        return [1.0]

    monkeypatch.setattr(dgl_ssm_bench.monitor, "_singular_values", history_length)
    graph = KHopTransform(4)(dgl.to_bidirected(dgl.graph((torch.arange(9), torch.arange(1, 10)))))
    torch.manual_seed(0)
    model = build_model("kgcn_ssm", 3, 4, 2, num_layers=4, hop_mode="cumulative")
    monitor = TrainingMonitor(1, layers=[0, 2], spectra="inline")
    with monitor.watching(model, 0):
        model(graph, torch.randn(10, 3)).sum().backward()
    assert sizes == [1, 3]


def test_the_monitor_csv_numbers_energies_from_the_input_and_spectra_by_layer(tmp_path):
    """energy[ℓ] is H⁽ℓ⁾ from the input H⁽⁰⁾, grad_norm[ℓ-1] is H⁽ℓ⁾: the CSV's layer column
    must say so, and singular values keep the layer they were taken at (not their rank)."""
    from dgl_ssm_bench.figures import monitor_figures

    history = [{"epoch": 0, "grad_norm": [2.0, 3.0], "energy": [5.0, 6.0, 7.0],
                "singular_values": {"1": [0.9, 0.4]}}]  # fmt: skip
    monitor_figures({"history": history}, out=tmp_path)
    with open(tmp_path / "monitor.csv", newline="") as handle:
        rows = [(r["quantity"], int(r["layer"]), float(r["value"])) for r in csv.DictReader(handle)]
    assert rows == [("grad_norm", 1, 2.0), ("grad_norm", 2, 3.0), ("energy", 0, 5.0),
                    ("energy", 1, 6.0), ("energy", 2, 7.0), ("singular_value", 1, 0.9),
                    ("singular_value", 1, 0.4)]  # fmt: skip


def test_an_index_past_the_last_record_is_a_one_line_error(tmp_path, capsys):
    from dgl_ssm_bench.analyze import main

    records = tmp_path / "runs.jsonl"
    records.write_text(json.dumps({"history": [_entry(0)]}) + "\n")
    out = ["--out", str(tmp_path / "out")]
    assert main(["monitor", str(records), "--index", "1", *out]) == 2  # one record: 0 or -1
    assert f"--index 1: {records} has 1 record(s)" in capsys.readouterr().err
    assert main(["monitor", str(records), "--index", "-1", *out]) == 0


def test_the_last_monitored_record_is_drawn_though_runs_came_after_it(tmp_path, capsys):
    # The file a run appends to: a monitored run, then one without --monitor. Drawing took the
    # last record and said it had no monitor entries, naming neither it nor --index.
    from dgl_ssm_bench.analyze import main

    records = tmp_path / "runs.jsonl"
    monitored = {"history": [_entry(0), _entry(1, grad_norm=[4.0, 8.0])]}
    later = {"history": [{"epoch": 0}]}
    records.write_text("".join(json.dumps(r) + "\n" for r in ({"history": []}, monitored, later)))
    out = tmp_path / "out"
    assert main(["monitor", str(records), "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"record 1 of {records} (records 0..2; the last ")
    with open(out / "monitor.csv", newline="") as handle:
        grads = [float(r["value"]) for r in csv.DictReader(handle) if r["quantity"] == "grad_norm"]
    assert sorted(grads) == [1.0, 2.0, 4.0, 8.0]  # record 1's, both epochs
    assert main(["monitor", str(records), "--index", "-1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"Record -1 of {records} has no monitor entries (record 1 has)" in err
    records.write_text(json.dumps({"history": [{"epoch": 0}]}) + "\n")
    assert main(["monitor", str(records), "--out", str(out)]) == 2
    assert f"None of the 1 record(s) in {records} has monitor entries" in capsys.readouterr().err


def test_a_monitor_takes_a_whole_number_of_epochs_not_a_flag():
    # True is an int to Python: --monitor's value from a config's `monitor: true` was taken as
    # "every epoch" rather than refused.
    with pytest.raises(ValueError, match="positive number of epochs, got True"):
        TrainingMonitor(True)


def test_spectra_off_computes_no_singular_values(monkeypatch):
    # `--monitor-spectra off`: gradient norms and energies only, no helper, no ARPACK.
    monkeypatch.setattr(TrainingMonitor, "_executor", lambda self: _DoneWhenSubmitted())
    monkeypatch.setattr(dgl_ssm_bench.monitor, "_singular_values",
                        lambda job: pytest.fail("spectra computed with spectra off"))  # fmt: skip
    model, graph, feat = tiny_gcn_ssm()
    monitor = TrainingMonitor(1, layers=[0, 2], spectra="off")
    with monitor.watching(model, 0):
        model(graph, feat).sum().backward()
    (entry,) = monitor.close()
    assert entry["singular_values"] == {} and "spectra" not in entry
    assert len(entry["grad_norm"]) == 3 and all(n > 0 for n in entry["grad_norm"])


def test_k_singular_values_are_recorded_as_asked():
    model, graph, feat = tiny_gcn_ssm()
    monitor = TrainingMonitor(1, layers=[1], k=2, spectra="inline")
    with monitor.watching(model, 0):
        model(graph, feat).sum().backward()
    (entry,) = monitor.close()
    call = layer_inputs(model, graph, feat)[1]
    direct = top_singular_values(model.layers[1], call.graph, call.feat, k=3).tolist()
    assert entry["singular_values"]["1"] == pytest.approx(direct[:2], rel=1e-3)  # the top two


def test_a_helper_that_died_is_replaced_and_a_failed_job_is_noted(monkeypatch):
    # Epoch 0: the helper process is gone (killed by the OOM killer); epoch 1: a new one,
    # whose first job fails; epoch 2: its values. Each entry says what became of its spectra.
    class Dead(_DoneWhenSubmitted):
        def submit(self, fn, *args):
            raise BrokenProcessPool("A process in the process pool was terminated abruptly")

    class FirstJobFails(_DoneWhenSubmitted):
        jobs = 0

        def submit(self, fn, *args):
            self.jobs += 1
            if self.jobs > 1:
                return super().submit(fn, *args)
            future = Future()
            future.set_exception(RuntimeError("helper out of memory"))
            return future

    pools = iter([Dead(), FirstJobFails()])
    monkeypatch.setattr(dgl_ssm_bench.monitor, "ProcessPoolExecutor", lambda *a, **k: next(pools))
    model, graph, feat = tiny_gcn_ssm()
    monitor = TrainingMonitor(1, layers=[1], spectra="background")
    for epoch in range(3):
        with monitor.watching(model, epoch):
            model(graph, feat).sum().backward()
    dead, failed, done = monitor.close()
    assert dead["spectra"].startswith("failed: BrokenProcessPool") and not dead["singular_values"]
    assert failed["spectra"] == "failed: RuntimeError: helper out of memory"
    assert "spectra" not in done and len(done["singular_values"]["1"]) == 3


def test_tensorboard_plots_each_states_numbers_at_the_epoch_they_were_taken(tmp_path):
    # grad_norm/H<l> is ‖∂loss/∂H⁽ˡ⁾‖ (l from 1), energy/H<l> the energy of H⁽ˡ⁾ (l from 0),
    # each point at its epoch: here 0 and 2, the model unchanged between them.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model, graph, feat = tiny_gcn_ssm()
    monitor = TrainingMonitor(2, spectra="off", tensorboard=tmp_path / "tb")
    for epoch in (0, 2):
        with monitor.watching(model, epoch):
            model(graph, feat).sum().backward()
    monitor.close()
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    norms = layer_gradient_norms(model, graph, feat, lambda out: out.sum())
    energies = layer_energies(model, graph, feat)
    for name, first, values in (("grad_norm", 1, norms), ("energy", 0, energies)):
        for state, value in enumerate(values, start=first):
            logged = events.Scalars(f"{name}/H{state}")
            assert [e.step for e in logged] == [0, 2], (name, state)
            assert [e.value for e in logged] == pytest.approx([value, value], rel=1e-5)


def test_a_closed_monitor_records_nothing_more():
    model, graph, feat = tiny_gcn_ssm()
    monitor = TrainingMonitor(1, spectra="off")
    monitor.close()
    with pytest.raises(RuntimeError, match="closed: it records one run"):
        with monitor.watching(model, 0):
            model(graph, feat).sum().backward()
    assert monitor.entries == []


def test_closing_the_monitor_ends_its_helper(monkeypatch):
    # A sweep trains run after run in one process: each run's idle helper (a process with
    # torch loaded) must end with its run, not pile up until the sweep exits.
    pools = []

    class Helper(_DoneWhenSubmitted):
        ended = False

        def shutdown(self):
            self.ended = True

    monkeypatch.setattr(dgl_ssm_bench.monitor, "ProcessPoolExecutor",
                        lambda *a, **k: pools.append(Helper()) or pools[-1])  # fmt: skip
    model, graph, feat = tiny_gcn_ssm()
    monitor = TrainingMonitor(1, layers=[1], spectra="background")
    with monitor.watching(model, 0):
        model(graph, feat).sum().backward()
    assert len(monitor.close()[0]["singular_values"]["1"]) == 3
    assert len(pools) == 1 and pools[0].ended
