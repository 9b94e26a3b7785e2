"""Reference outputs of NVIDIA's ``training/augment.py`` ``AugmentPipe`` for gan_jax's ADA tests.

Usage (from the repository root; the checkout stays out of git, never copy its code here)::

    python tests/reference/ada_augment/make_refs.py PATH

``PATH``: a checkout of https://github.com/NVlabs/stylegan2-ada-pytorch (a work tree, or a bare git
directory, exported with ``git archive``). Needs torch and scipy. Writes ``refs.npz`` beside this file.

For each case (a preset of NVIDIA's ``train.py``, a resolution, a channel count, a ``p``), the official
pipe runs on images drawn by :func:`make_images`, with ``torch.rand`` / ``torch.randn`` replaced by
draws from ``numpy.random.RandomState(case seed)`` in call order (:func:`numpy_draws`), so that the
test can replay the same draws without storing them. Stored per case: the output and the gradient of
``sum(output * weights)`` with respect to the input (``weights`` from :func:`make_images` too):
``<case>/selected`` [2, SELECTED], the values at random positions (:func:`selected_positions`) of the
NHWC-flattened output and gradient; ``<case>/sums`` [2, 2], the float64 sum and sum of squares of each
whole array; ``<case>/full`` [2, N, H, W, C] for ``FULL_CASE`` only. Also ``presets`` (NVIDIA's
``augpipe_specs`` as JSON) and ``upstream_commit``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import warnings

import numpy as np

OUT = pathlib.Path(__file__).with_name("refs.npz")
PRESETS = ("blit", "geom", "color", "filter", "noise", "cutout", "bg", "bgc", "bgcf", "bgcfn", "bgcfnc")
BATCH = 3
SELECTED = 128
# (resolution, channels, p): two resolutions, 1 and 3 channels, several p. The image-space filter
# reflect-pads by 21 pixels, which torch allows only on images of at least 22 pixels.
CASES = ((16, 3, 0.3), (16, 1, 0.7), (24, 3, 1.0), (24, 1, 0.5))
FILTER_CASES = ((24, 3, 0.3), (24, 1, 0.7), (32, 3, 1.0), (32, 1, 0.5))
FULL_CASE = "bgc_16_3_p0.3"


def cases():
    """``(name, preset, resolution, channels, p, seed)`` of every stored case."""
    out = []
    for k, preset in enumerate(PRESETS):
        for j, (res, ch, p) in enumerate(FILTER_CASES if preset == "filter" or preset.startswith("bgcf") else CASES):
            out.append((f"{preset}_{res}_{ch}_p{p}", preset, res, ch, p, 1000 + 10 * k + j))
    return out


def make_images(seed: int, res: int, ch: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 NHWC images in [-1, 1] (a smooth ramp plus noise) and the gradient weights."""
    rs = np.random.RandomState(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, res), np.linspace(-1, 1, res), indexing="ij")
    ramp = (0.5 * xx + 0.3 * yy)[None, :, :, None]
    images = np.clip(ramp + 0.4 * rs.standard_normal((BATCH, res, res, ch)), -1, 1).astype(np.float32)
    weights = rs.standard_normal((BATCH, res, res, ch)).astype(np.float32)
    return images, weights


def numpy_draws(seed: int, specs) -> list[np.ndarray]:
    """The draws, in call order, for ``(kind, torch_shape)`` specs: uniform in [0, 1) or standard normal."""
    rs = np.random.RandomState(seed + 7)
    out = []
    for kind, shape in specs:
        if kind == "uniform":
            out.append(np.minimum(rs.random_sample(shape), 1 - 2.0 ** -24).astype(np.float32))
        else:
            out.append(rs.standard_normal(shape).astype(np.float32))
    return out


def selected_positions(seed: int, size: int) -> np.ndarray:
    return np.random.RandomState(seed + 13).choice(size, min(SELECTED, size), replace=False)


def _source(path: str) -> str:
    if os.path.isdir(os.path.join(path, "training")):
        return path
    tmp = tempfile.mkdtemp(prefix="sg2ada_")
    archive = subprocess.run(["git", "--git-dir", path, "archive", "HEAD"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    return tmp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", help="checkout of NVlabs/stylegan2-ada-pytorch (work tree or bare git dir)")
    args = parser.parse_args()
    src = _source(args.src)
    sys.path.insert(0, src)
    import torch  # noqa: PLC0415
    from torch_utils.ops import grid_sample_gradfix  # noqa: PLC0415
    from training import augment  # noqa: PLC0415

    grid_sample_gradfix.enabled = True  # as training_loop sets it (torch >= 1.10 falls back to grid_sample)
    warnings.filterwarnings("ignore", message="grid_sample_gradfix not supported")
    real_rand, real_randn = torch.rand, torch.randn
    specs_seen: list = []
    queue: list = []

    def fake(kind):
        def draw(*size, **kwargs):
            shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (list, tuple, torch.Size)) else tuple(size)
            specs_seen.append((kind, shape))
            return torch.from_numpy(queue.pop(0).reshape(shape)) if queue else real_rand(shape)
        return draw

    presets = _presets(src)
    refs: dict[str, np.ndarray] = {}
    for name, preset, res, ch, p, seed in cases():
        pipe = augment.AugmentPipe(**presets[preset])
        pipe.p.copy_(torch.as_tensor(p))
        images, weights = make_images(seed, res, ch)
        # A first pass records the shapes of the draws; the second feeds them numpy's values.
        torch.rand, torch.randn = fake("uniform"), fake("normal")
        try:
            specs_seen.clear()
            pipe(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
            specs = list(specs_seen)
            queue[:] = numpy_draws(seed, specs)
            x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
            out = pipe(x)
            assert not queue, "draws left over"
        finally:
            torch.rand, torch.randn = real_rand, real_randn
        (out * torch.from_numpy(weights.transpose(0, 3, 1, 2).copy())).sum().backward()
        out_nhwc = out.detach().numpy().transpose(0, 2, 3, 1)
        grad_nhwc = x.grad.numpy().transpose(0, 2, 3, 1)
        idx = selected_positions(seed, out_nhwc.size)
        pair = (out_nhwc, grad_nhwc)
        refs[f"{name}/selected"] = np.stack([a.reshape(-1)[idx] for a in pair]).astype(np.float32)
        refs[f"{name}/sums"] = np.asarray([[a.astype(np.float64).sum(), np.square(a.astype(np.float64)).sum()] for a in pair])
        if name == FULL_CASE:
            refs[f"{name}/full"] = np.stack(pair).astype(np.float32)
        print(name, [s for _, s in specs][:3], "...", f"{len(specs)} draws")
    commit = subprocess.run(["git", "--git-dir", args.src, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    refs["upstream_commit"] = np.asarray(commit or "unknown")
    refs["presets"] = np.asarray(json.dumps(presets, sort_keys=True))
    np.savez_compressed(OUT, **refs)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes), upstream {commit}")


def _presets(src: str) -> dict:
    """NVIDIA's ``augpipe_specs``: the dict literal in its ``train.py`` (not imported: it parses arguments)."""
    text = pathlib.Path(src, "train.py").read_text()
    start = text.index("augpipe_specs = {") + len("augpipe_specs = ")
    end = text.index("}\n", text.index("'bgcfnc'", start)) + 1
    return eval(text[start:end], {"dict": dict})  # noqa: S307 (a literal of upstream's train.py)


if __name__ == "__main__":
    main()
