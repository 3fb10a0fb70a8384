"""Interleaved wall-clock timing: A B A B …, so drift and other processes hit every model."""

import statistics
import time
from dataclasses import dataclass, field

import torch


@dataclass
class Samples:
    """Seconds per repeat, in round order (round ``i`` of every variant ran back to back)."""

    values: list = field(default_factory=list)

    @property
    def median(self):
        return statistics.median(self.values)

    @property
    def low(self):
        return min(self.values)

    @property
    def high(self):
        return max(self.values)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(run, device):
    """Seconds of one call of ``run``, with the device's queue drained on both sides."""
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


def interleaved(runs, repeats, warmup, device, min_seconds=0.0, max_rounds=25):
    """Time every ``runs[key]()`` round-robin after ``warmup`` untimed rounds.

    At least ``repeats`` rounds run; cheap runs get more, until every variant has been timed
    for ``min_seconds`` in total (at most ``max_rounds`` rounds). On a shared machine single
    epochs can be hit by long stalls, and many samples keep the median clear of them.

    Parameters
    ----------
    runs : dict of str → callable
        The epochs to compare; their order is the order within a round.
    repeats, warmup : int
        Least number of timed rounds, and untimed rounds before them (lazy
        initialisation, caches).
    device : torch.device
    min_seconds : float
        Least total timed seconds per variant.
    max_rounds : int
        Most timed rounds when ``min_seconds`` asks for more than ``repeats``.

    Returns
    -------
    dict of str → Samples
    """
    for _ in range(warmup):
        for run in runs.values():
            time_once(run, device)
    samples = {key: Samples() for key in runs}
    rounds = 0
    while rounds < repeats or (
        rounds < max_rounds and min(sum(s.values) for s in samples.values()) < min_seconds
    ):
        for key, run in runs.items():
            samples[key].values.append(time_once(run, device))
        rounds += 1
    return samples


def paired_ratios(numerator, denominator):
    """Per-round ratios of two interleaved sample series (both ran in the same round)."""
    return [a / b for a, b in zip(numerator.values, denominator.values)]
