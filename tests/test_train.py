"""The trainer: the classic Cora check, RingTransfer, determinism and divergence."""

import math
import statistics

import dgl
import pytest
import torch

from dgl_ssm_bench.config import RunConfig
from dgl_ssm_bench.datasets import get_dataset
from dgl_ssm_bench.train import train
from tests.conftest import random_graph, tiny_node_task


def config(**sections):
    return RunConfig.from_dict(sections)


@pytest.fixture(scope="module")
def cora_data(data_dir, cache_dir):
    return get_dataset("cora", data_dir=data_dir, cache_dir=cache_dir)


@pytest.mark.slow
def test_kipf_gcn_reproduces_the_published_cora_accuracy(cora_data):
    """2-layer GCN, 16 hidden, dropout 0.5, lr 0.01, weight decay 5e-4, 200 epochs: 81.5 %."""
    accuracies = []
    for seed in range(5):
        run = config(
            model={"name": "gcn_kipf", "num_layers": 2, "hidden": 16, "dropout": 0.5},
            data={"name": "cora"},
            optim={"lr": 0.01, "weight_decay": 5e-4, "epochs": 200},
            seed=seed,
        )
        result = train(run, data=cora_data)
        assert result.status == "ok" and result.epochs == 200
        accuracies.append(result.test)
    print(f"Kipf GCN on Cora over 5 seeds: {statistics.mean(accuracies):.4f} {accuracies}")
    assert statistics.mean(accuracies) >= 0.79


def ring_config(model, seed=0):
    hops = {"max_hop": 10} if model.startswith("k") else {}  # (one-hop models read none)
    return config(
        model={"name": model, "num_layers": 10, "hidden": 32, **hops},
        data={"name": "ring_transfer", "options": {"ring_size": 20, "num_graphs": 1000}},
        optim={"optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.0, "epochs": 12},
        seed=seed,
    )


@pytest.mark.slow
def test_kgcn_ssm_solves_ring_transfer_at_size_20():
    result = train(ring_config("kgcn_ssm"))
    print(f"kGCN-SSM, RingTransfer n=20, 10 layers: test accuracy {result.test:.3f}")
    assert result.test >= 0.90


def test_same_seed_same_metrics_on_cpu(cora_data):
    run = config(
        model={"name": "gcn_ssm", "num_layers": 4, "hidden": 16, "dropout": 0.5},
        data={"name": "cora"},
        optim={"epochs": 15},
        seed=7,
    )
    first, second = train(run, data=cora_data), train(run, data=cora_data)
    assert (first.val, first.test, first.history) == (second.val, second.test, second.history)


def test_graph_batches_are_deterministic_too():
    run = ring_config("gcn_ssm", seed=3)
    run.optim.epochs = 2
    data = get_dataset("ring_transfer", ring_size=8, num_graphs=100)
    first, second = train(run, data=data), train(run, data=data)
    assert first.history == second.history


def test_nan_loss_is_recorded_as_diverged(cora_data):
    run = config(
        model={"name": "gcn", "num_layers": 2, "hidden": 16},
        data={"name": "cora"},
        optim={"lr": 1e30, "epochs": 50},  # the first steps overflow the weights to inf/NaN
    )
    result = train(run, data=cora_data)
    assert result.status == "diverged"
    assert result.test is None and result.epochs < 50


def test_early_stopping_restores_the_best_validation_epoch(cora_data):
    run = config(
        model={"name": "gcn_kipf", "hidden": 16, "dropout": 0.5},
        data={"name": "cora"},
        optim={"epochs": 400, "patience": 10},
    )
    result = train(run, data=cora_data)
    assert result.epochs < 400 and result.epochs == result.best_epoch + 11
    best = max(h["val"] for h in result.history)
    assert result.val == pytest.approx(best)
    # The weights are the best epoch's (not the last's): a run that stops right after that
    # epoch (training is deterministic) scores the same on the test split.
    run.optim.epochs = result.best_epoch + 1
    assert train(run, data=cora_data).test == result.test


def test_the_reported_scores_are_each_splits_own_at_the_best_epoch(monkeypatch):
    """The test score is the test split's, the validation score the validation split's, both
    of the restored best weights: scoring val twice passed every run (Kipf's GCN clears the
    published accuracy on validation too)."""
    from dgl_ssm_bench.train import _Task

    real, calls = _Task.evaluate, []

    def marked(task, model, split):
        calls.append(split)
        real(task, model, split)  # the real pass, then a score that names its split
        return {"train": 0.5, "val": 0.25, "test": 0.75}[split]

    monkeypatch.setattr(_Task, "evaluate", marked)
    config = RunConfig.from_dict({
        "model": {"name": "gcn_ssm", "num_layers": 2, "hidden": 8},
        "data": {"name": "ring_transfer", "options": {"ring_size": 6, "num_graphs": 20}},
        "optim": {"epochs": 2},
    })  # fmt: skip
    result = train(config)
    assert (result.val, result.test) == (0.25, 0.75)
    assert calls.count("test") == 1 and calls[-1] == "test"  # once, after training


def test_the_run_trains_and_scores_on_the_split_it_names():
    # Heterophily results are means over 10 fixed splits: a trainer always on split 0 would
    # report one split ten times.
    from dgl_ssm_bench.datasets import BenchmarkData
    from dgl_ssm_bench.train import _Task

    graph = dgl.to_bidirected(dgl.graph((torch.arange(6), (torch.arange(6) + 1) % 6)))
    graph.ndata["feat"], graph.ndata["label"] = torch.randn(6, 2), torch.arange(6) % 2
    i = torch.arange(6)
    splits = [{"train": i[:2], "val": i[2:4], "test": i[4:]},
              {"train": i[4:], "val": i[:2], "test": i[2:4]}]  # fmt: skip
    data = BenchmarkData("tiny", "node", "cross_entropy", "accuracy", 2, 2, graph=graph,
                         splits=splits)  # fmt: skip
    config = RunConfig.from_dict({"model": {"name": "gcn", "num_layers": 1, "hidden": 4},
                                  "data": {"name": "cora", "split": 1}})  # fmt: skip
    index = _Task(data, config, torch.device("cpu")).index
    assert {k: v.tolist() for k, v in index.items()} == {"train": [4, 5], "val": [0, 1],
                                                         "test": [2, 3]}  # fmt: skip


def test_a_graphs_own_self_loops_are_replaced_not_doubled():
    # Node 0 looped twice would count itself twice in GCN's degree normalisation.
    from dgl_ssm_bench.train import prepare_graph

    graph = dgl.graph(([0, 0, 1], [0, 1, 2]))
    prepared = prepare_graph(graph, RunConfig.from_dict({"model": {"name": "gcn_ssm"}}))
    src, dst = prepared.edges()
    loops = sorted(s for s, d in zip(src.tolist(), dst.tolist()) if s == d)
    assert prepared.num_edges() == 5 and loops == [0, 1, 2]


def test_each_seed_and_epoch_draws_its_own_order_of_the_training_graphs():
    """Re-batched every epoch, the runs of seeds 0, 1, 2 see unrelated orders: no seed trains
    on another's batches one epoch later (a torch seed of seed + epoch did just that)."""
    import torch

    from dgl_ssm_bench.train import _Task

    data = get_dataset("ring_transfer", ring_size=6, num_graphs=100)

    def orders(seed):
        config = RunConfig.from_dict({"model": {"name": "gcn", "num_layers": 2},
                                      "optim": {"batch_size": 16}, "seed": seed})  # fmt: skip
        task = _Task(data, config, torch.device("cpu"))
        task._graph_batch = lambda split, index: index  # the graphs' indices, not a batch
        return [tuple(torch.cat(list(task._train_batches(e))).tolist()) for e in range(3)]

    drawn = [orders(seed) for seed in range(3)]
    again = orders(1)
    assert sorted(again[0]) == list(range(80))  # every training graph once
    assert again == drawn[1]  # deterministic
    flat = [order for seed in drawn for order in seed]
    assert len(set(flat)) == len(flat) == 9
    # and unrelated, not shifted: seed 1's epoch 0 shares few positions with seed 0's epoch 1
    same = sum(a == b for a, b in zip(drawn[1][0], drawn[0][1], strict=True))
    assert same < len(drawn[0][1]) // 2


def test_fixed_batches_are_built_once_and_only_reordered():
    """``fixed_batches``: one seeded partition of the training graphs, its batches (and their
    hop graphs) reused every epoch in a new order; by default each epoch re-partitions."""
    import torch

    from dgl_ssm_bench.train import _Task

    data = get_dataset("ring_transfer", ring_size=6, num_graphs=100)
    count = len(data.graphs["train"])

    def epochs(fixed):
        optim = {"batch_size": 16, "fixed_batches": fixed}
        config = RunConfig.from_dict(
            {"model": {"name": "kgcn_ssm", "num_layers": 3}, "optim": optim}
        )
        task = _Task(data, config, torch.device("cpu"))
        return [list(task._train_batches(epoch)) for epoch in range(3)]

    fixed = epochs(True)
    first = {id(b[0]) for b in fixed[0]}
    assert all({id(b[0]) for b in batches} == first for batches in fixed)  # the same objects
    assert [id(b[0]) for b in fixed[0]] != [id(b[0]) for b in fixed[1]]  # in another order
    assert sum(b[0].batch_size for b in fixed[0]) == count == 80  # every graph once
    fresh = epochs(False)
    assert not {id(b[0]) for b in fresh[0]} & {id(b[0]) for b in fresh[1]}
    assert sum(b[0].batch_size for b in fresh[0]) == count
    # Evaluation batches (4 × batch_size = 8 graphs here): every graph of the split once, in
    # order, the last batch partial (10 = 8 + 2).
    config = RunConfig.from_dict({"model": {"name": "gcn", "num_layers": 2},
                                  "optim": {"batch_size": 2}})  # fmt: skip
    task = _Task(data, config, torch.device("cpu"))
    for split in ("val", "test"):
        batches = task._eval_batches(split)
        assert [b[0].batch_size for b in batches] == [8, 2]
        feats = torch.cat([b[0].ndata["feat"] for b in batches])
        assert torch.equal(feats, torch.cat([g.ndata["feat"] for g in data.graphs[split]]))


def test_full_batch_runs_of_other_seeds_start_from_other_weights():
    # One graph and no batches to order: the seed is all that tells two runs apart (weights,
    # dropout), so a seed that did not reach them would give every seed the same run, and a
    # mean ± std over seeds of a single run repeated.
    data = tiny_node_task("accuracy")

    def first_loss(seed):
        run = config(model={"name": "gcn", "num_layers": 2, "hidden": 8}, optim={"epochs": 1},
                     seed=seed)  # fmt: skip
        return train(run, data=data).history[0]["loss"]

    losses = [first_loss(seed) for seed in (0, 1, 2)]
    assert len(set(losses)) == 3, losses


@pytest.mark.parametrize("metric", ["accuracy", "roc_auc", "ap", "mae", "log10_mse"])
def test_divergence_is_recorded_for_every_metric(metric):
    """lr 1e30 overflows the weights in the first step: the loss of that step is finite, the
    predictions after it are not. ROC-AUC and AP used to raise on them (sklearn: "Input
    contains NaN"); every metric now ends the run as diverged, without scores."""
    data = tiny_node_task(metric)
    run = config(model={"name": "gcn", "num_layers": 2, "hidden": 8},
                 optim={"lr": 1e30, "epochs": 20})  # fmt: skip
    result = train(run, data=data)
    assert (result.status, result.val, result.test) == ("diverged", None, None)
    assert result.epochs == 1 and result.history == []  # caught at the first evaluation
    sane = train(config(model={"name": "gcn", "num_layers": 2, "hidden": 8},
                        optim={"epochs": 2}), data=data)  # fmt: skip
    assert sane.status == "ok" and sane.test is not None


def test_patience_zero_stops_at_the_first_epoch_without_improvement(cora_data):
    run = config(model={"name": "gcn_kipf", "hidden": 16}, data={"name": "cora"},
                 optim={"epochs": 200, "patience": 0})  # fmt: skip
    result = train(run, data=cora_data)
    vals = [h["val"] for h in result.history]
    # stopped at the first epoch whose val was not better than every earlier one
    assert result.epochs == len(vals) >= 2
    assert vals[-1] <= max(vals[:-1]) and all(b > a for a, b in zip(vals[:-2], vals[1:-1]))


@pytest.mark.parametrize("metric", ["accuracy", "mae", "log10_mse"])
def test_the_run_keeps_the_best_epoch_in_the_metrics_direction(metric):
    """Higher is better for accuracy, lower for MAE and log10 MSE: the run's val is the
    history's best in that direction (the first such epoch), and its test comes from the
    weights of that epoch, not of the last."""
    data = tiny_node_task(metric)
    run = config(model={"name": "gcn", "num_layers": 2, "hidden": 8},
                 optim={"epochs": 12, "lr": 0.05}, seed=1)  # fmt: skip
    result = train(run, data=data)
    vals = [h["val"] for h in result.history]
    best = max(vals) if metric == "accuracy" else min(vals)
    assert len(set(vals)) > 1  # the direction mattered
    assert result.best_epoch == vals.index(best)
    assert result.val == pytest.approx(best, rel=1e-6)
    # The test score is the best epoch's weights': a run stopped right after that epoch
    # (training is deterministic) scores the same.
    assert result.best_epoch < len(vals) - 1  # else the last weights would be the best's
    run.optim.epochs = result.best_epoch + 1
    assert train(run, data=data).test == result.test


def test_self_loops_are_added_only_for_models_that_read_no_edge_features():
    # A self loop has no bond to describe: GatedGCN keeps a graph with edge features as it is.
    from dgl_ssm_bench.train import prepare_graph

    graph = dgl.graph(([0, 1], [1, 2]))
    graph.edata["feat"] = torch.randn(2, 3)
    edges = {
        name: prepare_graph(graph, RunConfig.from_dict({"model": {"name": name}})).num_edges()
        for name in ("gatedgcn_ssm", "gcn_ssm", "gcn_platonov")
    }
    assert edges == {"gatedgcn_ssm": 2, "gcn_ssm": 2 + 3, "gcn_platonov": 2 + 3}


def test_khop_graphs_rewired_in_one_batched_call_are_those_rewired_one_by_one(monkeypatch):
    import networkx as nx

    from dgl_ssm import KHopTransform
    from dgl_ssm_bench.train import prepare_graph, prepare_graphs

    calls = []
    rewire = KHopTransform.__call__
    monkeypatch.setattr(KHopTransform, "__call__", lambda *a: calls.append(1) or rewire(*a))

    config = RunConfig.from_dict({"model": {"name": "kgcn_ssm", "num_layers": 3}})
    torch.manual_seed(0)
    graphs = [dgl.to_bidirected(dgl.rand_graph(n, 2 * n)) for n in (5, 9, 12)]
    graphs.insert(2, dgl.graph(([], []), num_nodes=1))  # a graph of one node, no edges
    graphs[1] = dgl.add_self_loop(graphs[1])  # prepare_graph drops them before rewiring
    together = prepare_graphs(graphs, config)
    assert len(calls) == 1  # one call for the four
    for graph, rewired in zip(graphs, together, strict=True):
        alone = prepare_graph(graph, config)
        assert torch.equal(torch.stack(rewired.edges()), torch.stack(alone.edges()))
        assert torch.equal(rewired.edata["hop"], alone.edata["hop"])
        assert rewired.batch_size == 1 and rewired.num_nodes() == graph.num_nodes()
        # and each is right on its own: hop = networkx's distance, for pairs ≤ 3 apart
        distances = dict(nx.all_pairs_shortest_path_length(graph.to_networkx()))
        expected = sorted((u, v, d) for u in distances for v, d in distances[u].items()
                          if 0 < d <= 3)  # fmt: skip
        src, dst = rewired.edges()
        assert sorted(zip(src.tolist(), dst.tolist(), rewired.edata["hop"].tolist())) == expected


def test_full_batch_training_is_a_plain_adam_loop():
    """Each epoch is one Adam step (weight decay, dropout on) on the training nodes' cross
    entropy, then the val nodes' accuracy in eval mode: as a loop written by hand."""
    import torch.nn.functional as F

    from dgl_ssm import build_model

    data = tiny_node_task("accuracy")
    run = config(model={"name": "gcn", "num_layers": 2, "hidden": 8, "dropout": 0.5},
                 optim={"epochs": 4, "lr": 0.05, "weight_decay": 0.01}, seed=3)  # fmt: skip
    history = train(run, data=data).history
    graph = dgl.add_self_loop(dgl.remove_self_loop(data.graph))
    feat, label, split = graph.ndata["feat"], graph.ndata["label"], data.splits[0]
    torch.manual_seed(3)
    model = build_model("gcn", 4, 8, 3, 2, dropout=0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=0.01)
    expected = []
    for _ in range(4):
        model.train()
        loss = F.cross_entropy(model(graph, feat)[split["train"]], label[split["train"]])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            hits = model.eval()(graph, feat)[split["val"]].argmax(1) == label[split["val"]]
        expected += [loss.item(), hits.float().mean().item()]
    assert [x for h in history for x in (h["loss"], h["val"])] == pytest.approx(expected, rel=1e-5)


def test_a_graph_level_epoch_is_the_mean_over_its_batches_with_each_graphs_own_label():
    """Graph targets shuffled into batches stay with their graphs: at a negligible lr, the
    epoch's loss is the MSE of the 12 training graphs each scored alone (3 batches of 4), and
    val the MAE of the 4 val graphs scored alone."""
    from dgl_ssm import build_model
    from dgl_ssm_bench.datasets import BenchmarkData

    generator = torch.Generator().manual_seed(0)
    graphs = [random_graph(n, 2 * n, seed=i) for i, n in enumerate(range(3, 23))]
    for graph in graphs:
        graph.ndata["feat"] = torch.randn(graph.num_nodes(), 2, generator=generator)
    labels = torch.randn(20, 1, generator=generator)
    parts = {"train": slice(0, 12), "val": slice(12, 16), "test": slice(16, 20)}
    data = BenchmarkData("tiny_graphs", "graph", "mse", "mae", 2, 1,
                         graphs={s: graphs[p] for s, p in parts.items()},
                         graph_labels={s: labels[p] for s, p in parts.items()})  # fmt: skip
    run = config(model={"name": "gcn", "num_layers": 2, "hidden": 8},
                 optim={"epochs": 1, "lr": 1e-9, "batch_size": 4})  # fmt: skip
    item = train(run, data=data).history[0]
    torch.manual_seed(0)
    model = build_model("gcn", 2, 8, 1, 2, task="graph").eval()
    with torch.no_grad():
        error = torch.cat([model(g, g.ndata["feat"]) for g in graphs])[:, 0] - labels[:, 0]
    assert item["loss"] == pytest.approx(error[:12].pow(2).mean().item(), rel=1e-5)
    assert item["val"] == pytest.approx(error[12:16].abs().mean().item(), rel=1e-5)


@pytest.mark.parametrize("fault", ["loss", "val", "test"])
def test_a_run_that_diverges_after_good_epochs_reports_no_scores(monkeypatch, fault):
    """A NaN loss at epoch 2, an infinite val score there (a metric its predictions break),
    or a NaN test score of the best weights: the run is diverged, without scores, though
    epochs 0 and 1 went well."""
    from dgl_ssm_bench.train import _Task

    real_epoch, real_evaluate, epochs = _Task.train_epoch, _Task.evaluate, []

    def train_epoch(task, model, optimizer, epoch, watch=None):
        epochs.append(epoch)
        loss = real_epoch(task, model, optimizer, epoch, watch)
        return math.nan if fault == "loss" and epoch == 2 else loss

    def evaluate(task, model, split):
        score = real_evaluate(task, model, split)
        if split == fault and (split == "test" or epochs[-1] == 2):
            return math.nan if split == "test" else math.inf
        return score

    monkeypatch.setattr(_Task, "train_epoch", train_epoch)
    monkeypatch.setattr(_Task, "evaluate", evaluate)
    run = config(model={"name": "gcn", "num_layers": 2, "hidden": 8}, optim={"epochs": 4})
    result = train(run, data=tiny_node_task("accuracy"))
    assert (result.status, result.val, result.test) == ("diverged", None, None)
    assert len(result.history) == (4 if fault == "test" else 2)


def test_predictions_non_finite_at_one_node_make_the_score_nan():
    """One NaN logit among the val nodes' is a divergence, not an accuracy."""
    from dgl_ssm_bench.train import _Task

    class OneNaN(torch.nn.Module):
        def forward(self, graph, feat):
            out = torch.zeros(graph.num_nodes(), 3)
            out[15, 1] = math.nan  # node 15 is a val node
            return out

    data = tiny_node_task("accuracy")
    task = _Task(data, config(model={"name": "gcn", "num_layers": 2}), torch.device("cpu"))
    assert math.isnan(task.evaluate(OneNaN(), "val"))
    assert task.evaluate(OneNaN(), "test") == pytest.approx(0.3)  # argmax 0: nodes 21, 24, 27


def test_a_sweep_is_told_each_epochs_own_validation_score():
    """``on_epoch`` (Optuna's report) gets each epoch's val, not the best so far."""
    seen = []
    run = config(model={"name": "gcn", "num_layers": 2, "hidden": 8},
                 optim={"epochs": 12, "lr": 0.05}, seed=1)  # fmt: skip
    result = train(run, data=tiny_node_task("mae"), on_epoch=lambda *args: seen.append(args))
    assert seen == [(h["epoch"], h["val"]) for h in result.history]
    assert result.best_epoch < len(seen) - 1  # later epochs were worse than the best


def test_a_split_past_the_last_is_refused_with_the_valid_range():
    from dgl_ssm_bench.train import check_split

    check_split("tiny", 1, 2)
    with pytest.raises(
        ValueError, match=r"2 fixed split\(s\); split 2 does not exist \(valid: 0..1\)"
    ):
        check_split("tiny", 2, 2)
    with pytest.raises(ValueError, match=r"no fixed splits; split 1 does not exist"):
        check_split("tiny", 1, None)


def test_khop_graphs_rewired_in_chunks_come_back_each_once_in_order(monkeypatch):
    """Chunks of two, one of them too large to batch (rewired graph by graph): five graphs
    in, the same five out, each rewired as it would be alone."""
    import dgl_ssm_bench.train as train_module
    from dgl_ssm import KHopTransform

    rewire = KHopTransform.__call__

    def refusing(transform, graph):  # the chunk of the 6- and 7-node graphs: "too many edges"
        if graph.batch_size > 1 and graph.num_nodes() == 6 + 7:
            raise ValueError("above max_edges")
        return rewire(transform, graph)

    monkeypatch.setattr(train_module, "_KHOP_CHUNK", 2)
    monkeypatch.setattr(KHopTransform, "__call__", refusing)
    graphs = [random_graph(n, 2 * n, seed=n, self_loops=False) for n in (4, 5, 6, 7, 8)]
    config_ = RunConfig.from_dict({"model": {"name": "kgcn_ssm", "num_layers": 2}})
    rewired = train_module.prepare_graphs(graphs, config_)
    assert [g.num_nodes() for g in rewired] == [4, 5, 6, 7, 8]
    for graph, out in zip(graphs, rewired, strict=True):
        alone = rewire(KHopTransform(k=2), graph)
        assert torch.equal(torch.stack(out.edges()), torch.stack(alone.edges()))
        assert torch.equal(out.edata["hop"], alone.edata["hop"])
