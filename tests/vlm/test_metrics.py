import math

import numpy as np
import pytest

from train_vlm.metrics import (
    UNPARSEABLE,
    balanced_accuracy,
    classification_report,
    confusion_matrix,
    per_class_recall,
    roc_auc,
)

CLASSES = ("no_dr", "dr")


def test_confusion_matrix_puts_unparseable_in_its_own_column():
    y_true = ["no_dr", "no_dr", "no_dr", "dr", "dr"]
    y_pred = ["no_dr", "dr", None, "dr", "something else"]
    matrix = confusion_matrix(y_true, y_pred, CLASSES)
    np.testing.assert_array_equal(matrix, [[1, 1, 1], [0, 1, 1]])


def test_recall_and_balanced_accuracy_by_hand():
    # no_dr: 3 of 4 right; dr: 1 of 2 right (the other unparseable) -> (0.75 + 0.5) / 2 = 0.625
    y_true = ["no_dr"] * 4 + ["dr"] * 2
    y_pred = ["no_dr", "no_dr", "no_dr", "dr", "dr", None]
    matrix = confusion_matrix(y_true, y_pred, CLASSES)
    np.testing.assert_allclose(per_class_recall(matrix), [0.75, 0.5])
    assert balanced_accuracy(y_true, y_pred, CLASSES) == pytest.approx(0.625)


def test_balanced_accuracy_skips_absent_classes():
    matrix = confusion_matrix(["dr", "dr", "dr"], ["dr", "no_dr", "dr"], CLASSES)
    assert math.isnan(per_class_recall(matrix)[0])
    assert balanced_accuracy(["dr", "dr", "dr"], ["dr", "no_dr", "dr"], CLASSES) == pytest.approx(2 / 3)
    assert math.isnan(balanced_accuracy([], [], CLASSES))


def test_roc_auc_by_hand_with_ties():
    # positives 0.9, 0.4, 0.4 ; negatives 0.4, 0.1. Pairs (pos > neg = 1, tie = 0.5):
    # 0.9: 1 + 1; 0.4: 0.5 + 1; 0.4: 0.5 + 1 -> 5 of 6.
    assert roc_auc([1, 1, 1, 0, 0], [0.9, 0.4, 0.4, 0.4, 0.1]) == pytest.approx(5 / 6)
    assert roc_auc([1, 0], [0.2, 0.8]) == pytest.approx(0.0)
    assert math.isnan(roc_auc([1, 1], [0.2, 0.8]))


def test_roc_auc_matches_pairwise_reference():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=60)
    scores = np.round(rng.random(60), 1)  # rounding makes many ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    reference = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert roc_auc(labels, scores) == pytest.approx(reference)


def test_classification_report_is_json_ready():
    report = classification_report(
        ["no_dr", "dr", "dr"], ["no_dr", None, "dr"], CLASSES, positive_class="dr", scores=[0.1, float("nan"), 0.8]
    )
    assert report["n"] == 3
    assert report["n_unparseable"] == 1
    assert report["confusion_matrix"]["columns_predicted"] == ["no_dr", "dr", UNPARSEABLE]
    assert report["balanced_accuracy"] == pytest.approx((1.0 + 0.5) / 2)
    assert report["n_scored"] == 2 and report["auc"] == pytest.approx(1.0)
    absent = classification_report(["dr"], ["dr"], CLASSES, positive_class="dr", scores=[0.5])
    assert absent["per_class_recall"]["no_dr"] is None and absent["auc"] is None
