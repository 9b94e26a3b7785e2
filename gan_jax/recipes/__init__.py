"""Training recipes, one module per family, behind one small interface (DESIGN.md):

- ``create_state(config, rng, mesh) -> TrainState``
- ``phases(config) -> list[Phase]``
- ``sample_fn(config) -> (state, z, c) -> images``
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any, Callable

import jax

PhaseFn = Callable[[Any, dict[str, jax.Array], jax.Array], tuple[Any, dict[str, jax.Array]]]

RECIPES = ("stylegan2",)


@dataclasses.dataclass(frozen=True)
class Phase:
    """One optimisation phase: runs at iteration ``step`` when ``step % interval == 0``.

    ``fn(state, batch, key) -> (state, metrics)`` is pure; ``batch`` holds global arrays
    (``image`` uint8 [N, H, W, C], optional ``label`` float32 [N, c_dim]).
    """

    name: str
    interval: int
    fn: PhaseFn


def get_recipe(name: str) -> ModuleType:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of {RECIPES}")
    return importlib.import_module(f"gan_jax.recipes.{name}")
