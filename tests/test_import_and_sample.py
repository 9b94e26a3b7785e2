"""NVIDIA pickles -> gan_jax run directory -> the sampling tools (generate, style mix, interpolate),
and fine-tuning the converted run."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, load_json, load_npz, nchw
from gan_jax import convert, sample, train
from tolerance import assert_close

nvidia_pickle_writer = pytest.importorskip("nvidia_pickle_writer")
FAMILY = "stylegan2_ada"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The fixture's G_skip (as G and G_ema) and D_skip, written as an NVIDIA snapshot and converted."""
    nets = load_json(FAMILY, "nets.json")["nets"]
    g = ("Generator", nets["G_skip"]["init_kwargs"], load_npz(FAMILY, "G_skip_params.npz"))
    d = ("Discriminator", nets["D_skip"]["init_kwargs"], load_npz(FAMILY, "D_skip_params.npz"))
    root = tmp_path_factory.mktemp("import")
    pkl = root / "network-snapshot-000000.pkl"
    nvidia_pickle_writer.write_nvidia_pickle(str(pkl), G=g, D=d, G_ema=g,
                                             training_set_kwargs={"path": "embedded", "xflip": False})
    out = subprocess.run([sys.executable, "-m", "gan_jax.convert", f"--source={pkl}", f"--dest={root / 'run'}"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "python -m gan_jax.sample" in out.stdout
    return root / "run", sample.Sampler(str(root / "run"))


def test_converted_pickle_reproduces_the_official_images(converted):
    """Through the gan_jax.sample path: G_ema(z, psi, noise_mode='const') equals NVIDIA's G_skip images."""
    _, sampler = converted
    z = load_npz(FAMILY, "inputs.npz")["z"]
    ref = load_npz(FAMILY, "G_skip_outputs.npz")
    assert_close(nchw(sampler.images(z)), ref["img"], atol=1e-4)
    assert_close(nchw(sampler.images(z, truncation_psi=0.5)), ref["img_psi0.5"], atol=1e-4)
    assert_close(nchw(sampler.images(z, noise_mode="none")), ref["img_noise_none"], atol=1e-4)


def test_generate_by_seed_is_generate_py(converted):
    run, sampler = converted
    z = np.random.RandomState(7).randn(1, 32).astype(np.float32)
    want = np.clip(sampler.images(z, truncation_psi=0.7) * 127.5 + 128, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(sample.generate(str(run), [7], truncation_psi=0.7, sampler=sampler), want)


def test_style_mixing_grid(converted):
    run, sampler = converted
    rows, cols, styles = [1, 2], [3, 4, 5], [0, 1, 2]
    grid = sample.style_mix(str(run), rows, cols, styles, sampler=sampler)
    r = 32
    assert grid.shape == ((len(rows) + 1) * r, (len(cols) + 1) * r, 3)
    tile = lambda i, j: grid[i * r:(i + 1) * r, j * r:(j + 1) * r]
    assert not tile(0, 0).any()
    singles = sample.generate(str(run), rows + cols, sampler=sampler)
    np.testing.assert_array_equal(tile(0, 2), singles[3])  # column seed 4
    np.testing.assert_array_equal(tile(2, 0), singles[1])  # row seed 2
    ws = sampler.mapping(sample.seed_latents([2, 5], 32))
    mixed = ws[0].copy()
    mixed[styles] = ws[1][styles]
    want = sample.to_uint8(sampler.synthesis(mixed[None]))[0]
    np.testing.assert_array_equal(tile(2, 3), want)  # row seed 2 with styles 0-2 of column seed 5
    with pytest.raises(ValueError, match=r"--styles \[8\] outside 0\.\.7"):
        sample.style_mix(str(run), rows, cols, [8], sampler=sampler)


def test_interpolation_video(converted, tmp_path):
    run, sampler = converted
    frames = sample.interpolate(str(run), [0, 5], frames=4, sampler=sampler)
    assert frames.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(frames[0], sample.generate(str(run), [0], sampler=sampler)[0])
    np.testing.assert_array_equal(frames[4], sample.generate(str(run), [5], sampler=sampler)[0])
    path = sample.write_video(str(tmp_path / "interp.gif"), frames)
    assert Image.open(path).n_frames == 8


def test_sample_command_line_subcommands(converted, tmp_path):
    run, _ = converted
    for args, produced in ((["style-mix", "--rows=1,2", "--cols=3", "--styles=0-3"], "grid.png"),
                           (["interpolate", "--seeds=0,1", "--frames=2"], "interpolation.gif")):
        out = subprocess.run([sys.executable, "-m", "gan_jax.sample", *args, f"--workdir={run}",
                              f"--outdir={tmp_path / args[0]}"], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        assert (tmp_path / args[0] / produced).exists()


@pytest.mark.slow  # ~84 s of compiling on 2 cores; keeps the default run under 25 minutes
def test_converted_run_fine_tunes_on_the_embedded_dataset(converted, tmp_path):
    import shutil

    import ml_collections

    run, _ = converted
    work = tmp_path / "finetune"
    shutil.copytree(run, work)
    config = ml_collections.ConfigDict(load_json_file(work / "config.json"))
    config.train.batch_size = 8
    config.train.num_shards = 1
    config.train.total_kimg = 3 * 8 / 1000
    config.train.pl_weight = 0.0  # keeps the test to two compiled phase sets
    config.log.tensorboard = False
    config.data.source = "embedded"
    state = train.train(config, str(work))
    assert int(state.step) == 3


def load_json_file(path):
    import json

    return json.loads(path.read_text())


def test_a_pickle_of_another_network_type_is_refused(tmp_path):
    nets = load_json(FAMILY, "nets.json")["nets"]
    g = ("Discriminator", nets["D_skip"]["init_kwargs"], load_npz(FAMILY, "D_skip_params.npz"))
    pkl = tmp_path / "wrong.pkl"
    nvidia_pickle_writer.write_nvidia_pickle(str(pkl), G=g)
    with pytest.raises(ValueError, match="not a StyleGAN2 Generator"):  # the loader names what it found
        convert.convert_nvidia_pickle(str(pkl), str(tmp_path / "out"))
