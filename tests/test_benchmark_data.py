"""Datasets behind one registry: real files offline, generated ones exact and reproducible."""

import pickle

import networkx as nx
import numpy as np
import pytest
import torch

from dgl_ssm_bench.datasets import DATASETS, get_dataset
from dgl_ssm_bench.datasets.planetoid import load_planetoid


def test_citeseer_statistics(data_dir, cache_dir):
    g = load_planetoid("citeseer", data_dir, cache_dir)
    assert (g.num_nodes(), g.num_edges(), g.ndata["feat"].shape[1]) == (3327, 9228, 3703)
    assert int(g.ndata["label"].max()) + 1 == 6


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
