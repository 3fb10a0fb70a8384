"""Tests for KHopTransform, checked against hand-written results and networkx distances."""

import doctest

import dgl
import networkx as nx
import numpy as np
import pytest
import torch

from dgl_ssm import hop_graphs, khop
from dgl_ssm.khop import KHopTransform
from tests.conftest import ring


def bidirected(src, dst, num_nodes):
    return dgl.to_bidirected(dgl.graph((src, dst), num_nodes=num_nodes))


def path_graph(n):
    return bidirected(list(range(n - 1)), list(range(1, n)), n)


def triples(g, hop_field="hop"):
    src, dst = g.edges()
    return list(zip(src.tolist(), dst.tolist(), g.edata[hop_field].tolist(), strict=True))


def nx_expected(graph, k):
    """All (u, v, d(u, v)) with 1 <= d <= k, from networkx BFS."""
    return {
        (u, v, d)
        for u, lengths in nx.all_pairs_shortest_path_length(graph, cutoff=k)
        for v, d in lengths.items()
        if 1 <= d <= k
    }


def random_case(seed):
    """A networkx graph (undirected or directed, often disconnected) and its DGL version.

    Half of the DGL graphs also get duplicate edges and self loops, which must not matter.
    """
    rng = np.random.default_rng(seed)
    n = 15 + (seed * 7) % 16
    directed = seed % 2 == 1
    p = [0.06, 0.12][seed // 2 % 2] if directed else [0.1, 0.2][seed // 2 % 2]
    graph = nx.gnp_random_graph(n, p, seed=seed, directed=directed)
    edges = np.array(list(graph.edges()), dtype=np.int64).reshape(-1, 2)
    src, dst = edges[:, 0], edges[:, 1]
    if not directed:
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    if seed % 4 < 2 and len(src):
        dup = rng.integers(0, len(src), size=5)
        loops = rng.integers(0, n, size=3)
        src = np.concatenate([src, src[dup], loops])
        dst = np.concatenate([dst, dst[dup], loops])
    g = dgl.graph((torch.from_numpy(src), torch.from_numpy(dst)), num_nodes=n)
    return graph, g


def test_path_k2_hand_written():
    new_g = KHopTransform(2)(path_graph(6))
    # fmt: off
    expected = [
        (0, 1, 1), (0, 2, 2),
        (1, 0, 1), (1, 2, 1), (1, 3, 2),
        (2, 0, 2), (2, 1, 1), (2, 3, 1), (2, 4, 2),
        (3, 1, 2), (3, 2, 1), (3, 4, 1), (3, 5, 2),
        (4, 2, 2), (4, 3, 1), (4, 5, 1),
        (5, 3, 2), (5, 4, 1),
    ]
    # fmt: on
    # Exact list, not a set: edges must come sorted by (src, dst).
    assert triples(new_g) == expected
    assert new_g.edata["hop"].dtype == torch.int64
    assert new_g.num_nodes() == 6


def test_path_k5_covers_all_pairs():
    new_g = KHopTransform(5)(path_graph(6))
    expected = [(i, j, abs(i - j)) for i in range(6) for j in range(6) if i != j]
    assert triples(new_g) == expected


def test_k_larger_than_diameter_stops_early(monkeypatch):
    hops_expanded = []
    row_blocks = khop._row_blocks
    monkeypatch.setattr(khop, "_row_blocks", lambda *a: hops_expanded.append(1) or row_blocks(*a))
    assert triples(KHopTransform(50)(path_graph(6))) == triples(KHopTransform(5)(path_graph(6)))
    # Diameter 5: hops 1..5 each find new pairs, hop 6 finds none and ends the search; the
    # k = 5 transform expands 5. Without the early stop, k = 50 would expand 50.
    assert len(hops_expanded) == 6 + 5


def test_directed_path_follows_edge_direction():
    g = dgl.graph(([0, 1, 2], [1, 2, 3]))
    assert triples(KHopTransform(2)(g)) == [(0, 1, 1), (0, 2, 2), (1, 2, 1), (1, 3, 2), (2, 3, 1)]


@pytest.mark.parametrize("k", [2, 5])
def test_ring(k):
    n = 10
    got = triples(KHopTransform(k)(ring(n, self_loops=False)))
    assert len(got) == len({(u, v) for u, v, _ in got})  # each pair exactly once
    expected = []
    for i in range(n):
        for j in range(n):
            d = min(abs(i - j), n - abs(i - j))
            if 1 <= d <= k:
                expected.append((i, j, d))
    assert got == expected
    if k == 5:
        assert len(got) == n * (n - 1)


@pytest.mark.parametrize("seed", range(20))
def test_random_graphs_match_networkx(seed):
    graph, g = random_case(seed)
    k = 1 + seed % 5
    got = triples(KHopTransform(k)(g))
    assert len(got) == len(set(got))
    assert set(got) == nx_expected(graph, k)
    assert got == sorted(got)


def test_random_graphs_include_disconnected_ones():
    undirected = [random_case(s)[0] for s in range(0, 20, 2)]
    assert sum(not nx.is_connected(graph) for graph in undirected) >= 3


def test_small_product_blocks_give_same_result(monkeypatch):
    graph, g = random_case(3)
    expected = triples(KHopTransform(4)(g))
    monkeypatch.setattr(khop, "_BLOCK_PRODUCTS", 7)
    assert triples(KHopTransform(4)(g)) == expected
    assert set(expected) == nx_expected(graph, 4)


def test_self_loops_adds_n_hop_zero_edges():
    _, g = random_case(0)  # has input self loops and duplicates
    n = g.num_nodes()
    without = triples(KHopTransform(3)(g))
    with_loops = triples(KHopTransform(3, self_loops=True)(g))
    assert len(with_loops) == len(without) + n
    assert sorted(t for t in with_loops if t[2] == 0) == [(i, i, 0) for i in range(n)]
    assert [t for t in with_loops if t[2] != 0] == without
    assert with_loops == sorted(with_loops)


def test_input_self_loops_do_not_become_edges():
    g = dgl.graph(([0, 0, 1, 1], [0, 1, 1, 0]))
    assert triples(KHopTransform(3)(g)) == [(0, 1, 1), (1, 0, 1)]


@pytest.mark.parametrize("idtype", [torch.int64, torch.int32])
def test_batched_equals_batch_of_transforms(idtype):
    g1 = random_case(2)[1].astype(idtype)
    g2 = ring(10, self_loops=False).astype(idtype)
    g3 = dgl.graph(([], []), num_nodes=3, idtype=idtype)  # no edges: batch_num_edges holds 0
    g4 = random_case(5)[1].astype(idtype)
    transform = KHopTransform(3)
    # Converted after batching, an int32 batch keeps int64 batch sizes: DGL wants int32 back.
    batched = transform(dgl.batch([g.long() for g in (g1, g2, g3, g4)]).astype(idtype))
    expected = dgl.batch([transform(g) for g in (g1, g2, g3, g4)])

    assert triples(batched) == triples(expected)
    assert torch.equal(batched.batch_num_nodes(), expected.batch_num_nodes())
    assert torch.equal(batched.batch_num_edges(), expected.batch_num_edges())
    assert batched.batch_size == 4

    graph_id = torch.repeat_interleave(torch.arange(4), batched.batch_num_nodes())
    src, dst = batched.edges()
    assert torch.equal(graph_id[src], graph_id[dst])

    for part, g in zip(dgl.unbatch(batched), (g1, g2, g3, g4), strict=True):
        assert triples(part) == triples(transform(g))


def test_a_batch_of_two_graphs_keeps_its_batch_information():
    """Two graphs (a path 0-1-2 and an edge 3-4) stay a batch of 2, edges counted per graph."""
    batched = KHopTransform(2)(dgl.batch([path_graph(3), path_graph(2)]))
    assert batched.batch_size == 2
    assert batched.batch_num_nodes().tolist() == [3, 2]
    assert batched.batch_num_edges().tolist() == [6, 2]  # all 6 ordered pairs of 3; 3→4, 4→3


def test_node_data_copied_edge_data_dropped():
    g = path_graph(5)
    g.ndata["x"] = torch.randn(5, 3)
    g.ndata["label"] = torch.arange(5)
    g.edata["w"] = torch.ones(g.num_edges())
    new_g = KHopTransform(2, hop_field="dist")(g)
    assert set(new_g.ndata.keys()) == {"x", "label", "dist_radius"}  # + the recorded k
    assert torch.equal(new_g.ndata["x"], g.ndata["x"])
    assert torch.equal(new_g.ndata["label"], g.ndata["label"])
    assert set(new_g.edata.keys()) == {"dist"}
    # The input graph is left alone.
    assert g.num_edges() == 8
    assert set(g.edata.keys()) == {"w"}


def test_keeps_idtype_and_device():
    g = path_graph(4).int()
    new_g = KHopTransform(2)(g)
    assert new_g.idtype == torch.int32
    assert new_g.device == g.device
    assert new_g.edata["hop"].dtype == torch.int64


def test_bound_error():
    g = dgl.graph(([], []), num_nodes=30)
    g = dgl.add_edges(g, *torch.nonzero(~torch.eye(30, dtype=torch.bool), as_tuple=True))
    with pytest.raises(ValueError, match=r"max_edges=100\b") as info:
        KHopTransform(3, max_edges=100)(g)
    message = str(info.value)
    assert "max_edges" in message
    assert "870" in message  # the 30 * 29 hop-1 edges already exceed the bound
    assert "hop 1 of 3" in message


def test_bound_is_inclusive_and_counts_later_hops():
    g = ring(10, self_loops=False)  # 90 ordered pairs within 5 hops, 20 of them at hop 1
    assert KHopTransform(5, max_edges=90)(g).num_edges() == 90
    with pytest.raises(ValueError, match="max_edges=89") as info:
        KHopTransform(5, max_edges=89)(g)
    assert "hop 5 of 5" in str(info.value)
    with pytest.raises(ValueError, match="hop 2 of 5"):
        KHopTransform(5, max_edges=30)(g)
    with pytest.raises(ValueError, match="max_edges"):
        KHopTransform(5, max_edges=95, self_loops=True)(g)


@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one(k):
    with pytest.raises(ValueError, match="KHopTransform: k must be a positive integer"):
        KHopTransform(k)


@pytest.mark.parametrize("k", [2.5, "2", True, None])
def test_k_not_int(k):
    with pytest.raises(TypeError, match="KHopTransform: k must be a positive integer"):
        KHopTransform(k)
    with pytest.raises(TypeError, match="max_edges must be a non-negative integer"):
        KHopTransform(2, max_edges=k)


def test_bad_max_edges():
    with pytest.raises(ValueError, match="max_edges"):
        KHopTransform(2, max_edges=-1)
    with pytest.raises(TypeError, match="max_edges"):
        KHopTransform(2, max_edges=1.5)


def test_heterograph_rejected():
    g = dgl.heterograph(
        {
            ("user", "follows", "user"): ([0, 1], [1, 2]),
            ("user", "plays", "game"): ([0, 1], [0, 1]),
        }
    )
    with pytest.raises(dgl.DGLError, match="homogeneous") as info:
        KHopTransform(2)(g)
    assert "dgl.to_homogeneous" in str(info.value)
    block = dgl.to_block(dgl.graph(([0, 1], [1, 2])), torch.tensor([1, 2]))
    with pytest.raises(dgl.DGLError, match="block.*sample subgraphs instead"):
        KHopTransform(2)(block)


def test_empty_graph():
    new_g = KHopTransform(3)(dgl.graph(([], []), num_nodes=0))
    assert new_g.num_nodes() == 0
    assert new_g.num_edges() == 0
    assert new_g.edata["hop"].dtype == torch.int64
    assert new_g.edata["hop"].shape == (0,)


def test_graph_without_edges():
    g = dgl.graph(([], []), num_nodes=4)
    assert KHopTransform(3)(g).num_edges() == 0
    assert triples(KHopTransform(3, self_loops=True)(g)) == [(i, i, 0) for i in range(4)]


def test_repr():
    assert repr(KHopTransform(3)) == (
        "KHopTransform(k=3, hop_field='hop', max_edges=50000000, self_loops=False)"
    )
    assert repr(KHopTransform(2, hop_field="d", max_edges=10, self_loops=True)) == (
        "KHopTransform(k=2, hop_field='d', max_edges=10, self_loops=True)"
    )


def test_docstring_example_runs():
    result = doctest.testmod(khop, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_radius_is_recorded_and_survives_batching():
    g1, g2 = path_graph(5), ring(7, self_loops=False)
    transform = KHopTransform(3)
    t1, t2 = transform(g1), transform(g2)
    assert t1.ndata["hop_radius"].tolist() == [3] * 5
    assert t1.ndata["hop_radius"].dtype == torch.int64
    batched = dgl.batch([t1, t2])
    assert batched.ndata["hop_radius"].tolist() == [3] * 12
    parts = dgl.unbatch(batched)
    assert [p.ndata["hop_radius"].tolist() for p in parts] == [[3] * 5, [3] * 7]
    assert KHopTransform(2, hop_field="dist")(g1).ndata["dist_radius"].tolist() == [2] * 5


@pytest.mark.parametrize("hop_field", ["hop", "dist"])
def test_a_rewired_graph_is_not_rewired_again(hop_field):
    # On a rewired path, 0–2 is one edge: a second rewiring would call it 1 hop.
    rewired = KHopTransform(2)(path_graph(5))
    with pytest.raises(dgl.DGLError, match=r"rewired already .*edata\['hop'\]"):
        KHopTransform(3, hop_field=hop_field)(rewired)
    with pytest.raises(dgl.DGLError, match="rewired already"):
        KHopTransform(3)(dgl.batch([rewired, rewired]))


@pytest.mark.parametrize("self_loops", ["before", "after", "transform"])
def test_each_hop_graph_has_the_pairs_at_that_distance_and_one_self_loop_a_node(self_loops):
    # Self loops added before the rewiring, after it (dgl.add_self_loop labels them hop 1) or
    # by the transform (hop 0) are all distance 0: hop k holds the pairs networkx puts k apart.
    g = dgl.to_bidirected(
        dgl.graph(
            (torch.tensor([0, 1, 2, 3, 5, 6, 8, 9]), torch.tensor([1, 2, 3, 4, 6, 7, 9, 10])),
            num_nodes=12,
        )
    )
    distances = dict(nx.all_pairs_shortest_path_length(g.to_networkx()))
    if self_loops == "before":
        g = dgl.add_self_loop(g)
    rewired = KHopTransform(3, self_loops=self_loops == "transform")(g)
    if self_loops == "after":
        rewired = dgl.add_self_loop(rewired)
    for k, hop in enumerate(hop_graphs(rewired, 3), start=1):
        pairs = sorted(zip(*(t.tolist() for t in hop.edges())))
        expected = sorted([(u, v) for u in distances for v, d in distances[u].items() if d == k]
                          + [(u, u) for u in range(12)])  # fmt: skip
        assert pairs == expected


def test_fewer_hop_graphs_than_the_rewiring_computed_hold_only_their_own_hops():
    # Rewired to 5 hops, read to 2 (a kGCN with max_hop below the transform's k): hop graph k
    # holds the pairs exactly k apart, not those beyond max_hop lumped into the last one.
    rewired = KHopTransform(5)(path_graph(6))
    distances = dict(nx.all_pairs_shortest_path_length(nx.path_graph(6)))
    for k, hop in enumerate(hop_graphs(rewired, 2), start=1):
        pairs = sorted(zip(*(t.tolist() for t in hop.edges())))
        expected = sorted([(u, v) for u in distances for v, d in distances[u].items() if d == k]
                          + [(u, u) for u in range(6)])  # fmt: skip
        assert pairs == expected


def test_hop_labels_that_count_no_hop_are_left_out():
    # A triangle labelled by hand: only the whole, positive labels 1 and 2 are hops.
    g = dgl.graph(([0, 1, 2, 0], [1, 2, 0, 2]))
    g.edata["hop"] = torch.tensor([1, -1, 2, 0])
    assert [h.num_edges() for h in hop_graphs(g, 2)] == [3 + 1, 3 + 1]
    g.edata["hop"] = torch.tensor([1.0, 1.5, 2.0, 1.0])
    assert [sorted(zip(*(t.tolist() for t in h.edges()))) for h in hop_graphs(g, 2)] == [
        [(0, 0), (0, 1), (0, 2), (1, 1), (2, 2)],
        [(0, 0), (1, 1), (2, 0), (2, 2)],
    ]


def test_an_empty_rewired_graph_splits_into_empty_hop_graphs():
    # Its recorded radius has no entries (no minimum to read): nothing to check, nothing to split.
    empty = KHopTransform(3)(dgl.graph(([], []), num_nodes=0))
    split = hop_graphs(empty, 3)
    assert [(g.num_nodes(), g.num_edges()) for g in split] == [(0, 0)] * 3


def test_boolean_hop_labels_are_no_hop_counts():
    g = KHopTransform(2)(path_graph(3))
    g.edata["hop"] = g.edata["hop"] >= 1  # a mask is no distance, though True == 1
    with pytest.raises(dgl.DGLError, match=r"one hop count per edge .* got torch.bool"):
        hop_graphs(g, 2)


def test_hop_labels_replaced_outside_inference_mode_still_split_with_an_inference_radius():
    # Rewired under inference mode, then labels rewritten outside it: the recorded radius is
    # still an inference tensor (no edit count), so the split is not cached, not refused.
    with torch.inference_mode():
        g = KHopTransform(2)(path_graph(4))
    g.edata["hop"] = g.edata["hop"].clone()  # (a normal tensor again)
    assert g.ndata["hop_radius"].is_inference() and not g.edata["hop"].is_inference()
    assert [h.num_edges() for h in hop_graphs(g, 2)] == [6 + 4, 4 + 4]  # + 4 self loops
