"""A recipe defined here, outside gan_jax, trained through ``python -m gan_jax.main --config.recipe=<this module>``:
checkpoints, an exact resume, sample grids and ``gan_jax.sample``; and the errors for a recipe that is missing."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import losses, recipes
from gan_jax.recipes import Phase, Recipe

HERE = pathlib.Path(__file__).resolve().parent
MODULE = pathlib.Path(__file__).stem  # importable as this name with tests/ on PYTHONPATH
STEPS = 6


def _mlp(params, x):
    for i, (w, b) in enumerate(params):
        x = x @ w + b
        x = jax.nn.leaky_relu(x, 0.2) if i + 1 < len(params) else x
    return x


def _init_mlp(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [(jax.random.normal(k, (a, b)) / np.sqrt(a), jnp.zeros((b,))) for k, a, b in zip(keys, sizes, sizes[1:])]


class TinyMLPGAN(Recipe):
    """Two MLPs on flattened images, the non-saturating loss, plain Adam and an EMA of G."""

    def __init__(self, config, mesh=None, **kwargs):
        super().__init__(config, mesh, **kwargs)
        r, ch = config.data.resolution, config.data.channels
        self.shape = (r, r, ch)
        self.hidden = int(config.model.hidden)
        self.opt = optax.adam(float(config.train.lr), b1=0.5)

    @property
    def z_dim(self) -> int:
        return int(self.config.model.z_dim)

    def create_state(self, rng):
        kg, kd, run = jax.random.split(rng, 3)
        pixels = int(np.prod(self.shape))
        params = {"G": _init_mlp(kg, [self.z_dim, self.hidden, pixels]), "D": _init_mlp(kd, [pixels, self.hidden, 1])}
        return self.new_state(run, params, {"G": self.opt, "D": self.opt}, extra={"d_steps": jnp.zeros((), jnp.int32)})

    def generate(self, g_params, z):
        return jnp.tanh(_mlp(g_params, z)).reshape(z.shape[0], *self.shape)

    def sample(self, state, z, c=None):
        return self.generate(state.ema_params["G"], z)

    def phases(self, stage):
        n = stage.batch_size

        def d_step(state, batch, key):
            real = batch["image"].astype(jnp.float32).reshape(n, -1) / 127.5 - 1
            fake = self.generate(state.params["G"], jax.random.normal(key, (n, self.z_dim))).reshape(n, -1)

            def loss_fn(d):
                loss_fake, loss_real = losses.d_logistic(_mlp(d, real), _mlp(d, fake))
                return jnp.mean(loss_fake + loss_real)

            loss, grads = jax.value_and_grad(loss_fn)(state.params["D"])
            state = self.apply_grads(state, "D", self.opt, grads)
            return state.replace(extra={"d_steps": state.extra["d_steps"] + 1}), {"Dmain/Loss/D/loss": loss}

        def g_step(state, batch, key):
            def loss_fn(g):
                fake = self.generate(g, jax.random.normal(key, (n, self.z_dim))).reshape(n, -1)
                return jnp.mean(losses.g_logistic_nonsaturating(_mlp(state.params["D"], fake)))

            loss, grads = jax.value_and_grad(loss_fn)(state.params["G"])
            return self.apply_grads(state, "G", self.opt, grads), {"Gmain/Loss/G/loss": loss}

        def ema(state, batch, key):
            g_ema = jax.tree.map(lambda p, e: p + (e - p) * 0.9, state.params["G"], state.ema_params["G"])
            return state.replace(ema_params={"G": g_ema}), {}

        return [Phase("Dmain", 1, d_step), Phase("Gmain", 2, g_step), Phase("Gema", 1, ema)]


class _Incomplete(Recipe):
    """Has no ``sample`` (the underscore keeps it out of the module's recipe search)."""

    def create_state(self, rng):
        raise NotImplementedError

    def phases(self, stage):
        return []


CONFIG = '''
from gan_jax.configs import common


def get_config(arg=None):
    c = common.run_config("stylegan2", resolution=16)  # the command line names the recipe
    c.data.num_images = 64
    c.model.z_dim = 8
    c.model.hidden = 32
    c.train.batch_size = 8
    c.train.total_kimg = float(arg) / 1000 if arg else 0.048
    c.train.lr = 1e-3
    c.log.every_steps = 2
    c.log.sample_every_kimg = 0.016
    c.log.sample_grid = (2, 2)
    c.log.tensorboard = False
    c.checkpoint.every_kimg = 0.016
    c.fid.every_kimg = 0.0
    return c
'''


def _run(args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return out.returncode, out.stdout + out.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("user_recipe")
    (root / "cfg.py").write_text(CONFIG)
    def main(images, workdir):
        return _run(["-m", "gan_jax.main", f"--config=cfg.py:{images}", f"--config.recipe={MODULE}",
                     f"--workdir={workdir}"], root)

    straight = main(8 * STEPS, "straight")
    first = main(8 * STEPS // 2, "resumed")
    second = main(8 * STEPS, "resumed")
    return root, straight, first, second


def _final_state(workdir):
    from gan_jax import checkpoint, parallel
    import ml_collections

    ckpt = checkpoint.Checkpointer(str(workdir / "checkpoints"), async_save=False)
    config = ml_collections.ConfigDict(ckpt.saved_config())
    mesh = parallel.make_mesh()
    recipe = recipes.build(config, mesh)
    state = ckpt.restore(parallel.replicate(recipe.create_state(jax.random.PRNGKey(0)), mesh), config.to_dict())
    ckpt.close()
    return jax.device_get(state)


def test_trains_checkpoints_and_resumes_exactly(runs):
    root, straight, first, second = runs
    for rc, out in runs[1:]:
        assert rc == 0, out[-3000:]
    assert f"training {MODULE} at 16x16" in straight[1] and "Dmain/loss=" in straight[1] and "Gmain/loss=" in straight[1]
    assert f"resumed from {root / 'resumed' / 'checkpoints'} at step {STEPS // 2}" in second[1]
    a, b = _final_state(root / "straight"), _final_state(root / "resumed")
    assert int(a.step) == int(b.step) == STEPS and int(a.extra["d_steps"]) == STEPS
    for x, y in zip(jax.tree.leaves((a.params, a.ema_params, a.opt_state)), jax.tree.leaves((b.params, b.ema_params, b.opt_state))):
        np.testing.assert_array_equal(x, y)  # the same program on the same batches: bit for bit
    grids = sorted(p.name for p in (root / "resumed" / "samples").iterdir())
    assert "reals.png" in grids and f"fakes{8 * STEPS:09d}.png" in grids


def test_sample_command_renders_the_user_recipe(runs):
    root = runs[0]
    rc, out = _run(["-m", "gan_jax.sample", "--workdir=straight", "--seeds=0-3", "--outdir=out"], root)
    assert rc == 0, out[-3000:]
    assert sorted(p.name for p in (root / "out").iterdir()) == ["grid.png", "seed0000.png", "seed0001.png",
                                                                 "seed0002.png", "seed0003.png"]


def test_a_missing_recipe_or_method_is_named():
    with pytest.raises(recipes.RecipeNotFound, match=r"no module 'no_such_lab.gan'"):
        recipes.recipe_class("no_such_lab.gan")
    with pytest.raises(recipes.RecipeNotFound, match=r"_Incomplete in module '.*test_user_recipe' lacks sample"):
        recipes.recipe_class(f"{MODULE}:_Incomplete")
    with pytest.raises(recipes.RecipeNotFound, match=r"has no Recipe subclass 'Missing'"):
        recipes.recipe_class(f"{MODULE}:Missing")
    assert recipes.recipe_class(MODULE) is TinyMLPGAN


def test_the_command_line_says_which_module_is_missing(tmp_path):
    rc, out = _run(["-m", "gan_jax.main", "--config=configs/default.py:tiny", "--config.recipe=no_such_lab.gan",
                    f"--workdir={tmp_path}"], tmp_path)
    assert rc != 0
    assert "no module 'no_such_lab.gan'" in out and "Traceback" not in out
