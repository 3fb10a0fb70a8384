"""Reference baselines: Platonov et al.'s residual GCN against a dense re-computation."""

import doctest
import math

import dgl
import numpy as np
import pytest
import torch
from dgl.nn import GraphConv
from torch import nn

import dgl_ssm_bench.baselines
from dgl_ssm_bench.baselines import KipfGCN, PlatonovBlock, PlatonovGCN
from dgl_ssm_bench.config import DataConfig, ModelConfig, RunConfig
from dgl_ssm_bench.run import validate
from tests.conftest import ring

# A directed graph with one self loop a node: out-degrees (with the loop) 3, 3, 2, 2, 2;
# in-degrees 2, 2, 3, 2, 3, so a normalisation by the in-degree would not match.
SRC = [0, 0, 1, 1, 2, 3, 4]
DST = [1, 2, 2, 4, 3, 4, 0]
N = 5


def directed_graph():
    return dgl.add_self_loop(dgl.graph((SRC, DST), num_nodes=N))


def dense_operator(src, dst, n):
    """Â[v, u] = 1/sqrt(d_u d_v) for every edge u → v (self loops included), d = out-degree."""
    adjacency = np.zeros((n, n))
    for u, v in zip(src, dst):
        adjacency[v, u] += 1.0
    for v in range(n):
        adjacency[v, v] += 1.0
    out_degree = adjacency.sum(axis=0)  # column u counts the edges leaving u
    scale = 1.0 / np.sqrt(out_degree)
    return scale[:, None] * adjacency * scale[None, :]


def gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)  # biased, as LayerNorm
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def numpy_params(module):
    return {name: p.detach().double().numpy() for name, p in module.named_parameters()}


def dense_block(a_hat, x, p, prefix=""):
    h = a_hat @ layer_norm(x, p[prefix + "norm.weight"], p[prefix + "norm.bias"])
    h = gelu(h @ p[prefix + "linear_1.weight"].T + p[prefix + "linear_1.bias"])
    return x + h @ p[prefix + "linear_2.weight"].T + p[prefix + "linear_2.bias"]


def randomise(module, seed):
    """Non-trivial values for every parameter, LayerNorm's too (default: 1 and 0)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)


def test_one_block_matches_a_dense_recomputation():
    block = PlatonovBlock(6, dropout=0.3, ffn_multiplier=2).eval()
    randomise(block, 0)
    x = torch.randn(N, 6, generator=torch.Generator().manual_seed(1))
    expected = dense_block(dense_operator(SRC, DST, N), x.double().numpy(), numpy_params(block))
    got = block(directed_graph(), x).detach().double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_the_whole_model_matches_a_dense_recomputation():
    model = PlatonovGCN(in_feats=3, hidden=8, out_feats=4, num_layers=2).eval()
    randomise(model, 2)
    x = torch.randn(N, 3, generator=torch.Generator().manual_seed(3))
    p = numpy_params(model)
    a_hat = dense_operator(SRC, DST, N)
    h = gelu(x.double().numpy() @ p["encoder.weight"].T + p["encoder.bias"])
    for i in range(2):
        h = dense_block(a_hat, h, p, prefix=f"blocks.{i}.")
    h = layer_norm(h, p["output_norm.weight"], p["output_norm.bias"])
    expected = h @ p["head.weight"].T + p["head.bias"]
    got = model(directed_graph(), x).detach().double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_on_an_undirected_graph_the_propagation_is_graphconv_norm_both():
    graph = dgl.add_self_loop(dgl.to_bidirected(dgl.graph((SRC, DST), num_nodes=N)))
    x = torch.randn(N, 6)
    reference = GraphConv(6, 6, norm="both", weight=False, bias=False)
    torch.testing.assert_close(dgl_ssm_bench.baselines.gcn_propagate(graph, x), reference(graph, x))


def count(in_feats, hidden, out_feats, layers, ffn=None):
    """Encoder, per block LayerNorm + two linear maps, output LayerNorm, head."""
    ffn = hidden if ffn is None else ffn
    block = 2 * hidden + (hidden * ffn + ffn) + (ffn * hidden + hidden)
    return (
        (in_feats * hidden + hidden) + layers * block + 2 * hidden + hidden * out_feats + out_feats
    )


@pytest.mark.parametrize("layers", [1, 3, 5])
def test_parameter_count(layers):
    # Platonov et al.'s size on Minesweeper (7 features, 2 outputs here): one block at
    # hidden 512 is 2·512 + 2·(512² + 512) = 526,336 parameters.
    model = PlatonovGCN(7, 512, 2, num_layers=layers)
    total = sum(p.numel() for p in model.parameters())
    assert total == count(7, 512, 2, layers) == 4096 + layers * 526_336 + 1024 + 1026
    assert count(7, 512, 2, 1) == 532_482
    wide = PlatonovGCN(5, 16, 3, num_layers=2, ffn_multiplier=2)
    assert sum(p.numel() for p in wide.parameters()) == count(5, 16, 3, 2, ffn=32)


def test_dropout_is_off_in_eval_and_on_in_training():
    model = PlatonovGCN(3, 16, 2, num_layers=2, dropout=0.5)
    graph, x = directed_graph(), torch.randn(N, 3)
    model.eval()
    torch.testing.assert_close(model(graph, x), model(graph, x))
    model.train()
    assert not torch.allclose(model(graph, x), model(graph, x))


def test_reset_parameters_redraws_every_weight():
    model = PlatonovGCN(3, 8, 2, num_layers=2)
    randomise(model, 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.reset_parameters()
    after = model.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(after["blocks.1.norm.weight"], torch.ones(8))  # LayerNorm's default


def test_repr_and_bad_input():
    text = repr(PlatonovGCN(3, 8, 2, num_layers=2, ffn_multiplier=2))
    assert "in_feats=3, hidden=8, out_feats=2, layers=2" in text and "ffn_dim=16" in text
    with pytest.raises(ValueError, match="node classifier"):
        PlatonovGCN(3, 8, 2, task="graph")
    for model in (PlatonovGCN, KipfGCN):
        with pytest.raises(ValueError, match="num_layers must be a positive integer"):
            model(3, 8, 2, num_layers=0)  # (Kipf's built one conv without a word)
    no_loops = dgl.graph(([0, 1], [1, 2]), num_nodes=3)  # node 0 has no in-edge
    with pytest.raises(dgl.DGLError, match="0-in-degree"):
        PlatonovGCN(3, 8, 2)(no_loops, torch.randn(3, 3))
    allowed = PlatonovGCN(3, 8, 2, allow_zero_in_degree=True)
    assert allowed(no_loops, torch.randn(3, 3)).shape == (3, 2)


def test_a_run_of_gcn_platonov_validates_and_refuses_options_it_would_ignore():
    config = RunConfig(
        model=ModelConfig(name="gcn_platonov", hidden=512, num_layers=3, dropout=0.2),
        data=DataConfig(name="minesweeper"),
    )
    validate(config)  # builds the probe model, loads no data
    for option, value in (
        ("residual", True),
        ("state_scale", 1.0),
        ("hop_mode", "exact"),
        ("norm", "batch"),
        ("activation", "tanh"),
    ):  # its own LN and GELU
        bad = RunConfig.from_dict(config.to_dict())
        setattr(bad.model, option, value)
        with pytest.raises(ValueError, match=f"--{option.replace('_', '-')}"):
            validate(bad)


def test_the_docstring_examples_run():
    # benchmarks/ is not among pytest's doctest paths; run this module's examples here.
    result = doctest.testmod(dgl_ssm_bench.baselines)
    assert result.attempted >= 3 and result.failed == 0


@pytest.mark.parametrize("name", ["gcn_platonov", "gcn_kipf"])
def test_inputs_are_checked_once_per_unchanged_graph_and_features(monkeypatch, name):
    """A training loop calls the model on the same inputs every epoch; each check reads values,
    which on a GPU waits for it. Inputs edited in place are checked again."""
    from dgl_ssm_bench.models import BASELINES

    checks = []
    real = dgl_ssm_bench.baselines.check_node_features
    monkeypatch.setattr(dgl_ssm_bench.baselines, "check_node_features",
                        lambda *a: checks.append(1) or real(*a))  # fmt: skip
    graph = dgl.add_self_loop(dgl.graph(([0, 1, 2], [1, 2, 0])))
    feat = torch.randn(3, 4)
    model = BASELINES[name](4, 8, 2, 2)
    for _ in range(3):
        model(graph, feat)
    assert len(checks) == 1
    feat[0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        model(graph, feat)


@pytest.mark.parametrize("layers,expected", [(2, 23063), (3, 23063 + 16 * 16 + 16)])
def test_kipf_gcn_has_num_layers_convs_and_the_papers_parameter_count(layers, expected):
    # Kipf & Welling on Cora: 1433 → 16 → 7, GraphConv(a, b) has a·b weights + b biases:
    # 1433·16 + 16 + 16·7 + 7 = 23,063; one more hidden layer adds 16·16 + 16.
    model = KipfGCN(1433, 16, 7, num_layers=layers)
    assert len(model.convs) == layers
    assert sum(p.numel() for p in model.parameters()) == expected


def test_kipf_gcn_drops_out_its_input_features_too():
    # "dropout before each conv": with one conv, the only dropout is on the input features.
    model = KipfGCN(3, 8, 2, num_layers=1, dropout=0.5).train()
    graph, x = ring(5), torch.randn(5, 3)
    torch.manual_seed(0)
    assert not torch.allclose(model(graph, x), model(graph, x))
    model.eval()
    torch.testing.assert_close(model(graph, x), model(graph, x))


def test_platonov_gcn_applies_its_dropout_after_the_input_map_and_in_every_block():
    # Input map: 1 dropout; each block: after each of its 2 linear maps → 1 + 2·L calls,
    # every one at the run's rate.
    layers, rate = 3, 0.3
    model = PlatonovGCN(3, 8, 2, num_layers=layers, dropout=rate).train()
    rates = []
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.register_forward_hook(lambda m, _i, _o: rates.append(m.p))
    model(ring(5), torch.randn(5, 3))
    assert rates == [rate] * (1 + 2 * layers)


def test_a_node_without_out_edges_has_its_degree_clamped_to_one():
    # 0 <-> 1 and 0 -> 2: node 2 has an in-edge but no out-edge (degree 0, clamped to 1), so
    # (Ax)_2 = x_0 / sqrt(d_0 * 1) with d_0 = 2, where 1/sqrt(0) would make it inf.
    graph = dgl.graph(([0, 1, 0], [1, 0, 2]))
    out = dgl_ssm_bench.baselines.gcn_propagate(graph, torch.tensor([[4.0], [9.0], [1.0]]))
    expected = torch.tensor([[9.0 / 2**0.5], [4.0 / 2**0.5], [4.0 / 2**0.5]])
    torch.testing.assert_close(out, expected)


def test_platonovs_gcn_defaults_to_their_published_dropout():
    # paper.md section 6: Platonov et al.'s GCN, "dropout 0.2".
    rates = {m.p for m in PlatonovGCN(4, 8, 2).modules() if isinstance(m, nn.Dropout)}
    assert rates == {0.2}
