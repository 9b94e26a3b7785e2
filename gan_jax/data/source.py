"""The interface every image source implements, and ``open_source``, which picks one from a string.

A source is a fixed, indexable set of images (and optional labels). It knows nothing of batches,
shuffling, flips or processes; ``pipeline.py`` does those. Images are uint8 NHWC at this edge
and become float in [-1, 1] only inside the compiled step (DESIGN.md, Conventions).

``spec`` forms of ``open_source``:

| spec                                  | source                                                  |
| ------------------------------------- | ------------------------------------------------------- |
| ``embedded``, ``embedded:shapes``      | ``EmbeddedShapes``: procedural, no download              |
| ``path/to/folder``, ``path/to/x.zip`` | ``ImageFolderSource``: NVIDIA ``dataset_tool.py`` layout |
| ``tfds:NAME``, ``tfds:NAME:SPLIT``    | ``TfdsSource``: a tensorflow-datasets dataset in memory  |

This module imports only numpy (the sources are imported when ``open_source`` needs them).
"""

from __future__ import annotations

import os
import re
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


_EMBEDDED_OPTIONS = {"num_images", "seed", "num_classes", "channels"}
_FOLDER_OPTIONS = {"use_labels", "max_images", "random_seed"}
_TFDS_OPTIONS = {"data_dir", "image_key", "label_key", "download"}
_TFDS_VERSION = re.compile(r"^\d+\.\d+\.\d+$")  # tfds names may carry a version: 'cifar10:3.0.2'


def _check_options(spec: str, kwargs: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"open_source({spec!r}) got unknown option(s) {unknown}; "
                         f"that kind of source takes a subset of {sorted(known)}")


def parse_tfds_spec(spec: str) -> tuple[str, str]:
    """``'tfds:NAME[/CONFIG][:VERSION][:SPLIT]'`` -> (name, split); split defaults to ``'train'``.

    The split may itself hold colons (``'tfds:cifar10:train[:90%]'``).
    """
    rest = spec[len("tfds:"):]
    parts = rest.split(":")
    name, parts = parts[0], parts[1:]
    if parts and _TFDS_VERSION.match(parts[0]):
        name, parts = f"{name}:{parts[0]}", parts[1:]
    split = ":".join(parts) if parts else "train"
    if not name or not split:
        raise ValueError(f"expected 'tfds:NAME' or 'tfds:NAME:SPLIT' (e.g. 'tfds:cifar10:train'), got {spec!r}")
    return name, split


def open_source(spec: str, resolution: int | None = None, **kwargs: Any) -> ImageSource:
    """The image source that ``spec`` names (see the module docstring for the forms).

    ``resolution``: the resolution the caller needs. The embedded source is generated at it (32 when
    None); a folder, zip or tfds source whose images have another size raises a ValueError (they
    are never resized silently: ``python -m gan_jax.data.prepare --resolution=R`` makes a dataset
    at R). ``kwargs`` go to the source: embedded ``num_images, seed, num_classes, channels``;
    folders/zips ``use_labels, max_images, random_seed``; tfds ``data_dir, image_key, label_key,
    download``.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"expected a source spec string ('embedded', a folder, a .zip or 'tfds:NAME'), got {spec!r}")
    if spec in ("embedded", "embedded:shapes"):
        from gan_jax.data.embedded import EmbeddedShapes

        _check_options(spec, kwargs, _EMBEDDED_OPTIONS)
        return EmbeddedShapes(32 if resolution is None else resolution, **kwargs)
    if spec.startswith("embedded:"):
        raise ValueError(f"unknown embedded dataset {spec!r}; the embedded dataset is 'embedded' (= 'embedded:shapes')")
    if spec.startswith("tfds:"):
        from gan_jax.data.tfds_source import open_tfds

        _check_options(spec, kwargs, _TFDS_OPTIONS)
        name, split = parse_tfds_spec(spec)
        return open_tfds(name, split, resolution=resolution, **kwargs)

    from gan_jax.data.image_folder import ImageFolderSource

    _check_options(spec, kwargs, _FOLDER_OPTIONS)
    path = os.path.expanduser(spec)
    if not os.path.exists(path) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path):
        raise ValueError(f"source {spec!r} looks like a URL; expected 'embedded', a local folder or .zip, or 'tfds:NAME' "
                         "(copy the dataset to a local disk first)")
    return ImageFolderSource(path, resolution=resolution, **kwargs)
