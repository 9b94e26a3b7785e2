"""The input side of the trainer: image sources and deterministic, resumable, per-process batches.

    source = open_source("embedded", resolution=32)          # or a folder, a .zip, "tfds:cifar10"
    batches = make_batches(source, global_batch=64, seed=0, xflip=True, start_step=step)
    batch = next(batches)   # {'image': uint8 [B/P, R, R, C], 'label': float32 [B/P, label_dim]}

Modules, each importing only those below it: ``source`` (``open_source``) above ``embedded`` (the
procedural dataset), ``image_folder`` (NVIDIA ``dataset_tool.py`` folders and zips) and
``tfds_source`` (tensorflow-datasets), which with ``pipeline`` (batch order, prefetching) sit on
``base`` (the ``ImageSource`` interface, ``check_indices``, ``one_hot``). ``prepare`` (the command
line that makes a dataset: ``python -m gan_jax.data.prepare``) uses ``image_folder``; it is not
imported here, so that ``-m`` runs it cleanly. No module of the package imports ``gan_jax.data``
itself (this file), only its submodules.

Importing this package imports numpy, PIL and pyspng (where installed) only: no jax, no TensorFlow;
``make_batches(..., workers >= 1)`` imports grain, and with it jax.
"""

from gan_jax.data.base import ImageSource
from gan_jax.data.embedded import EmbeddedShapes
from gan_jax.data.image_folder import ImageFolderSource
from gan_jax.data.pipeline import (
    BatchIterator,
    GrainBatchIterator,
    batch_indices,
    default_workers,
    load_batch,
    make_batches,
)
from gan_jax.data.source import open_source
from gan_jax.data.tfds_source import TfdsSource

__all__ = [
    "BatchIterator",
    "EmbeddedShapes",
    "GrainBatchIterator",
    "ImageFolderSource",
    "ImageSource",
    "TfdsSource",
    "batch_indices",
    "default_workers",
    "load_batch",
    "make_batches",
    "open_source",
]
