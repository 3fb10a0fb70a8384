"""dgl_ssm.analysis against independent computations: numpy theory, dense autograd, hand sums."""

import copy
import csv
import itertools
import math
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import dgl
import networkx as nx
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch
import torch.nn.functional as F
from dgl.nn import GraphConv

from dgl_ssm import GINSSM, KHopTransform, PlainUpdate, SSMLayer, SSMUpdate, build_model, is_khop
from dgl_ssm.analysis import (
    dense_layer_jacobian,
    dirichlet_energy,
    hop_distances,
    layer_energies,
    layer_gradient_norms,
    layer_inputs,
    layer_jacobian_operator,
    one_hop_graph,
    sensitivity,
    sensitivity_by_distance,
    spectral_density,
    top_eigenvalue_moduli,
    top_singular_values,
)
from dgl_ssm.backbones import BACKBONES
from dgl_ssm_bench.threads import threads
from tests.conftest import layer_by_layer, numpy_gcn_adjacency, random_graph, ring


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tests run thousands of small autograd passes and ARPACK steps, where intra-op
    threads (torch's and OpenBLAS's) only add synchronisation, and stall badly when other
    jobs share the cores: use one thread here, then restore the settings."""
    with threads(1):
        yield


def gcn_layer(dim, update):
    return SSMLayer(BACKBONES["gcn"].make_conv(dim), dim, update)


# --- Jacobians -----------------------------------------------------------------------------


def test_linear_gcn_jacobian_singular_values_are_products_of_adjacency_and_weight_spectra():
    torch.manual_seed(0)
    bare = random_graph(15, 25, seed=3, self_loops=False)
    dim = 5
    conv = GraphConv(dim, dim, bias=False)
    layer = SSMLayer(conv, dim, PlainUpdate("identity"))
    jac = dense_layer_jacobian(layer, dgl.add_self_loop(bare), torch.randn(15, dim))
    assert jac.shape == (15 * dim, 15 * dim) and jac.dtype == torch.float64

    a_hat = numpy_gcn_adjacency(bare)
    weight = conv.weight.detach().double().numpy()
    theory = np.sort(np.outer(np.abs(np.linalg.eigvalsh(a_hat)), np.linalg.svd(weight)[1]).ravel())
    measured = np.sort(np.linalg.svd(jac.numpy(), compute_uv=False))
    np.testing.assert_allclose(measured, theory, atol=1e-5)
    np.testing.assert_allclose(jac.numpy(), np.kron(a_hat, weight.T), atol=1e-12)


def test_dense_jacobian_of_a_plain_function_and_the_size_refusal():
    weight = torch.randn(3, 3, dtype=torch.float64)
    graph = dgl.graph(([0], [1]), num_nodes=4)
    jac = dense_layer_jacobian(lambda g, h: torch.tanh(h @ weight), graph, torch.zeros(4, 3))
    np.testing.assert_allclose(jac.numpy(), np.kron(np.eye(4), weight.numpy().T), atol=1e-12)

    big = random_graph(300, 600, seed=0)
    with pytest.raises(ValueError, match=r"19,200 × 19,200.*top_singular_values"):
        dense_layer_jacobian(gcn_layer(64, SSMUpdate(64)), big, torch.randn(300, 64))


@pytest.mark.parametrize("update", ["ssm", "plain"])
def test_matrix_free_spectra_match_the_dense_ones(update):
    torch.manual_seed(1)
    graph, dim = random_graph(40, 80, seed=4), 8
    layer = gcn_layer(dim, SSMUpdate(dim) if update == "ssm" else PlainUpdate("relu"))
    feat = torch.randn(40, dim)
    jac = dense_layer_jacobian(layer, graph, feat).numpy()

    dense_sv = np.sort(np.linalg.svd(jac, compute_uv=False))[::-1]
    np.testing.assert_allclose(
        top_singular_values(layer, graph, feat, k=10), dense_sv[:10], atol=1e-4
    )
    dense_moduli = np.sort(np.abs(np.linalg.eigvals(jac)))[::-1]
    moduli = top_eigenvalue_moduli(layer, graph, feat, k=10)
    np.testing.assert_allclose(moduli, dense_moduli[:10], atol=1e-4)

    grid, density = spectral_density(layer, graph, feat, num_probes=20, lanczos_steps=40)
    assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, abs=1e-3)
    mean_square = torch.trapezoid(grid**2 * density, grid).item()  # E[σ²] = ‖J‖²_F / N
    bandwidth = 0.025 * dense_sv[0]
    expected = (dense_sv**2).mean() + bandwidth**2  # the kernel adds its own variance
    assert mean_square == pytest.approx(expected, rel=0.1)
    # The whole curve, against the same kernel (mirrored at 0) on the dense singular values:
    # the SSM layer's values all lie near 1, where two moments cannot tell a wrong
    # quadrature (weights ignored: L1 0.59; θ for √θ: 0.24) from the right one (0.005).
    g = grid.numpy()
    kernel = np.exp(-0.5 * ((g[:, None] - dense_sv) / bandwidth) ** 2) + np.exp(
        -0.5 * ((g[:, None] + dense_sv) / bandwidth) ** 2
    )
    reference = kernel.mean(axis=1) / (bandwidth * math.sqrt(2 * math.pi))
    assert np.trapz(np.abs(density.numpy() - reference), g) < 0.1


def tanh_layer(backbone, dim=8):
    """A layer of ``backbone``'s conv and a tanh (no SSM step), a 20-node graph, its input."""
    torch.manual_seed(2)
    graph = random_graph(20, 40, seed=5)
    options = {"heads": 2} if backbone == "gat" else {}
    layer = SSMLayer(BACKBONES[backbone].make_conv(dim, **options), dim, PlainUpdate("tanh"))
    return layer, graph, torch.randn(20, dim)


@pytest.mark.parametrize("backbone", ["gin", "sage", "gat", "gatedgcn"])
def test_every_backbone_linearises_correctly(backbone):
    layer, graph, feat = tanh_layer(backbone)
    edge_feat = torch.randn(graph.num_edges(), 8) if backbone == "gatedgcn" else None
    jac = dense_layer_jacobian(layer, graph, feat, edge_feat).numpy()
    dense_sv = np.sort(np.linalg.svd(jac, compute_uv=False))[::-1]
    dense_moduli = np.sort(np.abs(np.linalg.eigvals(jac)))[::-1]
    if backbone == "gat":  # edge softmax's backward is not differentiable: J·v by differences
        with pytest.warns(RuntimeWarning, match="finite differences"):
            values = top_singular_values(layer, graph, feat, k=5)
    else:
        values = top_singular_values(layer, graph, feat, k=5, edge_feat=edge_feat)
    np.testing.assert_allclose(values, dense_sv[:5], atol=1e-4)
    if backbone != "gat":
        moduli = top_eigenvalue_moduli(layer, graph, feat, k=5, edge_feat=edge_feat)
        np.testing.assert_allclose(moduli, dense_moduli[:5], atol=1e-4)


@pytest.mark.parametrize("backbone", ["gcn", "gat"])
def test_the_jacobian_operator_multiplies_as_the_dense_jacobian(backbone):
    # The spectra above solve graphs this small densely, from Jᵀu alone; J·v (by double
    # backward, or for GAT by central differences) is what ARPACK iterates on larger ones.
    layer, graph, feat = tanh_layer(backbone)
    jac = dense_layer_jacobian(layer, graph, feat).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GAT's finite-difference notice
        op = layer_jacobian_operator(layer, graph, feat)
    rng = np.random.default_rng(0)
    v, u = rng.standard_normal(jac.shape[1]), rng.standard_normal(jac.shape[0])
    np.testing.assert_allclose(op @ v, jac @ v, atol=1e-6 * np.abs(jac @ v).max())
    np.testing.assert_allclose(op.rmatvec(u), jac.T @ u, atol=1e-9 * np.abs(jac.T @ u).max())


def test_finite_differences_are_accurate_to_about_eps_to_the_two_thirds():
    """GAT's J·v by central differences, step eps^(1/3): errors ~3e-10 of |Jv| (a step of
    eps^(1/2) leaves ~5e-9)."""
    layer, graph, feat = tanh_layer("gat")
    jac = dense_layer_jacobian(layer, graph, feat).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the finite-difference notice
        op = layer_jacobian_operator(layer, graph, feat)
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(5):
        v = rng.standard_normal(jac.shape[1])
        errors.append(np.abs(op @ v - jac @ v).max() / np.abs(jac @ v).max())
    assert np.median(errors) < 1.5e-9, errors


def test_a_layer_in_training_mode_is_linearised_without_dropout():
    """The Jacobian is the eval-mode layer's, whatever mode the layer given is in."""
    torch.manual_seed(0)
    graph, feat = random_graph(8, 12, seed=1), torch.randn(8, 4)
    layer = SSMLayer(GraphConv(4, 4), 4, SSMUpdate(4, input_scale=0.5), dropout=0.5).train()
    twin = copy.deepcopy(layer).eval().double()
    expected = torch.autograd.functional.jacobian(lambda h: twin(graph, h), feat.double())
    jac = dense_layer_jacobian(layer, graph, feat)
    torch.testing.assert_close(jac, expected.reshape(32, 32))
    assert layer.training  # (and the layer is left in its mode)


def test_the_finite_difference_notice_is_given_once_per_place_across_calls():
    # GAT's notice, measured layer after layer (a monitor's every sample): the spectra must
    # not reset Python's once-per-place registry (``catch_warnings`` does), or it repeats.
    torch.manual_seed(2)
    graph = dgl.batch([random_graph(20, 40, seed=5), random_graph(5, 6, seed=1)])
    layer = SSMLayer(BACKBONES["gat"].make_conv(8, heads=2), 8, PlainUpdate("tanh"))
    feat = torch.randn(25, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own rule: once per place
        for _ in range(3):
            top_singular_values(layer, graph, feat, k=2)
            top_eigenvalue_moduli(layer, graph, feat, k=2)
    notices = [w for w in caught if "finite differences" in str(w.message)]
    assert len(notices) == 2, [f"{w.filename}:{w.lineno}" for w in notices]  # one per function


def test_jacobian_leaves_the_layer_as_it_was():
    layer = gcn_layer(4, SSMUpdate(4))
    layer.train()
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    dense_layer_jacobian(layer, random_graph(6, 8), torch.randn(6, 4))
    assert layer.training and layer.conv.weight.dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())
    assert layer.conv.weight.grad is None


def dense_top(jac, k):
    singular = np.sort(np.linalg.svd(jac, compute_uv=False))[::-1][:k]
    moduli = np.sort(np.abs(np.linalg.eigvals(jac)))[::-1][:k]
    return singular, moduli


@pytest.mark.parametrize("seed", range(4))
def test_repeated_top_values_of_disjoint_four_cycles_come_with_every_copy(seed):
    # 10 disjoint 4-cycles: every eigenvalue of the layer Jacobian has (at least) 10 copies.
    cycles = [[4 * c + i for i in range(4)] for c in range(10)]
    src = [cycle[i] for cycle in cycles for i in range(4)]
    dst = [cycle[(i + 1) % 4] for cycle in cycles for i in range(4)]
    graph = dgl.add_self_loop(dgl.to_bidirected(dgl.graph((src, dst))))
    torch.manual_seed(seed)
    layer = SSMLayer(GraphConv(8, 8), 8, PlainUpdate("identity"))
    feat = torch.randn(40, 8)
    singular, moduli = dense_top(dense_layer_jacobian(layer, graph, feat).numpy(), 10)
    assert np.allclose(moduli, moduli[0], atol=1e-9)  # the top modulus, ten times

    values, residuals = top_singular_values(layer, graph, feat, k=10, return_residuals=True)
    np.testing.assert_allclose(values, singular, atol=1e-6)
    found, _, residuals_e = top_eigenvalue_moduli(
        layer, graph, feat, k=10, return_eigenvalues=True, return_residuals=True
    )
    np.testing.assert_allclose(found, moduli, atol=1e-6)
    assert residuals.max() < 1e-8 and residuals_e.max() < 1e-8


@pytest.mark.parametrize("update", ["ssm", "linear"])
def test_repeated_values_of_one_large_component_are_found_by_deflation(update):
    # A 200-node ring is one component of 1,600 coordinates (solved matrix-free) whose
    # spectrum comes in pairs (cos 2πj/n twice): ARPACK alone returns one copy of each.
    graph, dim = ring(200), 8
    torch.manual_seed(3)
    if update == "ssm":
        layer = SSMLayer(GraphConv(dim, dim), dim, SSMUpdate(dim))
    else:
        layer = SSMLayer(GraphConv(dim, dim, bias=False), dim, PlainUpdate("identity"))
    feat = torch.randn(200, dim)
    jac = dense_layer_jacobian(layer, graph, feat, max_dim=1600).numpy()
    singular, moduli = dense_top(jac, 10)
    np.testing.assert_allclose(top_singular_values(layer, graph, feat, k=10), singular, atol=1e-6)
    np.testing.assert_allclose(top_eigenvalue_moduli(layer, graph, feat, k=10), moduli, atol=1e-6)


def one_big_component(seed=0, nodes=140):
    """A random graph whose largest component has more than DENSE_BLOCK coordinates at
    width 4, so its spectra are found matrix-free."""
    dgl.seed(seed)
    return dgl.add_self_loop(dgl.to_bidirected(dgl.rand_graph(nodes, 300)))


def non_normal_gin_layer():
    """GIN-SSM's second layer with a random B on :func:`one_big_component`: its layer, its
    input, and its dense Jacobian (far from normal: eigenvectors in conjugate pairs)."""
    graph = one_big_component()
    torch.manual_seed(1)
    model = GINSSM(3, 4, 2, num_layers=2, input="random", input_scale=1.0).eval()
    layer_in = layer_inputs(model, graph, torch.randn(140, 3))[1]
    jac = dense_layer_jacobian(model.layers[1], layer_in.graph, layer_in.feat).numpy()
    return model.layers[1], layer_in, jac


def test_matrix_free_eigenvalues_of_a_non_normal_jacobian_match_the_dense_ones():
    # GIN with a random B: J is far from normal, so eigenvectors come in conjugate pairs
    # whose real parts the basis must not lose (an unpivoted QR lost them: errors of 1e-2).
    layer, layer_in, jac = non_normal_gin_layer()
    _, moduli = dense_top(jac, 6)
    found, eigenvalues, residuals = top_eigenvalue_moduli(
        layer, layer_in.graph, layer_in.feat, k=6, return_eigenvalues=True, return_residuals=True
    )
    np.testing.assert_allclose(found, moduli, atol=1e-6)
    assert residuals.max() < 1e-6
    singular, residuals = top_singular_values(layer, layer_in.graph, layer_in.feat, k=6,
                                              return_residuals=True)  # fmt: skip
    np.testing.assert_allclose(singular, dense_top(jac, 6)[0], atol=1e-6)
    assert residuals.max() < 1e-6  # ‖Jᵀu − σv‖ of exact triples
    # The complex eigenvalues themselves (calibration reads them), in the moduli's order.
    dense = np.linalg.eigvals(jac)
    assert np.iscomplex(dense[np.argsort(-np.abs(dense))[:6]]).any()  # a conjugate pair on top
    assert torch.equal(eigenvalues.abs(), found)
    for value in eigenvalues.numpy():
        assert np.abs(dense - value).min() < 1e-6


def test_the_residuals_of_a_loose_solve_bound_its_distance_to_the_true_spectrum():
    # With ARPACK's tolerance at 0.1 the values miss the dense ones by more than rounding,
    # and each residual must be large enough to bound that miss (residuals of 0 pass every
    # test of an exact solve). Kato–Temple: a Rayleigh quotient θ of a symmetric matrix with
    # residual ρ lies within ρ²/gap of an eigenvalue, gap its distance to the others (20–150×
    # the misses here: a residual reported 10× too small fails). Singular
    # triples: Jv = σu holds exactly after Rayleigh–Ritz, so [u; v]/√2 has Rayleigh quotient
    # σ and residual r/√2 for the symmetric [[0, J], [Jᵀ, 0]], whose eigenvalues are ±σᵢ.
    def misses_and_bounds(values, residuals, spectrum):
        for theta, rho in zip(values, residuals):
            distance = np.abs(spectrum - theta)
            nearest = spectrum[distance.argmin()]
            gap = distance[np.abs(spectrum - nearest) > 1e-9].min()
            yield distance.min(), rho**2 / gap + 1e-13  # (+ rounding)

    layer, layer_in, jac = non_normal_gin_layer()
    values, residuals = top_singular_values(layer, layer_in.graph, layer_in.feat, k=6, tol=0.1,
                                            maxiter=3, return_residuals=True)  # fmt: skip
    singular = np.linalg.svd(jac, compute_uv=False)
    checks = list(misses_and_bounds(values.numpy(), residuals.numpy() / math.sqrt(2),
                                    np.concatenate([singular, -singular])))  # fmt: skip
    assert max(miss for miss, _ in checks) > 1e-11  # not exact, or the check below is empty
    assert all(miss <= bound for miss, bound in checks), checks

    torch.manual_seed(0)
    graph, feat = one_big_component(), torch.randn(140, 4)  # 560 coordinates: matrix-free
    conv = GraphConv(4, 4, bias=False)  # Â ⊗ Wᵀ, symmetric for a symmetric W
    with torch.no_grad():
        conv.weight.copy_((conv.weight + conv.weight.T) / 2)
    layer = SSMLayer(conv, 4, PlainUpdate("identity"))
    jac = dense_layer_jacobian(layer, graph, feat).numpy()
    assert np.abs(jac - jac.T).max() < 1e-12
    _, eigenvalues, residuals = top_eigenvalue_moduli(
        layer, graph, feat, k=6, tol=0.1, maxiter=3, return_eigenvalues=True,
        return_residuals=True,
    )  # fmt: skip
    assert np.abs(eigenvalues.imag).max() < 1e-12
    checks = list(misses_and_bounds(eigenvalues.real.numpy(), residuals.numpy(),
                                    np.linalg.eigvalsh(jac)))  # fmt: skip
    assert max(miss for miss, _ in checks) > 1e-11
    assert all(miss <= bound for miss, bound in checks), checks


def test_matrix_free_spectra_above_the_rank_or_of_a_dead_layer_are_zeros():
    graph, feat = one_big_component(), torch.randn(140, 4)
    torch.manual_seed(0)
    conv = GraphConv(4, 4)
    with torch.no_grad():
        conv.bias.fill_(-0.8)  # most ReLUs dead: J has rank well below 4·140
    layer = SSMLayer(conv, 4, PlainUpdate("relu"))
    jac = dense_layer_jacobian(layer, graph, feat).numpy()
    rank = int((np.linalg.svd(jac, compute_uv=False) > 1e-10).sum())
    k = rank + 30
    singular, _ = dense_top(jac, k)
    np.testing.assert_allclose(top_singular_values(layer, graph, feat, k=k), singular, atol=1e-6)
    with torch.no_grad():
        conv.bias.fill_(-100.0)  # every unit dead: J = 0, the vanishing case itself
    for measure in (top_singular_values, top_eigenvalue_moduli):
        assert measure(layer, graph, feat, k=3).tolist() == [0.0, 0.0, 0.0]


def test_a_jacobian_with_every_value_equal_is_measured_where_arpack_breaks_down():
    # Λ = I and B = 0: J = I on 1,200 coordinates. Every vector is a singular vector, so
    # Lanczos stops at once (ARPACK error 3 at this tol); the block is then solved densely.
    graph = ring(300)
    layer = SSMLayer(GraphConv(4, 4), 4, SSMUpdate(4, input_scale=0.0))
    feat = torch.randn(300, 4)
    for measure in (top_singular_values, top_eigenvalue_moduli):
        np.testing.assert_allclose(measure(layer, graph, feat, k=3, tol=1e-10), 1.0, atol=1e-9)


def test_where_arpack_breaks_down_on_a_block_too_large_to_form_block_iteration_measures_it(
    monkeypatch,
):
    # As above, but with every block "too large to form": block iteration, not LAPACK.
    from dgl_ssm.analysis import spectra

    monkeypatch.setattr(spectra, "DENSE_FALLBACK", 0)
    graph = ring(300)
    layer = SSMLayer(GraphConv(4, 4), 4, SSMUpdate(4, input_scale=0.0))
    feat = torch.randn(300, 4)
    for measure in (top_singular_values, top_eigenvalue_moduli):
        np.testing.assert_allclose(measure(layer, graph, feat, k=3, tol=1e-10), 1.0, atol=1e-9)


@pytest.mark.parametrize("kind", ["singular", "eigen"])
def test_block_iteration_finds_the_top_of_a_non_normal_jacobian(kind):
    # The fallback on its own, on GIN with a random B (conjugate pairs, no symmetry): the
    # dense spectrum's top values, each with a small residual.
    from dgl_ssm.analysis.spectra import subspace_top

    _, _, jac = non_normal_gin_layer()
    singular, moduli = dense_top(jac, 4)
    values, residuals = subspace_top(scipy.sparse.linalg.aslinearoperator(jac), 4, kind,
                                     tol=1e-10, seed=0)  # fmt: skip
    np.testing.assert_allclose(np.abs(values), singular if kind == "singular" else moduli,
                               rtol=1e-7)  # fmt: skip
    assert residuals.max() <= 1e-9 * np.abs(values).max()
    with pytest.raises(RuntimeError, match="larger tol.*or a larger maxiter"):
        subspace_top(scipy.sparse.linalg.aslinearoperator(jac), 4, kind, tol=1e-10, maxiter=2)


@pytest.mark.parametrize("kind", ["singular", "eigen"])
def test_every_value_of_a_component_just_above_the_dense_block_size(monkeypatch, kind):
    """A component a few coordinates above DENSE_BLOCK with k at its size (ARPACK finds at
    most size − 2 values) is decomposed densely: every value, none padded with 0."""
    from dgl_ssm.analysis import spectra

    monkeypatch.setattr(spectra, "DENSE_BLOCK", 16)
    torch.manual_seed(0)
    graph, feat = ring(5), torch.randn(5, 4)  # one component of 20 coordinates
    layer = gcn_layer(4, SSMUpdate(4, input_scale=0.5))
    singular, moduli = dense_top(dense_layer_jacobian(layer, graph, feat).numpy(), 20)
    measure = top_singular_values if kind == "singular" else top_eigenvalue_moduli
    expected = singular if kind == "singular" else moduli
    for k in (19, 20):
        np.testing.assert_allclose(measure(layer, graph, feat, k=k), expected[:k], atol=1e-9)
    assert expected.min() > 0.1  # (a value padded with 0 would show)


def test_a_layer_that_couples_components_is_solved_as_one_block():
    # h ↦ h W + mean(h) mixes all nodes: no block structure, however the graph is cut.
    graph = dgl.graph(([0, 2, 4], [1, 3, 5]), num_nodes=6)
    weight = torch.randn(3, 3, dtype=torch.float64)

    def layer(g, h):
        return h @ weight + h.mean(0, keepdim=True)

    feat = torch.zeros(6, 3)
    singular, moduli = dense_top(dense_layer_jacobian(layer, graph, feat).numpy(), 5)
    np.testing.assert_allclose(top_singular_values(layer, graph, feat, k=5), singular, atol=1e-9)
    np.testing.assert_allclose(top_eigenvalue_moduli(layer, graph, feat, k=5), moduli, atol=1e-9)


def seeded_weight():
    return torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def coupling(source, target, num_nodes, weight):
    """A per-node layer plus one coupling: node ``source`` also feeds node ``target``."""

    def layer(g, h):
        into = F.one_hot(torch.tensor(target), num_nodes)[:, None]
        return torch.tanh(h @ weight) + 3 * into * h[source]

    return layer


def test_a_coupling_of_two_components_is_found_whatever_the_seed():
    """Two probes on a random half of the blocks each put both blocks of a two-component
    graph on one side one time in four (seed 4: wrong spectra); a one-way coupling shows
    only under J or only under Jᵀ."""
    graph, weight = dgl.graph(([0, 2], [1, 3]), num_nodes=4), seeded_weight()

    def mean(g, h):
        return h @ weight + h.mean(0, keepdim=True)

    # node 0 (first block) feeds node 3 (second block) only, and the other way round
    layers = (mean, coupling(0, 3, 4, weight), coupling(3, 0, 4, weight))
    feat = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    for layer in layers:
        singular, moduli = dense_top(dense_layer_jacobian(layer, graph, feat).numpy(), 5)
        for seed in range(8):
            found = top_singular_values(layer, graph, feat, k=5, seed=seed)
            np.testing.assert_allclose(found, singular, atol=1e-9, err_msg=f"seed {seed}")
            found = top_eigenvalue_moduli(layer, graph, feat, k=5, seed=seed)
            np.testing.assert_allclose(found, moduli, atol=1e-9, err_msg=f"seed {seed}")


def test_a_coupling_of_any_two_of_five_components_is_found():
    """Five isolated nodes, five blocks: a coupling from any node into any other is seen (one
    probe on a half of the blocks, say 1 and 3 against 0, 2 and 4, misses 1 → 3)."""
    graph, weight = dgl.graph(([], []), num_nodes=5), seeded_weight()
    feat = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    for source, target in itertools.permutations(range(5), 2):
        layer = coupling(source, target, 5, weight)
        singular, _ = dense_top(dense_layer_jacobian(layer, graph, feat).numpy(), 4)
        found = top_singular_values(layer, graph, feat, k=4)
        np.testing.assert_allclose(found, singular, atol=1e-9, err_msg=f"{source} → {target}")


def test_a_layer_whose_output_is_not_per_node_is_one_block():
    """A readout (one row for the graph) has no per-node blocks: its Jacobian is one block."""
    graph, weight = dgl.graph(([0, 2], [1, 3]), num_nodes=5), seeded_weight()

    def readout(g, h):
        return torch.tanh(h).sum(0, keepdim=True) @ weight

    feat = torch.randn(5, 3)
    singular = np.linalg.svd(dense_layer_jacobian(readout, graph, feat).numpy(), compute_uv=False)
    np.testing.assert_allclose(top_singular_values(readout, graph, feat, k=3), singular, atol=1e-9)


def test_eigenvalues_of_a_layer_that_changes_width_are_refused():
    """A non-square Jacobian has no eigenvalues: refused with the remedy, not LAPACK's error."""
    weight = torch.randn(4, 6, dtype=torch.float64)  # 4 features in, 6 out

    def layer(g, h):
        return torch.tanh(h @ weight)

    with pytest.raises(ValueError, match="square Jacobian.*Use top_singular_values instead"):
        top_eigenvalue_moduli(layer, random_graph(10, 20), torch.randn(10, 4), k=3)


def ring_and_squares():
    """A 60-node ring (480 coordinates at width 8) and five disjoint 4-cycles."""
    ring_nodes = torch.arange(60)
    src = [*ring_nodes.tolist()] + [60 + 4 * c + i for c in range(5) for i in range(4)]
    dst = [*((ring_nodes + 1) % 60).tolist()] + [
        60 + 4 * c + (i + 1) % 4 for c in range(5) for i in range(4)
    ]
    return dgl.add_self_loop(dgl.to_bidirected(dgl.graph((src, dst))))


def test_small_components_are_solved_on_their_own_subgraph():
    graph = ring_and_squares()
    torch.manual_seed(5)
    conv = GraphConv(8, 8).double()  # a plain function is not cast to float64 for it
    sizes = []

    def layer(g, h):
        sizes.append(g.num_nodes())
        return h + 0.5 * torch.tanh(conv(g, h))

    feat = torch.randn(80, 8)
    singular, moduli = dense_top(dense_layer_jacobian(layer, graph, feat).numpy(), 12)
    sizes.clear()
    np.testing.assert_allclose(top_singular_values(layer, graph, feat, k=12), singular, atol=1e-6)
    np.testing.assert_allclose(top_eigenvalue_moduli(layer, graph, feat, k=12), moduli, atol=1e-6)
    assert sizes == [80, 20, 80, 20]  # each linearised on the graph, then on the squares


def test_edge_weights_are_cut_with_their_edges():
    # DGL's edge_weight is held one row an edge: the squares' subgraph takes their edges'
    # weights (by edge ID), so the cut still happens and the spectrum is still the dense one.
    graph = ring_and_squares()
    torch.manual_seed(6)
    conv = GraphConv(8, 8).double()
    weight = torch.rand(graph.num_edges(), dtype=torch.float64) + 0.5
    sizes = []

    def layer(g, h, edge_weight):
        sizes.append(g.num_nodes())
        return h + 0.5 * torch.tanh(conv(g, h, edge_weight=edge_weight))

    feat = torch.randn(80, 8)
    kwargs = {"edge_weight": weight}
    dense = dense_layer_jacobian(layer, graph, feat, layer_kwargs=kwargs).numpy()
    singular, moduli = dense_top(dense, 12)
    sizes.clear()
    np.testing.assert_allclose(
        top_singular_values(layer, graph, feat, k=12, layer_kwargs=kwargs), singular, atol=1e-6
    )
    np.testing.assert_allclose(
        top_eigenvalue_moduli(layer, graph, feat, k=12, layer_kwargs=kwargs), moduli, atol=1e-6
    )
    assert sizes == [80, 20, 80, 20]
    sizes.clear()  # no weights given: the cut as for any layer
    top_singular_values(layer, graph, feat, k=12, layer_kwargs={"edge_weight": None})
    assert sizes == [80, 20]

    # A layer's own "edge_weight" that is not one row an edge (here one scale for the whole
    # graph) cannot be cut by edge ID: the spectrum is taken on the whole graph alone.
    def scaled(g, h, edge_weight):
        sizes.append(g.num_nodes())
        return edge_weight * h + 0.5 * torch.tanh(conv(g, h))

    scale = {"edge_weight": torch.tensor([0.7], dtype=torch.float64)}
    singular = dense_top(dense_layer_jacobian(scaled, graph, feat, layer_kwargs=scale).numpy(), 12)
    sizes.clear()
    np.testing.assert_allclose(
        top_singular_values(scaled, graph, feat, k=12, layer_kwargs=scale), singular[0], atol=1e-6
    )
    assert sizes == [80]


@pytest.mark.parametrize("case", ["directed", "wider"])
def test_weak_components_and_width_changes_are_cut_as_any_graph(case):
    """A directed graph is cut into weakly connected components (its directed 4-paths are
    not strongly connected), and a layer that changes width into blocks of d_in columns and
    d_out rows: the paths are still solved on their own subgraph."""
    ring_nodes = torch.arange(60)
    paths = [(60 + 4 * c + i, 60 + 4 * c + i + 1) for c in range(5) for i in range(3)]
    src = [*ring_nodes.tolist(), *(a for a, _ in paths)]
    dst = [*((ring_nodes + 1) % 60).tolist(), *(b for _, b in paths)]
    graph = dgl.add_self_loop(dgl.graph((src, dst)))
    if case == "wider":
        graph = dgl.to_bidirected(dgl.remove_self_loop(graph))
        graph = dgl.add_self_loop(graph)
    torch.manual_seed(5)
    width = 5 if case == "wider" else 8
    conv = GraphConv(8, width).double()
    sizes = []

    def layer(g, h):
        sizes.append(g.num_nodes())
        return torch.tanh(conv(g, h)) + h[:, :width]

    feat = torch.randn(80, 8)
    jac = dense_layer_jacobian(layer, graph, feat).numpy()
    assert jac.shape == (80 * width, 80 * 8)
    sizes.clear()
    np.testing.assert_allclose(top_singular_values(layer, graph, feat, k=12),
                               np.linalg.svd(jac, compute_uv=False)[:12], atol=1e-6)  # fmt: skip
    assert sizes == [80, 20]


@pytest.mark.parametrize("point", ["random", "zero"])
def test_a_layer_that_reads_the_whole_graph_keeps_the_whole_graph(point):
    # Block diagonal, but the blocks depend on the graph's size: the squares' subgraph would
    # give them another Jacobian (scaled by 20/80), so it must not be used. At zero the
    # outputs agree (all zero) and only the Jacobian tells them apart.
    graph = ring_and_squares()
    weight = torch.randn(8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def layer(g, h):
        return g.num_nodes() / 80 * h + g.num_nodes() / 40 * torch.tanh(h @ weight / 8)

    feat = torch.randn(80, 8) if point == "random" else torch.zeros(80, 8)
    everything = 80 * 8  # the squares' values are the smallest: ask for the whole spectrum
    singular, moduli = dense_top(dense_layer_jacobian(layer, graph, feat).numpy(), everything)
    np.testing.assert_allclose(
        top_singular_values(layer, graph, feat, k=everything), singular, atol=1e-6
    )
    np.testing.assert_allclose(
        top_eigenvalue_moduli(layer, graph, feat, k=everything), moduli, atol=1e-6
    )


@pytest.mark.slow
def test_top10_singular_values_on_cora_are_adjacency_times_weight_spectra(cora):
    # Cora has 78 components, so Â has eigenvalue 1 78 times and ‖J‖ = σ₁(W) repeats 78 times.
    bare = dgl.remove_self_loop(cora)
    graph = dgl.add_self_loop(bare)
    torch.manual_seed(0)
    conv = GraphConv(64, 64, bias=False)
    layer = SSMLayer(conv, 64, PlainUpdate("identity"))
    feat = torch.randn(graph.num_nodes(), 64)
    start = time.perf_counter()
    values, residuals = top_singular_values(layer, graph, feat, k=10, return_residuals=True)
    elapsed = time.perf_counter() - start
    print(f"\nmatrix-free top-10 σ of a {feat.numel():,}-dim GCN layer Jacobian: {elapsed:.1f} s")

    a_hat = numpy_gcn_adjacency(bare)
    weight = conv.weight.detach().double().numpy()
    theory = np.outer(np.abs(np.linalg.eigvalsh(a_hat)), np.linalg.svd(weight)[1]).ravel()
    np.testing.assert_allclose(values, np.sort(theory)[::-1][:10], atol=1e-6)
    assert residuals.max() < 1e-6


# --- Dirichlet energy ------------------------------------------------------------------------

# Directed edges 0→1, 1→2, 2→3, 3→0, 0→2; h0=(0,0), h1=(1,0), h2=(1,1), h3=(0,2).
HAND_GRAPH = ([0, 1, 2, 3, 0], [1, 2, 3, 0, 2])
HAND_FEAT = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 2.0]]


def test_dirichlet_energy_by_hand():
    graph, feat = dgl.graph(HAND_GRAPH), torch.tensor(HAND_FEAT)
    # ‖h0−h1‖² + ‖h1−h2‖² + ‖h2−h3‖² + ‖h3−h0‖² + ‖h0−h2‖² = 1 + 1 + 2 + 4 + 2 = 10; / n = 4
    assert dirichlet_energy(graph, feat) == pytest.approx(2.5, abs=1e-12)
    # Stored edges are summed: both directions of every edge count.
    assert dirichlet_energy(dgl.to_bidirected(graph), feat) == pytest.approx(5.0, abs=1e-12)
    # Self loops add nothing; constant states have no energy.
    assert dirichlet_energy(dgl.add_self_loop(graph), feat) == pytest.approx(2.5, abs=1e-12)
    assert dirichlet_energy(graph, torch.full((4, 2), 3.0)) == 0.0


def test_normalized_dirichlet_energy_by_hand():
    graph, feat = dgl.graph(HAND_GRAPH), torch.tensor(HAND_FEAT)
    # In-degrees 1, 1, 2, 1: h̃ = h/√(1+d) = (0,0), (1/√2,0), (1/√3,1/√3), (0,√2).
    # 0→1: 1/2; 1→2: 7/6 − 2/√6; 2→3: 8/3 − 2√(2/3); 3→0: 2; 0→2: 2/3. Sum = 7 − √6.
    expected = (7 - math.sqrt(6)) / 4
    assert dirichlet_energy(graph, feat, normalized=True) == pytest.approx(expected, abs=1e-12)
    # States proportional to √(1 + d) are the normalised variant's constants.
    scaled = torch.sqrt(1.0 + graph.in_degrees().double()).unsqueeze(1).repeat(1, 2)
    assert dirichlet_energy(graph, scaled, normalized=True) == pytest.approx(0.0, abs=1e-12)


def networkx_normalized_energy(edges, num_nodes, feat):
    """(1/n) Σ over stored edges of ‖h_i/√(1+d_i) − h_j/√(1+d_j)‖², d from networkx on the
    graph without self loops, in numpy."""
    nx_graph = nx.MultiDiGraph()
    nx_graph.add_nodes_from(range(num_nodes))
    nx_graph.add_edges_from((u, v) for u, v in edges if u != v)
    degree = np.array([nx_graph.in_degree(i) for i in range(num_nodes)], dtype=float)
    h = feat.double().numpy() / np.sqrt(1.0 + degree)[:, None]
    total = sum(float(np.sum((h[u] - h[v]) ** 2)) for u, v in edges)
    return total / num_nodes


def test_normalized_energy_ignores_self_loops_in_the_degree():
    # The 1 in √(1 + d_i) is the self loop: a self-looped graph must give the same value.
    bare = random_graph(30, 60, seed=3, self_loops=False)
    looped = dgl.add_self_loop(bare)
    feat = torch.randn(30, 5, generator=torch.Generator().manual_seed(0))
    edges = list(zip(*(t.tolist() for t in bare.edges())))
    expected = networkx_normalized_energy(edges, 30, feat)
    assert dirichlet_energy(bare, feat, normalized=True) == pytest.approx(expected, rel=1e-12)
    assert dirichlet_energy(looped, feat, normalized=True) == pytest.approx(expected, rel=1e-12)
    # A graph with only some self loops, one stored twice, is no different.
    partial = dgl.add_edges(bare, [0, 0, 5], [0, 0, 5])
    assert dirichlet_energy(partial, feat, normalized=True) == pytest.approx(expected, rel=1e-12)


def test_layer_energies_pass_normalized_on_and_leave_the_model_as_it_was():
    """The normalised energy of each state H⁽⁰⁾ … H⁽ᴸ⁾ (networkx degrees), measured in float64
    on a copy: the caller's model keeps its float32 weights and trains on."""
    torch.manual_seed(0)
    graph = dgl.add_self_loop(dgl.graph(([0, 0, 1, 2, 3, 4], [1, 2, 2, 3, 4, 0])))
    model = build_model("gcn_ssm", 3, 4, 2, num_layers=3)
    feat = torch.randn(5, 3)
    calls, last = layer_by_layer(copy.deepcopy(model), graph, feat)
    edges = list(zip(*(t.tolist() for t in graph.edges())))
    expected = [networkx_normalized_energy(edges, 5, h) for h in [*(c[1] for c in calls), last]]
    before = copy.deepcopy(model.state_dict())
    measured = layer_energies(model, graph, feat, normalized=True, dtype=torch.float64)
    assert measured == pytest.approx(expected, rel=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_normalized_energy_on_cora_is_the_same_with_and_without_self_loops(cora):
    bare = dgl.remove_self_loop(cora)
    looped = dgl.add_self_loop(bare)
    feat = torch.randn(bare.num_nodes(), 4, generator=torch.Generator().manual_seed(1))
    edges = list(zip(*(t.tolist() for t in bare.edges())))
    expected = networkx_normalized_energy(edges, bare.num_nodes(), feat)
    assert dirichlet_energy(looped, feat, normalized=True) == pytest.approx(expected, rel=1e-12)
    assert dirichlet_energy(bare, feat, normalized=True) == pytest.approx(expected, rel=1e-12)


@pytest.mark.slow
def test_energy_on_cora_vanishes_through_plain_gcn_but_not_gcn_ssm(cora):
    graph = dgl.add_self_loop(dgl.remove_self_loop(cora))
    feat = graph.ndata["feat"]
    energies = {}
    for name in ("gcn", "gcn_ssm"):
        torch.manual_seed(0)
        model = build_model(name, feat.shape[1], 64, 7, num_layers=64)
        model.train()
        energies[name] = layer_energies(model, graph, feat)
        assert model.training and not model.layers[0]._forward_hooks
        assert not model.layers[0]._forward_pre_hooks
    plain, ssm = energies["gcn"], energies["gcn_ssm"]
    assert len(plain) == 65 and plain[0] == pytest.approx(ssm[0])  # same encoder, same H⁽⁰⁾
    print(
        f"\nCora, 64 layers at init: E(H⁽⁶⁴⁾)/E(H⁽¹⁾) GCN {plain[-1] / plain[1]:.1e}, "
        f"GCN-SSM {ssm[-1] / ssm[1]:.1e}"
    )
    assert plain[-1] < 1e-3 * plain[1]
    assert ssm[-1] >= 0.1 * ssm[1]


def test_layer_energies_of_a_rewired_graph_use_the_original_edges():
    torch.manual_seed(0)
    bare = ring(10, self_loops=False)
    model = build_model("kgcn_ssm", 3, 4, 2, num_layers=3)
    feat = torch.randn(10, 3)
    rewired = KHopTransform(k=3)(bare)
    energies = layer_energies(model, rewired, feat)
    # H⁽ℓ⁾ by hand: layer ℓ reads the nodes ℓ steps round the ring, plus a self loop each.
    nodes = torch.arange(10)
    model.eval()
    with torch.no_grad():
        states = [model.encoder(feat)]
        for hop, layer in enumerate(model.layers, start=1):
            src = torch.cat([nodes, nodes, nodes])
            dst = torch.cat([(nodes + hop) % 10, (nodes - hop) % 10, nodes])
            states.append(layer(dgl.graph((src, dst)), states[-1]))
    assert len(energies) == 4
    assert energies == pytest.approx([dirichlet_energy(bare, h) for h in states], rel=1e-5)
    assert energies != pytest.approx([dirichlet_energy(rewired, h) for h in states], rel=1e-2)
    # A model reading its hops from another field: measured on the original edges all the same
    # (they were once taken from edata["hop"] alone, and the whole rewired graph measured).
    other = build_model("kgcn_ssm", 3, 4, 2, num_layers=3, hop_field="d")
    other.load_state_dict(model.state_dict())
    renamed = KHopTransform(k=3, hop_field="d")(bare)
    assert layer_energies(other, renamed, feat) == pytest.approx(energies, rel=1e-6)


def test_a_model_reading_another_hop_field_is_measured_on_the_original_graph():
    # sensitivity_by_distance looked for the original edges in edata["hop"] unless told
    # otherwise, so a model built with hop_field="d" had its distances taken on the rewiring
    # (every node within 3 hops at distance 1). It takes the model's own field now.
    bare, feat = ring(12, self_loops=False), torch.randn(12, 3)
    curves = []
    for field in ("hop", "d"):
        torch.manual_seed(0)
        model = build_model("kgcn_ssm", 3, 4, 2, num_layers=3, hop_field=field)
        rewired = KHopTransform(k=3, hop_field=field)(bare)
        curves.append(sensitivity_by_distance(model, rewired, feat, targets=[0, 5]))
    assert sorted(curves[0]) == list(range(7))  # a 12-ring: distances 0 … 6
    assert curves[1] == pytest.approx(curves[0], rel=1e-6)


def test_all_the_values_of_a_component_too_large_for_the_dense_jacobian_are_refused():
    graph, feat = ring(1100), torch.randn(1100, 4)  # one component of 4 400 coordinates
    layer = gcn_layer(4, SSMUpdate(4))
    for top in (top_singular_values, top_eigenvalue_moduli):
        with pytest.raises(ValueError, match=r"k=4,399 .*4,400 coordinates.*k < 4,398"):
            top(layer, graph, feat, k=4399)


def test_the_refusal_of_all_the_values_starts_above_the_dense_limit(monkeypatch):
    """With the dense limit at 40 coordinates: a component of 40 gives all its values (the
    dense ones), one of 44 refuses k = 42 = size − 2 and gives k = 41."""
    from dgl_ssm.analysis import jacobian

    monkeypatch.setattr(jacobian, "DEFAULT_MAX_DIM", 40)
    layer = gcn_layer(4, SSMUpdate(4, input_scale=0.5))
    graph, feat = ring(10), torch.randn(10, 4)
    _, moduli = dense_top(dense_layer_jacobian(layer, graph, feat).numpy(), 40)
    np.testing.assert_allclose(top_eigenvalue_moduli(layer, graph, feat, k=40), moduli, atol=1e-9)
    graph, feat = ring(11), torch.randn(11, 4)
    with pytest.raises(ValueError, match=r"k=42 .*44 coordinates.*k < 42"):
        top_eigenvalue_moduli(layer, graph, feat, k=42)
    assert top_eigenvalue_moduli(layer, graph, feat, k=41).shape == (41,)


# --- gradient norms ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gcn", "gatedgcn_ssm"])
def test_gradient_norms_match_a_manual_chain(name):
    torch.manual_seed(0)
    graph = random_graph(12, 24, seed=6)
    model = build_model(name, 5, 8, 3, num_layers=3, dropout=0.5).train()
    feat, labels = torch.randn(12, 5), torch.randint(0, 3, (12,))

    def loss_fn(out):
        return F.cross_entropy(out, labels)

    norms = layer_gradient_norms(model, graph, feat, loss_fn)  # in eval mode, by default
    assert all(p.grad is None for p in model.parameters())
    assert not any(layer._forward_hooks or layer._forward_pre_hooks for layer in model.layers)
    assert model.training  # put back as it was

    model.eval()  # the same computation, written out by hand, without dropout
    states, h = [], model.encoder(feat)
    edges = model.edge_embedding.expand(graph.num_edges(), -1) if "gated" in name else None
    for layer in model.layers:
        if edges is None:
            h = layer(graph, h)
        else:
            h, edges = layer(graph, h, edges)
        states.append(h)
    grads = torch.autograd.grad(loss_fn(model.head(h)), states)
    np.testing.assert_allclose(norms, [g.norm().item() for g in grads], rtol=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_gradient_norms_vanish_for_gcn_not_gcn_ssm_and_keep_existing_grads():
    graph, feat = random_graph(60, 150, seed=1), torch.randn(60, 8)
    ratios = {}
    for name in ("gcn", "gcn_ssm"):
        torch.manual_seed(0)
        model = build_model(name, 8, 16, 2, num_layers=32)
        model(graph, feat).sum().backward()
        before = [p.grad.clone() for p in model.parameters()]
        norms = layer_gradient_norms(model, graph, feat, lambda out: out.pow(2).mean())
        assert all(torch.equal(b, p.grad) for b, p in zip(before, model.parameters()))
        ratios[name] = norms[0] / norms[-1]
    assert ratios["gcn"] < 1e-4 < 1e-1 < ratios["gcn_ssm"]


# --- sensitivity ---------------------------------------------------------------------------


def dense_final_state_jacobian(model, graph, feat):
    """∂H⁽ᴸ⁾/∂X of the map written out by hand: shape (n, d_out, n, d_in)."""

    def final_state(x):
        h = model.encoder(x)
        for layer in model.layers:
            h = layer(graph, h)
        return h

    return torch.autograd.functional.jacobian(final_state, feat)


def test_sensitivity_matches_dense_autograd():
    torch.manual_seed(0)
    graph = random_graph(10, 14, seed=7)
    model = build_model("gcn_ssm", 3, 4, 2, num_layers=3).eval()
    feat = torch.randn(10, 3)
    jac = dense_final_state_jacobian(model, graph, feat).double()
    pairs = [(0, 0), (0, 5), (3, 9), (7, 2), (0, 9)]
    for ord in ("fro", 2):
        expected = [torch.linalg.matrix_norm(jac[v, :, u, :], ord=ord).item() for v, u in pairs]
        np.testing.assert_allclose(
            sensitivity(model, graph, feat, pairs, ord=ord), expected, rtol=1e-5, atol=1e-12
        )

    assert_curve(sensitivity_by_distance(model, graph, feat), jac, graph, range(10))
    # A target named twice is one target (its blocks counted once, not twice).
    curve = sensitivity_by_distance(model, graph, feat, targets=[0, 4, 0])
    assert_curve(curve, jac, graph, [0, 4])


def assert_curve(curve, jac, graph, targets):
    """``curve`` (distance → mean) is the mean of the dense Jacobian's blocks ``∂h_v/∂x_u``
    (Frobenius norms) of each target v, grouped by the networkx distance from u to v."""
    lengths = dict(nx.all_pairs_shortest_path_length(dgl.to_networkx(graph)))
    groups = {}
    for v in targets:
        for u in range(graph.num_nodes()):
            if v in lengths[u]:
                groups.setdefault(lengths[u][v], []).append(jac[v, :, u, :].norm().item())
    assert sorted(curve) == sorted(groups)
    for d, values in groups.items():
        assert curve[d] == pytest.approx(np.mean(values), rel=1e-5)


def test_diagnostics_of_a_model_in_training_mode_measure_it_without_dropout():
    """Sensitivity and each layer's input are the model's own (eval mode), not one random
    dropout draw; the model is left training."""
    torch.manual_seed(0)
    graph = random_graph(10, 14, seed=7)
    model = build_model("gcn_ssm", 3, 4, 2, num_layers=3, dropout=0.5).train()
    feat = torch.randn(10, 3)
    in_eval = copy.deepcopy(model).eval()
    jac = dense_final_state_jacobian(in_eval, graph, feat).double()
    pairs = [(0, 0), (0, 5), (3, 9), (7, 2)]
    expected = [torch.linalg.matrix_norm(jac[v, :, u, :]).item() for v, u in pairs]
    np.testing.assert_allclose(sensitivity(model, graph, feat, pairs), expected, rtol=1e-5)
    assert_curve(sensitivity_by_distance(model, graph, feat), jac, graph, range(10))
    calls = layer_inputs(model, graph, feat)
    for (_, state, _), call in zip(layer_by_layer(in_eval, graph, feat)[0], calls, strict=True):
        torch.testing.assert_close(call.feat, state)
    assert all(module.training for module in model.modules())


def test_hop_distances_follow_the_edges_direction_as_networkx_does():
    # Messages flow along edges: d(u, v) is the length of a path u → … → v. On a bidirected
    # graph both directions agree, so only a directed one can tell them apart.
    src, dst = [0, 1, 3, 3], [1, 2, 1, 4]
    graph, nx_graph = dgl.graph((src, dst), num_nodes=5), nx.DiGraph(zip(src, dst))
    nx_graph.add_nodes_from(range(5))
    targets = [0, 1, 2, 4]
    expected = [[nx.shortest_path_length(nx_graph, source=u, target=v)
                 if nx.has_path(nx_graph, u, v) else math.inf for u in range(5)]
                for v in targets]  # fmt: skip
    assert hop_distances(graph, targets).tolist() == expected
    assert expected[2] == [2, 1, 0, 2, math.inf]  # to node 2: from 0 and 3 in two hops


def test_hop_distances_of_a_rewired_graph_are_the_original_ones():
    bare = ring(12, self_loops=False)
    rewired = KHopTransform(k=4)(bare)
    np.testing.assert_array_equal(hop_distances(rewired, [0, 5]), hop_distances(bare, [0, 5]))
    assert hop_distances(bare, [0])[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 5, 4, 3, 2, 1]


def test_int32_rewired_graphs_are_measured_on_their_original_edges():
    # KHopTransform keeps a graph's int32 ids, and the k-hop models take it: so must the
    # diagnostics that read the hop-1 edges back from it.
    bare = dgl.to_bidirected(dgl.graph((torch.arange(6), torch.arange(1, 7))))  # a path
    rewired = KHopTransform(k=3)(bare.int())
    assert rewired.idtype == torch.int32
    lengths = dict(nx.all_pairs_shortest_path_length(nx.path_graph(7)))
    expected = [[lengths[u][v] for u in range(7)] for v in (0, 4)]
    assert hop_distances(rewired, [0, 4]).tolist() == expected
    hop1 = one_hop_graph(rewired)
    assert hop1.idtype == torch.int32
    path = {(u, v) for a, b in nx.path_graph(7).edges() for u, v in ((a, b), (b, a))}
    assert set(zip(*(t.tolist() for t in hop1.edges()))) == path
    looped = one_hop_graph(KHopTransform(k=3, self_loops=True)(bare))  # its loops: hop 0
    assert sorted(zip(*(t.tolist() for t in looped.edges()))) == sorted(path)
    torch.manual_seed(0)
    model = build_model("kgcn_ssm", 3, 8, 2, num_layers=3)
    feat = torch.randn(7, 3, generator=torch.Generator().manual_seed(1))
    wide = KHopTransform(k=3)(bare)  # the same graph with int64 ids
    assert layer_energies(model, rewired, feat) == pytest.approx(layer_energies(model, wide, feat))
    by_distance = sensitivity_by_distance(model, rewired, feat, targets=[0, 3])
    assert by_distance == pytest.approx(sensitivity_by_distance(model, wide, feat, targets=[0, 3]))


def test_plain_gcn_oversquashes_on_a_ring_more_than_kgcn_ssm():
    size, depth = 16, 8
    bare = ring(size, self_loops=False)
    feat = torch.randn(size, 5, generator=torch.Generator().manual_seed(0))
    curves = {}
    for name in ("gcn", "kgcn_ssm"):
        torch.manual_seed(0)
        model = build_model(name, 5, 16, 2, num_layers=depth)
        graph = KHopTransform(k=depth)(bare) if is_khop(name) else dgl.add_self_loop(bare)
        curves[name] = sensitivity_by_distance(model, graph, feat, targets=[0, 4, 8, 12])
        assert sorted(curves[name]) == list(range(depth + 1))
    far_over_near = {name: c[depth] / c[1] for name, c in curves.items()}
    print(f"\nring {size}, {depth} layers: S(d={depth})/S(d=1) {far_over_near}")
    assert far_over_near["gcn"] < 0.1 * far_over_near["kgcn_ssm"]


# --- errors and hooks ----------------------------------------------------------------------


def test_a_model_without_layers_is_refused_with_the_remedy():
    graph, feat = random_graph(5, 5), torch.randn(5, 3)
    model = torch.nn.Linear(3, 3)
    for call in (
        lambda: layer_energies(model, graph, feat),
        lambda: layer_gradient_norms(model, graph, feat, lambda out: out.sum()),
        lambda: sensitivity(model, graph, feat, [(0, 1)]),
        lambda: layer_inputs(model, graph, feat),
    ):
        with pytest.raises(TypeError, match=r"`\.layers`.*build_model"):
            call()


def test_hooks_are_removed_when_the_forward_pass_fails():
    model = build_model("gcn", 3, 4, 2, num_layers=2)
    model.train()
    with pytest.raises(ValueError):
        layer_energies(model, random_graph(5, 5), torch.randn(5, 7))  # wrong feature width
    with pytest.raises(ValueError):
        layer_gradient_norms(model, random_graph(5, 5), torch.randn(5, 7), lambda out: out.sum())
    assert model.training
    assert not any(layer._forward_hooks or layer._forward_pre_hooks for layer in model.layers)


def test_layer_energies_in_float64_keep_integer_features_for_an_embedding():
    class AtomCodes(torch.nn.Module):  # an OGB-style encoder: integer codes → embeddings
        def __init__(self, hidden):
            super().__init__()
            self.embedding = torch.nn.Embedding(10, hidden)

        def forward(self, codes):
            return self.embedding(codes[:, 0])

    torch.manual_seed(0)
    graph = random_graph(12, 30, seed=2)
    model = build_model("gcn_ssm", 1, 8, 2, num_layers=3, node_encoder=AtomCodes(8))
    codes = torch.randint(0, 10, (12, 1))
    in_float32 = layer_energies(model, graph, codes)
    in_float64 = layer_energies(model, graph, codes, dtype=torch.float64)
    np.testing.assert_allclose(in_float64, in_float32, rtol=1e-5)


def test_spectrum_of_a_cumulative_khop_layer_without_its_keyword_arguments():
    # A cumulative k-hop layer reads a list of hop graphs; on a graph of several components
    # the spectrum is cut per component, which needs one graph to take a subgraph of.
    torch.manual_seed(0)
    parts = [dgl.to_bidirected(dgl.rand_graph(8, 14)) for _ in range(3)]
    graph = KHopTransform(3)(dgl.batch(parts))
    model = build_model("kgcn_ssm", 4, 8, 2, num_layers=3, hop_mode="cumulative")
    call = layer_inputs(model, graph, torch.randn(24, 4))[2]
    assert isinstance(call.graph, (list, tuple))
    layer = model.layers[2]
    moduli = top_eigenvalue_moduli(layer, call.graph, call.feat, k=3)
    with_kwargs = top_eigenvalue_moduli(layer, call.graph, call.feat, k=3, layer_kwargs=call.kwargs)
    in_float64 = copy.deepcopy(layer).double()
    jac = torch.autograd.functional.jacobian(
        lambda h: in_float64(call.graph, h, **call.kwargs), call.feat.double()
    )
    _, dense = dense_top(jac.reshape(call.feat.numel(), -1).numpy(), 3)
    np.testing.assert_allclose(moduli.numpy(), dense, rtol=1e-5)
    np.testing.assert_allclose(with_kwargs.numpy(), dense, rtol=1e-5)


def test_layer_inputs_give_a_cumulative_layer_the_hops_it_reads():
    # DRew's cumulative mode: layer ℓ (from 0) reads hops 1 … min(ℓ + 1, K), graph j − 1 of
    # its list holding the pairs j hops apart (networkx's distances) and a self loop a node.
    bare = dgl.to_bidirected(dgl.graph(([0, 1, 2, 3, 4], [1, 2, 3, 4, 5])))  # a path
    model = build_model("kgcn_ssm", 3, 4, 2, num_layers=4, hop_mode="cumulative", max_hop=3)
    calls = layer_inputs(model, KHopTransform(3)(bare), torch.randn(6, 3))
    assert [len(call.graph) for call in calls] == [1, 2, 3, 3]
    lengths = dict(nx.all_pairs_shortest_path_length(nx.path_graph(6)))
    for hop, graph in enumerate(calls[-1].graph, start=1):
        pairs = set(zip(*(t.tolist() for t in graph.edges())))
        apart = {(u, v) for u in range(6) for v in range(6) if lengths[u][v] == hop}
        assert pairs == apart | {(u, u) for u in range(6)}


def test_layer_inputs_feed_the_jacobian_of_a_model_layer():
    torch.manual_seed(0)
    graph = random_graph(10, 20, seed=8)
    model = build_model("gatedgcn_ssm", 3, 4, 2, num_layers=2)
    feat = torch.randn(10, 3)
    calls = layer_inputs(model, graph, feat)
    assert len(calls) == 2 and calls[1].edge_feat.shape == (graph.num_edges(), 4)
    for (_, state, edges), call in zip(layer_by_layer(model, graph, feat)[0], calls, strict=True):
        assert torch.equal(call.feat, state) and torch.equal(call.edge_feat, edges)
    jac = dense_layer_jacobian(model.layers[1], calls[1].graph, calls[1].feat, calls[1].edge_feat)
    layer, call = model.layers[1].eval(), calls[1]

    def node_states(flat):  # the layer's node output, its edge input held fixed
        return layer(call.graph, flat.reshape(10, 4), call.edge_feat)[0].reshape(-1)

    expected = torch.autograd.functional.jacobian(node_states, call.feat.reshape(-1))
    assert jac.shape == (40, 40)
    torch.testing.assert_close(jac.float(), expected, atol=1e-5, rtol=1e-4)


# --- the dgl-ssm-analyze command -----------------------------------------------------------


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_cli_energy_and_sensitivity_write_png_and_csv(tmp_path):
    from matplotlib.image import imread

    from dgl_ssm_bench.analyze import main

    ring_args = ["--dataset", "ring", "--ring-size", "8", "--layers", "4", "--hidden", "8"]
    out = ["--out", str(tmp_path)]
    assert main(["energy", "--model", "gcn", "gcn_ssm", *ring_args, *out]) == 0
    assert main(["sensitivity", "--model", "gcn", "kgcn_ssm", *ring_args, *out]) == 0
    for stem in ("energy_ring", "sensitivity_ring"):
        image = imread(tmp_path / f"{stem}.png")
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300

    energy = read_csv(tmp_path / "energy_ring.csv")
    assert [row["layer"] for row in energy] == [str(i) for i in range(5)] * 2
    assert {row["model"] for row in energy} == {"GCN", "GCN-SSM"}
    # The CLI's numbers are the library's: same seed, same model, same graph.
    torch.manual_seed(0)
    model = build_model("gcn", 16, 8, 5, num_layers=4)
    feat = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    expected = layer_energies(model, ring(8), feat)
    measured = [float(row["energy"]) for row in energy if row["model"] == "GCN"]
    np.testing.assert_allclose(measured, expected, rtol=1e-6)

    sens = read_csv(tmp_path / "sensitivity_ring.csv")
    assert {(row["model"], row["distance"]) for row in sens} == {
        (model, str(d)) for model in ("GCN", "kGCN-SSM") for d in range(5)
    }
    bare = ring(8, self_loops=False)  # 16 targets asked, 8 nodes: every node is a target
    for name, shown, graph in [("gcn", "GCN", ring(8)),
                               ("kgcn_ssm", "kGCN-SSM", KHopTransform(k=4)(bare))]:  # fmt: skip
        torch.manual_seed(0)
        model = build_model(name, 16, 8, 5, num_layers=4)
        expected = sensitivity_by_distance(model, graph, feat, range(8), distance_graph=bare)
        measured = {int(r["distance"]): float(r["mean_sensitivity"]) for r in sens
                    if r["model"] == shown}  # fmt: skip
        assert measured == pytest.approx(expected, rel=1e-5), shown


@pytest.mark.slow
def test_cli_gradients_jacobian_and_errors(tmp_path, capsys):
    from matplotlib.image import imread

    from dgl_ssm_bench.analyze import main

    graph_args = ["--dataset", "random", "--num-nodes", "20", "--num-edges", "40", "--hidden", "4"]
    out = ["--out", str(tmp_path)]
    assert main(["gradients", "--layers", "5", *graph_args, *out]) == 0
    assert main(["jacobian", "--model", "gcn_ssm", "gatedgcn", "--layers", "3", "--layer", "2",
                 *graph_args, *out]) == 0  # fmt: skip
    assert imread(tmp_path / "gradients_random.png").ndim == 3
    assert imread(tmp_path / "jacobian_random.png").ndim == 3

    # The numbers written are the library's, recomputed here: seed 0 draws the graph, then 16
    # Gaussian features and 5-class labels; the weights come from torch.manual_seed(0).
    generator = torch.Generator().manual_seed(0)
    ends = [torch.randint(0, 20, (40,), generator=generator) for _ in range(2)]
    graph = dgl.graph(tuple(ends), num_nodes=20)
    graph = dgl.add_self_loop(dgl.to_bidirected(dgl.remove_self_loop(graph)))
    feat = torch.randn(20, 16, generator=generator)
    labels = torch.randint(0, 5, (20,), generator=generator)

    def seeded(name, layers):
        torch.manual_seed(0)
        return build_model(name, 16, 4, int(labels.max()) + 1, num_layers=layers)

    grads = read_csv(tmp_path / "gradients_random.csv")
    for name, shown in [("gcn", "GCN"), ("gcn_ssm", "GCN-SSM")]:
        expected = layer_gradient_norms(seeded(name, 5), graph, feat,
                                        lambda out: F.cross_entropy(out, labels),
                                        include_input=True)  # fmt: skip
        written = [(int(r["layer"]), float(r["grad_norm"])) for r in grads if r["model"] == shown]
        assert written == [(i, pytest.approx(v, rel=1e-5)) for i, v in enumerate(expected)]
    assert len(grads) == 2 * 6

    rows = read_csv(tmp_path / "jacobian_random.csv")
    for name, shown in [("gcn_ssm", "GCN-SSM"), ("gatedgcn", "GatedGCN")]:
        model = seeded(name, 3)
        layer, state, edges = layer_by_layer(model, graph, feat)[0][1]  # layer 2 at H⁽¹⁾
        jac = dense_layer_jacobian(layer, graph, state, edge_feat=edges)
        for kind, values in [("eig_modulus", torch.linalg.eigvals(jac).abs()),
                             ("singular_value", torch.linalg.svdvals(jac))]:  # fmt: skip
            written = [float(r["value"]) for r in rows if r["model"] == shown and r["kind"] == kind]
            expected = values.sort(descending=True).values.tolist()
            assert written == pytest.approx(expected, rel=1e-4, abs=1e-6), (shown, kind)

    assert main(["energy", "--model", "gcn_sm", *graph_args, *out]) == 2
    assert "Did you mean 'gcn_ssm'?" in capsys.readouterr().err
    # A negative distance kept no row, and the command wrote an empty CSV with exit 0.
    assert main(["sensitivity", "--max-distance", "-1", *graph_args, *out]) == 2
    assert "--max-distance must be at least 0" in capsys.readouterr().err
    assert not (tmp_path / "sensitivity_random.csv").exists()
    # Accepted without a word: a negative bound (read as 0), and SSM scales no model took.
    with pytest.raises(SystemExit):
        main(["jacobian", "--max-dense", "-5", *graph_args, *out])
    assert "--max-dense: must be an integer ≥ 0, got '-5'" in capsys.readouterr().err
    assert main(["energy", "--model", "gcn", "--state-scale", "0.5", *graph_args, *out]) == 2
    assert "--state-scale set Λ and B of SSM models, and --model names none (gcn)" in (
        capsys.readouterr().err
    )
    # --device: the same numbers on the CPU when asked; a GPU this machine lacks is one line.
    assert main(["gradients", "--layers", "5", "--device", "cpu", *graph_args, *out]) == 0
    assert read_csv(tmp_path / "gradients_random.csv") == grads
    if torch.cuda.is_available():
        return  # what follows is about a GPU that this machine lacks
    assert main(["energy", "--device", "cuda", *graph_args, *out]) == 2
    assert "device cuda was asked for, but" in capsys.readouterr().err
    # The paper's figures take --device too, and refuse a GPU that is not there before work.
    figures_out = ["--out", str(tmp_path / "figures")]
    assert main(["figures", "--only", "sensitivity_ring", "--device", "cuda", *figures_out]) == 2
    assert "device cuda was asked for, but" in capsys.readouterr().err
    assert not list((tmp_path / "figures").iterdir())


@pytest.mark.slow
def test_installed_analyze_figures_makes_one_figure_from_the_library_numbers(tmp_path):
    command = Path(sys.executable).parent / "dgl-ssm"
    if not command.exists():
        pytest.skip("dgl-ssm is not installed here (pip install -e .)")
    argv = [str(command), "analyze", "figures", "--quick", "--only", "sensitivity_ring",
            "--seed", "3", "--out", str(tmp_path / "figs")]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Sensitivity vs distance on a ring" in result.stdout
    assert "Jacobian" not in result.stdout and "Cora" not in result.stdout  # that figure only
    out = tmp_path / "figs"  # (and no temporary file left beside it)
    assert sorted(p.name for p in out.iterdir()) == ["sensitivity_ring.csv", "sensitivity_ring.png"]

    png = (out / "sensitivity_ring.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (720, 480)  # 6 × 4 inches at 120 dpi
    assert 10_000 < len(png) < 1_000_000 and png.endswith(b"IEND\xaeB`\x82")

    # The numbers plotted are the library's, recomputed here from scratch: the 16-node ring
    # (--quick), L = 8 layers, hidden 32, Gaussian features and 5-class labels from the seed,
    # targets 0 and 4, distances on the ring itself.
    rows = read_csv(out / "sensitivity_ring.csv")
    size, layers, seed = 16, 8, 3
    bare = ring(size, self_loops=False)
    generator = torch.Generator().manual_seed(seed)
    feat = torch.randn(size, 16, generator=generator)
    classes = int(torch.randint(0, 5, (size,), generator=generator).max()) + 1
    shown = {"gcn": "GCN", "kgcn": "kGCN", "gcn_ssm": "GCN-SSM", "kgcn_ssm": "kGCN-SSM"}
    assert {row["model"] for row in rows} == set(shown.values())
    for name, label in shown.items():
        torch.manual_seed(seed)
        model = build_model(name, 16, 32, classes, num_layers=layers)
        graph = KHopTransform(k=layers)(bare) if is_khop(name) else dgl.add_self_loop(bare)
        expected = sensitivity_by_distance(model, graph, feat, [0, 4], distance_graph=bare)
        measured = {int(r["distance"]): float(r["mean_sensitivity"]) for r in rows
                    if r["model"] == label}  # fmt: skip
        assert list(measured) == list(expected) == list(range(size // 2 + 1))
        np.testing.assert_allclose(list(measured.values()), list(expected.values()), rtol=1e-6)


def test_diagnostics_refuse_inputs_with_nothing_to_measure():
    g, layer = random_graph(10, 20), SSMLayer(GraphConv(4, 4), 4)
    feat = torch.randn(10, 4)
    feat[2, 1] = float("nan")  # a diverged model's state, say
    for spectrum in (top_eigenvalue_moduli, top_singular_values, spectral_density):
        with pytest.raises(
            ValueError,
            match=r"the states in feat contain NaN or Inf values in 1 of 10 rows.*diverged",
        ):
            spectrum(layer, g, feat)
    empty = dgl.graph(([], []), num_nodes=0)
    with pytest.raises(dgl.DGLError, match="top_eigenvalue_moduli: the graph has no nodes"):
        top_eigenvalue_moduli(layer, empty, torch.zeros(0, 4))
    with pytest.raises(TypeError, match=r"dtype must be a floating torch.dtype.*'float64'"):
        top_eigenvalue_moduli(layer, g, torch.randn(10, 4), dtype="float64")
    model = build_model("gcn_ssm", 4, 8, 2, num_layers=2)
    with pytest.raises(TypeError, match="layer_energies: dtype must be a floating torch.dtype"):
        layer_energies(model, g, torch.randn(10, 4), dtype="float64")
    # An energy can say NaN itself: a NaN state's energy is NaN, not an error.
    assert math.isnan(dirichlet_energy(g, feat))


def test_sensitivity_refuses_what_is_not_a_list_of_node_pairs():
    g = random_graph(10, 20)
    model, feat = build_model("gcn_ssm", 4, 8, 2, num_layers=2), torch.randn(10, 4)
    for bad in ([(0, 1, 2), (3, 4, 0)], [(0.0, 1.0)], [0, 1, 2], "01"):
        with pytest.raises(ValueError, match=r"pairs must be \(target v, source u\) node pairs"):
            sensitivity(model, g, feat, bad)
    with pytest.raises(TypeError, match="feat must be a floating-point torch.Tensor, got float"):
        sensitivity(model, g, feat.numpy(), [(0, 1)])
    assert sensitivity(model, g, feat, []).shape == (0,)
    assert sensitivity(model, g, feat, np.array([[0, 1]])).shape == (1,)
    cases = [
        (dict(targets=[]), ValueError, r"targets must be a non-empty list of node ids .*got \[\]"),
        (dict(targets=3), TypeError, r"targets must be a non-empty list of node ids .*got 3"),
        (
            dict(targets=torch.tensor(3)),
            TypeError,
            r"targets must be a non-empty list .*got tensor\(3\)",
        ),
        (dict(targets=np.int64(3)), TypeError, r"targets must be a non-empty list .*got 3"),
        (dict(num_targets=0), ValueError, "num_targets must be a positive integer, got 0"),
        (dict(num_targets=2.5), TypeError, "num_targets must be a positive integer, got 2.5"),
    ]
    for options, error, message in cases:
        with pytest.raises(error, match=f"sensitivity_by_distance: {message}"):
            sensitivity_by_distance(model, g, feat, **options)


def test_sensitivity_calls_nan_inputs_features_to_clean_not_a_divergence():
    g, model = random_graph(10, 20), build_model("gcn_ssm", 4, 8, 2, num_layers=2)
    feat = torch.randn(10, 4)
    feat[0, 0] = float("inf")
    message = r"sensitivity: the node features in feat contain NaN or Inf values in 1 of 10 rows"
    with pytest.raises(ValueError, match=message + r"\. Clean or impute them") as error:
        sensitivity(model, g, feat, [(0, 1)])
    assert "diverged" not in str(error.value)


def test_analyze_names_a_cache_folder_it_cannot_make(tmp_path, capsys, data_dir):
    # analyze catches no OSError: the cache's error must be one it reports in a line.
    from dgl_ssm_bench.analyze import main

    (tmp_path / "file").touch()
    argv = [
        "energy",
        "--dataset",
        "cora",
        "--data-dir",
        str(data_dir),
        "--cache-dir",
        str(tmp_path / "file" / "cache"),
        "--layers",
        "2",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "as the data cache" in err and "--cache-dir" in err and err.count("\n") == 1


def test_arpack_running_out_of_iterations_is_not_taken_for_a_breakdown():
    # Too few iterations is ARPACK's own, clear error (raise maxiter or tol); only a breakdown
    # sends a block to the fallbacks.
    from scipy.sparse.linalg import ArpackNoConvergence

    from dgl_ssm.analysis.spectra import top_of_spectrum

    values = np.linspace(0.0, 1.0, 4200) ** 0.2
    op = scipy.sparse.linalg.aslinearoperator(scipy.sparse.diags(values))
    block = [(np.arange(4200), np.arange(4200))]
    with pytest.raises(ArpackNoConvergence):
        top_of_spectrum(op, block, 6, "eigen", tol=1e-12, maxiter=2)


@pytest.mark.parametrize(("logy", "shown"), [(True, [0, 4]), (False, [0, 1, 3, 4])])
def test_an_axis_is_given_the_values_it_can_show(logy, shown):
    """A zero energy or gradient norm (a dead model) cannot sit on a log axis: it is left out,
    as are NaN and overflow, and the other points keep their layers. A linear axis (accuracy
    vs depth) shows 0 and negative values: a test accuracy of 0 is a point, not a gap."""
    from dgl_ssm_bench.figures import plot_curves, pyplot

    ys = {0: 1.0, 1: 0.0, 2: math.nan, 3: -2.0, 4: 0.5}
    fig, ax = pyplot().subplots()
    try:
        plot_curves(ax, {"model": (list(ys), list(ys.values()))}, "layer", "y", logy=logy)
        (line,) = ax.get_lines()
        assert list(line.get_xdata()) == shown
        assert list(line.get_ydata()) == [ys[x] for x in shown]
    finally:
        pyplot().close(fig)


def test_accuracy_vs_depth_writes_each_runs_test_and_val_accuracy_at_the_sessions_depths(
    tmp_path, monkeypatch
):
    from types import SimpleNamespace

    from dgl_ssm_bench import figures

    trained = []

    def fake_train(config, data=None):
        name, depth = config.model.name, config.model.num_layers
        trained.append((name, depth))  # test 0.5 + depth / 100, val 0.1 (told apart below)
        return SimpleNamespace(test=0.5 + depth / 100, val=0.1, best_epoch=depth,
                               status="ok")  # fmt: skip

    monkeypatch.setattr(figures, "train", fake_train)
    settings = figures.Settings(depths=(2, 4), epochs=3, patience=None, ring=8)
    session = figures.Session(tmp_path, settings=settings)
    session.__dict__["cora"] = None  # (the fake training reads no data)
    figures.accuracy_vs_depth(session, "acc")
    assert trained == [("gcn", 2), ("gcn", 4), ("gcn_ssm", 2), ("gcn_ssm", 4)]
    rows = [(r["model"], r["layers"], r["test_accuracy"], r["val_accuracy"])
            for r in read_csv(tmp_path / "acc.csv")]  # fmt: skip
    assert rows == [("gcn", "2", "0.52", "0.1"), ("gcn", "4", "0.54", "0.1"),
                    ("gcn_ssm", "2", "0.52", "0.1"), ("gcn_ssm", "4", "0.54", "0.1")]  # fmt: skip


def test_energy_recipes_pass_normalized_and_float64_on(tmp_path, monkeypatch):
    from dgl_ssm_bench import figures

    asked = []

    def fake_energy_curves(configs, data, seed, normalized=False, dtype=None):
        asked.append((normalized, dtype))
        return {"GCN": ([0, 1], [1.0, 0.5])}

    monkeypatch.setattr(figures, "energy_curves", fake_energy_curves)
    data = figures.analysis_data("random", num_nodes=10, num_edges=20)
    configs = [figures.model_config("gcn", 1, 4)]
    figures.energy_vs_layer(data, configs, out=tmp_path, normalized=True)
    figures.energy_vs_layer(data, configs, out=tmp_path, float64=True)
    assert asked == [(True, None), (False, torch.float64)]
    # The paper's Cora energies are in float64 (float32 rounds the vanishing ones to noise).
    monkeypatch.setattr(figures.Data, "from_benchmark", lambda cora: data)
    session = figures.Session(tmp_path)
    session.__dict__["cora"] = None
    figures.energy_cora(session, "energy", ("gcn",), layers=1, hidden=4)
    assert asked[2:] == [(False, torch.float64)]


def test_cli_options_reach_the_recipes(tmp_path, monkeypatch):
    # What the commands hand their recipe: the ring's default depth (ring size / 2), --k, and
    # data drawn from --seed (recomputed here: the graph's two endpoint draws, then features).
    from dgl_ssm_bench import analyze, figures

    given = {}

    def recorder(name):
        return lambda data, configs, **options: given.update({name: (data, configs, options)})

    for name in ("sensitivity_vs_distance", "jacobian_spectrum", "energy_vs_layer"):
        monkeypatch.setattr(figures, name, recorder(name))
    out = ["--out", str(tmp_path)]
    assert analyze.main(["sensitivity", "--dataset", "ring", "--ring-size", "8", *out]) == 0
    assert [c.num_layers for c in given["sensitivity_vs_distance"][1]] == [4, 4]
    random = ["--dataset", "random", "--num-nodes", "20", "--num-edges", "30", "--seed", "3"]
    assert analyze.main(["jacobian", "--k", "3", *random, *out]) == 0
    assert given["jacobian_spectrum"][2]["k"] == 3
    assert analyze.main(["energy", *random, *out]) == 0
    data, _, options = given["energy_vs_layer"]
    generator = torch.Generator().manual_seed(3)
    for _ in range(2):
        torch.randint(0, 20, (30,), generator=generator)
    torch.testing.assert_close(data.feat, torch.randn(20, 16, generator=generator))
    assert options["seed"] == 3
    # Each command's default depth: energy 64, Jacobian 2, sensitivity off the ring 8.
    assert [c.num_layers for c in given["energy_vs_layer"][1]] == [64, 64]
    assert [c.num_layers for c in given["jacobian_spectrum"][1]] == [2, 2]
    assert analyze.main(["sensitivity", *random, *out]) == 0
    assert [c.num_layers for c in given["sensitivity_vs_distance"][1]] == [8, 8]
    # The options reach the recipe (and 0 is a valid --max-dense and --max-distance; a
    # 1-layer model with 1 Jacobian value to keep is a valid size).
    options = ["--float64", "--feat-dim", "5", "--activation", "tanh"]
    assert analyze.main(["energy", *options, *random, *out]) == 0
    data, configs, options = given["energy_vs_layer"]
    assert options["float64"] and data.feat.shape == (20, 5)
    assert [c.activation for c in configs] == ["tanh", "tanh"]
    options = ["--max-dense", "0", "--layers", "1", "--k", "1"]
    assert analyze.main(["jacobian", *options, *random, *out]) == 0
    assert given["jacobian_spectrum"][2]["max_dense"] == 0
    assert given["jacobian_spectrum"][2]["k"] == 1
    assert analyze.main(["sensitivity", "--max-distance", "0", "--targets", "3", *random,
                         *out]) == 0  # fmt: skip
    assert (given["sensitivity_vs_distance"][2]["max_distance"],
            given["sensitivity_vs_distance"][2]["targets"]) == (0, 3)  # fmt: skip
    # A random graph of one node has no edge to draw.
    one = ["--dataset", "random", "--num-nodes", "1", "--num-edges", "30"]
    assert analyze.main(["energy", *one, *out]) == 2
    made = []
    monkeypatch.setattr(figures, "make_figures", lambda out, **options: made.append(options))
    assert analyze.main(["figures", "--quick", "--only", "sensitivity_ring", "--seed", "4",
                         *out]) == 0  # fmt: skip
    assert [(m["quick"], m["only"], m["seed"]) for m in made] == [(True, ["sensitivity_ring"], 4)]


def numpy_energy(graph, h):
    """(1/n) Σ over stored edges of ‖h_i − h_j‖², in numpy float64."""
    src, dst = (t.numpy() for t in graph.edges())
    h = h.double().numpy()
    return float(((h[src] - h[dst]) ** 2).sum()) / graph.num_nodes()


def test_half_precision_states_are_subtracted_in_float32():
    """1000 − (−1000.5) is 2000.5 in float32 but rounds to 2000 in float16."""
    graph, feat = dgl.graph(([0], [1])), torch.tensor([[1000.0], [-1000.5]], dtype=torch.float16)
    assert dirichlet_energy(graph, feat) == 2000.5**2 / 2


def test_layer_energies_of_a_training_model_are_measured_without_dropout_on_energy_graph():
    """Eval-mode states (no dropout draw), measured on the energy_graph given, by numpy."""
    torch.manual_seed(0)
    graph, other = random_graph(8, 12, seed=2), dgl.graph(([0, 1, 2, 3], [4, 5, 6, 7]))
    model = build_model("gcn_ssm", 3, 4, 2, num_layers=2, dropout=0.5).train()
    feat = torch.randn(8, 3)
    calls, last = layer_by_layer(copy.deepcopy(model), graph, feat)
    states = [*(c[1] for c in calls), last]
    measured = layer_energies(model, graph, feat, energy_graph=other)
    assert measured == pytest.approx([numpy_energy(other, h) for h in states], rel=1e-5)
    assert model.training


def manual_gradient_norms(model, graph, feat, loss_fn):
    """‖∂loss/∂H⁽ℓ⁾‖ for ℓ = 0 … L, from a chain written out by hand."""
    h = model.encoder(feat.detach().requires_grad_(True))
    states = [h]
    for layer in model.layers:
        h = layer(graph, h)
        states.append(h)
    grads = torch.autograd.grad(loss_fn(model.head(h)), states)
    return [g.norm().item() for g in grads]


def test_gradient_norms_of_a_frozen_model_under_no_grad_with_the_input_state():
    """Frozen weights and a caller's no_grad still give the norms, H⁽⁰⁾'s first."""
    torch.manual_seed(0)
    graph, feat = random_graph(10, 16, seed=4), torch.randn(10, 3)
    model = build_model("gcn", 3, 4, 2, num_layers=3).eval().requires_grad_(False)

    def loss_fn(out):
        return out.pow(2).sum()

    expected = manual_gradient_norms(model, graph, feat, loss_fn)
    assert min(expected) > 0
    with torch.no_grad():
        norms = layer_gradient_norms(model, graph, feat, loss_fn, include_input=True)
    np.testing.assert_allclose(norms, expected, rtol=1e-6)


def test_sensitivity_by_distance_on_a_distance_graph_named_by_field_up_to_max_distance():
    """Distances from the distance_graph's hop-1 edges under the hop_field given, ≤ max."""
    torch.manual_seed(0)
    bare = ring(8, self_loops=False)
    graph = dgl.add_self_loop(KHopTransform(k=2)(bare))  # the model reads 2 hops at once
    del graph.edata["hop"]
    model = build_model("gcn_ssm", 3, 4, 2, num_layers=2).eval()
    feat = torch.randn(8, 3)
    jac = dense_final_state_jacobian(model, graph, feat).double()
    distance_graph = KHopTransform(k=3, hop_field="d")(bare)
    curve = sensitivity_by_distance(
        model, graph, feat, [0, 3], max_distance=3, distance_graph=distance_graph, hop_field="d"
    )
    ring_distance = {(u, v): min(abs(u - v), 8 - abs(u - v)) for u in range(8) for v in range(8)}
    for d in range(4):
        blocks = [jac[v, :, u, :].norm().item() for v in (0, 3) for u in range(8)
                  if ring_distance[u, v] == d]  # fmt: skip
        assert curve[d] == pytest.approx(np.mean(blocks), rel=1e-5)
    assert sorted(curve) == [0, 1, 2, 3]


def test_a_layers_spectrum_is_dense_up_to_max_dense_and_the_last_layer_can_be_asked_for():
    from dgl_ssm_bench import figures

    data = figures.analysis_data("random", num_nodes=10, num_edges=20, feat_dim=3)
    config = figures.model_config("gcn_ssm", 2, 4)
    # n·d = 10 × 4 = 40: at max_dense = 40 every one of the 40 values, dense (no density).
    values, density = figures.layer_spectrum(config, data, 0, 2, 40, 3)
    assert density is None and len(values["eig_modulus"]) == len(values["singular_value"]) == 40
    assert list(values["eig_modulus"]) == sorted(values["eig_modulus"], reverse=True)
    with pytest.raises(ValueError, match=r"--layer must be in 1\.\.2, got 3"):
        figures.layer_spectrum(config, data, 0, 3, 40, 3)


def test_ssm_curves_name_their_state_scale():
    from dgl_ssm_bench import figures

    assert figures.label(figures.model_config("gcn_ssm", 2, 4, state_scale=0.5)) == (
        "GCN-SSM (‖Λ‖₂=0.5)"
    )
    assert figures.label(figures.model_config("gcn", 2, 4, state_scale=0.5)) == "GCN"


def test_a_run_without_a_test_accuracy_is_written_as_nan_not_0(tmp_path, monkeypatch):
    # A diverged run has no test accuracy: its row must not read as a measured 0.
    from types import SimpleNamespace

    from dgl_ssm_bench import figures

    def diverged(config, data=None):
        return SimpleNamespace(test=None, val=None, best_epoch=None, status="diverged")

    monkeypatch.setattr(figures, "train", diverged)
    monkeypatch.setattr(figures.Session, "cora", None)  # (the fake training reads no data)
    settings = figures.Settings(depths=(2,), epochs=1, patience=None, ring=8)
    figures.accuracy_vs_depth(figures.Session(tmp_path, settings=settings), "acc", ("gcn",))
    (row,) = read_csv(tmp_path / "acc.csv")
    assert (row["test_accuracy"], row["status"]) == ("nan", "diverged")


def test_quick_figures_train_at_the_quick_depths(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from dgl_ssm_bench import figures

    depths = []

    def fake_train(config, data=None):
        depths.append(config.model.num_layers)
        return SimpleNamespace(test=0.5, val=0.5, best_epoch=1, status="ok")

    monkeypatch.setattr(figures, "train", fake_train)
    monkeypatch.setattr(figures.Session, "cora", None)
    figures.make_figures(tmp_path, quick=True, only=["accuracy_vs_depth_cora"])
    assert depths == [2, 4, 8, 16, 32, 64] * 2  # gcn, then gcn_ssm; no 128 (the full run's)


def test_sensitivity_targets_are_drawn_from_the_seed(tmp_path):
    # 3 of 12 nodes as targets: which three is the seed's choice, as the library draws them.
    from dgl_ssm_bench import figures

    data = figures.analysis_data("random", seed=3, num_nodes=12, num_edges=30, feat_dim=3)
    config = figures.model_config("gcn_ssm", 2, 8)
    curves = figures.sensitivity_curves([config], data, seed=3, num_targets=3)
    torch.manual_seed(3)
    model = build_model("gcn_ssm", 3, 8, data.num_classes, num_layers=2)
    graph = dgl.add_self_loop(data.graph)
    expected = sensitivity_by_distance(
        model, graph, data.feat, distance_graph=data.graph, num_targets=3, seed=3
    )
    assert curves["GCN-SSM"] == (list(expected), pytest.approx(list(expected.values())))


def test_gradient_curves_take_the_loss_on_the_training_nodes_only():
    from dgl_ssm_bench import figures

    data = figures.analysis_data("random", num_nodes=12, num_edges=30, feat_dim=3)
    data.train_mask[4:] = False  # Cora's split: the loss reads 4 of the 12 nodes
    config = figures.model_config("gcn_ssm", 2, 8)
    (layers, norms) = figures.gradient_curves([config], data, seed=0)["GCN-SSM"]
    torch.manual_seed(0)
    model = build_model("gcn_ssm", 3, 8, data.num_classes, num_layers=2).eval()
    mask = data.train_mask
    expected = manual_gradient_norms(
        model,
        dgl.add_self_loop(data.graph),
        data.feat,
        lambda out: F.cross_entropy(out[mask], data.labels[mask]),
    )
    assert layers == [0, 1, 2] and norms == pytest.approx(expected, rel=1e-5)


def test_a_checkpointed_training_step_records_its_forward_states_first():
    # A checkpointed model's backward pass runs its segments' layers again, and the hooks see
    # those re-runs too (recording only inside the model's forward pass needed torch 2.1's
    # always_call, and lost layers run outside it): as the docstring says, the forward pass's
    # states come first, equal to those of the same weights without checkpointing.
    from dgl_ssm.analysis import recorded_states

    graph, feat = random_graph(12, 30), torch.randn(12, 4)
    sizes = dict(in_feats=4, hidden=8, out_feats=2, num_layers=9)
    model, plain = (build_model("gcn_ssm", **sizes, checkpoint=c) for c in (True, False))
    plain.load_state_dict(model.state_dict())  # the same weights, nothing re-run
    runs = []
    for each in (model.train(), plain.train()):
        with recorded_states(each) as states:
            each(graph, feat).sum().backward()
        runs.append([s.detach() for s in states])
    assert len(runs[1]) == 10 and len(runs[0]) > 10  # the re-runs, after the forward pass
    for checkpointed, whole in zip(runs[0][:10], runs[1]):
        torch.testing.assert_close(checkpointed, whole)
