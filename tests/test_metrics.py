"""Metrics against a naive per-pixel loop and hand-worked cases."""

import math

import pytest
import torch

from mtan.losses import TASK_LOSSES
from mtan.metrics import (
    DELTA_M_KEYS,
    METRICS,
    DepthMetrics,
    SegmentationMetrics,
    confusion_matrix,
    delta_m,
    iou_from_confusion,
    metric,
    multitask_score,
    per_image_scores,
    tail_mean,
)
from mtan.tasks import TASKS, metric_accumulators, task_channels


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


def segmentation_result(predictions, targets, num_classes):
    metrics = SegmentationMetrics(num_classes)
    for prediction, target in zip(predictions, targets, strict=True):
        metrics.update(one_hot_logits(prediction, num_classes), target)
    return metrics.compute()


def test_accumulated_miou_and_pixel_accuracy_match_a_naive_loop():
    torch.manual_seed(0)
    num_classes = 5
    predictions = [torch.randint(0, num_classes, (2, 6, 7)) for _ in range(3)]
    targets = [torch.randint(-1, num_classes, (2, 6, 7)) for _ in range(3)]
    miou, accuracy = naive_accumulated(torch.cat(predictions), torch.cat(targets), num_classes)
    result = segmentation_result(predictions, targets, num_classes)
    assert result["miou"] == pytest.approx(miou, rel=1e-12)
    assert result["pixel_acc"] == pytest.approx(accuracy, rel=1e-12)


def test_a_class_absent_from_prediction_and_truth_is_left_out_of_the_mean():
    prediction = torch.tensor([[0, 0, 1, 1]])
    target = torch.tensor([[0, 1, 1, 1]])
    iou = iou_from_confusion(confusion_matrix(prediction, target, num_classes=3))
    assert iou[:2].tolist() == pytest.approx([1 / 2, 2 / 3])
    assert math.isnan(iou[2])  # class 2 occurs nowhere: 0/0, no IoU
    result = segmentation_result([prediction[None]], [target[None]], 3)
    assert result["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def naive_2019(predictions, targets, num_classes):
    """The official 2019 loop (lorenmt/mtan 8064cc6, compute_miou / compute_iou and the evaluation loop)
    written out per pixel: per image and class, union and intersection over all pixels, void included;
    per-image values averaged per batch, batch means averaged over batches."""
    miou_sum = acc_sum = 0.0
    for prediction, target in zip(predictions, targets, strict=True):
        batch_miou = batch_acc = 0.0
        for p_image, t_image in zip(prediction.tolist(), target.tolist(), strict=True):
            p_pixels = [p for row in p_image for p in row]
            t_pixels = [t for row in t_image for t in row]
            ious = []
            for c in range(num_classes):
                union = sum(1 for p, t in zip(p_pixels, t_pixels, strict=True) if p == c or t == c)
                intersection = sum(1 for p, t in zip(p_pixels, t_pixels, strict=True) if p == c and t == c)
                if union:
                    ious.append(intersection / union)
            batch_miou += sum(ious) / len(ious)
            correct = sum(1 for p, t in zip(p_pixels, t_pixels, strict=True) if p == t)
            batch_acc += correct / sum(1 for t in t_pixels if t >= 0)
        miou_sum += batch_miou / len(prediction)
        acc_sum += batch_acc / len(prediction)
    return miou_sum / len(predictions), acc_sum / len(predictions)


def test_2019_keys_match_the_official_loop_written_per_pixel():
    torch.manual_seed(1)
    num_classes = 4
    # batches of 3, 3 and an uneven last batch of 1; about a third of the pixels void
    predictions = [torch.randint(0, num_classes, (n, 5, 6)) for n in (3, 3, 1)]
    targets = [torch.randint(-1, num_classes, (n, 5, 6)) for n in (3, 3, 1)]
    miou, accuracy = naive_2019(predictions, targets, num_classes)
    result = segmentation_result(predictions, targets, num_classes)
    assert result["miou_2019"] == pytest.approx(miou, rel=1e-12)
    assert result["pixel_acc_2019"] == pytest.approx(accuracy, rel=1e-12)


def test_void_predicted_as_a_class_counts_in_its_union_in_2019_only():
    # truth 0 0 -1 -1, prediction 0 0 0 1: class 0 has intersection 2; its union is 3 in 2019 (the void
    # pixel predicted 0 counts) and 2 in 2020. Class 1 is predicted only on void: present with IoU 0 in
    # 2019, absent (empty union) in 2020. Pixel accuracy: 2 correct of 2 non-void pixels under both.
    target = torch.tensor([[[0, 0, -1, -1]]])
    prediction = torch.tensor([[[0, 0, 0, 1]]])
    result = segmentation_result([prediction], [target], 3)
    assert result["miou_2019"] == pytest.approx((2 / 3 + 0) / 2)
    assert result["miou_2020"] == pytest.approx(1.0)
    assert result["pixel_acc_2019"] == pytest.approx(1.0)
    assert result["miou"] == pytest.approx(1.0)  # accumulated: void excluded, class 1 never seen


def test_an_uneven_last_batch_weighs_as_a_full_batch():
    # batch 1: image 1 all right (mIoU 1); image 2 truth 0 1, prediction 0 0: IoU0 = 1/2, IoU1 = 0 -> 1/4.
    # batch 2 (the uneven last one): truth 1 1, prediction 0 0 -> mIoU 0.
    # official: ((1 + 1/4) / 2 + 0) / 2 = 5/16; the mean over images would be (1 + 1/4 + 0) / 3 = 5/12.
    first_truth = torch.tensor([[[0, 0]], [[0, 1]]])
    first_prediction = torch.tensor([[[0, 0]], [[0, 0]]])
    scores = per_image_scores(first_prediction, first_truth, 2)
    assert scores[:, 0].tolist() == pytest.approx([1.0, 1 / 4])
    last_truth, last_prediction = torch.tensor([[[1, 1]]]), torch.tensor([[[0, 0]]])
    result = segmentation_result([first_prediction, last_prediction], [first_truth, last_truth], 2)
    assert result["miou_2019"] == pytest.approx(5 / 16)
    assert result["pixel_acc_2019"] == pytest.approx(((1 + 1 / 2) / 2 + 0) / 2)


def test_per_image_scores_on_a_hand_worked_case():
    # image 0: truth 0 0 1 1, prediction 0 1 1 1 -> IoU0 = 1/2, IoU1 = 2/3, accuracy 3/4 (no void)
    # image 1: truth 2 2 -1 -1, prediction 2 0 0 1. 2019: IoU2 = 1/2, IoU0 = 0/2, IoU1 = 0/1;
    # 2020 (void masked): IoU2 = 1/2, IoU0 = 0/1, class 1 absent; accuracy 1/2
    target = torch.tensor([[[0, 0, 1, 1]], [[2, 2, -1, -1]]])
    prediction = torch.tensor([[[0, 1, 1, 1]], [[2, 0, 0, 1]]])
    scores = per_image_scores(prediction, target, num_classes=3)
    no_void = (1 / 2 + 2 / 3) / 2
    assert scores[0].tolist() == pytest.approx([no_void, no_void, 3 / 4])
    assert scores[1].tolist() == pytest.approx([(1 / 2 + 0 + 0) / 3, (1 / 2 + 0) / 2, 1 / 2])


def test_2019_rule_lowers_miou_on_random_predictions_with_void():
    torch.manual_seed(0)
    target = torch.randint(0, 7, (8, 32, 64))
    target[torch.rand(target.shape) < 0.2] = -1
    prediction = torch.randint(0, 7, (8, 32, 64))
    result = segmentation_result([prediction], [target], 7)
    # void pixels predicted as c enlarge c's union by about 20 %: IoU ~ 1/13 -> ~ 1/14.6
    assert result["miou_2019"] < result["miou_2020"] - 0.005


def test_depth_errors_in_both_averaging_conventions():
    # batch 1 (two images): valid errors |0.1-0.2|, |0.4-0.2|; an invalid pixel predicted 5.0 is ignored
    # batch 2 (the uneven last batch, one image): one valid pixel, error |0.3-0.5| = 0.2
    metrics = DepthMetrics()
    metrics.update(torch.tensor([[[[0.1, 5.0]]], [[[0.4, 0.0]]]]), torch.tensor([[[0.2, 0.0]], [[0.2, 0.0]]]))
    metrics.update(torch.tensor([[[[0.3, 1.0]]]]), torch.tensor([[[0.5, 0.0]]]))
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


def test_a_depth_batch_without_a_valid_pixel_gives_nan_batch_means_as_the_official_division():
    metrics = DepthMetrics()
    metrics.update(torch.tensor([[[[0.1]]]]), torch.tensor([[[0.2]]]))
    metrics.update(torch.tensor([[[[0.1]]]]), torch.tensor([[[0.0]]]))
    result = metrics.compute()
    assert result["abs_err"] == pytest.approx(0.1)
    assert math.isnan(result["abs_err_batch_mean"])


def test_every_metric_has_a_task_of_the_pipeline_and_unknown_names_are_errors():
    assert {m.task for m in METRICS.values()} == {*TASKS, "multitask"}
    assert set(TASK_LOSSES) == set(task_channels(7)) == set(metric_accumulators(7)) == set(TASKS)
    assert metric("abs_err").higher_is_better is False
    assert metric("miou_2019").convention == metric("abs_err_batch_mean").convention
    with pytest.raises(KeyError, match="unknown metric 'delta_m'"):
        metric("delta_m")


def test_tail_mean_averages_the_last_ten_epochs_or_all_when_fewer():
    history = [{"epoch": e, "miou": e / 100, "abs_err": 1.0 / e} for e in range(1, 13)]
    tail = tail_mean(history)
    assert tail["miou"] == pytest.approx(sum(range(3, 13)) / 10 / 100)
    assert tail["abs_err"] == pytest.approx(sum(1.0 / e for e in range(3, 13)) / 10)
    assert set(tail) == {"miou", "abs_err"}
    assert tail_mean(history[:3])["miou"] == pytest.approx(0.02)
    assert tail_mean(history, n=1)["miou"] == pytest.approx(0.12)
    with_gap = [*history[:-1], {"epoch": 12, "miou": None, "abs_err": 0.5}]
    assert math.isnan(tail_mean(with_gap)["miou"])  # a NaN (null in JSON) epoch is not skipped


def test_delta_m_signs_a_better_metric_negative_in_either_direction():
    single = {"miou": 0.50, "abs_err": 0.020}
    # mIoU (higher is better) 0.50 -> 0.55: +10 % better, so -10; abs err (lower is better)
    # 0.020 -> 0.025: 25 % worse, so +25
    assert delta_m({"miou": 0.55, "abs_err": 0.020}, single, ["miou", "abs_err"]) == pytest.approx(-5.0)
    assert delta_m({"miou": 0.50, "abs_err": 0.025}, single, ["miou", "abs_err"]) == pytest.approx(12.5)
    assert delta_m({"miou": 0.55, "abs_err": 0.025}, single, ["miou", "abs_err"]) == pytest.approx(7.5)
    assert delta_m({"miou": 0.45}, single, ["miou"]) == pytest.approx(10.0)  # worse mIoU: positive
    assert delta_m({"abs_err": 0.015}, single, ["abs_err"]) == pytest.approx(-25.0)  # better depth: negative
    assert delta_m(single, single, ["miou", "abs_err"]) == 0.0


# Nash-MTL (Navon et al. 2022, arXiv 2202.01017) Table 3, CityScapes, as published: mIoU %, pix acc %,
# abs err, rel err; its Delta_m column gives 22.60 for LS (and 21.45 for DWA) against the STL row.
NASH_STL = {"miou": 74.01, "pixel_acc": 93.16, "abs_err": 0.0125, "rel_err": 27.77}
NASH_LS = {"miou": 75.18, "pixel_acc": 93.49, "abs_err": 0.0155, "rel_err": 46.77}
NASH_DWA = {"miou": 75.24, "pixel_acc": 93.52, "abs_err": 0.0160, "rel_err": 44.37}
# Half a unit of each published value's last digit.
NASH_ROUNDING = {"miou": 0.005, "pixel_acc": 0.005, "abs_err": 0.00005, "rel_err": 0.005}


def rounding_bound(method, single):
    """How far Delta_m can move when every input moves by up to half a unit of its last published digit
    (first order: |d/dM| = 1/B, |d/dB| = M/B^2 per term, times 100/K), plus the published value's own
    rounding (0.005)."""
    terms = (NASH_ROUNDING[k] * (1 + method[k] / single[k]) / single[k] for k in DELTA_M_KEYS)
    return 100 / len(DELTA_M_KEYS) * sum(terms) + 0.005


def test_delta_m_reproduces_the_nash_mtl_table_within_the_rounding_of_its_inputs():
    assert DELTA_M_KEYS == ("miou", "pixel_acc", "abs_err", "rel_err")
    for method, published in ((NASH_LS, 22.60), (NASH_DWA, 21.45)):
        bound = rounding_bound(method, NASH_STL)
        assert bound < 0.3  # dominated by abs err, published with 2 significant digits
        assert abs(delta_m(method, NASH_STL) - published) <= bound
    # a percentage and a fraction give the same Delta_m (each term is a ratio)
    as_fractions = {k: v / 100 if METRICS[k].percent else v for k, v in NASH_LS.items()}
    stl_fractions = {k: v / 100 if METRICS[k].percent else v for k, v in NASH_STL.items()}
    assert delta_m(as_fractions, stl_fractions) == pytest.approx(delta_m(NASH_LS, NASH_STL), rel=1e-12)


def test_delta_m_refuses_a_zero_or_missing_single_task_value_and_propagates_nan():
    with pytest.raises(ValueError, match="single-task abs_err is 0"):
        delta_m({"abs_err": 0.1}, {"abs_err": 0.0}, ["abs_err"])
    with pytest.raises(KeyError, match="rel_err"):
        delta_m(NASH_LS, {k: v for k, v in NASH_STL.items() if k != "rel_err"})
    with pytest.raises(KeyError, match="unknown metric 'seconds'"):
        delta_m({"seconds": 1.0}, {"seconds": 2.0}, ["seconds"])
    with pytest.raises(ValueError, match="at least one metric"):
        delta_m(NASH_LS, NASH_STL, [])
    assert math.isnan(delta_m({**NASH_LS, "miou": math.nan}, NASH_STL))
