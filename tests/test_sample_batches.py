"""Issue 23, must-show 3 (sampling tools): seeds in device batches give the images they give one by
one, and ``--network=FILE.pkl`` (an NVIDIA pickle converted in memory) gives the images of
convert-then-sample."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, load_json, load_npz
from gan_jax import convert, sample

nvidia_pickle_writer = pytest.importorskip("nvidia_pickle_writer")
FAMILY = "stylegan2_ada"


@pytest.fixture(scope="module")
def pickle_and_run(tmp_path_factory):
    """The fixture's G_skip (32x32, z_dim 32) as an NVIDIA snapshot, and that snapshot converted."""
    nets = load_json(FAMILY, "nets.json")["nets"]
    g = ("Generator", nets["G_skip"]["init_kwargs"], load_npz(FAMILY, "G_skip_params.npz"))
    root = tmp_path_factory.mktemp("batches")
    pkl = root / "network-snapshot-000000.pkl"
    nvidia_pickle_writer.write_nvidia_pickle(str(pkl), G=g, G_ema=g, training_set_kwargs={"path": "embedded"})
    convert.convert_nvidia_pickle(str(pkl), str(root / "run"))
    return pkl, root / "run"


def test_64_seeds_in_batches_of_8_equal_one_by_one(pickle_and_run):
    _, run = pickle_and_run
    seeds = list(range(64))
    batched = sample.Sampler(str(run), batch_size=8)
    single = sample.Sampler(str(run), batch_size=1)
    got = sample.generate(str(run), seeds, truncation_psi=0.7, sampler=batched)
    want = np.concatenate([sample.generate(str(run), [s], truncation_psi=0.7, sampler=single) for s in seeds])
    assert got.shape == (64, 32, 32, 3)
    # uint8 images of float32 networks: a batch of 8 and a batch of 1 may sum in another order (a few
    # 1e-7 of the [-1, 1] output), which moves a value across a rounding edge by one level at most.
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())


def test_the_last_batch_is_padded_to_one_shape(pickle_and_run):
    """61 seeds in batches of 8: eight calls of shape [8, ...] (the last padded), cut back to 61."""
    _, run = pickle_and_run
    s = sample.Sampler(str(run), batch_size=8)
    shapes = []
    synthesis = s._synthesis
    s._synthesis = lambda state, w, key, mode: (shapes.append(w.shape), synthesis(state, w, key, mode))[1]
    images = sample.generate(str(run), list(range(61)), sampler=s)
    assert images.shape == (61, 32, 32, 3)
    assert shapes == [(8, 8, 32)] * 8  # ws [batch, num_ws, w_dim]


def test_network_pickle_equals_convert_then_sample(pickle_and_run):
    pkl, run = pickle_and_run
    seeds = [0, 3, 11]
    from_run = sample.generate(str(run), seeds, truncation_psi=0.5, sampler=sample.Sampler(str(run), batch_size=4))
    from_pkl = sample.generate(None, seeds, truncation_psi=0.5,
                               sampler=sample.Sampler(network=str(pkl), batch_size=4))
    np.testing.assert_array_equal(from_pkl, from_run)


def test_network_flag_on_the_command_line(pickle_and_run, tmp_path):
    pkl, run = pickle_and_run
    out = subprocess.run([sys.executable, "-m", "gan_jax.sample", f"--network={pkl}", "--seeds=0-2", "--batch=2",
                          f"--outdir={tmp_path}"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    want = sample.generate(str(run), [0, 1, 2], sampler=sample.Sampler(str(run), batch_size=2))
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / f"seed{i:04d}.png")), want[i])


def test_workdir_and_network_are_exclusive(pickle_and_run):
    pkl, run = pickle_and_run
    with pytest.raises(ValueError, match="expected one of a run directory"):
        sample.Sampler(str(run), network=str(pkl))
    with pytest.raises(ValueError, match="--batch must be at least 1"):
        sample.Sampler(str(run), batch_size=0)


def test_evaluate_network_needs_a_dataset_and_appends_through_epath(pickle_and_run, tmp_path):
    """``gan_jax.evaluate --network=FILE.pkl`` converts in memory; a pickle naming no readable dataset
    asks for --data; the JSON lines are appended through etils.epath (local here, gs:// alike)."""
    from gan_jax import evaluate

    pkl, _ = pickle_and_run
    with pytest.raises(ValueError, match="pass --data=DATASET.zip"):
        evaluate.evaluate(None, ["fid16"], network=str(pkl))
    for i in range(2):
        evaluate.append_line(tmp_path / "metric-fid16.jsonl", f'{{"i": {i}}}')
    assert (tmp_path / "metric-fid16.jsonl").read_text() == '{"i": 0}\n{"i": 1}\n'
