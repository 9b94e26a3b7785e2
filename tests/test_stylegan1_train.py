"""StyleGAN (1) training: configs/stylegan_ffhq.py:tiny grows on the embedded dataset on CPU; resume is exact.

The test run is the tiny config at 8x8 (one growth, 4x4 -> fade-in -> 8x8: two compiled programs)
to keep the compile time of the double-backprop R1 step small; ``:tiny`` itself grows to 16x16.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from gan_jax.configs import stylegan_ffhq
from gan_jax import train
from gan_jax.recipes import growing
from gan_jax.recipes import stylegan as recipe
from tolerance import assert_close


def _config():
    cfg = stylegan_ffhq.get_config("tiny")
    cfg.data.resolution = 8
    cfg.data.num_images = 64
    cfg.train.total_kimg = 0.224  # 4x4 (96 images), fade-in (64), 8x8 (64): 28 steps of 8
    cfg.train.num_shards = 1  # mbstd groups and mixing cutoffs over the whole batch, whatever the devices
    cfg.log.tensorboard = False
    cfg.log.every_steps = 4
    cfg.checkpoint.every_kimg = 1.0
    cfg.checkpoint.async_save = False
    return cfg


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    return train.train(_config(), str(tmp_path_factory.mktemp("straight")))


def test_stages_follow_the_official_schedule():
    cfg = _config()
    stages = recipe.StyleGAN(cfg).stages()
    assert [(s.name, s.start_images, s.batch_size, s.program) for s in stages] == [
        ("4x4", 0, 8, 4), ("8x8-fade", 96, 8, 8), ("8x8", 160, 8, 8)]
    # lod at the group starts: 1 while 4x4 trains, 2/3 and 1/3 during the fade-in, then 0.
    lods = [growing.training_schedule(n, 3, 1, cfg.sched).lod for n in (64, 96, 128, 160)]
    assert_close(lods, [1.0, 2 / 3, 1 / 3, 0.0], atol=1e-12)
    full = stylegan_ffhq.get_config()
    assert [s.name for s in recipe.StyleGAN(full).stages()][:3] == ["8x8", "16x16-fade", "16x16"]  # lod_initial_resolution 8
    assert recipe.StyleGAN(full, num_shards=8).schedule_at(1024).G_lrate == 0.003


def test_tiny_trains_through_growth(straight):
    assert int(straight.step) == 28 and int(straight.images_seen) == 224
    assert float(straight.extra["lod"]) == 0.0
    for leaf in jax.tree.leaves((straight.params, straight.ema_params, straight.extra)):
        assert np.all(np.isfinite(np.asarray(leaf)))
    # dlatent_avg has moved from 0 (updated by every training-mode G call). G_ema copies G's
    # non-trainables after the D step, before the G step moves it once more (official op order).
    avg = np.asarray(straight.extra["G_buffers"]["dlatent_avg"])
    ema_avg = np.asarray(straight.extra["G_ema_buffers"]["dlatent_avg"])
    assert np.abs(avg).max() > 0 and not np.array_equal(ema_avg, avg)
    assert_close(ema_avg, avg, atol=0.05 * np.abs(avg).max())
    # Adam was reset at the last stage (8x8 started at step 20): 8 updates counted since.
    assert int(straight.opt_state["G"].count) == 8


def test_resume_is_exact(straight, tmp_path):
    cfg = _config()
    first = train.train(cfg, str(tmp_path), max_steps=14)  # stops inside the fade-in (steps 12..19)
    assert int(first.step) == 14
    resumed = train.train(cfg, str(tmp_path))
    assert int(resumed.step) == 28
    for a, b in zip(jax.tree.leaves((resumed.params, resumed.ema_params, resumed.extra, resumed.opt_state)),
                    jax.tree.leaves((straight.params, straight.ema_params, straight.extra, straight.opt_state))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(resumed.rng), np.asarray(straight.rng))
