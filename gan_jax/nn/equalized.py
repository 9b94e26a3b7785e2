"""Equalized-learning-rate layers (Karras et al. 2018, sec. 4.1): weights are stored as raw N(0, 1)
draws and scaled at run time, so every layer learns at the same speed.

Flax variable names follow NVIDIA's `training/networks.py` (``weight``, ``bias``); layouts are
JAX's: FC weights ``[in, out]``, conv weights ``[kh, kw, in, out]``.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.nn.bias_act import activation_spec, bias_act
from gan_jax.nn.conv import conv2d_resample
from gan_jax.nn.upfirdn2d import setup_filter

Dtype = Any


class FullyConnectedLayer(nn.Module):
    """``act(x @ (W * lr_multiplier / sqrt(in)) + b * lr_multiplier)`` (official `FullyConnectedLayer`).

    ``x`` [N, in] -> [N, features]. The stored weight is ``randn / lr_multiplier``.
    """

    features: int
    bias: bool = True
    activation: str = "linear"
    lr_multiplier: float = 1.0
    bias_init: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_features = x.shape[-1]
        weight = self.param(
            "weight", lambda k, s: jax.random.normal(k, s, jnp.float32) / self.lr_multiplier, (in_features, self.features)
        )
        w = weight.astype(self.dtype) * jnp.asarray(self.lr_multiplier / np.sqrt(in_features), self.dtype)
        x = x.astype(self.dtype)
        b = None
        if self.bias:
            b = self.param("bias", lambda k, s: jnp.full(s, self.bias_init, jnp.float32), (self.features,))
            b = b.astype(self.dtype)
            if self.lr_multiplier != 1:
                b = b * jnp.asarray(self.lr_multiplier, self.dtype)
        if self.activation == "linear" and b is not None:
            return x @ w + b
        return bias_act(x @ w, b, act=self.activation)


class Conv2dLayer(nn.Module):
    """Equalized-lr conv with optional FIR resampling (official `Conv2dLayer`).

    ``x`` [N, H, W, in] -> [N, H*up/down, W*up/down, out]. Weight gain ``1/sqrt(in*k*k)``,
    bias without gain, ``bias_act(act, gain=def_gain*gain, clamp=conv_clamp*gain)``.
    """

    out_channels: int
    kernel_size: int
    bias: bool = True
    activation: str = "linear"
    up: int = 1
    down: int = 1
    resample_filter: Sequence[float] = (1, 3, 3, 1)
    conv_clamp: float | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, gain: float = 1.0) -> jax.Array:
        in_channels = x.shape[-1]
        k = self.kernel_size
        weight = self.param("weight", nn.initializers.normal(1.0), (k, k, in_channels, self.out_channels), jnp.float32)
        w = weight * np.float32(1 / np.sqrt(in_channels * k * k))
        x = conv2d_resample(
            x.astype(self.dtype), w.astype(self.dtype), f=setup_filter(self.resample_filter),
            up=self.up, down=self.down, padding=k // 2, flip_weight=(self.up == 1),
        )
        b = self.param("bias", nn.initializers.zeros, (self.out_channels,), jnp.float32) if self.bias else None
        act_gain = activation_spec(self.activation).def_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)
