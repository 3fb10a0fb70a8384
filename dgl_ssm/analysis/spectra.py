r"""The top of a layer Jacobian's spectrum with every copy of a repeated value.

A Krylov method started from one vector sees one direction of each eigenspace, so ARPACK
alone returns fewer copies of a repeated top value and fills in smaller ones. Repeats are
the rule for message passing: :math:`\tilde A` has eigenvalue 1 once per connected component
(Cora has 78), and batched or symmetric graphs repeat whole spectra. Two steps make the
answer exact:

1. **Blocks.** A message-passing layer acts on each weakly connected component of its graph
   on its own, so its Jacobian is block diagonal and the spectrum is the union of the
   blocks' spectra. Small blocks (at most ``DENSE_BLOCK`` coordinates) are formed densely
   all at once (one backward pass per row of the largest) and decomposed by LAPACK; each
   larger block is solved matrix-free: by ARPACK, or where ARPACK breaks down on it, densely
   up to ``DENSE_FALLBACK`` coordinates and by block iteration above
   (``subspace_top``). A random probe checks that the layer really is
   block diagonal; if not, the whole Jacobian is one block. Groups of blocks may come from
   different operators, their tops merged by ``largest_of``:
   :mod:`dgl_ssm.analysis.jacobian` takes every component but the largest from the layer on
   the subgraph they induce, so their products do not pass over the whole graph.
2. **Deflation.** On a matrix-free block, ARPACK is run again on the operator with every
   direction found so far projected out (:math:`J P` for singular values, :math:`P J P` for
   eigenvalues, :math:`P = I - QQ^\top`), and the new directions join the basis, until the
   largest value left is not above the k-th one found. Each pass finds at least one more copy
   of anything missing. The values reported come from a Rayleigh–Ritz step on the whole
   basis, with the residual norm of each pair.
"""

import numpy as np
import scipy.linalg
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigs, svds

#: Blocks with at most this many coordinates (n_c·d) are decomposed densely.
DENSE_BLOCK = 512
#: A larger block on which ARPACK fails is decomposed densely up to this size (128 MB).
DENSE_FALLBACK = 4096

# A value of the deflated operator counts as "above the k-th" only beyond this relative margin
# (well above ARPACK's error at tol 1e-8, well below any gap worth reporting).
_MARGIN = 1e-9
# Directions ARPACK returns are unit vectors: a column whose part outside the basis is below
# this is already in it. (An absolute test: relative to the largest column, rounding noise in
# a column that lies in the basis could pass, and be normalised into it.)
_NEW_DIRECTION = 1e-8
# Values of the deflated operator below this fraction of the largest found are zeros: the
# operator has nothing left (k is above the Jacobian's rank), and the rest of the top is 0.
_ZERO = 1e-12


def components(graph, rows, cols, num_nodes):
    """The nodes of each weakly connected component, or None when the Jacobian's shape does
    not split by node (then it is one block). ``graph`` may be a list of graphs on the same
    nodes (a layer that reads several hop graphs): their edges are joined."""
    if rows % num_nodes or cols % num_nodes:
        return None
    graphs = graph if isinstance(graph, (list, tuple)) else [graph]
    edges = [[t.cpu().numpy() for t in one.edges()] for one in graphs]
    src, dst = (np.concatenate(ends) for ends in zip(*edges))
    adjacency = coo_matrix((np.ones(src.size, np.int8), (src, dst)), (num_nodes, num_nodes))
    count, labels = connected_components(adjacency, directed=True, connection="weak")
    order = np.argsort(labels, kind="stable")
    return np.split(order, np.cumsum(np.bincount(labels, minlength=count))[:-1])


def coordinate_blocks(members, rows, cols, num_nodes):
    """Coordinates ``(out_idx, in_idx)`` of the block of each group of nodes in ``members``."""
    d_out, d_in = rows // num_nodes, cols // num_nodes
    return [
        ((nodes[:, None] * d_out + np.arange(d_out)).ravel(),
         (nodes[:, None] * d_in + np.arange(d_in)).ravel())
        for nodes in members
    ]  # fmt: skip


def is_block_diagonal(op, blocks, seed):
    """Whether random probes supported on some of the blocks stay there under J and Jᵀ.
    Probe ``b`` is supported on the blocks whose index has bit ``b`` set, so every two blocks
    are on different sides of one of the ⌈log₂ m⌉ probes and a coupling of any two shows (two
    probes on a random half each missed a coupling of two blocks one time in four)."""
    if len(blocks) == 1:
        return True
    rng = np.random.default_rng(seed)
    index = np.arange(len(blocks))
    for bit in range((len(blocks) - 1).bit_length()):
        chosen = ((index >> bit) & 1).astype(bool)
        out_mask, in_mask = np.zeros(op.shape[0], bool), np.zeros(op.shape[1], bool)
        for (rows, cols), keep in zip(blocks, chosen):
            out_mask[rows], in_mask[cols] = keep, keep
        for apply, inside, allowed in [
            (op.matvec, in_mask, out_mask),
            (op.rmatvec, out_mask, in_mask),
        ]:
            result = apply(np.where(inside, rng.standard_normal(inside.size), 0.0))
            leak = np.abs(result[~allowed]).max(initial=0.0)
            if leak > 1e-10 * max(np.abs(result).max(initial=0.0), 1e-300):
                return False
    return True


def dense_blocks(op, blocks):
    """Each block as a dense matrix, from one backward pass per row of the largest block:
    the blocks do not interact, so row ``i`` of every block comes from one product Jᵀu."""
    mats = [np.zeros((rows.size, cols.size)) for rows, cols in blocks]
    for i in range(max(rows.size for rows, _ in blocks)):
        live = [b for b, (rows, _) in enumerate(blocks) if rows.size > i]
        probe = np.zeros(op.shape[0])
        for b in live:
            probe[blocks[b][0][i]] = 1.0
        row = op.rmatvec(probe)
        for b in live:
            mats[b][i] = row[blocks[b][1]]
    return mats


# Screening margin: eigenvalues without eigenvectors (another LAPACK path) may differ from
# those of dense_eigen in the last digits.
_SCREEN = 1e-4


def _may_hold_top(mats, k):
    """The square blocks that may hold one of the ``k`` largest moduli among all of them (by
    their eigenvalues alone, about a third of the cost of :func:`dense_eigen`): the others'
    values cannot reach the top ``k``, so their eigenvectors and residuals are not needed."""
    tops = [np.sort(np.abs(np.linalg.eigvals(mat)))[::-1][:k] for mat in mats]
    pooled = np.sort(np.concatenate(tops))[::-1]
    if pooled.size == 0:
        return mats
    threshold = pooled[min(k, pooled.size) - 1] * (1 - _SCREEN)
    return [mat for mat, top in zip(mats, tops) if top.size and top[0] >= threshold]


def dense_singular(mat):
    """All singular values of a matrix, with the residual ‖Jᵀu − σv‖ of each triple."""
    u, s, vt = np.linalg.svd(mat, full_matrices=False)
    residual = np.linalg.norm(mat.T @ u - vt.T * s, axis=0)
    return s, residual


def dense_eigen(mat):
    """All eigenvalues of a square matrix, with the residual ‖Jx − λx‖ (‖x‖ = 1) of each."""
    values, vectors = np.linalg.eig(mat)
    vectors = vectors / np.linalg.norm(vectors, axis=0)
    return values, np.linalg.norm(mat @ vectors - vectors * values, axis=0)


def _restrict(op, rows, cols):
    if rows.size == op.shape[0] and cols.size == op.shape[1]:
        return op

    def matvec(v):
        full = np.zeros(op.shape[1])
        full[cols] = np.ravel(v)
        return op.matvec(full)[rows]

    def rmatvec(u):
        full = np.zeros(op.shape[0])
        full[rows] = np.ravel(u)
        return op.rmatvec(full)[cols]

    return LinearOperator((rows.size, cols.size), matvec=matvec, rmatvec=rmatvec, dtype=float)


def _extend(basis, images, new, op):
    """Append an orthonormal basis of the part of ``new``'s columns outside ``basis`` (and J
    of it)."""
    norms = np.linalg.norm(new, axis=0)
    kept = norms > _NEW_DIRECTION  # (the zero imaginary part of a real eigenvector goes)
    new = new[:, kept] / norms[kept]
    for _ in range(2):  # twice is enough (Kahan–Parlett)
        new = new - basis @ (basis.T @ new)
    # An SVD, not an unpivoted QR: dropping a dependent column from the middle of a QR also
    # drops part of the columns after it (a conjugate pair's equal real parts, say).
    u, sigma, _ = np.linalg.svd(new, full_matrices=False)
    q = u[:, sigma > _NEW_DIRECTION]
    if q.shape[1] == 0:
        return basis, images
    q, _ = np.linalg.qr(q - basis @ (basis.T @ q))  # independent columns: QR is safe here
    image = np.column_stack([op.matvec(column) for column in q.T])
    return np.hstack([basis, q]), np.hstack([images, image])


def _arpack(solver, op, rng, **options):
    """``solver(op, **options)`` (``svds`` or ``eigs``); None when ARPACK fails because the
    operator is zero (a layer whose units are all dead, or nothing left after deflation): the
    rest of its spectrum is 0."""
    try:
        return solver(op, **options)
    except ArpackError:
        if np.abs(op.matvec(rng.standard_normal(op.shape[1]))).max(initial=0.0) == 0.0:
            return None
        raise


def _nothing_new(found, known, k):
    """Whether the deflated operator's values ``found`` add nothing to the ``known`` ones
    (moduli, descending): all zero, or none above the k-th known."""
    top = np.abs(found).max()
    if top <= _ZERO * (known[0] if known.size else 0.0):
        return True  # nothing left: the rest of the top is 0
    return known.size >= k and top <= known[k - 1] * (1 + _MARGIN)


def _padded(values, residuals, k):
    """``k`` values: those found, then zeros (exact: the operator had nothing left)."""
    missing = max(k - values.size, 0)
    return (np.concatenate([values, np.zeros(missing, values.dtype)]),
            np.concatenate([residuals, np.zeros(missing)]))  # fmt: skip


def _deflated(op, basis, symmetric):
    def project(x):
        x = np.ravel(x)
        return x - basis @ (basis.T @ x)

    if symmetric:  # J P: singular values of J on the complement of the basis
        return LinearOperator(
            op.shape,
            matvec=lambda v: op.matvec(project(v)),
            rmatvec=lambda u: project(op.rmatvec(u)),
            dtype=float,
        )
    return LinearOperator(op.shape, matvec=lambda v: project(op.matvec(project(v))), dtype=float)


def _start(shape, basis, rng):
    # svds iterates in the smaller of the two spaces; the deflation acts on the right one.
    if shape[0] < shape[1]:
        return rng.standard_normal(shape[0])
    start = rng.standard_normal(shape[1])
    return start - basis @ (basis.T @ start)


def iterative_singular(op, k, tol, maxiter, seed):
    """Top ``k`` singular values of ``op`` (with residuals) by ARPACK with deflation."""
    rng = np.random.default_rng(seed)
    size = op.shape[1]
    basis, images = np.zeros((size, 0)), np.zeros((op.shape[0], 0))
    values = np.zeros(0)
    while True:
        # Once k values are in hand, only the top of the rest matters (is it above the k-th?).
        want = min(k if values.size < k else 1, min(op.shape) - basis.shape[1] - 1)
        if want < 1:
            break
        result = _arpack(svds, _deflated(op, basis, symmetric=True), rng, k=want, tol=tol,
                         maxiter=maxiter, v0=_start(op.shape, basis, rng))  # fmt: skip
        if result is None:
            break
        _, found, found_vt = result
        if _nothing_new(found, values, k):
            break
        before = basis.shape[1]
        basis, images = _extend(basis, images, found_vt.T, op)
        if basis.shape[1] == before:
            break
        # Rayleigh–Ritz: J restricted to span(basis) is images = J·basis.
        left, values, right_t = np.linalg.svd(images, full_matrices=False)
    top = min(k, values.size)
    if top == 0:
        return _padded(np.zeros(0), np.zeros(0), k)
    left, values = left[:, :top], values[:top]
    right = basis @ right_t[:top].T
    adjoint = np.column_stack([op.rmatvec(column) for column in left.T])
    return _padded(values, np.linalg.norm(adjoint - right * values, axis=0), k)


def iterative_eigen(op, k, tol, maxiter, ncv, seed):
    """Top ``k`` eigenvalues by modulus of ``op`` (with residuals), ARPACK with deflation."""
    rng = np.random.default_rng(seed)
    size = op.shape[0]
    basis, images = np.zeros((size, 0)), np.zeros((size, 0))
    values = moduli = np.zeros(0)
    while True:
        want = min(k, size - basis.shape[1] - 2)  # (asking Arnoldi for fewer is slower here)
        if want < 1:
            break
        result = _arpack(eigs, _deflated(op, basis, symmetric=False), rng, k=want, which="LM",
                         tol=tol, maxiter=maxiter, ncv=min(size, ncv or max(4 * k, 40)),
                         v0=_start(op.shape, basis, rng))  # fmt: skip
        if result is None:
            break
        found, vectors = result
        if _nothing_new(found, moduli, k):
            break
        # A conjugate pair spans a real invariant plane: keep both the real and imaginary parts.
        before = basis.shape[1]
        basis, images = _extend(basis, images, np.hstack([vectors.real, vectors.imag]), op)
        if basis.shape[1] == before:
            break
        # Rayleigh–Ritz on the (nearly) invariant subspace: eigenpairs of T = Qᵀ J Q.
        values, small = scipy.linalg.eig(basis.T @ images)
        order = np.argsort(-np.abs(values), kind="stable")
        values, small = values[order], small[:, order]
        moduli = np.abs(values)
    top = min(k, values.size)
    if top == 0:
        return _padded(np.zeros(0, complex), np.zeros(0), k)
    values, small = values[:top], small[:, :top]
    small = small / np.linalg.norm(small, axis=0)  # ‖Q y‖ = ‖y‖ = 1
    residual = np.linalg.norm(images @ small - basis @ (small * values), axis=0)
    return _padded(values, residual, k)


def top_of_spectrum(op, blocks, k, kind, *, tol, maxiter, ncv=None, seed=0):
    """The ``k`` largest singular values (``kind="singular"``) or eigenvalues by modulus
    (``kind="eigen"``) of the block-diagonal ``op``, with the residual norm of each."""
    # ARPACK needs k well below the block size; below that, or for a small block, go dense.
    limit = max(DENSE_BLOCK, k + 2)
    small = [block for block in blocks if max(block[0].size, block[1].size) <= limit]
    large = [block for block in blocks if max(block[0].size, block[1].size) > limit]
    parts = []
    if small:
        mats = dense_blocks(op, small)
        if kind == "eigen":
            mats = _may_hold_top(mats, k)
        for mat in mats:
            parts.append(dense_singular(mat) if kind == "singular" else dense_eigen(mat))
    for rows, cols in large:
        block = _restrict(op, rows, cols)
        try:
            if kind == "singular":
                parts.append(iterative_singular(block, k, tol, maxiter, seed))
            else:
                parts.append(iterative_eigen(block, k, tol, maxiter, ncv, seed))
        except ArpackNoConvergence:
            raise  # not a breakdown: more maxiter or a larger tol is the remedy, as it says
        except ArpackError:
            # ARPACK breaks down when every value is equal (Λ = I, B = 0: J = I; any start is
            # then an exact singular vector). A block that fits in memory is solved densely,
            # a larger one by block iteration, which such spectra do not trouble.
            if max(rows.size, cols.size) > DENSE_FALLBACK:
                parts.append(subspace_top(block, k, kind, tol, maxiter, seed))
                continue
            (mat,) = dense_blocks(op, [(rows, cols)])
            parts.append(dense_singular(mat) if kind == "singular" else dense_eigen(mat))
    return largest_of(parts, k)


def subspace_top(op, k, kind, tol, maxiter=None, seed=0):
    """The top ``k`` values of ``op`` (with residuals) by block subspace iteration and a
    Rayleigh–Ritz step on each block: the matrix-free fallback where ARPACK breaks down.

    A block of random starts spans every copy of a repeated value at once, where a Krylov
    method started from one vector stops (J = I). Each step multiplies the block by J (and
    Jᵀ, for singular values); it stops when every one of the top ``k`` residuals is within
    ``tol`` (at least 64 ulps) of the largest value, and raises after ``maxiter`` steps
    (default 1000) without getting there.
    """
    rng = np.random.default_rng(seed)
    # Spare columns: each step cuts the error by |value number width + 1| / |value number k|.
    width = min(op.shape[1], 2 * k + 8)
    basis = np.linalg.qr(rng.standard_normal((op.shape[1], width)))[0]
    floor = max(tol, 64 * np.finfo(float).eps)
    steps = maxiter or 1000
    for _ in range(steps):
        images = op.matmat(basis)
        if kind == "singular":
            left, values, right_t = np.linalg.svd(images, full_matrices=False)
            left, values, right = left[:, :k], values[:k], basis @ right_t[:k].T
            residuals = np.linalg.norm(op.rmatmat(left) - right * values, axis=0)
            following = op.rmatmat(images)  # JᵀJ: the power step for singular vectors
        else:
            values, small = scipy.linalg.eig(basis.T @ images)
            order = np.argsort(-np.abs(values), kind="stable")[:k]
            values, small = values[order], small[:, order]
            small = small / np.linalg.norm(small, axis=0)
            residuals = np.linalg.norm(images @ small - basis @ (small * values), axis=0)
            following = images
        if residuals.max() <= floor * np.abs(values).max(initial=0.0):
            return _padded(values, residuals, k)
        basis = np.linalg.qr(following)[0]
    raise RuntimeError(
        f"ARPACK broke down on a block of {op.shape[1]} coordinates, and block iteration "
        f"left residuals of up to {residuals.max():.2e} (against a largest value of "
        f"{np.abs(values).max():.2e}) after {steps} steps. Pass a larger tol (now {tol:g}) "
        f"or a larger maxiter."
    )


def largest_of(parts, k):
    """The ``k`` values of largest modulus (with their residuals) among ``(values, residuals)``
    parts."""
    values = np.concatenate([part[0] for part in parts])
    residuals = np.concatenate([part[1] for part in parts])
    order = np.argsort(-np.abs(values), kind="stable")[:k]
    return values[order], residuals[order]
