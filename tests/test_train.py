"""The trainer as a user runs it: sharded steps, exact resume, SIGTERM, bad input, NaN."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, tiny_config
from gan_jax import checkpoint, data, parallel, train
from gan_jax.recipes import stylegan2 as recipe
from tolerance import assert_close


@pytest.fixture(autouse=True)
def _release_compiled_steps():
    """This module compiles a dozen full train steps; keep only the persistent cache's copies between
    tests (see conftest._release_compiled_programs)."""
    yield
    jax.clear_caches()


def _leaves_close(a, b, atol, rtol=0.0):
    """Each leaf to ``rtol`` of its largest magnitude plus ``atol``: the devices sum the gradients in
    another order, and Adam's first step divides each gradient by its own size, which enlarges a
    float32 rounding difference for gradients near zero (seen: 1e-5 of a weight's scale)."""
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        assert_close(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol, what=jax.tree_util.keystr(path))


def test_one_step_on_8_devices_equals_1_device():
    assert jax.device_count() == 8, "conftest sets --xla_force_host_platform_device_count=8"
    cfg = tiny_config(batch_size=16, num_shards=8, pl_weight=2.0, style_mixing_prob=0.9, total_kimg=1.0)
    cfg.model.c_dim, cfg.data.channels = 0, 3
    source = train.open_dataset(cfg)
    local = data.load_batch(source, 16, step=0, seed=0, xflip=True)
    results = []
    for mesh in (parallel.make_mesh(), parallel.make_mesh(jax.devices()[:1])):
        r = recipe.StyleGAN2(cfg, mesh)
        state = parallel.replicate(r.create_state(jax.random.PRNGKey(0)), mesh)
        steps = train.CompiledSteps(r.phases(), mesh, 16)
        assert [p.name for p in steps.active(0)] == ["Gmain", "Greg", "Dmain", "Dreg", "Gema"]
        batch = parallel.global_batch({"image": local["image"]}, mesh)
        assert len(batch["image"].sharding.device_set) == mesh.devices.size
        state, metrics = steps(state, batch, 0)
        results.append((jax.device_get(state), jax.device_get(metrics)))
    (s8, m8), (s1, m1) = results
    _leaves_close(s8.params, s1.params, 1e-5, rtol=2e-5)
    _leaves_close(s8.ema_params, s1.ema_params, 1e-5, rtol=2e-5)
    _leaves_close(s8.extra, s1.extra, 1e-5, rtol=2e-5)
    # The metrics are one output (means of the same scores and losses; a mean of signed scores can
    # cancel): each to 1e-5 of the largest of them, 1e-6 absolute.
    scale = max(abs(float(v)) for v in m1.values())
    for k in m1:
        assert_close(m8[k], m1[k], rtol=1e-5, atol=1e-6, scale=scale, what=k)


def test_mbstd_groups_within_each_device_shard():
    """num_shards=2 on a batch of 8 with group 4 = each half grouped on its own (per-device groups)."""
    from gan_jax.nn import minibatch_std

    x = np.random.RandomState(0).randn(8, 4, 4, 3).astype(np.float32)
    sharded = minibatch_std(x, 4, 1, num_shards=2)
    halves = np.concatenate([minibatch_std(x[:4], 4), minibatch_std(x[4:], 4)])
    assert_close(sharded, halves, atol=1e-6)


def test_exact_resume(tmp_path):
    cfg = tiny_config(total_kimg=6 * 8 / 1000, pl_weight=2.0)  # 6 steps of batch 8, Greg at 0 and 4
    cfg.checkpoint.every_kimg = 1000.0
    straight = train.train(cfg, str(tmp_path / "a"))
    first = train.train(cfg, str(tmp_path / "b"), max_steps=3)
    assert int(first.step) == 3
    resumed = train.train(cfg, str(tmp_path / "b"))
    assert int(resumed.step) == int(straight.step) == 6
    _leaves_close(resumed.params, straight.params, 1e-6)
    _leaves_close(resumed.ema_params, straight.ema_params, 1e-6)
    _leaves_close(resumed.extra, straight.extra, 1e-6)
    assert np.array_equal(resumed.rng, straight.rng)


def test_checkpoint_of_another_network_is_refused(tmp_path):
    cfg = tiny_config(total_kimg=8 / 1000)
    train.train(cfg, str(tmp_path))
    other = tiny_config(total_kimg=16 / 1000)
    other.model.G.w_dim = 24
    with pytest.raises(checkpoint.CheckpointMismatch, match=r"model\.G\.w_dim: checkpoint has 16, this run has 24"):
        train.train(other, str(tmp_path))


def test_missing_dataset_path(tmp_path):
    cfg = tiny_config()
    cfg.data.source = str(tmp_path / "no-such-dataset.zip")
    with pytest.raises(FileNotFoundError, match=r"no-such-dataset\.zip.*gan_jax\.data\.prepare"):
        train.train(cfg, str(tmp_path / "run"))


def _folder(tmp_path, n=8, size=16, corrupt=None, odd=None):
    root = tmp_path / "images"
    root.mkdir()
    rng = np.random.RandomState(0)
    for i in range(n):
        path = root / f"img{i:04d}.png"
        if i == corrupt:
            path.write_bytes(b"\\x89PNG this is not an image")
            continue
        s = 24 if i == odd else size
        Image.fromarray(rng.randint(0, 255, (s, s, 3), dtype=np.uint8)).save(path)
    return root


def test_corrupt_image_names_the_file(tmp_path):
    cfg = tiny_config()
    cfg.data.source = str(_folder(tmp_path, corrupt=5))
    with pytest.raises(Exception, match=r"img0005\.png"):
        train.train(cfg, str(tmp_path / "run"))


def test_images_of_another_resolution(tmp_path):
    cfg = tiny_config()
    cfg.data.source = str(_folder(tmp_path, size=24))
    with pytest.raises(ValueError, match=r"img0000\.png.*24.*16|16.*24.*img0000\.png"):
        train.train(cfg, str(tmp_path / "run"))


def test_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny_config(total_kimg=2 * 8 / 1000)
    train.train(cfg, str(tmp_path))  # two good steps, checkpointed at step 2
    diverging = tiny_config(g_lr=1e30, d_lr=1e30, total_kimg=20 * 8 / 1000)
    diverging.checkpoint.every_kimg = 8 / 1000  # would save every step
    with pytest.raises(train.NonFiniteLoss, match=r"step 2: .*Loss.* is not finite.*last good checkpoint is step 2 in"):
        train.train(diverging, str(tmp_path))
    ckpt = checkpoint.Checkpointer(str(tmp_path / "checkpoints"))
    assert ckpt.latest_step() == 2
    mesh = parallel.make_mesh()
    resolved = train.resolve_config(cfg, train.open_dataset(cfg))
    state = ckpt.restore(parallel.replicate(recipe.StyleGAN2(resolved, mesh).create_state(jax.random.PRNGKey(0)), mesh),
                         resolved.to_dict())
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(jax.device_get(state.params)))
    ckpt.close()


def _main(args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "gan_jax.main", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_compiled_programs_are_kept_for_the_most_recently_used_only():
    cache = train.ProgramCache(limit=3)
    for k in "abc":
        cache[k] = k.upper()
    assert cache["a"] == "A"  # a is now the most recent; b the oldest
    cache.setdefault("d", "D")
    assert list(cache) == ["c", "a", "d"]
    assert cache.setdefault("c", "other") == "C" and list(cache) == ["a", "d", "c"]
    assert train.PROGRAMS.limit >= 12  # one run's programs, growing families included


def test_unknown_config_key_names_the_closest():
    proc = _main(["--config=configs/default.py:tiny", "--config.train.batch_sze=4", "--workdir=/tmp/unused"])
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "unknown config key 'train.batch_sze'; did you mean --config.train.batch_size?" in out


def test_sigterm_saves_a_checkpoint_that_restores(tmp_path):
    proc = _main(["--config=configs/default.py:tiny", f"--workdir={tmp_path}", "--config.train.total_kimg=100.0",
                  "--config.log.tensorboard=False", "--config.checkpoint.every_kimg=1000.0"])
    lines = []
    deadline = time.time() + 300
    while time.time() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("step "):  # training is under way
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    text = "".join(lines) + out
    assert proc.returncode == 0, text
    assert "saved step" in text
    ckpt = checkpoint.Checkpointer(str(tmp_path / "checkpoints"))
    step = ckpt.latest_step()
    assert step is not None and step > 0
    config = ckpt.saved_config()
    import ml_collections

    config = ml_collections.ConfigDict(config)
    mesh = parallel.make_mesh()
    state = ckpt.restore(parallel.replicate(recipe.StyleGAN2(config, mesh).create_state(jax.random.PRNGKey(1)), mesh),
                         config.to_dict())
    assert int(state.step) == step
    ckpt.close()


def test_tensorboard_events_hold_scalars_and_image_grids(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    cfg = tiny_config(total_kimg=4 * 8 / 1000)
    cfg.log.tensorboard = True
    train.train(cfg, str(tmp_path))
    acc = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={"tensors": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    names = set(tags.get("tensors", [])) | set(tags.get("scalars", [])) | set(tags.get("images", []))
    assert {"Gmain/Loss/G/loss", "Dmain/Loss/D/loss", "Timing/images_per_sec", "samples"} <= names, names
    assert sorted(p.name for p in (tmp_path / "samples").iterdir())[-1] == "reals.png"


def test_training_without_logging_imports_neither_tensorflow_nor_clu(tmp_path):
    code = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
sys.path.insert(0, {str(REPO / 'tests')!r})
from conftest import tiny_config
from gan_jax import train
train.train(tiny_config(total_kimg=0.008), {str(tmp_path)!r})
print(sorted({{m.split('.')[0] for m in sys.modules}} & {{'tensorflow', 'clu', 'tensorflow_datasets', 'torch'}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_conditional_training_and_sampling_by_class(tmp_path):
    from gan_jax.configs import stylegan2_cifar10
    from gan_jax import sample

    cfg = stylegan2_cifar10.get_config("tiny")
    cfg.log.tensorboard = False
    cfg.train.num_shards = 1
    cfg.train.total_kimg = 8 / 1000  # one step: one compiled program
    state = train.train(cfg, str(tmp_path))
    assert int(state.step) == 1
    a = sample.generate(str(tmp_path), [0, 1], class_idx=3)
    b = sample.generate(str(tmp_path), [0, 1], class_idx=7)
    assert a.shape == (2, 32, 32, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() > 0  # the class changes the image
    with pytest.raises(ValueError, match="conditional .*pass --class_idx"):
        sample.generate(str(tmp_path), [0])


def test_sample_command_uses_generate_py_seeds(tmp_path):
    """Seed s is z = RandomState(s).randn(1, z_dim), images (x * 127.5 + 128) clipped, as generate.py."""

    cfg = tiny_config(total_kimg=8 / 1000)
    state = train.train(cfg, str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "gan_jax.sample", f"--workdir={tmp_path}", "--seeds=3,5-6",
                          f"--outdir={tmp_path / 'out'}"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["grid.png", "seed0003.png", "seed0005.png", "seed0006.png"]
    resolved = train.resolve_config(cfg, train.open_dataset(cfg))
    z = np.random.RandomState(5).randn(1, cfg.model.G.z_dim).astype(np.float32)
    img = recipe.StyleGAN2(resolved).sample(state, z)
    want = np.clip(np.asarray(img) * 127.5 + 128, 0, 255).astype(np.uint8)[0]
    got = np.asarray(Image.open(tmp_path / "out" / "seed0005.png"))
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
