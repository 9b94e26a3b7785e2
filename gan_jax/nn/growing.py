"""The resampling and fade-in operations of the TF-era growing families (ProGAN, StyleGAN 1).

As the official ``networks.py`` of tkarras/progressive_growing_of_gans and
``networks_stylegan.py`` of NVlabs/stylegan, in NHWC with HWIO weights:

- ``upscale2d``: nearest neighbour, each pixel repeated ``f x f``.
- ``downscale2d``: box average over ``f x f`` in one pool (not repeated 2x pools).
- ``upscale2d_conv2d``: the fused up-convolution, ``conv2d_transpose`` with the 4x4 kernel made of
  the 3x3 kernel's four shifted copies (no 0.25 factor). It equals nearest upsampling followed by a
  'SAME' 3x3 correlation with the *spatially flipped* kernel, so fused and unfused weights differ.
- ``conv2d_downscale2d``: the fused down-convolution, the four shifted copies times 0.25, stride 2;
  it equals a 'SAME' 3x3 correlation (same kernel) followed by a 2x2 box average.
- ``lerp``, ``lerp_clip``: the fade-in blends ``a + (b - a) * t``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gan_jax.nn.conv import conv2d, conv_transpose2d


def upscale2d(x: jax.Array, factor: int = 2) -> jax.Array:
    """Nearest-neighbour upsampling of ``x`` [N, H, W, C] -> [N, H*f, W*f, C]."""
    if factor == 1:
        return x
    n, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, factor, w, factor, c))
    return x.reshape(n, h * factor, w * factor, c)


def downscale2d(x: jax.Array, factor: int = 2) -> jax.Array:
    """Box average of ``x`` [N, H, W, C] over ``f x f`` blocks -> [N, H/f, W/f, C]."""
    if factor == 1:
        return x
    n, h, w, c = x.shape
    if h % factor or w % factor:
        raise ValueError(f"downscale2d: {h}x{w} is not divisible by the factor {factor}")
    return jnp.mean(x.reshape(n, h // factor, factor, w // factor, factor, c), axis=(2, 4))


def _four_shifts(w: jax.Array) -> jax.Array:
    """[3, 3, I, O] -> [4, 4, I, O]: ``w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]`` of the padded kernel."""
    w = jnp.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
    return w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]


def upscale2d_conv2d(x: jax.Array, w: jax.Array) -> jax.Array:
    """Fused 2x up-convolution: ``x`` [N, H, W, I], ``w`` [3, 3, I, O] (runtime-scaled) -> [N, 2H, 2W, O].

    TF's ``conv2d_transpose(stride 2, 'SAME')``: input pixel ``i`` with tap ``k`` lands on ``2i + k - 1``.
    """
    if w.shape[:2] != (3, 3):
        raise ValueError(f"upscale2d_conv2d: expected a 3x3 kernel [3, 3, in, out], got {tuple(w.shape)}")
    return conv_transpose2d(x, _four_shifts(w), stride=2, padding=(1, 1))


def conv2d_downscale2d(x: jax.Array, w: jax.Array) -> jax.Array:
    """Fused 2x down-convolution: ``x`` [N, H, W, I], ``w`` [3, 3, I, O] (runtime-scaled) -> [N, H/2, W/2, O]."""
    if w.shape[:2] != (3, 3):
        raise ValueError(f"conv2d_downscale2d: expected a 3x3 kernel [3, 3, in, out], got {tuple(w.shape)}")
    return conv2d(x, _four_shifts(w) * 0.25, stride=2, padding=(1, 1))


def conv2d_same(x: jax.Array, w: jax.Array) -> jax.Array:
    """TF 'SAME' correlation with an odd ``k x k`` kernel ``w`` [k, k, I, O] (zero padding ``k // 2``)."""
    k = w.shape[0]
    return conv2d(x, w, padding=(k // 2, k // 2))


def lerp(a: jax.Array, b: jax.Array, t: jax.Array | float) -> jax.Array:
    """``a + (b - a) * t`` (official ``tfutil.lerp``)."""
    return a + (b - a) * t


def lerp_clip(a: jax.Array, b: jax.Array, t: jax.Array | float) -> jax.Array:
    """``a + (b - a) * clip(t, 0, 1)`` (official ``lerp_clip``)."""
    return a + (b - a) * jnp.clip(t, 0.0, 1.0)
