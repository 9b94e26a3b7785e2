"""ADA in the StyleGAN2 recipe: NVIDIA's p heuristic step by step, 8 devices = 1, exact resume, and
the configuration errors of NVIDIA's train.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import augment, data, parallel, train
from gan_jax.recipes import stylegan2 as recipe
from tests.conftest import tiny_config
from tests.tolerance import assert_close

BATCH = 8


def ada_config(**train_overrides):
    cfg = tiny_config(batch_size=BATCH, **train_overrides)
    cfg.augment.mode = "ada"
    cfg.augment.pipe = "bgc"
    cfg.augment.ada_kimg = 0.1  # p moves by 8 * 4 / 100 = 0.32 per adjustment: visible in a few steps
    cfg.model.c_dim, cfg.data.channels = 0, 3
    return cfg


def nvidia_p_trajectory(signs_per_step: list[list[np.ndarray]], batch: int, interval: int, target: float,
                        ada_kimg: float) -> list[float]:
    """training_loop.py's heuristic in float64: after each step (batch_idx += 1), when batch_idx % interval
    == 0, p = max(p + sign(mean of every reported sign since the last update - target) * batch * interval
    / (ada_kimg * 1000), 0). ``signs_per_step[s]``: the sign arrays reported at step s (Dmain, Dreg)."""
    p, pending, out = 0.0, [], []
    for batch_idx, reports in enumerate(signs_per_step, start=1):
        pending.extend(reports)
        if batch_idx % interval == 0:
            r_t = np.concatenate(pending).astype(np.float64).mean()
            p = max(p + np.sign(r_t - target) * (batch * interval) / (ada_kimg * 1000), 0.0)
            pending = []
        out.append(p)
    return out


def test_p_follows_nvidias_heuristic_over_scripted_d_outputs():
    r = recipe.StyleGAN2(ada_config())
    state = jax.jit(r.create_state)(jax.random.PRNGKey(0))
    rs = np.random.RandomState(0)
    # Scripted real logits: mostly positive (D overfits, p rises), then mostly negative (p falls back
    # to 0 and stays clamped), with a Dreg report every 16 steps as in the loop.
    script = []
    for step in range(48):
        bias = 1.0 if step < 24 else -1.5
        reports = [rs.randn(BATCH).astype(np.float32) + bias]
        if step % 16 == 0:
            reports.append(rs.randn(BATCH).astype(np.float32) + bias)
        script.append(reports)
    expected = nvidia_p_trajectory([[np.sign(x) for x in reports] for reports in script], BATCH,
                                   r.augment.interval, r.augment.target, r.augment.ada_kimg)
    update = jax.jit(r.ada_update)
    got = []
    for step, reports in enumerate(script):
        extra = state.extra
        for logits in reports:
            extra = r.count_signs(extra, jnp.asarray(logits))
        state, metrics = update(state.replace(extra=extra, step=jnp.int32(step)), {}, jax.random.PRNGKey(0))
        got.append(float(metrics["Progress/augment"]))
    assert max(expected) > 0.5 and expected[-1] == 0.0  # the script moves p up and back to the clamp
    assert_close(np.asarray(got), np.asarray(expected), atol=1e-6)


@pytest.fixture(scope="module")
def ada_steps_on_two_meshes():
    """Six steps of the same ADA run on an 8-device and a 1-device mesh: per-step metrics, the state
    after the first step and the final state."""
    assert jax.device_count() == 8, "conftest sets --xla_force_host_platform_device_count=8"
    cfg = ada_config(num_shards=8, total_kimg=1.0)
    cfg.train.batch_size = 16
    source = train.open_dataset(cfg)
    results = []
    for mesh in (parallel.make_mesh(), parallel.make_mesh(jax.devices()[:1])):
        r = recipe.StyleGAN2(cfg, mesh)
        state = parallel.replicate(r.create_state(jax.random.PRNGKey(0)), mesh)
        steps = train.CompiledSteps(r.phases(), mesh, 16)
        history = []
        for step in range(6):
            local = data.load_batch(source, 16, step=step, seed=0, xflip=True)
            state, metrics = steps(state, parallel.global_batch({"image": local["image"]}, mesh), step)
            history.append(jax.device_get(metrics))
            if step == 0:
                first = jax.device_get(state)
        results.append((r, first, jax.device_get(state), history, len(steps._compiled)))
    return results


def test_training_p_follows_the_heuristic_on_real_d_outputs(ada_steps_on_two_meshes):
    r, _, _, history, compiled = ada_steps_on_two_meshes[1]
    # Mean signs per phase x batch = the sum NVIDIA's collector adds; rebuild its reports from them.
    reports = []
    for m in history:
        step_reports = [np.full(16, m["Dmain/Loss/signs/real"])]
        if "Dreg/Loss/signs/real" in m:
            step_reports.append(np.full(16, m["Dreg/Loss/signs/real"]))
        reports.append(step_reports)
    p = [float(m["Progress/augment"]) for m in history]
    r_t = float(history[3]["ADA/r_t"])
    expected = nvidia_p_trajectory(reports, 16, 4, 0.6, 0.1)
    assert_close(np.asarray(p), np.asarray(expected), atol=1e-6)
    assert p[3] != 0.0 or r_t <= 0.6  # p moved at the first adjustment (step 3) unless D was below target
    assert compiled == 2  # Gmain+Greg+Dmain+Dreg+Gema+ADA, then without the regularisers: p never recompiles


def test_ada_on_8_devices_equals_1_device(ada_steps_on_two_meshes):
    (_, first8, s8, h8, _), (_, first1, s1, h1, _) = ada_steps_on_two_meshes
    # One step: the same augmentation draws and margins per device shard, the same update (to 1e-5
    # of each array's scale; Adam's first step divides by |g| and so keeps float32 noise at that level).
    for a, b in zip(jax.tree.leaves(first8.params), jax.tree.leaves(first1.params)):
        assert_close(a, b, rtol=1e-5, atol=1e-6)
    # Later steps: p, which follows the signs of D's outputs, is the same at every step.
    assert_close([m["Progress/augment"] for m in h8], [m["Progress/augment"] for m in h1], atol=1e-7)
    assert_close(s8.extra["augment_p"], s1.extra["augment_p"], atol=1e-7)


def test_exact_resume_with_ada(tmp_path):
    cfg = ada_config(total_kimg=8 * BATCH / 1000, pl_weight=0.0)
    cfg.checkpoint.every_kimg = 1000.0
    straight = train.train(cfg, str(tmp_path / "a"))
    first = train.train(cfg, str(tmp_path / "b"), max_steps=3)  # mid-interval: the sign sums are saved too
    resumed = train.train(cfg, str(tmp_path / "b"))
    assert int(resumed.step) == int(straight.step) == 8
    assert float(straight.extra["augment_p"]) > 0 or float(first.extra["ada_count"]) > 0
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(straight.params)):
        assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert_close(resumed.extra["augment_p"], straight.extra["augment_p"], atol=1e-7)


@pytest.mark.parametrize("fields,message", [
    (dict(mode="adaptive"), "augment.mode='adaptive' is not supported; expected one of ada, fixed, noaug"),
    (dict(mode="fixed"), "augment.mode='fixed' requires augment.p"),
    (dict(mode="fixed", p=1.5), "augment.p=1.5 must be between 0 and 1"),
    (dict(mode="ada", p=0.2), "augment.p can only be given with augment.mode='fixed'"),
    (dict(mode="fixed", p=0.2, target=0.6), "augment.target can only be given with augment.mode='ada'"),
    (dict(mode="ada", target=1.2), "augment.target=1.2 must be between 0 and 1"),
    (dict(mode="ada", pipe="bgcx"), "unknown augmentation pipeline 'bgcx'; expected one of blit, geom"),
    (dict(mode="noaug", pipe="bgc"), "cannot be given with augment.mode='noaug'"),
    (dict(mode="ada", kwargs={"xflipp": 1}), "unknown AugmentPipe argument.*xflipp"),
])
def test_bad_augment_settings_are_refused_by_name(fields, message):
    from gan_jax.configs import common

    section = common.augment_config()
    for k, v in fields.items():
        setattr(section, k, v)
    with pytest.raises((ValueError, TypeError), match=message):
        augment.settings_from_config(section)


def test_defaults_are_nvidias():
    from gan_jax.configs import common

    s = augment.settings_from_config(common.stylegan2().augment)
    assert (s.mode, s.p, s.target, s.interval, s.ada_kimg) == ("ada", 0.0, 0.6, 4, 500.0)
    assert s.pipe == augment.AugmentPipe(**augment.PRESETS["bgc"])
    assert augment.settings_from_config(common.stylegan2().augment, resuming=True).ada_kimg == 100.0
    assert augment.settings_from_config(None).pipe is None  # a run made before augmentation: noaug


def test_resume_starts_from_another_runs_networks_with_fresh_optimizers(tmp_path):
    """config.resume (NVIDIA's --resume): G, D and G_ema of a run folder, step 0, fresh Adam, ada_kimg 100,
    no EMA ramp-up; networks of other shapes are refused by name."""
    cfg = ada_config(total_kimg=2 * BATCH / 1000, pl_weight=0.0)
    source = jax.device_get(train.train(cfg, str(tmp_path / "source")))
    cfg.resume = str(tmp_path / "source")
    cfg.augment.ada_kimg = None  # the default, which --resume makes 100
    mesh = parallel.make_mesh(jax.devices()[:1])
    r = recipe.StyleGAN2(cfg, mesh)
    assert (r.augment.ada_kimg, r.ema_rampup) == (100.0, None)
    state = jax.device_get(train.start_from(cfg.resume, r, mesh))
    assert int(state.step) == 0 and float(state.extra["augment_p"]) == 0.0
    for got, want in ((state.params, source.params), (state.ema_params, source.ema_params)):
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_array_equal(a, b)
    assert all(not np.any(x) for x in jax.tree.leaves(state.opt_state) if np.ndim(x) > 0)  # fresh Adam moments
    other = ada_config()
    other.model.G.synthesis_kwargs.channel_max = 8
    other.resume = cfg.resume
    with pytest.raises(ValueError, match="do not fit this config: G differs"):
        train.start_from(cfg.resume, recipe.StyleGAN2(other, mesh), mesh)
    with pytest.raises(FileNotFoundError, match="neither an NVIDIA .pkl nor a gan_jax run folder"):
        train.start_from(str(tmp_path / "nothing"), r, mesh)
