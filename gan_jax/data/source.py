"""``open_source``, which picks an image source from a string.

The ``ImageSource`` interface the sources implement is in ``base.py`` (re-exported here and from
``gan_jax.data``). Import direction: ``source`` -> the concrete sources (``embedded``,
``image_folder``, ``tfds_source``) -> ``base``.

``spec`` forms of ``open_source``:

| spec                                  | source                                                  |
| ------------------------------------- | ------------------------------------------------------- |
| ``embedded``, ``embedded:shapes``      | ``EmbeddedShapes``: procedural, no download              |
| ``path/to/folder``, ``path/to/x.zip`` | ``ImageFolderSource``: NVIDIA ``dataset_tool.py`` layout |
| ``gs://bucket/x.zip`` (any epath URL) | the same, read through ``etils.epath`` by every process  |
| ``tfds:NAME``, ``tfds:NAME:SPLIT``    | ``TfdsSource``: a tensorflow-datasets dataset in memory  |

This module imports numpy and PIL (``image_folder``); tensorflow-datasets only when a ``tfds:``
source is opened.
"""

from __future__ import annotations

import os
import re
from typing import Any

from gan_jax.data.base import ImageSource, check_indices, one_hot
from gan_jax.data.embedded import EmbeddedShapes
from gan_jax.data.image_folder import ImageFolderSource
from gan_jax.data.tfds_source import open_tfds

__all__ = ["ImageSource", "check_indices", "one_hot", "open_source", "parse_tfds_spec"]

_EMBEDDED_OPTIONS = {"num_images", "seed", "num_classes", "channels", "max_shapes", "radius", "palette"}
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
    at R). ``kwargs`` go to the source: embedded ``num_images, seed, num_classes, channels,
    max_shapes, radius, palette``; folders/zips ``use_labels, max_images, random_seed``; tfds
    ``data_dir, image_key, label_key, download``.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"expected a source spec string ('embedded', a folder, a .zip or 'tfds:NAME'), got {spec!r}")
    if spec in ("embedded", "embedded:shapes"):
        _check_options(spec, kwargs, _EMBEDDED_OPTIONS)
        return EmbeddedShapes(32 if resolution is None else resolution, **kwargs)
    if spec.startswith("embedded:"):
        raise ValueError(f"unknown embedded dataset {spec!r}; the embedded dataset is 'embedded' (= 'embedded:shapes')")
    if spec.startswith("tfds:"):
        _check_options(spec, kwargs, _TFDS_OPTIONS)
        name, split = parse_tfds_spec(spec)
        return open_tfds(name, split, resolution=resolution, **kwargs)

    _check_options(spec, kwargs, _FOLDER_OPTIONS)
    if re.match(r"^https?://", spec):
        raise ValueError(f"source {spec!r} is a web URL; expected 'embedded', a folder or .zip (local, or on a file "
                         "system etils.epath reads: 'gs://bucket/ffhq.zip'), or 'tfds:NAME' (download it first)")
    path = spec if "://" in spec else os.path.expanduser(spec)  # 'gs://...' and the like: read through epath
    return ImageFolderSource(path, resolution=resolution, **kwargs)
