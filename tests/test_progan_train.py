"""ProGAN training: the stages and in-graph lod follow the official loop; the tiny config grows
4x4 -> 32x32 on the embedded data through every fade-in with checkpoints, TensorBoard grids per
level, an exact resume in the middle of a fade-in, and ``gan_jax.sample`` on the checkpoint."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from gan_jax import checkpoint, parallel, recipes, sample, train
from gan_jax.recipes import growing
from gan_jax.recipes import progan as recipe_lib
from gan_jax.state import TrainState

STAGES = ["4x4", "8x8-fade", "8x8", "16x16-fade", "16x16", "32x32-fade", "32x32"]


def tiny_config(tensorboard: bool = True):
    from gan_jax.configs import progan_celebahq

    cfg = progan_celebahq.get_config("tiny")
    cfg.log.tensorboard = tensorboard
    cfg.train.num_shards = 1  # mbstd over the whole (tiny) batch, whatever the device count
    return cfg


def test_steps_follow_the_official_loop():
    """Per step: batch size, lod (the schedule at the first image of the step's group of 4), resets."""
    cfg = tiny_config()
    plan = recipes.stage_plan(recipe_lib.ProGAN(cfg))
    assert [s.name for s in plan.stages] == STAGES
    r = recipe_lib.ProGAN(cfg)
    sched, total = r.sched, cfg.train.total_kimg * 1000
    lod_fn = jax.jit(lambda images, step, batch: r.step_lod(TrainState(step, images, None, None, None, None, None), batch),
                     static_argnums=2)
    cur, prev, step, lods = 0, -1.0, 0, []
    while cur < total:  # train_progressive_gan's loop
        s = growing.training_schedule(cur, 5, 1, sched)
        if np.floor(s.lod) != np.floor(prev) or np.ceil(s.lod) != np.ceil(prev):
            assert step in plan.start_steps, (step, cur)  # optimizer reset = a stage start (enter_stage)
        prev = s.lod
        for _ in range(4):
            k = plan.index_at(step)
            assert plan.stages[k].batch_size == s.minibatch and plan.stages[k].program == s.resolution
            assert plan.images_at(step) == cur
            got = lod_fn(jnp.int32(cur), jnp.int32(step), s.minibatch)
            assert float(got) == np.float32(s.lod), (step, cur)
            lods.append(float(got))
            cur += s.minibatch
            step += 1
    assert step == plan.total_steps and len(set(lods)) > 10  # several lods inside each fade-in


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    cfg = tiny_config()
    workdir = tmp_path_factory.mktemp("progan")
    state = train.train(cfg, str(workdir))
    return cfg, workdir, jax.device_get(state)


def test_grows_through_every_fade_in_with_checkpoints(grown):
    from tensorboard.backend.event_processing import event_accumulator

    cfg, workdir, state = grown
    plan = recipes.stage_plan(recipe_lib.ProGAN(cfg))
    assert int(state.step) == plan.total_steps and int(state.images_seen) == int(cfg.train.total_kimg * 1000)
    assert float(state.extra["lod"]) == 0.0
    # Adam was reset at the start of the last stage: its step count is that stage's length.
    assert int(state.opt_state["G"].count) == plan.total_steps - plan.start_steps[-1]
    ckpt = checkpoint.Checkpointer(str(workdir / "checkpoints"))
    steps = ckpt.all_steps()
    ckpt.close()
    assert plan.total_steps in steps and len(steps) == int(cfg.checkpoint.keep)
    assert set(plan.start_steps[-2:]) <= set(steps)  # a checkpoint at the end of every stage
    acc = event_accumulator.EventAccumulator(str(workdir), size_guidance={"tensors": 0, "images": 0})
    acc.Reload()
    tags = set(acc.Tags().get("tensors", [])) | set(acc.Tags().get("images", []))
    assert {f"stages/{name}" for name in STAGES} <= tags, tags
    assert {"Progress/lod", "Dmain/Loss/D/loss", "Gmain/Loss/G/loss", "samples"} <= tags
    for name in STAGES:
        assert (workdir / "samples" / f"stage-{name}.png").exists()
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.params))


def test_resume_in_the_middle_of_a_fade_in_is_exact(grown, tmp_path):
    cfg, _, straight = grown
    plan = recipes.stage_plan(recipe_lib.ProGAN(cfg))
    fade = STAGES.index("16x16-fade")
    stop = plan.start_steps[fade] + 6  # mid-fade and mid-group (lod changes every 4 steps)
    assert stop < plan.start_steps[fade + 1]
    first = train.train(cfg, str(tmp_path), max_steps=stop)
    assert int(first.step) == stop and 1 < float(first.extra["lod"]) < 2
    resumed = jax.device_get(train.train(cfg, str(tmp_path)))
    for a, b in zip(jax.tree_util.tree_leaves_with_path(resumed), jax.tree.leaves(straight), strict=True):
        assert np.array_equal(np.asarray(a[1]), np.asarray(b)), jax.tree_util.keystr(a[0])  # bit for bit


@pytest.mark.slow  # ~24 s of compiling on 2 cores; keeps the default run under 25 minutes
def test_gan_jax_sample_on_a_progan_checkpoint(grown):
    cfg, workdir, state = grown
    images = sample.generate(str(workdir), [3, 5])
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    resolved = train.resolve_config(cfg, train.open_dataset(cfg))
    z = sample.seed_latents([3, 5], 16)
    want = sample.to_uint8(recipe_lib.ProGAN(resolved).sample(state, z))
    assert np.abs(images.astype(int) - want.astype(int)).max() <= 1
    frames = sample.interpolate(str(workdir), [3, 5], frames=2)
    np.testing.assert_array_equal(frames[0], images[0])
    out = subprocess.run([sys.executable, "-m", "gan_jax.sample", f"--workdir={workdir}", "--seeds=3,5",
                          f"--outdir={workdir / 'out'}"], cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    np.testing.assert_array_equal(np.asarray(Image.open(workdir / "out" / "seed0005.png")), images[1])
    with pytest.raises(ValueError, match="style mixing needs a network with styles .* progan network has none"):
        sample.style_mix(str(workdir), [1], [2], [0])
    with pytest.raises(ValueError, match="--trunc=0.7: this progan network has no mapping network"):
        sample.generate(str(workdir), [0], truncation_psi=0.7)


def test_conditional_step_with_the_acgan_head():
    """One compiled 4x4 step of the class-conditional tiny config: label terms present and finite."""
    from gan_jax.configs import progan_cifar10

    cfg = progan_cifar10.get_config("tiny")
    cfg.train.num_shards = 1
    source = train.open_dataset(cfg)
    cfg = train.resolve_config(cfg, source)
    assert cfg.model.c_dim == 10
    mesh = parallel.make_mesh()
    r = recipe_lib.ProGAN(cfg, mesh)
    stage = r.stages()[0]
    state = parallel.replicate(r.create_state(jax.random.PRNGKey(0)), mesh)
    steps = train.CompiledSteps(r.phases(stage), mesh, stage.batch_size)
    from gan_jax import data

    batch = parallel.global_batch(data.load_batch(source, stage.batch_size, step=0, seed=0, xflip=False), mesh)
    before = jax.device_get(state.ema_params)
    state, metrics = steps(state, batch, 0)
    values = train.check_finite(0, metrics)
    assert values["Progress/lod"] == 3.0 and np.isfinite(values["Dmain/Loss/D/loss"])
    # Gema runs with the D step, before G's update (official [D_train_op, Gs_update_op], then G_train_op):
    # after step 0, G_ema = lerp(G_0, G_ema_0, 0.999) = G_0 exactly.
    for a, b in zip(jax.tree.leaves(jax.device_get(state.ema_params)), jax.tree.leaves(before), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(jax.device_get(state.params["G"])),
                                                        jax.tree.leaves(before["G"]), strict=True))  # G moved
    assert int(state.opt_state["D"].count) == 1 and int(state.opt_state["G"].count) == 1


def test_celebahq_config_builds_the_papers_networks():
    """By shape: 23.1M trainable parameters in G and in D (arXiv 1710.10196, Table 2 / appendix A.1),
    and the preset's 17 stages (4x4, then a fade-in and a stable phase per level up to 1024x1024)."""
    from gan_jax.configs import progan_celebahq

    cfg = progan_celebahq.get_config()
    cfg.train.num_shards = 1
    r = recipe_lib.ProGAN(cfg, num_shards=1)
    g, d = jax.eval_shape(lambda: r.init_variables(jax.random.PRNGKey(0)))
    count = lambda v: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(v["params"]))
    assert round(count(g) / 1e5) == round(count(d) / 1e5) == 231
    stages = r.stages()
    assert len(stages) == 17 and stages[-1].name == "1024x1024" and stages[-1].batch_size == 4
    assert r.lrates(1024) == (0.0015, 0.0015) and r.lrates(512) == (0.001, 0.001)
    with pytest.raises(ValueError, match="unknown variant 'huge'"):
        progan_celebahq.get_config("huge")
