r"""Edge-of-chaos calibration: set Λ's and B's scales from each layer's measured spectrum.

A GNN-SSM layer with :math:`\Lambda = \lambda I` has the Jacobian

.. math::
    J_\ell = \lambda I + K_\ell, \qquad K_\ell = (I_n \otimes B)\,
        \frac{\partial\, \sigma(F_\ell(G, H))}{\partial H}\Big|_{H^{(\ell)}},

so at a fixed input state, moving λ moves every eigenvalue of :math:`J_\ell` by the same
amount, and scaling B by ``b`` scales :math:`K_\ell`'s eigenvalues by ``b``. One measurement
of the top eigenvalue :math:`\nu_\ell` of each layer (matrix-free, with
:func:`dgl_ssm.analysis.top_eigenvalue_moduli`) therefore says which ``(λ, b)`` put it at
modulus ``target``: :math:`|\lambda + b\,\mu_\ell| = \text{target}` with
:math:`\mu_\ell = \nu_\ell - \lambda_{\text{old}}`. Layers that share one (Λ, B) (the
default, ``shared_ssm=True``) need one λ that serves them all: B is shrunk until the λ that
put each layer within a margin of ``target`` overlap, and of those λ the one nearest the
model's own is taken (``lambda_rule="nearest"``), or the middle of the layers' roots
(``"centred"``). Nearest, because λ < 1 makes the stack forget: the encoder's output reaches
layer ℓ scaled by λ^ℓ (0.99^64 ≈ 0.53), and on Cora at 64 layers GCN-SSM trained to 78.0 and
78.5 % with the centred λ = 0.990 but to 79.2 and 81.6 % with the nearest, λ = 0.9925 and
0.993 (same B, seeds 0 and 1; ``results/reproduction/calibration.jsonl``). B is also shrunk
until the state norm stays within a factor ``norm_bound`` of the encoder output's across the
stack (the eigenvalues say how one layer amplifies small changes; the norms say whether the
state itself drifts): halved until it does (``input_rule="halve"``), or then grown back by
bisection towards the one before the last halving, to the largest B found within the bound
(``"largest"``; less than twice the halved one).
Changing (λ, B) changes the states the later layers see, so the spectra are measured again,
and the step repeated, until every layer is within ``tol/2`` of ``target`` (a margin for
re-measurement).
"""

import contextlib
import math
import warnings
from dataclasses import dataclass, field

import torch

from .analysis import layer_inputs, top_eigenvalue_moduli
from .analysis._common import evaluating, run_model
from .analysis.states import recorded_states
from .checks import (
    check_choice,
    check_count,
    check_flag,
    check_graph,
    check_options,
    check_real,
)
from .scaling import positively_homogeneous, scaling_exponents, unknown_convs
from .ssm import SSMUpdate, scaled_identity_scalar

__all__ = ["SPECTRUM_OPTIONS", "CalibrationReport", "CalibrationWarning", "calibrate"]

#: Options of :func:`~dgl_ssm.analysis.top_eigenvalue_moduli` used by default: only the top
#: modulus matters here, to well within the tolerance (ARPACK's ``tol`` is relative).
SPECTRUM_OPTIONS = {"k": 1, "tol": 1e-3}
# What spectrum_options may set (the rest of the call is calibrate's own).
SPECTRUM_KEYS = {"k", "tol", "maxiter", "ncv", "seed", "dtype"}

# Aim inside the tolerance: the states move when (λ, B) do, and the next measurement must
# still land within ``tol``.
_AIM = 0.25
# Halvings of B before a loop gives up (fitting one λ to a group, the norm bound, the memory
# bound): B × 2⁻³⁰ (~1e-9) adds less than float32 resolves in a state of order 1.
_MAX_SHRINK = 30
# input_rule="largest": bisection steps between the last halved B (within the bound) and the
# one before it (outside): the B kept is within the bound, and B one 16th of that gap larger
# was found outside it (the largest within, if the norms grow with B in between).
_BISECTIONS = 4
# memory_bound: a halving of B that raises λ by less than this gains nothing worth a smaller B
# (λ nears the end of what its rule allows); that group is then left as it is.
_MEMORY_STEP = 1e-4
#: How :func:`calibrate` picks λ among those that serve a group (see its ``lambda_rule``).
LAMBDA_RULES = ("nearest", "centred")
#: How :func:`calibrate` shrinks B under the norm bound (see its ``input_rule``).
INPUT_RULES = ("halve", "largest")
#: How :meth:`CalibrationReport.param_groups` sets each weight's decay (see its ``rule``).
WEIGHT_DECAY_RULES = ("symmetry", "uniform")


class CalibrationWarning(RuntimeWarning):
    """:func:`calibrate` could not put every layer within its bounds; the message says which
    layers missed which bound and what may help. A subclass of ``RuntimeWarning``, so that
    ``warnings.filterwarnings`` can single it out from the others."""


@dataclass
class CalibrationReport:
    """What :func:`calibrate` measured and set.

    Attributes
    ----------
    target, tol, norm_bound : float
        The bounds asked for (see :func:`calibrate`).
    groups : list of list of int
        The layers of each group sharing one Λ and B (one group when they are shared).
    radius_before, radius_after : list of float
        Each layer's largest Jacobian eigenvalue modulus before and after.
    norm_before, norm_after : list of float
        ``‖H⁽ℓ⁾‖ / (target^ℓ ‖H⁽⁰⁾‖)`` for ℓ = 1 … L: the drift of the state beyond what
        the target itself asks for (with target 1, the plain ratio).
    state_scale : list of (float, float)
        λ before and after, per group.
    input_factor : list of float
        The factor B was multiplied by, per group.
    rounds : int
        Measure-and-set rounds run (0: the model was already within the bounds).
    memory_bound : float or None
        The bound on the stack's memory asked for (see :func:`calibrate`), or ``None``.
    memory : float
        Π over layers of λ / target after calibration: how much of the encoder's output
        reaches the last layer through Λ.
    ok : bool
        Every radius within ``target ± tol``, every norm ratio within
        ``[1/norm_bound, norm_bound]`` and, with a ``memory_bound``, :attr:`memory` at least
        ``1/memory_bound``.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import GCNSSM, calibrate
    >>> _ = torch.manual_seed(0)
    >>> g = dgl.add_self_loop(dgl.graph((torch.arange(12), (torch.arange(12) + 1) % 12)))
    >>> report = calibrate(GCNSSM(4, 4, 2, num_layers=3), g, torch.randn(12, 4))
    >>> report.ok, len(report.radius_after), report.groups
    (True, 3, [[0, 1, 2]])
    """

    target: float
    tol: float
    norm_bound: float
    groups: list[list[int]]
    radius_before: list[float]
    radius_after: list[float]
    norm_before: list[float]
    norm_after: list[float]
    state_scale: list[tuple[float, float]]
    input_factor: list[float]
    rounds: int
    memory_bound: float | None = None
    ok: bool = field(init=False)

    def __post_init__(self):
        self.ok = not any(self.out_of_bounds()) and not self.forgets()

    def forgets(self):
        """Whether a ``memory_bound`` was asked for and :attr:`memory` is below ``1/bound``."""
        return self.memory_bound is not None and self.memory < 1 / self.memory_bound

    def out_of_bounds(self):
        """The layers whose top modulus is outside ``target ± tol``, and those whose state
        norm ratio is outside ``[1/norm_bound, norm_bound]``, after calibration."""
        return _out_of_bounds(self.radius_after, self.norm_after, self.target, self.tol,
                              self.norm_bound)  # fmt: skip

    @property
    def memory(self):
        """The stack's memory of its input after calibration, Π over layers of λ / target:
        how much of the encoder's output reaches the last layer through Λ (see
        :func:`calibrate`'s ``memory_bound``); 0 when some λ is not positive."""
        lams = [(after, len(layers)) for (_, after), layers in zip(self.state_scale, self.groups)]
        return _stack_memory(lams, self.target)

    def rows(self):
        """One dict per layer: its group's λ and B factor, radius and norm before and after."""
        group_of = {layer: g for g, layers in enumerate(self.groups) for layer in layers}
        return [
            {
                "layer": layer,
                "radius_before": self.radius_before[layer],
                "radius_after": self.radius_after[layer],
                "norm_before": self.norm_before[layer],
                "norm_after": self.norm_after[layer],
                "state_scale": self.state_scale[group_of[layer]][1],
                "input_factor": self.input_factor[group_of[layer]],
            }
            for layer in range(len(self.radius_after))
        ]

    def param_groups(self, model, weight_decay, *, decoupled=False, rule="symmetry"):
        r"""Optimizer parameter groups that regularise the calibrated model as the uncalibrated
        one was.

        Calibration shrinks B by a factor :math:`f` (``input_factor``), so a layer's
        contribution :math:`f B\,\sigma(F_W(G, H))` needs larger weights to add what it added
        before, and an unchanged weight decay holds them back. When the conv's output scales
        by :math:`c` as each weight :math:`w_p` is scaled by :math:`c^{k_p}`
        (:func:`dgl_ssm.scaling.output_scaling`) and σ is positively homogeneous (ReLU),
        :math:`\min_W L(W) + \tfrac{\alpha}{2}\sum_p f^{2k_p}\lVert w_p\rVert^2` is
        :math:`\min_V L(V) + \tfrac{\alpha}{2}\lVert V\rVert^2` with
        :math:`v_p = f^{k_p} w_p`: the objective of the uncalibrated model (with the calibrated
        Λ). So each weight gets decay :math:`\alpha f^{2k_p}` (L2 in the loss, as
        ``torch.optim.Adam``'s ``weight_decay``): GCN's weights :math:`k = 1`, SAGE's 1
        (its pooling MLP or LSTM, with those aggregators, 0), GIN's last MLP layer 1 and its
        first 0, GAT's projection 1 and attention vectors −1, GatedGCN's A and B 1 and its
        gates 0. Decoupled decay (``torch.optim.AdamW``, which shrinks weights by ``lr·α`` per
        step) is no gradient of a loss, so no choice makes it exact; :math:`\alpha f^{k_p}`
        keeps the balance of decay and step it had in the uncalibrated coordinates. Weights
        of convs with no known symmetry, and every weight with ``rule="uniform"`` (a
        comparison: one exponent for all), get :math:`k = 1`; a :class:`CalibrationWarning`
        says when the symmetry rule is not exact (such convs, or a σ that is not an
        ``nn.ReLU`` or ``nn.Identity`` module: ``torch.relu`` passed as a function warns too).
        Parameters outside the calibrated layers keep α. The learning rate is left to the
        optimizer: scaling it by :math:`1/f` too keeps Adam's pace in function space for GCN,
        but made GIN-SSM collapse and GatedGCN-SSM diverge in exploratory runs (Cora, 64
        layers; not among the recorded runs).

        Parameters
        ----------
        model : dgl_ssm.SSMGNN
            The model this report calibrated.
        weight_decay : float
            The weight decay α the uncalibrated model would train with.
        decoupled : bool, default False
            Whether the optimizer decouples weight decay (AdamW).
        rule : {"symmetry", "uniform"}, default "symmetry"
            Each weight's exponent from its conv's output-scaling symmetry, or 1 for all.

        Returns
        -------
        list of dict
            ``{"params": [...], "weight_decay": ...}`` per group, for any ``torch.optim``
            optimizer.

        Examples
        --------
        >>> import dgl, torch
        >>> from dgl_ssm import GATSSM, calibrate
        >>> _ = torch.manual_seed(0)
        >>> g = dgl.add_self_loop(dgl.graph((torch.arange(12), (torch.arange(12) + 1) % 12)))
        >>> model = GATSSM(in_feats=4, hidden=4, out_feats=2, num_layers=3)
        >>> report = calibrate(model, g, torch.randn(12, 4))
        >>> groups = report.param_groups(model, weight_decay=5e-4)
        >>> optimizer = torch.optim.Adam(groups, lr=0.01)
        >>> f = report.input_factor[0]  # attention vectors, projections, the rest:
        >>> [group["weight_decay"] / 5e-4 for group in groups] == [f**-2, f**2, 1]
        True
        """
        if rule not in WEIGHT_DECAY_RULES:
            raise ValueError(
                f"unknown weight decay rule {rule!r}; choose one of: "
                f"{', '.join(WEIGHT_DECAY_RULES)}."
            )
        layers = getattr(model, "layers", ())
        if len(layers) != len(self.radius_after):
            raise ValueError(
                f"This report calibrated a model of {len(self.radius_after)} layers; the model "
                f"given has {len(layers)}. Pass the model that was calibrated."
            )
        self._check_calibrated(model, layers)
        decoupled = check_flag(decoupled, "decoupled", "param_groups")
        weight_decay = check_real(weight_decay, "weight_decay", "a finite number ≥ 0",
                                  lambda decay: math.isfinite(decay) and decay >= 0)  # fmt: skip
        if rule == "symmetry":
            _warn_if_inexact(layers)
        decays, seen = {}, set()  # weight decay → its parameters, in the model's order
        for factor, indices in zip(self.input_factor, self.groups):
            for i in indices:
                exponents = scaling_exponents(layers[i]) if rule == "symmetry" else {}
                for name, param in layers[i].named_parameters():
                    if id(param) in seen:
                        continue
                    seen.add(id(param))
                    k = exponents.get(name, 1)
                    decay = weight_decay * (factor**k if decoupled else factor ** (2 * k))
                    decays.setdefault(decay, []).append(param)
        rest = [p for p in model.parameters() if id(p) not in seen]
        if rest:
            decays.setdefault(weight_decay, []).extend(rest)
        return [{"params": params, "weight_decay": decay} for decay, params in decays.items()]

    def _check_calibrated(self, model, layers):
        """Refuse a model whose Λ is not the one this report set (another copy, say)."""
        for (_, lam), indices in zip(self.state_scale, self.groups):
            for i in indices:
                update = getattr(layers[i], "update", None)
                has = _lam(update) if isinstance(update, SSMUpdate) else None
                if has is None or not math.isclose(has, lam, rel_tol=1e-6, abs_tol=1e-12):
                    raise ValueError(
                        f"This report set λ = {lam:.6g} on layer {i}, but that layer of the "
                        f"{type(model).__name__} given has "
                        f"{'no Λ = λI' if has is None else f'λ = {has:.6g}'}: pass the model "
                        "that was calibrated (calibrate changes the model in place)."
                    )

    def __str__(self):
        worst = max(abs(r - self.target) for r in self.radius_after)
        return (
            f"calibration {'ok' if self.ok else 'NOT within bounds'} after {self.rounds} "
            f"round(s): radius {min(self.radius_before):.4f}…{max(self.radius_before):.4f} → "
            f"{min(self.radius_after):.4f}…{max(self.radius_after):.4f} (target "
            f"{self.target} ± {self.tol}, worst distance {worst:.2g}); state norm ratio "
            f"{min(self.norm_before):.3g}…{max(self.norm_before):.3g} → "
            f"{min(self.norm_after):.3g}…{max(self.norm_after):.3g} (bound ×{self.norm_bound})"
        )


def _warn_if_inexact(layers):
    """Warn when param_groups' weight decay is not the uncalibrated objective exactly."""
    unknown = sorted({name for layer in layers for name in unknown_convs(layer)})
    sigmas = {layer.update.activation for layer in layers}
    activations = sorted({type(s).__name__ for s in sigmas if not positively_homogeneous(s)})
    if not (unknown or activations):
        return
    reasons = []
    if activations:
        reasons.append(f"σ is {', '.join(activations)}, not positively homogeneous")
    if unknown:
        reasons.append(f"no scaling symmetry is known for {', '.join(unknown)}, whose weights get "
                       "k = 1 as if the output were linear in them")  # fmt: skip
    why = "; ".join(reasons)
    warnings.warn(
        f"The rescaled weight decay keeps the uncalibrated objective only approximately: {why}. "
        "Training works as before; see dgl_ssm.scaling.",
        CalibrationWarning,
        stacklevel=3,
    )


def calibrate(
    model,
    graph,
    feat,
    edge_feat=None,
    *,
    target=1.0,
    tol=0.02,
    norm_bound=2.0,
    max_rounds=4,
    lambda_rule="nearest",
    input_rule="halve",
    memory_bound=None,
    spectrum_options=None,
    log=None,
    progress=None,
):
    r"""Put every SSM layer of ``model`` at the edge of chaos on ``(graph, feat)``.

    Sets λ of :math:`\Lambda = \lambda I` and a factor on B, per group of layers that share
    one :class:`~dgl_ssm.SSMUpdate` (all layers by default; each layer with
    ``shared_ssm=False``), so that each layer's Jacobian at initialisation has its largest
    eigenvalue modulus within ``target ± tol`` and the state norm, relative to the growth the
    target itself asks for, :math:`\|H^{(\ell)}\| / (\mathrm{target}^\ell \|H^{(0)}\|)`,
    stays within ``[1/norm_bound, norm_bound]`` (with ``target=1``: the norm itself). Only
    the Λ and B buffers change; trainable weights are untouched. See the module docstring for
    the method.

    Parameters
    ----------
    model : dgl_ssm.SSMGNN
        An SSM model (GCNSSM, GINSSM, …) with ``state="identity"`` and no ``norm``, or a
        module of one's own whose ``.layers`` are such :class:`~dgl_ssm.SSMLayer`\ s (it is
        called as ``model(graph, feat[, edge_feat])``).
    graph, feat, edge_feat
        The inputs the model will be trained on (the spectra depend on them).
    target : float, default 1.0
        The modulus to put the top eigenvalue at (1: neither contracting nor expanding).
    tol : float, default 0.02
        Accepted distance of each layer's top modulus from ``target``.
    norm_bound : float, default 2.0
        Accepted growth or shrinkage of the state norm across the stack: a number > 1
        (``math.inf``: no norm bound).
    max_rounds : int, default 4
        Measure-and-set rounds at most; each aims at ``target ± tol/4`` and they stop once
        every layer is within ``target ± tol/2`` (margins for re-measurement, as the states
        move with λ and B); once they run out the report's ``ok`` says whether the last one is
        within the bounds.
    lambda_rule : {"nearest", "centred"}, default "nearest"
        Of the λ that put every layer of a group near ``target``, the one nearest the λ the
        model was built with (moving Λ, and so the stack's memory, no more than needed), or
        the one that centres the group's radii on ``target`` (the first rule, kept for the
        runs recorded with it).
    input_rule : {"halve", "largest"}, default "halve"
        When the state norm leaves the bound: halve B until it is back within it, or then
        bisect between that B and the one before the last halving for the largest B within
        the bound (closer to the edge the bound allows; less than 2× the halved B).
    memory_bound : float, optional
        Also keep the stack's memory of its input, :math:`\prod_\ell \lambda_\ell /
        \mathrm{target}^L` (how much of the encoder's output reaches the last layer through
        Λ), at least ``1/memory_bound``, halving B (and re-fitting λ) of the group with the
        smallest λ until it is. Layers that do not share Λ and B can otherwise each meet the
        spectral and norm bounds with a small λ and forget their input (per-layer GIN-SSM on
        Cora at 64 layers: λ 0.65–0.84, memory 2.5e-8, 32.5 % test accuracy). Default None:
        no such bound.
    spectrum_options : dict, optional
        Options for :func:`~dgl_ssm.analysis.top_eigenvalue_moduli` (``k``, ``tol``,
        ``maxiter``, ``ncv``, ``seed``, ``dtype``), on top of :data:`SPECTRUM_OPTIONS`
        (``k=1, tol=1e-3``): ``{"seed": 1}`` keeps those two.
    log : callable, optional
        Called with one line per round.
    progress : callable, optional
        Called as ``progress(done, total)`` after each layer's spectrum is measured, ``done``
        counting 1 … ``total`` (the number of layers) in each sweep over the stack: one
        before the first round and one after each. For a progress bar: a sweep of a 64-layer
        model on Cora takes minutes on one CPU thread.

    Returns
    -------
    CalibrationReport

    Raises
    ------
    TypeError
        For a model without SSM layers (a plain twin) or a layer whose update is not an
        :class:`~dgl_ssm.SSMUpdate`.
    ValueError
        For a layer with a norm, a Λ that is not λI, a model that reads edge features called
        without ``edge_feat``, or an option out of range.

    Warns
    -----
    CalibrationWarning
        When some layer is left outside ``target ± tol``, the state norm outside the bound,
        or the memory below ``1/memory_bound``: which layers, and the remedies for that bound.

    Examples
    --------
    >>> import dgl, torch
    >>> from dgl_ssm import GINSSM, calibrate
    >>> _ = torch.manual_seed(0)
    >>> g = dgl.add_self_loop(dgl.graph((torch.arange(12), (torch.arange(12) + 1) % 12)))
    >>> model = GINSSM(in_feats=4, hidden=4, out_feats=2, num_layers=3)
    >>> report = calibrate(model, g, torch.randn(12, 4))
    >>> report.ok, all(abs(r - 1.0) <= 0.02 for r in report.radius_after)
    (True, True)
    """
    check_graph(graph, "calibrate", "calibrate(model, graph, feat)")
    groups = _ssm_groups(model)
    if edge_feat is None and getattr(model, "needs_edge_feat", False):
        # (the model's own message would say "pass edge_feat to forward")
        raise ValueError(
            "calibrate: the model reads edge features (edge_feats or an edge_encoder), so it "
            "needs the graph's: calibrate(model, graph, feat, edge_feat=...)."
        )
    check_choice("lambda_rule", lambda_rule, LAMBDA_RULES)
    check_choice("input_rule", input_rule, INPUT_RULES)
    target, tol, norm_bound, max_rounds = _checked_bounds(target, tol, norm_bound, max_rounds)
    if memory_bound is not None:
        memory_bound = check_real(memory_bound, "memory_bound", "a number > 1 (None: no bound)",
                                  lambda bound: bound > 1, "calibrate")  # fmt: skip
    options = _checked_spectrum_options(spectrum_options)
    for name, function in (("log", log), ("progress", progress)):
        if function is not None and not callable(function):
            raise TypeError(
                f"calibrate: {name} must be a function (or None), got {type(function).__name__}."
            )
    say = log or (lambda _line: None)
    inputs = (graph, feat, edge_feat)
    aim = tol * _AIM

    def lam_for(group):  # λ of a group for its layers' μ and its current factor
        prefer = group.built_lam if lambda_rule == "nearest" else None
        return _group_lambda(group.mu, group.factor, target, aim, prefer)

    try:
        with _each_warning_once():  # one notice per calibration, not one per layer and round
            eigen = _top_eigenvalues(model, inputs, options, progress)
            radius_before, norm_before = (
                [abs(e) for e in eigen],
                _norm_ratios(model, inputs, target),
            )
            misses = _out_of_bounds(radius_before, norm_before, target, tol / 2, norm_bound)
            remembers = memory_bound is None or _memory(groups, target) >= 1 / memory_bound
            rounds, done = 0, not any(misses) and remembers
            while not done and rounds < max_rounds:
                rounds += 1
                for group in groups:
                    # μ: the eigenvalue of K = J − λI (per unit factor on B) that is on top now.
                    group.mu = [
                        (eigen[i] - _lam(group.update)) / group.factor for i in group.layers
                    ]
                    group.factor = _fit_group(group.mu, group.factor, target, aim)
                    group.set(lam_for(group))
                _shrink_until_bounded(model, inputs, groups, target, norm_bound, lam_for,
                                      largest=input_rule == "largest")  # fmt: skip
                if memory_bound is not None:
                    _keep_memory(groups, target, memory_bound, lam_for)
                eigen = _top_eigenvalues(model, inputs, options, progress)
                radii, factors = [abs(e) for e in eigen], [group.factor for group in groups]
                say(
                    f"round {rounds}: radius {min(radii):.4f}…{max(radii):.4f}, B factor "
                    f"{min(factors):.3g}…{max(factors):.3g}"
                )
                done = all(abs(r - target) <= tol / 2 for r in radii)  # a margin for re-measurement
    except BaseException:  # (Ctrl-C too): no half-set Λ and B, the model as it was built
        for group in groups:
            _set(group.update, group.built_lam, 1.0, group.built_input)
        raise
    report = CalibrationReport(
        target=target,
        tol=tol,
        norm_bound=norm_bound,
        groups=[group.layers for group in groups],
        radius_before=radius_before,
        radius_after=[abs(e) for e in eigen],
        norm_before=norm_before,
        norm_after=_norm_ratios(model, inputs, target),
        state_scale=[(group.built_lam, _lam(group.update)) for group in groups],
        input_factor=[group.factor for group in groups],
        rounds=rounds,
        memory_bound=memory_bound,
    )
    if not report.ok:
        warnings.warn(_not_within(report, len(groups) > 1), CalibrationWarning, stacklevel=2)
    return report


def _checked_bounds(target, tol, norm_bound, max_rounds):
    positive = "a finite number > 0"
    target = check_real(target, "target", positive, _finite_positive, "calibrate")
    tol = check_real(tol, "tol", positive, _finite_positive, "calibrate")
    # norm_bound=inf switches the norm bound off.
    norm_bound = check_real(norm_bound, "norm_bound", "a number > 1 (inf: no bound)",
                            lambda bound: bound > 1, "calibrate")  # fmt: skip
    return target, tol, norm_bound, check_count(max_rounds, "max_rounds", who="calibrate")


def _checked_spectrum_options(spectrum_options):
    given = check_options(spectrum_options, "spectrum_options", "{'seed': 1}", "calibrate")
    options = {**SPECTRUM_OPTIONS, **given}
    unknown = sorted(set(options) - SPECTRUM_KEYS)
    if unknown:
        raise ValueError(
            f"calibrate: spectrum_options takes options of top_eigenvalue_moduli "
            f"({', '.join(sorted(SPECTRUM_KEYS))}); unknown: {', '.join(map(repr, unknown))}."
        )
    return options


def _finite_positive(value):
    return math.isfinite(value) and value > 0


def _not_within(report, per_layer):
    """The warning for a report that is not ok: which layers missed which bound, and the
    remedies that act on that bound."""
    target, tol, bound = report.target, report.tol, report.norm_bound
    radius, norm = report.out_of_bounds()
    misses, remedies = [], []
    if radius:  # the rounds ran out before the radii settled
        misses.append(f"top |eigenvalue| of layer(s) {_listed(radius)} not within {target} ± {tol}")
        remedies.append("more rounds (max_rounds) or a wider tol")
    if norm:  # halving B stopped helping
        misses.append(f"state norm ratio of layer(s) {_listed(norm)} not within ×{bound}")
        remedies.append("a wider norm_bound")
    if report.forgets():  # λ no longer rose as B halved: the λ rule holds it below target
        misses.append(f"memory Π λ/target {report.memory:.3g} below 1/{report.memory_bound}")
        remedies.append("a larger memory_bound, lambda_rule=\"centred\" or a target nearer "
                        "the built λ")  # fmt: skip
    if per_layer:
        remedies.append("one Λ and B for all layers (shared_ssm=True; on runs, no --per-layer-ssm)")
    return (
        f"{report}. Out of bounds: {'; '.join(misses)}. The model keeps the last λ and B tried; "
        f"{', or '.join(remedies)} may get there."
    )


def _listed(layers, shown=6):
    head = ", ".join(map(str, layers[:shown]))
    return head if len(layers) <= shown else f"{head} … ({len(layers)} in all)"


def _out_of_bounds(radii, norms, target, tol, bound):
    """The indices of the radii outside ``target ± tol`` and of the norms outside
    ``[1/bound, bound]``."""
    radius = [i for i, r in enumerate(radii) if abs(r - target) > tol]
    return radius, _outside(norms, bound)


def _ssm_groups(model):
    """The distinct SSM updates of ``model``, each a :class:`_Group` with the layers that use
    it."""
    layers = getattr(model, "layers", None)
    if layers is None or len(layers) == 0:
        raise TypeError(
            f"calibrate needs a dgl_ssm SSM model (GCNSSM, GINSSM, …), or a module of your own "
            f"whose .layers are SSMLayers; {type(model).__name__} has no layers."
        )
    groups = []
    for index, layer in enumerate(layers):
        update = getattr(layer, "update", None)
        if not isinstance(update, SSMUpdate):
            raise TypeError(
                f"calibrate sets Λ and B of SSM layers, but layer {index} of "
                f"{type(model).__name__} updates with {type(update).__name__}: use the SSM twin "
                f"(e.g. {type(model).__name__}SSM)."
            )
        if not isinstance(layer.norm, torch.nn.Identity):
            raise ValueError(
                f"calibrate needs layers without a norm after the update (layer {index} has "
                f"{type(layer.norm).__name__}): a norm rescales the state, so moving λ no longer "
                "moves the spectrum by the same amount. Build the model with norm=None."
            )
        if _lam(update) is None:
            raise ValueError(
                f"calibrate needs Λ = λI (state='identity'); layer {index} has a "
                f"{update.state_kind} Λ. Build the model with state='identity'."
            )
        for group in groups:
            if group.update is update:
                group.layers.append(index)
                break
        else:
            groups.append(_Group(update, [index]))
    return groups


class _Group:
    """One SSM update of the model, the layers that share it, and how calibration scales it:
    Λ = λI, B = ``factor`` × the B it was built with."""

    def __init__(self, update, layers):
        self.update, self.layers = update, layers
        self.built_lam, self.built_input = _lam(update), update.input_matrix.clone()
        self.factor = 1.0
        self.mu = []  # per layer: the top eigenvalue of J − λI per unit factor, last measured

    def set(self, lam):
        _set(self.update, lam, self.factor, self.built_input)


def _lam(update):
    return scaled_identity_scalar(update.state_matrix)


def _set(update, lam, factor, input_matrix):
    with torch.no_grad():
        matrix = update.state_matrix
        matrix.copy_(lam * torch.eye(update.dim, dtype=matrix.dtype, device=matrix.device))
        update.input_matrix.copy_(factor * input_matrix)


def _roots(mu, factor, target):
    """For each μ, the λ ≥ −b·Re μ with |λ + b μ| = target (None if none exists)."""
    roots = []
    for m in mu:
        imag = factor * m.imag
        root = -factor * m.real + math.sqrt(target**2 - imag**2) if abs(imag) <= target else None
        roots.append(root)
    return roots


def _group_lambda(mu, factor, target, aim, prefer=None):
    """One λ for a group: with ``prefer`` None, the middle of its roots; else the λ nearest
    ``prefer`` that puts every layer within ``target ± aim`` (the middle again if none does)."""
    roots = [r for r in _roots(mu, factor, target) if r is not None]
    if not roots:
        return target
    middle = (min(roots) + max(roots)) / 2
    if prefer is None:
        return middle
    low, high = _band(mu, factor, target - aim, target + aim)
    return min(max(prefer, low), high) if low <= high else middle


def _band(mu, factor, lowest, highest):
    """The λ (≥ −b·Re μ) with ``lowest ≤ |λ + b μ| ≤ highest`` for every μ, as (low, high);
    low > high when there is none."""
    low, high = -math.inf, math.inf
    for m in mu:
        real, imag = factor * m.real, abs(factor * m.imag)
        if imag > highest:
            return math.inf, -math.inf
        low = max(low, -real + math.sqrt(max(lowest**2 - imag**2, 0.0)))
        high = min(high, -real + math.sqrt(highest**2 - imag**2))
    return low, high


def _fit_group(mu, factor, target, aim):
    """``factor``, halved until the group's roots lie within ``2·aim`` of each other (the
    spread shrinks with the factor, so one λ can then serve every layer of the group)."""
    for _ in range(_MAX_SHRINK):
        roots = _roots(mu, factor, target)
        if None not in roots and max(roots) - min(roots) <= 2 * aim:
            return factor
        factor /= 2
    return factor


def _shrink_until_bounded(model, inputs, groups, target, bound, lam_for, largest=False):
    """Halve B (re-fitting λ) of the groups that feed any layer whose state norm leaves the
    bound, while that helps: as B → 0 the state tends to target^ℓ H⁽⁰⁾, inside the bound.
    Every group up to the deepest such layer is halved, so per-layer groups feeding a drift
    shrink together: halving only those up to the first one moves the drift deeper each time
    and leaves the early layers' B many times smaller than the deep ones'. With ``largest``,
    the groups of the last halving that brought the norms back are then grown by bisection
    (:func:`_grow_within`)."""
    worst, halved = math.inf, []
    for _ in range(_MAX_SHRINK):
        ratios = _norm_ratios(model, inputs, target)
        outside = _outside(ratios, bound)
        now = max(map(_drift, ratios), default=0.0)
        if not outside:
            if largest and halved:
                _grow_within(model, inputs, halved, target, bound, lam_for)
            return
        # Halving no longer helps; a state that overflowed (or vanished) has no measurable
        # drift, so B keeps halving until it is finite.
        if math.isfinite(now) and now >= worst:
            return
        worst = now
        halved = [group for group in groups if min(group.layers) <= outside[-1]]
        for group in halved:
            group.factor /= 2
            group.set(lam_for(group))


def _stack_memory(lams, target):
    """Π over layers of λ / target, from ``(λ, layers sharing it)`` pairs; 0 when some λ is
    not positive."""
    if any(lam <= 0 for lam, _ in lams):
        return 0.0
    return math.prod((lam / target) ** count for lam, count in lams)


def _memory(groups, target):
    """The stack's memory now, from the groups' Λ (see :func:`_stack_memory`)."""
    return _stack_memory([(_lam(group.update), len(group.layers)) for group in groups], target)


def _keep_memory(groups, target, bound, lam_for):
    """Halve B (re-fitting λ) of the group with the smallest λ until the stack's memory is at
    least ``1/bound``: a smaller B lets λ sit nearer the built one (λ = target − b·μ). A
    group whose λ no longer rises as its B halves (the λ rule holds it there) is left as it
    is; when none is left, the report says the bound was missed."""
    movable = {id(group): _MAX_SHRINK for group in groups}  # halvings left per group
    while _memory(groups, target) < 1 / bound and movable:
        lowest = min((g for g in groups if id(g) in movable), key=lambda g: _lam(g.update))
        before = _lam(lowest.update)
        lowest.factor /= 2
        lowest.set(lam_for(lowest))
        movable[id(lowest)] -= 1
        if _lam(lowest.update) <= before + _MEMORY_STEP:  # no headway: undo, leave it be
            lowest.factor *= 2
            lowest.set(lam_for(lowest))
            movable[id(lowest)] = 0
        if movable[id(lowest)] == 0:
            del movable[id(lowest)]


def _grow_within(model, inputs, groups, target, bound, lam_for):
    """Bisect a common multiple m ∈ [1, 2] of ``groups``' B factors (just halved back into
    the bound: m = 2 was outside it) for the largest m that keeps every state norm within it,
    re-fitting λ at each step."""
    halved = [group.factor for group in groups]

    def scale(multiple):
        for group, factor in zip(groups, halved):
            group.factor = factor * multiple
            group.set(lam_for(group))

    within, outside = 1.0, 2.0
    for _ in range(_BISECTIONS):
        middle = (within + outside) / 2
        scale(middle)
        if _outside(_norm_ratios(model, inputs, target), bound):
            outside = middle
        else:
            within = middle
    scale(within)


def _outside(ratios, bound):
    """The layers whose state norm ratio is outside ``[1/bound, bound]`` (NaN included)."""
    return [i for i, r in enumerate(ratios) if not 1 / bound <= r <= bound]


def _drift(ratio):
    """|log ratio|, infinite for a state norm that overflowed, vanished or is NaN."""
    return abs(math.log(ratio)) if 0 < ratio < math.inf else math.inf


@contextlib.contextmanager
def _each_warning_once():
    """Re-issue each distinct warning of the block once, when it ends. Each layer's spectrum
    says the same thing about its layer (e.g. GAT's finite-difference notice). Python's
    once-per-place rule holds that to one only until a filter changes: under ``"always"``,
    or after any ``catch_warnings`` between two layers (which resets the rule's registry), a
    64-layer stack would print it 64 times a round."""
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except BaseException as raised:  # given after the warnings, which may say why
            error = raised
    seen = set()
    for caught_warning in caught:
        message = caught_warning.message
        if (type(message), str(message)) not in seen:
            seen.add((type(message), str(message)))
            warnings.warn_explicit(message, type(message), caught_warning.filename,
                                   caught_warning.lineno)  # fmt: skip
    if error is not None:
        raise error


def _top_eigenvalues(model, inputs, options, progress=None):
    """The top eigenvalue (complex) of every layer's Jacobian where the model puts it."""
    graph, feat, edge_feat = inputs
    calls = layer_inputs(model, graph, feat, edge_feat)
    values = []
    with evaluating(model):
        for done, (layer, call) in enumerate(zip(model.layers, calls), 1):
            _, eigenvalues = top_eigenvalue_moduli(
                layer, call.graph, call.feat, edge_feat=call.edge_feat,
                layer_kwargs=call.kwargs, return_eigenvalues=True, **options,
            )  # fmt: skip
            values.append(complex(eigenvalues[0]))
            if progress is not None:
                progress(done, len(calls))
    return values


def _norm_ratios(model, inputs, target):
    """‖H⁽ℓ⁾‖ / (target^ℓ ‖H⁽⁰⁾‖) for ℓ = 1 … L (Frobenius norms, eval mode)."""
    graph, feat, edge_feat = inputs
    with evaluating(model), torch.no_grad(), recorded_states(model, True, "calibrate") as states:
        run_model(model, graph, feat, edge_feat)
    norms = [float(s.double().norm()) for s in states]
    return [n / max(norms[0] * target**layer, 1e-300) for layer, n in enumerate(norms[1:], 1)]
