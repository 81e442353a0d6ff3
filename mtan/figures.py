"""Pictures of a model's predictions on a few fixed validation images, as the seed report's qualitative
section shows them: per image, the image, segmentation truth and prediction (CityScapes colours, one
legend, void marked), the prediction over the image, and depth truth and prediction on one colour scale
(invalid pixels marked). A single-task run's figure has the image and its task's columns only. Drawn
with matplotlib's object API (no pyplot state, no display needed).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import nn

from mtan.data import DataBundle, Split, iterate_batches
from mtan.data.cityscapes_labels import CLASS_COLOURS, CLASS_NAMES, VOID_COLOUR
from mtan.tasks import TASKS

IMAGE_COLUMN = "image"
# The columns each task adds after the image, in the order of `mtan.tasks.TASKS`.
TASK_COLUMNS: dict[str, tuple[str, ...]] = {
    "segmentation": ("segmentation: truth", "segmentation: prediction", "prediction over image"),
    "depth": ("depth: truth", "depth: prediction"),
}
DEPTH_COLOURMAP = "viridis"
INVALID_DEPTH_COLOUR = "#ffffff"  # white: neither in viridis nor a CityScapes class colour
DEPTH_COLOURS = colormaps[DEPTH_COLOURMAP].with_extremes(bad=INVALID_DEPTH_COLOUR)
OVERLAY_OPACITY = 0.5
SYNTHETIC_NOTE = "synthetic data, not CityScapes"
PANEL_INCHES = 2.2  # width of one image panel


def figure_columns(tasks: Collection[str]) -> tuple[str, ...]:
    """The figure's column titles for a model of `tasks`: the image, then each task's columns."""
    return (IMAGE_COLUMN, *(column for task in TASKS if task in tasks for column in TASK_COLUMNS[task]))


def fixed_indices(size: int, count: int = 4) -> list[int]:
    """`count` validation indices spread evenly over a split of `size` images, first and last included:
    the same images for every run on the same split."""
    return sorted({int(i) for i in np.linspace(0, size - 1, min(count, size)).round()})


def label_colours(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """RGB uint8 (..., 3) of a label map (...): CityScapes colour per class, `VOID_COLOUR` for void (-1)."""
    palette = np.array([VOID_COLOUR, *CLASS_COLOURS[num_classes]], np.uint8)
    return palette[labels.astype(np.int64) + 1]


def predict(
    model: nn.Module, split: Split, indices: list[int], device: torch.device
) -> dict[str, np.ndarray]:
    """The model's predictions for the images `indices` of `split`, in eval mode, for each of its tasks:
    the class map (N,H,W) of segmentation, the depth (N,H,W)."""
    subset = Split(split.images[indices], split.labels[indices], split.depth[indices])
    model.eval()
    with torch.inference_mode():
        (batch,) = iterate_batches(subset, len(indices), device)
        out = model(batch.images)
    picture_of = {"segmentation": lambda x: x.argmax(1), "depth": lambda x: x[:, 0].float()}
    return {task: picture_of[task](output).cpu().numpy() for task, output in out.items()}


def prediction_figure(
    model: nn.Module,
    data: DataBundle,
    indices: list[int],
    *,
    device: torch.device | None = None,
    title: str = "",
) -> Figure:
    """One row per validation image `indices` of `data`, the columns of `figure_columns` for the model's
    tasks; for segmentation a legend of the class colours and void, for depth one colour bar shared by
    truth and prediction (and invalid depth in the legend), and `SYNTHETIC_NOTE` in red when the data is
    the synthetic set."""
    device = device or torch.device("cpu")
    val = data.val
    predicted = predict(model, val, indices, device)
    columns = figure_columns(predicted)
    truth_depth = val.depth[indices]
    valid = truth_depth[truth_depth > 0]
    norm = Normalize(float(valid.min()), float(valid.max())) if valid.size else Normalize(0.0, 1.0)

    height, width = val.images.shape[2:]
    figure = Figure(
        figsize=(PANEL_INCHES * len(columns) + 1.0, PANEL_INCHES * height / width * len(indices) + 1.6),
        layout="constrained",
    )
    axes = figure.subplots(len(indices), len(columns), squeeze=False)
    for row, index in enumerate(indices):
        image = val.images[index].transpose(1, 2, 0)
        panels: dict[str, np.ndarray] = {IMAGE_COLUMN: image}
        if "segmentation" in predicted:
            seg_pred = label_colours(predicted["segmentation"][row], data.num_classes)
            overlay = (1 - OVERLAY_OPACITY) * image + OVERLAY_OPACITY * seg_pred
            panels.update(
                zip(
                    TASK_COLUMNS["segmentation"],
                    (
                        label_colours(val.labels[index], data.num_classes),
                        seg_pred,
                        overlay.round().astype(np.uint8),
                    ),
                    strict=True,
                )
            )
        for column, picture in panels.items():
            axes[row, columns.index(column)].imshow(picture, interpolation="nearest")
        if "depth" in predicted:
            depth_truth = np.ma.masked_less_equal(truth_depth[row], 0)
            for column, depth in zip(
                TASK_COLUMNS["depth"], (depth_truth, predicted["depth"][row]), strict=True
            ):
                ax = axes[row, columns.index(column)]
                shown = ax.imshow(depth, cmap=DEPTH_COLOURS, norm=norm, interpolation="nearest")
        for column, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[column], fontsize=9)
        axes[row, 0].set_ylabel(f"val #{index}", fontsize=9)

    handles = []
    if "segmentation" in predicted:
        names = ("void (not scored)", *CLASS_NAMES[data.num_classes])
        colours = (VOID_COLOUR, *CLASS_COLOURS[data.num_classes])
        handles += [
            Patch(facecolor=np.array(c) / 255, edgecolor="#444444", label=n)
            for n, c in zip(names, colours, strict=True)
        ]
    if "depth" in predicted:
        depth_axes = [columns.index(column) for column in TASK_COLUMNS["depth"]]
        colour_bar = figure.colorbar(
            shown, ax=axes[:, depth_axes].ravel().tolist(), extend="both", shrink=0.9
        )
        colour_bar.set_label("depth value (inverse depth: larger = nearer)", fontsize=8)
        handles.append(Patch(facecolor=INVALID_DEPTH_COLOUR, edgecolor="#444444", label="invalid depth"))
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 9), fontsize=8)
    heading = title or "predictions on fixed validation images"
    synthetic = data.source == "synthetic"
    # the note on a line of its own above the title: a figure of one task's columns is too narrow for both
    figure.suptitle("\n" + heading if synthetic else heading, fontsize=10)
    if synthetic:
        figure.text(0.01, 0.995, SYNTHETIC_NOTE, color="#c00000", fontsize=10, weight="bold", va="top")
    return figure
