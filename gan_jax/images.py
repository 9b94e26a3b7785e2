"""uint8 image helpers at the edges of the graph: grids and PNG files (numpy + Pillow)."""

from __future__ import annotations

import io
import math
import os

import numpy as np


def tile(images: np.ndarray, cols: int) -> np.ndarray:
    """[rows*H, cols*W, C] grid of [N, H, W, C] images, rows = ceil(N / cols); the last row is padded with zeros."""
    n, h, w, c = images.shape
    rows = math.ceil(n / cols)
    pad = np.zeros((rows * cols - n, h, w, c), images.dtype)
    x = np.concatenate([images, pad])
    return x.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def image_grid(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """uint8 [rows*H, cols*W, C] from float images [N >= rows*cols, H, W, C] in [-1, 1]."""
    x = np.clip(np.rint(np.asarray(images, np.float32) * 127.5 + 128), 0, 255).astype(np.uint8)[: rows * cols]
    return tile(x, cols)


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 [H, W, C] image (C = 1 as grayscale) to a local or ``gs://`` path (etils epath)."""
    from PIL import Image  # noqa: PLC0415
    from etils import epath  # noqa: PLC0415 (local paths or gs://)

    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
    epath.Path(path).write_bytes(buffer.getvalue())


save_png = write_png  # the sampling tools' name
