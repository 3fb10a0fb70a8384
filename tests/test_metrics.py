"""The benchmark metrics against values worked out by hand on four samples."""

import math

import pytest
import torch

from dgl_ssm_bench.metrics import METRICS, loss_fn


def test_accuracy_counts_the_argmax_hits():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 4.0], [1.0, 0.0]])
    assert METRICS["accuracy"].fn(logits, torch.tensor([0, 1, 1, 1])) == 0.5


@pytest.mark.parametrize("two_columns", [False, True])
def test_roc_auc_is_the_share_of_positive_negative_pairs_in_order(two_columns):
    # Positives score 0.35 and 0.8, negatives 0.1 and 0.4: 3 of the 4 pairs are in order.
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8])
    target = torch.tensor([0, 0, 1, 1])
    # Two columns are logits; softmax(·)[:, 1] = sigmoid(s) orders the samples as s does.
    pred = torch.stack([torch.zeros(4), scores], 1) if two_columns else scores[:, None]
    assert METRICS["roc_auc"].fn(pred, target) == pytest.approx(0.75)


def test_roc_auc_keeps_the_order_of_confident_logits():
    # softmax(·)[:, 1] of margins 17, 20 and 25 is 1.0 in float32 for all three: they would
    # tie, and the negative at 17 would count as ½ against each positive. In order: 1.0.
    pred = torch.tensor([[0.0, 17.0], [0.0, 20.0], [0.0, 25.0], [0.0, -3.0]])
    assert METRICS["roc_auc"].fn(pred, torch.tensor([0, 1, 1, 0])) == 1.0


def test_roc_auc_of_two_free_logits_ranks_by_the_margin():
    # A model's two logits are both free: the class-1 probability softmax(·)[:, 1] orders the
    # samples by the margin b − a (−1, 0.5, 0.2, −1): both positives above both negatives, 1.0.
    # Column 1 alone (1, 0.5, 3.2, −2) would put the negative at 1 above the positive at 0.5.
    pred = torch.tensor([[2.0, 1.0], [0.0, 0.5], [3.0, 3.2], [-1.0, -2.0]])
    assert METRICS["roc_auc"].fn(pred, torch.tensor([0, 1, 1, 0])) == 1.0


def test_average_precision_is_the_mean_over_tasks_with_both_classes():
    pred = torch.tensor([[0.9, 0.2, 0.3], [0.8, 0.9, 0.1], [0.7, 0.5, 0.2], [0.1, 0.1, 0.4]])
    target = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    # Task 0: positives ranked 1st and 3rd, AP = ½·1 + ½·⅔; task 1: ranked 1st, AP = 1;
    # task 2 has no positive and is skipped.
    assert METRICS["ap"].fn(pred, target) == pytest.approx((5 / 6 + 1) / 2)
    assert math.isnan(METRICS["ap"].fn(pred[:, 2:], target[:, 2:]))
    # A task whose labels are all positive has one class too, and is skipped alike (OGB).
    assert METRICS["ap"].fn(
        pred, torch.cat([target[:, :2], torch.ones_like(target[:, 2:])], 1)
    ) == (pytest.approx((5 / 6 + 1) / 2))


def test_mae_and_log10_mse_of_errors_one_and_three():
    pred, target = torch.tensor([1.0, 5.0]), torch.tensor([0.0, 2.0])
    assert METRICS["mae"].fn(pred, target) == pytest.approx(2.0)
    assert METRICS["log10_mse"].fn(pred, target) == pytest.approx(math.log10(5.0))


@pytest.mark.parametrize(
    ("name", "lower"), [("accuracy", False), ("roc_auc", False), ("ap", False),
                        ("mae", True), ("log10_mse", True)]
)  # fmt: skip
def test_better_follows_the_direction_of_each_metric(name, lower):
    metric = METRICS[name]
    assert metric.better(0.1, 0.2) is lower
    assert metric.better(0.2, 0.1) is not lower
    assert metric.better(0.2, 0.2) is False
    assert metric.direction == ("minimize" if lower else "maximize")
    # A missing or NaN value is the worst: anything beats it, it beats nothing.
    assert metric.better(0.5, None) and metric.better(0.5, math.nan)
    assert not metric.better(None, 0.5) and not metric.better(math.nan, 0.5)


def test_binary_loss_is_taken_in_the_model_dtype():
    # ln(1 + e^{-x}) for label 1 and ln(1 + e^{x}) for label 0, at x = 0.1 and 2: in float64
    # to ~1e-16, which a float32 copy of the labels would round to ~1e-8.
    pred = torch.tensor([[0.1], [2.0]], dtype=torch.float64)
    loss = loss_fn("bce")(pred, torch.tensor([[1], [0]]))
    expected = (math.log1p(math.exp(-0.1)) + math.log1p(math.exp(2.0))) / 2
    assert loss.dtype == torch.float64 and abs(loss.item() - expected) < 1e-14


def test_mae_counts_an_error_below_the_target_as_much_as_one_above():
    """Errors +1 and −2: MAE 1.5 (sklearn's too), not the mean signed error −0.5."""
    from sklearn.metrics import mean_absolute_error

    pred, target = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    assert METRICS["mae"].fn(pred, target) == pytest.approx(1.5)
    assert METRICS["mae"].fn(pred, target) == pytest.approx(mean_absolute_error(target, pred))


def test_log10_mse_of_a_perfect_prediction_is_a_floor_not_an_error():
    """An exact fit has MSE 0, whose log10 would raise: the metric reports log10(1e-300)."""
    target = torch.tensor([0.5, -2.0, 3.0])
    assert METRICS["log10_mse"].fn(target.clone(), target) == pytest.approx(-300.0)


def test_regression_losses_of_errors_one_and_three():
    """``mse`` trains on the mean squared error (5), ``l1`` on the mean absolute error (2)."""
    pred, target = torch.tensor([1.0, 5.0]), torch.tensor([0.0, 2.0])
    assert loss_fn("mse")(pred, target).item() == pytest.approx(5.0)
    assert loss_fn("l1")(pred, target).item() == pytest.approx(2.0)


def test_average_precision_counts_the_last_task_too():
    """The hand-worked tasks in reverse order (the one-class task first): the same mean."""
    pred = torch.tensor([[0.3, 0.2, 0.9], [0.1, 0.9, 0.8], [0.2, 0.5, 0.7], [0.4, 0.1, 0.1]])
    target = torch.tensor([[0, 0, 1], [0, 1, 0], [0, 0, 1], [0, 0, 0]])
    assert METRICS["ap"].fn(pred, target) == pytest.approx((1 + 5 / 6) / 2)


def test_ranking_metrics_take_predictions_that_still_require_grad():
    """A model's raw output (with a graph for autograd) is scored as its values are."""
    pred = torch.tensor([[2.0, 1.0], [0.0, 0.5], [3.0, 3.2], [-1.0, -2.0]], requires_grad=True)
    assert METRICS["roc_auc"].fn(pred, torch.tensor([0, 1, 1, 0])) == 1.0
    assert METRICS["roc_auc"].fn(pred[:, 1:], torch.tensor([0, 1, 1, 0])) == 0.75
