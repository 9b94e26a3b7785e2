"""Training recipes: one :class:`Recipe` subclass per family (``gan_jax.recipes.base`` has the interface).

:func:`build` makes the recipe a config names (``config.recipe``: a family of this package, or the
dotted path of a module of your own); :class:`StagePlan` lays a recipe's stages on the step axis:
a stage runs with its own batch size; the global step counts on across stages (stage k starts at step
``sum((start_images[i + 1] - start_images[i]) / batch_size[i] for i < k)``, so each stage's
boundaries must be whole batches of the stage before), and the batch of step s of a stage is the
data pipeline's batch number ``ceil(start_images / batch_size) + (s - start_step)`` at that batch
size: deterministic, and the same after a resume. Training ends at ``config.train.total_kimg``.
"""

from __future__ import annotations

import bisect
import dataclasses
import difflib
import importlib
import importlib.util
import inspect
import math
import pkgutil
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections

from gan_jax.recipes.base import (
    REQUIRED_METHODS,
    Phase,
    PhaseFn,
    Recipe,
    Sampling,
    Stage,
)

__all__ = ["Phase", "PhaseFn", "Recipe", "RecipeNotFound", "Sampling", "Stage", "StagePlan", "UnknownConfigField",
           "build", "check_config", "recipe_class", "stage_plan"]


class RecipeNotFound(ValueError):
    """``config.recipe`` names no module, or a module without a complete ``Recipe`` subclass."""


class UnknownConfigField(ValueError):
    """A config sets a field that the recipe does not read."""


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


def stage_plan(recipe: Recipe) -> StagePlan:
    """The recipe's stages until ``config.train.total_kimg``."""
    return StagePlan.build(recipe.stages(), float(recipe.config.train.total_kimg) * 1000)


def recipe_class(name: str) -> type[Recipe]:
    """The ``Recipe`` subclass ``name`` stands for: a family (``'stylegan2'`` -> ``gan_jax.recipes.stylegan2``),
    a module path (``'my_lab.dcgan'``: the one ``Recipe`` subclass defined in it) or ``'module:Class'``."""
    module_name, _, class_name = name.partition(":")
    if "." not in module_name and importlib.util.find_spec(f"gan_jax.recipes.{module_name}") is not None:
        module_name = f"gan_jax.recipes.{module_name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is None or not module_name.startswith(err.name):
            raise  # the module exists; something it imports does not
        families = sorted(m.name for m in pkgutil.iter_modules(__path__)
                          if m.name not in ("base", "growing", "tf_adam"))
        raise RecipeNotFound(f"config.recipe={name!r}: no module {module_name!r}; expected a family "
                             f"({', '.join(families)}) or the dotted path of an importable module that defines a "
                             "gan_jax.recipes.Recipe subclass (is its folder on PYTHONPATH?)") from None
    if class_name:
        cls = getattr(module, class_name, None)
        if not (inspect.isclass(cls) and issubclass(cls, Recipe)):
            raise RecipeNotFound(f"config.recipe={name!r}: module {module_name!r} has no Recipe subclass {class_name!r}")
    else:
        found = [c for c in vars(module).values()
                 if inspect.isclass(c) and issubclass(c, Recipe) and c.__module__ == module.__name__]
        concrete = [c for c in found if not inspect.isabstract(c) and not c.__name__.startswith("_")]
        if len(concrete) != 1:
            what = "defines no" if not concrete else f"defines {len(concrete)} ({', '.join(c.__name__ for c in concrete)})"
            raise RecipeNotFound(f"config.recipe={name!r}: module {module_name!r} {what} gan_jax.recipes.Recipe "
                                 f"subclass; define one, or name it as '{module_name}:ClassName'")
        cls = concrete[0]
    missing = [m for m in REQUIRED_METHODS if getattr(cls, m) is getattr(Recipe, m)]
    if missing:
        raise RecipeNotFound(f"config.recipe={name!r}: {cls.__name__} in module {module.__name__!r} lacks "
                             f"{', '.join(missing)} (a recipe defines {', '.join(REQUIRED_METHODS)})")
    return cls


def build(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None, **kwargs: Any) -> Recipe:
    """``recipe_class(config.recipe)(config, mesh, **kwargs)``."""
    return recipe_class(config.recipe)(config, mesh, **kwargs)


def _leaves(tree: Any, prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out += _leaves(value, path + ".") if hasattr(value, "items") else [path]
    return out


def _sections(tree: Any, prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        if hasattr(value, "items"):
            out += [f"{prefix}{key}"] + _sections(value, f"{prefix}{key}.")
    return out


def check_config(config: ml_collections.ConfigDict, cls: type[Recipe]) -> None:
    """Refuse a field that ``cls.default_config()`` does not have (nothing would read it), naming it and the
    closest valid field. Sections in ``cls.kwargs_sections`` hold upstream constructor keywords, which the
    networks check themselves."""
    defaults = cls.default_config()
    if defaults is None:
        return
    free = tuple(cls.kwargs_sections)
    valid = set(_leaves(defaults)) | set(_sections(defaults))
    for field in _leaves(config):
        if field in valid or any(field == s or field.startswith(s + ".") for s in free):
            continue
        close = difflib.get_close_matches(field, sorted(valid), n=1, cutoff=0.0)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownConfigField(f"config field {field!r} is not one the {config.recipe} recipe reads{hint} "
                         f"(the fields are those of {cls.__name__}.default_config())")
