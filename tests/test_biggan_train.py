"""BigGAN training as a user runs it: the tiny conditional configs on the embedded dataset through
``gan_jax.train.train``, exact resume, the phase plan (2 D steps per G step), train-mode buffers,
G_ema's start step, class-dependent samples, standing statistics and truncation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.configs import biggan_cifar10, biggan_imagenet128
from gan_jax import train
from gan_jax.recipes import biggan as recipe
from tolerance import assert_close

STEPS = 2  # iterations of the straight run; the resumed run stops after 1 and continues


def _tiny(variant: str = "tiny"):
    return biggan_imagenet128.get_config(variant)


def _assert_trees_equal(a, b, what):
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=f"{what}{jax.tree_util.keystr(path)}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cfg = _tiny()
    cfg.train.total_kimg = STEPS * cfg.train.batch_size / 1000
    root = tmp_path_factory.mktemp("biggan")
    straight = jax.device_get(train.train(cfg, str(root / "a")))
    first = jax.device_get(train.train(cfg, str(root / "b"), max_steps=STEPS // 2))
    resumed = jax.device_get(train.train(cfg, str(root / "b")))
    resolved = train.resolve_config(cfg, train.open_dataset(cfg))
    return cfg, resolved, straight, first, resumed, root


def test_tiny_config_trains_and_resumes_exactly(runs):
    _, _, straight, first, resumed, _ = runs
    assert int(first.step) == STEPS // 2 and int(resumed.step) == int(straight.step) == STEPS
    for tree in ("params", "ema_params", "opt_state", "extra"):
        _assert_trees_equal(getattr(resumed, tree), getattr(straight, tree), tree)
    np.testing.assert_array_equal(resumed.rng, straight.rng)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(straight.params))  # train() raises on a NaN loss


def test_two_d_steps_per_g_step_and_images_seen(runs):
    cfg, resolved, straight, _, _, _ = runs
    assert [p.name for p in recipe.BigGAN(resolved).phases()] == ["Dmain0", "Dmain1", "Gmain", "Gema"]
    counts = {net: int(jax.tree.leaves(straight.opt_state[net][0].count)[0]) for net in ("G", "D")}
    assert counts == {"G": STEPS, "D": 2 * STEPS}
    assert int(straight.images_seen) == STEPS * cfg.train.batch_size == STEPS * 2 * cfg.train.D_batch_size


def test_train_mode_moves_sn_and_bn_buffers_and_ema_starts_late(runs):
    _, resolved, straight, _, _, _ = runs
    fresh = jax.device_get(recipe.BigGAN(resolved).create_state(jax.random.PRNGKey(int(resolved.seed))))
    for net, cols in (("G", ("sn", "batch_stats")), ("D", ("sn",))):
        for col in cols:
            for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(straight.extra[net][col]),
                                    jax.tree.leaves(fresh.extra[net][col])):
                if path[-1].key.startswith("sv"):  # sigma of an orthogonal init stays 1 until W moves
                    continue
                assert not np.array_equal(a, b), f"{net}/{col}{jax.tree_util.keystr(path)} never moved"
    # ema_start=2: G_ema copies G at iteration 1 and averages from iteration 2 on, so they now differ
    assert resolved.train.ema_start == 2
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(straight.ema_params), jax.tree.leaves(straight.params["G"])))
    assert diff > 0
    r = recipe.BigGAN(resolved)
    assert float(r.ema_decay_at(jnp.int32(0))) == 0.0 and float(r.ema_decay_at(jnp.int32(1))) == pytest.approx(0.9999)


def test_samples_change_with_the_class_label(runs):
    _, resolved, straight, _, _, _ = runs
    sample = jax.jit(recipe.BigGAN(resolved).sample)
    z = jnp.asarray(np.random.RandomState(0).randn(2, resolved.model.G.z_dim), jnp.float32)
    eye = np.eye(resolved.model.c_dim, dtype=np.float32)
    a, b, a2 = (np.asarray(sample(straight, z, jnp.asarray(eye[[k, k]]))) for k in (3, 7, 3))
    assert a.shape == (2, 32, 32, 3) and np.all(np.abs(a) <= 1)
    np.testing.assert_array_equal(a, a2)  # eval mode: deterministic
    assert np.abs(a - b).max() > 1e-3


def test_sample_tool_generates_by_seed_and_class(runs):
    from gan_jax import sample as sample_tool  # noqa: PLC0415

    _, resolved, straight, _, _, root = runs
    got = sample_tool.generate(str(root / "a"), seeds=[0, 5], class_idx=3)
    z = jnp.asarray(sample_tool.seed_latents([0, 5], resolved.model.G.z_dim))
    c = jnp.asarray(np.eye(resolved.model.c_dim, dtype=np.float32)[[3, 3]])
    want = sample_tool.to_uint8(jax.jit(recipe.BigGAN(resolved).sample)(straight, z, c))
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="style|mapping|num_ws|mix"):
        sample_tool.style_mix(str(root / "a"), [0], [1], [0], class_idx=3)


def test_standing_statistics_equal_the_batch_statistics_of_their_batch(runs):
    """With one accumulation, eval mode under standing statistics reproduces the train-mode (batch
    statistics) output of the very batch they were gathered on: every BN sees the same input."""
    _, resolved, straight, _, _, _ = runs
    r = recipe.BigGAN(resolved)
    variables = {"params": straight.ema_params["G"], **straight.extra["G_ema"]}
    key = jax.random.PRNGKey(5)

    @jax.jit
    def both(v):
        z, y = r.draw(jax.random.split(key, 1)[0], 8)
        standing = r.standing_stats(v, key, 8, 1)
        return r.G.apply(v, z, y, train=True), r.G.apply(standing, z, y), standing["batch_stats"]

    batch_mode, standing_mode, stats = both(variables)
    assert_close(standing_mode, batch_mode, atol=2e-5)
    assert not np.allclose(stats["output_layer.0"]["stored_mean"], variables["batch_stats"]["output_layer.0"]["stored_mean"])


@pytest.mark.slow  # ~27 s of compiling on 2 cores; keeps the default run under 25 minutes
def test_deep_and_cifar_tiny_configs_take_a_step():
    """BigGAN-deep's tiny config (one D step and no attention here, to keep the compile small) and the
    CIFAR tiny config build; one compiled deep iteration on the embedded data (its phases in order, as
    ``train.CompiledSteps`` runs them) gives finite losses and moves both networks."""
    cfg = _tiny("deep_tiny")
    cfg.train.num_D_steps = 1
    cfg.model.G.G_attn = cfg.model.D.D_attn = "0"
    source = train.open_dataset(cfg)
    cfg = train.resolve_config(cfg, source)
    r = recipe.BigGAN(cfg)
    state = r.create_state(jax.random.PRNGKey(0))
    table = r.phases()

    def step(state, batch):
        metrics = {}
        for i, phase in enumerate(table):
            state, m = phase.fn(state, batch, jax.random.fold_in(state.rng, i))
            metrics.update(m)
        return state, metrics

    idx = np.arange(cfg.train.batch_size)
    batch = {"image": jnp.asarray(source.images(idx)), "label": jnp.asarray(source.labels(idx))}
    fn = jax.jit(step).lower(state, batch).compile(compiler_options={"xla_llvm_disable_expensive_passes": True})
    new, metrics = fn(state, batch)
    values = train.check_finite(0, metrics)
    assert {"Dmain/Loss/D/loss", "Gmain/Loss/G/loss"} <= set(values)
    for net in ("G", "D"):
        assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(new.params[net]), jax.tree.leaves(state.params[net])))
    cifar = biggan_cifar10.get_config("tiny")
    cifar.model.c_dim = 10
    assert jax.eval_shape(lambda: recipe.BigGAN(cifar).create_state(jax.random.PRNGKey(0))).params["G"]


def test_truncation_maps_normals_to_the_truncated_normal():
    from scipy import stats

    t = 0.5
    u = np.linspace(0.001, 0.999, 101)
    z = stats.norm.ppf(u).astype(np.float32)
    got = np.asarray(recipe.truncate_latents(jnp.asarray(z), t))
    assert_close(got, stats.truncnorm.ppf(u, -t, t), atol=2e-5)
    draws = np.asarray(recipe.sample_latents(jax.random.PRNGKey(0), 4000, 4, truncation=t))
    assert np.abs(draws).max() <= t and abs(draws.std() - stats.truncnorm.std(-t, t)) < 0.01


def test_batch_plan_errors_name_the_numbers():
    cfg = _tiny()
    cfg.train.batch_size = 30
    with pytest.raises(ValueError, match=r"D_batch_size=16 but train.batch_size / num_D_steps = 15"):
        recipe.BigGAN(cfg)
    cfg = _tiny()
    cfg.train.num_D_accumulations = 3
    with pytest.raises(ValueError, match=r"D-step batch 16 must be a multiple of num_D_accumulations x devices = 3"):
        recipe.BigGAN(cfg)
