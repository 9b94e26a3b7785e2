"""Layers every family shares. Arrays are NHWC; conv weights [kh, kw, in, out]."""

from gan_jax.nn.bias_act import ACTIVATIONS, bias_act
from gan_jax.nn.conv import conv2d, conv2d_resample, conv_transpose2d
from gan_jax.nn.equalized import Conv2dLayer, FullyConnectedLayer
from gan_jax.nn.minibatch_std import minibatch_std
from gan_jax.nn.modulated_conv import modulated_conv2d
from gan_jax.nn.noise import NOISE_MODES, noise_input
from gan_jax.nn.normalize import normalize_2nd_moment
from gan_jax.nn.upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

__all__ = [
    "ACTIVATIONS", "bias_act", "conv2d", "conv2d_resample", "conv_transpose2d", "Conv2dLayer",
    "FullyConnectedLayer", "minibatch_std", "modulated_conv2d", "NOISE_MODES", "noise_input",
    "normalize_2nd_moment", "downsample2d", "filter2d", "setup_filter", "upfirdn2d", "upsample2d",
]

# BigGAN layers (spectral norm, BatchNorm / conditional BatchNorm, SA-GAN attention).
from gan_jax.nn.attention import Attention  # noqa: E402
from gan_jax.nn.batch_norm import BatchNorm, ConditionalBatchNorm, batch_moments  # noqa: E402
from gan_jax.nn.spectral_norm import SNConv2d, SNEmbedding, SNLinear, power_iteration, spectral_normalize  # noqa: E402

__all__ += ["Attention", "BatchNorm", "ConditionalBatchNorm", "batch_moments", "SNConv2d", "SNEmbedding", "SNLinear",
            "power_iteration", "spectral_normalize"]
