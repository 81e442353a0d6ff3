"""Pictures of a model's predictions on a few fixed validation images, as the seed report's qualitative
section shows them: per image, the image, segmentation truth and prediction (CityScapes colours, one
legend, void marked), the prediction over the image, and depth truth and prediction on one colour scale
(invalid pixels marked). Drawn with matplotlib's object API (no pyplot state, no display needed).
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import nn

from mtan.data import DataBundle, Split, iterate_batches
from mtan.data.cityscapes_labels import CLASS_COLOURS, CLASS_NAMES, VOID_COLOUR

COLUMNS = (
    "image",
    "segmentation: truth",
    "segmentation: prediction",
    "prediction over image",
    "depth: truth",
    "depth: prediction",
)
DEPTH_COLOURMAP = "viridis"
INVALID_DEPTH_COLOUR = "#ffffff"  # white: neither in viridis nor a CityScapes class colour
DEPTH_COLOURS = colormaps[DEPTH_COLOURMAP].with_extremes(bad=INVALID_DEPTH_COLOUR)
OVERLAY_OPACITY = 0.5
SYNTHETIC_NOTE = "synthetic data, not CityScapes"
PANEL_INCHES = 2.2  # width of one image panel


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
    """The model's class map (N,H,W) and depth (N,H,W) for the images `indices` of `split`, in eval mode."""
    subset = Split(split.images[indices], split.labels[indices], split.depth[indices])
    model.eval()
    classes, depth = [], []
    with torch.inference_mode():
        for batch in iterate_batches(subset, len(indices), device):
            out = model(batch.images)
            classes.append(out["segmentation"].argmax(1).cpu().numpy())
            depth.append(out["depth"][:, 0].float().cpu().numpy())
    return {"segmentation": np.concatenate(classes), "depth": np.concatenate(depth)}


def prediction_figure(
    model: nn.Module,
    data: DataBundle,
    indices: list[int],
    *,
    device: torch.device | None = None,
    title: str = "",
) -> Figure:
    """One row per validation image `indices` of `data`, the columns of `COLUMNS`; a legend of the class
    colours and void, one depth colour bar shared by truth and prediction, and `SYNTHETIC_NOTE` in red
    when the data is the synthetic set."""
    device = device or torch.device("cpu")
    val = data.val
    predicted = predict(model, val, indices, device)
    truth_depth = val.depth[indices]
    valid = truth_depth[truth_depth > 0]
    norm = Normalize(float(valid.min()), float(valid.max())) if valid.size else Normalize(0.0, 1.0)

    height, width = val.images.shape[2:]
    figure = Figure(
        figsize=(PANEL_INCHES * len(COLUMNS) + 1.0, PANEL_INCHES * height / width * len(indices) + 1.6),
        layout="constrained",
    )
    axes = figure.subplots(len(indices), len(COLUMNS), squeeze=False)
    for row, index in enumerate(indices):
        image = val.images[index].transpose(1, 2, 0)
        seg_truth = label_colours(val.labels[index], data.num_classes)
        seg_pred = label_colours(predicted["segmentation"][row], data.num_classes)
        overlay = (1 - OVERLAY_OPACITY) * image + OVERLAY_OPACITY * seg_pred
        depth_truth = np.ma.masked_less_equal(truth_depth[row], 0)
        panels = (image, seg_truth, seg_pred, overlay.round().astype(np.uint8))
        for column, picture in enumerate(panels):
            axes[row, column].imshow(picture, interpolation="nearest")
        for column, depth in ((4, depth_truth), (5, predicted["depth"][row])):
            shown = axes[row, column].imshow(depth, cmap=DEPTH_COLOURS, norm=norm, interpolation="nearest")
        for column, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(COLUMNS[column], fontsize=9)
        axes[row, 0].set_ylabel(f"val #{index}", fontsize=9)

    colour_bar = figure.colorbar(shown, ax=axes[:, 4:].ravel().tolist(), extend="both", shrink=0.9)
    colour_bar.set_label("depth value (inverse depth: larger = nearer)", fontsize=8)
    names = ("void (not scored)", *CLASS_NAMES[data.num_classes])
    colours = (VOID_COLOUR, *CLASS_COLOURS[data.num_classes])
    handles = [
        Patch(facecolor=np.array(c) / 255, edgecolor="#444444", label=n)
        for n, c in zip(names, colours, strict=True)
    ]
    handles.append(Patch(facecolor=INVALID_DEPTH_COLOUR, edgecolor="#444444", label="invalid depth"))
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 9), fontsize=8)
    heading = title or "predictions on fixed validation images"
    figure.suptitle(heading, fontsize=10)
    if data.source == "synthetic":
        figure.text(0.01, 0.995, SYNTHETIC_NOTE, color="#c00000", fontsize=10, weight="bold", va="top")
    return figure
