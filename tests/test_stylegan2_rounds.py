"""NVIDIA's ``batch_gpu`` rounds in the StyleGAN2 recipe: a phase over R rounds is the sum of R
one-round phases on the rounds' samples, with the minibatch stddev grouped within each round and
``pl_mean`` moving once per round (``training_loop.py`` runs ``accumulate_gradients`` per round
and steps the optimizer once)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.configs import default
from gan_jax.recipes import stylegan2 as recipe_lib
from tolerance import assert_close

N = 8  # the phase batch; rounds of 4


def _config(batch_size: int = N, batch_gpu: int | None = None, mbstd: bool = True):
    cfg = default.get_config("tiny")
    cfg.train.num_shards = 1
    cfg.train.batch_size = batch_size
    cfg.train.batch_gpu = batch_gpu
    cfg.train.style_mixing_prob = 0.0  # the cutoff draw depends on the number of rounds
    cfg.train.pl_weight = 2.0
    cfg.model.D.epilogue_kwargs = {"mbstd_group_size": 4, "mbstd_num_channels": 1 if mbstd else 0}
    return cfg


@pytest.fixture(scope="module")
def setup():
    """Initial states of the networks without and with the minibatch stddev, and a batch of reals."""
    states = {mbstd: recipe_lib.StyleGAN2(_config(mbstd=mbstd)).create_state(jax.random.PRNGKey(0)) for mbstd in (False, True)}
    # Non-zero noise strengths would make G's output depend on the per-round noise draws.
    assert all(float(jnp.abs(v).max()) == 0 for k, v in _leaves(states[False].params["G"]).items() if "noise_strength" in k)
    images = np.random.RandomState(0).randint(0, 256, (N, 16, 16, 3), dtype=np.uint8)
    return states, {"image": jnp.asarray(images)}


def _leaves(tree) -> dict:
    return {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(tree)}


def _grads(recipe, phase, state, batch, inputs):
    return jax.jit(lambda s, b, i: recipe.phase_grads(phase, s, b, i))(state, batch, inputs)


def test_rounds_of_independent_samples_give_rounds_times_the_gradient(setup):
    # Without the minibatch stddev every sample is independent, so R rounds of per-round means sum to
    # R times the one-round mean's gradient (noise strengths are 0, so the noise draws do not matter;
    # their own gradients do depend on them and are left out).
    states, batch = setup
    state = states[False]
    one, two = recipe_lib.StyleGAN2(_config(mbstd=False)), recipe_lib.StyleGAN2(_config(batch_gpu=N // 2, mbstd=False))
    assert (one.rounds, two.rounds) == (1, 2)
    for phase in ("Gmain", "Dmain"):
        inputs = one.draw_inputs(phase, jax.random.PRNGKey(1), batch)
        g1, _, m1 = _grads(one, phase, state, batch, inputs)
        g2, _, m2 = _grads(two, phase, state, batch, inputs)
        for name, want in _leaves(g1).items():
            if "noise_strength" not in name:
                got = _leaves(g2)[name]
                assert_close(got, 2 * want, rtol=2e-5, atol=1e-12, what=f"{phase} {name}")
        # The metrics are one output (means of the same scores and losses; a mean of signed scores can
        # cancel): each to 1e-5 of the largest of them.
        scale = max(abs(float(v)) for v in m1.values())
        for k in m1:
            assert_close(m2[k], m1[k], rtol=1e-5, scale=scale, what=f"{phase} {k}")


def test_rounds_group_the_minibatch_stddev_and_move_pl_mean_per_round(setup):
    # The explicit loop: one-round phases of batch N / 2 on each half, pl_mean carried over.
    states, batch = setup
    state = states[True]
    two, half = recipe_lib.StyleGAN2(_config(batch_gpu=N // 2)), recipe_lib.StyleGAN2(_config(batch_size=N // 2))
    halves = [jax.tree.map(lambda x: x[i * N // 2:(i + 1) * N // 2], batch) for i in range(2)]
    g2, _, m2 = _grads(two, "Dreg", state, batch, None)
    parts = [_grads(half, "Dreg", state, h, None) for h in halves]
    assert_close(m2["Loss/r1_penalty"], np.mean([p[2]["Loss/r1_penalty"] for p in parts]), rtol=1e-5)
    for name, want in _leaves(jax.tree.map(jnp.add, parts[0][0], parts[1][0])).items():
        assert_close(_leaves(g2)[name], want, rtol=2e-5, atol=1e-12, what=f"Dreg {name}")

    inputs = two.draw_inputs("Greg", jax.random.PRNGKey(2), batch)  # N / pl_batch_shrink = 4 samples
    k = N // 2 // 2
    split = [jax.tree.map(lambda x: x[i * k:(i + 1) * k], {key: v for key, v in inputs.items() if key != "noise_key"})
             for i in range(2)]
    keys = jax.random.split(inputs["noise_key"], 2)
    g2, extra2, _ = _grads(two, "Greg", state, batch, inputs)
    s, total = state, None
    for i in range(2):
        g, extra, _ = _grads(half, "Greg", s, halves[i], {**split[i], "noise_key": keys[i]})
        total = g if total is None else jax.tree.map(jnp.add, total, g)
        s = s.replace(extra=extra)
    assert float(s.extra["pl_mean"]) != 0.0
    assert_close(extra2["pl_mean"], s.extra["pl_mean"], rtol=1e-5)
    for name, want in _leaves(total).items():
        assert_close(_leaves(g2)[name], want, rtol=2e-5, atol=1e-12, what=f"Greg {name}")


def test_a_batch_gpu_that_does_not_divide_the_device_batch_is_refused():
    with pytest.raises(ValueError, match=r"train.batch_gpu=3 must divide the per-device batch batch_size / num_shards = 8 / 1 = 8"):
        recipe_lib.StyleGAN2(_config(batch_gpu=3))
