"""Datasets behind one registry: real files offline, generated ones exact and reproducible."""

import pickle
import shutil

import dgl
import networkx as nx
import numpy as np
import pytest
import torch

from dgl_ssm_bench.datasets import DATASETS, BenchmarkData, get_dataset
from dgl_ssm_bench.datasets.planetoid import load_planetoid


def test_citeseer_statistics(data_dir, cache_dir):
    g = load_planetoid("citeseer", data_dir, cache_dir)
    assert (g.num_nodes(), g.num_edges(), g.ndata["feat"].shape[1]) == (3327, 9228, 3703)
    assert int(g.ndata["label"].max()) + 1 == 6
    data = get_dataset("citeseer", data_dir=data_dir, cache_dir=cache_dir)  # its 6 classes
    assert (data.num_features, data.num_outputs) == (3703, 6)


def test_cora_through_the_registry(data_dir, cache_dir):
    data = get_dataset("cora", data_dir=data_dir, cache_dir=cache_dir)
    assert data.transductive and data.metric == "accuracy" and data.num_outputs == 7
    assert [len(data.splits[0][s]) for s in ("train", "val", "test")] == [140, 500, 1000]
    # Planetoid's public split, from the raw files: train = the 140 nodes of ind.cora.y,
    # val = the next 500, test = the nodes listed in ind.cora.test.index.
    split, raw = data.splits[0], data_dir / "planetoid"
    assert torch.equal(split["train"], torch.arange(140))
    assert torch.equal(split["val"], torch.arange(140, 640))
    test_index = np.loadtxt(raw / "ind.cora.test.index", dtype=np.int64)
    assert np.array_equal(np.sort(split["test"].numpy()), np.sort(test_index))
    with open(raw / "ind.cora.y", "rb") as handle:
        one_hot = pickle.load(handle, encoding="latin1")
    assert torch.equal(data.graph.ndata["label"][:140], torch.from_numpy(one_hot.argmax(1)))


def test_missing_planetoid_files_say_which_and_where(tmp_path, cache_dir):
    with pytest.raises(FileNotFoundError, match=r"ind\.cora\.x.*ind\.cora\.test\.index.*planetoid"):
        get_dataset("cora", data_dir=tmp_path, cache_dir=cache_dir)


def test_a_partial_set_of_planetoid_files_is_passed_over_for_a_complete_one(data_dir, tmp_path):
    # ind.cora.x alone beside a complete planetoid/ folder: the folder is read, not the
    # partial set (whose missing files would fail as a bare "No such file" while staging).
    shutil.copytree(data_dir / "planetoid", tmp_path / "planetoid")
    shutil.copyfile(data_dir / "planetoid" / "ind.cora.x", tmp_path / "ind.cora.x")
    assert load_planetoid("cora", tmp_path, tmp_path / "cache").num_nodes() == 2708
    (tmp_path / "planetoid" / "ind.cora.tx").unlink()  # neither complete: all that is needed
    with pytest.raises(
        FileNotFoundError, match=r"Needed: ind\.cora\.x, .*ind\.cora\.tx, .*kimiyoung"
    ):
        load_planetoid("cora", tmp_path, tmp_path / "cache2")


def test_folders_given_from_the_home_directory_are_expanded(tmp_path, monkeypatch):
    # "~/data" from a config or the environment: no shell expands it; unexpanded, a literal
    # "~" folder under the working directory would be searched (and, for the cache, made).
    from dgl_ssm_bench.datasets.paths import cache_dir, data_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert data_dir("~/raw") == tmp_path / "raw"
    monkeypatch.setenv("DGL_SSM_DATA", "~/raw")
    assert data_dir() == tmp_path / "raw"
    assert cache_dir("~/cache") == tmp_path / "cache" and (tmp_path / "cache").is_dir()
    assert not (tmp_path / "~").exists()


def test_a_none_option_means_the_datasets_default():
    # Callers pass every option they have, unset ones as None: a None seed is the default
    # seed 0, neither refused as "not an integer" nor numpy's fresh random default_rng(None).
    def labels(data):
        return [int(g.ndata["label"][0]) for s in ("train", "val", "test") for g in data.graphs[s]]

    unset = labels(get_dataset("ring_transfer", ring_size=4, num_graphs=40, seed=None))
    assert unset == labels(get_dataset("ring_transfer", ring_size=4, num_graphs=40, seed=None))
    assert unset == labels(get_dataset("ring_transfer", ring_size=4, num_graphs=40, seed=0))


def test_unknown_dataset_and_option():
    with pytest.raises(ValueError, match=r"Unknown dataset 'kora'.*'cora'.*ring_transfer"):
        get_dataset("kora")
    with pytest.raises(ValueError, match=r"no option ring_sise; it accepts: ring_size"):
        get_dataset("ring_transfer", ring_sise=5)


@pytest.mark.parametrize("size", [6, 11, 20])
def test_ring_transfer_graphs_follow_the_recipe(size):
    data = get_dataset("ring_transfer", ring_size=size, num_graphs=200, seed=3)
    assert [len(data.graphs[s]) for s in ("train", "val", "test")] == [160, 20, 20]
    for g in data.graphs["train"][:20]:
        src, dst = g.edges()  # both directions of each ring edge, each once
        edges = sorted(zip(src.tolist(), dst.tolist()))
        ring = sorted({(i, (i + step) % size) for i in range(size) for step in (1, -1)})
        assert edges == ring and nx.is_isomorphic(nx.Graph(edges), nx.cycle_graph(size))
        feat, label = g.ndata["feat"], int(g.ndata["label"][0])
        assert torch.equal(feat[0], torch.zeros(5))
        assert torch.equal(feat[size // 2], torch.eye(5)[label])
        others = [i for i in range(size) if i not in (0, size // 2)]
        assert torch.equal(feat[others], torch.ones(len(others), 5))
        assert g.ndata["target_mask"].nonzero().view(-1).tolist() == [0]


@pytest.mark.parametrize("num_graphs, sizes", [(2000, (1600, 200, 200)), (37, (29, 3, 5))])
def test_ring_transfer_is_balanced_within_each_split_and_reproducible(num_graphs, sizes):
    data = get_dataset("ring_transfer", ring_size=10, num_graphs=num_graphs, seed=0)
    for split, size in zip(("train", "val", "test"), sizes):  # DRew builds each split apart
        labels = torch.tensor([int(g.ndata["label"][0]) for g in data.graphs[split]])
        counts = torch.bincount(labels, minlength=5)
        assert len(labels) == size and counts.max() - counts.min() <= 1, (split, counts)
    # The few left over fall in distinct classes on every seed, not only on seed 0.
    for seed in range(1, 6) if num_graphs % 5 else ():
        small = get_dataset("ring_transfer", ring_size=10, num_graphs=num_graphs, seed=seed)
        for split, graphs in small.graphs.items():
            counts = torch.bincount(torch.tensor([int(g.ndata["label"][0]) for g in graphs]),
                                    minlength=5)  # fmt: skip
            assert counts.max() - counts.min() <= 1, (seed, split, counts)
    again = get_dataset("ring_transfer", ring_size=10, num_graphs=num_graphs, seed=0)
    other = get_dataset("ring_transfer", ring_size=10, num_graphs=num_graphs, seed=1)
    if num_graphs % 5:  # the few left over fall in classes drawn by the seed, not 0, 1, …
        vals = [
            [
                int(g.ndata["label"][0])
                for g in get_dataset(
                    "ring_transfer", ring_size=10, num_graphs=num_graphs, seed=s
                ).graphs["val"]
            ]
            for s in range(8)
        ]  # fmt: skip  (3 graphs: 3 classes of the 5)
        assert len({tuple(sorted(v)) for v in vals}) > 1, vals
    first = [int(g.ndata["label"][0]) for g in data.graphs["test"]]
    assert first == [int(g.ndata["label"][0]) for g in again.graphs["test"]]
    assert first != [int(g.ndata["label"][0]) for g in other.graphs["test"]]


@pytest.mark.parametrize(
    ("options", "message"),
    [({"num_graphs": 9}, "num_graphs must be at least 10"),  # 9 graphs: 7/0/2, no val graph
     ({"ring_size": 2}, "ring_size must be at least 3")],  # 2 nodes: one edge, not a ring
)  # fmt: skip
def test_ring_transfer_refuses_too_few_graphs_or_nodes(options, message):
    with pytest.raises(ValueError, match=message):
        get_dataset("ring_transfer", **{"num_graphs": 10, "ring_size": 6, **options})
    fewest = get_dataset("ring_transfer", num_graphs=10, ring_size=3)  # the smallest allowed
    assert [len(fewest.graphs[s]) for s in ("train", "val", "test")] == [8, 1, 1]


def test_a_data_seed_is_refused_outside_numpys_seed_range():
    # The message promises 0 … 2**32 - 1 (numpy's seed range): exactly that is accepted.
    for seed in (-1, 2**32):
        with pytest.raises(ValueError, match=r"integer from 0 to 2\*\*32 - 1, got "):
            get_dataset("ring_transfer", ring_size=4, num_graphs=10, seed=seed)
    assert get_dataset("ring_transfer", ring_size=4, num_graphs=10, seed=2**32 - 1).graphs


def test_split_counts_and_task_levels_known_before_loading():
    """Checked before any data loads (``--split``, a graph head's options), so they must be
    the datasets' own: Planetoid and ogbn-arxiv ship one split, the heterophilous graphs of
    Platonov et al. ten; Peptides and GPP diameter predict one value per graph."""
    from dgl_ssm_bench.datasets import dataset_level, num_splits

    splits = {"cora": 1, "citeseer": 1, "pubmed": 1, "ogbn_arxiv": 1, "minesweeper": 10,
              "tolokers": 10, "roman_empire": 10, "amazon_ratings": 10,
              "questions": 10}  # fmt: skip
    graph_level = {"gpp_diameter", "peptides_func", "peptides_struct"}
    for name in DATASETS:
        assert num_splits(name) == splits.get(name), name  # None: many graphs, no fixed split
        assert dataset_level(name) == ("graph" if name in graph_level else "node"), name


def test_real_datasets_take_a_folder_and_generated_ones_a_seed():
    from dgl_ssm_bench.datasets import FIXED_SPLITS, dataset_options

    generated = {"ring_transfer", "gpp_sssp", "gpp_eccentricity", "gpp_diameter"}
    for name in DATASETS:
        options = set(dataset_options(name))
        if name in generated:
            assert "seed" in options and "data_dir" not in options, name
        else:  # a local folder (--data-dir / DGL_SSM_DATA) instead of a download
            assert {"data_dir", "cache_dir"} <= options, name
    assert set(FIXED_SPLITS) <= set(DATASETS) - generated


@pytest.mark.parametrize(
    ("option", "value"),
    [("ring_size", "6"), ("ring_size", 6.5), ("num_graphs", 40.7), ("num_graphs", "1.0e9"),
     ("ring_size", True)],
)  # fmt: skip
def test_a_generated_datasets_integer_option_of_another_type_is_refused(option, value):
    # From YAML: "6" compared a string with an int deep inside; 6.5 crashed DGL's C++ graph
    # constructor; 40.7 graphs split into fractional counts.
    with pytest.raises(ValueError, match=rf"option {option} must be an integer") as error:
        get_dataset("ring_transfer", **{option: value})
    assert ("drop the quotes" in str(error.value)) == isinstance(value, str)
    assert get_dataset("ring_transfer", ring_size=np.int64(4), num_graphs=10).graphs  # NumPy's


def _triangle(feat, dst=(1, 2, 0), label=None):
    """The cycle 0 → 1 → 2 → 0 (or the edges to ``dst``), labels 0, 1, 0 unless given."""
    graph = dgl.graph(([0, 1, 2], list(dst)), num_nodes=3)
    graph.ndata["feat"] = feat
    graph.ndata["label"] = torch.tensor([0, 1, 0]) if label is None else label
    return graph


def _one_node_each():
    """A split of the triangle: node 0 to train on, 1 to validate, 2 to test."""
    return {"train": torch.tensor([0]), "val": torch.tensor([1]), "test": torch.tensor([2])}


def test_the_data_fingerprint_covers_the_splits_and_the_graph_targets():
    """A run is resumed (not run again) on data of the same fingerprint: data that differ only
    in their splits, or only in their graph-level targets, must not share one."""
    one, two, three = torch.tensor([0]), torch.tensor([1]), torch.tensor([2])

    def node_task(train, val):
        split = {"train": train, "val": val, "test": three}
        return BenchmarkData("t", "node", "cross_entropy", "accuracy", 1, 2,
                             graph=_triangle(torch.ones(3, 1)), splits=[split])  # fmt: skip

    assert node_task(one, two).fingerprint() == node_task(one, two).fingerprint()
    assert node_task(one, two).fingerprint() != node_task(two, one).fingerprint()

    def graph_task(diameter):
        graphs = {s: [_triangle(torch.ones(3, 1))] for s in ("train", "val", "test")}
        labels = {s: torch.tensor([[diameter]]) for s in graphs}
        return BenchmarkData("g", "graph", "mse", "log10_mse", 1, 1, graphs=graphs,
                             graph_labels=labels)  # fmt: skip

    assert graph_task(1.0).fingerprint() == graph_task(1.0).fingerprint()
    assert graph_task(1.0).fingerprint() != graph_task(2.0).fingerprint()


def test_a_many_graph_dataset_has_one_split_a_one_graph_dataset_its_fixed_ones():
    # run.py cycles seeds through the splits (split index modulo num_splits): a many-graph
    # dataset has exactly one, its graphs' own split.
    ring = get_dataset("ring_transfer", ring_size=4, num_graphs=10)
    assert not ring.transductive and ring.num_splits == 1
    split = _one_node_each()
    cycle = BenchmarkData("t", "node", "cross_entropy", "accuracy", 1, 2,
                          graph=_triangle(torch.ones(3, 1)), splits=[split, split])  # fmt: skip
    assert cycle.transductive and cycle.num_splits == 2


def test_the_data_fingerprint_sees_dtype_shape_and_edge_data_not_insertion_order():
    """Equal bytes of another dtype, or other edge features, give another
    fingerprint; the same data entered in another order (splits, ndata keys) give the same."""

    def graph_task(feat, label, edge_feat=None, order=("train", "val", "test"), label_first=False):
        graphs = {}
        for split in order:
            graph = dgl.graph(([0, 1, 2], [1, 2, 0]))
            for key in ("label", "feat") if label_first else ("feat", "label"):
                graph.ndata[key] = label + len(split) if key == "label" else feat  # per split
            if edge_feat is not None:
                graph.edata["feat"] = edge_feat
            graphs[split] = [graph]
        return BenchmarkData("g", "node", "mse", "log10_mse", 1, 1, graphs=graphs).fingerprint()

    feat, label = torch.zeros(3, 1), torch.tensor([0.0, 1.0, 0.0])
    same = graph_task(feat, label)
    assert same == graph_task(feat, label, order=("test", "val", "train"), label_first=True)
    assert same != graph_task(torch.zeros(3, 1, dtype=torch.int32), label)  # same zero bytes
    assert same != graph_task(feat, label, edge_feat=torch.ones(3, 1))
    assert graph_task(feat, label, torch.ones(3, 1)) != graph_task(feat, label, torch.zeros(3, 1))


@pytest.mark.parametrize(("level", "loss"), [("edge", "mse"), ("node", "hinge")])
def test_a_bad_level_or_a_bad_loss_alone_is_refused(level, loss):
    with pytest.raises(ValueError, match="bad level"):
        BenchmarkData("t", level, loss, "accuracy", 1, 2, graphs={"train": []})


def test_the_data_fingerprint_sees_the_edges_and_the_shape_of_equal_bytes():
    """Data that differ only in their edges (each edge turned round), or only in a tensor's
    shape over the same bytes (labels (N,) or (N, 1)), are other data: a resumed run must not
    take one's record for the other's."""

    def node_task(dst, label):
        graph = _triangle(torch.ones(3, 1), dst, label)
        return BenchmarkData("t", "node", "cross_entropy", "accuracy", 1, 2, graph=graph,
                             splits=[_one_node_each()]).fingerprint()  # fmt: skip

    label = torch.tensor([0, 1, 0])
    cycle = node_task([1, 2, 0], label)
    assert cycle == node_task([1, 2, 0], label.clone())
    assert cycle != node_task([2, 0, 1], label)  # the same cycle the other way round
    assert cycle != node_task([1, 2, 0], label.view(3, 1))


def test_one_graph_and_many_graphs_at_once_are_refused():
    # Which would a trainer read? transductive says the one graph, the graphs would be dropped.
    graph, split = _triangle(torch.ones(3, 1)), _one_node_each()
    with pytest.raises(ValueError, match="give either one graph with splits, or graphs"):
        BenchmarkData("t", "node", "cross_entropy", "accuracy", 1, 2, graph=graph,
                      splits=[split], graphs={"train": [graph]})  # fmt: skip


def test_a_dataset_name_that_is_no_string_is_an_unknown_dataset():
    # A YAML `data: {name: [cora]}`: the registry's usual message, not a TypeError from a dict.
    with pytest.raises(ValueError, match=r"Unknown dataset \['cora'\].*Valid: cora"):
        get_dataset(["cora"])


def test_ring_transfer_without_a_ring_size_has_the_shipped_configs_20_nodes():
    # `--dataset ring_transfer` without --ring-size: the rings of configs/ring_transfer.yaml.
    data = get_dataset("ring_transfer", num_graphs=10)
    assert {g.num_nodes() for s in data.graphs.values() for g in s} == {20}


def test_an_empty_data_folder_variable_means_no_local_copy(monkeypatch, tmp_path):
    # `export DGL_SSM_DATA=` (set but empty) is no folder: the loaders download as without
    # it, rather than look for the files in the working directory.
    from dgl_ssm_bench.datasets.paths import data_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DGL_SSM_DATA", "")
    assert data_dir() is None


def test_a_generated_dataset_drops_the_data_folders_it_does_not_need():
    # `--data-dir` / DGL_SSM_DATA on a RingTransfer run (one config for every dataset): the
    # folders are dropped, as the registry promises, not refused as unknown options.
    data = get_dataset("ring_transfer", ring_size=4, num_graphs=10, data_dir="/no/such/folder",
                       cache_dir="/no/such/cache")  # fmt: skip
    assert [len(data.graphs[s]) for s in ("train", "val", "test")] == [8, 1, 1]
