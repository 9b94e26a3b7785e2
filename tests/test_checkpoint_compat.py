"""Resuming a checkpoint: refused only when the network's arrays differ, and then saying why.

A config change that leaves every array of the train state as it was (the compute dtype
``model.dtype``, ``model.fused_modconv``) resumes; one that changes shapes (channel counts) raises
``CheckpointMismatch`` naming the config field and the arrays that differ.
"""

from __future__ import annotations

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config
from gan_jax import checkpoint, train
from gan_jax.state import TrainState

TRAINED_STEPS = 2


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory):
    """A workdir of the tiny demo config trained for 2 steps (checkpoint at step 2); copy before use."""
    workdir = tmp_path_factory.mktemp("trained") / "run"
    state = train.train(tiny_config(), str(workdir), max_steps=TRAINED_STEPS)
    assert int(state.step) == TRAINED_STEPS
    return workdir


def _copy(trained_workdir, tmp_path) -> str:
    dest = tmp_path / "run"
    shutil.copytree(trained_workdir, dest)
    return str(dest)


def test_resume_with_another_compute_dtype(trained_workdir, tmp_path):
    cfg = tiny_config()
    cfg.model.dtype = "bfloat16"  # compute dtype only: the parameters stay float32
    state = train.train(cfg, _copy(trained_workdir, tmp_path), max_steps=1)
    assert int(state.step) == TRAINED_STEPS + 1
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.params))


def test_resume_with_other_channel_counts_is_refused(trained_workdir, tmp_path):
    cfg = tiny_config()
    saved_max = int(cfg.model.G.synthesis_kwargs.channel_max)
    cfg.model.G.synthesis_kwargs.channel_max = 2 * saved_max
    with pytest.raises(checkpoint.CheckpointMismatch) as info:
        train.train(cfg, _copy(trained_workdir, tmp_path), max_steps=1)
    message = str(info.value)
    assert f"model.G.synthesis_kwargs.channel_max: checkpoint has {saved_max}, this run has {2 * saved_max}" in message
    assert "model.dtype" not in message  # only what differs is listed
    # The arrays: path, the checkpoint's shape, this run's shape.
    assert "params/G/synthesis/" in message and "checkpoint has shape (" in message and "this run has shape (" in message
    assert "new --workdir" in message


# -- Checkpointer alone, on a state of a few arrays (no network to compile) ----------------------


def _state(width: int) -> TrainState:
    return TrainState(step=jnp.array(5, jnp.int32), images_seen=jnp.array(40, jnp.int32),
                      params={"D": {"fc": {"weight": jnp.arange(3.0 * width).reshape(3, width), "bias": jnp.ones(width)}}},
                      ema_params={}, opt_state={}, extra={"pl_mean": jnp.zeros((), jnp.float32)},
                      rng=jnp.zeros((2,), jnp.uint32))


def _config(width: int, dtype: str = "float32") -> dict:
    return {"recipe": "toy", "model": {"width": width, "dtype": dtype, "fused_modconv": False},
            "data": {"resolution": 16, "channels": 3}, "train": {"total_kimg": 1.0, "g_lr": 0.002}}


def test_checkpointer_restores_when_only_settings_that_keep_the_arrays_differ(tmp_path):
    ckpt = checkpoint.Checkpointer(str(tmp_path), async_save=False)
    saved = _state(4)
    ckpt.save(5, saved, _config(4))
    ckpt.close()
    ckpt = checkpoint.Checkpointer(str(tmp_path), async_save=False)  # as a new process does
    current = _config(4, dtype="bfloat16")
    current["model"]["fused_modconv"] = True
    current["train"]["total_kimg"] = 2.0
    restored = ckpt.restore(jax.tree.map(jnp.zeros_like, saved), current)
    assert int(restored.step) == 5
    np.testing.assert_array_equal(np.asarray(restored.params["D"]["fc"]["weight"]), np.asarray(saved.params["D"]["fc"]["weight"]))
    ckpt.close()


def test_checkpointer_names_the_fields_and_arrays_that_differ(tmp_path):
    ckpt = checkpoint.Checkpointer(str(tmp_path), async_save=False)
    ckpt.save(5, _state(4), _config(4))
    ckpt.close()
    ckpt = checkpoint.Checkpointer(str(tmp_path), async_save=False)
    current = _config(6, dtype="bfloat16")
    current["train"]["g_lr"] = 0.01
    with pytest.raises(checkpoint.CheckpointMismatch) as info:
        ckpt.restore(_state(6), current)
    message = str(info.value)
    assert "model.width: checkpoint has 4, this run has 6" in message
    assert "model.dtype: checkpoint has 'float32', this run has 'bfloat16'" in message  # listed, not the cause
    assert "train.g_lr: checkpoint has 0.002, this run has 0.01" in message
    assert "total_kimg" not in message
    assert "params/D/fc/weight: checkpoint has shape (3, 4) float32, this run has shape (3, 6) float32" in message
    assert "params/D/fc/bias: checkpoint has shape (4,) float32, this run has shape (6,) float32" in message
    assert "new --workdir, or the config that wrote the checkpoint" in message
    ckpt.close()
