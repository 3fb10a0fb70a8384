r"""Layer Jacobians: dense for small graphs, matrix-free spectra for large ones.

For a layer :math:`H^{(\ell+1)} = f(G, H^{(\ell)})` with :math:`H \in \mathbb{R}^{n \times d}`,
the layer Jacobian is

.. math::
    J = \frac{\partial\, \mathrm{vec}(H^{(\ell+1)})}{\partial\, \mathrm{vec}(H^{(\ell)})}
    \in \mathbb{R}^{nd \times nd},

with ``vec`` the row-major flattening (entry ``(i, k)`` of ``H`` is coordinate ``i·d + k``).
For the linear GCN layer :math:`\tilde A H W` this is :math:`J = \tilde A \otimes W^\top`
(the paper writes :math:`W^\top \otimes \tilde A` for the column-major ``vec``), whose
singular values are :math:`\sigma_i(\tilde A)\,\sigma_j(W)` (:math:`|\lambda_i(\tilde A)|\,
\sigma_j(W)` for an undirected graph, whose :math:`\tilde A` is symmetric). For the GNN-SSM layer
:math:`H \Lambda^\top + \sigma(F(G, H)) B^\top` it is
:math:`I_n \otimes \Lambda + (I_n \otimes B)\, \mathrm{diag}(\sigma'(F))\, J_F`, with
:math:`J_F` the conv's Jacobian.

The Jacobian is taken at a fixed linearisation point ``feat``, with a copy of the layer in
eval mode (no dropout, BatchNorm with its running statistics), in float64 by default; the
layer given is never modified. Edge features (GatedGCN) are held fixed: the Jacobian is the
one with respect to the node states only.

Products with :math:`J` and :math:`J^\top` come from autograd without ever forming the
:math:`(nd)^2` matrix: :math:`J^\top u` is one backward pass, :math:`J v` the derivative of
that (linear) backward pass with respect to ``u``. Every linearisation checks
:math:`\langle u, Jv\rangle = \langle J^\top u, v\rangle` once; when a DGL operator's backward
is not itself differentiable (GAT's edge softmax), :math:`Jv` falls back to central finite
differences in the working precision, with a ``RuntimeWarning``.
"""

import copy
import math
import warnings

import dgl
import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from torch import nn

from ..checks import check_count, check_features, check_options, check_real, is_int
from ._common import check_dtype, node_state
from .spectra import components, coordinate_blocks, is_block_diagonal, largest_of, top_of_spectrum

__all__ = [
    "DEFAULT_MAX_DIM",
    "dense_layer_jacobian",
    "layer_jacobian_operator",
    "spectral_density",
    "top_eigenvalue_moduli",
    "top_singular_values",
]

#: Largest ``n·d`` for which :func:`dense_layer_jacobian` builds the matrix by default
#: (4096² float64 entries = 128 MiB, and one backward pass per row).
DEFAULT_MAX_DIM = 4096

_MATRIX_FREE = "top_singular_values, top_eigenvalue_moduli or spectral_density"

# Keyword arguments held one row an edge (DGL's name for edge weights): a node subgraph takes
# the rows of its edges, so a layer reading them can still be cut into components.
_PER_EDGE_KWARGS = ("edge_weight",)


def _cast(value, dtype):
    if isinstance(value, torch.Tensor):
        value = value.detach()
        return value.to(dtype) if dtype is not None and torch.is_floating_point(value) else value
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, dtype) for v in value)
    if isinstance(value, dict):
        return {key: _cast(v, dtype) for key, v in value.items()}
    return value


def _layer_function(layer, graph, feat, edge_feat, layer_kwargs, dtype, who):
    """``h ↦ node states of layer(graph, h[, edge_feat], **kwargs)`` on a frozen copy."""
    check_dtype(dtype, who)
    check_features(graph, feat, who)
    if isinstance(layer, nn.Module):
        layer = copy.deepcopy(layer)
        if dtype is not None:
            layer.to(dtype)
        layer.eval()
    elif not callable(layer):
        raise TypeError(f"{who}: layer must be a module or a callable, got {type(layer)}.")
    feat = _cast(feat, dtype)
    edge_feat = _cast(edge_feat, dtype)
    kwargs = _cast(check_options(layer_kwargs, "layer_kwargs", "{'edge_weight': w}", who), dtype)

    def on(graph, edge_feat, kwargs):
        def function(h):
            if edge_feat is None:
                return node_state(layer(graph, h, **kwargs))
            return node_state(layer(graph, h, edge_feat, **kwargs))

        return function

    def on_nodes(nodes):
        """The same layer on the subgraph ``nodes`` induce, with its point; None when the
        layer also reads tensors other than DGL's per-edge ``edge_weight`` in its keyword
        arguments, or reads a list of hop graphs (a cumulative k-hop layer)."""
        per_edge = {name for name in _PER_EDGE_KWARGS if kwargs.get(name) is not None}
        if not isinstance(graph, dgl.DGLGraph) or any(
            _has_tensor(value) for name, value in kwargs.items() if name not in per_edge
        ):
            return None
        index = torch.as_tensor(nodes, dtype=graph.idtype, device=graph.device)
        sub = dgl.node_subgraph(graph, index)
        edges = sub.edata[dgl.EID].long()
        sub_edge_feat = None if edge_feat is None else edge_feat[edges]
        sub_kwargs = dict(kwargs)
        for name in per_edge:
            value = kwargs[name]
            if not isinstance(value, torch.Tensor) or value.shape[:1] != (graph.num_edges(),):
                return None
            sub_kwargs[name] = value[edges]
        return on(sub, sub_edge_feat, sub_kwargs), feat[index.long()]

    return on(graph, edge_feat, kwargs), feat, on_nodes


def _has_tensor(value):
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_tensor(v) for v in value)
    return isinstance(value, dict) and any(_has_tensor(v) for v in value.values())


class _Linearization:
    """Products with J and Jᵀ of ``function`` at ``point`` (one forward pass, kept).
    ``quiet`` leaves the finite-difference notice to another linearisation of the layer."""

    def __init__(self, function, point, seed=0, quiet=False, on_nodes=None):
        self.function, self.quiet = function, quiet
        self.on_nodes = on_nodes  # the same layer on a node subset's subgraph (see _layer_function)
        self.point = point.clone()
        self.x = point.clone().requires_grad_(True)
        with torch.enable_grad():
            self.y = function(self.x)
        if not isinstance(self.y, torch.Tensor):
            raise TypeError("The layer must return a tensor (or an (h, e) tuple).")
        self.shape = (self.y.numel(), self.x.numel())
        self.dtype = self.y.dtype
        self.finite_differences = False
        self._u = self._g = None
        if self.y.requires_grad:
            self._check_adjoint(seed)

    # Jᵀ u: one backward pass through the recorded forward pass.
    def rmatvec(self, u):
        if not self.y.requires_grad:
            return torch.zeros_like(self.x)
        u = u.reshape(self.y.shape).to(self.dtype)
        (grad,) = torch.autograd.grad(self.y, self.x, u, retain_graph=True, allow_unused=True)
        return torch.zeros_like(self.x) if grad is None else grad

    # J v: the derivative of u ↦ Jᵀu (linear in u) in the direction v; or central differences.
    def matvec(self, v):
        v = v.reshape(self.x.shape).to(self.dtype)
        if not self.y.requires_grad:
            return torch.zeros_like(self.y)
        if self.finite_differences:
            return self._central_difference(v)
        if self._g is None:
            with torch.enable_grad():
                self._u = torch.zeros_like(self.y, requires_grad=True)
                (self._g,) = torch.autograd.grad(
                    self.y, self.x, self._u, create_graph=True, allow_unused=True
                )
            if self._g is None or not self._g.requires_grad:
                self._use_finite_differences()
                return self._central_difference(v)
        (jv,) = torch.autograd.grad(self._g, self._u, v, retain_graph=True, allow_unused=True)
        return torch.zeros_like(self.y) if jv is None else jv

    def _central_difference(self, v):
        scale = float(v.abs().max())
        if scale == 0.0:
            return torch.zeros_like(self.y)
        eps = torch.finfo(self.dtype).eps ** (1 / 3)
        step = eps * (1.0 + float(self.point.abs().max())) / scale
        with torch.no_grad():
            plus = self.function(self.point + step * v)
            minus = self.function(self.point - step * v)
        return (plus - minus) / (2 * step)

    def _check_adjoint(self, seed):
        generator = torch.Generator().manual_seed(seed)
        u = _normal_like(self.y, generator, self.dtype)
        v = _normal_like(self.x, generator, self.dtype)
        jv, jtu = self.matvec(v), self.rmatvec(u)
        if self.finite_differences:
            return
        lhs, rhs = float((u * jv).sum()), float((jtu * v).sum())
        scale = float(u.norm() * jv.norm() + jtu.norm() * v.norm()) / 2
        rtol = 1e-7 if self.dtype == torch.float64 else 1e-3
        if abs(lhs - rhs) > rtol * scale + 1e-300:
            self._use_finite_differences()

    def _use_finite_differences(self):
        self.finite_differences = True
        if self.quiet:
            return
        warnings.warn(
            "A DGL operator of this layer has a backward pass that is not differentiable "
            "itself (e.g. GAT's edge softmax), so Jacobian-vector products J·v use central "
            f"finite differences in {self.dtype} (relative error about "
            f"{torch.finfo(self.dtype).eps ** (2 / 3):.0e} away from ReLU kinks).",
            RuntimeWarning,
            stacklevel=5,
        )


def _linearize(layer, graph, feat, edge_feat, layer_kwargs, dtype, who, seed=0):
    if not is_int(seed):
        raise TypeError(f"{who}: seed must be an integer, got {seed!r}.")
    function, point, on_nodes = _layer_function(
        layer, graph, feat, edge_feat, layer_kwargs, dtype, who
    )
    return _Linearization(function, point, seed, on_nodes=on_nodes)


def layer_jacobian_operator(
    layer, graph, feat, edge_feat=None, *, layer_kwargs=None, dtype=torch.float64
):
    r"""The layer Jacobian at ``feat`` as a matrix-free :class:`scipy.sparse.linalg.LinearOperator`.

    ``op @ v`` is :math:`J v` and ``op.rmatvec(u)`` is :math:`J^\top u` for flat (row-major)
    NumPy vectors; each costs about one backward pass of the layer. Use it with any SciPy
    iterative solver (``svds``, ``eigs``, ``eigsh``, ``lsqr`` …).

    Parameters
    ----------
    layer : torch.nn.Module or callable
        Called as ``layer(graph, h)`` (or ``layer(graph, h, edge_feat)``), returning the new
        node states or an ``(h, e)`` tuple. Modules are copied, cast to ``dtype`` and put in
        eval mode; the layer itself is left as it was.
    graph : dgl.DGLGraph or list of dgl.DGLGraph
        The graph the layer reads (for a k-hop layer: its hop graph, or for a cumulative one
        the list of its hop graphs; see :func:`~dgl_ssm.analysis.layer_inputs`).
    feat : torch.Tensor
        The linearisation point :math:`H^{(\ell)}`, shape ``(n, d)``.
    edge_feat : torch.Tensor, optional
        Edge features, held fixed.
    layer_kwargs : dict, optional
        Extra keyword arguments of the layer (held fixed).
    dtype : torch.dtype or None, default torch.float64
        Working precision (default float64); ``None`` keeps the layer's.

    Returns
    -------
    scipy.sparse.linalg.LinearOperator
        Of shape ``(n·d_out, n·d_in)`` and the working precision's dtype.

    Examples
    --------
    >>> import dgl, numpy as np, torch
    >>> from dgl.nn import GraphConv
    >>> from dgl_ssm import SSMLayer
    >>> from dgl_ssm.analysis import layer_jacobian_operator
    >>> g = dgl.add_self_loop(dgl.to_bidirected(dgl.graph(([0, 1, 2], [1, 2, 3]))))
    >>> op = layer_jacobian_operator(SSMLayer(GraphConv(2, 2), 2), g, torch.randn(4, 2))
    >>> op.shape, (op @ np.ones(8)).shape
    ((8, 8), (8,))
    """
    lin = _linearize(layer, graph, feat, edge_feat, layer_kwargs, dtype, "layer_jacobian_operator")
    return _as_operator(lin)


def _as_operator(lin):
    device = lin.x.device

    def matvec(v):
        v = torch.from_numpy(np.ascontiguousarray(np.asarray(v).reshape(-1))).to(device)
        return lin.matvec(v).reshape(-1).detach().cpu().numpy()

    def rmatvec(u):
        u = torch.from_numpy(np.ascontiguousarray(np.asarray(u).reshape(-1))).to(device)
        return lin.rmatvec(u).reshape(-1).detach().cpu().numpy()

    np_dtype = torch.empty((), dtype=lin.dtype).numpy().dtype
    return LinearOperator(lin.shape, matvec=matvec, rmatvec=rmatvec, dtype=np_dtype)


def dense_layer_jacobian(
    layer,
    graph,
    feat,
    edge_feat=None,
    *,
    layer_kwargs=None,
    dtype=torch.float64,
    max_dim=DEFAULT_MAX_DIM,
):
    r"""The full layer Jacobian :math:`\partial\,\mathrm{vec}(H')/\partial\,\mathrm{vec}(H)`.

    Built row by row with autograd (one backward pass per row), so meant for small graphs:
    requests with more than ``max_dim`` rows or columns are refused. For large graphs use the
    matrix-free :func:`top_singular_values`, :func:`top_eigenvalue_moduli` or
    :func:`spectral_density`.

    Parameters
    ----------
    layer, graph, feat, edge_feat, layer_kwargs, dtype
        As for :func:`layer_jacobian_operator`.
    max_dim : int, default DEFAULT_MAX_DIM
        Largest allowed ``n·d`` (default 4096).

    Returns
    -------
    torch.Tensor
        Shape ``(n·d_out, n·d_in)``; entry ``[i·d_out + k, j·d_in + l]`` is
        :math:`\partial H'_{ik} / \partial H_{jl}`.

    Examples
    --------
    The linear GCN layer :math:`\tilde A H W` has :math:`J = \tilde A \otimes W^\top`:

    >>> import dgl, torch
    >>> from dgl.nn import GraphConv
    >>> from dgl_ssm import PlainUpdate, SSMLayer
    >>> from dgl_ssm.analysis import dense_layer_jacobian
    >>> g = dgl.add_self_loop(dgl.to_bidirected(dgl.graph(([0, 1, 2], [1, 2, 3]))))
    >>> conv = GraphConv(2, 2, bias=False)
    >>> layer = SSMLayer(conv, 2, PlainUpdate("identity"))
    >>> J = dense_layer_jacobian(layer, g, torch.randn(4, 2))
    >>> src, dst = g.edges()
    >>> adj = torch.zeros(4, 4, dtype=torch.float64)
    >>> adj[dst, src] = 1.0
    >>> deg = adj.sum(1)
    >>> a_hat = adj / torch.outer(deg, deg).sqrt()  # D^-1/2 (A + I) D^-1/2
    >>> torch.allclose(J, torch.kron(a_hat, conv.weight.double().t().contiguous()))
    True
    """
    who = "dense_layer_jacobian"
    max_dim = check_count(max_dim, "max_dim", who=who)
    function, point, _ = _layer_function(layer, graph, feat, edge_feat, layer_kwargs, dtype, who)
    n_in = point.numel()
    if n_in > max_dim:
        _refuse(who, n_in, n_in, max_dim, point.element_size())
    x = point.clone().requires_grad_(True)
    with torch.enable_grad():
        y = function(x)
    n_out = y.numel()
    if n_out > max_dim:
        _refuse(who, n_out, n_in, max_dim, point.element_size())
    jac = torch.zeros(n_out, n_in, dtype=y.dtype, device=y.device)
    if not y.requires_grad:
        return jac
    flat = y.reshape(-1)
    for row in range(n_out):
        (grad,) = torch.autograd.grad(flat[row], x, retain_graph=True, allow_unused=True)
        if grad is not None:
            jac[row] = grad.reshape(-1)
    return jac


def _refuse(who, rows, cols, max_dim, itemsize):
    size_gb = rows * cols * itemsize / 2**30
    raise ValueError(
        f"{who}: the dense Jacobian of this layer would be {rows:,} × {cols:,} "
        f"({size_gb:,.1f} GiB, one backward pass per row), above max_dim={max_dim:,}. Use the "
        f"matrix-free {_MATRIX_FREE} instead, or pass a larger max_dim if you have the memory "
        "and the time."
    )


def top_singular_values(
    layer,
    graph,
    feat,
    k=10,
    *,
    edge_feat=None,
    layer_kwargs=None,
    dtype=torch.float64,
    tol=1e-8,
    maxiter=None,
    seed=0,
    return_residuals=False,
):
    r"""The ``k`` largest singular values of the layer Jacobian, matrix-free.

    ARPACK (:func:`scipy.sparse.linalg.svds`) on the operator of
    :func:`layer_jacobian_operator`: Lanczos on :math:`J^\top J`, each step one product with
    :math:`J` and one with :math:`J^\top` (two backward passes), never forming :math:`J`.
    Repeated values come with every copy (see :mod:`dgl_ssm.analysis.spectra`): the Jacobian
    is split into one block per connected component, small blocks are decomposed densely,
    and on each large block ARPACK is run again with the directions found so far projected
    out until nothing above the k-th value is left. Accuracy: on the tests' graphs (10
    disjoint 4-cycles, Cora) every value agrees with a dense computation within 1e-6 (to
    about ``tol``·‖J‖); ``return_residuals`` gives ‖Jᵀu − σv‖ of each triple as a check.
    The spectral norm :math:`\|J\|_2` is the first value; it bounds how much one layer can
    amplify a perturbation, and :math:`\prod_\ell \|J_\ell\|_2` bounds the gradient through
    a stack.

    Parameters
    ----------
    layer, graph, feat, edge_feat, layer_kwargs, dtype
        As for :func:`layer_jacobian_operator`.
    k : int, default 10
        How many values (all ``n·d`` of them when ``k`` reaches ``n·d``, if no connected
        component spans more than 4 096 coordinates: a ``k`` within 2 of a larger one's
        size raises ``ValueError``, as :func:`dense_layer_jacobian` would).
    tol, maxiter : float, int, default 1e-8, None
        ARPACK's relative tolerance and iteration limit (None: ARPACK's own).
    seed : int, default 0
        Seed of the start vectors and probes (results are deterministic).
    return_residuals : bool, default False
        Also return the residual norm of each singular triple (0 up to rounding when exact).

    Returns
    -------
    torch.Tensor or (torch.Tensor, torch.Tensor)
        ``k`` singular values, float64, in decreasing order, and their residual norms if asked.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl.nn import GraphConv
    >>> from dgl_ssm import SSMLayer
    >>> from dgl_ssm.analysis import top_singular_values
    >>> g = dgl.add_self_loop(dgl.rand_graph(30, 90))
    >>> layer = SSMLayer(GraphConv(8, 8), 8)  # Λ = I, B = 0.1·I
    >>> s = top_singular_values(layer, g, torch.randn(30, 8), k=3)
    >>> s.shape, bool(s[0] >= s[1] >= s[2] > 0)
    (torch.Size([3]), True)
    """
    who = "top_singular_values"
    lin = _linearize(layer, graph, feat, edge_feat, layer_kwargs, dtype, who, seed)
    k = check_count(k, "k", who=who)
    values, residuals = _top_of_spectrum(lin, graph, k, "singular", tol, maxiter, None, seed, who)
    values = torch.from_numpy(np.abs(values).copy()).double()
    return (values, torch.from_numpy(residuals.copy())) if return_residuals else values


def top_eigenvalue_moduli(
    layer,
    graph,
    feat,
    k=10,
    *,
    edge_feat=None,
    layer_kwargs=None,
    dtype=torch.float64,
    tol=1e-8,
    maxiter=None,
    ncv=None,
    seed=0,
    return_eigenvalues=False,
    return_residuals=False,
):
    r"""The ``k`` eigenvalues of largest modulus of the (square) layer Jacobian, matrix-free.

    Implicitly restarted Arnoldi (:func:`scipy.sparse.linalg.eigs`, ``which="LM"``) on the
    products :math:`J v`, per connected component and with deflation as in
    :func:`top_singular_values`, so a repeated eigenvalue comes with every copy; the values
    are the Rayleigh–Ritz values of the invariant subspace found. The moduli
    :math:`|\lambda|` say whether the layer map is locally contracting
    (:math:`|\lambda| < 1`), neutral (:math:`\approx 1`, the GNN-SSM "edge of chaos") or
    expanding.

    Parameters
    ----------
    layer, graph, feat, edge_feat, layer_kwargs, dtype
        As for :func:`layer_jacobian_operator`; the layer must map width ``d`` to ``d``.
    k : int, default 10
        How many eigenvalues (all ``n·d`` of them when ``k`` reaches ``n·d``; see
        :func:`top_singular_values` for components over 4 096 coordinates).
    tol, maxiter, seed
        As for :func:`top_singular_values`.
    ncv : int, optional
        Size of the Arnoldi basis; default ``max(4k, 40)``. A small basis can converge to
        the wrong eigenvalues when many moduli are close (non-normal Jacobians).
    return_eigenvalues : bool, default False
        Also return the complex eigenvalues, in the same order.
    return_residuals : bool, default False
        Also return the residual norm ‖Jx − λx‖ (‖x‖ = 1) of each eigenpair.

    Returns
    -------
    torch.Tensor or tuple
        Moduli in decreasing order (float64), then the eigenvalues (complex128) and the
        residual norms (float64) if asked, in that order.

    Examples
    --------
    With Λ = I and B = 0, the GNN-SSM layer is the identity map:

    >>> import dgl, torch
    >>> from dgl.nn import GraphConv
    >>> from dgl_ssm import SSMLayer, SSMUpdate
    >>> from dgl_ssm.analysis import top_eigenvalue_moduli
    >>> g = dgl.add_self_loop(dgl.rand_graph(20, 60))
    >>> layer = SSMLayer(GraphConv(4, 4), 4, SSMUpdate(4, input_scale=0.0))
    >>> top_eigenvalue_moduli(layer, g, torch.randn(20, 4), k=3)
    tensor([1., 1., 1.], dtype=torch.float64)
    """
    who = "top_eigenvalue_moduli"
    lin = _linearize(layer, graph, feat, edge_feat, layer_kwargs, dtype, who, seed)
    k = check_count(k, "k", who=who)
    if lin.shape[0] != lin.shape[1]:
        raise ValueError(
            f"{who}: eigenvalues need a square Jacobian, but the layer maps {lin.shape[1]:,} "
            f"inputs to {lin.shape[0]:,} outputs (its width changes). Use "
            "top_singular_values instead."
        )
    values, residuals = _top_of_spectrum(lin, graph, k, "eigen", tol, maxiter, ncv, seed, who)
    values = torch.from_numpy(np.asarray(values, dtype=np.complex128).copy())
    result = (values.abs().double(),)
    if return_eigenvalues:
        result += (values,)
    if return_residuals:
        result += (torch.from_numpy(residuals.copy()),)
    return result if len(result) > 1 else result[0]


def _check_solver_options(tol, maxiter, ncv, k, who):
    """Refuse ARPACK options it would reject deep inside (or, on graphs whose blocks are all
    solved densely, that would pass unnoticed until a larger graph)."""
    check_real(tol, "tol", "a finite number ≥ 0 (0: machine precision)",
               lambda t: 0 <= t < math.inf, who)  # fmt: skip
    if maxiter is not None:
        check_count(maxiter, "maxiter", who=who)
    if ncv is not None:
        check_count(ncv, "ncv (the Arnoldi basis size, above k + 1)", least=k + 2, who=who)


def _top_of_spectrum(lin, graph, k, kind, tol, maxiter, ncv, seed, who):
    _check_solver_options(tol, maxiter, ncv, k, who)
    op = _as_operator(lin)
    num_nodes = lin.x.shape[0]
    members = components(graph, *lin.shape, num_nodes)
    blocks = coordinate_blocks(members, *lin.shape, num_nodes) if members else []
    if not blocks or not is_block_diagonal(op, blocks, seed):
        members, blocks = None, [(np.arange(lin.shape[0]), np.arange(lin.shape[1]))]
    largest = max(max(rows.size, cols.size) for rows, cols in blocks)
    if largest > DEFAULT_MAX_DIM and k >= largest - 2:
        # (ARPACK finds at most size − 2 values: all of them is the dense decomposition)
        raise ValueError(
            f"{who}: k={k:,} asks for all the values of a connected component of {largest:,} "
            f"coordinates, which only the dense Jacobian gives, and it is above "
            f"{DEFAULT_MAX_DIM:,} × {DEFAULT_MAX_DIM:,}. Ask for k < {largest - 2:,}, or "
            "use dense_layer_jacobian with a larger max_dim if you have the memory and time."
        )
    options = dict(tol=tol, maxiter=maxiter, ncv=ncv, seed=seed)
    parts = []
    local = _on_small_components(lin, members, seed) if members and len(members) > 1 else None
    if local is not None:
        # Every block but the largest comes from the layer on the subgraph those components
        # induce: each product then costs a pass over them only, not over the whole graph
        # (Cora: 77 small components, 223 of 2708 nodes).
        sub_lin, sub_members, biggest = local
        sub_blocks = coordinate_blocks(sub_members, *sub_lin.shape, sub_lin.x.shape[0])
        parts.append(top_of_spectrum(_as_operator(sub_lin), sub_blocks, k, kind, **options))
        blocks = [blocks[biggest]]
    parts.append(top_of_spectrum(op, blocks, k, kind, **options))
    return largest_of(parts, k)


def _normal_like(tensor, generator, dtype):
    """N(0, 1) draws of ``tensor``'s shape from a CPU ``generator`` (the same numbers whatever
    the device), put on ``tensor``'s device."""
    return torch.randn(tensor.shape, generator=generator, dtype=dtype, device="cpu").to(
        tensor.device
    )


def _on_small_components(lin, members, seed):
    """The linearisation on the subgraph of every component but the largest, the components
    in its numbering, and the largest one's index; None if the layer cannot be cut there.

    The cut is kept only if, at those nodes, the subgraph gives the whole graph's outputs and
    the whole graph's Jᵀu for a random u: a layer that reads more than its edges (the graph's
    size, all nodes' statistics) fails one of the two, almost surely."""
    biggest = int(np.argmax([nodes.size for nodes in members]))
    rest = [nodes for i, nodes in enumerate(members) if i != biggest]
    nodes = np.concatenate(rest)
    local = lin.on_nodes(nodes)
    if local is None:
        return None
    # Quiet: the whole graph's linearisation has said it already. Not `catch_warnings`,
    # which would reset Python's once-per-place registry and repeat the notice every call.
    sub_lin = _Linearization(*local, seed, quiet=True)
    index = torch.as_tensor(nodes, device=lin.y.device)
    whole = lin.y[index]
    if sub_lin.y.shape != whole.shape or not _same(sub_lin.y, whole):
        return None
    u = torch.zeros_like(lin.y)
    u[index] = _normal_like(whole, torch.Generator().manual_seed(seed), lin.dtype)
    if not _same(sub_lin.rmatvec(u[index]), lin.rmatvec(u)[index]):
        return None
    return sub_lin, _numbered(rest), biggest


def _same(a, b):
    """Equal up to rounding (the same sums, perhaps in another order)."""
    eps = torch.finfo(a.dtype).eps
    return torch.allclose(a, b, rtol=64 * eps, atol=64 * eps * float(b.abs().max()))


def _numbered(groups):
    """``groups`` of nodes renumbered 0, 1, 2, … in order, as the subgraph numbers them."""
    bounds = np.cumsum([0] + [group.size for group in groups])
    return [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def spectral_density(
    layer,
    graph,
    feat,
    *,
    edge_feat=None,
    layer_kwargs=None,
    dtype=torch.float64,
    num_probes=10,
    lanczos_steps=60,
    num_points=256,
    bandwidth=None,
    seed=0,
):
    r"""Estimated density of the singular values of the layer Jacobian (stochastic Lanczos
    quadrature), matrix-free.

    For ``num_probes`` Rademacher vectors :math:`z`, ``lanczos_steps`` Lanczos steps on
    :math:`A = J^\top J` from :math:`z/\|z\|` give a tridiagonal :math:`T = V \Theta V^\top`;
    its Ritz values :math:`\theta_j` with weights :math:`\tau_j = V_{1j}^2` are a Gauss
    quadrature of the spectral measure of :math:`A` seen from :math:`z`, whose average over
    :math:`z` is the eigenvalue distribution :math:`\frac{1}{N}\sum_i \delta_{\lambda_i(A)}`
    (Lin, Saad & Yang 2016). With :math:`\sigma_j = \sqrt{\theta_j}`,

    .. math::
        p(\sigma) \approx \frac{1}{n_{\text{probes}}} \sum_{z} \sum_j \tau_j\,
        \frac{1}{h}\,\varphi\!\Big(\frac{\sigma - \sigma_j}{h}\Big),

    :math:`\varphi` the standard normal density, so :math:`\int p = 1` (a density of the
    fraction of the :math:`N = n d` singular values; mass that the kernel puts below 0 is
    folded back). Cost: ``2 · num_probes · lanczos_steps`` backward passes.

    Parameters
    ----------
    layer, graph, feat, edge_feat, layer_kwargs, dtype
        As for :func:`layer_jacobian_operator`.
    num_probes, lanczos_steps : int, default 10, 60
        Random probes and Lanczos steps per probe (full reorthogonalisation).
    num_points : int, default 256
        Size of the grid, from 0 to a little beyond the largest Ritz singular value.
    bandwidth : float, optional
        Kernel width :math:`h`; default 2.5 % of the largest singular value.
    seed : int, default 0
        Seed of the probes.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``grid`` and ``density``, float64, each of length ``num_points``.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl.nn import GraphConv
    >>> from dgl_ssm import SSMLayer
    >>> from dgl_ssm.analysis import spectral_density
    >>> g = dgl.add_self_loop(dgl.rand_graph(30, 90))
    >>> layer = SSMLayer(GraphConv(4, 4), 4)
    >>> feat = torch.randn(30, 4)
    >>> grid, density = spectral_density(layer, g, feat, num_probes=4, lanczos_steps=30)
    >>> mass = torch.trapezoid(density, grid).item()
    >>> round(mass, 2)
    1.0
    """
    who = "spectral_density"
    num_probes = check_count(num_probes, "num_probes", who=who)
    lanczos_steps = check_count(lanczos_steps, "lanczos_steps", who=who)
    num_points = check_count(num_points, "num_points", least=2, who=who)
    if bandwidth is not None:  # checked before the Lanczos runs, not after
        check_real(bandwidth, "bandwidth", "a finite number > 0", lambda b: 0 < b < math.inf, who)
    lin = _linearize(layer, graph, feat, edge_feat, layer_kwargs, dtype, who, seed)
    size = lin.shape[1]
    steps = min(lanczos_steps, size)
    rng = np.random.default_rng(seed)
    device = lin.x.device

    def gram(v):
        v = torch.from_numpy(v).to(device=device, dtype=lin.dtype)
        return lin.rmatvec(lin.matvec(v)).reshape(-1).double().cpu().numpy()

    nodes, weights = [], []
    for _ in range(num_probes):
        probe = rng.choice([-1.0, 1.0], size=size)
        theta, tau = _lanczos_quadrature(gram, probe / np.linalg.norm(probe), steps)
        nodes.append(np.sqrt(np.clip(theta, 0.0, None)))
        weights.append(tau / num_probes)
    nodes, weights = np.concatenate(nodes), np.concatenate(weights)
    top = float(nodes.max()) if nodes.size else 0.0
    width = bandwidth if bandwidth is not None else max(0.025 * top, 1e-12)
    grid = np.linspace(0.0, top + 3 * width, num_points)
    diff = (grid[:, None] - nodes[None, :]) / width
    mirror = (grid[:, None] + nodes[None, :]) / width  # fold the mass below 0 back
    kernel = (np.exp(-0.5 * diff**2) + np.exp(-0.5 * mirror**2)) / (width * np.sqrt(2 * np.pi))
    density = kernel @ weights
    return torch.from_numpy(grid), torch.from_numpy(density)


def _lanczos_quadrature(apply, start, steps):
    """Gauss quadrature nodes and weights of the spectral measure of ``apply`` at ``start``."""
    basis = np.zeros((steps, start.size))
    alpha, beta = [], []
    q, previous, b = start, np.zeros_like(start), 0.0
    for j in range(steps):
        basis[j] = q
        w = apply(q) - b * previous
        a = float(q @ w)
        w -= a * q
        w -= basis[: j + 1].T @ (basis[: j + 1] @ w)  # full reorthogonalisation
        alpha.append(a)
        b = float(np.linalg.norm(w))
        if j == steps - 1 or b <= 1e-12 * max(abs(a), 1.0):
            break
        beta.append(b)
        previous, q = q, w / b
    tridiagonal = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    theta, vectors = np.linalg.eigh(tridiagonal)
    return theta, vectors[0] ** 2
