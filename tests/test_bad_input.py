"""Bad input fails early, with a message that says what was wrong and what to do."""

import math
import re
import warnings

import dgl
import pytest
import torch
from dgl.nn import GraphConv

import dgl_ssm
import dgl_ssm.analysis
from dgl_ssm import SSMLayer, SSMUpdate, build_model, is_ssm, model_class
from tests.conftest import random_graph

ARGS = dict(in_feats=5, hidden=8, out_feats=2, num_layers=3)


@pytest.fixture
def graph():
    return random_graph(12, 20, seed=3)


def test_wrong_feature_width(graph):
    with pytest.raises(ValueError, match=r"expected \(12, 5\).*in_feats=7"):
        build_model("gcn_ssm", **ARGS)(graph, torch.randn(12, 7))


def test_wrong_number_of_rows(graph):
    with pytest.raises(ValueError, match="graph has 12 nodes"):
        build_model("gcn_ssm", **ARGS)(graph, torch.randn(11, 5))


def test_integer_features(graph):
    with pytest.raises(TypeError, match=r"torch.int64.*feat.float\(\)"):
        build_model("gcn_ssm", **ARGS)(graph, torch.ones(12, 5, dtype=torch.long))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_features(graph, bad):
    feat = torch.randn(12, 5)
    feat[3, 1] = bad
    with pytest.raises(ValueError, match="NaN or Inf values in 1 of 12 rows"):
        build_model("gcn_ssm", **ARGS)(graph, feat)
    feat[3, 2] = feat[5, 0] = bad  # three bad values in two rows: the rows are counted
    with pytest.raises(ValueError, match="NaN or Inf values in 2 of 12 rows"):
        build_model("gcn_ssm", **ARGS)(graph, feat)


def test_features_written_in_place_after_a_clean_pass_are_checked_again(graph, monkeypatch):
    # Clean features are scanned once per version (full-batch training reuses them every epoch).
    model, feat = build_model("gcn_ssm", **ARGS), torch.randn(12, 5)
    scans, isfinite = [], torch.isfinite
    monkeypatch.setattr(torch, "isfinite", lambda x: scans.append(x is feat) or isfinite(x))
    model(graph, feat)
    model(graph, feat)
    assert scans.count(True) == 1
    feat[7, 0] = float("nan")  # an in-place write: a new version of the same tensor
    with pytest.raises(ValueError, match="NaN or Inf values in 1 of 12 rows"):
        model(graph, feat)
    feat.nan_to_num_(0.0)
    model(graph, feat)
    view = feat[2:4]
    view[0, 0] = float("inf")  # through a view: the same version counter
    with pytest.raises(ValueError, match="NaN or Inf values in 1 of 12 rows"):
        model(graph, feat)
    with torch.inference_mode():  # inference tensors have no version counter: always scanned
        clean = torch.randn(12, 5)
        model(graph, clean)
        clean[0, 0] = float("nan")
        with pytest.raises(ValueError, match="NaN or Inf values in 1 of 12 rows"):
            model(graph, clean)


@pytest.mark.parametrize("name", ["gcn", "gcn_ssm", "gat_ssm"])
def test_zero_in_degree_nodes_are_refused_unless_allowed(name):
    graph = dgl.graph(([0, 1], [1, 2]), num_nodes=4)  # nodes 0 and 3 have no in-edges
    with pytest.raises(dgl.DGLError, match=r"0-in-degree.*dgl.add_self_loop"):
        build_model(name, **ARGS)(graph, torch.randn(4, 5))
    out = build_model(name, **ARGS, allow_zero_in_degree=True)(graph, torch.randn(4, 5))
    assert out.shape == (4, 2)


def test_sum_aggregators_accept_zero_in_degree_nodes():
    graph = dgl.graph(([0, 1], [1, 2]), num_nodes=4)
    assert build_model("gin_ssm", **ARGS)(graph, torch.randn(4, 5)).shape == (4, 2)


def test_empty_graph():
    with pytest.raises(dgl.DGLError, match="no nodes"):
        build_model("gcn_ssm", **ARGS)(dgl.graph(([], []), num_nodes=0), torch.randn(0, 5))


def test_non_square_matrices():
    with pytest.raises(ValueError, match=r"expected shape \(4, 4\), got \(4, 3\)"):
        SSMUpdate(4, state=torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"expected shape \(4, 4\), got \(2, 2\)"):
        SSMUpdate(4, input=torch.eye(2))


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown model 'gcn_sm'.*'gcn_ssm'.*gatedgcn_ssm"):
        build_model("gcn_sm", **ARGS)
    with pytest.raises(ValueError, match=r"Unknown activation 'swish'.*relu"):
        build_model("gcn_ssm", **ARGS, activation="swish")
    with pytest.raises(ValueError, match=r"Unknown state matrix kind 'unitary'.*orthogonal"):
        build_model("gcn_ssm", **ARGS, state="unitary")
    with pytest.raises(ValueError, match=r"Unknown input matrix kind 'orthogonl'. Did you mean "):
        build_model("gcn_ssm", **ARGS, input="orthogonl")  # which of the two was mistyped
    with pytest.raises(ValueError, match=r"Unknown readout 'avg'. Valid: mean, sum"):
        build_model("gcn_ssm", **ARGS, task="graph", readout="avg")
    with pytest.raises(ValueError, match=r"Unknown hop_mode 'all'. Valid: exact, cumulative"):
        build_model("kgcn_ssm", **ARGS, hop_mode="all")
    with pytest.raises(ValueError, match=r"Unknown norm 'group'"):
        build_model("gcn_ssm", **ARGS, norm="group")
    # Every kind of name gets the same message: a guess, then the valid ones.
    with pytest.raises(
        ValueError, match=r"'Batch'. Did you mean 'batch'\? Valid: batch, layer, or None"
    ):
        build_model("gcn_ssm", **ARGS, norm="Batch")
    with pytest.raises(ValueError, match=r"'tanhh'. Did you mean 'tanh'\? Valid: .*; or pass a"):
        build_model("gcn_ssm", **ARGS, activation="tanhh")
    with pytest.raises(ValueError, match=r"Unknown hop_mode \['exact'\]"):  # unhashable
        build_model("kgcn_ssm", **ARGS, hop_mode=["exact"])
    for call in (model_class, is_ssm, lambda name: build_model(name, **ARGS)):
        with pytest.raises(ValueError, match=r"Unknown model \['gcn_ssm'\].*Valid: gcn, gcn_ssm"):
            call(["gcn_ssm"])  # `name: [gcn_ssm]` in a YAML file
        with pytest.raises(ValueError, match=r"Unknown model 'gcn_sm'. Did you mean 'gcn_ssm'"):
            call("gcn_sm")  # not a plain model for want of "_ssm" at the end


def test_plain_models_refuse_ssm_options():
    with pytest.raises(TypeError, match=r"GCN is a plain model.*state_scale.*GCNSSM"):
        build_model("gcn", **ARGS, state_scale=0.5)


def test_k_hop_model_on_a_graph_that_was_not_rewired(graph):
    with pytest.raises(dgl.DGLError, match=r"KHopTransform\(k=3\)"):
        build_model("kgcn_ssm", **ARGS)(graph, torch.randn(12, 5))


def test_conv_with_the_wrong_width():
    layer = SSMLayer(GraphConv(4, 6), dim=4)
    with pytest.raises(ValueError, match="must map width 4 to 4"):
        layer(random_graph(5, 6), torch.randn(5, 4))


def test_gat_heads_must_divide_hidden():
    with pytest.raises(ValueError, match="divisible by heads"):
        build_model("gat_ssm", **ARGS, conv_options={"heads": 3})


def test_bad_sizes():
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        build_model("gcn_ssm", 5, 8, 2, num_layers=0)


@pytest.mark.parametrize(
    "name,options,message",
    [
        ("gcn_ssm", dict(hidden=0), "hidden must be a positive integer, got 0"),
        ("kgcn_ssm", dict(max_hop=0), "max_hop must be a positive integer, got 0"),
        ("kgcn_ssm", dict(hop_mode="cumulative", delay=-1), "delay must be a positive"),
        (
            "kgcn_ssm",
            dict(hop_mode="cumulative", delay=0),
            "delay must be a positive integer, got 0",
        ),
        (
            "gcn",
            dict(conv_options={"heads": 4}),
            "gcn backbone takes no conv option heads; it accepts: none",
        ),  # fmt: skip
        ("sage_ssm", dict(conv_options={"heads": 4}), "accepts: aggregator"),
    ],
)
def test_bad_constructor_arguments_fail_in_one_line(name, options, message):
    args = {**ARGS, **options}
    with pytest.raises(ValueError, match=message) as error:
        build_model(name, **args)
    assert "\n" not in str(error.value)


def test_gat_heads_are_still_accepted(graph):
    model = build_model("gat_ssm", **ARGS, conv_options={"heads": 2})
    assert model(graph, torch.randn(12, 5)).shape == (12, 2)


def test_heterograph_is_refused_as_not_homogeneous():
    graph = dgl.heterograph({("user", "follows", "user"): ([0, 1], [1, 0]),
                             ("user", "buys", "item"): ([0], [0])})  # fmt: skip
    with pytest.raises(dgl.DGLError, match=r"not homogeneous.*dgl.to_homogeneous") as error:
        build_model("gcn_ssm", **ARGS)(graph, torch.randn(graph.num_nodes(), 5))
    assert "0-in-degree" not in str(error.value)


def test_a_heterograph_or_a_block_is_refused_by_models_and_layers(graph):
    """A block (sampled mini-batch) is homogeneous in its types, but its source and
    destination nodes differ, so it cannot carry one state row per node."""
    block = dgl.to_block(graph, dst_nodes=torch.arange(4))
    layer = SSMLayer(GraphConv(5, 5), 5)
    for call in (lambda: build_model("gcn_ssm", **ARGS)(block, torch.randn(12, 5)),
                 lambda: layer(block, torch.randn(12, 5))):  # fmt: skip
        with pytest.raises(dgl.DGLError, match=r"is a block \(.*12 source and 4 destination.*"
                           r"sample subgraphs instead"):  # fmt: skip
            call()
    bipartite = dgl.heterograph({("user", "rates", "item"): ([0, 1], [1, 0])})
    with pytest.raises(dgl.DGLError, match=r"not homogeneous.*SSMLayer takes graphs of one"):
        layer(bipartite, torch.randn(4, 5))


def test_a_conv_output_the_layer_would_drop_is_refused(graph):
    layer = SSMLayer(dgl.nn.GATConv(5, 5, 1, allow_zero_in_degree=True), 5)
    with pytest.raises(TypeError, match=r"GATConv returned 2 outputs.*layer.conv\(graph, feat"):
        layer(graph, torch.randn(12, 5), get_attention=True)


def test_feature_dtype_is_checked_against_the_model_dtype(graph):
    from dgl_ssm.checks import check_node_features

    feat = torch.randn(12, 5, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"torch.float64.*torch.float32.*feat.float\(\)"):
        check_node_features(graph, feat, 5, dtype=torch.float32)
    check_node_features(graph, feat, 5, dtype=torch.float64)  # a float64 model takes them
    check_node_features(graph, feat, 5)  # without a dtype, any float passes (as before)
    model = build_model("gcn_ssm", **ARGS)  # and every model checks against its own weights
    with pytest.raises(TypeError, match=r"torch.float64.*feat.float\(\)"):
        model(graph, feat)
    assert model.double()(graph, feat).dtype == torch.float64


@pytest.mark.parametrize(
    "call",
    [
        lambda model, g, x: model(x, g),  # arguments swapped
        lambda model, g, x: model(torch.stack(g.edges()), x),  # a PyG-style edge index
        lambda model, g, x: model(None, x),
    ],
)
def test_a_graph_that_is_not_a_dgl_graph_is_named(graph, call):
    with pytest.raises(TypeError, match=r"GCNSSM needs a dgl.DGLGraph.*model\(graph, feat\)"):
        call(build_model("gcn_ssm", **ARGS), graph, torch.randn(12, 5))


def test_numpy_integers_are_sizes_like_ints(graph):
    np = pytest.importorskip("numpy")
    model = build_model("gat_ssm", np.int64(5), np.int32(8), np.int64(2), np.int64(3),
                        conv_options={"heads": np.int64(2)})  # fmt: skip
    assert model.num_layers == 3 and type(model.num_layers) is int
    assert model(graph, torch.randn(12, 5)).shape == (12, 2)


@pytest.mark.parametrize(
    "options,error,message",
    [
        (dict(state_scale=float("nan")), ValueError, "state_scale must be a finite real number"),
        (dict(input_scale=float("inf")), ValueError, "input_scale must be a finite real number"),
        (dict(state_scale="1"), TypeError, "state_scale must be a finite real number, got '1'"),
        (dict(ssm_seed="a"), TypeError, "ssm_seed must be an integer"),
        (dict(conv_options={"heads": 0}), ValueError, "heads must be a positive integer, got 0"),
        (dict(conv_options={"heads": 2.0}), TypeError, "heads must be a positive integer, got 2.0"),
        (dict(hidden=8.0), TypeError, "hidden must be a positive integer, got 8.0"),
    ],
)
def test_ssm_and_conv_options_that_cannot_work_are_refused(options, error, message):
    # The kind of error follows dgl_ssm.checks' rule: TypeError for the wrong kind of value.
    name = "gat_ssm" if "conv_options" in options else "gcn_ssm"
    with pytest.raises(error, match=message):
        build_model(name, **{**ARGS, **options})


def test_a_non_finite_custom_ssm_matrix_is_refused():
    bad = torch.eye(4)
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="must be finite"):
        SSMUpdate(4, state=bad)
    message = r"dim \(the SSM feature width\) must be a positive integer, got 0"
    with pytest.raises(ValueError, match=message):
        SSMUpdate(0)


def test_a_layer_refuses_states_of_another_width_before_its_conv_runs():
    g = random_graph(6, 10, seed=1)
    layer = SSMLayer(GraphConv(4, 4), 4)
    with pytest.raises(
        ValueError, match=r"width 4 got node states of shape \(6, 8\).*layer_inputs"
    ):
        layer(g, torch.randn(6, 8))
    # A conv of width 4 in a layer that says 8 would run on 4-wide states without the check.
    with pytest.raises(ValueError, match=r"width 8 got node states of shape \(6, 4\)"):
        SSMLayer(GraphConv(4, 4), 8)(g, torch.randn(6, 4))
    with pytest.raises(ValueError, match="update acts on width 8 but the layer has dim=4"):
        SSMLayer(GraphConv(4, 4), 4, SSMUpdate(8))


def test_a_graph_head_option_on_a_node_model_is_refused_not_ignored():
    with pytest.raises(ValueError, match="head_activation is the graph head's"):
        build_model("gcn_ssm", **ARGS, head_activation="tanh")
    graph_model = build_model("gcn_ssm", **ARGS, task="graph", head_activation="tanh")
    assert isinstance(graph_model.head[1], torch.nn.Tanh)
    # A readout without task="graph" would quietly give per-node outputs.
    with pytest.raises(ValueError, match=r"readout='sum' pools.*Pass task='graph' as well"):
        build_model("gcn_ssm", **ARGS, readout="sum")
    assert build_model("gcn_ssm", **ARGS, task="graph").readout == "mean"


def test_edge_features_only_where_the_backbone_reads_them(graph):
    with pytest.raises(
        ValueError, match="gcn backbone uses no edge features, so it takes no edge_feats"
    ):
        build_model("gcn_ssm", **ARGS, edge_feats=3)
    with pytest.raises(ValueError, match="gcn backbone reads no edge features"):
        build_model("gcn_ssm", **ARGS)(graph, torch.randn(12, 5), torch.randn(graph.num_edges(), 3))


def test_gatedgcn_edge_features_are_checked_like_node_features(graph):
    model = build_model("gatedgcn_ssm", **ARGS, edge_feats=3)
    x, e = torch.randn(12, 5), torch.randn(graph.num_edges(), 3)
    assert model(graph, x, e).shape == (12, 2)
    e[4, 1] = float("nan")
    with pytest.raises(
        ValueError, match=f"Edge features contain NaN or Inf values in 1 of {len(e)}"
    ):
        model(graph, x, e)
    with pytest.raises(
        TypeError, match=r"Edge features have dtype torch.float64.*edge_feat.float\(\)"
    ):
        model(graph, x, torch.randn(graph.num_edges(), 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="Edge features must be a torch.Tensor, got ndarray"):
        model(graph, x, e.nan_to_num().numpy())


def test_a_model_cast_after_a_checked_call_checks_its_inputs_again(graph):
    model, feat = build_model("gcn_ssm", **ARGS), torch.randn(12, 5)
    model(graph, feat)
    model.double()
    with pytest.raises(TypeError, match=r"model's weights are torch.float64.*feat.double\(\)"):
        model(graph, feat)


def test_features_and_model_on_another_device_name_the_move(graph):
    # No GPU here: the "meta" device stands in for a second one (the checks read devices only).
    model = build_model("gcn_ssm", **ARGS)
    with pytest.raises(ValueError, match=r"Node features are on meta but the graph is on cpu"):
        model(graph, torch.randn(12, 5, device="meta"))
    with pytest.raises(ValueError, match=r"the graph are on cpu but the model is on meta.*\.to"):
        build_model("gcn_ssm", **ARGS).to("meta")(graph, torch.randn(12, 5))
    gated = build_model("gatedgcn_ssm", **ARGS, edge_feats=3)
    with pytest.raises(ValueError, match="Edge features are on meta but the graph is on cpu"):
        gated(graph, torch.randn(12, 5), torch.randn(graph.num_edges(), 3, device="meta"))


def test_inputs_a_cached_check_has_not_seen_are_checked(graph):
    # The checks are skipped for the objects of a checked call; anything else is checked.
    np = pytest.importorskip("numpy")
    model, feat = build_model("gcn_ssm", **ARGS), torch.randn(12, 5)
    model(graph, feat)
    with pytest.raises(ValueError, match="gcn backbone reads no edge features"):
        model(graph, feat, np.ones((graph.num_edges(), 4), "f"))  # not a tensor: not skipped
    ring = dgl.graph((torch.arange(12), (torch.arange(12) + 1) % 12))
    model(ring, feat)
    ring.remove_edges([11])  # in place, same counts after: node 0 loses its only in-edge
    ring.add_edges([3], [4])
    with pytest.raises(dgl.DGLError, match="0-in-degree"):
        model(ring, feat)
    gated = build_model("gatedgcn_ssm", **ARGS, edge_feats=4)
    with pytest.raises(
        ValueError,
        match=r"edge_feats=4, and no edge features came: call it as model\(graph, feat, edge_feat",
    ):
        gated(graph, feat)
    with pytest.raises(TypeError, match="Edge features must be a torch.Tensor, got ndarray"):
        gated(graph, feat, np.ones((graph.num_edges(), 4), "f"))


def test_custom_encoders_are_checked_on_what_they_take_and_give(graph):
    x, edges = torch.randn(12, 5), graph.num_edges()
    model = build_model("gatedgcn_ssm", **ARGS, edge_encoder=torch.nn.Linear(4, 8))
    e = torch.randn(edges, 4)
    assert model(graph, x, e).shape == (12, 2)
    e[2, 3] = float("nan")
    with pytest.raises(
        ValueError, match=f"Edge features contain NaN or Inf values in 1 of {edges}"
    ):
        model(graph, x, e)
    narrow = build_model("gatedgcn_ssm", **ARGS, edge_encoder=torch.nn.Linear(4, 6))
    with pytest.raises(
        ValueError, match=rf"edge_encoder must map .* \({edges}, 8\).*\({edges}, 6\)"
    ):
        narrow(graph, x, torch.randn(edges, 4))
    wide = build_model("gcn_ssm", **ARGS, node_encoder=torch.nn.Linear(5, 9))
    with pytest.raises(ValueError, match=r"node_encoder must map .* \(12, 8\).*\(12, 9\)"):
        wide(graph, x)


def test_an_activation_class_is_refused_for_its_instance(graph):
    with pytest.raises(TypeError, match=r"the class ReLU: pass ReLU\(\)"):
        build_model("gcn_ssm", **ARGS, activation=torch.nn.ReLU)
    assert build_model("gcn_ssm", **ARGS, activation=torch.nn.ReLU())(
        graph, torch.randn(12, 5)
    ).shape == (12, 2)


def test_ssm_models_refuse_residual_and_name_the_plain_twin():
    with pytest.raises(TypeError, match=r"GCNSSM takes no residual.*plain twin"):
        build_model("gcn_ssm", **ARGS, residual=True)


def test_feature_shape_messages_name_the_fix_that_applies(graph):
    model = build_model("gcn_ssm", **ARGS)
    with pytest.raises(ValueError, match=r"\(12,\).*Pass a 2-D") as one_d:
        model(graph, torch.randn(12))
    assert "in_feats=12" not in str(one_d.value)  # the node count is no width
    with pytest.raises(ValueError, match=r"\(11, 5\).*one row per node") as rows:
        model(graph, torch.randn(11, 5))
    assert "Build the model with in_feats" not in str(rows.value)
    with pytest.raises(TypeError, match=r"float16.*feat.float\(\).*autocast") as half:
        model(graph, torch.randn(12, 5).half())
    assert "model.to(torch.float16)" not in str(half.value)  # half weights fail on CPU


def test_a_layer_called_directly_checks_its_inputs():
    g = random_graph(6, 10, seed=1)
    layer, h = SSMLayer(GraphConv(4, 4), 4), torch.randn(6, 4)
    with pytest.raises(TypeError, match=r"layer\(graph, feat\), got \(Tensor, DGLGraph\)"):
        layer(h, g)
    with pytest.raises(ValueError, match="5 rows of node states for a graph of 6 nodes"):
        layer(g, torch.randn(5, 4))
    with pytest.raises(TypeError, match=r"dtype torch.float64, but the conv's weights"):
        layer(g, h.double())
    # GraphConv's third argument is its weight, SAGEConv's an edge weight: not edge features.
    with pytest.raises(TypeError, match="GraphConv takes no edge features.*'weight'"):
        layer(g, h, torch.randn(g.num_edges(), 4))
    sage = SSMLayer(dgl.nn.SAGEConv(4, 4, "mean"), 4)
    with pytest.raises(TypeError, match="SAGEConv takes no edge features.*'edge_weight'"):
        sage(g, h, torch.randn(g.num_edges(), 4))
    gated = SSMLayer(dgl.nn.GatedGCNConv(4, 4, 4), 4)  # its third argument is edge features
    assert gated(g, h, torch.randn(g.num_edges(), 4))[1].shape == (g.num_edges(), 4)
    for conv, update in [("gcn", None), (GraphConv(4, 4), "ssm")]:
        with pytest.raises(TypeError, match="must be a torch.nn.Module"):
            SSMLayer(conv, 4, update)


def test_an_update_refuses_states_of_another_width():
    with pytest.raises(ValueError, match=r"width 4 got state \(3, 5\).*SSMUpdate\(5\)"):
        SSMUpdate(4)(torch.ones(3, 5), torch.ones(3, 5))
    with pytest.raises(ValueError, match="width 4"):
        SSMUpdate(4, state="orthogonal")(torch.ones(3, 4), torch.ones(3, 5))
    # A state of width 1 would broadcast silently against a scalar Λ: refused too.
    with pytest.raises(ValueError, match=r"width 4 got state \(3, 1\)"):
        SSMUpdate(4)(torch.ones(3, 1), torch.ones(3, 4))


def test_hop_graphs_and_distances_refuse_bad_arguments():
    from dgl_ssm import KHopTransform, hop_graphs
    from dgl_ssm.analysis import dirichlet_energy, hop_distances

    ring = dgl.to_bidirected(dgl.graph((torch.arange(8), (torch.arange(8) + 1) % 8)))
    rewired = KHopTransform(2)(ring)
    for bad, error in [(0, ValueError), (2.5, TypeError)]:
        with pytest.raises(error, match="hop_graphs: max_hop must be a positive integer"):
            hop_graphs(rewired, bad)
    with pytest.raises(TypeError, match=r"for one node, pass \[0\]"):
        hop_distances(ring, 0)
    with pytest.raises(TypeError, match="integer node ids"):
        hop_distances(ring, [2.7])  # not silently node 2
    with pytest.raises(TypeError, match="hop_distances needs a dgl.DGLGraph"):
        hop_distances(torch.randn(8, 3), [0])
    bipartite = dgl.heterograph({("user", "rates", "item"): ([0, 1], [1, 0])})
    for call in (lambda: dirichlet_energy(bipartite, torch.randn(4, 2)),
                 lambda: hop_distances(bipartite, [0])):  # fmt: skip
        with pytest.raises(dgl.DGLError, match="not homogeneous"):
            call()


def test_a_graph_rewired_under_another_hop_field_names_it():
    from dgl_ssm import KHopTransform

    ring = dgl.to_bidirected(dgl.graph((torch.arange(8), (torch.arange(8) + 1) % 8)))
    rewired = KHopTransform(2, hop_field="dist")(ring)
    with pytest.raises(dgl.DGLError, match="rewired with hop_field='dist'"):
        build_model("kgcn_ssm", **{**ARGS, "num_layers": 2})(rewired, torch.randn(8, 5))


def test_spectrum_options_are_checked_before_arpack_sees_them():
    from dgl_ssm import calibrate
    from dgl_ssm.analysis import (
        dense_layer_jacobian,
        layer_gradient_norms,
        layer_inputs,
        spectral_density,
        top_eigenvalue_moduli,
        top_singular_values,
    )

    g = dgl.add_self_loop(dgl.graph((torch.arange(12), (torch.arange(12) + 1) % 12)))
    model, x = build_model("gin_ssm", 4, 4, 2, 3), torch.randn(12, 4)
    layer, h = model.layers[0], layer_inputs(model, g, x)[0].feat
    # Every block of this ring is solved densely, where ARPACK's options were never read.
    for call, error, message in [
        (lambda: top_eigenvalue_moduli(layer, g, h, tol="x"), TypeError, "tol must be"),
        (lambda: top_singular_values(layer, g, h, tol=-1.0), ValueError, "tol must be"),
        (lambda: top_eigenvalue_moduli(layer, g, h, maxiter=0), ValueError, "maxiter must"),
        (lambda: top_eigenvalue_moduli(layer, g, h, k=3, ncv=4), ValueError, r"ncv .* ≥ 5"),
        (lambda: dense_layer_jacobian(layer, g, h, max_dim=None), TypeError, "max_dim must"),
        (lambda: dense_layer_jacobian(layer, g, h, dtype=torch.float16), TypeError, "too coarse"),
        (lambda: spectral_density(layer, g, h, bandwidth=float("nan")), ValueError, "bandwidth"),
        (lambda: layer_gradient_norms(model, g, x, "ce"), TypeError, "loss_fn must be a function"),
        (lambda: calibrate(model, g, x, spectrum_options={"kk": 1}), ValueError, "unknown: 'kk'"),
    ]:
        with pytest.raises(error, match=message):
            call()
    assert top_eigenvalue_moduli(layer, g, h, k=3, ncv=5).shape == (3,)
    assert top_singular_values(layer, g, h, k=3, tol=0).shape == (3,)  # 0: machine precision


def test_options_a_model_or_transform_would_ignore_are_refused():
    from dgl_ssm import KHopTransform

    with pytest.raises(ValueError, match="delay applies to hop_mode='cumulative'"):
        build_model("kgcn_ssm", **ARGS, delay=1)  # exact mode reads no past states
    assert build_model("kgcn_ssm", **ARGS, hop_mode="cumulative", delay=1).delay == 1
    with pytest.raises(TypeError, match="dropout must be a number"):
        build_model("gcn_ssm", **ARGS, dropout="0.5")
    with pytest.raises(TypeError, match="self_loops must be True or False"):
        KHopTransform(2, self_loops="no")  # a truthy string would have meant True
    with pytest.raises(TypeError, match=r"KHopTransform needs a dgl.DGLGraph"):
        KHopTransform(2)(torch.ones(3))


def test_multi_hop_conv_checks_what_it_is_built_and_called_with():
    from dgl_ssm import KHopTransform, MultiHopConv, hop_graphs

    ring = dgl.to_bidirected(dgl.graph((torch.arange(8), (torch.arange(8) + 1) % 8)))
    graphs, h = hop_graphs(KHopTransform(2)(ring), 2), torch.randn(8, 4)
    with pytest.raises(TypeError, match="non-empty list of convs"):
        MultiHopConv([], 0)  # used to return the int 0 when called
    for options, must in ((dict(layer_index=-5), "a non-negative"),
                          (dict(layer_index=0, delay=-1), "a positive"),
                          (dict(layer_index=1, delay=0), "a positive")):  # fmt: skip
        with pytest.raises(ValueError, match=f"must be {must} integer"):  # DRew's ν ≥ 1
            MultiHopConv([GraphConv(4, 4)], **options)
    delayed = MultiHopConv([GraphConv(4, 4), GraphConv(4, 4)], layer_index=1, delay=1)
    with pytest.raises(TypeError, match=r"hops 1..2: pass a list .*got one graph"):
        delayed(graphs[0], h)
    for history in (None, [h]):  # hop 2 reads H(0) through the delay
        with pytest.raises(ValueError, match=r"pass history, the states H\(0\) … H\(1\)"):
            delayed(graphs, h, history=history)
    assert delayed(graphs, h, history=[h, h]).shape == (8, 4)


def test_multi_hop_conv_checks_every_hop_graph_and_needs_no_history_within_its_delay():
    from dgl_ssm import KHopTransform, MultiHopConv, hop_graphs

    ring = dgl.to_bidirected(dgl.graph((torch.arange(8), (torch.arange(8) + 1) % 8)))
    graphs, h = hop_graphs(KHopTransform(2)(ring), 2), torch.randn(8, 4)
    two = MultiHopConv([GraphConv(4, 4), GraphConv(4, 4)], layer_index=1)
    with pytest.raises(TypeError, match="MultiHopConv needs a dgl.DGLGraph as its graph, got "
                       "Tensor"):  # fmt: skip
        two([graphs[0], torch.ones(8, 8)], h)
    # τ(k) = max(0, k − ν) is 0 for every hop k ≤ ν: no past state is read, none is needed.
    within = MultiHopConv([GraphConv(4, 4), GraphConv(4, 4)], layer_index=1, delay=2)
    expected = within.convs[0](graphs[0], h) + within.convs[1](graphs[1], h)
    torch.testing.assert_close(within(graphs, h), expected)
    torch.testing.assert_close(within(tuple(graphs), h), expected)  # a tuple is a list of graphs
    assert repr(within).startswith("MultiHopConv(\n  hops=1..2, delay=2\n")


def test_a_numpy_matrix_is_a_custom_ssm_matrix():
    np = pytest.importorskip("numpy")
    update = SSMUpdate(4, state=0.5 * np.eye(4), input=np.diag([0.1, 0.2, 0.3, 0.4]))
    assert torch.equal(update.state_matrix, 0.5 * torch.eye(4))
    assert torch.allclose(update.input_matrix, torch.diag(torch.tensor([0.1, 0.2, 0.3, 0.4])))
    with pytest.raises(ValueError, match=r"expected shape \(4, 4\), got \(3, 3\)"):
        SSMUpdate(4, state=np.eye(3))
    with pytest.raises(TypeError, match="Unknown SSM matrix kind 3"):
        SSMUpdate(4, state=3)


def test_diagnostics_name_a_missing_or_misplaced_input():
    from dgl_ssm.analysis import layer_energies, layer_inputs, top_eigenvalue_moduli

    g = dgl.add_self_loop(dgl.graph((torch.arange(12), (torch.arange(12) + 1) % 12)))
    x, model = torch.randn(12, 5), build_model("gcn_ssm", **ARGS)
    with pytest.raises(TypeError, match="layer_energies: feat must be a torch.Tensor"):
        layer_energies(model, g, x.numpy(), dtype=torch.float64)
    with pytest.raises(TypeError, match="layer_energies needs a dgl.DGLGraph"):
        layer_energies(model, x, g)
    gated = build_model("gatedgcn_ssm", **ARGS)
    call = layer_inputs(gated, g, x)[0]
    with pytest.raises(TypeError, match=r"GatedGCNConv needs a third argument.*\.edge_feat"):
        top_eigenvalue_moduli(gated.layers[0], g, call.feat)
    with pytest.raises(TypeError, match=r"or by name to the diagnostics.*edge_feat=e\)"):
        top_eigenvalue_moduli(gated.layers[0], g, call.feat)  # what to pass them to, here
    with_edges = top_eigenvalue_moduli(gated.layers[0], g, call.feat, edge_feat=call.edge_feat)
    assert with_edges.shape == (10,)
    with pytest.raises(TypeError, match="seed must be an integer"):
        top_eigenvalue_moduli(gated.layers[0], g, call.feat, edge_feat=call.edge_feat, seed=1.5)


def test_a_conv_whose_third_argument_is_not_edge_features_takes_it_by_name():
    # GCN2Conv(graph, feat, feat_0): SSMLayer's third positional argument is edge features.
    g, h = random_graph(6, 10, seed=1), torch.randn(6, 4)
    layer = SSMLayer(dgl.nn.GCN2Conv(4, layer=1, alpha=0.5), 4)
    conv_alone = layer.conv(g, h, feat_0=h)
    expected = h + 0.1 * torch.relu(conv_alone)  # Λ = I, B = 0.1·I
    torch.testing.assert_close(layer(g, h, feat_0=h), expected)
    with pytest.raises(TypeError, match=r"returned no edge features.*feat_0=\.\.\."):
        layer(g, h, h)
    with pytest.raises(TypeError, match=r"needs a third argument, 'feat_0'.*feat_0=\.\.\."):
        layer(g, h)


def test_a_conv_that_reads_edge_features_and_returns_nodes_passes_them_on():
    # GINEConv(graph, feat, edge_feat) returns node features only: the edge features go on
    # unchanged, given third or by name.
    g, h = random_graph(6, 10, seed=1), torch.randn(6, 4)
    edges = torch.randn(g.num_edges(), 4)
    layer = SSMLayer(dgl.nn.GINEConv(torch.nn.Linear(4, 4)), 4)
    expected = h + 0.1 * torch.relu(layer.conv(g, h, edges))  # Λ = I, B = 0.1·I
    state, edges_out = layer(g, h, edges)
    torch.testing.assert_close(state, expected)
    assert edges_out is edges
    state, edges_out = layer(graph=g, feat=h, edge_feat=edges)
    torch.testing.assert_close(state, expected)
    assert edges_out is edges
    # ChebConv's third argument is λ_max: refused before the conv misreads it.
    cheb = SSMLayer(dgl.nn.ChebConv(4, 4, 2), 4)
    with pytest.raises(TypeError, match="ChebConv takes no edge features.*'lambda_max'"):
        cheb(g, h, edges)


def test_nnconv_takes_its_efeat_as_edge_features_and_passes_them_on():
    # NNConv(graph, feat, efeat) reads edge features under another name and returns nodes only:
    # the layer must take them as edge features (not refuse them) and pass them on unchanged.
    g, h = random_graph(6, 10, seed=1), torch.randn(6, 4)
    edges = torch.randn(g.num_edges(), 3)
    layer = SSMLayer(dgl.nn.NNConv(4, 4, torch.nn.Linear(3, 16), "sum"), 4)
    expected = h + 0.1 * torch.relu(layer.conv(g, h, edges))  # Λ = I, B = 0.1·I
    state, edges_out = layer(g, h, edges)
    torch.testing.assert_close(state, expected)
    assert edges_out is edges


class PositionalOnlySum(torch.nn.Module):
    """A conv whose edge features can only be given by position: sum of in-neighbours."""

    def forward(self, graph, feat, edge_feat, /):
        with graph.local_scope():
            graph.ndata["h"] = feat
            graph.update_all(dgl.function.copy_u("h", "m"), dgl.function.sum("m", "h"))
            return graph.ndata["h"]


def test_gmm_pseudo_and_a_positional_only_third_argument_are_edge_features_passed_on():
    # GMMConv(graph, feat, pseudo) reads its pseudo-coordinates per edge and returns nodes only,
    # as does a conv whose third parameter is positional-only: both go on unchanged.
    g, h = random_graph(6, 10, seed=1), torch.randn(6, 4)
    pseudo = torch.rand(g.num_edges(), 2)
    gmm = SSMLayer(dgl.nn.GMMConv(4, 4, dim=2, n_kernels=3, allow_zero_in_degree=True), 4)
    state, edges_out = gmm(g, h, pseudo)
    torch.testing.assert_close(state, h + 0.1 * torch.relu(gmm.conv(g, h, pseudo)))
    assert edges_out is pseudo
    summed = SSMLayer(PositionalOnlySum(), 4)
    adjacency = torch.zeros(6, 6)
    adjacency.index_put_(tuple(reversed(g.edges())), torch.ones(g.num_edges()), accumulate=True)
    state, edges_out = summed(g, h, pseudo)
    torch.testing.assert_close(state, h + 0.1 * torch.relu(adjacency @ h))
    assert edges_out is pseudo
    with pytest.raises(TypeError, match=r"needs a third argument, 'edge_feat'"):
        summed(g, h)


def test_multi_head_edge_outputs_are_concatenated_like_the_nodes():
    # EGATConv returns (N, heads, d/heads) nodes and (E, heads, d_e/heads) edges: two layers
    # stack only if both are flattened, and each flat row is the heads side by side.
    g, h = random_graph(6, 10, seed=1), torch.randn(6, 4)
    edges = torch.randn(g.num_edges(), 6)
    layers = [SSMLayer(dgl.nn.EGATConv(4, 6, 2, 3, num_heads=2), 4) for _ in range(2)]
    state, edges_out = layers[0](g, h, edges)
    _, raw_edges = layers[0].conv(g, h, edges)
    torch.testing.assert_close(edges_out, torch.relu(raw_edges.reshape(-1, 6)))
    assert layers[1](g, state, edges_out)[1].shape == (g.num_edges(), 6)


def test_a_misspelt_option_is_named_with_the_class_built_and_a_guess():
    with pytest.raises(TypeError, match=r"GCNSSM got an unknown option 'num_layer'.*'num_layers'"):
        build_model("gcn_ssm", 5, 8, 2, 3, num_layer=4)
    with pytest.raises(TypeError, match=r"GCN got an unknown option 'dropuot'.*'dropout'"):
        build_model("gcn", **ARGS, dropuot=0.1)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got 2"):
        build_model("gcn_ssm", **ARGS, dropout=2)


@pytest.mark.parametrize(
    "make",
    [
        lambda flag: build_model("gcn", 3, 4, 2, 2, residual=flag),
        lambda flag: build_model("gcn_ssm", 3, 4, 2, 2, shared_ssm=flag),
        lambda flag: build_model("gcn_ssm", 3, 4, 2, 2, allow_zero_in_degree=flag),
        lambda flag: dgl_ssm.KHopTransform(2, self_loops=flag),
        lambda flag: dgl_ssm.analysis.dirichlet_energy(
            dgl.graph(([0], [1])), torch.ones(2, 1), normalized=flag),
    ],
    ids=["residual", "shared_ssm", "allow_zero_in_degree", "self_loops", "normalized"],
)  # fmt: skip
def test_an_on_off_option_given_as_text_is_refused_not_read_as_on(make):
    """ "False" and "no" are truthy: read as they stand, they silently switched the option on."""
    for flag in ("False", "no", 0, None):
        with pytest.raises(TypeError, match=rf"must be True or False, got {flag!r}"):
            make(flag)
    make(False)
    make(True)


def test_an_empty_graph_in_a_batch_is_refused_by_a_graph_model():
    """Pooled over no node, its output was the head's bias: a prediction made of nothing."""
    model = build_model("gin_ssm", 3, 4, 2, 2, task="graph")
    full = dgl.add_self_loop(dgl.graph(([0, 1], [1, 2])))
    empty = dgl.graph(([], []), num_nodes=0)
    with pytest.raises(dgl.DGLError, match=r"Graph\(s\) \[1\] of the batch of 3 have no nodes"):
        model(dgl.batch([full, empty, full]), torch.randn(6, 3))
    assert model(dgl.batch([full, full]), torch.randn(6, 3)).shape == (2, 2)
    node_model = build_model("gin_ssm", 3, 4, 2, 2)  # per node: nothing is made up
    assert node_model(dgl.batch([full, empty]), torch.randn(3, 3)).shape == (3, 2)


@pytest.mark.parametrize("option", [dict(max_hop=2), dict(past_max_hop="repeat"),
                                    dict(hop_field="h")])  # fmt: skip
def test_k_hop_options_on_a_one_hop_model_are_refused_not_ignored(option):
    """A one-hop GCN-SSM on a rewired graph aggregates every hop as one graph: a max_hop
    it was given would have been silently ignored."""
    with pytest.raises(ValueError, match=rf"{next(iter(option))} applies to k-hop models only"):
        build_model("gcn_ssm", 3, 4, 2, 2, **option)
    assert build_model("gcn_ssm", 3, 4, 2, 2, hop_mode="exact", **option).max_hop >= 2


def test_the_exported_building_blocks_refuse_what_they_cannot_use_in_one_line():
    from dgl_ssm import hop_graphs
    from dgl_ssm.analysis import sensitivity_by_distance
    from dgl_ssm.models import SSMGNN

    with pytest.raises(TypeError, match=r"SSMGNN has no backbone None.*one of gcn, gin"):
        SSMGNN(3, 4, 2, 2)  # a base class: a bare KeyError: None
    hetero = dgl.heterograph({("a", "r", "b"): ([0], [1]), ("b", "s", "a"): ([0], [0])})
    with pytest.raises(dgl.DGLError, match="not homogeneous"):
        hop_graphs(hetero, 2)  # AttributeError: 'dict' object has no attribute '_version'
    graph, model = dgl.add_self_loop(dgl.graph(([0, 1], [1, 2]))), build_model("gcn", 3, 4, 2, 2)
    feat = torch.randn(3, 3)
    for options, error, message in (
        (dict(max_distance="2"), TypeError, "max_distance must be a non-negative integer"),
        (dict(max_distance=-1), ValueError, "max_distance must be a non-negative integer"),
        (dict(seed="a"), TypeError, "seed must be a non-negative integer"),
        (dict(targets=[0, 3]), IndexError, r"targets \[3\] out of range .* \(valid: 0..2\)"),
        (dict(targets=[-1]), IndexError, r"targets \[-1\] out of range for a graph of 3 nodes"),
        (
            dict(distance_graph=dgl.graph(([0], [1]), num_nodes=4)),
            ValueError,
            "distance_graph has 4 nodes but the model's graph has 3",
        ),
    ):
        with pytest.raises(error, match=f"sensitivity_by_distance: {message}"):
            sensitivity_by_distance(model, graph, feat, **options)
    assert sensitivity_by_distance(model, graph, feat, max_distance=0) == {0: pytest.approx(
        sensitivity_by_distance(model, graph, feat)[0])}  # fmt: skip


def test_ssm_update_called_directly_names_a_shape_or_dtype_it_cannot_use():
    """Exported, SSMUpdate failed inside torch on mismatched rows, integer input, or float64
    input against float32 matrices (and silently ran float64 with scalar ones, as it may)."""
    with pytest.raises(ValueError, match=r"state \(3, 4\) and conv output \(5, 4\)"):
        SSMUpdate(4)(torch.ones(3, 4), torch.ones(5, 4))
    with pytest.raises(TypeError, match=r"state is torch.int64, its Λ and B are torch.float32"):
        SSMUpdate(4)(torch.ones(3, 4, dtype=torch.long), torch.ones(3, 4, dtype=torch.long))
    matrices = SSMUpdate(4, state="orthogonal")
    with pytest.raises(TypeError, match=r"state is torch.float64.*\.to\(torch.float32\)"):
        matrices(torch.ones(3, 4).double(), torch.ones(3, 4).double())
    double = torch.ones(3, 4).double()
    assert SSMUpdate(4)(double, double).dtype == torch.float64  # scalar Λ and B: any float
    assert matrices.double()(double, double).dtype == torch.float64


def test_inputs_that_failed_deep_inside_or_were_read_wrongly_are_named():
    """Each of these failed inside torch or DGL, named the wrong function, or ran silently
    wrong (a complex Λ lost its imaginary part; learn_eps="no" learned ε; a detached loss
    gave gradient norms of 0, as if they had vanished)."""
    from dgl.nn import GatedGCNConv

    from dgl_ssm import KHopTransform, calibrate, hop_graphs
    from dgl_ssm.analysis import (
        dirichlet_energy,
        layer_energies,
        layer_gradient_norms,
        one_hop_graph,
    )

    g = dgl.add_self_loop(random_graph(12, 20, seed=3))
    x, model = torch.randn(12, 5), build_model("gcn_ssm", **ARGS)
    gated = SSMLayer(GatedGCNConv(8, 8, 8), 8)
    path = dgl.to_bidirected(dgl.graph(([0, 1, 2], [1, 2, 3])))
    for call, error, message in [
        (lambda: build_model("gcn_ssm", **ARGS, state=torch.eye(8, dtype=torch.complex64)),
         TypeError, "must be real, got dtype torch.complex64"),
        (lambda: build_model("gin_ssm", **ARGS, conv_options={"learn_eps": "no"}),
         TypeError, "learn_eps must be True or False"),
        (lambda: build_model("sage_ssm", **ARGS, conv_options={"aggregator": "meen"}),
         ValueError, "Unknown SAGE aggregator 'meen'. Did you mean 'mean'"),
        (lambda: SSMLayer(GraphConv(8, 8), 8, dropout=1.5), ValueError, "SSMLayer: dropout"),
        (lambda: SSMLayer(GraphConv(8, 8), 8)(g, torch.ones(12, 8, dtype=torch.long)),
         TypeError, r"dtype torch.int64; .* feat.float\(\)"),
        (lambda: gated(g, torch.randn(12, 8), torch.randn(5, 8)),
         ValueError, rf"edge features of shape \(5, 8\) for a graph of {g.num_edges()} edges"),
        (lambda: build_model("gcn_ssm", **ARGS).half()(g, x.half()),
         TypeError, "float16 weights on the CPU"),
        (lambda: model(g, x, edge_weight=torch.ones(g.num_edges())),
         TypeError, "edge_weight_field='w'"),
        (lambda: model(g, x, egde_feat=None), TypeError, "unknown keyword.*'egde_feat'"),
        (lambda: build_model("gatedgcn_ssm", **ARGS)(g, x, edge_weight=torch.ones(32)),
         TypeError, r"takes no edge weights .*model\(graph, feat, edge_feat\)"),
        (lambda: calibrate(build_model("gatedgcn_ssm", **ARGS, edge_feats=3), g, x),
         ValueError, r"calibrate\(model, graph, feat, edge_feat=...\)"),
        (lambda: layer_gradient_norms(model, g, x, lambda out: out.detach().sum()),
         ValueError, "does not depend on the model's output"),
        (lambda: layer_gradient_norms(model, x, g, lambda out: out.sum()),
         TypeError, "layer_gradient_norms needs a dgl.DGLGraph"),
        (lambda: layer_gradient_norms(model, g, x, lambda out: out.sum(), eval_mode="no"),
         TypeError, "eval_mode must be True or False"),
        (lambda: layer_energies(model, g, x, energy_graph=random_graph(5, 4)),
         ValueError, "energy_graph has 5 nodes but the model's graph has 12"),
        (lambda: dirichlet_energy([g, g], torch.randn(12, 3)), TypeError, "got list"),
        (lambda: one_hop_graph(torch.ones(3)), TypeError, "one_hop_graph needs a dgl.DGLGraph"),
        (lambda: hop_graphs(KHopTransform(2)(path), 5),
         dgl.DGLError, r"hop_graphs was asked for hops 1..5.*hop_graphs\(g, 2\)"),
    ]:  # fmt: skip
        with pytest.raises(error, match=message):
            call()


def test_a_half_model_runs_under_autocast_on_the_cpu():
    # Refused outside autocast (no float16 matrix product on the CPU), but autocast casts
    # each op's inputs to its own dtype, so there it runs.
    g, model = dgl.add_self_loop(random_graph(12, 20, seed=3)), build_model("gcn_ssm", **ARGS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.half()(g, torch.randn(12, 5).half()).shape == (12, 2)


def test_a_float64_input_under_autocast_is_named_as_outside_it():
    """autocast never casts float64: such an input against float32 matrices (or the reverse)
    is named, not left to torch's matmul error; float64 throughout still runs."""
    update = SSMUpdate(4, state="orthogonal", input="orthogonal")
    for state, conv_out in [(torch.ones(3, 4).double(), torch.ones(3, 4).double()),
                            (torch.ones(3, 4), torch.ones(3, 4).double())]:  # fmt: skip
        with torch.autocast("cpu", dtype=torch.bfloat16):
            with pytest.raises(TypeError, match=r"torch.float64, its Λ and B are torch.float32"):
                update(state, conv_out)
    # and the other way round: float32 inputs against float64 matrices (a model.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.raises(TypeError, match=r"torch.float32, its Λ and B are torch.float64"):
            update.double()(torch.ones(3, 4), torch.ones(3, 4))
        assert update(torch.ones(3, 4).double(), torch.ones(3, 4).double()).dtype == torch.float64


def test_autocast_on_another_device_excuses_no_dtype_mismatch(monkeypatch):
    """Only the autocast of the tensors' own device casts them: CPU tensors inside a CUDA
    autocast block (torch's flag for it faked on: no GPU here) are matched as outside autocast,
    so a bfloat16 state against float32 Λ and B is named, not left to torch's addmm error."""
    update = SSMUpdate(4, state="orthogonal", input="orthogonal")
    state, conv_out = torch.ones(3, 4, dtype=torch.bfloat16), torch.ones(3, 4)
    monkeypatch.setattr(torch, "is_autocast_enabled", lambda: True)  # CUDA's autocast is on
    assert not torch.is_autocast_cpu_enabled()
    with pytest.raises(TypeError, match=r"torch.bfloat16, its Λ and B are torch.float32"):
        update(state, conv_out)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the CPU's own autocast does cast them
        assert update(state, conv_out).shape == (3, 4)


def test_building_blocks_name_what_failed_deep_inside_or_ran_silently_wrong():
    """Each of these failed inside torch or DGL (a bare AssertionError, "mat1 and mat2
    shapes cannot be multiplied", "'list' object has no attribute 'local_scope'", "bincount
    only supports 1-d …") or ran silently wrong: an empty mask's NaN loss read as gradient
    norms of 0, decoupled="no" as True."""
    import torch.nn.functional as F
    from dgl.nn import GatedGCNConv

    from dgl_ssm import KHopTransform, MultiHopConv, PlainUpdate, calibrate, hop_graphs
    from dgl_ssm.analysis import layer_gradient_norms, top_eigenvalue_moduli
    from dgl_ssm.ssm import build_matrix

    g, x = dgl.add_self_loop(random_graph(6, 10, seed=1)), torch.randn(6, 4)
    layer, model = SSMLayer(GraphConv(4, 4), 4), build_model("gcn_ssm", 4, 8, 3, 2)
    ring = dgl.to_bidirected(dgl.graph((torch.arange(8), (torch.arange(8) + 1) % 8)))
    graphs, h = hop_graphs(KHopTransform(2)(ring), 2), torch.randn(8, 4)
    delayed = MultiHopConv([GraphConv(4, 4), GraphConv(4, 4)], layer_index=1, delay=1)
    none = torch.zeros(6, dtype=torch.bool)
    report = calibrate(model, g, x)
    with pytest.warns(UserWarning, match="state_scale=1e"):
        diverging = build_model("gcn_ssm", 4, 8, 3, 2, state_scale=1e30)
    for call, error, message in [
        (lambda: layer_gradient_norms(
            model, g, x, lambda out: F.cross_entropy(out[none], torch.zeros(0, dtype=torch.long))),
         ValueError, r"loss_fn returned nan.*empty mask"),
        (lambda: layer_gradient_norms(diverging, g, x, lambda out: out.sum()),
         ValueError, r"loss_fn returned (nan|-?inf).*output is not finite: the model diverged"),
        (lambda: SSMLayer(GatedGCNConv(4, 4, 4), 4)(g, x, [1, 2]),
         TypeError, "SSMLayer's edge features must be a torch.Tensor, got list"),
        (lambda: layer(g, x, edge_weight=torch.ones(3)),
         ValueError, rf"edge weights of shape \(3,\) for a graph of {g.num_edges()} edges"),
        (lambda: layer([g], x), TypeError, "SSMLayer needs a dgl.DGLGraph as its graph, got list"),
        (lambda: top_eigenvalue_moduli(layer, [g, g], x), TypeError, "got list"),
        (lambda: SSMLayer(GraphConv(3, 4), 4)(g, x),
         ValueError, r"GraphConv failed on node states of shape \(6, 4\).*returns width 4"),
        (lambda: SSMLayer(GatedGCNConv(4, 4, 4), 4)(g, x, torch.randn(g.num_edges(), 3)),
         ValueError, rf"edge features of shape \({g.num_edges()}, 3\).*width it was built for"),
        (lambda: delayed(graphs, torch.randn(8, 5), history=[torch.randn(8, 5)] * 2),
         ValueError, r"hop-1 GraphConv failed on states of shape \(8, 5\)"),
        (lambda: delayed(graphs, torch.randn(5, 4), history=[torch.randn(5, 4)] * 2),
         ValueError, r"MultiHopConv: feat has 5 rows but the graph has 8 nodes"),
        (lambda: delayed(graphs, h, history=[torch.randn(8, 5), h]),
         ValueError, r"history\[0\] has shape \(8, 5\), but the layer's states .* \(8, 4\)"),
        (lambda: delayed([torch.ones(3)] * 2, h, history=[h, h]),
         TypeError, "MultiHopConv needs a dgl.DGLGraph as its graph, got Tensor"),
        (lambda: build_matrix("orthogonal", 3, generator=0),
         TypeError, r"generator must be a torch.Generator .*got int"),
        (lambda: calibrate(model, g, x, spectrum_options=[("k", 1)]),
         TypeError, r"spectrum_options must be a dict of keyword options"),
        (lambda: top_eigenvalue_moduli(layer, g, x, layer_kwargs=[1]),
         TypeError, "layer_kwargs must be a dict of keyword options"),
        (lambda: PlainUpdate(residual=True)(torch.randn(6, 4), torch.randn(5, 4)),
         ValueError, r"got state \(6, 4\) and conv output \(5, 4\)"),
        (lambda: build_model("kgcn_ssm", 4, 8, 3, 2, hop_field=None),
         TypeError, "hop_field must be a non-empty str"),
        (lambda: report.param_groups(model, 1e-2, decoupled="no"),
         TypeError, "decoupled must be True or False, got 'no'"),
    ]:  # fmt: skip
        with pytest.raises(error, match=message):
            call()

    # A conv of one's own that takes a list of graphs, as MultiHopConv does, says so.
    class SumOverGraphs(torch.nn.Module):
        takes_graph_list = True

        def __init__(self):
            super().__init__()
            self.conv = GraphConv(4, 4)

        def forward(self, graphs, feat):
            return sum(self.conv(one, feat) for one in graphs)

    assert SSMLayer(SumOverGraphs(), 4)([g, g], x).shape == (6, 4)
    # The deep error stays attached as the cause, for whoever wants torch's own words.
    with pytest.raises(ValueError) as caught:
        SSMLayer(GraphConv(3, 4), 4)(g, x)
    assert "mat1 and mat2" in str(caught.value.__cause__)


def test_hop_labels_that_split_into_nothing_are_refused():
    """(E, 1) labels failed in torch.bincount; labels that are no hop count (0, 1.5) gave a
    model whose every layer saw its own node only, without a word."""
    from dgl_ssm import KHopTransform, hop_graphs

    ring = dgl.to_bidirected(dgl.graph((torch.arange(8), (torch.arange(8) + 1) % 8)))
    model, x = build_model("kgcn_ssm", 4, 8, 3, 2), torch.randn(8, 4)
    column = KHopTransform(2)(ring)
    column.edata["hop"] = column.edata["hop"].view(-1, 1)
    with pytest.raises(dgl.DGLError, match=r"one hop count per edge .*shape \(32, 1\).*squeeze"):
        model(column, x)
    for labels, found in (
        (torch.zeros(16, dtype=torch.long), "0"),
        (torch.full((16,), 1.5), "1.5"),
        (torch.full((16,), float("inf")), "inf"),  # (was torch.bincount's error)
    ):
        unlabelled = ring.clone()
        unlabelled.edata["hop"] = labels
        message = rf"No edge between two nodes carries a hop count .*\(labels found: {found}\)"
        with pytest.raises(dgl.DGLError, match=message + r".*KHopTransform\(k=2\)"):
            model(unlabelled, x)
        with pytest.raises(dgl.DGLError, match=message):
            hop_graphs(unlabelled, 2)
    huge = ring.clone()  # a label far past K needs no bin of its own
    huge.edata["hop"] = torch.tensor([1] + [10**12] * 15)
    assert [g.num_edges() for g in hop_graphs(huge, 2)] == [9, 8]
    loops = dgl.add_self_loop(dgl.graph(([], []), num_nodes=8))  # no edge between nodes
    loops.edata["hop"] = torch.zeros(8, dtype=torch.long)
    assert model(loops, x).shape == (8, 3)
    # A sampled subgraph may keep only hops above those the model reads (nodes 0, 3, 6 of a
    # 12-ring rewired with k = 3 are 3 hops apart): its layers then rightly see self loops.
    ring12 = dgl.to_bidirected(dgl.graph((torch.arange(12), (torch.arange(12) + 1) % 12)))
    sub = dgl.node_subgraph(KHopTransform(3)(ring12), [0, 3, 6])
    assert sub.edata["hop"].tolist() == [3, 3, 3, 3]
    deep = build_model("kgcn_ssm", 4, 8, 3, 2, max_hop=3)  # reads hops 1..2
    assert torch.isfinite(deep(sub, torch.randn(3, 4))).all()


def test_a_state_scale_that_compounds_past_1e3_through_the_stack_warns():
    """At m = 1.5 a 256-layer stack overflowed float32 to NaN, and the loss, energies and
    sensitivities all read NaN, without a warning."""
    from dgl_ssm import GCNSSM

    g, x = dgl.add_self_loop(random_graph(6, 10, seed=1)), torch.randn(6, 4)
    with pytest.warns(UserWarning, match=r"state_scale=1.5 .* 1.2e\+45 through 256 layers") as by:
        model = build_model("gcn_ssm", 4, 8, 3, 256, state_scale=1.5)
    assert not torch.isfinite(model(g, x)).all()  # what the warning is for
    with pytest.warns(UserWarning, match=r"1.2e\+05 through 64") as direct:
        GCNSSM(4, 8, 3, 64, state="orthogonal", state_scale=-1.2)
    for caught in (by, direct):  # the line that built the model, not the library's
        assert [w.filename for w in caught if "state_scale" in str(w.message)] == [__file__]
    with warnings.catch_warnings(record=True) as caught:  # (not "error": another thread's
        warnings.simplefilter("always")  # warnings, such as OGB's version check, land here)
        for scale, layers in ((1.0, 1024), (1.1, 72), (-0.9, 1024), (1.006, 1024)):
            build_model("gcn_ssm", 4, 8, 3, layers, state_scale=scale)  # 1.1**72 = 959
        build_model("gcn_ssm", 4, 8, 3, 256, state="random", state_scale=1.5)  # m is no modulus
        normed = build_model("gcn_ssm", 4, 8, 3, 256, state_scale=1.5, norm="layer")
    assert not [w for w in caught if "state_scale" in str(w.message)]
    assert torch.isfinite(normed(g, x)).all()  # the norm holds the state


def test_edge_features_of_the_wrong_shape_are_named():
    graph = random_graph(12, 20, seed=3)
    model = build_model("gatedgcn_ssm", **ARGS, edge_feats=3)
    x, edges = torch.randn(12, 5), graph.num_edges()
    for shape in ((edges, 4), (edges - 1, 3), (edges, 3, 1)):
        expected = f"Edge features must be a float tensor of shape ({edges}, 3), got {shape}"
        with pytest.raises(ValueError, match=re.escape(expected)):
            model(graph, x, torch.randn(*shape))


def test_a_name_in_capitals_gets_its_lower_case_suggestion():
    with pytest.raises(ValueError, match=r"Unknown model 'GCN_SSM'. Did you mean 'gcn_ssm'\?"):
        build_model("GCN_SSM", **ARGS)


def test_k_hop_rewiring_of_an_edge_feature_backbone_is_refused_when_built():
    """GatedGCN's edge features belong to the input graph's edges, which a k-hop layer's hop
    graph does not have: refused at construction, not by a shape error deep in a forward."""
    for hop_mode in ("exact", "cumulative"):
        with pytest.raises(ValueError, match="k-hop rewiring is not available for gatedgcn"):
            build_model("gatedgcn_ssm", **ARGS, hop_mode=hop_mode)


def test_a_dropout_of_one_is_refused_by_layers_and_models():
    """p = 1 would zero every conv input (the layer would add σ(F(G, 0)) whatever the state):
    dropout is a number in [0, 1), the bound itself excluded."""
    with pytest.raises(ValueError, match=r"SSMLayer: dropout must be a number in \[0, 1\)"):
        SSMLayer(GraphConv(8, 8), 8, dropout=1.0)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got 1"):
        build_model("gcn_ssm", **ARGS, dropout=1.0)
    assert SSMLayer(GraphConv(8, 8), 8, dropout=0.99).dropout.p == 0.99


def test_the_compounding_warning_counts_norm_none_as_no_norm_and_starts_past_1e3():
    """norm="none" (the YAML spelling) rescales nothing, so it warns as None does; 10³
    exactly (m = 10, 3 layers) is not past 1e3, 2¹⁰ = 1024 is."""
    with pytest.warns(UserWarning, match=r"1.2e\+45 through 256 layers"):
        build_model("gcn_ssm", 4, 8, 3, 256, state_scale=1.5, norm="none")
    with pytest.warns(UserWarning, match=r"1.0e\+03 through 10 layers"):
        build_model("gcn_ssm", 4, 8, 3, 10, state_scale=2.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_model("gcn_ssm", 4, 8, 3, 3, state_scale=10.0)
    assert not [w for w in caught if "state_scale" in str(w.message)]


def test_numbers_given_as_bools_lists_or_tensors_are_read_as_the_checks_promise():
    """A bool is no number (True would be a scale of 1, False a dropout of 0), a one-element
    tensor gives its number, a longer one is no number; a list is no name (unhashable) and
    NumPy's bool is a bool."""
    np = pytest.importorskip("numpy")
    from dgl_ssm import KHopTransform

    with pytest.raises(TypeError, match="state_scale must be a finite real number, got True"):
        build_model("gcn_ssm", **ARGS, state_scale=True)
    with pytest.raises(TypeError, match=r"SSMLayer: dropout must be a number in \[0, 1\)"):
        SSMLayer(GraphConv(8, 8), 8, dropout=False)
    with pytest.raises(TypeError, match=r"dropout must be a number in \[0, 1\), got tensor"):
        build_model("gcn_ssm", **ARGS, dropout=torch.tensor([0.1, 0.2]))
    half = build_model("gcn_ssm", **ARGS, state_scale=torch.tensor(0.5), dropout=torch.tensor(0.5))
    assert torch.equal(half.layers[0].update.state_matrix, 0.5 * torch.eye(8))
    with pytest.raises(ValueError, match=r"Unknown norm \['layer'\]. Did you mean 'layer'"):
        build_model("gcn_ssm", **ARGS, norm=["layer"])
    assert KHopTransform(2, self_loops=np.bool_(True)).self_loops is True


class WrongWidthBias(torch.nn.Module):
    """A conv whose bias is 6 wide on 4-wide states: torch's broadcast error, not a matmul's."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(6))

    def forward(self, graph, feat):
        return feat + self.bias


def test_a_broadcast_failure_inside_a_conv_is_named_like_a_matrix_product_failure():
    g = random_graph(6, 10, seed=1)
    message = (r"SSMLayer's WrongWidthBias failed on node states of shape \(6, 4\) with a "
               r"shape mismatch.*takes and returns width 4")  # fmt: skip
    with pytest.raises(ValueError, match=message):
        SSMLayer(WrongWidthBias(), 4)(g, torch.randn(6, 4))


def test_a_model_with_its_own_node_encoder_still_refuses_nan_and_a_scalar(graph):
    model = build_model("gcn_ssm", **ARGS, node_encoder=torch.nn.Linear(5, 8))
    x = torch.randn(12, 5)
    x[4, 0] = float("nan")
    with pytest.raises(ValueError, match="Node features contain NaN or Inf values in 1 of 12"):
        model(graph, x)
    with pytest.raises(ValueError, match=r"shape \(\), but the graph has 12 nodes"):
        model(graph, torch.tensor(1.0))
    with pytest.raises(TypeError, match="Node features must be a torch.Tensor, got ndarray"):
        model(graph, x.numpy())


def test_features_of_another_graph_and_width_get_the_row_fix_and_bfloat16_the_autocast_one(
    graph,
):
    model = build_model("gcn_ssm", **ARGS)
    with pytest.raises(ValueError, match=r"\(11, 7\).*one row per node") as both:
        model(graph, torch.randn(11, 7))  # rows first: they belong to another graph
    assert "in_feats=7" not in str(both.value)
    with pytest.raises(TypeError, match=r"bfloat16.*feat.float\(\).*autocast") as bf16:
        model(graph, torch.randn(12, 5).bfloat16())
    assert "model.to(torch.bfloat16)" not in str(bf16.value)  # bfloat16 weights: autocast's


def test_a_finite_tensor_is_scanned_once_until_written_in_place(monkeypatch):
    from dgl_ssm.checks import check_finite

    feat, scans, isfinite = torch.randn(5, 3), [], torch.isfinite
    monkeypatch.setattr(torch, "isfinite", lambda x: scans.append(x is feat) or isfinite(x))
    for _ in range(3):  # (no CheckedInputs here: the finite scan itself is remembered)
        check_finite(feat, "Node features", "feat")
    assert scans.count(True) == 1
    feat[0, 0] = 1.0
    check_finite(feat, "Node features", "feat")
    assert scans.count(True) == 2


def test_diagnostics_check_every_hop_graph_and_what_each_measure_promises():
    from dgl_ssm.analysis import dirichlet_energy, layer_jacobian_operator, sensitivity_by_distance

    np = pytest.importorskip("numpy")

    g = dgl.graph(([0, 1], [1, 2]))
    states = torch.tensor([[0.0], [1.0], [float("nan")]])
    assert math.isnan(dirichlet_energy(g, states))  # a NaN state's energy says NaN itself
    with pytest.raises(dgl.DGLError, match="dirichlet_energy: the graph has no nodes"):
        dirichlet_energy(dgl.graph(([], []), num_nodes=0), torch.zeros(0, 3))
    with pytest.raises(ValueError, match=r"feat must be a 2-D \(num_nodes, dim\) tensor, got "
                       r"shape \(3,\)"):  # fmt: skip
        dirichlet_energy(g, torch.tensor([0.0, 1.0, 3.0]))
    looped, model = dgl.add_self_loop(g), build_model("gcn", 3, 4, 2, 2)
    with pytest.raises(ValueError, match="sensitivity_by_distance: the node features in feat "
                       r"contain NaN.*nan_to_num\(feat\)"):  # fmt: skip
        sensitivity_by_distance(model, looped, torch.full((3, 3), float("nan")))
    with pytest.raises(TypeError, match="feat must be a floating-point torch.Tensor, got "
                       "torch.int64"):  # fmt: skip
        dirichlet_energy(g, torch.ones(3, 1, dtype=torch.long))
    identity = layer_jacobian_operator(lambda graphs, h: h, (looped, looped), torch.randn(3, 2))
    np.testing.assert_allclose(identity @ np.arange(6.0), np.arange(6.0))  # hop graphs as a tuple
    with pytest.raises(ValueError, match=r"the states in feat contain NaN.*the model diverged"):
        layer_jacobian_operator(lambda graph, h: h, looped, torch.full((3, 2), float("inf")))
    hetero = dgl.heterograph({("a", "r", "b"): ([0], [1]), ("b", "s", "a"): ([0], [0])})
    with pytest.raises(dgl.DGLError, match="layer_jacobian_operator measures graphs of one"):
        layer_jacobian_operator(lambda graphs, h: h, [looped, hetero], torch.randn(3, 2))


def test_edge_features_for_a_model_built_without_them_name_edge_feats(graph):
    with pytest.raises(ValueError, match=r"built without edge_feats\. Pass edge_feats=<width>"):
        build_model("gatedgcn_ssm", **ARGS)(
            graph, torch.randn(12, 5), torch.randn(graph.num_edges(), 3)
        )


def test_edge_weights_of_another_dtype_than_the_model_are_named(graph):
    graph.edata["w"] = torch.rand(graph.num_edges(), dtype=torch.float64)
    model = build_model("gcn_ssm", **ARGS, edge_weight_field="w", allow_zero_in_degree=True)
    with pytest.raises(TypeError, match=r"Edge weights have dtype torch.float64, but the "
                       r"model's weights are torch.float32.*\.float\(\)"):  # fmt: skip
        model(graph, torch.randn(12, 5))


def test_integer_edge_features_are_the_wrong_kind_not_the_wrong_shape(graph):
    model, edges = build_model("gatedgcn_ssm", **ARGS, edge_feats=3), graph.num_edges()
    with pytest.raises(TypeError, match=rf"shape \({edges}, 3\), got \({edges}, 3\) with dtype "
                       "torch.int64"):  # fmt: skip
        model(graph, torch.randn(12, 5), torch.ones(edges, 3, dtype=torch.long))


def test_gat_heads_that_do_not_divide_hidden_get_a_width_that_works():
    with pytest.raises(ValueError, match=r"hidden \(8\).*heads \(3\)\. Choose e\.g\. hidden=6 or"):
        build_model("gat_ssm", **{**ARGS, "conv_options": {"heads": 3}})
    with pytest.raises(ValueError, match=r"hidden \(2\).*Choose e\.g\. hidden=3 or heads=1"):
        build_model("gat_ssm", **{**ARGS, "hidden": 2, "conv_options": {"heads": 3}})


def test_every_sage_aggregator_dgl_has_is_accepted(graph):
    for aggregator in ("mean", "gcn", "pool", "lstm"):
        model = build_model("sage_ssm", **ARGS, conv_options={"aggregator": aggregator})
        assert model.layers[0].conv._aggre_type == aggregator
        assert model(graph, torch.randn(12, 5)).shape == (12, 2)


def test_a_tensor_or_model_in_the_wrong_place_is_named_by_kind_not_printed_whole():
    # is_ssm(model) printed the model's whole repr (700 characters) as the unknown name, and
    # layer_energies(model, g, x, e) the edge features' every number as `normalized`.
    from dgl_ssm.analysis import layer_energies

    graph = dgl.add_self_loop(dgl.rand_graph(6, 12))
    model = build_model("gcn_ssm", in_feats=3, hidden=4, out_feats=2, num_layers=2)
    with pytest.raises(ValueError) as error:
        is_ssm(model)
    message = str(error.value)
    assert (
        message.startswith("Unknown model a GCNSSM module. Valid: gcn, gcn_ssm")
        and len(message) < 300
    )
    edges = torch.randn(graph.num_edges(), 3)
    with pytest.raises(TypeError) as error:
        layer_energies(model, graph, torch.randn(6, 3), edges)
    assert str(error.value) == (
        "layer_energies: its fourth argument is normalized (True or False), got a float32 "
        f"tensor of shape ({graph.num_edges()}, 3); pass edge features by keyword: edge_feat=…"
    )
    with pytest.raises(
        TypeError,
        match=r"residual must be True or False, got a float32 tensor of shape \(3, 3\)\.$",
    ):
        build_model("gcn", in_feats=3, hidden=4, out_feats=2, num_layers=2,
                    residual=torch.ones(3, 3))  # fmt: skip
