"""Losses and metrics per task, with the direction in which each metric improves."""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def accuracy(pred, target):
    return (pred.argmax(-1) == target).float().mean().item()


def roc_auc(pred, target):
    """Binary ROC-AUC of the positive-class probability (Platonov et al.'s metric)."""
    from sklearn.metrics import roc_auc_score

    if pred.dim() == 2 and pred.shape[1] == 2:
        # The logit margin orders nodes as softmax(pred)[:, 1] does, without rounding every
        # margin above ~17 to a probability of exactly 1.0 (float32), where they would tie.
        score = pred[:, 1].double() - pred[:, 0].double()
    else:
        score = pred.view(-1)
    return float(roc_auc_score(target.cpu().numpy(), score.detach().cpu().numpy()))


def average_precision(pred, target):
    """Mean over tasks of the average precision (LRGB/OGB); tasks with one class are skipped."""
    from sklearn.metrics import average_precision_score

    pred, target = pred.detach().cpu().numpy(), target.cpu().numpy()
    scores = [
        average_precision_score(target[:, j], pred[:, j])
        for j in range(target.shape[1])
        if 0 < target[:, j].sum() < len(target)
    ]
    return float(np.mean(scores)) if scores else math.nan


def mae(pred, target):
    return (pred - target).abs().mean().item()


def log10_mse(pred, target):
    """log10 of the mean squared error over every target value (A-DGN's GPP metric)."""
    return math.log10(max((pred - target).pow(2).mean().item(), 1e-300))


@dataclass(frozen=True)
class Metric:
    fn: Callable
    higher_is_better: bool
    bounds: tuple = (-math.inf, math.inf)  # the values the metric can take

    @property
    def direction(self):
        """Optuna's name for the way the metric improves: ``"maximize"`` or ``"minimize"``."""
        return "maximize" if self.higher_is_better else "minimize"

    def better(self, a, b):
        """Whether value ``a`` is strictly better than ``b`` (``None`` is worst)."""
        if b is None or (isinstance(b, float) and math.isnan(b)):
            return not (a is None or (isinstance(a, float) and math.isnan(a)))
        if a is None or math.isnan(a):
            return False
        return a > b if self.higher_is_better else a < b


METRICS = {
    "accuracy": Metric(accuracy, True, (0.0, 1.0)),
    "roc_auc": Metric(roc_auc, True, (0.0, 1.0)),
    "ap": Metric(average_precision, True, (0.0, 1.0)),
    "mae": Metric(mae, False, (0.0, math.inf)),
    "log10_mse": Metric(log10_mse, False),
}


def loss_fn(name):
    """The training loss for a ``BenchmarkData.loss`` name."""
    import torch.nn.functional as F  # here: the leaderboard reads metrics without torch

    return {
        "cross_entropy": F.cross_entropy,
        "bce": lambda pred, target: F.binary_cross_entropy_with_logits(pred, target.to(pred.dtype)),
        "mse": F.mse_loss,
        "l1": F.l1_loss,
    }[name]
