"""Metrics against a naive per-pixel loop and hand-worked cases."""

import math

import pytest
import torch

from mtan.metrics import SplitMetrics, confusion_matrix, iou_from_confusion, multitask_score, per_image_scores


def naive_accumulated(prediction, target, num_classes):
    """mIoU and pixel accuracy with plain Python loops over every pixel."""
    tp, fp, fn = [0] * num_classes, [0] * num_classes, [0] * num_classes
    correct = total = 0
    for p, t in zip(prediction.flatten().tolist(), target.flatten().tolist(), strict=True):
        if t < 0:
            continue
        total += 1
        if p == t:
            tp[t] += 1
            correct += 1
        else:
            fp[p] += 1
            fn[t] += 1
    ious = [tp[c] / (tp[c] + fp[c] + fn[c]) for c in range(num_classes) if tp[c] + fp[c] + fn[c] > 0]
    return sum(ious) / len(ious), correct / total


def one_hot_logits(prediction, num_classes):
    return torch.nn.functional.one_hot(prediction, num_classes).permute(0, 3, 1, 2).float()


def test_accumulated_miou_and_pixel_accuracy_match_a_naive_loop():
    torch.manual_seed(0)
    num_classes = 5
    metrics = SplitMetrics(num_classes)
    predictions, targets = [], []
    for _ in range(3):
        prediction = torch.randint(0, num_classes, (2, 6, 7))
        target = torch.randint(-1, num_classes, (2, 6, 7))
        metrics.update(
            one_hot_logits(prediction, num_classes), target, torch.zeros(2, 1, 6, 7), torch.zeros(2, 6, 7)
        )
        predictions.append(prediction)
        targets.append(target)
    miou, accuracy = naive_accumulated(torch.cat(predictions), torch.cat(targets), num_classes)
    result = metrics.compute()
    assert result["miou"] == pytest.approx(miou, rel=1e-12)
    assert result["pixel_acc"] == pytest.approx(accuracy, rel=1e-12)


def test_a_class_absent_from_prediction_and_truth_is_left_out_of_the_mean():
    prediction = torch.tensor([[0, 0, 1, 1]])
    target = torch.tensor([[0, 1, 1, 1]])
    iou = iou_from_confusion(confusion_matrix(prediction, target, num_classes=3))
    assert iou[:2].tolist() == pytest.approx([1 / 2, 2 / 3])
    assert math.isnan(iou[2])  # class 2 occurs nowhere: 0/0, no IoU
    metrics = SplitMetrics(3)
    metrics.update(
        one_hot_logits(prediction[None], 3)[0][None],
        target[None],
        torch.zeros(1, 1, 1, 4),
        torch.zeros(1, 1, 4),
    )
    assert metrics.compute()["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_per_image_miou_on_a_hand_worked_case():
    # image 0: truth 0 0 1 1, prediction 0 1 1 1 -> IoU0 = 1/2, IoU1 = 2/3, accuracy 3/4
    # image 1: truth 2 2 -1 -1, prediction 2 0 0 0 -> valid pixels 2: IoU2 = 1/2, IoU0 = 0/1; accuracy 1/2
    target = torch.tensor([[[0, 0, 1, 1]], [[2, 2, -1, -1]]])
    prediction = torch.tensor([[[0, 1, 1, 1]], [[2, 0, 0, 0]]])
    scores = per_image_scores(prediction, target, num_classes=3)
    assert scores[0].tolist() == pytest.approx([(1 / 2 + 2 / 3) / 2, 3 / 4])
    assert scores[1].tolist() == pytest.approx([(1 / 2 + 0) / 2, 1 / 2])
    metrics = SplitMetrics(3)
    metrics.update(one_hot_logits(prediction, 3), target, torch.zeros(2, 1, 1, 4), torch.zeros(2, 1, 4))
    result = metrics.compute()
    assert result["miou_per_image"] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1 / 4) / 2)
    assert result["pixel_acc_per_image"] == pytest.approx((3 / 4 + 1 / 2) / 2)


def test_depth_errors_in_both_averaging_conventions():
    # batch 1 (two images): valid errors |0.1-0.2|, |0.4-0.2|; an invalid pixel predicted 5.0 is ignored
    # batch 2 (the uneven last batch, one image): one valid pixel, error |0.3-0.5| = 0.2
    metrics = SplitMetrics(2)
    seg = torch.zeros(2, 2, 1, 2)
    metrics.update(
        seg,
        torch.zeros(2, 1, 2, dtype=torch.long),
        torch.tensor([[[[0.1, 5.0]]], [[[0.4, 0.0]]]]),
        torch.tensor([[[0.2, 0.0]], [[0.2, 0.0]]]),
    )
    metrics.update(
        seg[:1],
        torch.zeros(1, 1, 2, dtype=torch.long),
        torch.tensor([[[[0.3, 1.0]]]]),
        torch.tensor([[[0.5, 0.0]]]),
    )
    result = metrics.compute()
    assert result["abs_err"] == pytest.approx((0.1 + 0.2 + 0.2) / 3)
    assert result["rel_err"] == pytest.approx((0.1 / 0.2 + 0.2 / 0.2 + 0.2 / 0.5) / 3)
    assert result["abs_err_batch_mean"] == pytest.approx(((0.1 + 0.2) / 2 + 0.2) / 2)
    assert result["rel_err_batch_mean"] == pytest.approx(((0.5 + 1.0) / 2 + 0.4) / 2)


def test_multitask_score_is_zero_at_the_baselines_and_one_when_perfect():
    baselines = {"miou": 0.1, "abs_err": 0.2}
    assert multitask_score(baselines, baselines) == 0.0
    assert multitask_score({"miou": 1.0, "abs_err": 0.0}, baselines) == 1.0
    assert multitask_score({"miou": 0.55, "abs_err": 0.2}, baselines) == pytest.approx(0.25)
