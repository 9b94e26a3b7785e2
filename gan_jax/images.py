"""uint8 image helpers at the edges of the graph: grids and PNG files (numpy + Pillow)."""

from __future__ import annotations

import math

import numpy as np


def tile(images: np.ndarray, cols: int) -> np.ndarray:
    """[rows*H, cols*W, C] grid of [N, H, W, C] images, rows = ceil(N / cols); the last row is padded with zeros."""
    n, h, w, c = images.shape
    rows = math.ceil(n / cols)
    pad = np.zeros((rows * cols - n, h, w, c), images.dtype)
    x = np.concatenate([images, pad])
    return x.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def save_png(path: str, image: np.ndarray) -> None:
    """Write a uint8 [H, W, C] image (C = 1 as grayscale)."""
    from PIL import Image  # noqa: PLC0415

    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)
