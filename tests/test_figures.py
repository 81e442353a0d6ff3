"""The prediction panel: class colours against CityScapes' published ones, fixed indices, and a panel
rendered from a tiny model on tiny data."""

import numpy as np
import torch
from PIL import Image

from mtan.config import make_config
from mtan.data import load_data
from mtan.figures import SYNTHETIC_NOTE, figure_columns, fixed_indices, label_colours, prediction_figure
from mtan.model import make_model
from tests.tiny_data import tiny_config, write_tiny_set


def test_label_colours_are_cityscapes_category_colours_with_void_black():
    labels = np.array([[-1, 0, 4], [6, 5, 1]], np.int8)
    expected = [[(0, 0, 0), (128, 64, 128), (70, 130, 180)], [(0, 0, 142), (220, 20, 60), (70, 70, 70)]]
    np.testing.assert_array_equal(label_colours(labels, 7), np.array(expected, np.uint8))
    assert tuple(label_colours(np.array([18]), 19)[0]) == (119, 11, 32)  # bicycle, the last train id


def test_fixed_indices_are_spread_evenly_and_do_not_depend_on_anything_else():
    assert fixed_indices(500, 4) == [0, 166, 333, 499]
    assert fixed_indices(3, 4) == [0, 1, 2]
    assert fixed_indices(1, 4) == [0]


def render(tmp_path, data, indices):
    torch.manual_seed(0)
    model = make_model(make_config("cpu", width=0.0625), data.num_classes)
    figure = prediction_figure(model, data, indices, title="tiny")
    path = tmp_path / "panel.png"
    figure.savefig(path, dpi=50)
    return figure, path


COLUMNS = (
    "image",
    "segmentation: truth",
    "segmentation: prediction",
    "prediction over image",
    "depth: truth",
    "depth: prediction",
)


def test_a_panel_has_a_row_per_image_and_the_six_columns(tmp_path):
    root = write_tiny_set(tmp_path / "tiny", train=2, val=5)
    data = load_data(tiny_config(root))
    figure, path = render(tmp_path, data, [0, 2, 4])
    assert figure_columns({"segmentation", "depth"}) == COLUMNS
    images = [ax for ax in figure.axes if ax.images]
    assert len(images) == 3 * len(COLUMNS) + 0  # the colour bar's axes hold no image
    assert [ax.get_title() for ax in images[: len(COLUMNS)]] == list(COLUMNS)
    assert [ax.get_ylabel() for ax in images[:: len(COLUMNS)]] == ["val #0", "val #2", "val #4"]
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend[0].startswith("void") and legend[-1] == "invalid depth" and len(legend) == 1 + 7 + 1
    # the data set was written by a test, not the synthetic default: no note
    assert SYNTHETIC_NOTE not in [text.get_text() for text in figure.texts]
    with Image.open(path) as png:  # the saved file is the figure, at the dpi asked for
        assert png.size == tuple(round(inches * 50) for inches in figure.get_size_inches())


def test_a_panel_of_the_synthetic_set_says_so(tmp_path):
    root = write_tiny_set(tmp_path / "tiny", train=2, val=2)
    data = load_data(tiny_config(root))
    synthetic = type(data)(data.train, data.val, data.num_classes, "synthetic")
    figure, _ = render(tmp_path, synthetic, [1])
    assert SYNTHETIC_NOTE in [text.get_text() for text in figure.texts]
