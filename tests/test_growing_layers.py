"""The TF-era resampling ops against direct NumPy loops of the official definitions."""

from __future__ import annotations

import numpy as np
import pytest

from gan_jax.nn import growing
from tolerance import assert_close


def _tf_conv_same(x, w, stride=1):
    """NumPy TF 'SAME' correlation, NHWC / HWIO, pads as TF computes them."""
    n, h, _, _ = x.shape
    k = w.shape[0]
    out_h = -(-h // stride)
    pad = max((out_h - 1) * stride + k - h, 0)
    p0 = pad // 2
    xp = np.pad(x, ((0, 0), (p0, pad - p0), (p0, pad - p0), (0, 0)))
    out = np.zeros((n, out_h, out_h, w.shape[3]))
    for i in range(out_h):
        for j in range(out_h):
            patch = xp[:, i * stride:i * stride + k, j * stride:j * stride + k, :]
            out[:, i, j] = np.einsum("nhwi,hwio->no", patch, w)
    return out


def _tf_conv_transpose_same(x, w4):
    """NumPy TF conv2d_transpose stride 2 'SAME' to 2H: o = 2i + k - 1; ``w4`` [4, 4, I, O]."""
    n, h, wd, _ = x.shape
    out = np.zeros((n, 2 * h + 4, 2 * wd + 4, w4.shape[3]))
    for i in range(h):
        for j in range(wd):
            out[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4] += np.einsum("ni,hwio->nhwo", x[:, i, j], w4)
    return out[:, 1:1 + 2 * h, 1:1 + 2 * wd]


def _four(w):
    w = np.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
    return w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]


@pytest.fixture(scope="module")
def data():
    rs = np.random.RandomState(0)
    return rs.randn(2, 6, 6, 3).astype(np.float32), rs.randn(3, 3, 3, 5).astype(np.float32)


def test_fused_up_conv_is_tf_conv_transpose_and_flipped_unfused(data):
    x, w = data
    got = np.asarray(growing.upscale2d_conv2d(x, w))
    assert_close(got, _tf_conv_transpose_same(x.astype(np.float64), _four(w.astype(np.float64))), atol=1e-4)
    unfused = _tf_conv_same(np.repeat(np.repeat(x, 2, 1), 2, 2).astype(np.float64), w[::-1, ::-1].astype(np.float64))
    assert_close(got, unfused, atol=1e-4)


def test_fused_down_conv_is_conv_then_box(data):
    x, w = data
    got = np.asarray(growing.conv2d_downscale2d(x, w))
    assert_close(got, _tf_conv_same(x.astype(np.float64), _four(w.astype(np.float64)) * 0.25, stride=2), atol=1e-4)
    c = _tf_conv_same(x.astype(np.float64), w.astype(np.float64))
    assert_close(got, c.reshape(2, 3, 2, 3, 2, 5).mean(axis=(2, 4)), atol=1e-4)


def test_up_down_scale(data):
    x, _ = data
    up = np.asarray(growing.upscale2d(x, 3))
    assert up.shape == (2, 18, 18, 3) and np.array_equal(up[:, 4, 7], x[:, 1, 2])
    assert_close(np.asarray(growing.downscale2d(up, 3)), x, atol=1e-6)
    assert_close(np.asarray(growing.downscale2d(x, 2))[0, 1, 2, 0], x[0, 2:4, 4:6, 0].mean(), atol=1e-6)
    with pytest.raises(ValueError, match="divisible"):
        growing.downscale2d(x, 4)
    assert_close(np.asarray(growing.lerp_clip(x, 2 * x, 1.7)), 2 * x, rtol=1e-7)
