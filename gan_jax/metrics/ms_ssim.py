"""Multi-scale structural similarity (MS-SSIM) of image pairs, as ProGAN computes it.

Follows ``metrics/ms_ssim.py`` of https://github.com/tkarras/progressive_growing_of_gans at commit
``2504c3f3cb98ca58751610ad61fa1097313152bd`` (``msssim``, itself TensorFlow's
``research/compression/image_encoder/msssim.py``; Wang et al. 2003), with its defaults: 5 scales,
an 11x11 Gaussian window of sigma 1.5 (``_FSpecialGauss``; at scales smaller than 11 pixels the
window shrinks to the image and sigma with it), ``max_val=255``, ``k1=0.01``, ``k2=0.03``, 'valid'
filtering, 2x2 box downsampling (``_HoxDownsample``), negative SSIM/CS values clipped to 0, and the
weights ``[0.0448, 0.2856, 0.3001, 0.2363, 0.1333]``::

    MS-SSIM = prod_{s<5} cs_s ** w_s  *  ssim_5 ** w_5

where ``cs_s`` and ``ssim_s`` are per-image means of the contrast-structure and SSIM maps at scale s.

Per pair, not per batch: the official ``msssim(img1, img2)`` returns ``np.mean`` over the batch of
the per-image products ("Average over images only at the end"); :func:`ms_ssim` returns the values
before that mean, i.e. ``msssim(img1[i:i+1], img2[i:i+1])`` for every i, and ``ms_ssim(a, b).mean()``
equals ``msssim(a, b)``. (ProGAN's ``API`` feeds ``images[0::2]`` against ``images[1::2]`` of each
minibatch and averages over pairs.)

Numerics: the official code runs scipy's ``fftconvolve`` in float64. Here the filtering runs in
jitted float32 JAX (separable 1-D passes, elementwise, so no matmul/convolution precision setting is
involved); to keep ``E[x^2] - E[x]^2`` from cancelling in float32, each pair and channel is first
centred on the pair's mean (SSIM is unchanged by that shift: only the luminance term uses the
means, and it gets them back uncentred). The per-scale means are combined in float64 on the host.
Agreement with the official float64 values is ~1e-6 (tests/test_progan_metrics.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

UPSTREAM = "tkarras/progressive_growing_of_gans@2504c3f3cb98ca58751610ad61fa1097313152bd"

# msssim: weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333] ("default weights don't sum to 1.0 but
# do match the paper / matlab code"); levels = weights.size.
WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MAX_VAL = 255.0  # msssim(..., max_val=255, ...)
FILTER_SIZE = 11  # filter_size=11
FILTER_SIGMA = 1.5  # filter_sigma=1.5
K1, K2 = 0.01, 0.03  # k1=0.01, k2=0.03
# Four 2x2 downsamplings between the five scales: each side a multiple of 2**4.
MIN_MULTIPLE = 2 ** (len(WEIGHTS) - 1)
# Pixels (N * H * W * C) per jitted call; the last chunk is padded with zero pairs (whose SSIM is 1).
_CHUNK_PIXELS = 1 << 22


def _gauss_1d(size: int, sigma: float) -> np.ndarray:
    """1-D factor of ``_FSpecialGauss(size, sigma)`` (the 2-D window is its outer product), float64."""
    radius = size // 2
    offset = 0.0
    start, stop = -radius, radius + 1
    if size % 2 == 0:  # _FSpecialGauss: even sizes sample at half-integer offsets
        offset = 0.5
        stop -= 1
    t = np.arange(offset + start, stop, 1.0)  # np.mgrid[offset + start:stop, ...]
    assert len(t) == size
    g = np.exp(-(t ** 2) / (2.0 * sigma ** 2))  # exp(-((x**2 + y**2) / (2 sigma**2))) = g(x) g(y)
    return g / g.sum()  # g / g.sum() of the 2-D window = outer of the normalised 1-D factors


def _filter_valid(x: jax.Array, taps: np.ndarray) -> jax.Array:
    """'valid' separable filtering of [N, H, W, C, Q] over H and W with symmetric ``taps`` (float32).

    Returns the Q maps, each [N, H - k + 1, W - k + 1, C] (k = len(taps)).
    """
    k = len(taps)
    h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
    t = [np.float32(v) for v in taps]
    rows = sum(t[i] * x[:, i:i + h] for i in range(k))
    out = sum(t[i] * rows[:, :, i:i + w] for i in range(k))
    return [out[..., q] for q in range(x.shape[-1])]


def _ssim_cs(img1: jax.Array, img2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """_SSIMForMultiScale: float32 [N, H, W, C] pairs -> per-image (mean SSIM, mean CS), each [N]."""
    _, height, width, _ = img1.shape
    size = min(FILTER_SIZE, height, width)  # "Filter size can't be larger than height or width"
    sigma = size * FILTER_SIGMA / FILTER_SIZE  # "Scale down sigma if a smaller filter size is used"
    taps = _gauss_1d(size, sigma)
    # Centre each pair and channel on one constant (any constant leaves sigma_ij unchanged).
    centre = 0.5 * (jnp.mean(img1, axis=(1, 2), keepdims=True) + jnp.mean(img2, axis=(1, 2), keepdims=True))
    x1, x2 = img1 - centre, img2 - centre
    # The five filtered maps (mu1, mu2, sigma11, sigma22, sigma12 before "-= mu..") in one pass.
    mu1c, mu2c, e11, e22, e12 = _filter_valid(jnp.stack([x1, x2, x1 * x1, x2 * x2, x1 * x2], axis=-1), taps)
    sigma11 = e11 - mu1c * mu1c  # sigma11 -= mu11
    sigma22 = e22 - mu2c * mu2c  # sigma22 -= mu22
    sigma12 = e12 - mu1c * mu2c  # sigma12 -= mu12
    mu1, mu2 = mu1c + centre, mu2c + centre
    c1 = (K1 * MAX_VAL) ** 2
    c2 = (K2 * MAX_VAL) ** 2
    v1 = 2.0 * sigma12 + c2
    v2 = sigma11 + sigma22 + c2
    ssim = jnp.mean(((2.0 * mu1 * mu2 + c1) * v1) / ((mu1 * mu1 + mu2 * mu2 + c1) * v2), axis=(1, 2, 3))
    cs = jnp.mean(v1 / v2, axis=(1, 2, 3))
    return ssim, cs


def _downsample(img: jax.Array) -> jax.Array:
    """_HoxDownsample: 2x2 box mean, [N, H, W, C] -> [N, H/2, W/2, C]."""
    return (img[:, 0::2, 0::2, :] + img[:, 1::2, 0::2, :] + img[:, 0::2, 1::2, :] + img[:, 1::2, 1::2, :]) * 0.25


@jax.jit
def _scales(img1: jax.Array, img2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """uint8 [N, H, W, C] pairs -> (ssim, cs) per scale and image, each [5, N] float32."""
    im1, im2 = img1.astype(jnp.float32), img2.astype(jnp.float32)
    mssim, mcs = [], []
    for level in range(len(WEIGHTS)):
        ssim, cs = _ssim_cs(im1, im2)
        mssim.append(ssim)
        mcs.append(cs)
        if level + 1 < len(WEIGHTS):  # the official loop downsamples once more; the result is unused
            im1, im2 = _downsample(im1), _downsample(im2)
    return jnp.stack(mssim), jnp.stack(mcs)


def _check(img1: np.ndarray, img2: np.ndarray) -> None:
    for name, x in (("img1", img1), ("img2", img2)):
        if x.dtype != np.uint8:
            raise ValueError(f"MS-SSIM: {name} must be uint8 images [N, H, W, C] in [0, 255]; found dtype {x.dtype}")
        if x.ndim != 4:
            raise ValueError(f"MS-SSIM: {name} must be uint8 NHWC [N, H, W, C] (4 dimensions); found shape {x.shape}")
    if img1.shape != img2.shape:
        raise ValueError(f"MS-SSIM: img1 and img2 must have the same shape [N, H, W, C]; "
                         f"found {img1.shape} vs {img2.shape}")
    _, h, w, c = img1.shape
    if h < MIN_MULTIPLE or w < MIN_MULTIPLE or h % MIN_MULTIPLE or w % MIN_MULTIPLE or c < 1:
        raise ValueError(f"MS-SSIM: height and width must be multiples of {MIN_MULTIPLE} (>= {MIN_MULTIPLE}; "
                         f"{len(WEIGHTS)} scales with 2x2 downsampling between them) and C >= 1; "
                         f"found {h}x{w}x{c} (shape {img1.shape})")


def ms_ssim(img1: np.ndarray, img2: np.ndarray) -> np.ndarray:
    """ProGAN's MS-SSIM of each pair ``(img1[i], img2[i])``.

    Args:
      img1, img2: uint8 ``[N, H, W, C]`` arrays of the same shape; H and W multiples of 16 (>= 16),
        any C >= 1. Values in [0, 255] (``max_val=255``).

    Returns:
      float64 ``[N]``: one MS-SSIM per pair (1 for identical images); ``.mean()`` is the official
      ``msssim(img1, img2)``.

    Raises:
      ValueError: shapes differ, not uint8, not 4-D, or H/W not multiples of 16.
    """
    img1, img2 = np.asarray(img1), np.asarray(img2)
    _check(img1, img2)
    n, h, w, c = img1.shape
    if n == 0:
        return np.zeros((0,), np.float64)
    chunk = max(1, min(n, _CHUNK_PIXELS // (h * w * c)))
    ssim_parts, cs_parts = [], []
    for begin in range(0, n, chunk):
        a, b = img1[begin:begin + chunk], img2[begin:begin + chunk]
        pad = chunk - a.shape[0]
        if pad:  # one compiled shape for every chunk; zero pairs are dropped below
            zeros = np.zeros((pad, h, w, c), np.uint8)
            a, b = np.concatenate([a, zeros]), np.concatenate([b, zeros])
        s, cs = _scales(jnp.asarray(a), jnp.asarray(b))
        ssim_parts.append(np.asarray(s, np.float64)[:, : chunk - pad])
        cs_parts.append(np.asarray(cs, np.float64)[:, : chunk - pad])
    # "Clip to zero. Otherwise we get NaNs."
    mssim = np.clip(np.concatenate(ssim_parts, axis=1), 0.0, np.inf)
    mcs = np.clip(np.concatenate(cs_parts, axis=1), 0.0, np.inf)
    weights = np.asarray(WEIGHTS, np.float64)
    # np.prod(mcs[:-1, :] ** weights[:-1, np.newaxis], axis=0) * (mssim[-1, :] ** weights[-1]), without the mean
    return np.prod(mcs[:-1, :] ** weights[:-1, np.newaxis], axis=0) * (mssim[-1, :] ** weights[-1])
