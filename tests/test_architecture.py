"""The shape of the code that docs/design.md promises: a thin loop that knows no family."""

from __future__ import annotations

import pathlib
import re

import pytest

from gan_jax import recipes

ROOT = pathlib.Path(__file__).resolve().parents[1] / "gan_jax"
# The loop and the pieces it is made of (docs/design.md, "the loop").
LOOP = ["train.py", "compiled.py", "console.py", "cadence.py", "grids.py", "preemption.py", "run_config.py"]


def _family_words() -> set[str]:
    """Family names, their phase names and family-only metric names."""
    return {"stylegan2", "stylegan", "progan", "biggan", "Gmain", "Dmain", "Greg", "Dreg", "Gema", "lod", "pl_mean"}


def _code(path: pathlib.Path) -> str:
    """The file without comments and docstrings (prose may give examples)."""
    text = re.sub(r'"""(?:.|\n)*?"""', "", path.read_text())
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def test_train_py_is_a_thin_loop():
    lines = (ROOT / "train.py").read_text().splitlines()
    assert len(lines) <= 250, f"train.py has {len(lines)} lines; the loop should read as a list of 'is it time? do it'"


@pytest.mark.parametrize("name", LOOP)
def test_the_loop_names_no_family_phase_or_family_metric(name):
    code = _code(ROOT / name)
    found = sorted(w for w in _family_words() if re.search(rf"\b{w}\b", code))
    assert not found, f"gan_jax/{name} names {found}: the recipe interface should carry that"


def test_every_family_is_a_recipe_subclass_found_by_name():
    for family in ("stylegan2", "progan", "stylegan", "biggan"):
        cls = recipes.recipe_class(family)
        assert issubclass(cls, recipes.Recipe) and cls.__module__ == f"gan_jax.recipes.{family}"
        assert cls.default_config().recipe == family
