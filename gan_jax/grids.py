"""A run's G_ema sample grids: fixed latents (and labels), one compiled sampler, PNG files named by the
images seen (NVIDIA's ``fakes<kimg>.png``) and TensorBoard images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from etils import epath

from gan_jax import parallel
from gan_jax.compiled import cached_jit, mesh_key
from gan_jax.images import image_grid, write_png
from gan_jax.recipes.base import Recipe


class SampleGrids:
    """``write(state, step, images_seen)``: a ``rows x cols`` grid of G_ema on the same latents all run long."""

    def __init__(self, recipe: Recipe, mesh: jax.sharding.Mesh, source: Any, workdir: str, logger: Any):
        config = recipe.config
        self.logger, self.source = logger, source
        self.rows, self.cols = config.log.sample_grid
        self.dir = epath.Path(workdir) / "samples"  # a local path or gs://
        if logger.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)
        key = (config.to_json(), mesh_key(mesh))
        #: ``(state, z, c) -> images``, outputs sharded as they fall (FID); the grid's is replicated so
        #: that every process may read it (process 0 writes it).
        self.sample: Callable = cached_jit(("sample", *key), recipe.sample)
        self._grid = cached_jit(("grid", *key), recipe.sample, out_shardings=parallel.replicated(mesh))
        n = self.rows * self.cols
        # The same values on every process, placed on the whole mesh.
        self.z = parallel.replicate(np.random.RandomState(123).randn(n, recipe.sampling().z_dim).astype(np.float32), mesh)
        self.c = (parallel.replicate(np.asarray(source.labels(np.arange(n) % source.num_images), np.float32), mesh)
                  if recipe.c_dim else None)

    def write(self, state: Any, step: int, images_seen: int, stage_name: str | None = None) -> None:
        grid = image_grid(jax.device_get(self._grid(state, self.z, self.c)), self.rows, self.cols)
        self.logger.images(step, "samples" if stage_name is None else f"stages/{stage_name}", grid)
        if self.logger.is_main:
            write_png(self.dir / (f"fakes{images_seen:09d}.png" if stage_name is None else f"stage-{stage_name}.png"), grid)

    def write_reals(self) -> None:
        if self.logger.is_main:
            n = self.rows * self.cols
            reals = self.source.images(np.arange(n) % self.source.num_images).astype(np.float32) / 127.5 - 1
            write_png(self.dir / "reals.png", image_grid(reals, self.rows, self.cols))
