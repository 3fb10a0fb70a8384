"""The state-space update of GNN-SSM and the plain update of its twins.

A deep GNN layer here is ``H' = update(H, F(G, H))`` where ``F`` is any message-passing
conv. :class:`SSMUpdate` is the GNN-SSM rule ``H Λᵀ + σ(F) Bᵀ`` with Λ and B frozen;
:class:`PlainUpdate` is the ordinary ``σ(F)`` (optionally ``+ H``). Both share one layer
wrapper (:class:`dgl_ssm.SSMLayer`), so a plain model and its SSM twin differ only here.
"""

import math

import torch
from torch import nn

from .activations import get_activation
from .checks import check_count, check_flag, check_real, unknown_name

MATRIX_KINDS = ("identity", "orthogonal", "random")


def autocasting(device):
    """Whether torch.autocast is on for ``device``'s type (it then casts each op's inputs)."""
    return torch.is_autocast_enabled() if device.type == "cuda" else torch.is_autocast_cpu_enabled()


def build_matrix(kind, dim, scale=1.0, generator=None, *, role="SSM"):
    r"""Build a frozen ``dim × dim`` matrix for Λ or B.

    Parameters
    ----------
    kind : str or torch.Tensor
        ``"identity"``: :math:`s I` (every eigenvalue equals ``scale``).
        ``"orthogonal"``: :math:`s Q` with :math:`Q` a random orthogonal matrix (every
        eigenvalue has modulus ``scale``; the map preserves norms when ``scale = 1``).
        ``"random"``: a Kaiming-uniform matrix (as ``torch.nn.Linear`` initialises its weight)
        times ``scale``, with no control of its eigenvalues.
        A tensor (or NumPy array) is used as given, ``dim × dim``, in torch's default dtype
        like every parameter built beside it. For an exact float64 Λ (a ``.double()``
        model), build under ``torch.set_default_dtype(torch.float64)``: a float32 copy
        would be rounded to ~1e-7.
    dim : int
        The feature width ``d``.
    scale : float, default 1.0
        The factor ``s``.
    generator : torch.Generator, optional
        Source of randomness for the random kinds, so matrices are reproducible.
    role : str, default "SSM"
        What the matrix is, for errors: ``"state"`` (Λ), ``"input"`` (B) or ``"SSM"``.

    Returns
    -------
    torch.Tensor
        The ``dim × dim`` matrix (torch's default dtype, float32 unless changed, for the named
        kinds).

    Examples
    --------
    >>> import torch
    >>> from dgl_ssm import build_matrix
    >>> build_matrix("identity", 2, scale=0.5)
    tensor([[0.5000, 0.0000],
            [0.0000, 0.5000]])
    >>> q = build_matrix("orthogonal", 4, generator=torch.Generator().manual_seed(0))
    >>> torch.allclose(q @ q.T, torch.eye(4), atol=1e-6)
    True
    """
    dim = check_count(dim, "dim (the SSM feature width)")
    if not isinstance(kind, (str, torch.Tensor)) and hasattr(kind, "__array__"):
        kind = torch.as_tensor(kind)  # a NumPy matrix is a custom matrix too
    if isinstance(kind, torch.Tensor):
        if kind.is_complex():  # .to(float) would drop the imaginary part with a mere warning
            raise TypeError(
                f"A custom SSM matrix must be real, got dtype {kind.dtype}: Λ and B act on real "
                "states. For complex eigenvalues a ± bi, pass a real matrix with 2×2 blocks "
                "[[a, -b], [b, a]]."
            )
        matrix = kind.detach().clone().to(torch.get_default_dtype())
        if matrix.shape != (dim, dim):
            raise ValueError(
                f"A custom SSM matrix must be square with the feature width: expected shape "
                f"({dim}, {dim}), got {tuple(matrix.shape)}. Pass a {dim}×{dim} tensor, or a "
                f"kind name from {MATRIX_KINDS}."
            )
        if not bool(torch.isfinite(matrix).all()):
            raise ValueError("A custom SSM matrix must be finite; this one holds NaN or Inf.")
        return matrix
    scale = finite_scale(scale, "scale")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), got "
            f"{type(generator).__name__}; a model takes a seed as ssm_seed=."
        )
    if kind == "identity":
        return scale * torch.eye(dim)
    # Drawn where the generator is (a CPU one fails to draw on CUDA, e.g. under
    # torch.set_default_device("cuda")), then put where torch makes tensors by default.
    drawn_on = None if generator is None else generator.device
    default_device = torch.empty(0).device
    if kind == "orthogonal":
        gaussian = torch.randn(dim, dim, generator=generator, device=drawn_on)
        q, r = torch.linalg.qr(gaussian)
        # Fixing the signs makes Q Haar-distributed rather than biased by the QR convention.
        q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
        return (scale * q).to(default_device)
    if kind == "random":
        bound = 1.0 / math.sqrt(dim)  # kaiming_uniform_(a=√5), nn.Linear's default
        uniform = torch.rand(dim, dim, generator=generator, device=drawn_on)
        return (scale * (2 * uniform - 1) * bound).to(default_device)
    if isinstance(kind, str):
        raise unknown_name(f"{role} matrix kind", kind, MATRIX_KINDS, ", or a square tensor")
    raise TypeError(
        f"Unknown SSM matrix kind {kind!r}. Valid kinds: {', '.join(MATRIX_KINDS)}, "
        f"or a square tensor."
    )


def finite_scale(scale, name):
    # A NaN or Inf scale would give NaN states silently (and hang LAPACK in describe_matrix).
    return float(check_real(scale, f"The SSM matrix {name}", "a finite real number", math.isfinite))


#: Widest matrix whose spectrum ``describe_matrix`` computes (64 × 64: ~1 ms; 512 × 512:
#: ~0.8 s, which a 64-layer model would pay at every ``print``).
DESCRIBED_SPECTRUM_WIDTH = 64


def describe_matrix(matrix):
    """A short text with the spectral radius and the spectral norm of ``matrix``: exact and
    free for m·I; by LAPACK up to :data:`DESCRIBED_SPECTRUM_WIDTH` wide; for a wider matrix
    its RMS singular value ``‖·‖_F/√d`` instead (``abs(m)`` for m × an orthogonal matrix)."""
    if not bool(torch.isfinite(matrix).all()):  # LAPACK may crash or hang on these
        return "not finite"
    scalar = scaled_identity_scalar(matrix)
    if scalar is not None:
        return f"|eig|={abs(scalar):.3g}, ‖·‖₂={abs(scalar):.3g}"
    matrix = matrix.detach().double().cpu()
    if matrix.shape[0] > DESCRIBED_SPECTRUM_WIDTH:
        rms = torch.linalg.matrix_norm(matrix) / matrix.shape[0] ** 0.5
        return f"{matrix.shape[0]}×{matrix.shape[1]}, ‖·‖_F/√d={rms.item():.3g}"
    modulus = torch.linalg.eigvals(matrix).abs()
    norm = torch.linalg.matrix_norm(matrix, ord=2)
    if torch.allclose(modulus, modulus[0].expand_as(modulus), atol=1e-6):
        eig = f"|eig|={modulus[0].item():.3g}"
    else:
        eig = f"|eig|∈[{modulus.min().item():.3g}, {modulus.max().item():.3g}]"
    return f"{eig}, ‖·‖₂={norm.item():.3g}"


class SSMUpdate(nn.Module):
    r"""The GNN-SSM state update with frozen state and input matrices.

    .. math::
        H^{(\ell+1)} = H^{(\ell)} \Lambda^\top + \sigma\big(F(G, H^{(\ell)})\big) B^\top

    Λ and B act on the feature dimension, identically for every node, and are buffers: they
    are saved in ``state_dict()`` but never trained. The layer Jacobian is
    :math:`I_n \otimes \Lambda + (I_n \otimes B)\, \mathrm{diag}(\sigma'(F))\, J_F` (:math:`J_F`
    the conv's Jacobian), so with :math:`\Lambda = I` and a small B its spectrum sits near 1
    and gradients neither vanish nor explode.

    Parameters
    ----------
    dim : int
        Feature width ``d``.
    state : str or torch.Tensor, default "identity"
        Kind of Λ (see :func:`build_matrix`). Default ``"identity"``.
    state_scale : float, default 1.0
        Scale ``m`` of Λ's named kinds: the eigenvalue modulus for the identity and
        orthogonal kinds, a factor on the random one (a tensor Λ is used as given).
        Default 1.
    input : str or torch.Tensor, default "identity"
        Kind of B. Default ``"identity"``.
    input_scale : float, default 0.1
        Scale β of B for the named kinds (a tensor B is used as given). Default 0.1.
    activation : str, nn.Module or callable, default "relu"
        The coupling activation σ: ``"relu"``, ``"tanh"``, ``"identity"``, …
        Default ``"relu"``.
    generator : torch.Generator, optional
        Randomness for random kinds.

    Examples
    --------
    >>> import torch
    >>> from dgl_ssm import SSMUpdate
    >>> update = SSMUpdate(4, state_scale=0.9, input_scale=0.1)
    >>> h, f = torch.ones(3, 4), torch.full((3, 4), -1.0)
    >>> update(h, f)[0]  # 0.9·1 + 0.1·relu(-1)
    tensor([0.9000, 0.9000, 0.9000, 0.9000])
    """

    def __init__(
        self,
        dim,
        state="identity",
        state_scale=1.0,
        input="identity",
        input_scale=0.1,
        activation="relu",
        generator=None,
    ):
        super().__init__()
        state_scale = finite_scale(state_scale, "state_scale")
        input_scale = finite_scale(input_scale, "input_scale")
        state_matrix = build_matrix(state, dim, state_scale, generator, role="state")
        input_matrix = build_matrix(input, dim, input_scale, generator, role="input")
        self.dim = int(dim)
        self.state_kind = state if isinstance(state, str) else "custom"
        self.input_kind = input if isinstance(input, str) else "custom"
        self.activation = get_activation(activation)
        self.register_buffer("state_matrix", state_matrix)
        self.register_buffer("input_matrix", input_matrix)
        self._scalars_of = None  # ((Λ, its version), (B, its version)) the scalars are of

    def scalars(self):
        """``(λ, β)`` where Λ = λI and B = βI (``None`` for a matrix that is not a scaled
        identity): the step then applies them as a multiply-add, with no d×d matmul.

        Read again whenever Λ or B is replaced or changed in place (``load_state_dict``,
        ``copy_``, ``.to()``, ``torch.func.functional_call``), so the step always uses the
        buffers as they are. (An edit through ``.data``, e.g. ``Λ.data.mul_(2)``, bypasses the
        version counter this reads and is not seen: edit the buffer itself, under
        ``torch.no_grad()``.) A Λ or B that is being differentiated or batched (it requires
        grad, or a ``torch.func`` transform wraps it) is applied as a matrix, so its
        gradient flows and ``vmap`` over stacked models works."""
        matrices = (self.state_matrix, self.input_matrix)
        if any(m.requires_grad or is_functorch_wrapped_tensor(m) for m in matrices):
            return None, None  # never cached: such a tensor lives for one call
        now = tuple((m, _version(m)) for m in matrices)
        seen = getattr(self, "_scalars_of", None)  # (absent in modules pickled before it)
        if seen is None or any(
            old is not new or old_version is None or old_version != new_version
            for (old, old_version), (new, new_version) in zip(seen, now)
        ):
            self._scalars = tuple(scaled_identity_scalar(m) for m, _ in now)
            self._scalars_of = now
        return self._scalars

    def __getstate__(self):
        # A copy (deepcopy, pickle, torch.save) reads its scalars from its own buffers: the
        # cache names this module's tensors and their versions, which a copy does not share.
        # (nn.Module's own __getstate__ is torch 2.1+, object's Python 3.11+.)
        base = getattr(super(), "__getstate__", None)
        return {**(self.__dict__ if base is None else base()), "_scalars_of": None,
                "_scalars": None}  # fmt: skip

    def reset_parameters(self):
        """Nothing to reset: Λ and B are fixed by construction."""

    def forward(self, state, conv_out):
        """Return ``state Λᵀ + σ(conv_out) Bᵀ`` for ``(N, d)`` tensors (broadcasting as torch
        does over the leading dimensions)."""
        if state.shape[-1:] != (self.dim,) or conv_out.shape[-1:] != (self.dim,):
            raise ValueError(
                f"SSMUpdate of width {self.dim} got state {tuple(state.shape)} and conv output "
                f"{tuple(conv_out.shape)}; both must end in width {self.dim}. Build the update "
                f"with the conv's width (SSMUpdate({conv_out.shape[-1] if conv_out.dim() else 1}))."
            )
        try:
            return self._step(state, conv_out)
        except RuntimeError:  # checked only then: the step runs once per layer and batch
            self._check_inputs(state, conv_out)  # inputs at fault: say which, and the fix
            raise

    def _step(self, state, conv_out):
        lam, beta = self.scalars()
        if lam is not None and beta is not None and type(self.activation) is nn.ReLU:
            return _ScalarReluStep.apply(state, conv_out, lam, beta)
        coupled = self.activation(conv_out)
        if lam is None:
            carried = state @ self.state_matrix.t()
        elif lam == 1.0:
            carried = state
        else:
            carried = state * lam
        if beta is None:  # one fused kernel, and one dtype rule (addmm's) for every rank
            shape = coupled.shape
            if carried.shape != shape:  # broadcast as torch would (rare: a copy)
                shape = torch.broadcast_shapes(carried.shape, shape)
                carried, coupled = carried.expand(shape), coupled.expand(shape)
            rows = (-1, shape[-1])  # addmm takes matrices: leading dimensions flattened
            out = torch.addmm(carried.reshape(rows), coupled.reshape(rows), self.input_matrix.t())
            return out.view(shape)
        return torch.add(carried, coupled, alpha=beta)

    def _check_inputs(self, state, conv_out):
        """Raise the error that names what is wrong with inputs the step failed on."""
        try:
            torch.broadcast_shapes(state.shape, conv_out.shape)
        except RuntimeError:
            raise ValueError(
                f"SSMUpdate got state {tuple(state.shape)} and conv output "
                f"{tuple(conv_out.shape)}: one row of each per node, so their shapes must match."
            ) from None
        lam, beta = self.scalars()
        matrices = lam is None or beta is None  # (a scalar Λ and B take any float dtype)
        dtype = self.state_matrix.dtype
        for name, tensor in (("state", state), ("conv output", conv_out)):
            # autocast (the one of the tensor's device) casts every float dtype but float64
            cast = autocasting(tensor.device) and torch.float64 not in (tensor.dtype, dtype)
            if not tensor.is_floating_point() or (matrices and not cast and tensor.dtype != dtype):
                raise TypeError(
                    f"SSMUpdate's {name} is {tensor.dtype}, its Λ and B are {dtype}: cast the "
                    f"inputs with .to({dtype}), or the update (the model) with .to(dtype)."
                ) from None

    def extra_repr(self):
        return (
            f"dim={self.dim}, state={self.state_kind}({describe_matrix(self.state_matrix)}), "
            f"input={self.input_kind}({describe_matrix(self.input_matrix)})"
        )


class _ScalarReluStep(torch.autograd.Function):
    r"""``λ·state + β·relu(conv_out)`` (scalar Λ = λI, B = βI) with a hand-written backward.

    Autograd would record relu and the scaled add as two nodes: it keeps relu's output and
    allocates β·grad, then the masked copy of it. Here the backward is one masked copy,
    scaled in place, and the state's gradient is passed on as it is (λ·grad when λ ≠ 1), so
    the step costs the deep stack little more than a plain relu (see
    ``python -m dgl_ssm_bench.perf``). The backward is made of differentiable ops (double
    backward works), and forward mode and ``torch.func`` (``vmap``, ``jacrev``, ``jacfwd``,
    ``jvp``) work as they do for relu.
    """

    @staticmethod
    def forward(state, conv_out, lam, beta):
        carried = state if lam == 1.0 else state * lam
        coupled = torch.relu(conv_out)
        if (
            coupled.shape == torch.broadcast_shapes(carried.shape, coupled.shape)
            and torch.result_type(carried, coupled) == coupled.dtype
        ):
            return torch.add(carried, coupled, alpha=beta, out=coupled)  # one allocation
        return torch.add(carried, coupled, alpha=beta)  # broadcasting or type promotion

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, conv_out, lam, beta = inputs
        ctx.save_for_backward(conv_out)
        ctx.save_for_forward(conv_out)
        ctx.lam, ctx.beta = lam, beta

    @staticmethod
    def backward(ctx, grad):
        (conv_out,) = ctx.saved_tensors
        grad_state = grad_conv = None
        if ctx.needs_input_grad[0]:
            grad_state = grad if ctx.lam == 1.0 else grad * ctx.lam
        if ctx.needs_input_grad[1]:
            # relu's own backward (its mask is conv_out > 0), then β in place.
            grad_conv = torch.ops.aten.threshold_backward(grad, conv_out, 0)
            grad_conv.mul_(ctx.beta)
        return grad_state, grad_conv, None, None

    @staticmethod
    def vmap(info, in_dims, state, conv_out, lam, beta):
        # torch.func.vmap / jacfwd: the ordinary step on the whole batch, with the batch
        # dimension first and each input padded to the same per-sample rank, so that
        # per-sample broadcasting stays what it was.
        inputs = tuple(zip((state, conv_out), in_dims[:2]))
        rank = max(x.dim() - (dim is not None) for x, dim in inputs)
        state, conv_out = (_batch_first(x, dim, rank) for x, dim in inputs)
        return _ScalarReluStep.apply(state, conv_out, lam, beta), 0

    @staticmethod
    def jvp(ctx, state_tangent, conv_tangent, _lam_tangent, _beta_tangent):
        (conv_out,) = ctx.saved_tensors
        tangent = 0
        if state_tangent is not None:
            tangent = state_tangent * ctx.lam
        if conv_tangent is not None:
            masked = torch.ops.aten.threshold_backward(conv_tangent, conv_out, 0)
            tangent = tangent + masked * ctx.beta
        return tangent


def _batch_first(tensor, batch_dim, rank):
    """``tensor`` as ``(batch or 1, 1, …, 1, *sample_shape)`` with ``rank`` sample dims."""
    if batch_dim is None:
        return tensor.reshape((1,) * (rank - tensor.dim() + 1) + tuple(tensor.shape))
    tensor = tensor.movedim(batch_dim, 0)
    return tensor.reshape(
        (tensor.shape[0],) + (1,) * (rank - tensor.dim() + 1) + tuple(tensor.shape[1:])
    )


def is_functorch_wrapped_tensor(tensor):
    """Whether a ``torch.func`` transform (``grad``, ``vmap``) wraps ``tensor``."""
    return torch._C._functorch.is_functorch_wrapped_tensor(tensor)


def _version(tensor):
    """The in-place version counter of ``tensor`` (None for an inference tensor: it has none)."""
    return None if tensor.is_inference() else tensor._version


def scaled_identity_scalar(matrix):
    """m when ``matrix`` is m·I, else None."""
    diagonal = torch.diagonal(matrix)
    if torch.equal(matrix, torch.diag(diagonal)) and bool((diagonal == diagonal[0]).all()):
        return float(diagonal[0])
    return None


class PlainUpdate(nn.Module):
    r"""The ordinary deep-GNN update, for the plain twins of the SSM models.

    .. math::
        H^{(\ell+1)} = \sigma\big(F(G, H^{(\ell)})\big) \; [+\, H^{(\ell)} \text{ if residual}]

    Parameters
    ----------
    activation : str, nn.Module or callable, default "relu"
        The activation σ. Default ``"relu"``.
    residual : bool, default False
        Add the skip connection (the usual deep baseline). Default ``False``.

    Examples
    --------
    >>> import torch
    >>> from dgl_ssm import PlainUpdate
    >>> state, conv_out = torch.ones(2, 3), torch.tensor([[-1.0, 0.0, 2.0]] * 2)
    >>> PlainUpdate("relu", residual=True)(state, conv_out)
    tensor([[1., 1., 3.],
            [1., 1., 3.]])
    """

    def __init__(self, activation="relu", residual=False):
        super().__init__()
        self.activation = get_activation(activation)
        self.residual = check_flag(residual, "residual", who="PlainUpdate")

    def reset_parameters(self):
        """Nothing to reset: the update has no parameters."""

    def forward(self, state, conv_out):
        """``σ(conv_out)``, plus ``state`` with ``residual``."""
        out = self.activation(conv_out)
        if self.residual and out.shape != state.shape:
            raise ValueError(
                f"PlainUpdate(residual=True) adds the state to the conv's output: they must "
                f"have one shape, got state {tuple(state.shape)} and conv output "
                f"{tuple(conv_out.shape)}."
            )
        return out + state if self.residual else out

    def extra_repr(self):
        return f"residual={self.residual}"
