"""ProGAN's SWD and MS-SSIM (issue 20): gan_jax equals the official numpy functions.

The reference numbers (tests/reference/progan_metrics/refs.json) come from ProGAN's own
``metrics/sliced_wasserstein.py`` and ``metrics/ms_ssim.py`` (tkarras/progressive_growing_of_gans @
2504c3f3cb98ca58751610ad61fa1097313152bd, kept out of git) run by ``make_refs.py`` on images that
``make_refs.make_images`` regenerates here (their sha256 is stored and checked), with the official
API's random draws from ``np.random.seed(seed)``, which gan_jax replays from ``RandomState(seed)``.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib

import numpy as np
import pytest
from tolerance import assert_close

from gan_jax.metrics import ms_ssim as ms_ssim_lib
from gan_jax.metrics import swd as swd_lib

REF_DIR = pathlib.Path(__file__).resolve().parent / "reference" / "progan_metrics"


def _load_make_refs():
    spec = importlib.util.spec_from_file_location("progan_make_refs", REF_DIR / "make_refs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines the image generators only; the official code loads in main()
    return module


mr = _load_make_refs()


@pytest.fixture(scope="module")
def refs() -> dict[str, object]:
    """refs.json: numbers as lists of floats, sha256 and commit as strings."""
    return json.loads((REF_DIR / "refs.json").read_text())


def _swd_case(name: str):
    return next(c for c in mr.SWD_CASES if c[0] == name)


def _swd_inputs(refs, case) -> tuple[np.ndarray, np.ndarray]:
    reals, fakes = mr.swd_inputs(case)
    assert mr.sha256(reals, fakes) == str(refs[f"swd_{case[0]}_sha256"]), \
        "make_images no longer regenerates the images the references were made from; rerun make_refs.py"
    return reals, fakes


def _msssim_inputs(refs, case) -> tuple[np.ndarray, np.ndarray]:
    img1, img2 = mr.msssim_inputs(case)
    assert mr.sha256(img1, img2) == str(refs[f"msssim_{case[0]}_sha256"]), \
        "make_images no longer regenerates the images the references were made from; rerun make_refs.py"
    return img1, img2


def test_references_come_from_the_pinned_upstream_commit(refs):
    assert str(refs["commit"]) == swd_lib.UPSTREAM.split("@")[1] == ms_ssim_lib.UPSTREAM.split("@")[1]


# ---------------------------------------------------------------------------------------------- SWD


def test_laplacian_pyramid_equals_official(refs):
    reals, _ = _swd_inputs(refs, mr.SWD_CASES[0])
    pyramid = swd_lib.laplacian_pyramid(reals[:1])
    assert [p.shape for p in pyramid] == [(1, 32, 32, 3), (1, 16, 16, 3)]
    for lod, level in enumerate(pyramid):
        want = np.asarray(refs[f"pyramid_rgb32_level{lod}"])  # the official level's first channel
        level = level[0, :, :, 0]
        # Every tap of these two levels is an exact float32 integer sum: equal up to one ulp of 255.
        assert_close(level, want, atol=3e-5, what=f"pyramid level {lod}")


@pytest.mark.parametrize("case", mr.SWD_CASES, ids=[c[0] for c in mr.SWD_CASES])
def test_swd_equals_official_api(refs, case):
    name, _, _, _, res, _, seed, minibatch = case
    reals, fakes = _swd_inputs(refs, case)
    result = swd_lib.sliced_wasserstein(reals, fakes, seed=seed, minibatch_size=minibatch or None)
    want = np.asarray(refs[f"swd_{name}"])
    assert result.resolutions == swd_lib.resolutions_of(res)
    assert len(result.levels) == len(want) - 1
    # Same draws, same float32 numpy calls: ~3e-8 of the scale here; 2e-5 covers another machine's
    # BLAS/numpy summation order (replacing the whole normalisation by float64 moves it by 2.5e-6).
    assert_close(result.levels + [result.mean], want, rtol=2e-5, what=f"SWD {name}")


def test_swd_seed_rng_and_explicit_draws_agree(refs):
    case = _swd_case("gray16")
    reals, fakes = _swd_inputs(refs, case)
    n, res, _, ch = reals.shape
    by_seed = swd_lib.sliced_wasserstein(reals, fakes, seed=7)
    by_rng = swd_lib.sliced_wasserstein(reals, fakes, rng=np.random.RandomState(7))
    by_draws = swd_lib.sliced_wasserstein(reals, fakes, seed=123,
                                          draws=swd_lib.draw_swd(np.random.RandomState(7), n, res, ch))
    assert by_seed == by_rng == by_draws
    assert swd_lib.sliced_wasserstein(reals, fakes, seed=8).levels != by_seed.levels


def test_swd_chunked_descriptors_equal_one_chunk(refs, monkeypatch):
    reals, fakes = _swd_inputs(refs, _swd_case("rgb32"))
    whole = swd_lib.sliced_wasserstein(reals[:20], fakes[:20], seed=3)
    monkeypatch.setattr(swd_lib, "_CHUNK", 8)  # 8 + 8 + 4 images per jitted call, same draws
    chunked = swd_lib.sliced_wasserstein(reals[:20], fakes[:20], seed=3)
    assert_close(chunked.levels, whole.levels, rtol=1e-6, what="chunked SWD")


def test_swd_of_a_set_with_itself_is_zero_and_swd_is_symmetric(refs):
    reals, fakes = _swd_inputs(refs, _swd_case("gray16"))
    n, res, _, ch = reals.shape
    d = swd_lib.draw_swd(np.random.RandomState(0), n, res, ch)
    # The same descriptors on both sides (what the official end('reals') computes): exactly 0.
    same = swd_lib.SWDDraws(d.real_x, d.real_y, d.real_x, d.real_y, d.directions)
    zero = swd_lib.sliced_wasserstein(reals, reals, draws=same)
    assert zero.levels == [0.0] and zero.mean == 0.0
    forward = swd_lib.sliced_wasserstein(reals, fakes, draws=d)
    swapped = swd_lib.SWDDraws(d.fake_x, d.fake_y, d.real_x, d.real_y, d.directions)
    backward = swd_lib.sliced_wasserstein(fakes, reals, draws=swapped)
    assert_close(backward.levels, forward.levels, rtol=1e-6, what="SWD(fakes, reals)")
    # Other positions on the same images: small next to two different sets.
    resampled = swd_lib.sliced_wasserstein(reals, reals, seed=1)
    assert resampled.mean < 0.5 * forward.mean


def test_swd_result_names_follow_progan():
    result = swd_lib.SWDResult(resolutions=[32, 16], levels=[2.0, 4.0], mean=3.0)
    assert result.as_dict() == {"SWDx1e3_32": 2.0, "SWDx1e3_16": 4.0, "SWDx1e3_avg": 3.0}
    assert swd_lib.resolutions_of(128) == [128, 64, 32, 16]


@pytest.mark.parametrize("reals_shape, fakes_shape, dtype, match", [
    ((4, 32, 32, 3), (4, 16, 16, 3), np.uint8, r"same shape.*\(4, 32, 32, 3\) vs fakes \(4, 16, 16, 3\)"),
    ((4, 32, 32, 3), (4, 32, 32, 3), np.float32, r"uint8.*found dtype float32"),
    ((4, 8, 8, 3), (4, 8, 8, 3), np.uint8, r"power-of-two resolution >= 16.*found 8x8"),
    ((4, 48, 48, 3), (4, 48, 48, 3), np.uint8, r"power-of-two resolution >= 16.*found 48x48"),
    ((4, 32, 16, 3), (4, 32, 16, 3), np.uint8, r"square.*found 32x16"),
    ((32, 32, 3), (32, 32, 3), np.uint8, r"4 dimensions.*found shape \(32, 32, 3\)"),
])
def test_swd_bad_input_says_what_was_expected(reals_shape, fakes_shape, dtype, match):
    with pytest.raises(ValueError, match=match):
        swd_lib.sliced_wasserstein(np.zeros(reals_shape, dtype), np.zeros(fakes_shape, dtype))


def test_swd_bad_draws_say_what_was_expected(refs):
    reals, fakes = _swd_inputs(refs, _swd_case("gray16"))
    d = swd_lib.draw_swd(np.random.RandomState(0), 64, 16, 3)  # drawn for 3 channels, images have 1
    with pytest.raises(ValueError, match=r"directions\[0\] must be \[4, 49, 128\]; found \[4, 147, 128\]"):
        swd_lib.sliced_wasserstein(reals, fakes, draws=d)


# ------------------------------------------------------------------------------------------ MS-SSIM


@pytest.mark.parametrize("case", mr.MSSSIM_CASES, ids=[c[0] for c in mr.MSSSIM_CASES])
def test_ms_ssim_equals_official(refs, case):
    name = case[0]
    img1, img2 = _msssim_inputs(refs, case)
    got = ms_ssim_lib.ms_ssim(img1, img2)
    assert got.shape == (len(img1),) and got.dtype == np.float64
    # Exact-math reference (the official file with float64 inputs to fftconvolve): float32 JAX keeps ~1e-7.
    assert_close(got, refs[f"msssim_{name}_float64"], atol=1e-6, what=f"MS-SSIM {name} vs float64 official")
    # The official file as is: scipy transforms its float32 images in single precision, ~1e-5 noise
    # (CS = 1.0000482 where it is exactly 1, raised to 0.1333).
    assert_close(got, refs[f"msssim_{name}"], atol=2e-5, what=f"MS-SSIM {name} vs official")
    assert_close(got.mean(), refs[f"msssim_{name}_batch_mean"], atol=2e-5, what=f"MS-SSIM {name} batch mean")


def test_ms_ssim_identical_is_one_and_symmetric(refs):
    img1, img2 = _msssim_inputs(refs, mr.MSSSIM_CASES[0])
    assert_close(ms_ssim_lib.ms_ssim(img1, img1), np.ones(len(img1)), atol=1e-6, what="MS-SSIM(x, x)")
    assert_close(ms_ssim_lib.ms_ssim(img2, img1), ms_ssim_lib.ms_ssim(img1, img2), atol=1e-6,
                 what="MS-SSIM(b, a)")


def test_ms_ssim_chunks_and_padding_do_not_change_values(refs, monkeypatch):
    img1, img2 = _msssim_inputs(refs, mr.MSSSIM_CASES[1])  # 32 gray 16x16 pairs
    whole = ms_ssim_lib.ms_ssim(img1, img2)
    monkeypatch.setattr(ms_ssim_lib, "_CHUNK_PIXELS", 12 * 16 * 16)  # 12 + 12 + 8 (padded to 12)
    assert_close(ms_ssim_lib.ms_ssim(img1, img2), whole, atol=1e-7, what="chunked MS-SSIM")


@pytest.mark.parametrize("shape1, shape2, dtype, match", [
    ((2, 32, 32, 3), (2, 32, 32, 1), np.uint8, r"same shape.*\(2, 32, 32, 3\) vs \(2, 32, 32, 1\)"),
    ((2, 32, 32, 3), (2, 32, 32, 3), np.float64, r"uint8.*found dtype float64"),
    ((2, 8, 8, 3), (2, 8, 8, 3), np.uint8, r"multiples of 16.*found 8x8x3"),
    ((2, 24, 32, 3), (2, 24, 32, 3), np.uint8, r"multiples of 16.*found 24x32x3"),
    ((32, 32, 3), (32, 32, 3), np.uint8, r"4 dimensions.*found shape \(32, 32, 3\)"),
])
def test_ms_ssim_bad_input_says_what_was_expected(shape1, shape2, dtype, match):
    with pytest.raises(ValueError, match=match):
        ms_ssim_lib.ms_ssim(np.zeros(shape1, dtype), np.zeros(shape2, dtype))
