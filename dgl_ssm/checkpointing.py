"""Activation checkpointing of a deep stack (``checkpoint=`` of the models): the layers are cut
into segments, of which only the inputs are kept in the forward pass, and each segment's
activations are recomputed when the backward pass reaches it. With √L segments of √L layers a
training step holds about 2√L layers' activations instead of L, for one more forward pass."""

from contextlib import contextmanager, nullcontext

import torch
import torch.utils.checkpoint
from torch import nn

from .checks import is_int


def segment_count(checkpoint, num_layers):
    """How many segments ``checkpoint`` asks for in a stack of ``num_layers``: ``True`` → √L
    (rounded, at least 1), ``False``/``None``/0 → none, an integer → that many (at most L)."""
    if checkpoint is True:
        return max(1, round(num_layers**0.5))
    if checkpoint is False or checkpoint is None:
        return 0
    if not is_int(checkpoint):
        raise TypeError(f"checkpoint must be a bool or a segment count, got {checkpoint!r}.")
    if checkpoint < 0:
        raise ValueError(f"checkpoint must be a bool or a segment count, got {checkpoint!r}.")
    return min(int(checkpoint), num_layers)


def run_in_segments(run_layers, layers, segments, state, edges):
    """``run_layers(start, end, state, edges)`` over all of ``layers`` (an ``nn.ModuleList``)
    in ``segments`` near-equal runs, each but the last checkpointed; returns the last
    ``(state, edges)``."""
    bounds = torch.linspace(0, len(layers), segments + 1, device="cpu").round().long().tolist()
    for start, end in zip(bounds[:-2], bounds[1:-1]):
        segment = _recomputed_with_stats_kept(run_layers, _batch_norms(layers[start:end]))
        state, edges = torch.utils.checkpoint.checkpoint(
            segment, start, end, state, edges, use_reentrant=False
        )
    # The backward pass needs the last segment's activations at once: recomputing them would
    # cost a forward pass and save no memory.
    return run_layers(bounds[-2], bounds[-1], state, edges)


def _recomputed_with_stats_kept(run_layers, norms):
    """``run_layers`` for one checkpointed call: its first run is the forward pass, every
    later one a recomputation in the backward pass, which keeps ``norms``' running statistics.
    (Not checkpoint's ``context_fn``, which torch 2.0 lacks.)"""
    runs = 0

    def segment(*args):
        nonlocal runs
        runs += 1
        with nullcontext() if runs == 1 else _running_stats_kept(norms):
            return run_layers(*args)

    return segment


def _batch_norms(modules):
    return [m for m in modules.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def _running_stats_kept(norms):
    """While a checkpointed segment is recomputed: BatchNorm normalises with the batch's
    statistics as in the forward pass (the output is the same) but leaves its running
    statistics as they are, so each training step updates them once, not twice. (Momentum 0
    keeps them; the recomputation must run the same ops, so the update itself stays.)"""
    kept = [(norm.momentum, norm.num_batches_tracked) for norm in norms]
    kept = [(m, None if n is None else n.clone()) for m, n in kept]
    for norm in norms:
        norm.momentum = 0.0
    try:
        yield
    finally:
        for norm, (momentum, batches) in zip(norms, kept):
            norm.momentum = momentum
            if batches is not None:
                norm.num_batches_tracked.copy_(batches)
