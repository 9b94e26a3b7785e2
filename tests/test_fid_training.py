"""FID during training and ``gan_jax.evaluate`` on the saved run, as a user sees them."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config
from flax import traverse_util

from gan_jax import checkpoint, evaluate, train
from gan_jax.metrics import inception
from tolerance import assert_close

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A pytorch-fid-format ``.pth`` (torch.save of the Inception3 state dict) of a random Inception."""
    params = inception.InceptionV3().init(jax.random.PRNGKey(1), jnp.zeros((1, 299, 299, 3)))["params"]
    state = {}
    for path, v in traverse_util.flatten_dict(params).items():
        v = np.asarray(v)
        if path[-1] == "weight" and v.ndim == 4:
            v = v.transpose(3, 2, 0, 1)
        elif path[-1] == "weight" and v.ndim == 2:
            v = v.T
        state[".".join(path)] = torch.from_numpy(np.array(v))
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    return str(path)


def _fid_config(weights: str, cache: str):
    cfg = tiny_config(total_kimg=10 * 8 / 1000)  # 10 steps of 8
    cfg.fid.metric, cfg.fid.every_kimg, cfg.fid.batch_size = "fid16", 5 * 8 / 1000, 8
    cfg.fid.inception, cfg.fid.cache_dir = weights, cache
    cfg.checkpoint.keep = 1
    cfg.log.tensorboard = True
    return cfg


@pytest.fixture(scope="module")
def trained(weights_file, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    cfg = _fid_config(weights_file, str(workdir / "stats"))
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        train.train(cfg, str(workdir))
    return workdir, out.getvalue()


def test_fid_is_logged_and_the_best_checkpoint_kept(trained):
    from tensorboard.backend.event_processing import event_accumulator

    workdir, console = trained
    lines = [line for line in console.splitlines() if line.startswith("Metrics/fid16/nvidia")]
    values = [float(line.split()[1]) for line in lines]
    assert len(values) == 2 and all(np.isfinite(values)) and all(v > 0 for v in values), console
    acc = event_accumulator.EventAccumulator(str(workdir), size_guidance={"tensors": 0})
    acc.Reload()
    assert "Metrics/fid16/nvidia" in acc.Tags()["tensors"]
    logged = [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("Metrics/fid16/nvidia")] \
        if (tf := pytest.importorskip("tensorflow")) else []
    assert_close(logged, values, rtol=1e-4)
    ckpt = checkpoint.Checkpointer(str(workdir / "checkpoints"), keep=1, async_save=False, best_metric="fid16")
    best = 5 if values[0] < values[1] else 10
    assert ckpt.best_step() == best and set(ckpt.all_steps()) == {best, 10}
    ckpt.close()
    assert len(list((workdir / "stats").iterdir())) == 1  # real statistics cached once


def test_evaluate_reproduces_the_training_fid_and_appends_jsonl(trained, weights_file):
    workdir, console = trained
    final = float([ln for ln in console.splitlines() if ln.startswith("Metrics/fid16/nvidia")][-1].split()[1])
    out = evaluate.evaluate(str(workdir), ["fid16", "kid16_full", "is16"], inception=weights_file, batch_size=8)
    assert out["fid16"]["fid16"] == pytest.approx(final, rel=1e-4)
    assert np.isfinite(out["kid16_full"]["kid16_full"]) and out["is16"]["is16_mean"] >= 1.0
    records = [json.loads(line) for line in (workdir / "metric-fid16.jsonl").read_text().splitlines()]
    assert records[-1]["snapshot"] == 10 and records[-1]["convention"] == "nvidia"
    with pytest.raises(ValueError, match="unknown metric 'fid50kk'; expected e.g. fid50k_full"):
        evaluate.evaluate(str(workdir), ["fid50kk"])


def test_without_weights_fid_is_off_with_the_reason_and_training_goes_on(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("GAN_JAX_INCEPTION", raising=False)
    cfg = _fid_config("", str(tmp_path / "stats"))
    cfg.log.tensorboard = False
    state = train.train(cfg, str(tmp_path / "run"), max_steps=2)
    out = capsys.readouterr().out
    assert int(state.step) == 2
    assert "FID is off (no FID Inception weights found" in out and "pt_inception-2015-12-05-6726825d.pth" in out
