"""Modulated convolution with optional demodulation (Karras et al. 2020, eqs. 1-3).

    w'_{ijk} = s_i * w_{ijk}                       (modulation by the style s)
    w''_{ijk} = w'_{ijk} / sqrt(sum_{i,k} w'^2 + eps)  (demodulation, eps = 1e-8)

Two equivalent ways to run it, selected by ``fused_modconv`` (official `modulated_conv2d`):
- fused (grouped): one convolution over the batch with per-sample weights, ``groups=N``;
- per-sample scaling: scale ``x`` by ``s``, one shared convolution, scale the output by the
  demodulation coefficients (and add noise).
"""

from __future__ import annotations

import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np

from gan_jax.nn.conv import conv2d_resample
from gan_jax.nn.upfirdn2d import Padding


def modulated_conv2d(
    x: jax.Array,
    weight: jax.Array,
    styles: jax.Array,
    noise: jax.Array | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    resample_filter: np.ndarray | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> jax.Array:
    """Modulated conv of ``x`` [N, H, W, I] with ``weight`` [kh, kw, I, O] and ``styles`` [N, I].

    ``noise`` (optional) must broadcast against the output [N, H', W', O], e.g. [N, H', W', 1] or
    [H', W', 1]; it is added after demodulation. The modulation and demodulation coefficients are
    computed in float32; the convolution runs in ``x.dtype``.
    """
    n, _, _, in_channels = x.shape
    kh, kw, w_in, out_channels = weight.shape
    if w_in != in_channels or styles.shape != (n, in_channels):
        raise ValueError(
            f"modulated_conv2d: x {x.shape}, weight {weight.shape} and styles {styles.shape} disagree; "
            f"expected weight [kh, kw, {in_channels}, O] and styles [{n}, {in_channels}]"
        )
    weight = weight.astype(jnp.float32)
    styles = styles.astype(jnp.float32)

    if not fused_modconv:
        # sum_{k,i} (s_i w_{k,i,o})^2 = sum_i s_i^2 sum_k w_{k,i,o}^2: an [N, I] x [I, O] product
        # instead of the [N, kh, kw, I, O] per-sample weights the official code builds (the same
        # value up to float32 rounding; that tensor and its gradient were most of G's step on CPU).
        if demodulate:
            dcoefs = lax.rsqrt(jnp.dot(jnp.square(styles), jnp.sum(jnp.square(weight), axis=(0, 1)),
                                       precision=lax.Precision.HIGHEST) + 1e-8)  # [N, O]
        x = x * styles.astype(x.dtype)[:, None, None, :]
        x = conv2d_resample(x, weight.astype(x.dtype), f=resample_filter, up=up, down=down,
                            padding=padding, flip_weight=flip_weight)
        if demodulate:
            x = x * dcoefs.astype(x.dtype)[:, None, None, :]
        if noise is not None:
            x = x + noise.astype(x.dtype)
        return x

    w = weight[None] * styles[:, None, None, :, None]  # [N, kh, kw, I, O]
    if demodulate:
        w = w * lax.rsqrt(jnp.sum(jnp.square(w), axis=(1, 2, 3)) + 1e-8)[:, None, None, None, :]
    h, wd = x.shape[1], x.shape[2]
    x = jnp.transpose(x, (1, 2, 0, 3)).reshape(1, h, wd, n * in_channels)
    w = jnp.transpose(w, (1, 2, 3, 0, 4)).reshape(kh, kw, in_channels, n * out_channels)
    x = conv2d_resample(x, w.astype(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                        groups=n, flip_weight=flip_weight)
    x = jnp.transpose(x.reshape(x.shape[1], x.shape[2], n, out_channels), (2, 0, 1, 3))
    if noise is not None:
        x = x + noise.astype(x.dtype)
    return x
