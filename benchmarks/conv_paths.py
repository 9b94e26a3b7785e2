"""Convolution derivatives on this backend: XLA's own convolutions against gan_jax's CPU paths.

    python benchmarks/conv_paths.py            # StyleGAN2 bench32 shapes, batch 32

For the resampling convolutions of a StyleGAN2 block at 16x16 <-> 32x32 (G's transposed 3x3
stride-2 up-convolution 256 -> 128, D's 3x3 stride-2 down-convolution 128 -> 256 of the FIR-padded
35x35 input), and for comparison a 3x3 stride-1 convolution 128 -> 128 at 32x32 (XLA's on every
path), the time of the forward pass, of the input and weight gradients, and of R1's second
derivative (d/dw of |d/dx sum f|^2), with ``gan_jax.nn.conv.CONV_IMPL`` = ``xla`` (lax
convolutions and XLA's autodiff) and ``gemm`` (the matrix-product forms ``auto`` picks on CPU).
Prints milliseconds per call (median of 3 after a compiled warm-up call).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax.nn import conv as conv_lib  # noqa: E402


def _ms(fn, *args, repeats: int = 3) -> float:
    compiled = jax.jit(fn).lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    rng = np.random.RandomState(0)
    arr = lambda *s: jnp.asarray(rng.randn(*s) / 10, jnp.float32)  # noqa: E731
    cases = {
        "up 3x3 s2 [32,16,16,256]->128": (lambda x, w: conv_lib.conv_transpose2d(x, w, 2), arr(32, 16, 16, 256), arr(3, 3, 256, 128)),
        "down 3x3 s2 [32,35,35,128]->256": (lambda x, w: conv_lib.conv2d(x, w, 2), arr(32, 35, 35, 128), arr(3, 3, 128, 256)),
        "same 3x3 s1 [32,32,32,128]->128": (lambda x, w: conv_lib.conv2d(x, w, 1, (1, 1)), arr(32, 32, 32, 128), arr(3, 3, 128, 128)),
    }
    print(f"backend={jax.default_backend()} devices={jax.device_count()} jax={jax.__version__}")
    print(f"{'convolution':34s} {'impl':5s} {'forward':>9s} {'grad x':>9s} {'grad w':>9s} {'R1 d/dw':>9s}  (ms)")
    for name, (f, x, w) in cases.items():
        for impl in ("xla", "gemm") if "s2" in name else ("xla",):
            conv_lib.CONV_IMPL = impl  # read at trace time; every _ms call traces afresh
            r1 = lambda x, w: jnp.sum(jax.grad(lambda x: jnp.sum(f(x, w)))(x) ** 2)  # noqa: B023, E731
            row = [_ms(f, x, w), _ms(jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), 0), x, w),  # noqa: B023
                   _ms(jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), 1), x, w), _ms(jax.grad(r1, 1), x, w)]  # noqa: B023
            print(f"{name:34s} {impl:5s} " + " ".join(f"{t:9.1f}" for t in row), flush=True)
    conv_lib.CONV_IMPL = "auto"


if __name__ == "__main__":
    main()
