"""A gan_jax run directory written from a training state (what ``python -m gan_jax.convert`` makes).

``dest/checkpoints/0`` (the state), ``dest/config.json`` (the config) and ``dest/config.py`` (a
config file that reads that JSON), which ``gan_jax.sample``, ``gan_jax.evaluate`` and
``gan_jax.main`` accept.
"""

from __future__ import annotations

import os
from typing import Any

from gan_jax import checkpoint

__all__ = ["write_run_dir"]

_CONFIG_PY = '''"""gan_jax config of the network converted from {source}.

    python -m gan_jax.main --config={path} --workdir={dest} --config.data.source=YOUR_DATA.zip
"""

import json
import os

import ml_collections


def get_config(arg=None):
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'config.json')) as f:
        return ml_collections.ConfigDict(json.load(f))
'''


def write_run_dir(source: str, dest: str, state: Any, config: Any) -> str:
    """``dest/checkpoints/0`` (``state`` at step 0) + ``dest/config.json`` + ``dest/config.py``
    (``config``, an ``ml_collections.ConfigDict``); ``source`` names the converted file in the
    config's docstring. Returns the path of ``config.py``."""
    os.makedirs(dest, exist_ok=True)
    ckpt = checkpoint.Checkpointer(os.path.join(dest, "checkpoints"), async_save=False)
    ckpt.save(0, state, config.to_dict())
    ckpt.close()
    with open(os.path.join(dest, "config.json"), "w") as f:
        f.write(config.to_json(indent=1))
    path = os.path.join(dest, "config.py")
    with open(path, "w") as f:
        f.write(_CONFIG_PY.format(source=os.path.basename(source), path=path, dest=dest))
    return path
