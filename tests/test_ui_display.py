"""The shared picture helpers of the notebook widgets: every kind of image a widget hands over
(tensor, array, Pillow) becomes the same PNG, pixel for pixel."""

from __future__ import annotations

import io

import ipywidgets as widgets
import numpy as np
import pytest
import torch
from PIL import Image

from splatcourse.ui import display, widgets2d
from splatcourse.ui.display import image_to_png, titled, to_pil, whole_zoom


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png))).astype(int)


def test_widgets2d_still_exports_the_shared_image_to_png() -> None:
    assert widgets2d.image_to_png is display.image_to_png


def test_float_pixels_round_to_nearest_and_clip() -> None:
    image = torch.tensor([[-0.5, 0.0, 0.5 / 255], [0.5, 1.0, 1.5]])  # [2, 3] grey
    assert decode(image_to_png(image)).tolist() == [[0, 0, 1], [128, 255, 255]]


def test_tensor_array_and_pillow_give_the_same_png() -> None:
    image = torch.rand(5, 7, 3, generator=torch.Generator().manual_seed(0))  # [H, W, 3]
    pixels = (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()  # [H, W, 3] uint8
    from_tensor = image_to_png(image, zoom=3)
    assert from_tensor == image_to_png(image.numpy(), zoom=3)
    assert from_tensor == image_to_png(pixels, zoom=3)
    assert from_tensor == image_to_png(Image.fromarray(pixels), zoom=3)
    assert from_tensor == image_to_png(to_pil(image, 3))
    assert (decode(from_tensor)[::3, ::3] == pixels).all()


def test_zoom_repeats_each_pixel_as_a_square() -> None:
    image = torch.tensor([[0.0, 1.0]])  # [1, 2] grey
    assert decode(image_to_png(image, zoom=2)).tolist() == [[0, 0, 255, 255], [0, 0, 255, 255]]


def test_one_channel_images_are_grey() -> None:
    image = torch.rand(4, 6, 1)  # [H, W, 1]
    assert image_to_png(image) == image_to_png(image[..., 0])
    assert decode(image_to_png(image)).shape == (4, 6)


@pytest.mark.parametrize(
    "image, error, match",
    [
        (
            torch.rand(4, 4, 2),
            ValueError,
            r"image_to_png wants \[H, W\] or \[H, W, 3\], got \(4, 4, 2",
        ),
        (torch.rand(4), ValueError, r"got \(4,\)"),
        ([[0.0, 1.0]], TypeError, "got list"),
    ],
)
def test_bad_images_are_refused_by_name(image, error, match) -> None:
    with pytest.raises(error, match=match):
        image_to_png(image)


@pytest.mark.parametrize("zoom", [0, 1.5])
def test_zoom_must_be_a_whole_number(zoom) -> None:
    with pytest.raises(ValueError, match="zoom must be a whole number"):
        image_to_png(torch.rand(2, 2), zoom=zoom)


def test_whole_zoom_is_the_nearest_whole_factor() -> None:
    assert whole_zoom(40, 256) == 6  # 240 px shown
    assert whole_zoom(192, 384) == 2
    assert whole_zoom(1000, 256) == 1  # never shrinks


def test_titled_puts_a_bold_title_above_its_children() -> None:
    image, label = widgets.Image(format="png"), widgets.HTML("x")
    box = titled("Target", image, label)
    assert isinstance(box, widgets.VBox)
    assert box.children[0].value == "<b>Target</b>"
    assert box.children[1:] == (image, label)
