"""BatchNorm as BigGAN-PyTorch uses it: the unconditional ``layers.bn`` (output layer) and the
class-conditional ``layers.ccbn`` with ``gain = 1 + W_gamma c`` and ``bias = W_beta c``.

Statistics are over (N, H, W) of whatever batch the computation sees. Under ``jax.jit`` with a batch
sharded over a mesh that is the **global** batch: XLA inserts the cross-device reductions, so this is
the cross-replica BatchNorm of the paper with no extra code (tested on 8 devices).

Two numerics, as the reference (ajbrock/BigGAN-PyTorch 9845943, ``layers.py``):

* ``mybn=False`` (``F.batch_norm(x, stored_mean, stored_var, ..., training, 0.1, eps)``): train mode
  normalises with the batch mean and the **biased** variance, then
  ``stored_mean <- 0.9 stored_mean + 0.1 mean`` and ``stored_var <- 0.9 stored_var + 0.1 var * n/(n-1)``
  (the **unbiased** variance, ``n = N*H*W``); eval mode uses the stored statistics.
* ``mybn=True`` (``layers.myBN``): ``var = E[x^2] - E[x]^2`` (biased) for both the normalisation and the
  running update, the fused form ``x * scale - (mean * scale - bias)``, and the buffers live in a
  child ``bn`` (``bn.stored_mean``, ``bn.stored_var``, ``bn.accumulation_counter``).

Variables: ``batch_stats/stored_mean`` ``[C]``, ``batch_stats/stored_var`` ``[C]`` (written in train
mode only when ``batch_stats`` is mutable). With the ``bn_moments`` collection mutable, train mode also
sows the batch ``mean`` and biased ``var`` (used for standing statistics). Arrays are NHWC.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.nn.spectral_norm import SNEmbedding, SNLinear

Dtype = Any
BN_COLLECTION = "batch_stats"
MOMENTS_COLLECTION = "bn_moments"
MOMENTUM = 0.1  # hard-coded in ccbn.forward's F.batch_norm call and layers.bn's default


def batch_moments(x: jax.Array, manual: bool = False) -> tuple[jax.Array, jax.Array]:
    """Per-channel mean and biased variance over (N, H, W) of ``x`` [N, H, W, C], float32.

    ``manual`` is myBN's ``E[x^2] - E[x]^2``; otherwise the two-pass ``E[(x - E[x])^2]``."""
    x = x.astype(jnp.float32)
    mean = jnp.mean(x, axis=(0, 1, 2))
    if manual:
        var = jnp.mean(jnp.square(x), axis=(0, 1, 2)) - jnp.square(mean)
    else:
        var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
    return mean, var


def normalize(module: nn.Module, x: jax.Array, gain: jax.Array | None, bias: jax.Array | None, train: bool,
              eps: float, mybn: bool, momentum: float = MOMENTUM) -> jax.Array:
    """BatchNorm of ``x`` [N, H, W, C] with ``stored_mean`` / ``stored_var`` (and myBN's
    ``accumulation_counter``) created on ``module``; ``gain`` / ``bias`` broadcast against x."""
    c = x.shape[-1]
    mean_v = module.variable(BN_COLLECTION, "stored_mean", lambda: jnp.zeros((c,), jnp.float32))
    var_v = module.variable(BN_COLLECTION, "stored_var", lambda: jnp.ones((c,), jnp.float32))
    if mybn:
        module.variable(BN_COLLECTION, "accumulation_counter", lambda: jnp.zeros((1,), jnp.float32))
    if tuple(mean_v.value.shape) != (c,):
        raise ValueError(f"{module.name}: stored_mean has shape {tuple(mean_v.value.shape)}, x has {c} channels")
    x32 = x.astype(jnp.float32)
    if train:
        mean, var = batch_moments(x32, manual=mybn)
        module.sow(MOMENTS_COLLECTION, "mean", mean)
        module.sow(MOMENTS_COLLECTION, "var", var)
        if module.is_mutable_collection(BN_COLLECTION) and not module.is_initializing():
            n = x.shape[0] * x.shape[1] * x.shape[2]
            running_var = var if mybn else var * (n / max(n - 1, 1))  # F.batch_norm: unbiased running var
            mean_v.value = mean_v.value * (1 - momentum) + jax.lax.stop_gradient(mean) * momentum
            var_v.value = var_v.value * (1 - momentum) + jax.lax.stop_gradient(running_var) * momentum
    else:
        mean, var = mean_v.value, var_v.value
    if mybn:  # layers.fused_bn: x * scale - (mean * scale - bias)
        scale = jax.lax.rsqrt(var + eps)
        if gain is not None:
            scale = scale * gain
        shift = mean * scale
        if bias is not None:
            shift = shift - bias
        out = x32 * scale - shift
    else:
        out = (x32 - mean) * jax.lax.rsqrt(var + eps)
        if gain is not None:
            out = out * gain
        if bias is not None:
            out = out + bias
    return out.astype(x.dtype)


class MyBN(nn.Module):
    """``layers.myBN``: the buffers of ``mybn=True`` (``bn.stored_mean`` ...) and its numerics."""

    eps: float = 1e-5
    momentum: float = MOMENTUM

    @nn.compact
    def __call__(self, x: jax.Array, gain: jax.Array | None, bias: jax.Array | None, train: bool = False) -> jax.Array:
        return normalize(self, x, gain, bias, train, self.eps, True, self.momentum)


def _check_input(name: str, x: jax.Array, features: int) -> None:
    if x.ndim != 4 or x.shape[-1] != features:
        raise ValueError(f"{name}: expects x of shape [N, H, W, {features}], got {tuple(x.shape)}")


class BatchNorm(nn.Module):
    """``layers.bn``: affine BatchNorm with ``gain`` (init 1) and ``bias`` (init 0) params ``[C]``.

    The reference constructs the output-layer bn without ``eps``, so its default 1e-5 applies whatever
    ``BN_eps`` is. ``x`` [N, H, W, C] -> [N, H, W, C]."""

    features: int
    eps: float = 1e-5
    mybn: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        _check_input(self.name, x, self.features)
        gain = self.param("gain", nn.initializers.ones, (self.features,))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.mybn:
            return MyBN(self.eps, name="bn")(x, gain, bias, train)
        return normalize(self, x, gain, bias, train, self.eps, False)


class ConditionalBatchNorm(nn.Module):
    """``layers.ccbn``: ``BN(x) * (1 + W_gamma c) + W_beta c``.

    ``W_gamma`` / ``W_beta`` are the children ``gain`` / ``bias``: ``SNLinear(input_size -> C, bias=False)``
    when ``c`` is a float vector ``[N, input_size]`` (``G_shared=True``), or a plain ``nn.Embedding``
    ``(n_classes, C)`` when ``c`` holds integer classes ``[N]`` (``G_shared=False``).
    ``norm_style`` 'bn' (BatchNorm) or 'nonorm' (no normalisation). ``x`` [N, H, W, C] -> [N, H, W, C].
    """

    features: int
    input_size: int
    eps: float = 1e-5
    mybn: bool = False
    norm_style: str = "bn"
    shared: bool = True
    use_sn: bool = True
    num_svs: int = 1
    num_itrs: int = 1
    sn_eps: float = 1e-12
    init_style: str = "ortho"

    @nn.compact
    def __call__(self, x: jax.Array, c: jax.Array, train: bool = False) -> jax.Array:
        _check_input(self.name, x, self.features)
        if self.norm_style not in ("bn", "nonorm"):
            raise NotImplementedError(f"ccbn norm_style {self.norm_style!r}: gan_jax implements 'bn' and 'nonorm' "
                                      "(the reference's 'gn' path raises AttributeError, 'in' is untested upstream)")
        if self.shared:
            if c.ndim != 2 or c.shape[1] != self.input_size:
                raise ValueError(f"{self.name}: expects the conditioning vector c of shape [N, {self.input_size}], got {tuple(c.shape)}")
            kw = {"use_bias": False, "use_sn": self.use_sn, "num_svs": self.num_svs, "num_itrs": self.num_itrs,
                  "eps": self.sn_eps, "init_style": self.init_style}
            gain = 1 + SNLinear(self.features, name="gain", **kw)(c.astype(jnp.float32), train)
            bias = SNLinear(self.features, name="bias", **kw)(c.astype(jnp.float32), train)
        else:
            gain = 1 + SNEmbedding(self.input_size, self.features, use_sn=False, init_style=self.init_style, name="gain")(c, train)
            bias = SNEmbedding(self.input_size, self.features, use_sn=False, init_style=self.init_style, name="bias")(c, train)
        gain, bias = gain[:, None, None, :], bias[:, None, None, :]
        if self.norm_style == "nonorm":
            return (x.astype(jnp.float32) * gain + bias).astype(x.dtype)
        if self.mybn:
            return MyBN(self.eps, name="bn")(x, gain, bias, train)
        return normalize(self, x, gain, bias, train, self.eps, False)
