"""What a run's config decides before anything is built: the dataset it names, and the fields that the
dataset fills in (image channels, label size)."""

from __future__ import annotations

import os
from typing import Any

import ml_collections

from gan_jax import data as data_lib


def resolve_config(config: ml_collections.ConfigDict, source: data_lib.ImageSource) -> ml_collections.ConfigDict:
    """A copy of ``config`` with what the dataset decides: image channels and the label size."""
    config = ml_collections.ConfigDict(config.to_dict())
    if source.resolution != config.data.resolution:
        raise ValueError(f"dataset {source.name} is {source.resolution}x{source.resolution}, the config says "
                         f"data.resolution={config.data.resolution}; set --config.data.resolution={source.resolution} "
                         f"or prepare the data at {config.data.resolution}")
    config.data.channels = source.channels
    if config.data.use_labels and source.label_dim == 0:
        raise ValueError(f"data.use_labels=True but dataset {source.name} has no labels (dataset.json)")
    config.model.c_dim = source.label_dim if config.data.use_labels else 0
    return config


def open_dataset(config: ml_collections.ConfigDict) -> data_lib.ImageSource:
    d = config.data
    kwargs: dict[str, Any] = {}
    if d.source.startswith("embedded"):
        kwargs = {"num_images": int(d.num_images), "seed": int(config.seed),
                  "num_classes": int(d.get("num_classes", 0) or 0)}
        # The embedded dataset's options (gan_jax/data/embedded.py), where a config has them.
        for key in ("max_shapes", "radius", "palette"):
            if d.get(key) is not None:
                kwargs[key] = tuple(d.get(key)) if key == "radius" else int(d.get(key))
    elif d.source.startswith("tfds:") and d.get("tfds_data_dir"):
        kwargs = {"data_dir": os.path.expanduser(d.tfds_data_dir)}
    try:
        return data_lib.open_source(os.path.expanduser(d.source), resolution=int(d.resolution), **kwargs)
    except FileNotFoundError as err:
        if d.get("prepare_command"):
            raise FileNotFoundError(f"{err}\nThis config expects the dataset made by:\n  {d.prepare_command}") from None
        raise
