"""Training recipes, one module per family, behind one small interface (DESIGN.md):

- ``create_state(config, rng, mesh) -> TrainState``
- ``phases(config) -> list[Phase]``
- ``sample_fn(config) -> (state, z, c) -> images``
- ``sampling(config, mesh=None) -> Sampling`` -- what ``gan_jax.sample`` needs (latents -> styles -> images)

Optional, for runs in *stages* (progressive growing: ProGAN, StyleGAN 1):

- ``stages(config) -> list[Stage]``: the stages in order, the first starting at 0 images. Absent:
  one stage of ``config.train.batch_size`` (StyleGAN2, BigGAN).
- ``phases(config, mesh, stage)``: a staged recipe's phases take the stage; stages with equal
  ``program`` must get the same phases (``train.py`` compiles one step per program and reuses it).
- ``enter_stage(config, state, stage) -> state``: applied just before the first step of a stage
  (also on a resume exactly at a stage's first step; never in the middle of one), e.g. fresh
  optimizer states as the official ``reset_opt_for_new_lod``.

``train.py`` uses them through :func:`stage_plan` and :func:`stage_phases`: a stage runs with its
own batch size; the global step counts on across stages (stage k starts at step
``sum((start_images[i + 1] - start_images[i]) / batch_size[i] for i < k)``, so each stage's
boundaries must be whole batches of the stage before), and the batch of step s of a stage is the
data pipeline's batch number ``ceil(start_images / batch_size) + (s - start_step)`` at that batch
size: deterministic, and the same after a resume. Training ends at ``config.train.total_kimg``.
"""

from __future__ import annotations

import bisect
import dataclasses
import importlib
import math
from types import ModuleType
from typing import Any, Callable, Hashable, Sequence

import jax

PhaseFn = Callable[[Any, dict[str, jax.Array], jax.Array], tuple[Any, dict[str, jax.Array]]]

RECIPES = ("stylegan2", "progan", "biggan", "stylegan")


@dataclasses.dataclass(frozen=True)
class Phase:
    """One optimisation phase: runs at iteration ``step`` when ``step % interval == 0``.

    ``fn(state, batch, key) -> (state, metrics)`` is pure; ``batch`` holds global arrays
    (``image`` uint8 [N, H, W, C], optional ``label`` float32 [N, c_dim]).
    """

    name: str
    interval: int
    fn: PhaseFn


@dataclasses.dataclass(frozen=True)
class Sampling:
    """A family's generator as ``gan_jax.sample`` uses it: pure functions of the train state (G_ema).

    ``mapping(state, z [N, z_dim], c [N, c_dim] | None, psi) -> w``: whatever ``synthesis`` takes
    (StyleGAN: ws ``[N, num_ws, w_dim]``, truncated towards the average by ``psi``; a family without
    a mapping returns ``z`` and sets ``truncation=False``). ``c`` is one-hot float, as the data's labels.
    ``synthesis(state, w, key, noise_mode) -> images [N, H, W, C]`` in about [-1, 1]; ``noise_mode``
    ('const' | 'random' | 'none') is static. ``num_ws`` is the number of style inputs that style mixing
    may exchange (``None``: the family has none).
    """

    z_dim: int
    c_dim: int
    mapping: Callable[..., jax.Array]
    synthesis: Callable[..., jax.Array]
    num_ws: int | None = None
    truncation: bool = True


@dataclasses.dataclass(frozen=True)
class Stage:
    """A stretch of training with one batch size and one compiled program.

    ``start_images``: images seen when it starts; ``batch_size``: its global batch; ``program``:
    stages with equal values share their compiled steps (ProGAN: the resolution).
    """

    name: str
    start_images: int
    batch_size: int
    program: Hashable = None


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """Stages laid out on the global step axis. ``start_steps[k]`` is stage k's first step."""

    stages: tuple[Stage, ...]
    start_steps: tuple[int, ...]
    total_steps: int

    @classmethod
    def build(cls, stages: Sequence[Stage], total_images: float) -> "StagePlan":
        """Steps of ``stages`` until ``total_images`` (stages starting at or after it are dropped)."""
        stages = [s for s in stages if s.start_images < total_images or s.start_images == 0]
        if not stages or stages[0].start_images != 0:
            raise ValueError(f"the first stage must start at 0 images, got {stages[:1]}")
        starts = [0]
        for prev, nxt in zip(stages, stages[1:]):
            span = nxt.start_images - prev.start_images
            if span <= 0 or span % prev.batch_size:
                raise ValueError(f"stage {nxt.name!r} starts at {nxt.start_images} images, {span} after stage "
                                 f"{prev.name!r}: expected a positive multiple of its batch size {prev.batch_size}")
            starts.append(starts[-1] + span // prev.batch_size)
        last = stages[-1]
        total = starts[-1] + max(0, math.ceil((total_images - last.start_images) / last.batch_size))
        return cls(tuple(stages), tuple(starts), int(total))

    def index_at(self, step: int) -> int:
        """The stage that step ``step`` belongs to."""
        return bisect.bisect_right(self.start_steps, step) - 1

    def images_at(self, step: int) -> int:
        """Images seen before step ``step`` (= after ``step`` steps)."""
        k = self.index_at(step)
        return self.stages[k].start_images + (step - self.start_steps[k]) * self.stages[k].batch_size

    def data_step(self, step: int) -> int:
        """The data pipeline's batch index (at the stage's batch size) of step ``step``."""
        k = self.index_at(step)
        s = self.stages[k]
        return -(-s.start_images // s.batch_size) + step - self.start_steps[k]


def stage_plan(recipe: ModuleType, config: Any) -> StagePlan:
    """The recipe's stages (one of ``config.train.batch_size`` if it has none) until ``total_kimg``."""
    if hasattr(recipe, "stages"):
        stages = recipe.stages(config)
    else:
        stages = [Stage("main", 0, int(config.train.batch_size), None)]
    return StagePlan.build(stages, float(config.train.total_kimg) * 1000)


def stage_phases(recipe: ModuleType, config: Any, mesh: Any, stage: Stage) -> list[Phase]:
    """``recipe.phases(config, mesh, stage)`` for a staged recipe, else ``recipe.phases(config, mesh)``."""
    return recipe.phases(config, mesh, stage) if hasattr(recipe, "stages") else recipe.phases(config, mesh)


def get_recipe(name: str) -> ModuleType:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of {RECIPES}")
    return importlib.import_module(f"gan_jax.recipes.{name}")
