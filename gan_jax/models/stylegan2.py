"""StyleGAN2 (Karras et al. 2020, arXiv 1912.04958) as NVIDIA's stylegan2-ada-pytorch defines it.

One class per official class of `training/networks.py`, with the same constructor arguments
(flattened: ``mapping_*`` fields are the official ``mapping_kwargs``) and the same child names, so
that a Flax variable path is the upstream ``state_dict`` name: ``params/synthesis/b8/conv0/weight``
is ``synthesis.b8.conv0.weight``. Arrays are NHWC; conv weights ``[kh, kw, in, out]``; FC weights
``[in, out]``. Variables: ``params`` (trainable) and ``buffers`` (``noise_const``, ``w_avg``).

Every size is computed from the constructor arguments: channels per resolution are
``min(channel_base // res, channel_max)``; ``num_ws = 2 * log2(img_resolution) - 2``.
``dtype`` is the compute dtype of the synthesis and discriminator blocks (parameters, the
mapping networks, styles, the image accumulation and the D epilogue stay float32; the official
code does the same with its fp16 blocks). NVIDIA's ``num_fp16_res`` is accepted and recorded; the
choice of reduced precision is ``dtype``.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.models.shapes import log2_resolution
from gan_jax.nn.bias_act import activation_spec, bias_act
from gan_jax.nn.equalized import Conv2dLayer, FullyConnectedLayer
from gan_jax.nn.minibatch_std import minibatch_std
from gan_jax.nn.modulated_conv import modulated_conv2d
from gan_jax.nn.noise import noise_input
from gan_jax.nn.normalize import normalize_2nd_moment
from gan_jax.nn.upfirdn2d import downsample2d, setup_filter, upsample2d

Dtype = Any
DEFAULT_FILTER = (1, 3, 3, 1)  # official resample_filter default
ARCHITECTURES = ("orig", "skip", "resnet")


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")


def channels_per_resolution(resolutions: Sequence[int], channel_base: int, channel_max: int) -> dict[int, int]:
    """``{res: min(channel_base // res, channel_max)}`` (official channels_dict)."""
    return {res: min(channel_base // res, channel_max) for res in resolutions}


def lerp(start: jax.Array, end: jax.Array, weight) -> jax.Array:
    """``torch.lerp``: ``start + w (end - start)`` for ``w < 0.5``, else ``end - (end - start)(1 - w)``."""
    weight = jnp.asarray(weight, jnp.float32)
    return jnp.where(weight < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight))


def check_labels(c: jax.Array | None, c_dim: int, n: int, who: str) -> jax.Array | None:
    """Validate the label input of a network with ``c_dim`` classes; returns float32 ``[N, c_dim]`` or None."""
    if c_dim == 0:
        if c is not None and np.size(c) != 0:
            raise ValueError(f"{who} is unconditional (c_dim=0) but got a label of shape {tuple(np.shape(c))}; pass c=None")
        return None
    if c is None:
        raise ValueError(f"{who} is conditional (c_dim={c_dim}) and needs labels c of shape [{n}, {c_dim}], got None")
    if tuple(c.shape) != (n, c_dim):
        raise ValueError(f"{who} expects labels c of shape [{n}, {c_dim}], got {tuple(c.shape)}")
    return c.astype(jnp.float32)


# ----------------------------------------------------------------------------------------------
# Mapping network.


class MappingNetwork(nn.Module):
    """z [N, z_dim] (and c [N, c_dim]) -> w [N, num_ws, w_dim] (or [N, w_dim] when num_ws is None)."""

    z_dim: int
    c_dim: int
    w_dim: int
    num_ws: int | None
    num_layers: int = 8
    embed_features: int | None = None
    layer_features: int | None = None
    activation: str = "lrelu"
    lr_multiplier: float = 0.01  # official default; the paper's 100x lower mapping lr (StyleGAN sec. C)
    w_avg_beta: float | None = 0.995  # official default; the decay of the tracked mean of W

    @nn.compact
    def __call__(
        self,
        z: jax.Array | None,
        c: jax.Array | None,
        truncation_psi: float | jax.Array = 1,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = False,
    ) -> jax.Array:
        embed_features = (self.w_dim if self.embed_features is None else self.embed_features) if self.c_dim else 0
        layer_features = self.w_dim if self.layer_features is None else self.layer_features
        features = [self.z_dim + embed_features] + [layer_features] * (self.num_layers - 1) + [self.w_dim]

        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"mapping expects z of shape [N, {self.z_dim}], got {None if z is None else tuple(z.shape)}")
            x = normalize_2nd_moment(z.astype(jnp.float32))
        n = x.shape[0] if x is not None else (c.shape[0] if c is not None else 0)
        c = check_labels(c, self.c_dim, n, "mapping")
        if self.c_dim > 0:
            y = normalize_2nd_moment(FullyConnectedLayer(embed_features, name="embed")(c))
            x = jnp.concatenate([x, y], axis=1) if x is not None else y

        for idx in range(self.num_layers):
            x = FullyConnectedLayer(features[idx + 1], activation=self.activation,
                                    lr_multiplier=self.lr_multiplier, name=f"fc{idx}")(x)

        w_avg = None
        if self.num_ws is not None and self.w_avg_beta is not None:
            w_avg = self.variable("buffers", "w_avg", jnp.zeros, (self.w_dim,), jnp.float32)
            if update_w_avg:
                w_avg.value = lerp(jnp.mean(jax.lax.stop_gradient(x), axis=0), w_avg.value, self.w_avg_beta)

        if self.num_ws is not None:
            x = jnp.broadcast_to(x[:, None, :], (x.shape[0], self.num_ws, x.shape[1]))

        if not (isinstance(truncation_psi, (int, float)) and truncation_psi == 1):
            if w_avg is None:
                raise ValueError("truncation needs w_avg: this mapping network has num_ws=None or w_avg_beta=None")
            if self.num_ws is None or truncation_cutoff is None:
                x = lerp(w_avg.value, x, truncation_psi)
            else:
                x = x.at[:, :truncation_cutoff].set(lerp(w_avg.value, x[:, :truncation_cutoff], truncation_psi))
        return x


# ----------------------------------------------------------------------------------------------
# Synthesis network.


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv + noise + bias + lrelu: x [N, res/up, res/up, in] -> [N, res, res, out]."""

    out_channels: int
    w_dim: int
    resolution: int
    kernel_size: int = 3
    up: int = 1
    use_noise: bool = True
    activation: str = "lrelu"
    resample_filter: Sequence[float] = DEFAULT_FILTER
    conv_clamp: float | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: jax.Array, w: jax.Array, noise_mode: str = "random", fused_modconv: bool = True, gain: float = 1.0
    ) -> jax.Array:
        n, h, wd, in_channels = x.shape
        in_res = self.resolution // self.up
        if (h, wd) != (in_res, in_res):
            raise ValueError(f"SynthesisLayer at {self.resolution}x{self.resolution} expects x [N, {in_res}, {in_res}, C], got {x.shape}")
        styles = FullyConnectedLayer(in_channels, bias_init=1, name="affine")(w)
        k = self.kernel_size
        weight = self.param("weight", nn.initializers.normal(1.0), (k, k, in_channels, self.out_channels), jnp.float32)

        noise = None
        if self.use_noise:
            noise_const = self.variable(
                "buffers", "noise_const",
                lambda: jax.random.normal(self.make_rng("params"), (self.resolution, self.resolution), jnp.float32),
            )
            strength = self.param("noise_strength", nn.initializers.zeros, (), jnp.float32)
            rng = self.make_rng("noise") if noise_mode == "random" and self.has_rng("noise") else None
            given = self.get_variable("noise_inputs", "noise") if noise_mode == "given" else None
            noise = noise_input(noise_mode, (n, self.resolution, self.resolution), strength, noise_const.value, rng, given)

        x = modulated_conv2d(
            x.astype(self.dtype), weight, styles, noise, up=self.up, padding=k // 2,
            resample_filter=setup_filter(self.resample_filter), flip_weight=(self.up == 1), fused_modconv=fused_modconv,
        )
        bias = self.param("bias", nn.initializers.zeros, (self.out_channels,), jnp.float32)
        act_gain = activation_spec(self.activation).def_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, bias, act=self.activation, gain=act_gain, clamp=act_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation: x [N, H, W, in] -> [N, H, W, img_channels]."""

    out_channels: int
    w_dim: int
    kernel_size: int = 1
    conv_clamp: float | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array, fused_modconv: bool = True) -> jax.Array:
        in_channels = x.shape[-1]
        k = self.kernel_size
        weight_gain = np.float32(1 / np.sqrt(in_channels * k * k))
        styles = FullyConnectedLayer(in_channels, bias_init=1, name="affine")(w) * weight_gain
        weight = self.param("weight", nn.initializers.normal(1.0), (k, k, in_channels, self.out_channels), jnp.float32)
        x = modulated_conv2d(x.astype(self.dtype), weight, styles, demodulate=False, fused_modconv=fused_modconv)
        bias = self.param("bias", nn.initializers.zeros, (self.out_channels,), jnp.float32)
        return bias_act(x, bias, clamp=self.conv_clamp)


def block_num_ws(in_channels: int, is_last: bool, architecture: str) -> tuple[int, int]:
    """``(num_conv, num_torgb)`` of a SynthesisBlock."""
    num_conv = 1 if in_channels == 0 else 2
    num_torgb = 1 if (is_last or architecture == "skip") else 0
    return num_conv, num_torgb


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (x, img) at res/2 -> (x, img) at res.

    ``ws`` is [N, num_conv + num_torgb, w_dim]. The first block (``in_channels == 0``) starts
    from the learned constant [res, res, out_channels].
    """

    in_channels: int
    out_channels: int
    w_dim: int
    resolution: int
    img_channels: int
    is_last: bool
    architecture: str = "skip"
    resample_filter: Sequence[float] = DEFAULT_FILTER
    conv_clamp: float | None = None
    kernel_size: int = 3
    use_noise: bool = True
    activation: str = "lrelu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: jax.Array | None, img: jax.Array | None, ws: jax.Array,
        noise_mode: str = "random", fused_modconv: bool = True,
    ) -> tuple[jax.Array, jax.Array | None]:
        num_conv, num_torgb = block_num_ws(self.in_channels, self.is_last, self.architecture)
        n = ws.shape[0]
        layer = dict(w_dim=self.w_dim, resolution=self.resolution, kernel_size=self.kernel_size,
                     use_noise=self.use_noise, activation=self.activation, conv_clamp=self.conv_clamp, dtype=self.dtype)
        call = dict(noise_mode=noise_mode, fused_modconv=fused_modconv)

        if self.in_channels == 0:
            const = self.param("const", nn.initializers.normal(1.0),
                               (self.resolution, self.resolution, self.out_channels), jnp.float32)
            x = jnp.broadcast_to(const.astype(self.dtype)[None], (n, *const.shape))
        else:
            half = self.resolution // 2
            if x is None or x.shape[1:] != (half, half, self.in_channels):
                raise ValueError(f"SynthesisBlock b{self.resolution} expects x [N, {half}, {half}, {self.in_channels}], "
                                 f"got {None if x is None else x.shape}")
            x = x.astype(self.dtype)

        if self.in_channels == 0:
            x = SynthesisLayer(self.out_channels, name="conv1", **layer)(x, ws[:, 0], **call)
        elif self.architecture == "resnet":
            y = Conv2dLayer(self.out_channels, kernel_size=1, bias=False, up=2, resample_filter=self.resample_filter,
                            dtype=self.dtype, name="skip")(x, gain=np.sqrt(0.5))
            x = SynthesisLayer(self.out_channels, up=2, resample_filter=self.resample_filter, name="conv0", **layer)(x, ws[:, 0], **call)
            x = SynthesisLayer(self.out_channels, name="conv1", **layer)(x, ws[:, 1], gain=np.sqrt(0.5), **call)
            x = y + x
        else:
            x = SynthesisLayer(self.out_channels, up=2, resample_filter=self.resample_filter, name="conv0", **layer)(x, ws[:, 0], **call)
            x = SynthesisLayer(self.out_channels, name="conv1", **layer)(x, ws[:, 1], **call)

        if img is not None:
            img = upsample2d(img, setup_filter(self.resample_filter))
        if num_torgb:
            y = ToRGBLayer(self.img_channels, w_dim=self.w_dim, conv_clamp=self.conv_clamp, dtype=self.dtype,
                           name="torgb")(x, ws[:, num_conv], fused_modconv=fused_modconv)
            y = y.astype(jnp.float32)
            img = img + y if img is not None else y
        return x, img


def synthesis_num_ws(img_resolution: int, architecture: str = "skip") -> int:
    """Number of w vectors the synthesis network consumes: sum of num_conv, plus the last torgb."""
    log2 = log2_resolution(img_resolution, "img_resolution")
    return 1 + 2 * (log2 - 2) + 1


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> images [N, img_resolution, img_resolution, img_channels] (float32)."""

    w_dim: int
    img_resolution: int
    img_channels: int
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 0
    architecture: str = "skip"
    resample_filter: Sequence[float] = DEFAULT_FILTER
    conv_clamp: float | None = None
    kernel_size: int = 3
    use_noise: bool = True
    activation: str = "lrelu"
    dtype: Dtype = jnp.float32

    @property
    def block_resolutions(self) -> list[int]:
        return [2**i for i in range(2, log2_resolution(self.img_resolution, "img_resolution") + 1)]

    @property
    def num_ws(self) -> int:
        return synthesis_num_ws(self.img_resolution, self.architecture)

    @nn.compact
    def __call__(self, ws: jax.Array, noise_mode: str = "random", fused_modconv: bool = True) -> jax.Array:
        _check_architecture(self.architecture)
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"synthesis expects ws of shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws = ws.astype(jnp.float32)
        channels = channels_per_resolution(self.block_resolutions, self.channel_base, self.channel_max)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            is_last = res == self.img_resolution
            num_conv, num_torgb = block_num_ws(in_channels, is_last, self.architecture)
            block = SynthesisBlock(
                in_channels, channels[res], w_dim=self.w_dim, resolution=res, img_channels=self.img_channels,
                is_last=is_last, architecture=self.architecture, resample_filter=self.resample_filter,
                conv_clamp=self.conv_clamp, kernel_size=self.kernel_size, use_noise=self.use_noise,
                activation=self.activation, dtype=self.dtype, name=f"b{res}",
            )
            x, img = block(x, img, ws[:, w_idx:w_idx + num_conv + num_torgb],
                           noise_mode=noise_mode, fused_modconv=fused_modconv)
            w_idx += num_conv
        return img


class Generator(nn.Module):
    """StyleGAN2 G: (z [N, z_dim], c [N, c_dim] or None) -> images [N, R, R, img_channels] in ~[-1, 1].

    ``apply(v, z, c)`` runs mapping + synthesis; ``method='mapping'`` returns ws
    [N, num_ws, w_dim]; ``method='synthesis'`` maps ws to images. ``noise_mode='random'`` needs a
    ``'noise'`` rng; ``noise_mode='given'`` reads raw N(0, 1) draws [N, R, R, 1] from the variable
    collection ``noise_inputs`` (``synthesis/b8/conv0/noise``, ...); ``update_w_avg=True`` needs
    ``mutable=['buffers']``.
    """

    z_dim: int
    c_dim: int
    w_dim: int
    img_resolution: int
    img_channels: int
    # Official mapping_kwargs.
    mapping_layers: int = 8
    mapping_embed_features: int | None = None
    mapping_layer_features: int | None = None
    mapping_activation: str = "lrelu"
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float | None = 0.995
    # Official synthesis_kwargs (and the block/layer kwargs they pass on).
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 0
    architecture: str = "skip"
    resample_filter: Sequence[float] = DEFAULT_FILTER
    conv_clamp: float | None = None
    kernel_size: int = 3
    use_noise: bool = True
    activation: str = "lrelu"
    dtype: Dtype = jnp.float32

    @property
    def num_ws(self) -> int:
        return synthesis_num_ws(self.img_resolution, self.architecture)

    @nn.compact
    def __call__(
        self,
        z: jax.Array | None,
        c: jax.Array | None = None,
        truncation_psi: float | jax.Array = 1,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        fused_modconv: bool = True,
        update_w_avg: bool = False,
        ws: jax.Array | None = None,
        _part: str = "all",
    ) -> jax.Array:
        # One compact method builds both children; `mapping` and `synthesis` dispatch through it.
        if _part in ("all", "mapping"):
            ws = MappingNetwork(
                z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
                num_layers=self.mapping_layers, embed_features=self.mapping_embed_features,
                layer_features=self.mapping_layer_features, activation=self.mapping_activation,
                lr_multiplier=self.mapping_lr_multiplier, w_avg_beta=self.w_avg_beta, name="mapping",
            )(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_w_avg=update_w_avg)
            if _part == "mapping":
                return ws
        return SynthesisNetwork(
            w_dim=self.w_dim, img_resolution=self.img_resolution, img_channels=self.img_channels,
            channel_base=self.channel_base, channel_max=self.channel_max, num_fp16_res=self.num_fp16_res,
            architecture=self.architecture, resample_filter=self.resample_filter, conv_clamp=self.conv_clamp,
            kernel_size=self.kernel_size, use_noise=self.use_noise, activation=self.activation,
            dtype=self.dtype, name="synthesis",
        )(ws, noise_mode=noise_mode, fused_modconv=fused_modconv)

    def mapping(
        self, z: jax.Array | None, c: jax.Array | None = None, truncation_psi: float | jax.Array = 1,
        truncation_cutoff: int | None = None, update_w_avg: bool = False,
    ) -> jax.Array:
        """z [N, z_dim], c -> ws [N, num_ws, w_dim], truncated towards w_avg when psi != 1."""
        return self(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                    update_w_avg=update_w_avg, _part="mapping")

    def synthesis(self, ws: jax.Array, noise_mode: str = "random", fused_modconv: bool = True) -> jax.Array:
        """ws [N, num_ws, w_dim] -> images [N, R, R, img_channels]."""
        return self(None, None, noise_mode=noise_mode, fused_modconv=fused_modconv, ws=ws, _part="synthesis")


# ----------------------------------------------------------------------------------------------
# Discriminator.


class DiscriminatorBlock(nn.Module):
    """One resolution of D: (x [N, res, res, in], img) -> (x [N, res/2, res/2, out], img at res/2 or None)."""

    in_channels: int
    tmp_channels: int
    out_channels: int
    resolution: int
    img_channels: int
    architecture: str = "resnet"
    activation: str = "lrelu"
    resample_filter: Sequence[float] = DEFAULT_FILTER
    conv_clamp: float | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array | None, img: jax.Array | None) -> tuple[jax.Array, jax.Array | None]:
        conv = dict(activation=self.activation, conv_clamp=self.conv_clamp, dtype=self.dtype)
        if x is not None:
            x = x.astype(self.dtype)
        if self.in_channels == 0 or self.architecture == "skip":
            y = Conv2dLayer(self.tmp_channels, kernel_size=1, name="fromrgb", **conv)(img.astype(self.dtype))
            x = x + y if x is not None else y
            img = downsample2d(img, setup_filter(self.resample_filter)) if self.architecture == "skip" else None

        conv0 = Conv2dLayer(self.tmp_channels, kernel_size=3, name="conv0", **conv)
        conv1 = Conv2dLayer(self.out_channels, kernel_size=3, down=2, resample_filter=self.resample_filter, name="conv1", **conv)
        if self.architecture == "resnet":
            y = Conv2dLayer(self.out_channels, kernel_size=1, bias=False, down=2, resample_filter=self.resample_filter,
                            dtype=self.dtype, name="skip")(x, gain=np.sqrt(0.5))
            x = conv1(conv0(x), gain=np.sqrt(0.5))
            x = y + x
        else:
            x = conv1(conv0(x))
        return x, img


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 head: (x [N, 4, 4, C], img, cmap) -> logits [N, 1]; runs in float32 as upstream."""

    in_channels: int
    cmap_dim: int
    resolution: int
    img_channels: int
    architecture: str = "resnet"
    mbstd_group_size: int | None = 4  # official default (paper: group size 4)
    mbstd_num_channels: int = 1
    mbstd_num_shards: int = 1
    activation: str = "lrelu"
    conv_clamp: float | None = None

    @nn.compact
    def __call__(self, x: jax.Array, img: jax.Array | None, cmap: jax.Array | None) -> jax.Array:
        x = x.astype(jnp.float32)
        if self.architecture == "skip":
            x = x + Conv2dLayer(self.in_channels, kernel_size=1, activation=self.activation, name="fromrgb")(img.astype(jnp.float32))
        if self.mbstd_num_channels > 0:
            x = minibatch_std(x, self.mbstd_group_size, self.mbstd_num_channels, self.mbstd_num_shards)
            self.sow("intermediates", "mbstd", x)
        x = Conv2dLayer(self.in_channels, kernel_size=3, activation=self.activation, conv_clamp=self.conv_clamp, name="conv")(x)
        # The official fc reads x.flatten(1) of an NCHW tensor: flatten in channel-major order.
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
        x = FullyConnectedLayer(self.in_channels, activation=self.activation, name="fc")(x)
        x = FullyConnectedLayer(1 if self.cmap_dim == 0 else self.cmap_dim, name="out")(x)
        if self.cmap_dim > 0:
            x = jnp.sum(x * cmap, axis=1, keepdims=True) * np.float32(1 / np.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """StyleGAN2 D: (images [N, R, R, img_channels], c [N, c_dim] or None) -> logits [N, 1] (float32)."""

    c_dim: int
    img_resolution: int
    img_channels: int
    architecture: str = "resnet"
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 0
    conv_clamp: float | None = None
    cmap_dim: int | None = None
    # Official block_kwargs.
    activation: str = "lrelu"
    resample_filter: Sequence[float] = DEFAULT_FILTER
    freeze_layers: int = 0  # Freeze-D; honoured by the trainer, not by the forward pass
    # Official mapping_kwargs (the label mapping network; z_dim 0, no w_avg).
    mapping_layers: int = 8
    mapping_embed_features: int | None = None
    mapping_layer_features: int | None = None
    mapping_activation: str = "lrelu"
    mapping_lr_multiplier: float = 0.01
    # Official epilogue_kwargs.
    mbstd_group_size: int | None = 4
    mbstd_num_channels: int = 1
    epilogue_activation: str = "lrelu"
    # gan_jax: mbstd statistics within each of this many equal slices of the batch (one per
    # data-parallel device, as NVIDIA's per-GPU grouping); 1 = the whole batch, as upstream.
    mbstd_num_shards: int = 1
    dtype: Dtype = jnp.float32

    @property
    def block_resolutions(self) -> list[int]:
        return [2**i for i in range(log2_resolution(self.img_resolution, "img_resolution"), 2, -1)]

    @nn.compact
    def __call__(self, img: jax.Array, c: jax.Array | None = None) -> jax.Array:
        _check_architecture(self.architecture)
        r, ch = self.img_resolution, self.img_channels
        if img.ndim != 4 or tuple(img.shape[1:]) != (r, r, ch):
            hint = " (it looks like NCHW; pass NHWC: img.transpose(0, 2, 3, 1))" if img.ndim == 4 and tuple(img.shape[1:]) == (ch, r, r) else ""
            raise ValueError(f"D expects images of shape [N, {r}, {r}, {ch}] (NHWC), got {tuple(img.shape)}{hint}")
        c = check_labels(c, self.c_dim, img.shape[0], "D")
        channels = channels_per_resolution(self.block_resolutions + [4], self.channel_base, self.channel_max)
        cmap_dim = (channels[4] if self.cmap_dim is None else self.cmap_dim) if self.c_dim else 0

        x = None
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                channels[res] if res < r else 0, channels[res], channels[res // 2], resolution=res, img_channels=ch,
                architecture=self.architecture, activation=self.activation, resample_filter=self.resample_filter,
                conv_clamp=self.conv_clamp, dtype=self.dtype, name=f"b{res}",
            )
            x, img = block(x, img)

        cmap = None
        if self.c_dim > 0:
            cmap = MappingNetwork(
                z_dim=0, c_dim=self.c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None, num_layers=self.mapping_layers,
                embed_features=self.mapping_embed_features, layer_features=self.mapping_layer_features,
                activation=self.mapping_activation, lr_multiplier=self.mapping_lr_multiplier, name="mapping",
            )(None, c)
        return DiscriminatorEpilogue(
            channels[4], cmap_dim=cmap_dim, resolution=4, img_channels=ch, architecture=self.architecture,
            mbstd_group_size=self.mbstd_group_size, mbstd_num_channels=self.mbstd_num_channels,
            mbstd_num_shards=self.mbstd_num_shards, activation=self.epilogue_activation, conv_clamp=self.conv_clamp, name="b4",
        )(x, img, cmap)


# ----------------------------------------------------------------------------------------------
# Freeze-D (NVIDIA's --freezed=N).


def discriminator_layer_names(D: Discriminator) -> list[str]:
    """The layers of ``D``'s blocks in NVIDIA's Freeze-D numbering: entry ``i`` is layer ``i``.

    Names are ``'b{res}/{layer}'`` (the Flax path of the layer within D's ``params``), e.g.
    ``['b32/fromrgb', 'b32/conv0', 'b32/conv1', 'b32/skip', 'b16/conv0', ...]`` for a 32x32 resnet D.
    Rule of stylegan2-ada-pytorch ``training/networks.py``: ``Discriminator.__init__`` walks
    ``block_resolutions`` from the highest resolution down with ``cur_layer_idx`` from 0; each
    ``DiscriminatorBlock`` numbers its layers in creation order: ``fromrgb`` (only when
    ``in_channels == 0``, i.e. the first block, or ``architecture == 'skip'``), ``conv0``,
    ``conv1``, ``skip`` (only for ``'resnet'``). The epilogue ``b4`` and the label ``mapping``
    network are not numbered. Computed from the constructor fields only.
    """
    _check_architecture(D.architecture)
    names = []
    for res in D.block_resolutions:
        if res == D.img_resolution or D.architecture == "skip":  # in_channels == 0 <=> res == img_resolution
            names.append(f"b{res}/fromrgb")
        names += [f"b{res}/conv0", f"b{res}/conv1"]
        if D.architecture == "resnet":
            names.append(f"b{res}/skip")
    return names


def freeze_d_mask(D: Discriminator, d_params: Any) -> Any:
    """True for every parameter of the first ``D.freeze_layers`` layers of ``D`` (Freeze-D).

    ``d_params`` is D's ``params`` collection (``variables['params']``: ``{'b32': {'fromrgb':
    {'weight', 'bias'}, ...}, ..., 'b4': ..., 'mapping': ...}``; arrays or ``ShapeDtypeStruct``).
    Returns a pytree of Python bools with ``d_params``' structure: True on the ``weight`` and
    ``bias`` of each frozen layer (the layers of ``discriminator_layer_names(D)[:D.freeze_layers]``),
    False elsewhere. In stylegan2-ada-pytorch (``training/networks.py``, ``DiscriminatorBlock``:
    ``trainable = layer_idx >= freeze_layers``) a frozen ``Conv2dLayer`` holds its weight and bias
    as buffers, so that the optimizer never updates them; the trainer gives these leaves zero updates.
    Raises ``ValueError`` when a frozen layer is not in ``d_params`` (params of another D).
    """
    frozen = set(discriminator_layer_names(D)[: max(int(D.freeze_layers), 0)])

    def layer_of(path) -> str:
        keys = [str(getattr(e, "key", getattr(e, "name", e))) for e in path]  # DictKey / GetAttrKey
        return "/".join(keys[:2])

    seen: set[str] = set()

    def is_frozen(path, _leaf) -> bool:
        layer = layer_of(path)
        if layer in frozen:
            seen.add(layer)
            return True
        return False

    mask = jax.tree_util.tree_map_with_path(is_frozen, d_params)
    if seen != frozen:
        raise ValueError(f"Freeze-D layers {sorted(frozen - seen)} of this Discriminator are not in the given params "
                         f"(top-level keys {sorted(d_params)}); pass D's variables['params']")
    return mask
