"""Reference numbers for gan_jax's SWD and MS-SSIM, computed with ProGAN's own numpy functions.

Usage (from the repository root; the checkout is kept out of git, never copy its code here)::

    python tests/reference/progan_metrics/make_refs.py PATH

``PATH`` is a checkout of https://github.com/tkarras/progressive_growing_of_gans: a work tree (with
``metrics/sliced_wasserstein.py``) or a bare git directory (read with ``git show COMMIT:...``). The
script loads ``metrics/sliced_wasserstein.py`` and ``metrics/ms_ssim.py`` as text into fresh module
namespaces (they import only numpy and scipy), runs them on the deterministic images that
:func:`make_images` draws, and writes ``refs.json`` beside this file (float64 values; float32
arrays stored exactly as Python floats). The images are not stored: the
test regenerates them with :func:`make_images` and checks their sha256 against the stored one.

Draw order (``SWD_CASES``): ``np.random.seed(seed)``, then the official ``API`` exactly as
``util_scripts.evaluate_metrics`` drives it: ``begin('reals')``, ``feed`` per minibatch (NCHW),
``end('reals')`` (which draws, and we discard, the reals-vs-reals directions), ``begin('fakes')``,
``feed``, ``end('fakes')``. ``gan_jax.metrics.swd.sliced_wasserstein(reals, fakes, seed)`` consumes
a ``RandomState(seed)`` in the same order.

MS-SSIM: ``msssim_<case>`` is the official function on each pair alone (``msssim(img1[i:i+1],
img2[i:i+1])``: the official function averages over its batch), ``msssim_<case>_batch_mean`` the
official batch call. The official code casts the images to float32 before scipy's ``fftconvolve``,
which then transforms them in single precision: its values carry float32 noise of ~1e-5 (e.g.
CS = 1.0000482 at the 1x1 scale, where it is exactly 1). ``msssim_<case>_float64`` is the same
file with those three casts made float64 (``_patch_float64``): the exact-math reference.

One-channel images: the official ``get_descriptors_for_minibatch`` asserts 3 channels
(``assert len(S) == 4 and S[1] == 3``) and hard-codes ``chan`` in ``0:3``. For the 1-channel case
the script patches exactly those two spots to use ``S[1]`` (the generalisation gan_jax implements);
every 3-channel number comes from the unpatched file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import subprocess
import types
import warnings

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "refs.json"  # JSON, not .npz: the repository's .gitignore ignores *.npz

# (name, reals seed, fakes seed, count, resolution, channels, draw seed, minibatch size or 0 = one)
SWD_CASES = [
    ("rgb32", 1, 2, 64, 32, 3, 0, 0),
    ("gray16", 3, 4, 64, 16, 1, 1, 0),
    ("rgb64_mb16", 5, 6, 64, 64, 3, 2, 16),
]
# (name, seed, pairs, height, width, channels)
MSSSIM_CASES = [
    ("rgb32", 11, 32, 32, 32, 3),
    ("gray16", 12, 32, 16, 16, 1),
    ("rgb64", 13, 16, 64, 64, 3),
    ("rgb32x64", 14, 8, 32, 64, 3),
]


def make_images(seed: int, n: int, height: int, width: int, channels: int, noise: float = 8.0) -> np.ndarray:
    """Deterministic, image-like uint8 images [n, height, width, channels] (not white noise).

    A smooth background (4x4 random values, nearest-upsampled, then box-blurred), one rectangle and
    one disc of random intensity (sometimes past 0 or 255, so clipping leaves flat saturated areas),
    plus uniform noise of amplitude ``noise``. Only RandomState draws and float64 +,-,*,/ are used,
    so the bytes are the same on any machine (the test checks their sha256 anyway).
    """
    rs = np.random.RandomState(seed)
    base = rs.uniform(0.0, 255.0, size=(n, 4, 4, channels))
    img = np.repeat(np.repeat(base, height // 4, axis=1), width // 4, axis=2)
    for _ in range(2):  # separable 3-tap box blur, wrap-around (np.roll)
        img = (np.roll(img, 1, axis=1) + img + np.roll(img, -1, axis=1)) / 3.0
        img = (np.roll(img, 1, axis=2) + img + np.roll(img, -1, axis=2)) / 3.0
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(n):
        y0, x0 = rs.randint(0, height // 2), rs.randint(0, width // 2)
        h, w = rs.randint(2, height // 2 + 1), rs.randint(2, width // 2 + 1)
        img[i, y0:y0 + h, x0:x0 + w, :] += rs.uniform(-200.0, 200.0, size=channels)
        cy, cx, r = rs.uniform(0, height), rs.uniform(0, width), rs.uniform(2.0, height / 3.0)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        img[i][disc] += rs.uniform(-200.0, 200.0, size=channels)
    img += rs.uniform(-noise, noise, size=img.shape)
    return np.clip(np.floor(img + 0.5), 0, 255).astype(np.uint8)


def perturb(images: np.ndarray, seed: int, amplitude: float = 12.0) -> np.ndarray:
    """The same images with extra uniform noise of ``amplitude`` (pairs with MS-SSIM near 1)."""
    rs = np.random.RandomState(seed)
    out = images.astype(np.float64) + rs.uniform(-amplitude, amplitude, size=images.shape)
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def swd_inputs(case) -> tuple[np.ndarray, np.ndarray]:
    """(reals, fakes) uint8 NHWC of an ``SWD_CASES`` row; fakes are noisier (noise 24 vs 8)."""
    _, seed_r, seed_f, n, res, ch, _, _ = case
    return make_images(seed_r, n, res, res, ch), make_images(seed_f, n, res, res, ch, noise=24.0)


def msssim_inputs(case) -> tuple[np.ndarray, np.ndarray]:
    """(img1, img2) of an ``MSSSIM_CASES`` row.

    img2 is img1 with light noise (first half: MS-SSIM near 1), with heavy noise (third quarter:
    mid-range values), or an unrelated image (last quarter: mostly clipped to 0).
    """
    _, seed, n, h, w, ch = case
    img1 = make_images(seed, n, h, w, ch)
    other = make_images(seed + 1000, n, h, w, ch, noise=16.0)
    half, three_q = n // 2, (3 * n) // 4
    img2 = np.concatenate([perturb(img1[:half], seed + 2000), perturb(img1[half:three_q], seed + 3000, 80.0),
                           other[three_q:]])
    return img1, img2


def sha256(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _read_official(path: pathlib.Path, name: str) -> tuple[str, str]:
    """(source text, commit) of ``name`` in a work tree or bare git dir at ``path``."""
    if (path / name).is_file():
        text = (path / name).read_text()
        try:
            commit = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True,
                                    capture_output=True, text=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            commit = "unknown (not a git work tree)"
        return text, commit
    git = ["git", f"--git-dir={path}"]
    commit = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    text = subprocess.run(git + ["show", f"{commit}:{name}"], check=True, capture_output=True, text=True).stdout
    return text, commit


def _load_module(text: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ms_ssim.py: scipy.ndimage.filters
        # The official file, read from the checkout named on the command line (never from the repo).
        exec(compile(text, name, "exec"), module.__dict__)  # noqa: S102
    return module


def _patch_any_channels(text: str) -> str:
    """The two 3-channel spots of get_descriptors_for_minibatch, generalised to S[1] channels."""
    for old, new in [("assert len(S) == 4 and S[1] == 3", "assert len(S) == 4"),
                     ("np.ogrid[0:N, 0:3, -H:H+1, -H:H+1]", "np.ogrid[0:N, 0:S[1], -H:H+1, -H:H+1]")]:
        assert text.count(old) == 1, f"official file changed: {old!r} not found exactly once"
        text = text.replace(old, new)
    return text


def _patch_float64(text: str) -> str:
    """ms_ssim.py with float64 inputs to fftconvolve (instead of float32) for the exact-math check."""
    for old, count in [("img1 = img1.astype(np.float32)", 1), ("img2 = img2.astype(np.float32)", 1),
                       ("[x.astype(np.float32) for x in [img1, img2]]", 1)]:
        assert text.count(old) == count, f"official file changed: {old!r} not found {count} time(s)"
        text = text.replace(old, old.replace("float32", "float64"))
    return text


def official_swd(swd_mod, reals: np.ndarray, fakes: np.ndarray, seed: int, minibatch: int) -> np.ndarray:
    """The official API's [levels..., mean] for NHWC uint8 inputs, draws from np.random.seed(seed)."""
    n, res, _, ch = reals.shape
    mb = minibatch or n
    api = swd_mod.API(num_images=n, image_shape=[ch, res, res], image_dtype=np.uint8, minibatch_size=mb)
    np.random.seed(seed)
    out = None
    for mode, images in (("reals", reals), ("fakes", fakes)):
        api.begin(mode)
        for b in range(0, n, mb):
            api.feed(mode, np.ascontiguousarray(images[b:b + mb].transpose(0, 3, 1, 2)))
        out = api.end(mode)
    return np.asarray(out, dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=pathlib.Path, help="ProGAN work tree or bare git directory")
    args = parser.parse_args()
    swd_text, commit = _read_official(args.checkout, "metrics/sliced_wasserstein.py")
    ssim_text, commit2 = _read_official(args.checkout, "metrics/ms_ssim.py")
    assert commit == commit2
    swd3 = _load_module(swd_text, "progan_sliced_wasserstein")
    swd_any = _load_module(_patch_any_channels(swd_text), "progan_sliced_wasserstein_any_channels")
    ssim = _load_module(ssim_text, "progan_ms_ssim")
    ssim64 = _load_module(_patch_float64(ssim_text), "progan_ms_ssim_float64")

    refs: dict[str, object] = {"commit": commit}
    for case in SWD_CASES:
        name, _, _, _, _, ch, seed, mb = case
        reals, fakes = swd_inputs(case)
        refs[f"swd_{name}_sha256"] = sha256(reals, fakes)
        refs[f"swd_{name}"] = official_swd(swd3 if ch == 3 else swd_any, reals, fakes, seed, mb).tolist()
        print("swd", name, refs[f"swd_{name}"])
    # The official Laplacian pyramid of the first 32x32 real image, its first channel ([32, 32] and
    # [16, 16] float32; channels are filtered independently).
    reals, _ = swd_inputs(SWD_CASES[0])
    pyr = swd3.generate_laplacian_pyramid(reals[:1].transpose(0, 3, 1, 2), 2)
    refs["pyramid_rgb32_level0"], refs["pyramid_rgb32_level1"] = pyr[0][0, 0].tolist(), pyr[1][0, 0].tolist()

    for case in MSSSIM_CASES:
        name = case[0]
        img1, img2 = msssim_inputs(case)
        refs[f"msssim_{name}_sha256"] = sha256(img1, img2)
        refs[f"msssim_{name}"] = [float(ssim.msssim(img1[i:i + 1], img2[i:i + 1])) for i in range(len(img1))]
        refs[f"msssim_{name}_batch_mean"] = float(ssim.msssim(img1, img2))
        refs[f"msssim_{name}_float64"] = [float(ssim64.msssim(img1[i:i + 1], img2[i:i + 1]))
                                          for i in range(len(img1))]
        print("msssim", name, refs[f"msssim_{name}"][:4], refs[f"msssim_{name}_batch_mean"])
    OUT.write_text(json.dumps(refs, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) from commit {commit}")


if __name__ == "__main__":
    main()
