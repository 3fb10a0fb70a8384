"""The pruners a sweep can stop unpromising trials with, by name."""

import optuna

from dgl_ssm_bench.references import SMOKE

PRUNERS = ("median", "hyperband", "none")
#: A trial's status when it was refused for the space's parameter budget (told as pruned).
OVER_BUDGET = "over_budget"


def published(protocol):
    """Whether ``protocol`` is a published one (which trains every configuration to its end),
    not none or the quick suite's smoke budget."""
    return protocol not in (None, SMOKE)


def default_pruner(protocol):
    """The pruner of a sweep that names none, for a space following ``protocol``: ``none``
    for a published protocol (a pruned grid point is not a point of its grid), else
    ``median``."""
    return "none" if published(protocol) else "median"


def prunes_the_protocol(pruner, protocol):
    """Whether ``pruner`` stops trials that the space's published ``protocol`` trains to
    their end (the leaderboard then sets none of its numbers beside the study)."""
    return pruner != "none" and published(protocol)


def stopped_by_a_pruner(state, status):
    """Whether a trial in ``state`` (a TrialState's name) with user attr ``status`` was
    stopped by a pruner: pruned, and not refused for the parameter budget (which a protocol
    such as LRGB's has)."""
    return state == "PRUNED" and status != OVER_BUDGET


def make_pruner(name):
    """Optuna's pruner for ``name`` (one of :data:`PRUNERS`)."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=10)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()
