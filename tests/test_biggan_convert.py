"""The BigGAN author's weights -> ``python -m gan_jax.convert --biggan_G=... --biggan_config=...`` ->
``gan_jax.sample``, and ``--trunc`` with the author's truncated sampler (issue 23, must-show 3).

The fixture networks (fixtures/biggan, README there) are the author's BigGAN at 32x32; their state
dicts are written as ``torch.save`` files, as ``utils.save_weights`` writes G_ema.pth and D.pth.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, load_json, load_npz, nchw, nhwc
from gan_jax import convert, sample

torch = pytest.importorskip("torch")
scipy_stats = pytest.importorskip("scipy.stats")
ATOL = 2e-5  # of max(1, max|ref|): test_biggan_fixtures.py's tolerance for the same networks


def _close(got, ref, atol=ATOL):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    scale = max(1.0, float(np.max(np.abs(ref))))
    assert got.shape == ref.shape and float(np.max(np.abs(got - ref))) <= atol * scale, float(np.max(np.abs(got - ref)))


@pytest.fixture(scope="module")
def author_run(tmp_path_factory):
    """G_ema.pth / D.pth of the fixture's BigGAN, the author's settings as JSON (with train.py keys that
    are no network keywords), converted through the command's ``main``."""
    ref = load_npz("biggan", "biggan.npz")
    m = load_json("biggan", "meta.json")["families"]["biggan"]
    root = tmp_path_factory.mktemp("biggan_author")
    for net, name in (("G", "G_ema.pth"), ("D", "D.pth")):
        # np.array keeps a 0-d array 0-d (the attention gamma); ascontiguousarray would make it [1]
        state = {k.split("/", 1)[1]: torch.from_numpy(np.array(v)) for k, v in ref.items()
                 if k.startswith(f"{net}_state/")}
        torch.save(state, root / name)
    settings = {**m["G_kwargs"], **m["D_kwargs"], "model": "BigGAN", "dataset": "C10", "batch_size": 64,
                "G_nl": "inplace_relu", "D_nl": "inplace_relu", "num_epochs": 100}
    del settings["dim_z"]  # given as a flag below, as a launch script's --dim_z
    (root / "settings.json").write_text(json.dumps(settings))
    convert.main([f"--biggan_G={root / 'G_ema.pth'}", f"--biggan_D={root / 'D.pth'}",
                  f"--biggan_config={root / 'settings.json'}", "--biggan_set=dim_z=32", f"--dest={root / 'run'}"])
    return root / "run", ref, sample.Sampler(str(root / "run"), batch_size=8)


def test_converted_run_reproduces_the_authors_G_and_D(author_run):
    run, ref, sampler = author_run
    assert sampler.config.recipe == "biggan" and sampler.c_dim == 10
    z, y = ref["in/z"], ref["in/y"].astype(int)
    c = np.eye(10, dtype=np.float32)[y]
    _close(nchw(sampler.images(z, c)), ref["eval/G_out"])  # eval mode, as sample.py's --G_eval_mode
    from gan_jax import recipes

    recipe = recipes.build(sampler.config, None)
    state = sampler.state
    d_vars = {"params": state.params["D"], **state.extra["D"]}
    _close(recipe.D.apply(d_vars, nhwc(ref["in/x_real"]), ref["in/y_real"].astype(np.int32)), ref["eval/D_real"])


def test_trunc_is_the_authors_truncated_z_sample(author_run):
    """Seed s at --trunc=T: the author's ``truncated_z_sample(1, dim_z, T, seed=s)`` (BigGAN-PyTorch
    TFHub/biggan_v1.py: ``T * truncnorm.rvs(-2, 2, size, RandomState(s))``) through the generator."""
    run, _, sampler = author_run
    seeds, t = [0, 1, 7, 12], 0.4
    want_z = np.concatenate([t * scipy_stats.truncnorm.rvs(-2, 2, size=(1, 32), random_state=np.random.RandomState(s))
                             for s in seeds])
    c = sampler.labels(3, len(seeds))
    w = sampler.mapping(sampler.latents(seeds, t), c, t)
    # float32 normal CDF and quantile (jax.scipy.special) against scipy's float64: the quantile's slope
    # is at most 1 / pdf(2) = 18.5 at the bounds, times float32's 6e-8 of the CDF: 1.1e-6 of T * 2.
    np.testing.assert_allclose(w[:, :32], want_z, rtol=0, atol=2e-6)
    np.testing.assert_array_equal(w[:, 32:], c)
    assert np.abs(w[:, :32]).max() <= 2 * t
    images = sample.generate(str(run), seeds, truncation_psi=t, class_idx=3, sampler=sampler)
    from gan_jax import recipes

    recipe = recipes.build(sampler.config, None)
    want = sample.to_uint8(recipe.sample(sampler.state, want_z.astype(np.float32), c, truncation=0.0))
    diff = np.abs(images.astype(int) - want.astype(int))
    assert diff.max() <= 1  # z within 2e-6: a uint8 level at most, where a value sits on a rounding edge


def test_trunc_1_is_the_plain_normal_and_the_distribution_below(author_run):
    _, _, sampler = author_run
    z = sample.seed_latents(list(range(4)), 32)
    np.testing.assert_array_equal(sampler.latents(list(range(4)), 1.0), z)  # NVIDIA's seed rule at T = 1
    np.testing.assert_array_equal(sampler.mapping(z, None, 1.0), z)  # sample.truncation = 0: unchanged
    many = sampler.mapping(np.random.RandomState(0).randn(4000, 32).astype(np.float32), None, 0.5)
    assert np.abs(many).max() <= 1.0
    # the truncated normal's std: 0.5 * truncnorm(-2, 2).std() = 0.4399; 128k draws: standard error ~1e-3
    assert abs(many.std() - 0.5 * scipy_stats.truncnorm(-2, 2).std()) < 5e-3


def test_sample_command_takes_trunc_for_biggan(author_run, tmp_path):
    run, _, sampler = author_run
    out = subprocess.run([sys.executable, "-m", "gan_jax.sample", f"--workdir={run}", "--seeds=0-2", "--trunc=0.4",
                          "--class_idx=3", "--batch=2", f"--outdir={tmp_path}"], cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    want = sample.generate(str(run), [0, 1, 2], truncation_psi=0.4, class_idx=3, sampler=sampler)
    for i in range(3):
        got = np.asarray(Image.open(tmp_path / f"seed{i:04d}.png")).astype(int)
        assert np.abs(got - want[i]).max() <= 1  # batches of 2 and of 8: summation order


def test_author_settings_are_checked():
    with pytest.raises(ValueError, match="dataset='X9' is not one of the author's"):
        convert.biggan_author_kwargs({"dataset": "X9"})
    with pytest.raises(ValueError, match="G_nl='elu'"):
        convert.biggan_author_kwargs({"G_nl": "elu"})
    g, d = convert.biggan_author_kwargs({"model": "BigGANdeep", "dataset": "I128_hdf5", "G_depth": 2, "D_depth": 2})
    assert (g["resolution"], g["n_classes"], g["G_depth"], d["D_depth"], g["SN_eps"]) == (128, 1000, 2, 2, 1e-8)
    assert convert.biggan_settings(None, ["dim_z=120", "hier=true", "G_attn=64"]) == {"dim_z": 120, "hier": True,
                                                                                      "G_attn": "64"}
