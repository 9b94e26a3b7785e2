"""What every image source shares: the ``ImageSource`` interface and the index / label helpers.

A source is a fixed, indexable set of images (and optional labels). It knows nothing of batches,
shuffling, flips or processes; ``pipeline.py`` does those. Images are uint8 NHWC at this edge
and become float in [-1, 1] only inside the compiled step (docs/design.md, Conventions).

The bottom of ``gan_jax.data``: the concrete sources (``embedded``, ``image_folder``,
``tfds_source``) and ``pipeline`` import this module; ``source.open_source`` imports them. It
imports only numpy.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ImageSource(Protocol):
    """A fixed set of ``num_images`` square images of ``resolution`` and ``channels``, with labels.

    ``name`` is a stable id of the exact pixels (used to cache real-image statistics), e.g.
    ``'embedded:shapes-32-4096-0'``. ``label_dim`` is 0 for an unlabeled source.
    """

    name: str
    resolution: int
    channels: int
    num_images: int
    label_dim: int

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 [n, R, R, C] for the int indices [n] (a new array the caller may modify)."""
        ...

    def labels(self, indices: np.ndarray) -> np.ndarray:
        """float32 [n, label_dim] for the int indices [n] (one-hot for class labels)."""
        ...


def check_indices(indices: Any, num_images: int, name: str) -> np.ndarray:
    """``indices`` as an int64 [n] array, each in [0, num_images), or a ValueError naming ``name``."""
    idx = np.asarray(indices)
    if idx.ndim != 1 or not (idx.size == 0 or np.issubdtype(idx.dtype, np.integer)):
        raise ValueError(f"{name}: indices must be a 1-D integer array, got dtype {idx.dtype} shape {idx.shape}")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= num_images):
        bad = int(idx[(idx < 0) | (idx >= num_images)][0])
        raise ValueError(f"{name}: index {bad} is out of range; the source has {num_images} images (0..{num_images - 1})")
    return idx


def one_hot(classes: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 [n, num_classes] from int class ids [n]."""
    out = np.zeros((len(classes), num_classes), np.float32)
    out[np.arange(len(classes)), classes] = 1.0
    return out
