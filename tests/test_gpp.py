"""The GPP generator: sizes, graph validity, targets against networkx, determinism, cache."""

import inspect
from collections import Counter

import networkx as nx
import numpy as np
import pytest
import torch

from benchmarks.datasets import gpp
from benchmarks.datasets.gpp import (
    FAMILIES,
    SIZES,
    base_graph,
    cache_file,
    generate_gpp,
    gpp_arrays,
    gpp_families,
    load_gpp,
    randomise_edges,
)

SMALL = (120, 40, 40)  # 200 graphs, checked one by one against networkx


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The default-size dataset (7040 graphs), generated once into a temporary cache."""
    cache = tmp_path_factory.mktemp("gpp_full")
    data = load_gpp("sssp", cache_path=cache)
    return data, gpp_families(cache_path=cache), gpp_arrays(cache_path=cache)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    cache = tmp_path_factory.mktemp("gpp_small")
    tasks = {task: load_gpp(task, sizes=SMALL, cache_path=cache) for task in gpp.TASKS}
    return tasks, gpp_families(sizes=SMALL, cache_path=cache)


def to_networkx(graph):
    src, dst = graph.edges()
    nx_graph = nx.Graph()
    nx_graph.add_nodes_from(range(graph.num_nodes()))
    nx_graph.add_edges_from(zip(src.tolist(), dst.tolist()))
    return nx_graph


def assert_same_data(a, b):
    assert a.name == b.name and a.level == b.level
    for split in gpp.SPLITS:
        assert len(a.graphs[split]) == len(b.graphs[split])
        for g, h in zip(a.graphs[split], b.graphs[split]):
            assert g.num_nodes() == h.num_nodes()
            assert all(torch.equal(x, y) for x, y in zip(g.edges(), h.edges()))
            assert g.ndata.keys() == h.ndata.keys()
            assert all(torch.equal(g.ndata[k], h.ndata[k]) for k in g.ndata.keys())
        if a.graph_labels is not None:
            assert torch.equal(a.graph_labels[split], b.graph_labels[split])


def test_default_sizes_are_the_protocol_split(full):
    assert SIZES == (5120, 640, 1280)
    assert inspect.signature(load_gpp).parameters["sizes"].default == SIZES
    assert inspect.signature(load_gpp).parameters["seed"].default == 0
    data, families, _ = full
    assert [len(data.graphs[s]) for s in gpp.SPLITS] == list(SIZES)
    assert [len(families[s]) for s in gpp.SPLITS] == list(SIZES)


def test_sizes_option_and_task_metadata(small):
    tasks, families = small
    for task, data in tasks.items():
        assert data.name == f"gpp_{task}" and not data.transductive
        assert (data.loss, data.metric, data.num_features, data.num_outputs) == (
            "mse",
            "log10_mse",
            2,
            1,
        )
        assert [len(data.graphs[s]) for s in gpp.SPLITS] == list(SMALL)
        assert [len(families[s]) for s in gpp.SPLITS] == list(SMALL)
        for split in gpp.SPLITS:
            graph = data.graphs[split][0]
            assert graph.ndata["feat"].dtype == torch.float32
            assert graph.ndata["feat"].shape == (graph.num_nodes(), 2)
            if task == "diameter":
                assert data.level == "graph" and "label" not in graph.ndata
                assert data.graph_labels[split].dtype == torch.float32
                assert data.graph_labels[split].shape == (SMALL[gpp.SPLITS.index(split)], 1)
            else:
                assert data.level == "node" and data.graph_labels is None
                assert graph.ndata["label"].dtype == torch.float32
                assert graph.ndata["label"].shape == (graph.num_nodes(), 1)


def test_an_empty_split_is_allowed(tmp_path):
    data = load_gpp("diameter", sizes=(3, 0, 1), cache_path=tmp_path)
    assert [len(data.graphs[s]) for s in gpp.SPLITS] == [3, 0, 1]
    assert data.graph_labels["val"].shape == (0, 1)


def test_unknown_task_or_bad_sizes_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown GPP task"):
        load_gpp("triangles", cache_path=tmp_path)
    with pytest.raises(ValueError, match="sizes"):
        load_gpp("sssp", sizes=(10, 5), cache_path=tmp_path)


def test_every_graph_is_valid(full):
    data, _, _ = full
    for split in gpp.SPLITS:
        for graph in data.graphs[split]:
            n = graph.num_nodes()
            src, dst = graph.edges()
            assert 25 <= n <= 35
            assert not bool((src == dst).any()), "self loop"
            assert int(graph.in_degrees().min()) > 0, "isolated node"
            pairs = set(zip(src.tolist(), dst.tolist()))
            assert len(pairs) == len(src) and pairs == {(v, u) for u, v in pairs}, "not simple"
            feat = graph.ndata["feat"]
            assert feat[:, 0].sum().item() == 1.0 and set(feat[:, 0].tolist()) <= {0.0, 1.0}
            assert 0.0 <= feat[:, 1].min().item() and feat[:, 1].max().item() < 1.0


def test_targets_match_networkx(small):
    tasks, _ = small
    checked = 0
    for split in gpp.SPLITS:
        sssp_graphs = tasks["sssp"].graphs[split]
        ecc_graphs = tasks["eccentricity"].graphs[split]
        diameters = tasks["diameter"].graph_labels[split][:, 0].tolist()
        for g_sssp, g_ecc, diameter in zip(sssp_graphs, ecc_graphs, diameters):
            graph = to_networkx(g_sssp)
            source = int(g_sssp.ndata["feat"][:, 0].argmax())
            hops = nx.single_source_shortest_path_length(graph, source)
            expected_sssp = [hops.get(v, 0) for v in range(graph.number_of_nodes())]
            expected_ecc = [0] * graph.number_of_nodes()
            for component in nx.connected_components(graph):
                for v, e in nx.eccentricity(graph.subgraph(component)).items():
                    expected_ecc[v] = e
            assert g_sssp.ndata["label"][:, 0].tolist() == expected_sssp
            assert g_ecc.ndata["label"][:, 0].tolist() == expected_ecc
            assert diameter == max(expected_ecc)
            checked += 1
    assert checked == 200


def test_base_graphs_have_the_family_shape():
    rng = np.random.default_rng(7)
    for n in (25, 30, 35):
        for family in FAMILIES:
            num_nodes, edges = base_graph(family, n, rng)
            graph = nx.Graph(edges.tolist())
            assert graph.number_of_nodes() == num_nodes and 25 <= num_nodes <= 35
            if family not in ("grid", "caveman"):  # these two round n to a rows x cols shape
                assert num_nodes == n, family
            assert nx.is_connected(graph), family
            if family in ("powerlaw_tree", "caterpillar", "lobster", "path", "star"):
                assert nx.is_tree(graph), family
            if family in ("caterpillar", "lobster"):  # pruning leaves 1 or 2 times leaves a path
                for _ in range(1 if family == "caterpillar" else 2):
                    leaves = [v for v, d in graph.degree() if d == 1]
                    graph.remove_nodes_from(leaves if graph.number_of_nodes() > 2 else [])
                assert max(d for _, d in graph.degree()) <= 2 and nx.is_tree(graph), family


def test_randomisation_keeps_the_expected_edge_count():
    rng = np.random.default_rng(3)
    num_nodes, edges = base_graph("barabasi_albert", 30, rng)
    original = {tuple(sorted(e)) for e in edges.tolist()}
    counts, kept = [], []
    for _ in range(2000):
        new = {tuple(e) for e in randomise_edges(num_nodes, edges, rng).tolist()}
        assert all(u < v for u, v in new)
        counts.append(len(new))
        kept.append(len(new & original) / len(original))
    assert abs(np.mean(counts) - len(original)) < 0.01 * len(original)
    assert abs(np.mean(kept) - 0.9) < 0.005


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    sizes = (12, 4, 4)
    first = generate_gpp(seed=3, sizes=sizes)
    again = generate_gpp(seed=3, sizes=sizes)
    other = generate_gpp(seed=4, sizes=sizes)
    for split in gpp.SPLITS:
        assert first[split].keys() == again[split].keys()
        for key in first[split]:
            assert np.array_equal(first[split][key], again[split][key]), key
        assert not np.array_equal(first[split]["feat"], other[split]["feat"])
    a = load_gpp("eccentricity", seed=3, sizes=sizes, cache_path=tmp_path / "a")
    b = load_gpp("eccentricity", seed=3, sizes=sizes, cache_path=tmp_path / "b")
    assert_same_data(a, b)


def test_smaller_sizes_give_a_prefix_of_the_full_splits(full, small):
    full_data, full_families, _ = full
    small_tasks, small_families = small
    for split, count in zip(gpp.SPLITS, SMALL):
        assert small_families[split] == full_families[split][:count]
        for g, h in zip(small_tasks["sssp"].graphs[split], full_data.graphs[split][:count]):
            assert all(torch.equal(x, y) for x, y in zip(g.edges(), h.edges()))
            assert torch.equal(g.ndata["feat"], h.ndata["feat"])
            assert torch.equal(g.ndata["label"], h.ndata["label"])


def test_second_load_reads_the_cache(tmp_path, monkeypatch):
    sizes = (10, 3, 3)
    first = load_gpp("diameter", seed=5, sizes=sizes, cache_path=tmp_path)
    assert cache_file(5, sizes, tmp_path).exists()
    assert cache_file(5, sizes, tmp_path).parent == tmp_path / "gpp"

    def no_generation(*args, **kwargs):
        raise AssertionError("generated again instead of reading the cache")

    monkeypatch.setattr(gpp, "generate_gpp", no_generation)
    assert_same_data(first, load_gpp("diameter", seed=5, sizes=sizes, cache_path=tmp_path))
    families = gpp_families(seed=5, sizes=sizes, cache_path=tmp_path)
    assert all(f in FAMILIES for split in gpp.SPLITS for f in families[split])
    with pytest.raises(AssertionError, match="generated again"):  # other sizes: not cached
        load_gpp("diameter", seed=5, sizes=(10, 3, 4), cache_path=tmp_path)


def test_leftover_temporary_file_does_not_break_loading(tmp_path):
    sizes = (8, 2, 2)
    path = cache_file(1, sizes, tmp_path)
    path.parent.mkdir(parents=True)
    junk = path.parent / f".{path.name}.killed.tmp"
    junk.write_bytes(b"PK\x03\x04 half a zip")  # what a killed writer could leave
    first = load_gpp("sssp", seed=1, sizes=sizes, cache_path=tmp_path)
    assert path.exists() and junk.exists()
    assert_same_data(first, load_gpp("sssp", seed=1, sizes=sizes, cache_path=tmp_path))


def test_a_write_that_dies_leaves_no_cache_file(tmp_path, monkeypatch):
    sizes = (8, 2, 2)
    path = cache_file(2, sizes, tmp_path)

    def dies_midway(stream, **arrays):
        stream.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(gpp.np, "savez", dies_midway)
        with pytest.raises(KeyboardInterrupt):
            load_gpp("sssp", seed=2, sizes=sizes, cache_path=tmp_path)
    assert not path.exists() and list(path.parent.iterdir()) == []
    data = load_gpp("sssp", seed=2, sizes=sizes, cache_path=tmp_path)
    assert path.exists()
    assert_same_data(data, load_gpp("sssp", seed=2, sizes=sizes, cache_path=tmp_path))


def test_family_frequencies_follow_the_mixture(full):
    _, families, _ = full
    counts = Counter(f for split in gpp.SPLITS for f in families[split])
    total = sum(counts.values())
    assert total == 7040 and set(counts) == set(FAMILIES)
    for family, probability in FAMILIES.items():
        assert abs(counts[family] / total - probability) <= 0.03, (family, counts[family])
