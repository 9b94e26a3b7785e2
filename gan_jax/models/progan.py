"""ProGAN (Karras et al. 2018, arXiv 1710.10196) as the official TensorFlow code defines it
(tkarras/progressive_growing_of_gans, ``networks.py``: ``G_paper`` / ``D_paper``).

The constructor fields are the official keyword arguments, and the Flax variable paths are the
official variable names: ``params/4x4/Dense/weight``, ``params/8x8/Conv0_up/weight``,
``params/ToRGB_lod0/bias``, ``params/FromRGB_lod2/weight``, ``params/16x16/Conv1_down/bias``,
``params/4x4/Dense1/weight``. Layouts are the official ones too (so conversion is a rename only):
conv weights ``[k, k, in, out]``, except the fused up-convolution ``*/Conv0_up/weight`` which is
``[3, 3, out, in]`` (it feeds ``conv2d_transpose``); dense weights ``[in, out]``; biases ``[C]``.
Weights are the raw N(0, 1) variables; equalized learning rate multiplies them at run time by
``gain / sqrt(fan_in)`` (official ``get_weight``). Activations are NHWC.

Level of detail. ``lod`` is an input (a Python float or a traced float32 scalar): the networks
run every level up to ``max_resolution`` and blend the outputs exactly as the official
*recursive* structure does (``lod`` clipped to ``[0, log2(R) - 2]``; at an integer ``lod`` no blend
is computed, a blend factor ``t`` in (0, 1) gives ``a + (b - a) * t``): G fades its ToRGB outputs
in image space, D fades in feature space against the FromRGB of the input box-downscaled by
``2 ** (lod_r + 1)`` in one pool. So one compiled program serves a fade-in and the stable phase
after it. ``max_resolution`` (static, default the full resolution) skips the levels above it; the
result equals the full network for any ``lod >= log2(R / max_resolution)`` (a smaller ``lod`` is
treated as that bound). G always returns images at the full resolution (nearest upscaling).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.models.shapes import log2_resolution, nf
from gan_jax.nn import growing
from gan_jax.nn.minibatch_std import minibatch_std
from gan_jax.nn.normalize import normalize_2nd_moment

Dtype = Any
SQRT2 = float(np.sqrt(2))  # official default gain (He init)


def _top_level(resolution_log2: int, max_resolution: int | None, who: str) -> int:
    if max_resolution is None:
        return resolution_log2
    top = log2_resolution(int(max_resolution), f"{who}: resolution")
    if top > resolution_log2:
        raise ValueError(f"{who}: max_resolution={max_resolution} exceeds the network's resolution {2 ** resolution_log2}")
    return top


def _lod_input(lod: Any, resolution_log2: int, top: int) -> jax.Array:
    lod = jnp.asarray(lod, jnp.float32)
    if lod.shape != ():
        raise ValueError(f"lod must be a scalar, got shape {lod.shape}")
    return jnp.maximum(lod, np.float32(resolution_log2 - top)) if top < resolution_log2 else lod


def fade(a: jax.Array, b: jax.Array, t: jax.Array) -> jax.Array:
    """The official fade: ``a`` for ``t <= 0``, ``b`` for ``t >= 1`` (the recursive structure does not
    compute a blend there), else ``lerp(a, b, t) = a + (b - a) * t``."""
    return jnp.where(t <= 0, a, jnp.where(t >= 1, b, growing.lerp(a, b, t)))


def leaky_relu(x: jax.Array, alpha: float = 0.2) -> jax.Array:
    """``max(alpha * x, x)`` (official ``leaky_relu``)."""
    return jnp.maximum(x * jnp.asarray(alpha, x.dtype), x)


class _Layer(nn.Module):
    """One official layer scope: ``weight`` (+ ``bias``), equalized by ``gain / sqrt(fan_in)``.

    ``kind``: ``'dense'`` (x [N, ...] flattened in NCHW order -> [N, fmaps]), ``'conv'`` ('SAME'
    ``kernel x kernel``), ``'conv_up'`` (fused 2x up-conv, weight ``[3, 3, out, in]``),
    ``'conv_down'`` (fused conv + 2x box down). ``to_nchw_4x4``: the dense output is read as
    ``[N, C, 4, 4]`` (G's 4x4 Dense) and returned NHWC. Bias after the weight, no activation.
    """

    kind: str
    fmaps: int
    kernel: int = 3
    gain: float = SQRT2
    use_wscale: bool = True
    to_nchw_4x4: bool = False
    dtype: Dtype = jnp.float32

    def _weight(self, shape: tuple[int, ...], fan_in: int) -> jax.Array:
        std = self.gain / np.sqrt(fan_in)  # official get_weight: He init std
        if self.use_wscale:
            w = self.param("weight", nn.initializers.normal(1.0), shape, jnp.float32)
            return w * np.float32(std)
        return self.param("weight", nn.initializers.normal(float(std)), shape, jnp.float32)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(self.dtype)
        k, c_in = self.kernel, x.shape[-1]
        if self.kind == "dense":
            if x.ndim == 4:  # official flattens NCHW
                x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
            w = self._weight((x.shape[-1], self.fmaps), x.shape[-1])
            y = x @ w.astype(self.dtype)
            channels = self.fmaps
            if self.to_nchw_4x4:
                channels = self.fmaps // 16
                y = jnp.transpose(y.reshape(-1, channels, 4, 4), (0, 2, 3, 1))
        elif self.kind == "conv":
            w = self._weight((k, k, c_in, self.fmaps), k * k * c_in)
            y = growing.conv2d_same(x, w.astype(self.dtype))
            channels = self.fmaps
        elif self.kind == "conv_up":  # official upscale2d_conv2d: [k, k, out, in], fan_in k*k*in
            w = self._weight((k, k, self.fmaps, c_in), k * k * c_in)
            y = growing.upscale2d_conv2d(x, jnp.transpose(w, (0, 1, 3, 2)).astype(self.dtype))
            channels = self.fmaps
        elif self.kind == "conv_down":
            w = self._weight((k, k, c_in, self.fmaps), k * k * c_in)
            y = growing.conv2d_downscale2d(x, w.astype(self.dtype))
            channels = self.fmaps
        else:
            raise ValueError(f"unknown layer kind {self.kind!r}")
        b = self.param("bias", nn.initializers.zeros, (channels,), jnp.float32)
        return y + b.astype(self.dtype)


class _Scope(nn.Module):
    """A named variable scope (``4x4``, ``16x16``) holding the layers of one block."""

    fn: Any

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fn(self, x)


class Generator(nn.Module):
    """``G_paper``: latents [N, latent_size] (+ labels [N, label_size]) -> images [N, R, R, num_channels].

    Fields are the official keyword arguments with their defaults; ``latent_size=None`` means
    ``nf(0)``. ``dtype`` is the compute dtype (parameters are float32; images are returned float32).
    """

    num_channels: int = 1
    resolution: int = 32
    label_size: int = 0
    fmap_base: int = 8192
    fmap_decay: float = 1.0
    fmap_max: int = 512
    latent_size: int | None = None
    normalize_latents: bool = True
    use_wscale: bool = True
    use_pixelnorm: bool = True
    pixelnorm_epsilon: float = 1e-8
    use_leakyrelu: bool = True
    fused_scale: bool = True
    dtype: Dtype = jnp.float32

    def nf(self, stage: int) -> int:
        return nf(stage, self.fmap_base, self.fmap_decay, self.fmap_max)

    @property
    def z_dim(self) -> int:
        """The effective latent size (official: ``latent_size`` or ``nf(0)``)."""
        return self.nf(0) if self.latent_size is None else int(self.latent_size)

    @property
    def c_dim(self) -> int:
        return int(self.label_size)

    @property
    def resolution_log2(self) -> int:
        return log2_resolution(int(self.resolution), "progan.Generator: resolution")

    def _combo(self, latents: jax.Array, labels: jax.Array | None) -> jax.Array:
        n = latents.shape[0]
        if latents.ndim != 2 or latents.shape[1] != self.z_dim:
            raise ValueError(f"progan.Generator expects latents [N, {self.z_dim}], got {tuple(latents.shape)}")
        if self.label_size == 0:
            if labels is not None and np.size(labels) != 0:
                raise ValueError(f"progan.Generator is unconditional (label_size=0) but got labels of shape "
                                 f"{tuple(np.shape(labels))}; pass labels=None")
            return latents.astype(jnp.float32)
        if labels is None or tuple(labels.shape) != (n, self.label_size):
            got = None if labels is None else tuple(labels.shape)
            raise ValueError(f"progan.Generator is conditional and expects labels [{n}, {self.label_size}], got {got}")
        return jnp.concatenate([latents.astype(jnp.float32), labels.astype(jnp.float32)], axis=1)

    @nn.compact
    def __call__(self, latents: jax.Array, labels: jax.Array | None = None, lod: Any = 0.0,
                 max_resolution: int | None = None) -> jax.Array:
        """Images [N, R, R, num_channels] at level of detail ``lod`` (see the module docstring)."""
        r_log2 = self.resolution_log2
        top = _top_level(r_log2, max_resolution, "progan.Generator")
        lod = _lod_input(lod, r_log2, top)
        x = self._combo(latents, labels).astype(self.dtype)
        act = leaky_relu if self.use_leakyrelu else jax.nn.relu
        kw = {"use_wscale": self.use_wscale, "dtype": self.dtype}

        def pn(v: jax.Array) -> jax.Array:
            return normalize_2nd_moment(v, axis=-1, eps=self.pixelnorm_epsilon) if self.use_pixelnorm else v

        def block(scope: nn.Module, v: jax.Array, res: int) -> jax.Array:
            f = self.nf(res - 1)
            if res == 2:
                if self.normalize_latents:  # over the whole [latents, labels] vector
                    v = normalize_2nd_moment(v, axis=-1, eps=self.pixelnorm_epsilon)
                # gain sqrt(2)/4: official override "to match the original Theano implementation"
                v = pn(act(_Layer("dense", f * 16, gain=SQRT2 / 4, to_nchw_4x4=True, name="Dense", **kw)(v)))
                return pn(act(_Layer("conv", f, name="Conv", **kw)(v)))
            if self.fused_scale:
                v = pn(act(_Layer("conv_up", f, name="Conv0_up", **kw)(v)))
            else:
                v = pn(act(_Layer("conv", f, name="Conv0", **kw)(growing.upscale2d(v))))
            return pn(act(_Layer("conv", f, name="Conv1", **kw)(v)))

        def torgb(v: jax.Array, res: int) -> jax.Array:
            return _Layer("conv", self.num_channels, kernel=1, gain=1.0, name=f"ToRGB_lod{r_log2 - res}", **kw)(v)

        x = _Scope(lambda s, v: block(s, v, 2), name="4x4")(x)
        images = torgb(x, 2)
        for res in range(3, top + 1):
            x = _Scope(lambda s, v, res=res: block(s, v, res), name=f"{2 ** res}x{2 ** res}")(x)
            t = lod - np.float32(r_log2 - res)  # float32, as the official lod_in - lod
            images = fade(torgb(x, res), growing.upscale2d(images), t)
        return growing.upscale2d(images, 2 ** (r_log2 - top)).astype(jnp.promote_types(self.dtype, jnp.float32))


class Discriminator(nn.Module):
    """``D_paper``: images [N, R, R, num_channels] -> scores [N, 1] (and label logits [N, label_size]).

    ``labels`` are accepted for the common interface and not used (the official D has no label
    input; its AC-GAN head predicts them: ``return_label_logits=True``). ``mbstd_num_shards``
    groups the minibatch-stddev layer within each of that many equal slices of the batch (one per
    data-parallel device, as each official GPU groups its own minibatch).
    """

    num_channels: int = 1
    resolution: int = 32
    label_size: int = 0
    fmap_base: int = 8192
    fmap_decay: float = 1.0
    fmap_max: int = 512
    use_wscale: bool = True
    mbstd_group_size: int = 4
    fused_scale: bool = True
    mbstd_num_shards: int = 1
    dtype: Dtype = jnp.float32

    def nf(self, stage: int) -> int:
        return nf(stage, self.fmap_base, self.fmap_decay, self.fmap_max)

    @property
    def c_dim(self) -> int:
        return int(self.label_size)

    @nn.compact
    def __call__(self, images: jax.Array, labels: jax.Array | None = None, lod: Any = 0.0,
                 max_resolution: int | None = None, return_label_logits: bool = False):
        """Scores [N, 1], or ``(scores [N, 1], label_logits [N, label_size])``."""
        r_log2 = log2_resolution(int(self.resolution), "progan.Discriminator: resolution")
        r, ch = 2 ** r_log2, int(self.num_channels)
        if images.ndim != 4 or tuple(images.shape[1:]) != (r, r, ch):
            raise ValueError(f"progan.Discriminator expects images [N, {r}, {r}, {ch}] (NHWC), got {tuple(images.shape)}")
        top = _top_level(r_log2, max_resolution, "progan.Discriminator")
        lod = _lod_input(lod, r_log2, top)
        img = images.astype(self.dtype)
        kw = {"use_wscale": self.use_wscale, "dtype": self.dtype}

        def fromrgb(res: int) -> jax.Array:
            x = growing.downscale2d(img, 2 ** (r_log2 - res))  # one 2**lod box pool, as the official
            return leaky_relu(_Layer("conv", self.nf(res - 1), kernel=1, name=f"FromRGB_lod{r_log2 - res}", **kw)(x))

        def block(scope: nn.Module, x: jax.Array, res: int) -> jax.Array:
            if res >= 3:
                x = leaky_relu(_Layer("conv", self.nf(res - 1), name="Conv0", **kw)(x))
                if self.fused_scale:
                    return leaky_relu(_Layer("conv_down", self.nf(res - 2), name="Conv1_down", **kw)(x))
                return growing.downscale2d(leaky_relu(_Layer("conv", self.nf(res - 2), name="Conv1", **kw)(x)))
            if self.mbstd_group_size > 1:
                x = minibatch_std(x, self.mbstd_group_size, 1, num_shards=self.mbstd_num_shards)
            x = leaky_relu(_Layer("conv", self.nf(1), name="Conv", **kw)(x))
            x = leaky_relu(_Layer("dense", self.nf(0), name="Dense0", **kw)(x))
            return _Layer("dense", 1 + self.label_size, gain=1.0, name="Dense1", **kw)(x)

        x = fromrgb(top)
        for res in range(top, 2, -1):
            x = _Scope(lambda s, v, res=res: block(s, v, res), name=f"{2 ** res}x{2 ** res}")(x)
            t = lod - np.float32(r_log2 - res)
            x = fade(x, fromrgb(res - 1), t)
        out = _Scope(lambda s, v: block(s, v, 2), name="4x4")(x).astype(jnp.promote_types(self.dtype, jnp.float32))
        scores, logits = out[:, :1], out[:, 1:]
        return (scores, logits) if return_label_logits else scores
