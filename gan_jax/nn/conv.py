"""2-D convolution with optional FIR up/downsampling (NVIDIA's `conv2d_resample.py`), NHWC / HWIO.

Weights are ``[kh, kw, in_channels // groups, out_channels]``. ``flip_weight=True`` is
correlation (what ``torch.nn.functional.conv2d`` and ``lax.conv`` compute); ``False`` is true
convolution. Padding is ``[x0, x1, y0, y1]`` with respect to the upsampled image, applied once.
"""

from __future__ import annotations

import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np

from gan_jax.nn.upfirdn2d import Padding, filter_size, parse_padding, upfirdn2d

_NHWC = ("NHWC", "HWIO", "NHWC")


def conv2d(
    x: jax.Array,
    w: jax.Array,
    stride: int = 1,
    padding: tuple[int, int] = (0, 0),
    groups: int = 1,
    flip_weight: bool = True,
) -> jax.Array:
    """Plain strided conv of ``x`` [N, H, W, C] with ``w`` [kh, kw, C/groups, O]; ``padding=(py, px)``."""
    if not flip_weight:
        w = w[::-1, ::-1]
    py, px = padding
    w = w.astype(x.dtype)
    one_by_one = w.shape[:2] == (1, 1) and stride == 1 and tuple(padding) == (0, 0)
    if one_by_one and _gemm_convs(groups, _GEMM_MIN_MACS):
        # A 1x1 convolution is a matrix product; as one, its gradients are 2-4x faster on CPU
        # (toRGB, fromRGB and D's resnet skips: docs/performance.md). At any size (hence the
        # threshold itself as its size): the threshold keeps XLA's faster-compiling convolutions for
        # small layers, and a matrix product compiles as fast.
        n, h, wd, c = x.shape
        return jnp.dot(x.reshape(n * h * wd, c), w.reshape(c, -1)).reshape(n, h, wd, -1)
    if stride > 1 and _gemm_convs(groups, x.size * w.size // (w.shape[2] * stride * stride)):
        return _strided_conv_gemm(jnp.pad(x, ((0, 0), (py, py), (px, px), (0, 0))), w, stride)
    return lax.conv_general_dilated(x, w, (stride, stride), [(py, py), (px, px)], feature_group_count=groups,
                                    dimension_numbers=_NHWC)


def conv_transpose2d(
    x: jax.Array,
    w: jax.Array,
    stride: int,
    padding: tuple[int, int] = (0, 0),
    groups: int = 1,
    flip_weight: bool = True,
) -> jax.Array:
    """``torch.nn.functional.conv_transpose2d`` semantics with an HWIO weight.

    Tap ``(ky, kx)`` of input pixel ``(i, j)`` lands on ``(s*i + ky - py, s*j + kx - px)``
    (``flip_weight=False`` flips the kernel first, as upstream's wrapper does).
    """
    if not flip_weight:
        w = w[::-1, ::-1]
    kh, kw = w.shape[0], w.shape[1]
    py, px = padding
    if py > kh - 1 or px > kw - 1:
        raise ValueError(f"transposed-conv padding {padding} larger than kernel size - 1 ({kh - 1}, {kw - 1})")
    w = w.astype(x.dtype)
    if _gemm_convs(groups, x.size * w.size // w.shape[2]):
        return _conv_transpose_gemm(x, w, stride, (py, px))
    # A correlation of the zero-dilated input with the spatially flipped kernel.
    return lax.conv_general_dilated(x, w[::-1, ::-1], (1, 1), [(kh - 1 - py, kh - 1 - py), (kw - 1 - px, kw - 1 - px)],
                                    lhs_dilation=(stride, stride), feature_group_count=groups, dimension_numbers=_NHWC)


# -- XLA:CPU ----------------------------------------------------------------------------------------
# On the CPU backend XLA runs stride-1 convolutions and matrix products near the machine's peak, but
# the weight gradient of an input-dilated (transposed) convolution, and the second derivative of a
# strided one (what R1 and the path length take), fall to slow paths, 7-40x slower than the forward
# pass (docs/performance.md). So on CPU a resampling convolution is a matrix product over its taps
# (im2col for stride s; one product for all taps, overlap-added, for the transposed form), which
# autodiff turns into matrix products, slices and pads to any order. "auto" picks these on CPU for
# convolutions of at least _GEMM_MIN_MACS multiply-adds (below it the slow paths cost little, and
# XLA's own convolutions compile faster, which is what small test networks spend their time on);
# "xla" / "gemm" force either.
CONV_IMPL = "auto"
_GEMM_MIN_MACS = 2**24  # StyleGAN2 bench32's smallest 3x3 convolution has 3e8 (benchmarks/conv_paths.py)


def _gemm_convs(groups: int, macs: int) -> bool:
    """Whether a convolution of ``macs`` multiply-adds takes the CPU paths below."""
    if groups != 1 or CONV_IMPL == "xla":
        return False
    return CONV_IMPL == "gemm" or (jax.default_backend() == "cpu" and macs >= _GEMM_MIN_MACS)


def _patches(x: jax.Array, kh: int, kw: int, s: int, ho: int, wo: int) -> jax.Array:
    """``[N, ho, wo, kh*kw*C]``: the ``(ky, kx, c)`` taps of each stride-``s`` VALID window of ``x``."""
    n, _, _, c = x.shape
    return jnp.concatenate([lax.slice(x, (0, ky, kx, 0), (n, ky + s * (ho - 1) + 1, kx + s * (wo - 1) + 1, c),
                                      (1, s, s, 1)) for ky in range(kh) for kx in range(kw)], axis=-1)


def _strided_conv_gemm(x: jax.Array, w: jax.Array, s: int) -> jax.Array:
    """VALID stride-``s`` correlation ``out[i] = sum_k x[s*i + k] w[k]`` as one matrix product."""
    n, h, wd, c = x.shape
    kh, kw, _, o = w.shape
    ho, wo = (h - kh) // s + 1, (wd - kw) // s + 1
    cols = _patches(x, kh, kw, s, ho, wo).reshape(n * ho * wo, kh * kw * c)
    return jnp.dot(cols, w.reshape(kh * kw * c, o)).reshape(n, ho, wo, o)


def _conv_transpose_gemm(x: jax.Array, w: jax.Array, s: int, padding: tuple[int, int]) -> jax.Array:
    """Transposed convolution as one matrix product giving every tap's contribution
    ``x[i] w[k]``, each added at ``s*i + k - p`` (a pad with interior ``s - 1``)."""
    n, h, wd, c = x.shape
    kh, kw, _, o = w.shape
    py, px = padding
    taps = jnp.dot(x.reshape(n * h * wd, c), jnp.transpose(w, (2, 0, 1, 3)).reshape(c, kh * kw * o))
    taps = taps.reshape(n, h, wd, kh, kw, o)
    zero = jnp.zeros((), x.dtype)
    return sum(lax.pad(taps[:, :, :, ky, kx], zero, [(0, 0, 0), (ky - py, kh - 1 - ky - py, s - 1),
                                                      (kx - px, kw - 1 - kx - px, s - 1), (0, 0, 0)])
               for ky in range(kh) for kx in range(kw))


def conv2d_resample(
    x: jax.Array,
    w: jax.Array,
    f: np.ndarray | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> jax.Array:
    """Conv of ``x`` [N, H, W, C] with ``w`` [kh, kw, C/groups, O], FIR-resampled by ``f``.

    The same fast paths as upstream, so results agree to float32 rounding:
    1x1 + down (filter first), 1x1 + up (conv first), down (filter, strided conv),
    up (transposed strided conv, then filter), plain conv, and the generic fallback.
    Returns ``[N, H', W', O]``.
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"expected x [N, H, W, C] and w [kh, kw, I, O], got {x.shape} and {w.shape}")
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be >= 1, got up={up}, down={down}")
    kh, kw = int(w.shape[0]), int(w.shape[1])
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)

    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return conv2d(x, w, groups=groups, flip_weight=flip_weight)

    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = conv2d(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter)

    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return conv2d(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    if up > 1:
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = conv_transpose2d(x, w, stride=up, padding=(pyt, pxt), groups=groups, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up**2, flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return conv2d(x, w, padding=(py0, px0), groups=groups, flip_weight=flip_weight)

    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
    return conv2d(x, w, groups=groups, flip_weight=flip_weight)
