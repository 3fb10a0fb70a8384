"""The pruners a sweep can stop unpromising trials with, by name."""

import optuna

from dgl_ssm_bench.references import SMOKE

PRUNERS = ("median", "hyperband", "none")


def default_pruner(protocol):
    """The pruner of a sweep that names none, for a space following ``protocol``: ``none``
    for a published protocol, which trains every configuration to its end (a pruned grid
    point is not a point of its grid), else ``median``."""
    return "median" if protocol in (None, SMOKE) else "none"


def prunes_the_protocol(pruner, protocol):
    """Whether ``pruner`` stops trials that the space's published ``protocol`` trains to
    their end (the leaderboard then sets none of its numbers beside the study)."""
    return pruner != "none" and default_pruner(protocol) == "none"


def make_pruner(name):
    """Optuna's pruner for ``name`` (one of :data:`PRUNERS`)."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=10)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()
