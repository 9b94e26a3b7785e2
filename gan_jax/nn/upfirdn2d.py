"""Upsample, FIR-filter, downsample: NVIDIA's `torch_utils/ops/upfirdn2d.py` on NHWC arrays.

``upfirdn2d`` does four things, in the official order:
1. upsample by inserting ``up - 1`` zeros after every sample (sample ``i`` goes to ``i * up``);
2. pad ``[x0, x1, y0, y1]`` — width first, as upstream; negative values crop;
3. *convolve* with the filter ``f`` (``flip_filter=True`` correlates instead);
4. keep every ``down``-th sample.

Filters are numpy arrays made by ``setup_filter``: ``[fh, fw]`` (non-separable) or ``[taps]``
(separable, applied along W then H). They are constants of the graph, not parameters.
"""

from __future__ import annotations

import functools
from typing import Sequence, Union

import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np

Padding = Union[int, Sequence[int]]
Scaling = Union[int, Sequence[int]]

_NHWC = ("NHWC", "HWIO", "NHWC")


def parse_scaling(scaling: Scaling) -> tuple[int, int]:
    """``int`` or ``[sx, sy]`` -> ``(sx, sy)``."""
    if isinstance(scaling, (int, np.integer)):
        scaling = [int(scaling), int(scaling)]
    sx, sy = (int(s) for s in scaling)
    if sx < 1 or sy < 1:
        raise ValueError(f"scaling factors must be >= 1, got {scaling}")
    return sx, sy


def parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """``int``, ``[px, py]`` or ``[x0, x1, y0, y1]`` -> ``(x0, x1, y0, y1)`` (upstream's order)."""
    if isinstance(padding, (int, np.integer)):
        padding = [int(padding), int(padding)]
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        padding = [px, px, py, py]
    if len(padding) != 4:
        raise ValueError(f"padding must be an int, [x, y] or [x0, x1, y0, y1], got {padding}")
    x0, x1, y0, y1 = padding
    return x0, x1, y0, y1


def filter_size(f: np.ndarray | None) -> tuple[int, int]:
    """``(fw, fh)`` of a prepared filter (upstream's ``_get_filter_size``)."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"filter must be 1-D or 2-D, got shape {f.shape}")
    return int(f.shape[-1]), int(f.shape[0])


def setup_filter(
    f: Sequence[float] | np.ndarray | None,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1.0,
    separable: bool | None = None,
) -> np.ndarray:
    """Prepare a FIR filter as upstream's ``setup_filter``: float32 ``[fh, fw]`` or ``[taps]``.

    A 1-D list becomes separable only when it has >= 8 taps or ``separable=True``; otherwise it
    becomes the outer product with itself. ``normalize`` makes it sum to 1.
    """
    f = np.asarray(1.0 if f is None else f, dtype=np.float32)
    if f.ndim not in (0, 1, 2) or f.size == 0:
        raise ValueError(f"filter must be a non-empty scalar, 1-D or 2-D array, got shape {f.shape}")
    if f.ndim == 0:
        f = f[np.newaxis]
    if separable is None:
        separable = f.ndim == 1 and f.size >= 8
    if f.ndim == 1 and not separable:
        f = np.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError(f"a {f.ndim}-D filter cannot be separable={separable}")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = np.flip(f, axis=tuple(range(f.ndim)))
    f = f * np.float32(gain ** (f.ndim / 2))
    return np.ascontiguousarray(f, dtype=np.float32)


# Filters with at most this many taps per axis run as a sum of shifted slices, which XLA fuses
# into one loop; larger ones as a depthwise convolution (slow on some backends, e.g. XLA:CPU).
_MAX_SHIFT_TAPS = 16


def _rank1(f: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(fh, fw)`` with ``outer(fh, fw) == f`` when the 2-D filter is separable, else None."""
    total = f.sum()
    if total == 0:
        return None
    fh, fw = f.sum(axis=1), f.sum(axis=0) / total
    return (fh, fw) if np.allclose(np.outer(fh, fw), f, rtol=1e-6, atol=1e-9) else None


def _shifted_sum(x: jax.Array, taps: np.ndarray, axis: int, stride: int) -> jax.Array:
    """VALID correlation of ``x`` with the 1-D ``taps`` along ``axis``, keeping every ``stride``-th output."""
    return _fir(x, tuple(float(t) for t in np.asarray(taps, np.float32)), axis, stride)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _fir(x: jax.Array, taps: tuple[float, ...], axis: int, stride: int) -> jax.Array:
    k = len(taps)
    n_out = (x.shape[axis] - k) // stride + 1
    out = None
    for i, t in enumerate(taps):
        if t == 0:
            continue
        term = jax.lax.slice_in_dim(x, i, i + (n_out - 1) * stride + 1, stride, axis) * jnp.asarray(t, x.dtype)
        out = term if out is None else out + term
    if out is None:
        shape = list(x.shape)
        shape[axis] = n_out
        out = jnp.zeros(shape, x.dtype)
    return out


def _fir_fwd(x, taps, axis, stride):
    return _fir(x, taps, axis, stride), x.shape[axis]


def _fir_bwd(taps, axis, stride, size, ct):
    # The gradient of a correlation is the correlation of the zero-inserted, padded cotangent with
    # the reversed taps: one pad and k shifted sums, as the forward (autodiff's transpose of the k
    # slices is k full-size pads, ~3-6x the forward's time on a CPU). Itself a _fir, so R1's second
    # derivative takes the same path.
    k, n_out = len(taps), ct.shape[axis]
    zero = jnp.zeros((), ct.dtype)
    config = [(0, 0, 0)] * ct.ndim
    config[axis] = (k - 1, size - (n_out - 1) * stride - 1, stride - 1)
    return (_fir(lax.pad(ct, zero, config), taps[::-1], axis, 1),)


_fir.defvjp(_fir_fwd, _fir_bwd)


def _correlate(x: jax.Array, f: np.ndarray, stride: tuple[int, int]) -> jax.Array:
    """Correlate each channel of NHWC ``x`` with the filter ``f`` ([fh, fw] or 1-D taps for both axes)."""
    if f.ndim == 1:
        return _correlate(_correlate(x, f[np.newaxis, :], (1, stride[1])), f[:, np.newaxis], (stride[0], 1))
    if max(f.shape) > _MAX_SHIFT_TAPS:
        return _depthwise(x, f, stride)
    if f.shape[0] == 1:  # one row: a VALID correlation of height 1 keeps rows 0, s, 2s, ...
        return _shifted_sum(x[:, :: stride[0]], f[0], 2, stride[1])
    if f.shape[1] == 1:
        return _shifted_sum(x[:, :, :: stride[1]], f[:, 0], 1, stride[0])
    separable = _rank1(f)
    if separable is not None:
        return _shifted_sum(_shifted_sum(x, separable[1], 2, stride[1]), separable[0], 1, stride[0])
    return _depthwise(x, f, stride)


def _depthwise(x: jax.Array, kernel_hw: np.ndarray, stride: tuple[int, int]) -> jax.Array:
    """Correlate each channel of NHWC ``x`` with the 2-D ``kernel_hw`` [kh, kw], VALID padding."""
    c = x.shape[-1]
    k = jnp.asarray(kernel_hw, x.dtype)[:, :, None, None]
    k = jnp.broadcast_to(k, (*kernel_hw.shape, 1, c))
    return lax.conv_general_dilated(
        x, k, window_strides=stride, padding="VALID", feature_group_count=c, dimension_numbers=_NHWC
    )


def upfirdn2d(
    x: jax.Array,
    f: np.ndarray | None,
    up: Scaling = 1,
    down: Scaling = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> jax.Array:
    """Pad, upsample, filter and downsample ``x`` [N, H, W, C] with the prepared filter ``f``.

    Returns ``[N, H', W', C]`` with ``H' = (H*up_y + py0 + py1 - fh) // down_y + 1``.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects NHWC [N, H, W, C], got shape {x.shape}")
    f = np.ones([1, 1], np.float32) if f is None else np.asarray(f, np.float32)
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    px0, px1, py0, py1 = parse_padding(padding)

    # Zero insertion and pad/crop in one lax.pad: interior padding puts up-1 zeros between samples,
    # the extra (up-1) at the end are the zeros upstream appends after the last sample.
    zero = jnp.zeros((), x.dtype)
    x = lax.pad(x, zero, [(0, 0, 0), (py0, py1 + upy - 1, upy - 1), (px0, px1 + upx - 1, upx - 1), (0, 0, 0)])

    f = f * np.float32(gain ** (f.ndim / 2))
    if not flip_filter:  # true convolution = correlation with the flipped filter
        f = np.flip(f, axis=tuple(range(f.ndim)))
    return _correlate(x, f, (downy, downx))


def filter2d(
    x: jax.Array, f: np.ndarray | None, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0
) -> jax.Array:
    """Filter ``x`` [N, H, W, C] keeping its size (plus ``padding``)."""
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain)


def upsample2d(
    x: jax.Array,
    f: np.ndarray | None,
    up: Scaling = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> jax.Array:
    """Upsample ``x`` [N, H, W, C] to [N, H*up, W*up, C] (plus ``padding``); DC gain is kept."""
    upx, upy = parse_scaling(up)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(
    x: jax.Array,
    f: np.ndarray | None,
    down: Scaling = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> jax.Array:
    """Downsample ``x`` [N, H, W, C] to [N, H/down, W/down, C] (plus ``padding``)."""
    downx, downy = parse_scaling(down)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain)


def upfirdn1d_matrix(
    size: int,
    taps: Sequence[float] | np.ndarray,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int] = (0, 0),
    flip_filter: bool = False,
    gain: float = 1.0,
) -> np.ndarray:
    """float32 ``[size_out, size]``: ``upfirdn2d``'s arithmetic along one axis as a matrix.

    For a separable ``[taps]`` filter ``f``, ``upfirdn2d(x, f, up, down, [x0, x1, y0, y1], flip, gain)``
    equals ``My @ x @ Mx.T`` per image and channel, with ``Mx = upfirdn1d_matrix(W, f, up, down,
    (x0, x1), flip, sqrt(gain))`` and ``My`` the same along H (``gain`` here is one axis' share).
    A matrix product is one call on a CPU whose gradient is another, where the shifted sums' gradient
    is a chain of pads.
    """
    f = np.asarray(taps, np.float64).reshape(-1) * gain
    if not flip_filter:  # convolution = correlation with the flipped filter
        f = f[::-1]
    pad0, pad1 = (int(p) for p in padding)
    length = size * up + pad0 + pad1  # zero-inserted (size * up, trailing zeros included), padded
    size_out = (length - f.size) // down + 1
    if size_out < 1:
        raise ValueError(f"upfirdn1d_matrix: {size} samples with up={up}, padding={padding} are fewer than "
                         f"the filter's {f.size} taps")
    m = np.zeros((size_out, size), np.float64)
    for k in range(size_out):
        for t, tap in enumerate(f):
            i, r = divmod(k * down + t - pad0, up)  # sample i of x sits at pad0 + i * up
            if r == 0 and 0 <= i < size:
                m[k, i] += tap
    return m.astype(np.float32)
