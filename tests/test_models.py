"""Every backbone: plain and SSM twins, parameters, buffers, save/load, tasks, registry."""

import io
import math
import pickle
import warnings

import dgl
import networkx as nx
import numpy as np
import pytest
import torch

from dgl_ssm import MODELS, KHopTransform, build_model, is_khop, is_ssm
from dgl_ssm.analysis import layer_energies, layer_inputs
from tests.conftest import layer_by_layer, numpy_gcn_adjacency, random_graph, ring

TWINS = [
    ("gcn", "gcn_ssm"),
    ("gin", "gin_ssm"),
    ("gatedgcn", "gatedgcn_ssm"),
    ("gat", "gat_ssm"),
    ("sage", "sage_ssm"),
    ("kgcn", "kgcn_ssm"),
]
ARGS = dict(in_feats=5, hidden=16, out_feats=3, num_layers=4)


def graph_for(name):
    graph = random_graph(30, 60, seed=1)
    return KHopTransform(k=4)(graph) if is_khop(name) else graph


def trainable(model):
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


@pytest.mark.parametrize("plain,ssm", TWINS)
def test_plain_and_ssm_twins_have_identical_trainable_parameters(plain, ssm):
    plain_model, ssm_model = build_model(plain, **ARGS), build_model(ssm, **ARGS)
    assert trainable(plain_model) == trainable(ssm_model)
    assert not is_ssm(plain) and is_ssm(ssm)


@pytest.mark.parametrize("plain,ssm", TWINS)
def test_twins_built_with_a_norm_and_dropout_both_have_them(plain, ssm):
    twins = [build_model(name, **ARGS, norm="layer", dropout=0.3) for name in (plain, ssm)]
    assert trainable(twins[0]) == trainable(twins[1])
    for model in twins:
        assert sum(isinstance(m, torch.nn.LayerNorm) for m in model.modules()) == 4
        assert all(layer.dropout.p == 0.3 for layer in model.layers)


def test_a_residual_plain_layer_adds_its_input():
    """GCN(residual=True), layer by layer: H' = relu(Â H W + b) + H, with Â from numpy."""
    torch.manual_seed(0)
    bare, feat = random_graph(12, 24, seed=4, self_loops=False), torch.randn(12, 5)
    graph, a_hat = dgl.add_self_loop(bare), numpy_gcn_adjacency(bare)
    model = build_model("gcn", **ARGS, residual=True)
    calls, _ = layer_by_layer(model, graph, feat)
    for layer, state, _ in calls:
        conv = layer.conv
        h = state.numpy()
        expected = np.maximum(a_hat @ h @ conv.weight.detach().numpy()
                              + conv.bias.detach().numpy(), 0) + h  # fmt: skip
        with torch.no_grad():
            np.testing.assert_allclose(layer(graph, state).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("name", [ssm for _, ssm in TWINS])
def test_lambda_and_b_are_in_state_dict_but_not_parameters(name):
    model = build_model(name, **ARGS, shared_ssm=False, state="orthogonal")
    params = {id(p) for p in model.parameters()}
    buffers = {k: v for k, v in model.state_dict().items() if k.endswith("_matrix")}
    assert len(buffers) == 2 * ARGS["num_layers"]
    assert all(id(v) not in params and not v.requires_grad for v in buffers.values())


@pytest.mark.parametrize("name", [n for pair in TWINS for n in pair])
def test_save_load_round_trip_gives_identical_outputs(name):
    torch.manual_seed(0)
    graph, feat = graph_for(name), torch.randn(30, 5)
    model = build_model(name, **ARGS, norm="batch").eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(123)  # a different initialisation, overwritten by the load
    other = build_model(name, **ARGS, norm="batch").eval()
    other.load_state_dict(torch.load(buffer))
    torch.testing.assert_close(other(graph, feat), model(graph, feat), rtol=0, atol=0)


def test_a_per_layer_checkpoint_is_refused_by_a_shared_model():
    torch.manual_seed(0)
    graph, feat = graph_for("gcn_ssm"), torch.randn(30, 5)
    per_layer = build_model("gcn_ssm", **ARGS, state="orthogonal", shared_ssm=False).eval()
    shared = build_model("gcn_ssm", **ARGS, state="orthogonal")
    with pytest.raises(RuntimeError, match="different state_matrix per layer.*shared_ssm=False"):
        shared.load_state_dict(per_layer.state_dict())
    # The other way is exact: a shared (Λ, B) is a per-layer one that happens to be equal.
    twin = build_model("gcn_ssm", **ARGS, shared_ssm=False).eval()
    twin.load_state_dict(shared.state_dict())
    torch.testing.assert_close(twin(graph, feat), shared.eval()(graph, feat), rtol=0, atol=0)
    again = build_model("gcn_ssm", **ARGS, state="orthogonal", shared_ssm=False).eval()
    again.load_state_dict(per_layer.state_dict())
    torch.testing.assert_close(again(graph, feat), per_layer(graph, feat), rtol=0, atol=0)
    two = dict(ARGS, num_layers=2)  # only the second layer's Λ differs from the first's
    with pytest.raises(RuntimeError, match="different state_matrix per layer"):
        build_model("gcn_ssm", **two, state="orthogonal").load_state_dict(
            build_model("gcn_ssm", **two, state="orthogonal", shared_ssm=False).state_dict()
        )


def test_functional_call_on_a_shared_lambda_by_one_path_leaves_the_model_as_it_was():
    # As the shared_ssm docstring says: one path, tie_weights=False (pytorch#164759).
    torch.manual_seed(0)
    graph, feat = graph_for("gcn_ssm"), torch.randn(30, 5)
    model = build_model("gcn_ssm", **ARGS).eval()
    before = model(graph, feat)
    halved = build_model("gcn_ssm", **ARGS).eval()
    halved.load_state_dict(model.state_dict())
    with torch.no_grad():
        halved.layers[0].update.state_matrix.mul_(0.5)  # every layer's: it is one buffer
    lam = model.layers[0].update.state_matrix
    out = torch.func.functional_call(
        model, {"layers.0.update.state_matrix": 0.5 * lam}, (graph, feat), tie_weights=False
    )
    torch.testing.assert_close(out, halved(graph, feat), rtol=0, atol=0)
    torch.testing.assert_close(model(graph, feat), before, rtol=0, atol=0)


def test_per_layer_matrices_differ_and_shared_ones_are_one():
    shared = build_model("gcn_ssm", **ARGS, state="orthogonal")
    per_layer = build_model("gcn_ssm", **ARGS, state="orthogonal", shared_ssm=False)
    assert shared.layers[0].update is shared.layers[3].update
    first, last = (per_layer.layers[i].update.state_matrix for i in (0, 3))
    assert not torch.allclose(first, last)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per_layer"])
def test_ssm_matrices_do_not_depend_on_the_global_seed(shared):
    def ssm_buffers(global_seed, ssm_seed=0):
        torch.manual_seed(global_seed)
        model = build_model("gcn_ssm", **ARGS, state="random", input="orthogonal",
                            shared_ssm=shared, ssm_seed=ssm_seed)  # fmt: skip
        buffers = model.named_buffers(remove_duplicate=False)  # a shared pair once a layer
        return {k: v for k, v in buffers if k.endswith("_matrix")}

    a, b = ssm_buffers(1), ssm_buffers(2)
    assert len(a) == 2 * len(build_model("gcn_ssm", **ARGS).layers)  # Λ and B of every layer
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    other = ssm_buffers(1, ssm_seed=1)  # ... but they do depend on the SSM's own seed
    assert all(not torch.equal(a[key], other[key]) for key in a)


@pytest.mark.parametrize("name", ["gcn_ssm", "gin_ssm", "gatedgcn_ssm", "sage", "kgcn_ssm"])
@pytest.mark.parametrize("readout", ["mean", "sum", "max", "sum+max+mean"])
def test_graph_task_gives_one_output_per_graph(name, readout):
    graphs = [graph_for(name) for _ in range(3)]
    batch = dgl.batch(graphs)
    model = build_model(name, **ARGS, task="graph", readout=readout).eval()
    out = model(batch, torch.randn(batch.num_nodes(), 5))
    assert out.shape == (3, 3)
    single = model(graphs[0], torch.randn(30, 5))
    assert single.shape == (1, 3)


def test_concatenated_readout_feeds_the_head_sum_max_and_mean_of_each_graph():
    model = build_model("gcn_ssm", **ARGS, task="graph", readout="sum+max+mean",
                        head_activation="leaky_relu").eval()  # fmt: skip
    assert isinstance(model.head[1], torch.nn.LeakyReLU)
    graphs = [random_graph(n, 3 * n, seed=n) for n in (7, 12)]
    batch = dgl.batch(graphs)
    feat = torch.randn(batch.num_nodes(), 5)
    seen = {}
    model.head.register_forward_pre_hook(lambda _, args: seen.update(pooled=args[0]))
    out = model(batch, feat)
    with torch.no_grad():  # node states by hand: encoder, then the layers one by one
        state = model.encoder(feat)
        for layer in model.layers:
            state = layer(batch, state)
    parts = torch.split(state, [7, 12])
    expected = torch.stack([torch.cat([p.sum(0), p.max(0).values, p.mean(0)]) for p in parts])
    torch.testing.assert_close(seen["pooled"], expected)
    assert out.shape == (2, 3)


def test_graph_readout_pools_per_graph():
    model = build_model("gcn_ssm", **ARGS, task="graph", readout="sum").eval()
    g = random_graph(30, 60, seed=1)
    feat = torch.randn(30, 5)
    alone = model(g, feat)
    both = model(dgl.batch([g, g]), torch.cat([feat, feat]))
    torch.testing.assert_close(both, alone.expand(2, -1))


def test_the_default_readout_is_the_mean():
    # One graph, and one made of two disjoint copies of it: the mean of each node's state is
    # the same, the sum doubles (a sum default would tell them apart).
    model = build_model("gcn_ssm", **ARGS, task="graph").eval()
    g = random_graph(30, 60, seed=1)
    feat = torch.randn(30, 5)
    doubled = dgl.batch([g, g])
    doubled.set_batch_num_nodes(torch.tensor([60]))
    doubled.set_batch_num_edges(torch.tensor([2 * g.num_edges()]))
    torch.testing.assert_close(model(doubled, torch.cat([feat, feat])), model(g, feat))


def test_input_dropout_acts_on_the_raw_features_before_the_encoder():
    # With all-zero features, dropout before the encoder changes nothing: the first layer
    # sees the encoder's bias on every node. After it, entries would be zeroed or doubled.
    torch.manual_seed(0)
    model = build_model("gcn_ssm", **ARGS, dropout=0.5).train()
    g, seen = random_graph(30, 60, seed=1), []
    hook = model.layers[0].register_forward_pre_hook(lambda m, args: seen.append(args[1]))
    model(g, torch.zeros(30, 5))
    hook.remove()
    torch.testing.assert_close(seen[0], model.encoder.bias.detach().expand(30, -1))


def test_gatedgcn_uses_edge_features_and_returns_them_through_the_stack():
    g = random_graph(30, 60, seed=1)
    model = build_model("gatedgcn_ssm", **ARGS, edge_feats=2)
    e = torch.randn(g.num_edges(), 2)
    out = model(g, torch.randn(30, 5), e)
    out.sum().backward()
    assert model.edge_encoder.weight.grad.abs().sum() > 0
    # Each layer reads the edge features the conv before it wrote, through σ = relu: E⁽¹⁾ is
    # relu of layer 1's conv output, recomputed here from the conv alone.
    model.eval()
    calls = layer_inputs(model, g, torch.randn(30, 5), e)
    with torch.no_grad():
        _, conv_edges = model.layers[0].conv(g, calls[0].feat, calls[0].edge_feat)
    assert torch.equal(calls[0].edge_feat, model.edge_encoder(e))
    torch.testing.assert_close(calls[1].edge_feat, torch.relu(conv_edges))
    assert not torch.allclose(calls[1].edge_feat, calls[0].edge_feat)


def test_cumulative_mode_sums_one_conv_per_hop():
    g = graph_for("kgcn_ssm")
    model = build_model("kgcn_ssm", **ARGS, hop_mode="cumulative", max_hop=3, delay=1)
    assert [len(layer.conv.convs) for layer in model.layers] == [1, 2, 3, 3]
    out = model(g, torch.randn(30, 5))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_exact_mode_layer_l_reads_only_hop_l():
    # On a path 0-1-2-3-4, the second exact k-hop layer reads hop 2 only: node 0's output
    # depends on the state entering that layer at node 0 (the residual) and node 2, not at
    # node 1 (hop 1, which a cumulative layer would also read) nor at nodes 3 and 4.
    path = dgl.to_bidirected(dgl.graph(([0, 1, 2, 3], [1, 2, 3, 4])))
    g = KHopTransform(k=2)(path)
    model = build_model(
        "kgcn",
        in_feats=1,
        hidden=4,
        out_feats=1,
        num_layers=2,
        activation="identity",
        residual=True,
    )
    entering = []

    def keep_input(_, args):
        args[1].retain_grad()
        entering.append(args[1])

    model.layers[1].register_forward_pre_hook(keep_input)
    model(g, torch.randn(5, 1))[0].sum().backward()
    reached = (entering[0].grad.abs().sum(1) > 0).tolist()
    assert reached == [True, False, True, False, False]


def test_every_registered_model_builds_and_runs():
    for name in MODELS:
        out = build_model(name, **ARGS)(graph_for(name), torch.randn(30, 5))
        assert out.shape == (30, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["gcn_ssm", "gatedgcn_ssm", "kgcn_ssm"])
@pytest.mark.parametrize("checkpoint", [True, 3])
def test_checkpointing_gives_the_same_outputs_and_gradients(name, checkpoint):
    graph, feat = graph_for(name), torch.randn(30, 5)
    if is_khop(name):  # 7 layers read hops 1..7: rewire with radius 7
        graph = KHopTransform(k=7)(random_graph(30, 60, seed=1))
    args = dict(ARGS, num_layers=7, dropout=0.3)
    torch.manual_seed(0)
    plain = build_model(name, **args)
    torch.manual_seed(0)
    saved = build_model(name, **args, checkpoint=checkpoint)
    grads = []
    for model in (plain, saved):
        torch.manual_seed(1)  # the same dropout masks (checkpoint replays the RNG state)
        out = model(graph, feat)
        out.pow(2).sum().backward()
        # (GatedGCN's last edge update feeds nothing, so its weights get no gradient)
        grads.append((out.detach(), [p.grad for p in model.parameters()]))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    for a, b in zip(grads[0][1], grads[1][1]):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)
    assert saved.segments == 3  # asked for 3, or True: round(√7) = 3


def batch_norm_model(checkpoint, momentum=0.1):
    """A 9-layer GCN-SSM with BatchNorm, the same weights with and without checkpointing."""
    torch.manual_seed(0)
    model = build_model("gcn_ssm", **dict(ARGS, num_layers=9), norm="batch",
                        checkpoint=checkpoint)  # fmt: skip
    for layer in model.layers:
        layer.norm.momentum = momentum
    return model


@pytest.mark.parametrize("momentum", [0.1, None])  # None: BatchNorm's cumulative average
def test_checkpointing_updates_batch_norm_statistics_once_per_step(momentum):
    """The recomputation in the backward pass must not update the running statistics again:
    after two steps they are those of the same model trained without checkpointing."""
    graph, feat = graph_for("gcn_ssm"), torch.randn(30, 5)
    models = []
    for checkpoint in (False, True):
        model = batch_norm_model(checkpoint, momentum)
        for _ in range(2):
            model(graph, feat).pow(2).sum().backward()
        models.append(model)
    plain, saved = models
    assert saved.segments == 3  # two recomputed segments of three layers
    for a, b in zip(plain.layers, saved.layers):
        assert int(b.norm.num_batches_tracked) == 2
        torch.testing.assert_close(b.norm.running_mean, a.norm.running_mean)
        torch.testing.assert_close(b.norm.running_var, a.norm.running_var)
        assert b.norm.momentum == momentum
    plain.eval(), saved.eval()
    torch.testing.assert_close(saved(graph, feat), plain(graph, feat))


def saved_bytes(model, graph, feat):
    """Bytes autograd keeps for the backward pass of one forward pass (tensors by storage)."""
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(graph, feat)
    return sum(storages.values())


@pytest.mark.parametrize("name", ["gcn_ssm", "gcn"])
def test_checkpointing_keeps_about_sqrt_l_states_instead_of_l(name):
    graph, feat = graph_for(name), torch.randn(30, 5)
    args = dict(ARGS, num_layers=16, hidden=32)
    torch.manual_seed(0)
    full = saved_bytes(build_model(name, **args), graph, feat)
    # 4 segments: the inputs of the 3 recomputed ones are kept, and the 4 layers of the last.
    kept = saved_bytes(build_model(name, **args, checkpoint=True), graph, feat)
    state = 30 * 32 * 4  # one (N, d) float32 layer state
    assert full > 16 * state  # every layer keeps at least one state-sized tensor
    # A layer keeps about full / 16; the last segment keeps 4 layers' worth, and the 3 other
    # segment inputs (one state each) with the encoder and head stay under one more.
    assert kept < full * (4 + 1) / 16 + 3 * state


def test_checkpointing_is_refused_with_cumulative_hops():
    with pytest.raises(ValueError, match="checkpoint is not available with hop_mode='cumulative'"):
        build_model("kgcn_ssm", **ARGS, hop_mode="cumulative", checkpoint=True)


# --- k-hop layers past K and the transform's radius -------------------------------------------


def hop_pairs_by_networkx(graph, hop):
    """Ordered pairs (u, v), u ≠ v, at shortest-path distance exactly ``hop``."""
    nx_graph = nx.DiGraph()
    nx_graph.add_nodes_from(range(graph.num_nodes()))
    nx_graph.add_edges_from(zip(*(t.tolist() for t in graph.edges())))
    return {
        (u, v)
        for u, lengths in nx.all_pairs_shortest_path_length(nx_graph, cutoff=hop)
        for v, d in lengths.items()
        if d == hop
    }


def layer_graphs_seen(model, graph, feat):
    """The graph each layer is called with, read by forward pre-hooks."""
    seen = []
    hooks = [
        layer.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
        for layer in model.layers
    ]
    try:
        with torch.no_grad():
            model(graph, feat)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def other_node_pairs(graph):
    src, dst = graph.edges()
    keep = src != dst
    return set(zip(src[keep].tolist(), dst[keep].tolist()))


@pytest.mark.parametrize("past_max_hop", ["empty", "repeat"])
def test_exact_layers_read_hop_l_and_past_k_follow_the_option(past_max_hop):
    bare = random_graph(40, 50, seed=7, self_loops=False)
    graph = KHopTransform(k=3)(bare)
    args = dict(ARGS, num_layers=6, max_hop=3, past_max_hop=past_max_hop)
    model = build_model("kgcn_ssm", **args)
    seen = layer_graphs_seen(model, graph, torch.randn(40, 5))
    assert len(seen) == 6
    for layer, layer_graph in enumerate(seen, start=1):
        hop = layer if layer <= 3 else (None if past_max_hop == "empty" else 3)
        expected = set() if hop is None else hop_pairs_by_networkx(bare, hop)
        assert other_node_pairs(layer_graph) == expected, layer
        assert layer_graph.num_edges() == len(expected) + 40  # one self loop a node
    assert hop_pairs_by_networkx(bare, 3)  # the case is not trivially empty


def test_model_reading_hops_the_transform_never_stored_is_refused():
    graph = KHopTransform(k=2)(random_graph(20, 30, seed=2, self_loops=False))
    model = build_model("kgcn_ssm", **dict(ARGS, num_layers=6))
    with pytest.raises(dgl.DGLError, match=r"KHopTransform\(k=2\).*hops 3\.\.6"):
        model(graph, torch.randn(20, 5))
    batched = dgl.batch([graph, graph])  # the radius is node data: it survives batching
    with pytest.raises(dgl.DGLError, match=r"KHopTransform\(k=6\)"):
        model(batched, torch.randn(40, 5))
    # K within the radius is fine; layers 3..6 then read no other node.
    ok = build_model("kgcn_ssm", **dict(ARGS, num_layers=6, max_hop=2))
    assert ok(batched, torch.randn(40, 5)).shape == (40, 3)
    with pytest.raises(ValueError, match="past_max_hop"):
        build_model("kgcn_ssm", **dict(ARGS, past_max_hop="last"))


def arr(tensor):
    return tensor.detach().double().numpy()


def hop_adjacency(bare, hop):
    """Â_k = D^-1/2 (A_k + I) D^-1/2 of the hop-k pairs (networkx), indexed [dst, src]."""
    adj = np.eye(bare.num_nodes())
    for u, v in hop_pairs_by_networkx(bare, hop):
        adj[v, u] = 1.0
    return adj / np.sqrt(np.outer(adj.sum(1), adj.sum(0)))


def ssm_step(layer, h, conv):
    lam, beta = arr(layer.update.state_matrix), arr(layer.update.input_matrix)
    return h @ lam.T + np.maximum(conv, 0.0) @ beta.T


def dense_kgcn_ssm(model, bare, feat):
    """kGCN-SSM forward in numpy from networkx hop distances (the reproduction's setting:
    K = num_layers, graph rewired with KHopTransform(k=K)): layer ℓ reads hop ℓ."""
    h = arr(feat) @ arr(model.encoder.weight).T + arr(model.encoder.bias)
    for hop, layer in enumerate(model.layers, start=1):
        conv = hop_adjacency(bare, hop) @ h @ arr(layer.conv.weight) + arr(layer.conv.bias)
        h = ssm_step(layer, h, conv)
    return h @ arr(model.head.weight).T + arr(model.head.bias)


def dense_drew_kgcn_ssm(model, bare, feat, max_hop, delay):
    """Cumulative (DRew) kGCN-SSM in numpy: layer ℓ sums one GCN per hop k ≤ min(ℓ, K), hop k
    reading the delayed state H^(ℓ−1−τ(k)), τ(k) = max(0, k − ν) (Gutteridge et al. 2023),
    the state before the encoder's being H^(0)."""
    states = [arr(feat) @ arr(model.encoder.weight).T + arr(model.encoder.bias)]
    for ell, layer in enumerate(model.layers, start=1):
        convs = layer.conv.convs
        assert len(convs) == min(ell, max_hop)
        total = 0.0
        for k, conv in enumerate(convs, start=1):
            source = states[max(0, ell - 1 - max(0, k - delay))]
            total = total + hop_adjacency(bare, k) @ source @ arr(conv.weight) + arr(conv.bias)
        states.append(ssm_step(layer, states[-1], total))
    return states[-1] @ arr(model.head.weight).T + arr(model.head.bias)


def test_cumulative_mode_with_delay_equals_drew_by_hand():
    bare = random_graph(16, 20, seed=5, self_loops=False)
    torch.manual_seed(0)
    model = build_model("kgcn_ssm", **dict(ARGS, num_layers=5), hop_mode="cumulative",
                        max_hop=3, delay=1, input="random", input_scale=1.0).double()  # fmt: skip
    feat = torch.randn(16, 5, dtype=torch.float64)
    with torch.no_grad():
        out = model(KHopTransform(k=3)(bare), feat).numpy()
    expected = dense_drew_kgcn_ssm(model, bare, feat, max_hop=3, delay=1)
    assert abs(out).max() > 1e-3
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("past_max_hop", ["empty", "repeat"])
def test_kgcn_ssm_with_k_equal_to_depth_is_unchanged(past_max_hop):
    # benchmarks/train.py rewires with KHopTransform(k=max_hop or num_layers), and the
    # reproduction uses max_hop = num_layers: there, past_max_hop must not matter.
    bare = random_graph(30, 40, seed=3, self_loops=False)
    graph = KHopTransform(k=5)(bare)
    torch.manual_seed(0)
    args = dict(ARGS, num_layers=5, max_hop=5, past_max_hop=past_max_hop)
    model = build_model("kgcn_ssm", **args, input="random", input_scale=1.0).double()
    feat = torch.randn(30, 5, dtype=torch.float64)
    with torch.no_grad():
        out = model(graph, feat).numpy()
    expected = dense_kgcn_ssm(model, bare, feat)
    assert abs(out).max() > 1e-3
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


class SumOfEmbeddings(torch.nn.Module):
    """Integer codes (n, c) → Σ_c table_c[code]: what OGB's Atom/BondEncoder do."""

    def __init__(self, sizes, hidden):
        super().__init__()
        self.tables = torch.nn.ModuleList(torch.nn.Embedding(s, hidden) for s in sizes)

    def forward(self, codes):
        return sum(table(codes[:, i]) for i, table in enumerate(self.tables))


def test_custom_encoders_take_integer_codes_and_edge_features_reach_the_conv():
    graph = random_graph(12, 30, seed=1)
    atoms = torch.randint(0, 4, (12, 2))
    bonds = torch.randint(0, 3, (graph.num_edges(), 1))
    torch.manual_seed(0)
    model = build_model("gatedgcn_ssm", 2, 8, 3, 2, node_encoder=SumOfEmbeddings([4, 4], 8),
                        edge_encoder=SumOfEmbeddings([3], 8)).eval()  # fmt: skip
    assert model.uses_edge_feats and isinstance(model.encoder, SumOfEmbeddings)
    out = model(graph, atoms, bonds)
    # The node encoder is the embedding sum itself: H⁰ = Σ_c table_c[code].
    assert torch.allclose(model.encoder(atoms), model.encoder.tables[0](atoms[:, 0])
                          + model.encoder.tables[1](atoms[:, 1]))  # fmt: skip
    assert not torch.allclose(out, model(graph, atoms, (bonds + 1) % 3))  # bonds matter
    with pytest.raises(ValueError, match="one row of edge features per edge"):
        model(graph, atoms)
    with pytest.raises(ValueError, match="one row per node"):
        model(graph, atoms[:5], bonds)
    with pytest.raises(ValueError, match="uses no edge features, so it takes no edge_encoder"):
        build_model("gcn_ssm", 2, 8, 3, 2, edge_encoder=SumOfEmbeddings([3], 8))
    with pytest.raises(TypeError, match="node_encoder must be a torch.nn.Module"):
        build_model("gcn_ssm", 2, 8, 3, 2, node_encoder="atom")
    gcn = build_model("gcn_ssm", 2, 8, 3, 2, node_encoder=SumOfEmbeddings([4, 4], 8))
    assert not gcn.uses_edge_feats and gcn(graph, atoms).shape == (12, 3)


def test_inputs_are_checked_once_per_graph_and_features_until_they_change(monkeypatch):
    import dgl_ssm.models as models_module

    calls = []
    check = models_module.check_node_features
    monkeypatch.setattr(models_module, "check_node_features",
                        lambda *args, **kw: calls.append(1) or check(*args, **kw))  # fmt: skip
    graph, feat = random_graph(12, 30, seed=2), torch.randn(12, 5)
    model = build_model("gcn_ssm", 5, 8, 2, 2)
    for _ in range(3):
        model(graph, feat)
    assert len(calls) == 1  # the same pair: no second check, no device sync
    model(graph, feat.clone())
    assert len(calls) == 2  # other features
    feat[0, 0] = float("nan")  # edited in place: checked again, and refused
    with pytest.raises(ValueError, match="NaN or Inf"):
        model(graph, feat)
    feat[0, 0] = 0.0
    model(graph, feat)
    restored = pickle.loads(pickle.dumps(model))  # the memo (weak references) is not pickled
    assert torch.equal(restored(graph, feat), model(graph, feat))


def test_activations_are_names_modules_or_callables():
    graph, feat = random_graph(10, 20, seed=4), torch.randn(10, 3)
    torch.manual_seed(0)
    by_name = build_model("gcn_ssm", 3, 6, 2, 3, activation="tanh")
    torch.manual_seed(0)
    by_function = build_model("gcn_ssm", 3, 6, 2, 3, activation=torch.tanh)
    assert torch.allclose(by_name(graph, feat), by_function(graph, feat))
    with pytest.raises(ValueError, match="Unknown activation 'swish'.*or a callable"):
        build_model("gcn_ssm", 3, 6, 2, 3, activation="swish")
    with pytest.raises(TypeError, match="activation must be a name"):
        build_model("gcn_ssm", 3, 6, 2, 3, activation=3)


def test_an_activation_module_is_used_itself_not_wrapped():
    from dgl_ssm.activations import get_activation

    prelu = torch.nn.PReLU()  # its slope trains: the model must hold this very module
    assert get_activation(prelu) is prelu


@pytest.mark.parametrize(
    "name, options",
    [
        ("gcn_ssm", dict(activation=torch.nn.PReLU())),  # a trainable activation
        ("gatedgcn", {}),
        ("kgcn_ssm", dict(hop_mode="cumulative")),
        ("sage_ssm", dict(conv_options={"aggregator": "pool"})),  # DGL leaves its biases
        ("gin_ssm", dict(conv_options={"learn_eps": True})),  # ε: no reset_parameters of its own
    ],
)
def test_reset_parameters_redraws_every_parameter_as_at_construction(name, options):
    torch.manual_seed(0)
    model = build_model(name, 4, 8, 2, 3, **options)
    built = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(7.0)  # as if trained
    torch.manual_seed(0)
    model.reset_parameters()
    if name != "gatedgcn":  # (its learnt edge state is drawn before the layers, reset after)
        # the same draws in the same order: exactly the weights it was built with
        assert all(torch.equal(built[k], v) for k, v in model.state_dict().items())
    stuck = [n for n, p in model.named_parameters() if bool((p == 7.0).any())]
    assert stuck == []
    for n, p in model.named_parameters():
        if n.endswith(".eps"):
            assert p.item() == 0.0  # GINConv's init_eps
    if name == "sage_ssm":  # SAGEConv's Xavier init, not nn.Linear's, wins for the weights
        weight = model.layers[0].conv.fc_self.weight
        xavier = torch.nn.init.calculate_gain("relu") * math.sqrt(6 / (8 + 8))
        assert 1 / math.sqrt(8) < weight.abs().max() <= xavier
    # Once per module: no conv is reset by its layer and then again by the model.
    calls = []
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)  # (GINConv has none)
        if reset is not None and next(module.parameters(recurse=False), None) is not None:
            module.reset_parameters = lambda reset=reset, m=module: (calls.append(m), reset())
    model.reset_parameters()
    shared = {id(m) for m in model.modules() if isinstance(m, torch.nn.PReLU)}  # one per layer
    counts = [calls.count(m) for m in set(calls) if id(m) not in shared]
    assert counts and set(counts) == {1}


def test_a_parameter_attached_after_construction_that_reset_cannot_restore_is_named():
    from dgl.nn import GINConv

    model = build_model("gin_ssm", 4, 8, 2, 2)
    model.layers[1].conv = GINConv(torch.nn.Linear(8, 8), learn_eps=True, init_eps=0.5)
    with pytest.warns(
        UserWarning,
        match=r"GINConv.eps was not reset: .* attached after the "
        r"model was built. Call dgl_ssm.reset.remember_initial_values\(model\)",
    ):
        model.reset_parameters()
    from dgl_ssm.reset import remember_initial_values

    remember_initial_values(model)
    with torch.no_grad():
        model.layers[1].conv.eps.fill_(7.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.reset_parameters()
    assert model.layers[1].conv.eps.item() == 0.5


def test_hop_graphs_are_cached_on_the_graph_and_follow_its_hops():
    from dgl_ssm.multihop import layer_hop_graphs

    graph = KHopTransform(k=3)(ring(8, self_loops=False))
    first = layer_hop_graphs(graph, 3, 3)
    assert layer_hop_graphs(graph, 3, 3)[0] is first[0]  # built once
    assert first[1].num_edges() == 8 * 2 + 8  # hop 2 both ways, plus self loops
    graph.edata["hop"][graph.edata["hop"] == 2] = 3  # edited in place: rebuilt
    again = layer_hop_graphs(graph, 3, 3)
    assert again[0] is not first[0] and again[1].num_edges() == 8
    graph.edata["hop"] = torch.ones_like(graph.edata["hop"])  # replaced: rebuilt
    assert layer_hop_graphs(graph, 3, 3)[0].num_edges() == graph.num_edges() + 8


def test_the_radius_is_checked_when_the_hop_graphs_are_built_not_on_every_forward(monkeypatch):
    from dgl_ssm import multihop

    checks = []
    check = multihop._check_radius
    monkeypatch.setattr(multihop, "_check_radius", lambda *a: checks.append(a) or check(*a))
    graph = KHopTransform(k=3)(ring(8, self_loops=False))
    model = build_model("kgcn_ssm", 4, 4, 2, num_layers=3)
    for _ in range(3):  # a training loop: the same graph every epoch (on a GPU, a wait each)
        model(graph, torch.randn(8, 4))
    assert len(checks) == 1
    # A radius replaced (or edited in place) is a new split, checked again.
    graph.ndata["hop_radius"] = torch.full((8,), 2)
    with pytest.raises(dgl.DGLError, match=r"rewired by KHopTransform\(k=2\)"):
        model(graph, torch.randn(8, 4))
    graph.ndata["hop_radius"] = torch.full((8,), 3)
    model(graph, torch.randn(8, 4))
    graph.ndata["hop_radius"][0] = 1
    with pytest.raises(dgl.DGLError, match=r"rewired by KHopTransform\(k=1\)"):
        model(graph, torch.randn(8, 4))


def test_a_model_with_max_hop_above_its_layers_needs_only_the_hops_it_reads():
    # 2 layers read hops 1 and 2, whatever max_hop says: a graph rewired to 2 is enough, and
    # the output is the max_hop = 2 model's (the same weights).
    graph = KHopTransform(k=2)(ring(8, self_loops=False))
    torch.manual_seed(0)
    wide = build_model("kgcn_ssm", 4, 4, 2, num_layers=2, max_hop=5)
    narrow = build_model("kgcn_ssm", 4, 4, 2, num_layers=2, max_hop=2)
    narrow.load_state_dict(wide.state_dict())
    feat = torch.randn(8, 4)
    assert torch.equal(wide(graph, feat), narrow(graph, feat))
    with pytest.raises(dgl.DGLError, match=r"reads hops 1\.\.3 .*KHopTransform\(k=2\)"):
        build_model("kgcn_ssm", 4, 4, 2, num_layers=3, max_hop=5)(graph, feat)


def test_hop_graphs_split_for_fewer_hops_do_not_let_a_deeper_model_skip_the_radius_check():
    # The same max_hop, more layers: hops 1..3 are read where 1..2 were, on a graph rewired to
    # 2. The split cached by the first model must not spare the second the refusal.
    graph = KHopTransform(k=2)(ring(8, self_loops=False))
    feat = torch.randn(8, 4)
    build_model("kgcn_ssm", 4, 4, 2, num_layers=2, max_hop=5)(graph, feat)
    with pytest.raises(dgl.DGLError, match=r"reads hops 1\.\.3 .*KHopTransform\(k=2\)"):
        build_model("kgcn_ssm", 4, 4, 2, num_layers=3, max_hop=5)(graph, feat)


def test_a_graph_rewired_under_inference_mode_is_read_and_not_cached(monkeypatch):
    """Inference tensors keep no edit count, which the hop-graph cache keys on: such a graph's
    hops are split on every call (they cannot be edited in place unnoticed), not refused."""
    from dgl_ssm import multihop

    with torch.inference_mode():
        rewired = KHopTransform(k=2)(ring(8, self_loops=False))
    graph = KHopTransform(k=2)(ring(8, self_loops=False))
    torch.manual_seed(0)
    model = build_model("kgcn_ssm", 4, 4, 2, num_layers=2).eval()
    feat = torch.randn(8, 4)
    with torch.no_grad():
        assert torch.equal(model(rewired, feat), model(graph, feat))
    splits = []
    split = multihop._split_hops
    monkeypatch.setattr(multihop, "_split_hops", lambda *a: splits.append(1) or split(*a))
    for _ in range(2):
        model(rewired, feat)
        model(graph, feat)
    assert len(splits) == 2  # the inference graph's, each time; the other graph's was cached


def test_k_hop_models_are_marked_by_their_class_not_their_name():
    assert [name for name in MODELS if is_khop(name)] == ["kgcn", "kgcn_ssm"]
    from dgl_ssm_bench.config import ModelConfig

    assert ModelConfig(name="gcn_ssm", hop_mode="exact").is_khop
    assert not ModelConfig(name="gcn_platonov").is_khop and ModelConfig(name="kgcn").is_khop


class XavierEncoder(torch.nn.Module):  # as ogb.graphproppred.mol_encoder.AtomEncoder
    def __init__(self, dim):
        super().__init__()
        self.embeddings = torch.nn.ModuleList(torch.nn.Embedding(5, dim) for _ in range(3))
        for embedding in self.embeddings:
            torch.nn.init.xavier_uniform_(embedding.weight.data)

    def forward(self, x):
        return sum(e(x[:, i]) for i, e in enumerate(self.embeddings))


def test_reset_gives_an_encoder_without_reset_parameters_its_own_initialisation_back():
    """OGB's AtomEncoder draws its embeddings with Xavier in __init__ and has no
    reset_parameters: a reset that called nn.Embedding's own drew N(0, 1), 12–20× larger."""
    torch.manual_seed(0)
    encoder = XavierEncoder(16)
    model = build_model("gcn_ssm", 3, 16, 2, 2, node_encoder=encoder)
    built = [e.weight.detach().clone() for e in encoder.embeddings]
    bound = math.sqrt(6 / (5 + 16))  # Xavier's
    assert max(float(w.abs().max()) for w in built) <= bound
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(7.0)
    model.reset_parameters()
    assert all(torch.equal(e.weight, w) for e, w in zip(encoder.embeddings, built))
    assert not bool((model.layers[0].conv.weight == 7.0).any())  # the rest is redrawn
    buffer = io.BytesIO()
    torch.save(model, buffer)
    for copy in (pickle.loads(pickle.dumps(model)), torch.load(io.BytesIO(buffer.getvalue()))):
        with torch.no_grad():
            for parameter in copy.parameters():
                parameter.fill_(7.0)
        copy.reset_parameters()  # copies keep the mark
        assert all(torch.equal(e.weight, w) for e, w in zip(copy.encoder.embeddings, built))
    # torch's containers are not marked: their children's own draws are their initialisation
    sequential = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU())
    plain = build_model("gcn_ssm", 3, 16, 2, 2, node_encoder=sequential)
    before = sequential[0].weight.detach().clone()
    plain.reset_parameters()
    assert not torch.equal(sequential[0].weight, before)
    graph = ring(6)
    assert model(graph, torch.randint(0, 5, (6, 3))).shape == (6, 2)


def test_edge_weights_from_the_graph_weight_gcn_messages_as_by_hand():
    # One GCN-SSM step with weighted edges: DGL's GraphConv (norm="both") weights each message
    # and still normalises by the unweighted degrees, H₁ = H₀ + 0.1·relu(D^-½ AᵂD^-½ H₀ W + b).
    torch.manual_seed(0)
    graph, feat = random_graph(12, 20, seed=4), torch.randn(12, 5)
    graph.edata["w"] = torch.rand(graph.num_edges()) * 3
    model = build_model("gcn_ssm", **dict(ARGS, num_layers=1), edge_weight_field="w")
    src, dst = (t.numpy() for t in graph.edges())
    weighted = np.zeros((12, 12))
    np.add.at(weighted, (dst, src), graph.edata["w"].numpy())
    d_in, d_out = np.bincount(dst, minlength=12), np.bincount(src, minlength=12)
    a_hat = weighted / np.sqrt(d_in)[:, None] / np.sqrt(d_out)[None, :]
    p = {name: v.detach().double().numpy() for name, v in model.named_parameters()}
    h0 = feat.double().numpy() @ p["encoder.weight"].T + p["encoder.bias"]
    conv = a_hat @ h0 @ p["layers.0.conv.weight"] + p["layers.0.conv.bias"]
    h1 = h0 + 0.1 * np.maximum(conv, 0)
    expected = h1 @ p["head.weight"].T + p["head.bias"]
    np.testing.assert_allclose(model(graph, feat).detach().numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("name", ["gcn_ssm", "gin_ssm", "sage_ssm", "gat_ssm", "gcn"])
def test_edge_weights_reach_every_conv_that_takes_them(name):
    torch.manual_seed(0)
    graph, feat = graph_for(name), torch.randn(30, 5)
    model = build_model(name, **ARGS, edge_weight_field="w")
    plain = build_model(name, **ARGS)
    plain.load_state_dict(model.state_dict())
    graph.edata["w"] = torch.ones(graph.num_edges())  # weights of one change nothing
    torch.testing.assert_close(model(graph, feat), plain(graph, feat))
    graph.edata["w"] = torch.ones(graph.num_edges(), 1)  # nor do they as an (E, 1) column
    torch.testing.assert_close(model(graph, feat), plain(graph, feat))
    graph.edata["w"] = torch.rand(graph.num_edges())
    assert not torch.allclose(model(graph, feat), plain(graph, feat), atol=1e-4)
    # Read from the graph, so the diagnostics replay each layer with them.
    assert torch.equal(layer_inputs(model, graph, feat)[2].kwargs["edge_weight"], graph.edata["w"])


def test_edge_weights_with_checkpointing_give_the_same_gradients():
    graph, feat = graph_for("gcn_ssm"), torch.randn(30, 5)
    results = []
    for checkpoint in (False, 3):
        torch.manual_seed(0)
        model = build_model("gcn_ssm", **dict(ARGS, num_layers=7), edge_weight_field="w",
                            checkpoint=checkpoint)  # fmt: skip
        graph.edata["w"] = torch.linspace(0.5, 2, graph.num_edges()).requires_grad_()
        out = model(graph, feat)
        out.pow(2).sum().backward()
        results.append((out.detach(), graph.edata["w"].grad, model.encoder.weight.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


def test_bad_edge_weights_are_named():
    graph, feat = graph_for("gcn_ssm"), torch.randn(30, 5)
    with pytest.raises(ValueError, match="gatedgcn backbone's conv takes no edge weights"):
        build_model("gatedgcn_ssm", **ARGS, edge_weight_field="w")
    with pytest.raises(ValueError, match="k-hop model.*one-hop models"):
        build_model("kgcn_ssm", **ARGS, edge_weight_field="w")
    model = build_model("gcn_ssm", **ARGS, edge_weight_field="w")
    with pytest.raises(dgl.DGLError, match=r"graph.edata\['w'\].*no such field"):
        model(graph, feat)
    graph.edata["w"] = torch.ones(graph.num_edges(), 2)
    with pytest.raises(
        ValueError, match=r"shape \(\d+,\) or \(\d+, 1\), one weight an edge, got \(\d+, 2\)"
    ):
        model(graph, feat)
    graph.edata["w"] = torch.ones(graph.num_edges())
    model(graph, feat)
    graph.edata["w"][3] = float("nan")  # edited in place after a checked call: checked again
    with pytest.raises(ValueError, match="Edge weights contain NaN or Inf values in 1 of"):
        model(graph, feat)


def test_edge_weights_in_float64_diagnostics_and_models_pickled_before_the_option():
    torch.manual_seed(0)
    graph, feat = graph_for("gcn_ssm"), torch.randn(30, 5)
    graph.edata["w"] = torch.rand(graph.num_edges())
    model = build_model("gcn_ssm", **ARGS, edge_weight_field="w")
    in_float32 = layer_energies(model, graph, feat)
    in_float64 = layer_energies(model, graph, feat, dtype=torch.float64)
    np.testing.assert_allclose(in_float64, in_float32, rtol=1e-5)
    assert graph.edata["w"].dtype == torch.float32  # the caller's graph is left as it was
    # A model pickled before edge_weight_field existed has no such attribute of its own.
    old = build_model("gcn_ssm", **ARGS)
    del old.__dict__["edge_weight_field"]
    again = pickle.loads(pickle.dumps(old))
    torch.testing.assert_close(again(graph, feat), old(graph, feat))
    assert "edge_weight_field" not in repr(again)


def test_checkpoint_counts_are_at_most_the_depth_and_zero_is_off():
    assert build_model("gcn_ssm", **ARGS, checkpoint=10).segments == ARGS["num_layers"]
    assert build_model("gcn_ssm", **ARGS, checkpoint=0).segments == 0
    with pytest.raises(ValueError, match="checkpoint must be a bool or a segment count"):
        build_model("gcn_ssm", **ARGS, checkpoint=-1)


# --- backbones, activations, knobs: each against a dense computation or the DGL layer's shapes


def dense_adjacency(graph):
    """A[dst, src] = number of edges src → dst (self loops included), numpy from the edge list."""
    n = graph.num_nodes()
    src, dst = (t.numpy() for t in graph.edges())
    adj = np.zeros((n, n))
    np.add.at(adj, (dst, src), 1.0)
    return adj


# encoder 5·16 + 16 and head 16·3 + 3 around 4 layers of width 16 (each Linear d·d + d = 272)
PER_LAYER = {
    "gcn": 16 * 16 + 16,  # GraphConv: weight, bias
    "gin": 2 * (16 * 16 + 16),  # the MLP's two Linears; ε fixed (a buffer) unless learn_eps
    # GatedGCNConv's A, B, C, D, E (not the two BatchNorms DGL builds with batch_norm=False)
    "gatedgcn": 5 * (16 * 16 + 16),
    "gat": 16 * 16 + 3 * 16,  # fc without bias (4 heads × 4), attn_l, attn_r, bias
    "sage": 2 * 16 * 16 + 16,  # mean aggregator: fc_self (with bias), fc_neigh (without)
    "kgcn": 16 * 16 + 16,
}


@pytest.mark.parametrize("plain,ssm", TWINS)
def test_trainable_parameter_counts_are_those_of_the_dgl_layers_by_hand(plain, ssm):
    """Guards against a backbone option drifting (GIN learning ε, SAGE's aggregator) and
    against GatedGCN's learnt edge state becoming a buffer: the SSM adds nothing trainable."""
    expected = 5 * 16 + 16 + 4 * PER_LAYER[plain] + 16 * 3 + 3
    expected += 16 if plain == "gatedgcn" else 0  # the edge state learnt without edge_feats
    for name in (plain, ssm):
        model = build_model(name, **ARGS)
        assert sum(p.numel() for p in model.parameters()) == expected, name


@pytest.mark.parametrize("name", [name for twin in TWINS for name in twin])
def test_every_trainable_parameter_gets_a_gradient(name):
    """A parameter no forward uses (GatedGCNConv's BatchNorms under batch_norm=False) never
    trains, yet counts against a parameter budget: every one must take part."""
    torch.manual_seed(0)
    model = build_model(name, **ARGS)
    model(graph_for(name), torch.randn(30, 5)).square().sum().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not unused, unused


def test_gin_and_sage_ssm_layers_equal_their_dense_formulas():
    """One SSM step around GIN (sum of the neighbours plus (1 + 0)·h, then Linear-ReLU-Linear)
    and SAGE (mean of the in-neighbours), with the adjacency matrix from numpy."""
    torch.manual_seed(0)
    graph, feat = random_graph(12, 24, seed=4), torch.randn(12, 5)
    adj = dense_adjacency(graph)
    mean = adj / adj.sum(1, keepdims=True)  # every node has its self loop: no zero rows
    for name in ("gin_ssm", "sage_ssm"):
        model = build_model(name, **ARGS)
        calls, _ = layer_by_layer(model, graph, feat)
        for layer, state, _ in calls:
            h = arr(state)
            p = {k: arr(v) for k, v in layer.conv.named_parameters()}
            if name == "gin_ssm":
                hidden = np.maximum((h + adj @ h) @ p["apply_func.0.weight"].T
                                    + p["apply_func.0.bias"], 0)  # fmt: skip
                conv = hidden @ p["apply_func.2.weight"].T + p["apply_func.2.bias"]
            else:
                conv = (h @ p["fc_self.weight"].T + p["fc_self.bias"]
                        + (mean @ h) @ p["fc_neigh.weight"].T)  # fmt: skip
            expected = h + 0.1 * np.maximum(conv, 0)  # Λ = I, B = 0.1·I
            with torch.no_grad():
                np.testing.assert_allclose(arr(layer(graph, state)), expected, atol=1e-5)


def test_gat_has_four_concatenated_heads_unless_told_otherwise():
    # hidden 16 = 4 heads of 4 by default (the GAT docstrings), 2 of 8 when asked
    default = build_model("gat_ssm", **ARGS).layers[0].conv
    assert default.attn_l.shape == (1, 4, 4) and default.fc.weight.shape == (16, 16)
    two = build_model("gat_ssm", **ARGS, conv_options={"heads": 2}).layers[0].conv
    assert two.attn_l.shape == (1, 2, 8)


def test_the_activation_reaches_plain_layers_and_the_graph_head():
    """activation="tanh" is σ of the plain twin's layers, H' = tanh(Â H W + b) with Â from
    numpy, and of the graph head's MLP unless head_activation is given."""
    torch.manual_seed(0)
    bare, feat = random_graph(12, 24, seed=4, self_loops=False), torch.randn(12, 5)
    graph, a_hat = dgl.add_self_loop(bare), numpy_gcn_adjacency(bare)
    model = build_model("gcn", **ARGS, activation="tanh")
    calls, _ = layer_by_layer(model, graph, feat)
    for layer, state, _ in calls:
        expected = np.tanh(a_hat @ arr(state) @ arr(layer.conv.weight) + arr(layer.conv.bias))
        with torch.no_grad():
            np.testing.assert_allclose(arr(layer(graph, state)), expected, atol=1e-5)
    for name in ("gcn", "gcn_ssm"):
        head = build_model(name, **ARGS, task="graph", activation="tanh").head
        assert isinstance(head[1], torch.nn.Tanh), name


@pytest.mark.parametrize(
    "name, function",
    [
        ("relu", torch.relu),
        ("tanh", torch.tanh),
        ("identity", lambda x: x),
        ("gelu", torch.nn.functional.gelu),
        ("elu", torch.nn.functional.elu),
        ("leaky_relu", lambda x: torch.where(x > 0, x, 0.01 * x)),
        ("sigmoid", torch.sigmoid),
    ],
)
def test_activation_names_compute_the_function_they_name(name, function):
    from dgl_ssm.activations import ACTIVATIONS, get_activation

    assert name in ACTIVATIONS
    x = torch.linspace(-3, 3, 13)
    torch.testing.assert_close(get_activation(name)(x), function(x))


def test_reset_redraws_the_learnt_edge_state_at_its_initial_scale():
    """GatedGCN's edge state is drawn N(0, 0.1²) at construction; a reset must draw it the same
    way (not N(0, 1)): 512 draws put the sample deviation within 20% of 0.1."""
    torch.manual_seed(0)
    model = build_model("gatedgcn_ssm", 4, 512, 2, 1)
    assert 0.08 < float(model.edge_embedding.std()) < 0.12
    with torch.no_grad():
        model.edge_embedding.fill_(7.0)
    model.reset_parameters()
    assert 0.08 < float(model.edge_embedding.std()) < 0.12
    assert abs(float(model.edge_embedding.mean())) < 0.02


def test_repr_names_the_hop_mode_and_the_largest_hop_read():
    model = build_model("kgcn_ssm", **ARGS, max_hop=2)
    assert "hop_mode=exact, K=2" in repr(model)
    assert "K=4" in repr(build_model("kgcn_ssm", **ARGS, hop_mode="cumulative"))
    graph_model = build_model("gcn", **ARGS, task="graph", readout="sum+max+mean")
    assert "task=graph, readout=sum+max+mean" in repr(graph_model)
    assert "readout" not in repr(build_model("gcn", **ARGS))


def test_norm_none_as_text_is_no_norm():
    """norm="none" (a YAML or CLI spelling) builds the model norm=None builds."""
    torch.manual_seed(0)
    graph, feat = graph_for("gcn_ssm"), torch.randn(30, 5)
    model = build_model("gcn_ssm", **ARGS, norm="none").eval()
    assert all(isinstance(layer.norm, torch.nn.Identity) for layer in model.layers)
    plain = build_model("gcn_ssm", **ARGS).eval()
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(model(graph, feat), plain(graph, feat), rtol=0, atol=0)


def test_a_layer_built_alone_resets_a_learnable_eps_to_its_initial_value():
    """SSMLayer keeps the values no reset_parameters draws (GINConv's learnable ε) itself,
    not only inside a model."""
    from dgl.nn import GINConv

    from dgl_ssm import SSMLayer

    layer = SSMLayer(GINConv(torch.nn.Linear(4, 4), learn_eps=True, init_eps=0.5), 4)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.fill_(7.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer.reset_parameters()
    assert layer.conv.eps.item() == 0.5
    assert not bool((layer.conv.apply_func.weight == 7.0).any())


def test_a_multi_hop_conv_delayed_past_the_first_state_reads_h0():
    """τ(k) = max(0, k − ν) can exceed the layer index of a MultiHopConv built by hand: hop 3
    of layer index 1 with ν = 1 then reads H⁽⁰⁾ (the earliest), not the last state of history."""
    from dgl.nn import GraphConv

    from dgl_ssm import MultiHopConv, hop_graphs

    torch.manual_seed(0)
    bare = random_graph(10, 14, seed=3, self_loops=False)
    graphs = hop_graphs(KHopTransform(k=3)(bare), 3)
    convs = [GraphConv(4, 4) for _ in range(3)]
    conv = MultiHopConv(convs, layer_index=1, delay=1)
    h0, h1 = torch.randn(10, 4, dtype=torch.float64), torch.randn(10, 4, dtype=torch.float64)
    conv.double()
    with torch.no_grad():
        out = conv(graphs, h1, history=[h0, h1]).numpy()
    # hop 1: H⁽¹⁾ (τ = 0); hop 2: H⁽⁰⁾ (τ = 1); hop 3: H⁽⁰⁾ (τ = 2, clamped at the first state)
    expected = sum(
        hop_adjacency(bare, k) @ arr(state) @ arr(c.weight) + arr(c.bias)
        for k, (c, state) in enumerate(zip(convs, [h1, h0, h0]), start=1)
    )
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


def test_a_checkpoint_that_is_no_whole_number_is_refused():
    with pytest.raises(TypeError, match="checkpoint must be a bool or a segment count"):
        build_model("gcn_ssm", **ARGS, checkpoint=2.5)


def test_a_checkpointed_forward_pass_updates_batch_norm_statistics_as_it_runs():
    """The running statistics move in the training forward pass (as without checkpointing),
    before any backward pass recomputes a segment."""
    graph, feat = graph_for("gcn_ssm"), torch.randn(30, 5)
    means = []
    for checkpoint in (False, True):
        model = batch_norm_model(checkpoint)
        model(graph, feat)  # no backward
        means.append([layer.norm.running_mean.clone() for layer in model.layers])
    assert all(bool(mean.any()) for mean in means[0])  # every layer's moved off zero
    for a, b in zip(*means, strict=True):
        torch.testing.assert_close(b, a)


@pytest.mark.parametrize("name", ["gcn", "gcn_ssm"])
def test_graph_models_of_both_twins_equal_their_forward_pass_by_hand(name):
    """Encoder, 2 GCN layers of σ = tanh, per-graph sum, LeakyReLU head: numpy, in train mode."""
    torch.manual_seed(0)
    bare = [random_graph(n, 2 * n, seed=n, self_loops=False) for n in (7, 9)]
    batch, feat = dgl.batch([dgl.add_self_loop(g) for g in bare]), torch.randn(16, 5)
    a_hat = np.zeros((16, 16))
    a_hat[:7, :7], a_hat[7:, 7:] = (numpy_gcn_adjacency(g) for g in bare)
    model = build_model(name, **dict(ARGS, num_layers=2), task="graph", readout="sum",
                        activation="tanh", head_activation="leaky_relu").train()  # fmt: skip
    head = 16 * 16 + 16 + 16 * 3 + 3  # Linear(16, 16), LeakyReLU, Linear(16, 3)
    assert sum(p.numel() for p in model.parameters()) == 5 * 16 + 16 + 2 * PER_LAYER["gcn"] + head
    p = {k: arr(v) for k, v in model.named_parameters()}
    h = arr(feat) @ p["encoder.weight"].T + p["encoder.bias"]
    for i in range(2):
        conv = np.tanh(a_hat @ h @ p[f"layers.{i}.conv.weight"] + p[f"layers.{i}.conv.bias"])
        h = h + 0.1 * conv if name == "gcn_ssm" else conv  # Λ = I, B = 0.1·I
    pooled = np.stack([h[:7].sum(0), h[7:].sum(0)]) @ p["head.0.weight"].T + p["head.0.bias"]
    expected = np.where(pooled > 0, pooled, 0.01 * pooled) @ p["head.2.weight"].T
    np.testing.assert_allclose(arr(model(batch, feat)), expected + p["head.2.bias"], atol=1e-5)


@pytest.mark.parametrize("name", ["gcn", "gcn_ssm"])
def test_input_dropout_zeroes_or_doubles_raw_features_while_training_only(name):
    """dropout=0.5 on all-one features: solved back from H⁰ = X Wᵀ + b, the encoder read
    entries of 0 or 2 while training, and exactly 1 in eval mode."""
    torch.manual_seed(0)
    model = build_model(name, **ARGS, dropout=0.5)
    g, seen = random_graph(30, 60, seed=1), []
    model.layers[0].register_forward_pre_hook(lambda m, args: seen.append(args[1]))
    for mode in (model.train, model.eval):
        mode()
        model(g, torch.ones(30, 5))
    w, b = arr(model.encoder.weight), arr(model.encoder.bias)
    train, evaluated = (np.linalg.lstsq(w, (arr(s) - b).T, rcond=None)[0] for s in seen)
    assert np.allclose(np.minimum(abs(train), abs(train - 2)), 0, atol=1e-4)
    assert (abs(train) < 1e-4).any() and (abs(train - 2) < 1e-4).any()
    np.testing.assert_allclose(evaluated, 1, atol=1e-4)


def test_the_plain_twin_takes_the_hop_and_encoder_options_of_its_ssm_twin():
    """Counted by hand: cumulative hops up to K = 2 over 4 layers are 1 + 2 + 2 + 2
    GraphConvs, a node encoder of two 4-row tables replaces the linear one, and edge_feats
    adds a linear edge encoder."""
    for name in ("kgcn", "kgcn_ssm"):
        model = build_model(name, **ARGS, hop_mode="cumulative", max_hop=2)
        expected = 5 * 16 + 16 + 7 * PER_LAYER["kgcn"] + 16 * 3 + 3
        assert sum(p.numel() for p in model.parameters()) == expected, name
    graph, atoms = random_graph(12, 30, seed=1), torch.randint(0, 4, (12, 2))
    for name in ("gcn", "gcn_ssm"):
        model = build_model(name, 2, 8, 3, 2, node_encoder=SumOfEmbeddings([4, 4], 8))
        assert sum(p.numel() for p in model.parameters()) == 2 * 4 * 8 + 2 * 72 + 8 * 3 + 3
        assert model(graph, atoms).shape == (12, 3)
    for name in ("gatedgcn", "gatedgcn_ssm"):  # edge features of width 3, a linear encoder
        model = build_model(name, **ARGS, edge_feats=3)
        expected = 5 * 16 + 16 + 3 * 16 + 16 + 4 * PER_LAYER["gatedgcn"] + 16 * 3 + 3
        assert sum(p.numel() for p in model.parameters()) == expected, name
        edges = torch.randn(graph.num_edges(), 3)
        assert model(graph, torch.randn(12, 5), edges).shape == (12, 3)


def test_ssm_seed_seeds_the_generator_that_draws_lambda():
    """ssm_seed=s gives the Λ that SSMUpdate draws from a generator seeded with s."""
    from dgl_ssm import SSMUpdate

    for seed in (0, 5):
        model = build_model("gcn_ssm", **ARGS, state="orthogonal", ssm_seed=seed)
        alone = SSMUpdate(16, "orthogonal", generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(model.layers[0].update.state_matrix, alone.state_matrix,
                                   rtol=0, atol=0)  # fmt: skip


def test_remembering_initial_values_again_keeps_those_from_construction():
    """remember_initial_values(model) after training (as the reset warning advises once a
    module is attached) keeps GIN's ε from construction, 0, for the next reset."""
    from dgl_ssm.reset import remember_initial_values

    model = build_model("gin_ssm", **ARGS, conv_options={"learn_eps": True})
    with torch.no_grad():
        for layer in model.layers:
            layer.conv.eps.fill_(5.0)
    remember_initial_values(model)
    model.reset_parameters()
    assert all(float(layer.conv.eps) == 0.0 for layer in model.layers)


def test_a_registered_name_starting_with_k_is_not_read_as_k_hop(monkeypatch):
    """is_khop reads the class, so a one-hop model registered as "kite_gcn" is one-hop."""
    monkeypatch.setitem(MODELS, "kite_gcn", MODELS["gcn"])
    assert not is_khop("kite_gcn")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_named_model_documents_every_argument_it_takes(name):
    # help(GCNSSM) showed torch's "Initializes internal Module state" for __init__, and the
    # class said only "arguments: SSMGNN": what `hidden` or `dropout` mean took two more hops.
    # Read with numpydoc's parser (as `make docs` reads it), against the constructors' own
    # signatures, so an argument added to DeepGNN, PlainGNN or SSMGNN must be documented.
    import inspect

    from dgl_ssm.models import SSMGNN, DeepGNN, PlainGNN

    NumpyDocString = pytest.importorskip("numpydoc.docscrape").NumpyDocString
    model = MODELS[name]
    documented = set()
    for parameter in NumpyDocString(model.__doc__)["Parameters"]:
        documented |= {n.strip() for n in parameter.name.split(",")}
    takes = set()
    for cls in (DeepGNN, SSMGNN if is_ssm(name) else PlainGNN):
        takes |= set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs", "update"}
    assert takes <= documented, sorted(takes - documented)
    assert NumpyDocString(model.__doc__)["Examples"]  # still there, after the parameters


def test_an_input_scale_of_zero_warns_that_the_model_ignores_the_graph():
    # B = 0: every layer's step is H Λᵀ, so the output is the head of the encoded features,
    # whatever the edges; accepted without a word before.
    graph, feat = random_graph(8, 20), torch.randn(8, 3)
    with pytest.warns(UserWarning, match=r"input_scale=0 makes B = 0.*ignores the graph"):
        model = build_model("gcn_ssm", in_feats=3, hidden=4, out_feats=2, num_layers=3,
                            input_scale=0.0)  # fmt: skip
    with pytest.warns(UserWarning, match=r"input_scale=0 makes B = 0"):
        build_model("gcn_ssm", 3, 4, 2, 3, input_scale=torch.tensor(0.0))
    other = dgl.add_self_loop(dgl.graph(([], []), num_nodes=8))  # no edge but the self loops
    torch.testing.assert_close(model(graph, feat), model(other, feat))  # as the warning says
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_model("gcn_ssm", in_feats=3, hidden=4, out_feats=2, num_layers=3, input_scale=0.1)


def test_a_model_with_its_own_node_encoder_needs_no_input_width():
    # The encoder reads the raw features at their own width, which the model does not check:
    # in_feats=None was refused all the same, so a user passed a dummy width.
    encoder = torch.nn.Embedding(10, 8)
    model = build_model("gcn_ssm", None, 8, 3, 2, node_encoder=encoder)
    graph, codes = random_graph(6, 12), torch.randint(0, 10, (6,))
    assert model(graph, codes).shape == (6, 3)
    with pytest.raises(TypeError, match="in_feats must be a positive integer, got None"):
        build_model("gcn_ssm", None, 8, 3, 2)  # the linear encoder needs it


def test_gat_takes_dgls_dropouts_and_slope_and_the_model_shows_its_conv_options():
    # The usual Cora GAT drops 0.6 of features and attention; by name, GAT took only heads,
    # and print(model) named no head count (DGL's GATConv repr shows its fc only).
    options = {"heads": 2, "feat_drop": 0.6, "attn_drop": 0.5, "negative_slope": 0.1}
    model = build_model("gat_ssm", 3, 8, 2, 2, conv_options=options)
    conv = model.layers[1].conv
    assert (conv._num_heads, conv.feat_drop.p, conv.attn_drop.p) == (2, 0.6, 0.5)
    assert conv.leaky_relu.negative_slope == 0.1
    assert f"conv_options={options}" in repr(model).splitlines()[1]
    assert "conv_options" not in repr(build_model("gat_ssm", 3, 8, 2, 2))
    graph, feat = random_graph(10, 25), torch.randn(10, 3)
    torch.manual_seed(0)
    assert not torch.equal(model(graph, feat), model(graph, feat))  # training: dropped
    plain = build_model("gat_ssm", 3, 8, 2, 2, conv_options={"heads": 2, "negative_slope": 0.1})
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(model.eval()(graph, feat), plain.eval()(graph, feat))
    with pytest.raises(ValueError, match="negative_slope must be a finite number ≥ 0, got inf"):
        build_model("gat", 3, 8, 2, 2, conv_options={"negative_slope": math.inf})
    with pytest.raises(ValueError, match=r"GAT's attn_drop must be a number in \[0, 1\), got 1"):
        build_model("gat", 3, 8, 2, 2, conv_options={"attn_drop": 1})
