"""dgl_ssm.scaling: each conv's output-scaling symmetry, checked by scaling the weights of the
DGL conv itself and comparing its output with c times the original."""

import copy

import pytest
import torch
from dgl.nn import GATConv, GatedGCNConv, GINConv, GraphConv, SAGEConv
from torch import nn

from dgl_ssm import GATSSM, GCNSSM, SSMLayer
from dgl_ssm.backbones import BACKBONES
from dgl_ssm.scaling import output_scaling, scaling_exponents, unknown_convs
from tests.conftest import random_graph

D = 8


def _gin_mlp():
    return GINConv(nn.Sequential(nn.Linear(D, D), nn.ReLU(), nn.Linear(D, D)), "sum")


CONVS = {
    **{name: backbone.make_conv for name, backbone in BACKBONES.items()},
    "sage, pool": lambda dim: SAGEConv(dim, dim, "pool"),
    "sage, gcn": lambda dim: SAGEConv(dim, dim, "gcn"),
    "sage, lstm": lambda dim: SAGEConv(dim, dim, "lstm"),
    "gat, projected residual": lambda dim: GATConv(dim, 3, 2, residual=True),  # 8 → 2 × 3
    "gin, one linear map": lambda dim: GINConv(nn.Linear(dim, dim), "mean"),
}


def _call(conv, graph, feat, edge_feat):
    out = conv(graph, feat, edge_feat) if isinstance(conv, GatedGCNConv) else conv(graph, feat)
    node, edge = out if isinstance(out, tuple) else (out, None)
    return node.flatten(1), edge


@pytest.mark.parametrize("name", CONVS)
def test_scaling_the_weights_by_their_exponents_scales_the_output(name):
    torch.manual_seed(0)
    graph = random_graph(12, 30, seed=1)
    feat, edge_feat = torch.randn(12, D), torch.randn(graph.num_edges(), D)
    conv = CONVS[name](D)
    for p in conv.parameters():  # off the initial values (zero biases would hide a wrong k)
        nn.init.normal_(p)
    exponents = output_scaling(conv)
    assert exponents is not None and set(exponents) == {n for n, _ in conv.named_parameters()}
    c = 3.0
    scaled = copy.deepcopy(conv)
    with torch.no_grad():
        for p_name, p in scaled.named_parameters():
            p.mul_(c ** exponents[p_name])
    node, edge = _call(conv, graph, feat, edge_feat)
    scaled_node, scaled_edge = _call(scaled, graph, feat, edge_feat)
    torch.testing.assert_close(scaled_node, c * node, rtol=1e-5, atol=1e-5)
    if edge is not None:  # GatedGCN: the gates, and the edge output, do not move
        torch.testing.assert_close(scaled_edge, edge)
    # not every weight can take k = 1: the uniform rule is wrong for these convs
    uniform = copy.deepcopy(conv)
    with torch.no_grad():
        for p in uniform.parameters():
            p.mul_(c)
    linear = name in ("gcn", "sage", "sage, gcn", "gin, one linear map")
    assert torch.allclose(_call(uniform, graph, feat, edge_feat)[0], c * node, atol=1e-4) == linear


@pytest.mark.parametrize("relu", [nn.functional.relu, torch.relu])
def test_a_conv_given_relu_as_a_function_keeps_its_symmetry(relu):
    # GraphConv(..., activation=F.relu), DGL's usual spelling: relu(c·x) = c·relu(x), c > 0.
    torch.manual_seed(0)
    graph, feat = random_graph(9, 15, seed=3), torch.randn(9, D)
    conv = GraphConv(D, D, activation=relu)
    nn.init.normal_(conv.bias)
    assert output_scaling(conv) == {"weight": 1, "bias": 1}
    with torch.no_grad():
        before = conv(graph, feat)
        for p in conv.parameters():
            p.mul_(2.5)
    torch.testing.assert_close(conv(graph, feat), 2.5 * before)


def test_hand_worked_exponents():
    assert output_scaling(GraphConv(D, D)) == {"weight": 1, "bias": 1}
    assert output_scaling(GATConv(D, 2, 4)) == {"attn_l": -1, "attn_r": -1, "bias": 1,
                                                "fc.weight": 1}  # fmt: skip
    mlp = {"apply_func.0.weight": 0, "apply_func.0.bias": 0, "apply_func.2.weight": 1,
           "apply_func.2.bias": 1}  # fmt: skip
    assert output_scaling(_gin_mlp()) == mlp
    gated = output_scaling(BACKBONES["gatedgcn"].make_conv(D))
    assert {n for n, k in gated.items() if k == 1} == {"A.weight", "A.bias", "B.weight", "B.bias"}
    assert set(gated.values()) == {0, 1}


@pytest.mark.parametrize(
    "conv",
    [
        GATConv(D, D, 1, residual=True),  # identity residual: adds the unscaled input
        GATConv(D, D // 2, 2, activation=nn.functional.elu),
        GatedGCNConv(D, D, D, batch_norm=True),  # the norm undoes any scale
        GatedGCNConv(D, D, D, batch_norm=False, residual=True),  # adds its unscaled input
        GraphConv(D, D, activation=torch.tanh),
        GraphConv(D, D, activation=nn.ELU()),  # ELU(c·x) ≠ c·ELU(x) for x < 0
        GraphConv(D, D, weight=False),  # the aggregated input plus a bias: nothing scales it
        SAGEConv(D, D, "mean", norm=nn.LayerNorm(D)),
        GINConv(nn.Sequential(nn.Linear(D, D), nn.Tanh()), "sum"),
        GINConv(nn.Linear(D, D), "sum", activation=torch.tanh),  # σ applied after the MLP
        nn.Linear(D, D),  # not a conv this module knows
    ],
)
def test_convs_without_a_known_symmetry_say_so(conv):
    assert output_scaling(conv) is None


def test_a_layers_exponents_name_its_parameters_and_default_to_one():
    layer = GATSSM(in_feats=3, hidden=8, out_feats=2, num_layers=1).layers[0]
    assert scaling_exponents(layer) == {"conv.attn_l": -1, "conv.attn_r": -1, "conv.bias": 1,
                                        "conv.fc.weight": 1}  # fmt: skip
    layer = GCNSSM(in_feats=3, hidden=8, out_feats=2, num_layers=1, norm="layer").layers[0]
    # the norm is no conv: its weights fall back to k = 1
    assert scaling_exponents(layer) == {"conv.weight": 1, "conv.bias": 1, "norm.weight": 1,
                                        "norm.bias": 1}  # fmt: skip


def test_weights_no_known_conv_covers_are_named():
    gat = GATSSM(in_feats=3, hidden=8, out_feats=2, num_layers=1).layers[0]
    assert unknown_convs(gat) == []
    normed = GCNSSM(in_feats=3, hidden=8, out_feats=2, num_layers=1, norm="layer").layers[0]
    assert unknown_convs(normed) == ["norm"]
    assert unknown_convs(SSMLayer(GraphConv(D, D, weight=False), D)) == ["conv"]


def test_a_parametrised_module_beside_a_known_conv_is_not_taken_as_part_of_it():
    """Only the conv's own submodules are covered: a sibling whose name merely starts with the
    conv's name is not, and a container is named by its parametrised leaves."""
    layer = nn.ModuleDict({"conv": GraphConv(D, D), "conv_skip": nn.Linear(D, D),
                           "head": nn.Sequential(nn.Linear(D, D))})  # fmt: skip
    assert unknown_convs(layer) == ["conv_skip", "head.0"]
