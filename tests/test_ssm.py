"""The SSM step against hand-worked numbers, and the construction of Λ and B."""

import copy
import math
import pickle

import dgl
import numpy as np
import pytest
import torch
from dgl.nn import GATConv, GraphConv

from dgl_ssm import GCNSSM, PlainUpdate, SSMLayer, SSMUpdate, build_matrix

# Path 0 - 1 - 2 with self loops: degrees (with the loop) 2, 3, 2, so the GCN operator
# D^-1/2 (A + I) D^-1/2 is, entry by entry:
A_HAT = np.array(
    [
        [1 / 2, 1 / math.sqrt(6), 0],
        [1 / math.sqrt(6), 1 / 3, 1 / math.sqrt(6)],
        [0, 1 / math.sqrt(6), 1 / 2],
    ]
)
H = np.array([[1.0, -2.0], [0.5, 3.0], [-1.0, 0.0]])
W = np.array([[1.0, 0.5], [-1.0, 2.0]])  # GraphConv computes Â H W
LAMBDA = np.array([[0.9, 0.1], [0.0, 0.8]])
B = np.array([[0.2, 0.0], [0.3, -0.1]])


def three_node_layer(update, weight=W, **layer_options):
    graph = dgl.add_self_loop(dgl.graph(([0, 1, 1, 2], [1, 0, 2, 1])))
    conv = GraphConv(2, 2, norm="both")
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(weight))
        conv.bias.zero_()
    return graph, SSMLayer(conv, dim=2, update=update, **layer_options)


def test_one_gcn_ssm_step_equals_the_formula_by_hand():
    update = SSMUpdate(2, state=torch.tensor(LAMBDA), input=torch.tensor(B))
    graph, layer = three_node_layer(update)
    out = layer(graph, torch.tensor(H, dtype=torch.float32))
    expected = H @ LAMBDA.T + np.maximum(A_HAT @ H @ W, 0) @ B.T
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-6)


def test_the_norm_acts_on_the_new_state():
    update = SSMUpdate(2, state=torch.tensor(LAMBDA), input=torch.tensor(B))
    graph, layer = three_node_layer(update, norm="layer")
    out = layer(graph, torch.tensor(H, dtype=torch.float32))
    state = H @ LAMBDA.T + np.maximum(A_HAT @ H @ W, 0) @ B.T
    centred = state - state.mean(axis=1, keepdims=True)  # LayerNorm at init: weight 1, bias 0
    expected = centred / np.sqrt((centred**2).mean(axis=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-5)


class SumOfNeighbours(torch.nn.Module):
    """A user's conv that writes its messages onto the graph, without a scope of its own."""

    def forward(self, graph, feat):
        graph.ndata["h"] = feat
        graph.update_all(dgl.function.copy_u("h", "m"), dgl.function.sum("m", "h"))
        return graph.ndata["h"]


def test_a_conv_that_writes_on_the_graph_leaves_the_callers_graph_as_it_was():
    graph = dgl.graph(([0, 1, 2], [1, 2, 0]))  # 0 → 1 → 2 → 0: node j sums node j − 1
    graph.ndata["x"] = torch.zeros(3, 2)
    feat = torch.tensor(H, dtype=torch.float32)
    out = SSMLayer(SumOfNeighbours(), dim=2)(graph, feat)
    assert list(graph.ndata) == ["x"] and not graph.edata
    expected = H + 0.1 * np.maximum(H[[2, 0, 1]], 0)  # Λ = I, B = 0.1·I
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)


def test_the_heads_of_a_multi_head_conv_are_concatenated_head_after_head():
    torch.manual_seed(0)
    graph = dgl.add_self_loop(dgl.graph(([0, 1, 1, 2], [1, 0, 2, 1])))
    feat = torch.randn(3, 4)
    layer = SSMLayer(GATConv(4, 2, num_heads=2), dim=4)
    with torch.no_grad():
        out = layer(graph, feat)
        heads = layer.conv(graph, feat)  # (nodes, heads, 2)
    assert heads.shape == (3, 2, 2)
    conv = torch.cat([heads[:, 0], heads[:, 1]], dim=1)  # GAT's ‖ of the heads, not interleaved
    torch.testing.assert_close(out, feat + 0.1 * torch.relu(conv))


def test_dropout_acts_on_the_conv_input_only():
    # A conv of zero weights adds nothing, so whatever dropout does, the state must pass
    # through exactly: H Λᵀ (in training mode, where dropout is on).
    update = SSMUpdate(2, state=torch.tensor(LAMBDA), input=torch.tensor(B))
    graph, layer = three_node_layer(update, weight=np.zeros((2, 2)), dropout=0.5)
    layer.train()
    feat = torch.tensor(H, dtype=torch.float32)
    conv_inputs = []
    layer.conv.register_forward_pre_hook(lambda _, args: conv_inputs.append(args[1]))
    torch.manual_seed(0)
    out = layer(graph, feat)
    np.testing.assert_allclose(out.detach().numpy(), H @ LAMBDA.T, atol=1e-6)
    kept = conv_inputs[0] != 0  # ... while the conv's input was dropped out and rescaled
    assert not kept.all() and torch.allclose(conv_inputs[0][kept], 2 * feat[kept])


@pytest.mark.parametrize("lam,beta,activation", [(1.0, 0.1, "relu"), (0.7, 0.5, "tanh")])
def test_scaled_identity_fast_path_equals_the_formula(lam, beta, activation):
    update = SSMUpdate(2, state_scale=lam, input_scale=beta, activation=activation)
    graph, layer = three_node_layer(update)
    out = layer(graph, torch.tensor(H, dtype=torch.float32))
    sigma = np.tanh if activation == "tanh" else (lambda x: np.maximum(x, 0))
    expected = lam * H + beta * sigma(A_HAT @ H @ W)
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("lam", [1.0, 0.7])
def test_relu_step_gradients_equal_the_closed_form(lam):
    # The scalar relu step has a hand-written backward; its gradients must be the calculus
    # ones: ∂/∂h = λ·g, ∂/∂f = β·g·[f > 0] (f = 0 counts as inactive, as in torch.relu).
    beta = 0.25
    update = SSMUpdate(3, state_scale=lam, input_scale=beta)
    state = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], requires_grad=True)
    conv_out = torch.tensor([[2.0, -1.0, 0.0], [-0.5, 4.0, 1.5]], requires_grad=True)
    upstream = torch.tensor([[1.0, 2.0, -3.0], [0.5, -1.0, 2.0]])
    update(state, conv_out).backward(upstream)
    active = np.array([[1, 0, 0], [0, 1, 1]])
    np.testing.assert_allclose(state.grad.numpy(), lam * upstream.numpy(), rtol=1e-6)
    np.testing.assert_allclose(conv_out.grad.numpy(), beta * upstream.numpy() * active, rtol=1e-6)


def test_relu_step_supports_double_backward_and_inference():
    update = SSMUpdate(4, state_scale=0.9, input_scale=0.3).double()
    state = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    conv_out = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(update, (state, conv_out))
    assert torch.autograd.gradgradcheck(update, (state, conv_out))
    with torch.no_grad():
        out = update(state, conv_out)
    assert not out.requires_grad
    # Only the conv output needs a gradient, as for a frozen input state.
    update(state.detach(), conv_out).sum().backward()
    assert conv_out.grad is not None


def test_relu_step_works_under_forward_mode_and_torch_func():
    lam, beta = 0.9, 0.3
    update = SSMUpdate(3, state_scale=lam, input_scale=beta).double()
    lam, beta = update.scalars()  # as stored (float32 values)
    state = torch.randn(2, 3, dtype=torch.float64)
    conv_out = torch.tensor([[1.0, -2.0, 0.5], [-0.1, 3.0, -4.0]], dtype=torch.float64)
    # By hand: ∂out/∂state = λ·I and ∂out/∂conv_out = β·diag([conv_out > 0]).
    eye = torch.eye(6, dtype=torch.float64).reshape(2, 3, 2, 3)
    active = (conv_out > 0).double().reshape(2, 3, 1, 1)
    for jacobian in (torch.func.jacrev, torch.func.jacfwd):
        d_state, d_conv = jacobian(update, argnums=(0, 1))(state, conv_out)
        torch.testing.assert_close(d_state, lam * eye)
        torch.testing.assert_close(d_conv, beta * eye * active)
    batch = torch.randn(4, 2, 3, dtype=torch.float64)
    expected = lam * batch + beta * torch.relu(conv_out)
    batched = torch.func.vmap(update, in_dims=(0, None))(batch, conv_out)
    torch.testing.assert_close(batched, expected)
    # Per-sample broadcasting of inputs of different rank: (d,) states against (N, d).
    rows = torch.randn(4, 3, dtype=torch.float64)
    batched = torch.func.vmap(update, in_dims=(0, None))(rows, conv_out)
    torch.testing.assert_close(batched, lam * rows[:, None, :] + beta * torch.relu(conv_out))
    assert torch.autograd.gradcheck(
        update,
        (state.requires_grad_(), conv_out.clone().requires_grad_()),
        check_forward_ad=True,
    )


def test_relu_step_promotes_and_broadcasts_like_torch():
    update = SSMUpdate(3, input_scale=0.5)
    conv_out = torch.tensor([[1.0, -2.0, 0.5], [-0.1, 3.0, -4.0]])
    for state in (torch.ones(2, 3, dtype=torch.float64), torch.ones(1, 3)):
        expected = state + 0.5 * torch.relu(conv_out)
        out = update(state, conv_out)
        assert out.dtype == expected.dtype and out.shape == expected.shape
        torch.testing.assert_close(out, expected)


@pytest.mark.parametrize(
    "state_shape,conv_shape",
    [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (3, 4)), ((3, 4), (2, 3, 4)), ((3, 4), (1, 4)),
     ((1, 4), (3, 4)), ((1, 1, 4), (3, 4))],
)  # fmt: skip
def test_a_matrix_b_broadcasts_over_leading_dimensions_as_torch_does(state_shape, conv_shape):
    # (N, d) goes through addmm, which takes matrices only; every other shape that broadcasts
    # must give numpy's broadcasting of the formula.
    torch.manual_seed(0)
    update = SSMUpdate(4, state="orthogonal", input="orthogonal")
    state, conv_out = torch.randn(state_shape), torch.randn(conv_shape)
    lam, b = update.state_matrix.numpy(), update.input_matrix.numpy()
    expected = state.numpy() @ lam.T + np.maximum(conv_out.numpy(), 0) @ b.T
    np.testing.assert_allclose(update(state, conv_out).numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rank", [2, 3])
def test_a_matrix_b_takes_the_same_dtypes_at_every_rank(rank):
    # The batch's rank must not decide whether mixed dtypes are refused or promoted.
    update = SSMUpdate(4, input="orthogonal")  # Λ = I, B a matrix
    shape = (2, 3, 4)[-rank:]
    with pytest.raises(TypeError, match="SSMUpdate's state is torch.float64"):
        update(torch.randn(shape, dtype=torch.float64), torch.randn(shape))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert update(torch.randn(shape), torch.randn(shape)).dtype == torch.bfloat16


def test_plain_update_is_the_ordinary_layer():
    graph, layer = three_node_layer(PlainUpdate("relu", residual=True))
    out = layer(graph, torch.tensor(H, dtype=torch.float32))
    np.testing.assert_allclose(out.detach().numpy(), np.maximum(A_HAT @ H @ W, 0) + H, atol=1e-6)


def test_a_diagonal_lambda_is_not_taken_for_a_scaled_identity():
    from dgl_ssm.ssm import scaled_identity_scalar

    lam = torch.diag(torch.tensor([0.5, 2.0]))
    assert scaled_identity_scalar(lam) is None
    assert scaled_identity_scalar(0.5 * torch.eye(2)) == 0.5
    # H Λᵀ with σ(F) = 0: each coordinate keeps its own λ.
    out = SSMUpdate(2, state=lam)(torch.ones(1, 2), torch.zeros(1, 2))
    torch.testing.assert_close(out, torch.tensor([[0.5, 2.0]]))


def test_orthogonal_lambda_is_haar_distributed():
    # QR of a Gaussian matrix is Haar only once R's diagonal is made positive; LAPACK's signs
    # otherwise bias the first column (mean of q₀₀ ≈ −0.62 over these draws).
    generator = torch.Generator().manual_seed(0)
    first = torch.stack([build_matrix("orthogonal", 2, generator=generator)[0, 0]
                         for _ in range(2000)])  # fmt: skip
    assert abs(float(first.mean())) < 0.05  # Haar: q₀₀ = cos θ, θ uniform; std 0.016


def test_matrix_kinds_have_the_promised_spectra():
    generator = torch.Generator().manual_seed(0)
    identity = build_matrix("identity", 6, 0.5)
    assert torch.equal(identity, 0.5 * torch.eye(6))
    orthogonal = build_matrix("orthogonal", 6, 0.9, generator)
    np.testing.assert_allclose(torch.linalg.eigvals(orthogonal).abs(), 0.9, atol=1e-5)
    np.testing.assert_allclose(orthogonal @ orthogonal.T, 0.81 * torch.eye(6), atol=1e-5)
    random = build_matrix("random", 64, 1.0, generator)
    assert random.abs().max() <= 1 / 8 and random.std() > 0.05  # U(-1/√d, 1/√d)
    # The scale multiplies the same draw, for the random kinds too.
    for kind in ("orthogonal", "random"):
        unit = build_matrix(kind, 6, 1.0, torch.Generator().manual_seed(3))
        scaled = build_matrix(kind, 6, 0.5, torch.Generator().manual_seed(3))
        torch.testing.assert_close(scaled, 0.5 * unit)


def test_an_orthogonal_matrix_is_the_q_of_its_gaussian_draw_with_a_positive_r():
    """Q of G = QR with R's diagonal positive (the Haar sign fix), not rows flipped instead."""
    gaussian = torch.randn(5, 5, generator=torch.Generator().manual_seed(3)).double()
    q = build_matrix("orthogonal", 5, 1.0, torch.Generator().manual_seed(3)).double()
    r = q.T @ gaussian  # Qᵀ G = R: upper triangular with a positive diagonal (seed 3: LAPACK
    # gives R two negative diagonal entries, which the fix must flip)
    assert float(torch.tril(r, diagonal=-1).abs().max()) < 1e-5
    assert bool((torch.diagonal(r) > 0).all())


def test_random_kinds_are_drawn_by_a_cpu_generator_under_another_default_device():
    # torch.set_default_device("cuda") would make a CPU generator's draw fail; "meta" (no
    # values) fails the same way, and shows where the matrix is put: the default device.
    for kind in ("orthogonal", "random"):
        with torch.device("meta"):
            matrix = build_matrix(kind, 4, 0.5, torch.Generator().manual_seed(0))
            lam = GCNSSM(3, 4, 2, 2, state=kind, ssm_seed=0).layers[0].update.state_matrix
        assert matrix.device.type == lam.device.type == "meta" and matrix.shape == (4, 4)


def test_a_custom_matrix_is_built_in_the_default_dtype():
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator()))
    assert build_matrix(q, 6).dtype == build_matrix(q.numpy(), 6).dtype == torch.float32
    assert build_matrix(torch.eye(6, dtype=torch.int64), 6).dtype == torch.float32
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        lam = GCNSSM(3, 6, 2, 2, state=q).layers[0].update.state_matrix
    finally:
        torch.set_default_dtype(default)
    # Q Qᵀ = I to ~1e-15 in float64; a float32 copy would miss it by ~1e-7.
    assert lam.dtype == torch.float64
    assert float((lam @ lam.T - torch.eye(6, dtype=torch.float64)).abs().max()) < 1e-12


def test_lambda_and_b_are_buffers_and_survive_a_reload():
    update = SSMUpdate(4, state="orthogonal", input="random", generator=torch.Generator())
    assert list(update.parameters()) == []
    assert set(update.state_dict()) == {"state_matrix", "input_matrix"}
    fresh = SSMUpdate(4, state="identity")
    fresh.load_state_dict(update.state_dict())
    h, f = torch.randn(5, 4), torch.randn(5, 4)
    torch.testing.assert_close(fresh(h, f), update(h, f))


def test_edits_to_lambda_and_b_take_effect_however_they_are_made():
    """The scaled-identity fast path must follow the buffers: an in-place edit, a new tensor,
    a functional call and a reload all change the step as the formula says."""
    update = SSMUpdate(3)  # Λ = I, B = 0.1·I: the fast path
    h, f = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0, -1.0, 2.0]])
    relu_f = torch.tensor([[1.0, 0.0, 2.0]])

    def by_hand(lam, b):
        return h @ lam.T + relu_f @ b.T

    torch.testing.assert_close(update(h, f), by_hand(torch.eye(3), 0.1 * torch.eye(3)))
    with torch.no_grad():
        update.state_matrix.mul_(0.5)  # still a scaled identity: λ = 0.5
    torch.testing.assert_close(update(h, f), by_hand(0.5 * torch.eye(3), 0.1 * torch.eye(3)))
    with torch.no_grad():
        update.state_matrix[0, 1] = 0.3  # no longer a scaled identity
    lam = 0.5 * torch.eye(3)
    lam[0, 1] = 0.3
    torch.testing.assert_close(update(h, f), by_hand(lam, 0.1 * torch.eye(3)))
    update.input_matrix = 2.0 * torch.eye(3)  # a new tensor
    torch.testing.assert_close(update(h, f), by_hand(lam, 2.0 * torch.eye(3)))
    swapped = {"state_matrix": torch.eye(3), "input_matrix": torch.eye(3)}
    out = torch.func.functional_call(update, swapped, (h, f))
    torch.testing.assert_close(out, by_hand(torch.eye(3), torch.eye(3)))
    torch.testing.assert_close(update(h, f), by_hand(lam, 2.0 * torch.eye(3)))  # restored
    update.load_state_dict(SSMUpdate(3, state_scale=0.7, input_scale=0.2).state_dict())
    torch.testing.assert_close(update(h, f), by_hand(0.7 * torch.eye(3), 0.2 * torch.eye(3)))
    # A copy's buffers start new version counters: its first edit must not look like the
    # versions the original's scalars were read at (a copy's buffer is written once when it
    # is made, so here the copy's Λ and B reach versions 2 and 1, as the original's were).
    update = SSMUpdate(3)
    with torch.no_grad():
        update.state_matrix.mul_(0.7).mul_(1.0)
        update.input_matrix.mul_(1.0)
    update(h, f)  # read at versions 2 and 1
    for copied in (copy.deepcopy(update), pickle.loads(pickle.dumps(update))):
        with torch.no_grad():
            copied.state_matrix.mul_(0.5)
        torch.testing.assert_close(copied(h, f), by_hand(0.35 * torch.eye(3), 0.1 * torch.eye(3)))


@pytest.mark.skipif(not hasattr(torch.nn.Module, "compile"), reason="Module.compile: torch 2.1+")
def test_a_compiled_update_is_copied_and_pickled_as_torch_copies_a_module():
    """A copy leaves the compiled call of its original behind (nn.Module.__getstate__ drops
    it): a deep copy must not run the original's buffers, and pickling must work."""
    update = SSMUpdate(3)
    try:
        update.compile()  # (lazy: nothing is compiled until a call)
    except RuntimeError as error:  # torch 2.2 on Python 3.12: "Dynamo is not supported"
        pytest.skip(f"torch.compile here: {error}")
    copied = copy.deepcopy(update)
    assert "_compiled_call_impl" not in vars(copied) or copied._compiled_call_impl is None
    with torch.no_grad():
        copied.state_matrix.mul_(0.5)
    h, f = torch.ones(2, 3), torch.zeros(2, 3)
    torch.testing.assert_close(copied.forward(h, f), 0.5 * h)
    assert isinstance(pickle.loads(pickle.dumps(update)), SSMUpdate)


def test_lambda_and_b_can_be_differentiated_and_batched_with_torch_func():
    update = SSMUpdate(3)  # Λ = I, B = 0.1·I: a fast path that must step aside
    h, f = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]]), torch.tensor([[1.0, -1.0, 2.0]] * 2)

    def loss(lam):
        return torch.func.functional_call(update, {"state_matrix": lam}, (h, f)).sum()

    # ∂/∂Λ_ij of Σ_n (H Λᵀ)_ni = Σ_n h_nj, the same for every i
    expected = h.sum(0).expand(3, 3)
    torch.testing.assert_close(torch.func.grad(loss)(torch.eye(3)), expected)
    copy.deepcopy(update), pickle.dumps(update)  # nothing of the transform is kept
    # An ensemble's buffers stacked and vmapped over, as torch.func's recipe does it
    models = [SSMUpdate(3), SSMUpdate(3, state_scale=0.5, input_scale=0.3)]
    _, buffers = torch.func.stack_module_state(models)
    outs = torch.func.vmap(lambda b: torch.func.functional_call(models[0], b, (h, f)))(buffers)
    for out, model in zip(outs, models):
        torch.testing.assert_close(out, model(h, f))


def test_repr_reports_kind_eigenvalue_modulus_and_norm():
    text = repr(SSMUpdate(4, state_scale=0.9, input_scale=0.1))
    assert "state=identity(|eig|=0.9, ‖·‖₂=0.9)" in text
    assert "input=identity(|eig|=0.1, ‖·‖₂=0.1)" in text


def test_a_layer_repr_starts_with_its_width():
    assert repr(SSMLayer(GraphConv(3, 3), dim=3)).startswith("SSMLayer(\n  dim=3\n  (conv): ")


def test_repr_of_wide_matrices_needs_no_eigendecomposition():
    # Λ = 0.5·Q with Q orthogonal, 512 wide: the RMS singular value is 0.5 exactly, with no
    # LAPACK call (a 64-layer model printed in ~0.8 s a layer before).
    update = SSMUpdate(512, state="orthogonal", state_scale=0.5, generator=torch.Generator())
    with torch.autograd.profiler.profile() as profile:
        text = repr(update)
    assert "state=orthogonal(512×512, ‖·‖_F/√d=0.5)" in text
    assert "input=identity(|eig|=0.1, ‖·‖₂=0.1)" in text
    assert not [e for e in profile.function_events if "eig" in e.name or "svd" in e.name]
    # Up to 64 wide, the spectrum itself: a rotation by 90° in the plane, |eig| = ‖·‖₂ = 2.
    rotation = torch.tensor([[0.0, -2.0], [2.0, 0.0]])
    assert "state=custom(|eig|=2, ‖·‖₂=2)" in repr(SSMUpdate(2, state=rotation))


@pytest.mark.parametrize(
    "matrix,text",
    [
        (torch.diag(torch.tensor([0.5, 2.0])), "|eig|∈[0.5, 2], ‖·‖₂=2"),
        (torch.diag(torch.tensor([0.9, 0.95])), "|eig|∈[0.9, 0.95], ‖·‖₂=0.95"),
        # Jordan block: both eigenvalues 0.5, ‖·‖₂ = (1 + √2)/2 by hand
        (torch.tensor([[0.5, 1.0], [0.0, 0.5]]), "|eig|=0.5, ‖·‖₂=1.21"),
        # 64 wide is still described by its spectrum, not by ‖·‖_F/√d
        (torch.diag(torch.linspace(0.25, 1.0, 64)), "|eig|∈[0.25, 1], ‖·‖₂=1"),
    ],
)
def test_repr_of_a_matrix_with_unequal_moduli_or_a_non_normal_one(matrix, text):
    """The repr gives the range of |eig| and the spectral norm, computed by hand here."""
    width = matrix.shape[0]
    assert f"state=custom({text})" in repr(SSMUpdate(width, state=matrix))
