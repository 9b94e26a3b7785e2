"""The CPU fast paths of ``gan_jax.nn.conv`` against XLA's own convolutions (the reference path).

On CPU, strided, transposed and 1x1 convolutions run as matrix products over their taps
(docs/performance.md). They must give XLA's numbers: the
values, the gradients, and the second derivatives that R1 and the path length take, in float64
(to rounding) and in float32 (to the tolerance the fixtures use).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.nn import conv as conv_lib
from tolerance import assert_close

# (H, W, C, O, kh, kw, stride, padding): the shapes the networks use (3x3 stride 2, ProGAN's 4x4
# fused resampling, 1x1 strided and not), odd sizes, stride 3, asymmetric kernels and paddings.
CASES = [
    (5, 7, 4, 6, 3, 3, 2, (0, 0)),
    (6, 6, 4, 6, 3, 3, 2, (1, 1)),
    (4, 4, 2, 3, 4, 4, 2, (1, 1)),
    (6, 5, 3, 3, 1, 1, 2, (0, 0)),
    (7, 7, 2, 2, 3, 2, 3, (2, 1)),
    (9, 8, 2, 3, 5, 3, 2, (2, 0)),
    (5, 6, 4, 3, 1, 1, 1, (0, 0)),  # stride-1 1x1 (toRGB, fromRGB, D's skips): a matrix product on CPU
]


def _derivatives(f, x, w):
    """Value, weight gradient, and R1-style second derivatives d/dw and d/dx of |d/dx sum sin f|^2."""
    def r1(x, w):
        return jnp.sum(jax.grad(lambda x: jnp.sum(jnp.sin(f(x, w))))(x) ** 2)
    return [f(x, w), jax.grad(lambda w: jnp.sum(jnp.sin(f(x, w))))(w),
            jax.grad(r1, 1)(x, w), jax.grad(r1, 0)(x, w)]


def _both(f, x, w):
    old = conv_lib.CONV_IMPL
    try:
        conv_lib.CONV_IMPL = "gemm"  # read when tracing: one fresh jit per implementation
        fast = jax.jit(lambda x, w: _derivatives(f, x, w))(x, w)
        conv_lib.CONV_IMPL = "xla"
        reference = jax.jit(lambda x, w: _derivatives(f, x, w))(x, w)
    finally:
        conv_lib.CONV_IMPL = old
    return fast, reference


def _functions(stride, padding):
    return {"conv2d": lambda x, w: conv_lib.conv2d(x, w, stride, padding),
            "conv_transpose2d": lambda x, w: conv_lib.conv_transpose2d(x, w, stride, padding)}


@pytest.mark.parametrize("case", CASES, ids=[f"{c[4]}x{c[5]}s{c[6]}p{c[7][0]}{c[7][1]}" for c in CASES])
def test_fast_convolutions_equal_xla_to_second_order_in_float64(case):
    h, wd, c, o, kh, kw, stride, padding = case
    rng = np.random.RandomState(0)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.randn(2, h, wd, c))
        w = jnp.asarray(rng.randn(kh, kw, c, o))
        for name, f in _functions(stride, padding).items():
            fast, reference = _both(f, x, w)
            for what, a, b in zip(["value", "dL/dw", "d(R1)/dw", "d(R1)/dx"], fast, reference):
                assert a.shape == b.shape, (name, what)
                err = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
                assert err < 1e-12, f"{name} {case} {what}: relative error {err:.2e}"


def test_fast_convolutions_in_float32_at_a_network_shape():
    """StyleGAN2's 16 -> 32 up-convolution and D's 32 -> 16 down-convolution (32 channels)."""
    rng = np.random.RandomState(1)
    x = jnp.asarray(rng.randn(4, 16, 16, 32), jnp.float32)
    w = jnp.asarray(rng.randn(3, 3, 32, 32) / 17, jnp.float32)
    y = jnp.asarray(rng.randn(4, 35, 35, 32), jnp.float32)  # D: FIR-padded input of the stride-2 conv
    for f, arg in [(lambda x, w: conv_lib.conv_transpose2d(x, w, 2), x), (lambda x, w: conv_lib.conv2d(x, w, 2), y)]:
        fast, reference = _both(f, arg, w)
        for a, b in zip(fast, reference):
            assert_close(np.asarray(a), np.asarray(b), rtol=2e-5)
