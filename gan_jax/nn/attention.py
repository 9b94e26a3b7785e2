"""SA-GAN self-attention (Zhang et al. 2019, arXiv 1805.08318) as BigGAN-PyTorch's ``layers.Attention``.

``theta``, ``phi``, ``g`` are bias-free 1x1 (SN) convs ``ch -> ch/8, ch/8, ch/2``; ``phi`` and ``g`` are
max-pooled 2x2 after the conv; ``beta = softmax(theta^T phi)`` over the pooled positions with **no**
``1/sqrt(d)`` scaling; ``o = conv_o(g beta^T)`` (``ch/2 -> ch``); the output is ``gamma * o + x`` with a
learnable scalar ``gamma`` (init 0). Positions are flattened row-major (``h * W + w``), as the
reference's NCHW ``view``. This module imports only jax, flax and numpy.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.nn.spectral_norm import SNConv2d

Dtype = Any


def max_pool2(x: jax.Array) -> jax.Array:
    """``F.max_pool2d(x, [2, 2])`` on [N, H, W, C] (H, W even)."""
    n, h, w, c = x.shape
    return jnp.max(x.reshape(n, h // 2, 2, w // 2, 2, c), axis=(2, 4))


class Attention(nn.Module):
    """``x`` [N, H, W, ch] -> [N, H, W, ch] (H, W even; ch divisible by 8)."""

    ch: int
    use_sn: bool = True
    num_svs: int = 1
    num_itrs: int = 1
    eps: float = 1e-12
    init_style: str = "ortho"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        n, h, w, c = x.shape
        if c != self.ch or h % 2 or w % 2:
            raise ValueError(f"{self.name}: expects x of shape [N, H, W, {self.ch}] with even H, W; got {tuple(x.shape)}")
        conv = lambda f, name: SNConv2d(f, 1, use_bias=False, use_sn=self.use_sn, num_svs=self.num_svs,
                                        num_itrs=self.num_itrs, eps=self.eps, init_style=self.init_style, dtype=self.dtype, name=name)
        ch8, ch2 = self.ch // 8, self.ch // 2
        theta = conv(ch8, "theta")(x, train).reshape(n, h * w, ch8)
        phi = max_pool2(conv(ch8, "phi")(x, train)).reshape(n, h * w // 4, ch8)
        g = max_pool2(conv(ch2, "g")(x, train)).reshape(n, h * w // 4, ch2)
        beta = jax.nn.softmax(jnp.einsum("nqc,nkc->nqk", theta, phi).astype(jnp.float32), axis=-1)  # [N, HW, HW/4]
        o = jnp.einsum("nqk,nkc->nqc", beta.astype(g.dtype), g).reshape(n, h, w, ch2)
        o = conv(self.ch, "o")(o, train)
        gamma = self.param("gamma", nn.initializers.zeros, ())
        return (gamma * o + x).astype(x.dtype)
