"""The pruners a sweep can stop unpromising trials with, by name."""

import optuna

PRUNERS = ("median", "hyperband", "none")


def make_pruner(name):
    """Optuna's pruner for ``name`` (one of :data:`PRUNERS`)."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=10)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()
