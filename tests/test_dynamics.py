"""The paper's mechanism, measured with autograd: vanishing gradients and layer spectra."""

import pytest
import torch

from dgl_ssm import PlainUpdate, SSMLayer, SSMUpdate, build_model
from dgl_ssm.backbones import BACKBONES
from tests.conftest import random_graph


def layer_gradient_norms(model, graph, feat):
    """‖∂loss/∂H⁽ℓ⁾‖ for every layer output, with loss = sum of squares of the output."""
    states = []

    def keep(_module, _inputs, output):
        output.retain_grad()
        states.append(output)

    handles = [layer.register_forward_hook(keep) for layer in model.layers]
    model(graph, feat).pow(2).sum().backward()
    for handle in handles:
        handle.remove()
    return [state.grad.norm().item() for state in states]


@pytest.mark.parametrize("name,bound", [("gcn", "vanishes"), ("gcn_ssm", "survives")])
def test_gradients_vanish_through_64_plain_layers_but_not_ssm_ones(name, bound):
    torch.manual_seed(0)
    graph = random_graph(200, 600, seed=0)
    model = build_model(name, in_feats=16, hidden=32, out_feats=4, num_layers=64)
    norms = layer_gradient_norms(model, graph, torch.randn(200, 16))
    ratio = norms[0] / norms[-1]  # ‖∂L/∂H⁽¹⁾‖ / ‖∂L/∂H⁽⁶⁴⁾‖
    if bound == "vanishes":
        assert ratio < 1e-6, ratio
    else:
        assert ratio > 1e-2, ratio


def dense_layer_jacobian(layer, graph, dim):
    feat = torch.randn(graph.num_nodes(), dim)
    jac = torch.autograd.functional.jacobian(lambda h: layer(graph, h), feat)
    n = graph.num_nodes() * dim
    return jac.reshape(n, n)


def test_gcn_ssm_layer_jacobian_sits_near_one_and_plain_gcn_contracts():
    torch.manual_seed(0)
    graph, dim = random_graph(20, 30, seed=2), 8
    conv = BACKBONES["gcn"].make_conv(dim)
    ssm = SSMLayer(conv, dim, SSMUpdate(dim, state_scale=1.0, input_scale=0.1))
    plain = SSMLayer(conv, dim, PlainUpdate("relu"))
    ssm_moduli = torch.linalg.eigvals(dense_layer_jacobian(ssm, graph, dim)).abs()
    plain_moduli = torch.linalg.eigvals(dense_layer_jacobian(plain, graph, dim)).abs()
    assert ssm_moduli.min() >= 0.8 and ssm_moduli.max() <= 1.2
    assert plain_moduli.median() < 0.5
