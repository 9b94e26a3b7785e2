"""Every field a config sets is read by something, and a field nothing reads is refused by name.

Reads are recorded at run time: while the recipes of the four families are built from their tiny
configs and their phases traced, and while one short training run (FID on, with a stand-in for the
Inception network) goes through ``train.train`` and the dataset paths of ``run_config.open_dataset``.
A read is a ``ConfigDict`` item lookup (``config.train.lr``, ``config.get('x')``); a section of upstream
constructor keywords (``Recipe.kwargs_sections``, checked by the network factories) counts as read
when the section is.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import sys

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from gan_jax import recipes, run_config, train
from gan_jax.metrics import evaluation

from conftest import tiny_config

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
TINY = {"stylegan2": ("default", "tiny"), "progan": ("progan_cifar10", "tiny"), "stylegan": ("stylegan_ffhq", "tiny"),
        "biggan": ("biggan_cifar10", "tiny")}
# Functions that walk a whole config (to copy, save, print or check it) rather than read a field: in
# ml_collections, and in gan_jax.
_ML_WALKERS = {"to_dict", "to_json", "to_json_best_effort", "copy_and_resolve_references", "__init__", "__deepcopy__",
               "__eq__", "__repr__", "__str__"}
_WALKERS = {"_leaves", "_sections", "check_config", "config_keys"}
_ML = str(pathlib.Path(ml_collections.__file__).parent)


def _config_files() -> list[tuple[str, str]]:
    """(module, variant) of every config file and each variant its get_config names."""
    out = []
    for path in sorted(CONFIGS.glob("*.py")):
        if path.stem == "__init__" or path.stem == "common" or path.stem.endswith("_common"):
            continue
        source = path.read_text()
        variants = set(re.findall(r'arg == "(\w+)"', source))
        for group in re.findall(r"arg in \(([^)]*)\)", source):
            variants |= set(re.findall(r'"(\w+)"', group))
        out += [(path.stem, v) for v in ["", *sorted(variants)]]
    return out


def _load(name: str, variant: str = "") -> ml_collections.ConfigDict:
    spec = importlib.util.spec_from_file_location(f"_cfg_{name}", CONFIGS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(variant) if variant else module.get_config()


@pytest.mark.parametrize("name,variant", _config_files())
def test_every_config_sets_only_fields_its_recipe_reads(name, variant):
    config = _load(name, variant)
    recipes.check_config(config, recipes.recipe_class(config.recipe))


class _Reads:
    """Records ``(key, sibling keys)`` of every item lookup on a ConfigDict made outside ml_collections."""

    def __init__(self):
        self.seen: set[tuple[str, frozenset[str]]] = set()

    def __enter__(self):
        self._orig = ml_collections.ConfigDict.__getitem__
        reads, orig = self.seen, self._orig

        def getitem(cfg, key):
            frame, walked = sys._getframe(1), False
            while frame is not None and frame.f_code.co_filename.startswith(_ML):
                walked |= frame.f_code.co_name in _ML_WALKERS
                frame = frame.f_back
            if frame is not None and not walked and frame.f_code.co_name not in _WALKERS and isinstance(key, str):
                reads.add((key, frozenset(cfg._fields)))
            return orig(cfg, key)

        ml_collections.ConfigDict.__getitem__ = getitem
        return self

    def __exit__(self, *exc):
        ml_collections.ConfigDict.__getitem__ = self._orig

    def unread(self, defaults: ml_collections.ConfigDict, free: tuple[str, ...]) -> list[str]:
        """Fields of ``defaults`` never looked up (a ``free`` section counts as read when it is)."""
        out = []

        def walk(cfg, prefix):
            keys = frozenset(cfg._fields)
            for key in cfg.keys():
                path = f"{prefix}{key}"
                if (key, keys) not in self.seen:
                    out.append(path)
                elif isinstance(cfg._fields[key], ml_collections.ConfigDict) and path not in free:
                    walk(cfg._fields[key], path + ".")

        walk(defaults, "")
        return out


class _StandInEvaluator:
    """Takes ``Evaluator``'s place so that FID's settings are read without an Inception network."""

    convention = "nvidia"

    def __init__(self, *args, **kwargs):
        self.convention = kwargs.get("convention", "nvidia")

    def compute(self, state, names):
        return {evaluation.metric_key(names[0], self.convention): 1.0}


@pytest.fixture(scope="module")
def reads(tmp_path_factory):
    with _Reads() as r:
        for family, (name, variant) in TINY.items():
            config = _load(name, variant)
            config.train.num_shards = 1
            config = run_config.resolve_config(config, run_config.open_dataset(config))
            recipe = recipes.build(config)
            stage = recipes.stage_plan(recipe).stages[0]
            state = jax.eval_shape(recipe.create_state, jax.random.PRNGKey(0))
            r_, ch = int(config.data.resolution), int(config.data.channels)
            batch = {"image": jax.ShapeDtypeStruct((stage.batch_size, r_, r_, ch), jnp.uint8)}
            if config.model.c_dim:
                batch["label"] = jax.ShapeDtypeStruct((stage.batch_size, config.model.c_dim), jnp.float32)
            for phase in recipe.phases(stage):
                jax.eval_shape(phase.fn, state, batch, jax.random.PRNGKey(0))
            z = jnp.zeros((2, recipe.sampling().z_dim))
            c = jnp.zeros((2, recipe.c_dim)) if recipe.c_dim else None
            jax.eval_shape(recipe.sample, state, z, c)
            train.wall_time_limit(config)  # the loop's own train field, read before the first step
        # The dataset paths that only some sources take.
        for source in ("tfds:no_such_dataset_here", str(tmp_path_factory.mktemp("none") / "missing.zip")):
            config = tiny_config()
            config.data.source, config.data.tfds_data_dir = source, "/nonexistent"
            config.data.prepare_command = "python -m gan_jax.data.prepare ..."
            with pytest.raises(Exception):
                run_config.open_dataset(config)
        # FID asked for without weights: off, with the reason (and the download option read).
        config = tiny_config()
        config.fid.every_kimg = 1.0
        config.fid.inception = ""
        original = evaluation.weights_lib.find_weights
        evaluation.weights_lib.find_weights = lambda path=None: None
        try:
            assert evaluation.training_fid(config, None, None, None, 16).evaluator is None
        finally:
            evaluation.weights_lib.find_weights = original
        # One short run through the loop, FID on (stand-in Inception).
        config = tiny_config()
        config.fid.every_kimg = 0.016
        config.fid.inception = __file__  # any existing file: the stand-in reads nothing from it
        original = (evaluation.Evaluator, evaluation.weights_lib.read_weights_file)
        evaluation.Evaluator, evaluation.weights_lib.read_weights_file = _StandInEvaluator, lambda path: {}
        try:
            train.train(config, str(tmp_path_factory.mktemp("run")), max_steps=2)
        finally:
            evaluation.Evaluator, evaluation.weights_lib.read_weights_file = original
    return r


@pytest.mark.parametrize("family", sorted(TINY))
def test_every_default_field_is_read(reads, family):
    cls = recipes.recipe_class(family)
    unread = reads.unread(cls.default_config(), cls.kwargs_sections)
    assert not unread, f"{family}: config fields nothing reads: {unread}"


def test_a_field_nothing_reads_is_refused_with_the_closest_name():
    config = tiny_config()
    config.train.lr_g = 0.1
    with pytest.raises(recipes.UnknownConfigField, match=r"'train.lr_g' is not one the stylegan2 recipe reads; "
                                                        r"did you mean 'train.g_lr'\?"):
        recipes.check_config(config, recipes.recipe_class("stylegan2"))
    grown = _load("progan_cifar10", "tiny")
    grown.train.batch_size = 64  # the growing schedule decides the minibatch: refused, not ignored
    with pytest.raises(ValueError, match=r"sched.minibatch_base"):
        recipes.build(grown)
