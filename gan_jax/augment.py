"""Adaptive discriminator augmentation: NVIDIA's ``training/augment.py`` ``AugmentPipe`` in JAX, NHWC.

Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data" (StyleGAN2-ADA),
Appendix B. Every transformation is applied per sample with probability ``p * multiplier``; the
geometric ones compose into one 3x3 matrix applied once, the colour ones into one 4x4 matrix.

    pipe = AugmentPipe(**PRESETS["bgc"])        # NVIDIA's keyword names and defaults
    images = pipe(images, p, key)               # float [N, H, W, C] in about [-1, 1], C in {1, 3}

``p`` is a scalar that may be traced (ADA moves it without recompiling). ``pipe.draw(key, shape)``
makes the random draws, in the order and shapes of the official ``forward`` (``torch.rand`` /
``torch.randn`` calls); ``pipe(images, p, draws=...)`` applies given draws, so that a recording of
the official draws can be replayed (``draws_from_torch_sequence``).

Where a shape cannot follow the data: the official code reflect-pads the batch by a margin that
depends on the draws (the transformed corners, at most ``W - 1`` / ``H - 1``). Here the batch is
reflect-padded by that maximum, and the pixels outside the official margin (computed the same way,
per group of rows as each GPU computes it over its own batch) are zeroed before and after the
upsampling, so that the bilinear sampler reads exactly what the official one reads. Up to
``MATRIX_MAX_SIZE`` pixels a side, padding, masking and the 2x upsampling are one matrix per axis and
image, and the final 2x downsampling one constant matrix per axis: matrix products, whose gradients
are matrix products, cost little at any margin; larger images take the official filters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.nn.upfirdn2d import downsample2d, setup_filter, upfirdn1d_matrix, upsample2d

_HIGHEST = jax.lax.Precision.HIGHEST
# Up to this side the geometric resampling runs as matrix products: per pixel their cost grows with
# the side, the filters' does not; on a CPU core the two met near 256 (docs/performance.md, [ada]).
MATRIX_MAX_SIZE = 128

# Low-pass filters of the orthogonal wavelets the official pipe uses (training/augment.py `wavelets`).
SYM2 = [-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025]
SYM6 = [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148]

# NVIDIA's train.py --augpipe presets (augpipe_specs).
_BLIT = dict(xflip=1, rotate90=1, xint=1)
_GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
PRESETS: dict[str, dict[str, float]] = {
    "blit": _BLIT, "geom": _GEOM, "color": _COLOR,
    "filter": dict(imgfilter=1), "noise": dict(noise=1), "cutout": dict(cutout=1),
    "bg": {**_BLIT, **_GEOM},
    "bgc": {**_BLIT, **_GEOM, **_COLOR},
    "bgcf": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1},
    "bgcfn": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1, "noise": 1},
    "bgcfnc": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1, "noise": 1, "cutout": 1},
}


def preset(name: str) -> dict[str, float]:
    """The probability multipliers of NVIDIA's ``--augpipe=name``; an unknown name is refused."""
    if name not in PRESETS:
        raise ValueError(f"unknown augmentation pipeline {name!r}; expected one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])


# -- homogeneous matrices, batched: each entry a scalar or an array [N] -----------------------------

def matrix(*rows: Sequence[Any]) -> jax.Array:
    """``[N, R, K]`` (or ``[R, K]`` when every entry is a number) from rows of scalars / ``[N]`` arrays."""
    entries = [jnp.asarray(x, jnp.float32) for row in rows for x in row]
    shape = jnp.broadcast_shapes(*(e.shape for e in entries))
    stacked = jnp.stack([jnp.broadcast_to(e, shape) for e in entries], axis=-1)
    return stacked.reshape(*shape, len(rows), len(rows[0]))


def translate2d(tx, ty) -> jax.Array:
    return matrix([1, 0, tx], [0, 1, ty], [0, 0, 1])


def scale2d(sx, sy) -> jax.Array:
    return matrix([sx, 0, 0], [0, sy, 0], [0, 0, 1])


def rotate2d(theta) -> jax.Array:
    return matrix([jnp.cos(theta), jnp.sin(-theta), 0], [jnp.sin(theta), jnp.cos(theta), 0], [0, 0, 1])


def translate3d(tx, ty, tz) -> jax.Array:
    return matrix([1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1])


def scale3d(sx, sy, sz) -> jax.Array:
    return matrix([sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1])


def rotate3d(v: np.ndarray, theta) -> jax.Array:
    """Rotation by ``theta`` about the unit axis ``v`` (Rodrigues), homogeneous 4x4."""
    vx, vy, vz = (float(a) for a in v[:3])
    s, c = jnp.sin(theta), jnp.cos(theta)
    cc = 1 - c
    return matrix([vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
                  [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
                  [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
                  [0, 0, 0, 1])


def _mm(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.matmul(a, b, precision=_HIGHEST)


def imgfilter_bank(lowpass: Sequence[float] = SYM2, num_bands: int = 4) -> np.ndarray:
    """float32 ``[num_bands, taps]``: band-pass filters splitting the spectrum in octaves from the
    orthogonal wavelet ``lowpass`` (the official ``Hz_fbank``; 4 bands of sym2 -> 43 taps)."""
    hz_lo = np.asarray(lowpass, np.float64)  # H(z)
    hz_hi = hz_lo * ((-1) ** np.arange(hz_lo.size))  # H(-z)
    hz_lo2 = np.convolve(hz_lo, hz_lo[::-1]) / 2  # H(z) H(z^-1) / 2
    hz_hi2 = np.convolve(hz_hi, hz_hi[::-1]) / 2  # H(-z) H(-z^-1) / 2
    bank = np.eye(num_bands, 1)
    for i in range(1, num_bands):
        upsampled = np.zeros((num_bands, bank.shape[1] * 2 - 1))
        upsampled[:, ::2] = bank  # insert a zero between taps: H(z^2)
        bank = np.stack([np.convolve(row, hz_lo2) for row in upsampled])
        start = (bank.shape[1] - hz_hi2.size) // 2
        bank[i, start:start + hz_hi2.size] += hz_hi2
    return bank.astype(np.float32)


# -- the draws: the official forward's torch.rand / torch.randn calls, in order ---------------------

@dataclasses.dataclass(frozen=True)
class Draw:
    """One random draw of the official ``forward``: ``name``, ``kind`` ('uniform' | 'normal'),
    ``shape`` here, and ``torch_shape``, the shape of the official call (NCHW for pixel noise)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    torch_shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class AugmentPipe:
    """NVIDIA's augmentation pipeline; every multiplier 0 (off) by default, as upstream.

    Arguments, names and defaults are the official constructor's (probability multipliers, then
    magnitudes). ``__call__(images [N, H, W, C] float, p scalar, key) -> [N, H, W, C]``.
    """

    xflip: float = 0  # probability multiplier for x-flip
    rotate90: float = 0  # ... for 90-degree rotations
    xint: float = 0  # ... for integer translation
    xint_max: float = 0.125  # range of integer translation, relative to the image size
    scale: float = 0  # ... for isotropic scaling
    rotate: float = 0  # ... for arbitrary rotation
    aniso: float = 0  # ... for anisotropic scaling
    xfrac: float = 0  # ... for fractional translation
    scale_std: float = 0.2  # log2 standard deviation of isotropic scaling
    rotate_max: float = 1  # range of arbitrary rotation, 1 = full circle
    aniso_std: float = 0.2  # log2 standard deviation of anisotropic scaling
    xfrac_std: float = 0.125  # standard deviation of fractional translation, relative to the size
    brightness: float = 0
    contrast: float = 0
    lumaflip: float = 0
    hue: float = 0
    saturation: float = 0
    brightness_std: float = 0.2
    contrast_std: float = 0.5  # log2
    hue_max: float = 1  # range of hue rotation, 1 = full circle
    saturation_std: float = 1  # log2
    imgfilter: float = 0
    imgfilter_bands: tuple[float, ...] = (1, 1, 1, 1)  # probability multipliers of the 4 frequency bands
    imgfilter_std: float = 1  # log2 standard deviation of a band's amplification
    noise: float = 0  # additive RGB noise
    cutout: float = 0
    noise_std: float = 0.1
    cutout_size: float = 0.5  # size of the cutout rectangle, relative to the image size

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "imgfilter_bands":
                value = tuple(float(v) for v in value)
                if len(value) != 4:
                    raise ValueError(f"imgfilter_bands must have 4 entries (one per band), got {len(value)}")
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                    raise TypeError(f"AugmentPipe({field.name}=...) must be a number, got {value!r}")
                value = float(value)
                if value < 0:
                    raise ValueError(f"AugmentPipe({field.name}={value}) must be >= 0")
            object.__setattr__(self, field.name, value)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> AugmentPipe:
        """As the constructor, but an unknown keyword is named with the valid ones."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise TypeError(f"unknown AugmentPipe argument(s) {', '.join(unknown)}; valid: {', '.join(names)}")
        return cls(**kwargs)

    # -- draws ------------------------------------------------------------------------------------

    def draw_specs(self, shape: Sequence[int]) -> list[Draw]:
        """The random draws of one call on images of ``shape`` = [N, H, W, C], in the official order."""
        n, h, w, c = (int(s) for s in shape)
        specs: list[Draw] = []

        def add(name, kind, torch_shape, here=None):
            specs.append(Draw(name, kind, tuple(here or (torch_shape if len(torch_shape) > 1 and torch_shape[1] > 1
                                                         else (n,))), tuple(torch_shape)))

        for name, values in (("xflip", "uniform"), ("rotate90", "uniform")):
            if getattr(self, name) > 0:
                add(name, values, (n,))
                add(name + "_prob", "uniform", (n,))
        if self.xint > 0:
            add("xint", "uniform", (n, 2))
            add("xint_prob", "uniform", (n, 1))
        if self.scale > 0:
            add("scale", "normal", (n,))
            add("scale_prob", "uniform", (n,))
        if self.rotate > 0:
            add("rotate_pre", "uniform", (n,))
            add("rotate_pre_prob", "uniform", (n,))
        if self.aniso > 0:
            add("aniso", "normal", (n,))
            add("aniso_prob", "uniform", (n,))
        if self.rotate > 0:
            add("rotate_post", "uniform", (n,))
            add("rotate_post_prob", "uniform", (n,))
        if self.xfrac > 0:
            add("xfrac", "normal", (n, 2))
            add("xfrac_prob", "uniform", (n, 1))
        if self.brightness > 0:
            add("brightness", "normal", (n,))
            add("brightness_prob", "uniform", (n,))
        if self.contrast > 0:
            add("contrast", "normal", (n,))
            add("contrast_prob", "uniform", (n,))
        if self.lumaflip > 0:
            add("lumaflip", "uniform", (n, 1, 1))
            add("lumaflip_prob", "uniform", (n, 1, 1))
        if self.hue > 0 and c > 1:
            add("hue", "uniform", (n,))
            add("hue_prob", "uniform", (n,))
        if self.saturation > 0 and c > 1:
            add("saturation", "normal", (n, 1, 1))
            add("saturation_prob", "uniform", (n, 1, 1))
        if self.imgfilter > 0:
            for i in range(len(self.imgfilter_bands)):
                add(f"imgfilter{i}", "normal", (n,))
                add(f"imgfilter{i}_prob", "uniform", (n,))
        if self.noise > 0:
            add("noise_sigma", "normal", (n, 1, 1, 1))
            add("noise_prob", "uniform", (n, 1, 1, 1))
            add("noise_pixels", "normal", (n, c, h, w), here=(n, h, w, c))
        if self.cutout > 0:
            add("cutout_prob", "uniform", (n, 1, 1, 1, 1))
            add("cutout_center", "uniform", (n, 2, 1, 1, 1), here=(n, 2))
        return specs

    def draw(self, key: jax.Array, shape: Sequence[int]) -> dict[str, jax.Array]:
        """Fresh draws for images of ``shape`` [N, H, W, C] (float32; uniform in [0, 1), standard normal)."""
        specs = self.draw_specs(shape)
        keys = jax.random.split(key, max(len(specs), 1))
        return {s.name: (jax.random.uniform(k, s.shape, jnp.float32) if s.kind == "uniform"
                         else jax.random.normal(k, s.shape, jnp.float32)) for s, k in zip(specs, keys)}

    def draws_from_torch_sequence(self, arrays: Sequence[np.ndarray], shape: Sequence[int]) -> dict[str, np.ndarray]:
        """The official forward's recorded ``torch.rand``/``torch.randn`` outputs, in call order, as draws."""
        specs = self.draw_specs(shape)
        if len(arrays) != len(specs):
            raise ValueError(f"expected {len(specs)} recorded draws ({', '.join(s.name for s in specs)}), got {len(arrays)}")
        out = {}
        for s, a in zip(specs, arrays):
            a = np.asarray(a, np.float32)
            if tuple(a.shape) != s.torch_shape:
                raise ValueError(f"draw {s.name}: expected the official shape {s.torch_shape}, got {a.shape}")
            out[s.name] = a.transpose(0, 2, 3, 1) if s.name == "noise_pixels" else a.reshape(s.shape)
        return out

    # -- the pipeline -----------------------------------------------------------------------------

    def __call__(self, images: jax.Array, p: jax.Array | float, key: jax.Array | None = None, *,
                 draws: Mapping[str, jax.Array] | None = None, groups: int = 1, resample: str = "auto") -> jax.Array:
        """Augment float ``images`` [N, H, W, C] (C = 1 or 3) with strength ``p``.

        ``key`` draws the randomness, or ``draws`` gives it (``draw`` / ``draws_from_torch_sequence``).
        ``groups``: the batch is that many consecutive groups of rows, each padded by its own margin
        as each GPU of the official trainer pads its own batch (``N / groups`` rows per device).
        ``resample``: how the geometric path pads and resamples, with equal numbers: ``'matrix'``
        (matrix products), ``'filter'`` (the official ops), ``'auto'`` (matrices up to
        ``MATRIX_MAX_SIZE`` pixels a side, where they are the faster, docs/performance.md).
        """
        if resample not in ("auto", "matrix", "filter"):
            raise ValueError(f"AugmentPipe: resample must be 'auto', 'matrix' or 'filter', got {resample!r}")
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"AugmentPipe expects images [N, H, W, C] with C = 1 or 3, got shape {images.shape}")
        n, h, w, c = images.shape
        if n % groups:
            raise ValueError(f"groups={groups} must divide the batch of {n}")
        if draws is None:
            if key is None:
                raise ValueError("AugmentPipe needs a PRNG key or explicit draws")
            draws = self.draw(key, images.shape)
        d = {k: jnp.asarray(v, jnp.float32) for k, v in draws.items()}
        p = jnp.asarray(p, jnp.float32)
        images = images.astype(jnp.float32)
        images = self._geometric(images, p, d, groups, resample)
        images = self._color(images, p, d)
        if self.imgfilter > 0:
            images = self._filter(images, p, d)
        if self.noise > 0:
            sigma = jnp.abs(d["noise_sigma"]) * np.float32(self.noise_std)
            sigma = jnp.where(d["noise_prob"] < np.float32(self.noise) * p, sigma, 0.0)
            images = images + d["noise_pixels"] * sigma[:, None, None, None]
        if self.cutout > 0:
            images = self._cutout(images, p, d)
        return images

    def _chance(self, d, name: str, mult: float, p: jax.Array) -> jax.Array:
        return d[name + "_prob"] < np.float32(mult) * p

    def _geometric_matrix(self, p: jax.Array, d, n: int, h: int, w: int) -> jax.Array | None:
        """G_inv [N, 3, 3]: output pixel (centred) -> input pixel; None when no geometric op is on."""
        mats = []
        if self.xflip > 0:
            i = jnp.where(self._chance(d, "xflip", self.xflip, p), jnp.floor(d["xflip"] * 2), 0.0)
            mats.append(scale2d(1 / (1 - 2 * i), 1.0))
        if self.rotate90 > 0:
            i = jnp.where(self._chance(d, "rotate90", self.rotate90, p), jnp.floor(d["rotate90"] * 4), 0.0)
            mats.append(rotate2d(-(-np.float32(np.pi / 2) * i)))
        if self.xint > 0:
            t = (d["xint"] * 2 - 1) * np.float32(self.xint_max)
            t = jnp.where(d["xint_prob"][:, None] < np.float32(self.xint) * p, t, 0.0)
            mats.append(translate2d(-jnp.round(t[:, 0] * w), -jnp.round(t[:, 1] * h)))
        if self.scale > 0:
            s = jnp.where(self._chance(d, "scale", self.scale, p), jnp.exp2(d["scale"] * np.float32(self.scale_std)), 1.0)
            mats.append(scale2d(1 / s, 1 / s))
        p_rot = 1 - jnp.sqrt(jnp.clip(1 - np.float32(self.rotate) * p, 0, 1))  # P(pre or post) = rotate * p
        if self.rotate > 0:
            theta = (d["rotate_pre"] * 2 - 1) * np.float32(np.pi) * np.float32(self.rotate_max)
            theta = jnp.where(d["rotate_pre_prob"] < p_rot, theta, 0.0)
            mats.append(rotate2d(theta))  # rotate2d_inv(-theta)
        if self.aniso > 0:
            s = jnp.where(self._chance(d, "aniso", self.aniso, p), jnp.exp2(d["aniso"] * np.float32(self.aniso_std)), 1.0)
            mats.append(scale2d(1 / s, 1 / (1 / s)))  # scale2d_inv(s, 1 / s)
        if self.rotate > 0:
            theta = (d["rotate_post"] * 2 - 1) * np.float32(np.pi) * np.float32(self.rotate_max)
            theta = jnp.where(d["rotate_post_prob"] < p_rot, theta, 0.0)
            mats.append(rotate2d(theta))
        if self.xfrac > 0:
            t = d["xfrac"] * np.float32(self.xfrac_std)
            t = jnp.where(d["xfrac_prob"][:, None] < np.float32(self.xfrac) * p, t, 0.0)
            mats.append(translate2d(-t[:, 0] * w, -t[:, 1] * h))
        if not mats:
            return None
        g_inv = jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (n, 3, 3))
        for m in mats:
            g_inv = _mm(g_inv, m)
        return g_inv

    def _geometric(self, images: jax.Array, p: jax.Array, d, groups: int, resample: str) -> jax.Array:
        n, h, w, c = images.shape
        g_inv = self._geometric_matrix(p, d, n, h, w)
        if g_inv is None:
            return images
        hz = setup_filter(SYM6)
        hz_pad = hz.shape[0] // 4

        # The official margin: the transformed corners plus the filter's reach, per device batch.
        cx, cy = (w - 1) / 2, (h - 1) / 2
        corners = jnp.asarray([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], jnp.float32)
        cp = _mm(g_inv, corners.T)[:, :2, :]  # [N, xy, 4]
        cp = cp.reshape(groups, n // groups, 2, 4).transpose(0, 2, 1, 3).reshape(groups, 2, -1)
        margin = jnp.concatenate([-cp, cp], axis=1).max(axis=2)  # [groups, (x0, y0, x1, y1)]
        margin = margin + jnp.asarray([hz_pad * 2 - cx, hz_pad * 2 - cy] * 2, jnp.float32)
        margin = jnp.clip(margin, 0, jnp.asarray([w - 1, h - 1] * 2, jnp.float32))
        margin = jnp.repeat(jnp.ceil(margin).astype(jnp.int32), n // groups, axis=0)  # [N, 4]
        mx0, my0, mx1, my1 = (margin[:, i] for i in range(4))

        # Reflect-pad by the largest margin S - 1, zero what lies outside this image's official
        # padding, upsample 2x, zero again outside it: [N, 2 (3 H - 2), 2 (3 W - 2), C].
        px, py = w - 1, h - 1
        matrices = resample == "matrix" or (resample == "auto" and max(h, w) <= MATRIX_MAX_SIZE)
        if matrices:  # one matrix per axis and image
            a_x = _pad_upsample_matrices(w, hz, mx0, mx1)
            a_y = _pad_upsample_matrices(h, hz, my0, my1)
            x = jnp.einsum("nyi,nijc->nyjc", a_y, images, precision=_HIGHEST)
            x = jnp.einsum("nxj,nyjc->nyxc", a_x, x, precision=_HIGHEST)
        else:  # the official ops on the largest padding, masked
            def mask(x, scale):
                inside_x = _window(x.shape[2], px - mx0, px + w + mx1, scale)
                inside_y = _window(x.shape[1], py - my0, py + h + my1, scale)
                return x * (inside_y[:, :, None, None] & inside_x[:, None, :, None]).astype(x.dtype)

            x = jnp.pad(images, ((0, 0), (py, py), (px, px), (0, 0)), mode="reflect")
            x = mask(upsample2d(mask(x, 1), hz, up=2), 2)

        # The official chain of matrices, in the official padded frame (origin at its centre).
        fmx0, fmx1, fmy0, fmy1 = (v.astype(jnp.float32) for v in (mx0, mx1, my0, my1))
        g = _mm(translate2d((fmx0 - fmx1) / 2, (fmy0 - fmy1) / 2), g_inv)
        g = _mm(_mm(scale2d(2.0, 2.0), g), scale2d(0.5, 0.5))
        g = _mm(_mm(translate2d(-0.5, -0.5), g), translate2d(0.5, 0.5))
        in_w, in_h = 2 * (w + fmx0 + fmx1), 2 * (h + fmy0 + fmy1)  # the official upsampled size
        out_h, out_w = (h + hz_pad * 2) * 2, (w + hz_pad * 2) * 2
        g = _mm(_mm(scale2d(2 / in_w, 2 / in_h), g), scale2d(out_w / 2, out_h / 2))

        # affine_grid + grid_sample (bilinear, zeros outside, align_corners=False).
        bx = (2 * jnp.arange(out_w, dtype=jnp.float32) + 1) / out_w - 1
        by = (2 * jnp.arange(out_h, dtype=jnp.float32) + 1) / out_h - 1
        gx = g[:, 0, 0, None, None] * bx[None, None, :] + g[:, 0, 1, None, None] * by[None, :, None] + g[:, 0, 2, None, None]
        gy = g[:, 1, 0, None, None] * bx[None, None, :] + g[:, 1, 1, None, None] * by[None, :, None] + g[:, 1, 2, None, None]
        ix = ((gx + 1) * in_w[:, None, None] - 1) / 2 + (2 * (px - mx0)).astype(jnp.float32)[:, None, None]
        iy = ((gy + 1) * in_h[:, None, None] - 1) / 2 + (2 * (py - my0)).astype(jnp.float32)[:, None, None]
        x = bilinear_sample(x, ix, iy)

        if not matrices:
            return downsample2d(x, hz, down=2, padding=-hz_pad * 2, flip_filter=True)
        # The same downsample2d as one constant matrix per axis.
        pad = -hz_pad * 2 + (hz.shape[0] - 1) // 2, -hz_pad * 2 + (hz.shape[0] - 2) // 2
        d_x = jnp.asarray(upfirdn1d_matrix(out_w, hz, down=2, padding=pad, flip_filter=True))
        d_y = jnp.asarray(upfirdn1d_matrix(out_h, hz, down=2, padding=pad, flip_filter=True))
        x = jnp.einsum("yi,nijc->nyjc", d_y, x, precision=_HIGHEST)
        return jnp.einsum("xj,nyjc->nyxc", d_x, x, precision=_HIGHEST)

    def _color(self, images: jax.Array, p: jax.Array, d) -> jax.Array:
        n, h, w, c = images.shape
        mats = []
        if self.brightness > 0:
            b = jnp.where(self._chance(d, "brightness", self.brightness, p), d["brightness"] * np.float32(self.brightness_std), 0.0)
            mats.append(translate3d(b, b, b))
        if self.contrast > 0:
            s = jnp.where(self._chance(d, "contrast", self.contrast, p), jnp.exp2(d["contrast"] * np.float32(self.contrast_std)), 1.0)
            mats.append(scale3d(s, s, s))
        v = (np.asarray([1, 1, 1, 0]) / np.sqrt(3)).astype(np.float32)  # the luma axis
        vv = jnp.asarray(np.outer(v, v))
        eye = jnp.eye(4, dtype=jnp.float32)
        if self.lumaflip > 0:
            i = jnp.where(self._chance(d, "lumaflip", self.lumaflip, p), jnp.floor(d["lumaflip"] * 2), 0.0)
            mats.append(eye - 2 * vv * i[:, None, None])  # Householder reflection
        if self.hue > 0 and c > 1:
            theta = (d["hue"] * 2 - 1) * np.float32(np.pi) * np.float32(self.hue_max)
            mats.append(rotate3d(v, jnp.where(self._chance(d, "hue", self.hue, p), theta, 0.0)))
        if self.saturation > 0 and c > 1:
            s = jnp.where(self._chance(d, "saturation", self.saturation, p),
                          jnp.exp2(d["saturation"] * np.float32(self.saturation_std)), 1.0)
            mats.append(vv + (eye - vv) * s[:, None, None])
        if not mats:
            return images
        C = jnp.broadcast_to(eye, (n, 4, 4))
        for m in mats:
            C = _mm(m, C)
        if c == 3:
            return jnp.einsum("nij,nhwj->nhwi", C[:, :3, :3], images, precision=_HIGHEST) + C[:, None, None, :3, 3]
        C = jnp.mean(C[:, :3, :], axis=1)  # [N, 4]: grey images take the mean row
        return images * jnp.sum(C[:, :3], axis=1)[:, None, None, None] + C[:, None, None, 3:]

    def _filter(self, images: jax.Array, p: jax.Array, d) -> jax.Array:
        n, h, w, c = images.shape
        bank = imgfilter_bank()
        num_bands = bank.shape[0]
        expected_power = jnp.asarray(np.array([10, 1, 1, 1]) / 13, jnp.float32)  # 1/f power spectrum
        gain = jnp.ones((n, num_bands), jnp.float32)
        for i, band_strength in enumerate(self.imgfilter_bands):
            t_i = jnp.exp2(d[f"imgfilter{i}"] * np.float32(self.imgfilter_std))
            t_i = jnp.where(d[f"imgfilter{i}_prob"] < np.float32(self.imgfilter) * p * np.float32(band_strength), t_i, 1.0)
            t = jnp.ones((n, num_bands), jnp.float32).at[:, i].set(t_i)
            t = t / jnp.sqrt(jnp.sum(expected_power * jnp.square(t), axis=-1, keepdims=True))  # keep the power
            gain = gain * t
        f = _mm(gain, jnp.asarray(bank))  # [N, taps]
        r = bank.shape[1] // 2
        x = jnp.pad(images, ((0, 0), (r, r), (r, r), (0, 0)), mode="reflect")
        x = sum(f[:, k, None, None, None] * x[:, :, k:k + w, :] for k in range(bank.shape[1]))
        return sum(f[:, k, None, None, None] * x[:, k:k + h, :, :] for k in range(bank.shape[1]))

    def _cutout(self, images: jax.Array, p: jax.Array, d) -> jax.Array:
        n, h, w, c = images.shape
        size = jnp.where(d["cutout_prob"] < np.float32(self.cutout) * p, np.float32(self.cutout_size), 0.0)
        center = d["cutout_center"]
        x = (jnp.arange(w, dtype=jnp.float32) + 0.5) / w
        y = (jnp.arange(h, dtype=jnp.float32) + 0.5) / h
        outside_x = jnp.abs(x[None, :] - center[:, 0:1]) >= size[:, None] / 2  # [N, W]
        outside_y = jnp.abs(y[None, :] - center[:, 1:2]) >= size[:, None] / 2  # [N, H]
        keep = outside_x[:, None, :] | outside_y[:, :, None]
        return images * keep[..., None].astype(images.dtype)


def _pad_upsample_matrices(size: int, hz: np.ndarray, m0: jax.Array, m1: jax.Array) -> jax.Array:
    """[N, 2 P, size] with P = 3 size - 2: per image, reflect-pad by ``size - 1``, keep ``[m0, m1]`` of
    it (the official margins [N]), upsample 2x with ``hz`` (``upsample2d``), keep the same window x 2."""
    pad = size - 1
    padded = pad * 2 + size
    reflect = np.pad(np.eye(size, dtype=np.float32), ((pad, pad), (0, 0)), mode="reflect")  # [P, size]
    taps = hz.shape[0]
    up = upfirdn1d_matrix(padded, hz, up=2, padding=((taps + 1) // 2, (taps - 2) // 2), gain=2.0)  # [2P, P]

    keep_in = _window(padded, pad - m0, pad + size + m1, 1).astype(jnp.float32)  # [N, P]
    keep_out = _window(2 * padded, pad - m0, pad + size + m1, 2).astype(jnp.float32)  # [N, 2P]
    inner = keep_in[:, :, None] * jnp.asarray(reflect)[None]  # [N, P, size]
    return keep_out[:, :, None] * jnp.einsum("ij,njk->nik", jnp.asarray(up), inner, precision=_HIGHEST)


def _window(length: int, lo: jax.Array, hi: jax.Array, scale: int) -> jax.Array:
    """bool [N, length]: the positions inside ``[lo, hi) * scale`` ([N] each)."""
    pos = jnp.arange(length)[None, :]
    return (pos >= (lo * scale)[:, None]) & (pos < (hi * scale)[:, None])


def bilinear_sample(x: jax.Array, ix: jax.Array, iy: jax.Array) -> jax.Array:
    """``x`` [N, H, W, C] read at pixel positions ``(ix, iy)`` [N, Ho, Wo] (pixel centres at integers),
    bilinearly, zero outside: ``torch.nn.functional.grid_sample``'s arithmetic after unnormalising.
    The four neighbours are one gather (its gradient one scatter-add)."""
    n, h, w, c = x.shape
    x0, y0 = jnp.floor(ix), jnp.floor(iy)
    rows, weights = [], []
    for dy in (0, 1):
        for dx in (0, 1):
            xs, ys = x0 + dx, y0 + dy
            weight = (1 - jnp.abs(ix - xs)) * (1 - jnp.abs(iy - ys))
            inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
            rows.append((jnp.clip(ys, 0, h - 1) * w + jnp.clip(xs, 0, w - 1)).astype(jnp.int32))
            weights.append(jnp.where(inside, weight, 0.0))
    image = jnp.arange(n, dtype=jnp.int32)[:, None, None, None] * (h * w)
    values = x.reshape(n * h * w, c).at[jnp.stack(rows, -1) + image].get(mode="promise_in_bounds")  # [N, Ho, Wo, 4, C]
    return jnp.einsum("nhwkc,nhwk->nhwc", values, jnp.stack(weights, -1), precision=_HIGHEST)


# -- the training settings: NVIDIA's train.py --aug / --p / --target / --augpipe -----------------------

MODES = ("ada", "fixed", "noaug")
ADA_TARGET = 0.6  # train.py: --aug=ada default target
ADA_KIMG = 500.0  # training_loop default: p moves by 1 in 500 kimg
ADA_KIMG_RESUMING = 100.0  # train.py: "make ADA react faster at the beginning" when --resume is given


@dataclasses.dataclass(frozen=True)
class Settings:
    """How a run augments what D sees: ``pipe`` (None: ``noaug``), the initial ``p``, and for ``ada``
    the ``target`` of ``r_t = E[sign(D(real))]``, the adjustment ``interval`` (steps) and ``ada_kimg``."""

    mode: str
    pipe: AugmentPipe | None
    p: float
    target: float | None
    interval: int
    ada_kimg: float

    @property
    def adaptive(self) -> bool:
        return self.mode == "ada"

    def adjustment(self, batch_size: int) -> float:
        """How far ``p`` moves at each adjustment: ``batch * interval / (ada_kimg * 1000)``."""
        return batch_size * self.interval / (self.ada_kimg * 1000)


def settings_from_config(section: Any, resuming: bool = False) -> Settings:
    """The ``augment`` config section as a :class:`Settings`, refusing what NVIDIA's ``train.py`` refuses.

    Fields: ``mode`` ('ada' | 'fixed' | 'noaug'), ``p`` (fixed only, required there, in [0, 1]),
    ``target`` (ada only, in [0, 1]; default 0.6), ``pipe`` (a preset of :data:`PRESETS`; default 'bgc';
    not with noaug), ``kwargs`` (further ``AugmentPipe`` keywords, e.g. magnitudes), ``ada_interval``
    (4), ``ada_kimg`` (500, or 100 when ``resuming`` a network, as ``--resume`` sets it).
    A missing section (a run made before augmentation existed) is ``noaug``.
    """
    get = (lambda k, default=None: section.get(k, default)) if section is not None else (lambda k, default=None: default)
    mode = get("mode", "noaug")
    if mode not in MODES:
        raise ValueError(f"augment.mode={mode!r} is not supported; expected one of {', '.join(MODES)} (NVIDIA's --aug)")
    p, target, pipe_name = get("p"), get("target"), get("pipe")
    kwargs = dict(get("kwargs") or {})
    interval, ada_kimg = int(get("ada_interval", 4) or 4), get("ada_kimg")
    if p is not None:
        if mode != "fixed":
            raise ValueError(f"augment.p can only be given with augment.mode='fixed' (got mode {mode!r}); "
                             "'ada' starts at p = 0 and adapts it")
        if not 0 <= float(p) <= 1:
            raise ValueError(f"augment.p={p} must be between 0 and 1")
    elif mode == "fixed":
        raise ValueError("augment.mode='fixed' requires augment.p (a probability in [0, 1])")
    if target is not None:
        if mode != "ada":
            raise ValueError(f"augment.target can only be given with augment.mode='ada' (got mode {mode!r})")
        if not 0 <= float(target) <= 1:
            raise ValueError(f"augment.target={target} must be between 0 and 1")
    if mode == "noaug":
        if pipe_name is not None or kwargs:
            raise ValueError("augment.pipe and augment.kwargs cannot be given with augment.mode='noaug'")
        return Settings("noaug", None, 0.0, None, 4, ADA_KIMG)
    pipe = AugmentPipe.from_kwargs(**{**preset(pipe_name or "bgc"), **kwargs})
    if interval < 1:
        raise ValueError(f"augment.ada_interval={interval} must be a positive number of steps")
    ada_kimg = float(ada_kimg) if ada_kimg is not None else (ADA_KIMG_RESUMING if resuming else ADA_KIMG)
    if ada_kimg <= 0:
        raise ValueError(f"augment.ada_kimg={ada_kimg} must be > 0")
    return Settings(mode, pipe, float(p or 0.0), float(ADA_TARGET if target is None else target) if mode == "ada" else None,
                    interval, ada_kimg)
