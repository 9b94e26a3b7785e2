"""StyleGAN (Karras et al. 2019, arXiv 1812.04948) as NVIDIA's official TensorFlow code defines it.

One class per build function of NVlabs/stylegan ``training/networks_stylegan.py``:
:class:`Generator` is ``G_style`` (with its components :class:`Mapping` = ``G_mapping`` and
:class:`Synthesis` = ``G_synthesis``), :class:`Discriminator` is ``D_basic``. Fields are the
official keyword arguments with the official defaults, so ``Generator(**static_kwargs)`` of a
published pickle builds the same network. Flax variable paths joined by ``/`` are the names the
official ``Network.vars`` reports (``params/G_synthesis/8x8/Conv0_up/weight`` is
``G_synthesis/8x8/Conv0_up/weight``; ``buffers/dlatent_avg`` is ``dlatent_avg``).

Layouts: activations NHWC; conv weights ``[k, k, in, out]`` and dense weights ``[in, out]`` as
TF stores them (the *stored* values: equalized-lr scales are applied at run time); ``const``
``[1, 4, 4, C]`` and ``noiseN`` ``[1, H, W, 1]`` (TF: ``[1, C, 4, 4]`` and ``[1, 1, H, W]``).
D's ``4x4/Dense0/weight`` keeps TF's rows in NCHW flatten order; the activations are flattened
in that order. Collections: ``params`` (trainables) and ``buffers`` (``dlatent_avg``,
``G_synthesis/noise0..``). The official ``lod`` variables are a call argument here.

Level of detail ``lod`` (a float, may be traced) fades resolutions in as the official 'linear'
structure: ``img = lerp_clip(ToRGB(x_res), upscale2d(img), lod - (R_log2 - res))`` in G and
``x = lerp_clip(block(x), FromRGB(downscale2d(img)), lod - lod_res)`` in D; outputs and inputs are
always full size. The static ``max_resolution`` (default: all) skips the resolutions above it, whose
weight is exactly zero for every ``lod >= log2(R / max_resolution)`` (a smaller ``lod`` acts as that
bound): what the official 'recursive' structure skips with ``tf.cond``; both give the official numbers.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gan_jax.nn.growing import (
    conv2d_downscale2d,
    conv2d_same,
    downscale2d,
    lerp,
    lerp_clip,
    upscale2d,
    upscale2d_conv2d,
)
from gan_jax.models.shapes import log2_resolution, nf
from gan_jax.nn.minibatch_std import minibatch_std
from gan_jax.nn.upfirdn2d import upfirdn2d

Dtype = Any
NOISE_MODES = ("random", "const", "none", "given")
STRUCTURES = ("auto", "linear", "recursive", "fixed")


class _Default:
    """Sentinel: "use the network's own keyword" (official G_style: psi 0.7, cutoff 8)."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = _Default()


# ----------------------------------------------------------------------------------------------
# Primitive ops (NHWC).


def num_layers_for(resolution: int) -> int:
    """Style inputs of the synthesis network: ``2 * log2(resolution) - 2`` (two per resolution)."""
    return 2 * log2_resolution(resolution) - 2


def activation(name: str):
    """``(fn, gain)`` of the official nonlinearity table: lrelu ``max(x, 0.2 x)`` or relu, gain sqrt(2).

    lrelu is written as ``where(x >= 0, x, 0.2 x)`` so that its derivative is the official custom
    gradient ``where(y >= 0, dy, 0.2 dy)``, also at 0.
    """
    if name == "lrelu":
        return (lambda x: jnp.where(x >= 0, x, x * jnp.asarray(0.2, x.dtype))), np.sqrt(2)
    if name == "relu":
        return jax.nn.relu, np.sqrt(2)
    raise ValueError(f"nonlinearity must be 'lrelu' or 'relu', got {name!r}")


def blur2d(x: jax.Array, f: Sequence[float] | None = (1, 2, 1), normalize: bool = True) -> jax.Array:
    """Official ``blur2d``: depthwise correlation of ``x`` [N, H, W, C] with ``outer(f, f) / sum``, TF 'SAME'.

    TF pads ``(k - 1) // 2`` before and the rest after (zeros; edges are not renormalised). For
    the symmetric odd filters the official configs use, autodiff's gradient is the official
    custom gradient (blur with the flipped filter).
    """
    if not f:
        return x
    k = np.asarray(f, np.float32)
    if k.ndim == 1:
        k = np.outer(k, k)
    if normalize:
        k = k / np.sum(k)
    if k.shape == (1, 1) and k[0, 0] == 1:
        return x
    kh, kw = k.shape
    pad = [(kw - 1) // 2, kw - 1 - (kw - 1) // 2, (kh - 1) // 2, kh - 1 - (kh - 1) // 2]
    y = upfirdn2d(x.astype(jnp.float32), k, padding=pad, flip_filter=True)  # correlation, as depthwise_conv2d
    return y.astype(x.dtype)


def instance_norm(x: jax.Array, epsilon: float = 1e-8) -> jax.Array:
    """``x -= mean_HW(x); x *= rsqrt(mean_HW(x^2) + eps)`` in float32 (official, eps 1e-8, no affine)."""
    y = x.astype(jnp.float32)
    y = y - jnp.mean(y, axis=(1, 2), keepdims=True)
    y = y * lax.rsqrt(jnp.mean(jnp.square(y), axis=(1, 2), keepdims=True) + np.float32(epsilon))
    return y.astype(x.dtype)


def pixel_norm(x: jax.Array, axis: int = -1, epsilon: float = 1e-8) -> jax.Array:
    """``x * rsqrt(mean(x^2, axis) + eps)`` (official ``pixel_norm``; channels are the last axis in NHWC)."""
    return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + jnp.asarray(epsilon, x.dtype))


def truncate(dlatents: jax.Array, dlatent_avg: jax.Array, psi: Any, cutoff: Any) -> jax.Array:
    """Official truncation trick: ``avg + (w - avg) * coef``, ``coef = psi`` for layers ``< cutoff`` else 1.

    ``dlatents`` [N, L, D], ``dlatent_avg`` [D]; ``psi`` and ``cutoff`` may be traced scalars.
    """
    layer_idx = np.arange(dlatents.shape[1])[None, :, None]
    ones = np.ones(layer_idx.shape, np.float32)
    coefs = jnp.where(layer_idx < cutoff, jnp.asarray(psi, jnp.float32) * ones, ones)
    return lerp(dlatent_avg, dlatents, coefs)


def truncation_active(psi: Any, cutoff: Any) -> bool:
    """Whether G_style applies truncation: off when psi is None or == 1, or cutoff is None or <= 0."""
    if psi is None or cutoff is None:
        return False
    if isinstance(psi, (int, float, np.number)) and float(psi) == 1:
        return False
    return not (isinstance(cutoff, (int, float, np.number)) and cutoff <= 0)


def style_mixing_cutoff(key: jax.Array, num_layers: int, lod: Any, prob: float) -> jax.Array:
    """G_style's mixing cutoff: ``randint[1, cur_layers)`` with probability ``prob``, else ``cur_layers``,
    ``cur_layers = num_layers - 2 * int(lod)``. Returns an int32 scalar."""
    k_u, k_cut = jax.random.split(key)
    cur_layers = num_layers - 2 * jnp.asarray(lod, jnp.float32).astype(jnp.int32)
    cut = jax.random.randint(k_cut, (), 1, jnp.maximum(cur_layers, 2))
    return jnp.where(jax.random.uniform(k_u, ()) < prob, cut, cur_layers)


def mix_styles(dlatents: jax.Array, dlatents2: jax.Array, cutoff: Any) -> jax.Array:
    """Layers ``< cutoff`` from ``dlatents``, the rest from ``dlatents2`` ([N, L, D]; cutoff scalar or [N])."""
    layer_idx = jnp.arange(dlatents.shape[1])[None, :, None]
    cutoff = jnp.asarray(cutoff)
    cutoff = cutoff.reshape(-1, 1, 1) if cutoff.ndim == 1 else cutoff
    return jnp.where(layer_idx < cutoff, dlatents, dlatents2)


def _check_structure(structure: str) -> str:
    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {STRUCTURES}, got {structure!r}")
    return structure


def _check_fused(fused_scale: Any) -> None:
    if fused_scale not in (True, False, "auto"):
        raise ValueError(f"fused_scale must be True, False or 'auto', got {fused_scale!r}")


def _skipped_lods(max_resolution: int | None, resolution_log2: int, who: str) -> int:
    """``log2(R / max_resolution)``: the levels above ``max_resolution`` that are not computed."""
    if max_resolution is None:
        return 0
    top = log2_resolution(int(max_resolution))
    if top > resolution_log2:
        raise ValueError(f"{who}: max_resolution={max_resolution} exceeds the network's resolution {2**resolution_log2}")
    return resolution_log2 - top


# ----------------------------------------------------------------------------------------------
# Equalized-lr variables of one TF variable scope.


def get_weight(mdl: nn.Module, shape: Sequence[int], gain: float, use_wscale: bool, lrmul: float = 1.0) -> jax.Array:
    """Official ``get_weight``: the stored ``weight`` times ``gain / sqrt(fan_in) * lrmul`` (wscale) or ``lrmul``.

    ``fan_in = prod(shape[:-1])``; the stored value is initialised N(0, 1/lrmul) (wscale) or
    N(0, he_std/lrmul). Must be called from ``mdl``'s compact method.
    """
    shape = tuple(int(s) for s in shape)
    he_std = gain / np.sqrt(np.prod(shape[:-1]))
    init_std, coef = (1.0 / lrmul, he_std * lrmul) if use_wscale else (he_std / lrmul, lrmul)
    w = mdl.param("weight", lambda k, s: jax.random.normal(k, s, jnp.float32) * np.float32(init_std), shape)
    return w * np.float32(coef)


def get_bias(mdl: nn.Module, channels: int, lrmul: float = 1.0) -> jax.Array:
    """Official ``apply_bias``'s variable: the stored ``bias`` [C] (init 0) times ``lrmul``."""
    return mdl.param("bias", nn.initializers.zeros, (int(channels),), jnp.float32) * np.float32(lrmul)


class _Dense(nn.Module):
    """``act(x @ W + b)`` of one scope (``Dense0``, ``4x4/Dense1``...): x [N, ...] -> [N, fmaps]."""

    fmaps: int
    gain: float
    use_wscale: bool
    lrmul: float = 1.0
    act: str | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        w = get_weight(self, (x.shape[1], self.fmaps), self.gain, self.use_wscale, self.lrmul)
        x = x.astype(self.dtype) @ w.astype(self.dtype)
        x = x + get_bias(self, self.fmaps, self.lrmul).astype(self.dtype)
        return activation(self.act)[0](x) if self.act else x


class _Conv(nn.Module):
    """One conv scope: [blur] -> conv (optionally fused / followed by 2x down) -> bias -> [act].

    ``down``: 'none', or the D's ``Conv1_down`` (blur -> conv -> downscale, or blur -> fused conv).
    """

    fmaps: int
    kernel: int
    gain: float
    use_wscale: bool
    act: str | None = None
    down: bool = False
    fused: bool = False
    blur_filter: Sequence[float] | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.down:
            x = blur2d(x, self.blur_filter)
        w = get_weight(self, (self.kernel, self.kernel, x.shape[-1], self.fmaps), self.gain, self.use_wscale)
        w = w.astype(self.dtype)
        x = x.astype(self.dtype)
        if self.down and self.fused:
            x = conv2d_downscale2d(x, w)
        elif self.down:
            x = downscale2d(conv2d_same(x, w))
        else:
            x = conv2d_same(x, w)
        x = x + get_bias(self, self.fmaps).astype(self.dtype)
        return activation(self.act)[0](x) if self.act else x


# ----------------------------------------------------------------------------------------------
# Mapping network (G_mapping).


class Mapping(nn.Module):
    """``G_mapping``: latents [N, latent_size] (+ labels [N, label_size]) -> dlatents [N, dlatent_broadcast, D].

    Labels: ``y = labels @ LabelConcat/weight`` is concatenated to z before the pixel norm, as upstream.
    """

    latent_size: int = 512
    label_size: int = 0
    dlatent_size: int = 512
    dlatent_broadcast: int | None = None
    mapping_layers: int = 8
    mapping_fmaps: int = 512
    mapping_lrmul: float = 0.01  # paper sec. C / official default: 100x lower lr in the mapping network
    mapping_nonlinearity: str = "lrelu"
    use_wscale: bool = True
    normalize_latents: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, latents: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        _, gain = activation(self.mapping_nonlinearity)
        if latents.ndim != 2 or latents.shape[1] != self.latent_size:
            raise ValueError(f"G_mapping expects latents of shape [N, {self.latent_size}], got {tuple(latents.shape)}")
        x = latents.astype(jnp.float32)
        labels = check_labels(labels, self.label_size, x.shape[0], "G_mapping")
        if self.label_size:
            w = LabelConcat(self.label_size, self.latent_size, name="LabelConcat")()
            x = jnp.concatenate([x, labels @ w], axis=1)
        if self.normalize_latents:
            x = pixel_norm(x, axis=1)
        self.sow("intermediates", "after_pixelnorm", x)
        for idx in range(self.mapping_layers):
            fmaps = self.dlatent_size if idx == self.mapping_layers - 1 else self.mapping_fmaps
            x = _Dense(fmaps, gain, self.use_wscale, self.mapping_lrmul, act=self.mapping_nonlinearity,
                       dtype=jnp.float32, name=f"Dense{idx}")(x)
        if self.dlatent_broadcast is not None:
            x = jnp.broadcast_to(x[:, None, :], (x.shape[0], self.dlatent_broadcast, x.shape[1]))
        return x


class LabelConcat(nn.Module):
    """The label embedding ``weight`` [label_size, latent_size] (init N(0, 1), no runtime scale)."""

    label_size: int
    latent_size: int

    @nn.compact
    def __call__(self) -> jax.Array:
        return self.param("weight", nn.initializers.normal(1.0), (self.label_size, self.latent_size), jnp.float32)


def check_labels(labels: jax.Array | None, label_size: int, n: int, who: str) -> jax.Array | None:
    """float32 [N, label_size] (or None when unconditional); a clear error otherwise."""
    if label_size == 0:
        if labels is not None and np.size(labels) != 0:
            raise ValueError(f"{who} is unconditional (label_size=0) but got labels of shape {tuple(np.shape(labels))}; pass None")
        return None
    if labels is None or tuple(labels.shape) != (n, label_size):
        raise ValueError(f"{who} is conditional and expects labels of shape [{n}, {label_size}], "
                         f"got {None if labels is None else tuple(labels.shape)}")
    return labels.astype(jnp.float32)


# ----------------------------------------------------------------------------------------------
# Synthesis network (G_synthesis).


class _Noise(nn.Module):
    """Scope ``Noise``: ``x + noise * weight[c]``, one noise map [N or 1, H, W, 1] for all channels."""

    @nn.compact
    def __call__(self, x: jax.Array, noise: jax.Array | None) -> jax.Array:
        weight = self.param("weight", nn.initializers.zeros, (x.shape[-1],), jnp.float32)
        if noise is None:
            return x
        return x + noise.astype(x.dtype) * weight.astype(x.dtype)


class _StyleMod(nn.Module):
    """Scope ``StyleMod``: ``style = dense(w, 2C, gain 1) + bias``; ``x * (style[:C] + 1) + style[C:]``."""

    use_wscale: bool

    @nn.compact
    def __call__(self, x: jax.Array, dlatent: jax.Array) -> jax.Array:
        c = x.shape[-1]
        w = get_weight(self, (dlatent.shape[-1], 2 * c), 1.0, self.use_wscale)
        style = dlatent.astype(jnp.float32) @ w + get_bias(self, 2 * c)
        self.sow("intermediates", "style", style)
        style = style.astype(x.dtype)[:, None, None, :]
        return x * (style[..., :c] + 1) + style[..., c:]


class _SynthesisLayer(nn.Module):
    """One layer scope of G_synthesis (``Const``, ``Dense``, ``Conv``, ``Conv0_up``, ``Conv1``) and its epilogue.

    ``kind``: 'const' (learned [1, 4, 4, C], tiled), 'dense' (``const_input_layer=False``),
    'conv' (3x3) or 'up' (2x up-conv then blur). Epilogue: noise -> bias -> act -> [pixel norm]
    -> [instance norm] -> [style mod].
    """

    kind: str
    fmaps: int
    use_wscale: bool = True
    nonlinearity: str = "lrelu"
    use_noise: bool = True
    use_pixel_norm: bool = False
    use_instance_norm: bool = True
    use_styles: bool = True
    fused: bool = False
    blur_filter: Sequence[float] | None = (1, 2, 1)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array | None, dlatent: jax.Array, noise: jax.Array | None) -> jax.Array:
        act, gain = activation(self.nonlinearity)
        n = dlatent.shape[0]
        if self.kind == "const":
            const = self.param("const", nn.initializers.ones, (1, 4, 4, self.fmaps), jnp.float32)
            x = jnp.broadcast_to(const.astype(self.dtype), (n, 4, 4, self.fmaps))
        elif self.kind == "dense":
            # Official: gain / 4 "to match the official implementation of Progressive GAN"; NCHW reshape.
            w = get_weight(self, (dlatent.shape[-1], self.fmaps * 16), gain / 4, self.use_wscale)
            x = (dlatent.astype(jnp.float32) @ w).reshape(n, self.fmaps, 4, 4).transpose(0, 2, 3, 1).astype(self.dtype)
        else:
            w = get_weight(self, (3, 3, x.shape[-1], self.fmaps), gain, self.use_wscale).astype(self.dtype)
            x = x.astype(self.dtype)
            if self.kind == "conv":
                x = conv2d_same(x, w)
            elif self.kind == "up":
                x = upscale2d_conv2d(x, w) if self.fused else conv2d_same(upscale2d(x), w)
                self.sow("intermediates", "upconv", x)
                x = blur2d(x, self.blur_filter)
                self.sow("intermediates", "after_blur", x)
            else:
                raise ValueError(f"unknown synthesis layer kind {self.kind!r}")
        self.sow("intermediates", "after_noise_in", x)
        if self.use_noise:
            x = _Noise(name="Noise")(x, noise)
        self.sow("intermediates", "after_noise", x)
        x = x + get_bias(self, self.fmaps).astype(x.dtype)
        self.sow("intermediates", "after_bias", x)
        x = act(x)
        self.sow("intermediates", "after_lrelu", x)
        if self.use_pixel_norm:
            x = pixel_norm(x)
        if self.use_instance_norm:
            x = instance_norm(x)
        self.sow("intermediates", "after_instnorm", x)
        if self.use_styles:
            x = _StyleMod(self.use_wscale, name="StyleMod")(x, dlatent)
        self.sow("intermediates", "after_stylemod", x)
        return x


class _Block(nn.Module):
    """A resolution scope of G_synthesis (``4x4``: Const/Dense + Conv; ``RxR``: Conv0_up + Conv1)."""

    res_log2: int
    fmaps: int
    layer: dict
    fused: bool = False

    @nn.compact
    def __call__(self, x, dlatents: jax.Array, noises: Sequence[jax.Array | None], first_kind: str = "const"):
        if self.res_log2 == 2:
            name0 = "Const" if first_kind == "const" else "Dense"
            x = _SynthesisLayer(first_kind, self.fmaps, **self.layer, name=name0)(None, dlatents[:, 0], noises[0])
            return _SynthesisLayer("conv", self.fmaps, **self.layer, name="Conv")(x, dlatents[:, 1], noises[1])
        i = 2 * self.res_log2 - 4
        x = _SynthesisLayer("up", self.fmaps, fused=self.fused, **self.layer, name="Conv0_up")(x, dlatents[:, i], noises[i])
        return _SynthesisLayer("conv", self.fmaps, **self.layer, name="Conv1")(x, dlatents[:, i + 1], noises[i + 1])


class _ToRGB(nn.Module):
    """``ToRGB_lod{k}``: 1x1 conv (gain 1) + bias, no activation."""

    num_channels: int
    use_wscale: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w = get_weight(self, (1, 1, x.shape[-1], self.num_channels), 1.0, self.use_wscale)
        y = conv2d_same(x.astype(jnp.float32), w) + get_bias(self, self.num_channels)
        self.sow("intermediates", "out", y)
        return y


class Synthesis(nn.Module):
    """``G_synthesis``: dlatents [N, num_styles, dlatent_size] -> images [N, R, R, num_channels] (float32).

    ``noise_mode``: 'random' (N(0, 1) per sample and call from the 'noise' rng; official
    ``randomize_noise=True``), 'const' (the stored ``noise{i}``; ``randomize_noise=False``),
    'none' (no noise) or 'given' (``noise_inputs``: one N(0, 1) array [N, H, W, 1] per layer).
    """

    dlatent_size: int = 512
    num_channels: int = 3
    resolution: int = 1024
    fmap_base: int = 8192
    fmap_decay: float = 1.0
    fmap_max: int = 512
    use_styles: bool = True
    const_input_layer: bool = True
    use_noise: bool = True
    randomize_noise: bool = True  # accepted for the kwargs; the call's noise_mode decides
    nonlinearity: str = "lrelu"
    use_wscale: bool = True
    use_pixel_norm: bool = False
    use_instance_norm: bool = True
    fused_scale: Any = "auto"
    blur_filter: Sequence[float] | None = (1, 2, 1)
    structure: str = "auto"
    dtype: Dtype = jnp.float32

    @property
    def num_layers(self) -> int:
        return num_layers_for(self.resolution)

    @property
    def num_styles(self) -> int:
        return self.num_layers if self.use_styles else 1

    def fused_at(self, res_log2: int) -> bool:
        """Whether the up-conv into ``2**res_log2`` is fused ('auto': output resolution >= 128)."""
        _check_fused(self.fused_scale)
        return (2**res_log2 >= 128) if self.fused_scale == "auto" else bool(self.fused_scale)

    @nn.compact
    def __call__(self, dlatents: jax.Array, lod: Any = 0.0, noise_mode: str = "random",
                 noise_inputs: Sequence[jax.Array] | None = None, max_resolution: int | None = None) -> jax.Array:
        r_log2 = log2_resolution(self.resolution)
        structure = _check_structure(self.structure)
        min_lod = 0 if structure == "fixed" else _skipped_lods(max_resolution, r_log2, type(self).__name__)
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if dlatents.ndim != 3 or dlatents.shape[1:] != (self.num_styles, self.dlatent_size):
            raise ValueError(f"G_synthesis expects dlatents of shape [N, {self.num_styles}, {self.dlatent_size}], "
                             f"got {tuple(dlatents.shape)}")
        dlatents = dlatents.astype(jnp.float32)
        n = dlatents.shape[0]
        if not self.use_styles:  # every layer reads the single style input
            dlatents = jnp.broadcast_to(dlatents, (n, self.num_layers, self.dlatent_size))

        noises: list[jax.Array | None] = [None] * self.num_layers
        if self.use_noise:
            if noise_mode == "given" and (noise_inputs is None or len(noise_inputs) != self.num_layers):
                raise ValueError(f"noise_mode='given' needs noise_inputs: {self.num_layers} arrays [N, H, W, 1], "
                                 f"got {None if noise_inputs is None else len(noise_inputs)}")
            if noise_mode == "random" and not self.has_rng("noise") and not self.is_initializing():
                raise ValueError("noise_mode='random' needs a 'noise' PRNG key: apply(..., rngs={'noise': key})")
            for i in range(self.num_layers):
                size = 2 ** (i // 2 + 2)
                stored = self.variable("buffers", f"noise{i}", lambda s=size: jax.random.normal(
                    self.make_rng("params"), (1, s, s, 1), jnp.float32))
                if noise_mode == "const":
                    noises[i] = stored.value
                elif noise_mode == "given":
                    noises[i] = jnp.asarray(noise_inputs[i], jnp.float32).reshape(n, size, size, 1)
                elif noise_mode == "random" and self.has_rng("noise"):
                    noises[i] = jax.random.normal(self.make_rng("noise"), (n, size, size, 1), jnp.float32)

        def fmaps(res_log2: int) -> int:
            return nf(res_log2 - 1, self.fmap_base, self.fmap_decay, self.fmap_max)

        layer = dict(use_wscale=self.use_wscale, nonlinearity=self.nonlinearity, use_noise=self.use_noise,
                     use_pixel_norm=self.use_pixel_norm, use_instance_norm=self.use_instance_norm,
                     use_styles=self.use_styles, blur_filter=self.blur_filter, dtype=self.dtype)
        first = "const" if self.const_input_layer else "dense"
        x = _Block(2, fmaps(2), layer, name="4x4")(None, dlatents, noises, first_kind=first)

        def torgb(res_log2: int, x: jax.Array) -> jax.Array:
            return _ToRGB(self.num_channels, self.use_wscale, name=f"ToRGB_lod{r_log2 - res_log2}")(x)

        if structure == "fixed":
            for res in range(3, r_log2 + 1):
                x = _Block(res, fmaps(res), layer, fused=self.fused_at(res), name=f"{2**res}x{2**res}")(x, dlatents, noises)
            return torgb(r_log2, x)

        lod = jnp.asarray(lod, jnp.float32)
        top = r_log2 - min_lod
        img = torgb(2, x)
        for res in range(3, top + 1):
            x = _Block(res, fmaps(res), layer, fused=self.fused_at(res), name=f"{2**res}x{2**res}")(x, dlatents, noises)
            img = lerp_clip(torgb(res, x), upscale2d(img), lod - (r_log2 - res))
        return upscale2d(img, 2**min_lod)


# ----------------------------------------------------------------------------------------------
# The style-based generator (G_style).


class Generator(nn.Module):
    """``G_style``: (latents [N, latent_size], labels [N, label_size] or None) -> images [N, R, R, C].

    ``apply(v, z, c, truncation_psi=, truncation_cutoff=, noise_mode=, lod=)`` runs mapping,
    truncation and synthesis as the official evaluation call (defaults psi 0.7, cutoff 8: an
    evaluation call without arguments is truncated; psi None or 1, cutoff None or <= 0 disable
    it). ``method='mapping'`` returns the dlatents [N, num_layers, dlatent_size] that call feeds to
    the synthesis (truncated likewise); ``method='synthesis'`` maps dlatents to images.
    ``is_training=True`` (official training mode; needs ``mutable=['buffers']``) disables truncation
    and moves ``dlatent_avg`` towards the batch mean of ``dlatents[:, 0]`` with ``dlatent_avg_beta``:
    ``avg <- batch_avg + (avg - batch_avg) * beta``.
    Style mixing is the recipe's (:func:`style_mixing_cutoff`, :func:`mix_styles`).
    """

    # G_style.
    truncation_psi: float | None = 0.7
    truncation_cutoff: int | None = 8
    truncation_psi_val: float | None = None
    truncation_cutoff_val: int | None = None
    dlatent_avg_beta: float | None = 0.995
    style_mixing_prob: float | None = 0.9
    # Shared by the components (the training loop passes the first three).
    num_channels: int = 3
    resolution: int = 1024
    label_size: int = 0
    dlatent_size: int = 512
    use_wscale: bool = True
    # G_mapping.
    latent_size: int = 512
    mapping_layers: int = 8
    mapping_fmaps: int = 512
    mapping_lrmul: float = 0.01
    mapping_nonlinearity: str = "lrelu"
    normalize_latents: bool = True
    # G_synthesis.
    fmap_base: int = 8192
    fmap_decay: float = 1.0
    fmap_max: int = 512
    use_styles: bool = True
    const_input_layer: bool = True
    use_noise: bool = True
    randomize_noise: bool = True
    nonlinearity: str = "lrelu"
    use_pixel_norm: bool = False
    use_instance_norm: bool = True
    fused_scale: Any = "auto"
    blur_filter: Sequence[float] | None = (1, 2, 1)
    structure: str = "auto"
    dtype: Dtype = jnp.float32

    @property
    def num_layers(self) -> int:
        """Style inputs (``num_ws``): ``2 * log2(resolution) - 2``, or 1 without ``use_styles``."""
        return num_layers_for(self.resolution) if self.use_styles else 1

    def _synthesis_module(self) -> Synthesis:
        return Synthesis(
            dlatent_size=self.dlatent_size, num_channels=self.num_channels, resolution=self.resolution,
            fmap_base=self.fmap_base, fmap_decay=self.fmap_decay, fmap_max=self.fmap_max, use_styles=self.use_styles,
            const_input_layer=self.const_input_layer, use_noise=self.use_noise, randomize_noise=self.randomize_noise,
            nonlinearity=self.nonlinearity, use_wscale=self.use_wscale, use_pixel_norm=self.use_pixel_norm,
            use_instance_norm=self.use_instance_norm, fused_scale=self.fused_scale,
            blur_filter=None if self.blur_filter is None else tuple(self.blur_filter), structure=self.structure,
            dtype=self.dtype, name="G_synthesis")

    @nn.compact
    def __call__(
        self,
        latents: jax.Array | None,
        labels: jax.Array | None = None,
        truncation_psi: Any = DEFAULT,
        truncation_cutoff: Any = DEFAULT,
        noise_mode: str = "random",
        lod: Any = 0.0,
        noise_inputs: Sequence[jax.Array] | None = None,
        is_training: bool = False,
        update_dlatent_avg: bool = True,
        max_resolution: int | None = None,
        dlatents: jax.Array | None = None,
        _part: str = "all",
    ) -> jax.Array:
        # One compact method builds both components; `mapping` and `synthesis` dispatch through it.
        if _part in ("all", "mapping"):
            w = Mapping(
                latent_size=self.latent_size, label_size=self.label_size, dlatent_size=self.dlatent_size,
                dlatent_broadcast=self.num_layers, mapping_layers=self.mapping_layers, mapping_fmaps=self.mapping_fmaps,
                mapping_lrmul=self.mapping_lrmul, mapping_nonlinearity=self.mapping_nonlinearity,
                use_wscale=self.use_wscale, normalize_latents=self.normalize_latents, name="G_mapping",
            )(latents, labels)
            avg = self.variable("buffers", "dlatent_avg", jnp.zeros, (self.dlatent_size,), jnp.float32)
            if is_training:  # official: no truncation; dlatent_avg follows the batch mean of dlatents[:, 0]
                if update_dlatent_avg and self.dlatent_avg_beta is not None and self.dlatent_avg_beta != 1:
                    batch_avg = jnp.mean(jax.lax.stop_gradient(w[:, 0]), axis=0)
                    avg.value = lerp(batch_avg, avg.value, np.float32(self.dlatent_avg_beta))
                psi = cutoff = None
            else:
                psi = self.truncation_psi if truncation_psi is DEFAULT else truncation_psi
                cutoff = self.truncation_cutoff if truncation_cutoff is DEFAULT else truncation_cutoff
            if truncation_active(psi, cutoff):
                w = truncate(w, avg.value, psi, cutoff)
            if _part == "mapping":
                return w
            dlatents = w
        return self._synthesis_module()(dlatents, lod=lod, noise_mode=noise_mode, noise_inputs=noise_inputs,
                                        max_resolution=max_resolution)

    def mapping(self, latents: jax.Array, labels: jax.Array | None = None, truncation_psi: Any = DEFAULT,
                truncation_cutoff: Any = DEFAULT, is_training: bool = False, update_dlatent_avg: bool = True) -> jax.Array:
        """latents [N, latent_size] -> dlatents [N, num_layers, dlatent_size] (truncated as G_style).

        ``is_training=True``: never truncated, and (unless ``update_dlatent_avg=False``, e.g. for
        the second latents of style mixing) ``dlatent_avg`` is updated (``mutable=['buffers']``).
        """
        return self(latents, labels, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                    is_training=is_training, update_dlatent_avg=update_dlatent_avg, _part="mapping")

    def synthesis(self, dlatents: jax.Array, noise_mode: str = "random", lod: Any = 0.0,
                  noise_inputs: Sequence[jax.Array] | None = None, max_resolution: int | None = None) -> jax.Array:
        """dlatents [N, num_layers, dlatent_size] -> images [N, R, R, num_channels]."""
        return self(None, None, noise_mode=noise_mode, lod=lod, noise_inputs=noise_inputs, max_resolution=max_resolution,
                    dlatents=dlatents, _part="synthesis")


# ----------------------------------------------------------------------------------------------
# Discriminator (D_basic).


class _DBlock(nn.Module):
    """A resolution scope of D_basic: ``RxR`` (Conv0, Conv1_down) or ``4x4`` (mbstd, Conv, Dense0, Dense1)."""

    res_log2: int
    fmaps0: int
    fmaps1: int
    use_wscale: bool
    nonlinearity: str
    fused: bool = False
    blur_filter: Sequence[float] | None = (1, 2, 1)
    mbstd_group_size: int = 4
    mbstd_num_features: int = 1
    mbstd_num_shards: int = 1
    label_size: int = 0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _, gain = activation(self.nonlinearity)
        act = self.nonlinearity
        if self.res_log2 >= 3:
            x = _Conv(self.fmaps0, 3, gain, self.use_wscale, act=act, dtype=self.dtype, name="Conv0")(x)
            return _Conv(self.fmaps1, 3, gain, self.use_wscale, act=act, down=True, fused=self.fused,
                         blur_filter=self.blur_filter, dtype=self.dtype, name="Conv1_down")(x)
        if self.mbstd_group_size > 1:
            x = minibatch_std(x, self.mbstd_group_size, self.mbstd_num_features, self.mbstd_num_shards)
        x = _Conv(self.fmaps0, 3, gain, self.use_wscale, act=act, dtype=self.dtype, name="Conv")(x)
        x = jnp.transpose(x, (0, 3, 1, 2))  # the official dense flattens NCHW
        x = _Dense(self.fmaps1, gain, self.use_wscale, act=act, dtype=jnp.float32, name="Dense0")(x.astype(jnp.float32))
        return _Dense(max(self.label_size, 1), 1.0, self.use_wscale, dtype=jnp.float32, name="Dense1")(x)


class Discriminator(nn.Module):
    """``D_basic``: images [N, R, R, num_channels] (NHWC, in [-1, 1]) (+ labels) -> scores [N, 1] (float32).

    ``lod`` fades from ``FromRGB`` of the downscaled image exactly as the official 'linear'
    structure. With labels, the ``max(label_size, 1)`` outputs are summed against the labels
    (official ``LabelSwitch``). ``mbstd_num_shards`` groups the minibatch-stddev statistic within
    that many equal slices of the batch (one per device, as each official GPU has its own).
    """

    num_channels: int = 1
    resolution: int = 32
    label_size: int = 0
    fmap_base: int = 8192
    fmap_decay: float = 1.0
    fmap_max: int = 512
    nonlinearity: str = "lrelu"
    use_wscale: bool = True
    mbstd_group_size: int = 4
    mbstd_num_features: int = 1
    fused_scale: Any = "auto"
    blur_filter: Sequence[float] | None = (1, 2, 1)
    structure: str = "auto"
    mbstd_num_shards: int = 1
    dtype: Dtype = jnp.float32

    def fused_at(self, res_log2: int) -> bool:
        """Whether the down-conv of block ``2**res_log2`` is fused ('auto': input resolution >= 128)."""
        _check_fused(self.fused_scale)
        return (2**res_log2 >= 128) if self.fused_scale == "auto" else bool(self.fused_scale)

    @nn.compact
    def __call__(self, images: jax.Array, labels: jax.Array | None = None, lod: Any = 0.0, max_resolution: int | None = None) -> jax.Array:
        r_log2 = log2_resolution(self.resolution)
        structure = _check_structure(self.structure)
        min_lod = 0 if structure == "fixed" else _skipped_lods(max_resolution, r_log2, type(self).__name__)
        r, ch = self.resolution, self.num_channels
        if images.ndim != 4 or tuple(images.shape[1:]) != (r, r, ch):
            hint = (" (it looks like NCHW; pass NHWC: images.transpose(0, 2, 3, 1))"
                    if images.ndim == 4 and tuple(images.shape[1:]) == (ch, r, r) else "")
            raise ValueError(f"D_basic expects images of shape [N, {r}, {r}, {ch}] (NHWC), got {tuple(images.shape)}{hint}")
        labels = check_labels(labels, self.label_size, images.shape[0], "D_basic")
        _, gain = activation(self.nonlinearity)

        def fmaps(stage: int) -> int:
            return nf(stage, self.fmap_base, self.fmap_decay, self.fmap_max)

        def fromrgb(img: jax.Array, res_log2: int) -> jax.Array:
            return _Conv(fmaps(res_log2 - 1), 1, gain, self.use_wscale, act=self.nonlinearity, dtype=self.dtype,
                         name=f"FromRGB_lod{r_log2 - res_log2}")(img)

        def block(x: jax.Array, res_log2: int) -> jax.Array:
            return _DBlock(res_log2, fmaps(res_log2 - 1), fmaps(res_log2 - 2), self.use_wscale, self.nonlinearity,
                           fused=self.fused_at(res_log2), blur_filter=self.blur_filter,
                           mbstd_group_size=self.mbstd_group_size, mbstd_num_features=self.mbstd_num_features,
                           mbstd_num_shards=self.mbstd_num_shards, label_size=self.label_size, dtype=self.dtype,
                           name=f"{2**res_log2}x{2**res_log2}")(x)

        img = images.astype(jnp.float32)
        if structure == "fixed":
            x = fromrgb(img, r_log2)
            for res in range(r_log2, 2, -1):
                x = block(x, res)
        else:
            lod = jnp.asarray(lod, jnp.float32)
            top = r_log2 - min_lod
            img = downscale2d(img, 2**min_lod)
            x = fromrgb(img, top)
            for res in range(top, 2, -1):
                x = block(x, res)
                img = downscale2d(img)
                x = lerp_clip(x, fromrgb(img, res - 1), lod - (r_log2 - res))
        scores = block(x, 2).astype(jnp.float32)
        if self.label_size:
            scores = jnp.sum(scores * labels, axis=1, keepdims=True)
        return scores
