"""Inception-v3 as FID computes it: the 2015-12-05 TensorFlow graph, in Flax, NHWC.

This is the network of pytorch-fid's ``FIDInceptionV3`` (``pytorch_fid/inception.py``) and of
NVIDIA's ``inception-2015-12-05`` detector, which differ from torchvision's Inception-v3 in the
TF graph's ways: average pooling that leaves the padding out of the count in Mixed_5b-d, 6b-e
and 7b, max pooling in Mixed_7c's pool branch, BatchNorm eps 1e-3, 1008 classes. Parameter
paths are pytorch-fid's state-dict names (``Mixed_5b.branch1x1.conv.weight`` ->
``Mixed_5b/branch1x1/conv/weight``), conv weights HWIO, the classifier ``fc`` as ``[in, out]``.

Inputs: ``preprocess(images, convention)`` turns generator outputs (float [-1, 1]) or dataset
images (uint8) ``[N, H, W, C]`` into the network's 299x299 input, in one of two conventions:

- ``'nvidia'`` (default; NVIDIA's metrics): quantise ``x * 127.5 + 128`` to uint8 as
  ``.clamp(0, 255).to(torch.uint8)`` does, resize to 299 as TF1's legacy ``ResizeBilinear``
  (source pixel ``j * W / 299``, border clamp, no antialiasing), then ``(x - 128) / 128``;
- ``'pytorch_fid'``: the same uint8 images scaled to [0, 1], ``F.interpolate(bilinear,
  align_corners=False)`` (half-pixel centres), then ``2x - 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

CONVENTIONS = ("nvidia", "pytorch_fid")
INPUT_SIZE = 299
FEATURE_DIM = 2048  # pool_3 features (FID, KID)
NUM_CLASSES = 1008  # the TF graph's softmax (IS)
BN_EPS = 1e-3  # TF graph's BatchNorm epsilon (pytorch-fid's BasicConv2d: eps=0.001)
_HIGHEST = lax.Precision.HIGHEST


class Conv(nn.Module):
    """Convolution without bias, weight ``[kh, kw, in, out]`` (torch's ``conv.weight`` transposed)."""

    features: int
    kernel: tuple[int, int]
    stride: int = 1
    padding: tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.param("weight", nn.initializers.lecun_normal(), (*self.kernel, x.shape[-1], self.features))
        py, px = self.padding
        return lax.conv_general_dilated(x, w, (self.stride, self.stride), [(py, py), (px, px)],
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=_HIGHEST)


class BatchNorm(nn.Module):
    """Inference BatchNorm with the stored statistics: ``(x - mean) / sqrt(var + 1e-3) * weight + bias``."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        weight = self.param("weight", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        mean = self.param("running_mean", nn.initializers.zeros, (c,))
        var = self.param("running_var", nn.initializers.ones, (c,))
        scale = weight * lax.rsqrt(var + BN_EPS)
        return x * scale + (bias - mean * scale)


class Dense(nn.Module):
    """``x @ weight + bias`` with ``weight`` [in, out] (torch's ``fc.weight`` transposed)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.param("weight", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        return jnp.dot(x, w, precision=_HIGHEST) + self.param("bias", nn.initializers.zeros, (self.features,))


class BasicConv2d(nn.Module):
    """conv -> BN -> ReLU (torchvision's ``BasicConv2d``)."""

    features: int
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    padding: tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = Conv(self.features, self.kernel, self.stride, self.padding, name="conv")(x)
        return nn.relu(BatchNorm(name="bn")(x))


def avg_pool_3x3_exclude_pad(x: jax.Array) -> jax.Array:
    """3x3 stride-1 average whose border windows divide by the pixels inside (TF's 'SAME' avg pool)."""
    window, pad = (1, 3, 3, 1), ((0, 0), (1, 1), (1, 1), (0, 0))
    total = lax.reduce_window(x, 0.0, lax.add, window, (1, 1, 1, 1), pad)
    count = lax.reduce_window(jnp.ones((1, *x.shape[1:3], 1), x.dtype), 0.0, lax.add, window, (1, 1, 1, 1), pad)
    return total / count


def max_pool(x: jax.Array, size: int = 3, stride: int = 2, pad: int = 0) -> jax.Array:
    p = ((0, 0), (pad, pad), (pad, pad), (0, 0))
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, size, size, 1), (1, stride, stride, 1), p)


def _cat(xs: Sequence[jax.Array]) -> jax.Array:
    return jnp.concatenate(xs, axis=-1)


class InceptionA(nn.Module):
    """Mixed_5b-d (pytorch-fid ``FIDInceptionA``)."""

    pool_features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = BasicConv2d(64, name="branch1x1")(x)
        b5 = BasicConv2d(48, name="branch5x5_1")(x)
        b5 = BasicConv2d(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
        b3 = BasicConv2d(64, name="branch3x3dbl_1")(x)
        b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
        b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
        bp = BasicConv2d(self.pool_features, name="branch_pool")(avg_pool_3x3_exclude_pad(x))
        return _cat([b1, b5, b3, bp])


class InceptionB(nn.Module):
    """Mixed_6a (torchvision ``InceptionB``): 35 -> 17."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = BasicConv2d(384, (3, 3), stride=2, name="branch3x3")(x)
        bd = BasicConv2d(64, name="branch3x3dbl_1")(x)
        bd = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = BasicConv2d(96, (3, 3), stride=2, name="branch3x3dbl_3")(bd)
        return _cat([b3, bd, max_pool(x)])


class InceptionC(nn.Module):
    """Mixed_6b-e (pytorch-fid ``FIDInceptionC``)."""

    channels_7x7: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c7 = self.channels_7x7
        b1 = BasicConv2d(192, name="branch1x1")(x)
        b7 = BasicConv2d(c7, name="branch7x7_1")(x)
        b7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = BasicConv2d(c7, name="branch7x7dbl_1")(x)
        bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = BasicConv2d(192, name="branch_pool")(avg_pool_3x3_exclude_pad(x))
        return _cat([b1, b7, bd, bp])


class InceptionD(nn.Module):
    """Mixed_7a (torchvision ``InceptionD``): 17 -> 8."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = BasicConv2d(192, name="branch3x3_1")(x)
        b3 = BasicConv2d(320, (3, 3), stride=2, name="branch3x3_2")(b3)
        b7 = BasicConv2d(192, name="branch7x7x3_1")(x)
        b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv2d(192, (3, 3), stride=2, name="branch7x7x3_4")(b7)
        return _cat([b3, b7, max_pool(x)])


class InceptionE(nn.Module):
    """Mixed_7b (average pool, pytorch-fid ``FIDInceptionE_1``) and Mixed_7c (max pool, ``FIDInceptionE_2``)."""

    pool: str  # 'avg' | 'max'

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = BasicConv2d(320, name="branch1x1")(x)
        b3 = BasicConv2d(384, name="branch3x3_1")(x)
        b3 = _cat([BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                   BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)])
        bd = BasicConv2d(448, name="branch3x3dbl_1")(x)
        bd = BasicConv2d(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = _cat([BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                   BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)])
        pooled = avg_pool_3x3_exclude_pad(x) if self.pool == "avg" else max_pool(x, 3, 1, 1)
        bp = BasicConv2d(192, name="branch_pool")(pooled)
        return _cat([b1, b3, bd, bp])


class InceptionV3(nn.Module):
    """``x`` [N, 299, 299, 3] (already normalised to about [-1, 1]) -> (pool [N, 2048], logits [N, 1008])."""

    num_classes: int = NUM_CLASSES

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"Inception expects [N, H, W, 3] images, got shape {tuple(x.shape)}")
        x = BasicConv2d(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)
        x = BasicConv2d(32, (3, 3), name="Conv2d_2a_3x3")(x)
        x = BasicConv2d(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
        x = max_pool(x)
        x = BasicConv2d(80, name="Conv2d_3b_1x1")(x)
        x = BasicConv2d(192, (3, 3), name="Conv2d_4a_3x3")(x)
        x = max_pool(x)
        x = InceptionA(32, name="Mixed_5b")(x)
        x = InceptionA(64, name="Mixed_5c")(x)
        x = InceptionA(64, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            x = InceptionC(c7, name=name)(x)
        x = InceptionD(name="Mixed_7a")(x)
        x = InceptionE("avg", name="Mixed_7b")(x)
        x = InceptionE("max", name="Mixed_7c")(x)
        pool = jnp.mean(x, axis=(1, 2))
        return pool, Dense(self.num_classes, name="fc")(pool)


# ---------------------------------------------------------------------------------------------
# Input conventions.


def resize_matrix_tf1(n_in: int, n_out: int = INPUT_SIZE) -> np.ndarray:
    """[n_out, n_in] weights of TF1's legacy bilinear resize (``align_corners=False``,
    ``half_pixel_centers=False``): output ``j`` reads ``j * n_in / n_out``, neighbours clamped."""
    src = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
    return _bilinear_matrix(src, n_in)


def resize_matrix_half_pixel(n_in: int, n_out: int = INPUT_SIZE) -> np.ndarray:
    """[n_out, n_in] weights of ``F.interpolate(mode='bilinear', align_corners=False)``:
    output ``j`` reads ``max((j + 0.5) * n_in / n_out - 0.5, 0)``."""
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    return _bilinear_matrix(src, n_in)


def _bilinear_matrix(src: np.ndarray, n_in: int) -> np.ndarray:
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((src.size, n_in), np.float64)
    np.add.at(m, (np.arange(src.size), lo), 1.0 - frac)
    np.add.at(m, (np.arange(src.size), hi), frac)
    return m.astype(np.float32)


def quantize(images: jax.Array) -> jax.Array:
    """Float [-1, 1] -> the uint8 values (as float32) of ``(x * 127.5 + 128).clamp(0, 255).to(uint8)``;
    uint8 input passes through."""
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32)
    return jnp.floor(jnp.clip(images.astype(jnp.float32) * 127.5 + 128.0, 0.0, 255.0))


def preprocess(images: jax.Array, convention: str = "nvidia") -> jax.Array:
    """``images`` [N, H, W, C] (float [-1, 1] or uint8; C = 1 or 3) -> Inception input [N, 299, 299, 3]."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown Inception input convention {convention!r}; expected one of {CONVENTIONS}")
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"expected images [N, H, W, 1 or 3] (NHWC), got shape {tuple(images.shape)}")
    x = quantize(images)
    if x.shape[-1] == 1:
        x = jnp.broadcast_to(x, (*x.shape[:3], 3))
    h, w = x.shape[1:3]
    if convention == "nvidia":
        rh, rw = resize_matrix_tf1(h), resize_matrix_tf1(w)
    else:
        x = x / 255.0
        rh, rw = resize_matrix_half_pixel(h), resize_matrix_half_pixel(w)
    x = jnp.einsum("ph,nhwc->npwc", rh, x, precision=_HIGHEST)
    x = jnp.einsum("qw,npwc->npqc", rw, x, precision=_HIGHEST)
    return (x - 128.0) / 128.0 if convention == "nvidia" else 2.0 * x - 1.0
