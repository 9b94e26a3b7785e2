"""VGG16 feature and precision/recall distance throughput on the current backend.

    python benchmarks/metrics_throughput.py                          # small CPU defaults
    python benchmarks/metrics_throughput.py --batch=64 --n=50000 --dim=4096 --row_batch=10000 --col_batch=10000

Two numbers, each the median of ``--repeats`` timed runs after one warm-up run (the compile),
timed with ``time.perf_counter`` around calls that end in a device-to-host copy or
``block_until_ready``:

- **VGG16 features**: images/s of ``gan_jax.metrics.vgg16.relu_features`` (the LPIPS taps) and of
  the full ``VGG16`` (features + classifier) on random ``[batch, size, size, 3]`` inputs with random
  weights (the speed does not depend on the weights), on the default device;
- **distance blocks**: rows/s of ``precision_recall.kth_radii`` (the manifold radii: every row
  against every column, ``col_batch`` columns per scan step) and ``precision_recall.covered`` on
  random ``[n, dim]`` features over all devices; ``pr50k3`` computes 2 x (radii + covered) over
  50,000 rows each, and the projected time is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO)

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.metrics import precision_recall, vgg16


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """(first call's seconds, median seconds of ``repeats`` further calls, the last result)."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times), out


def main() -> None:
    on_cpu = jax.default_backend() == "cpu"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="VGG16 input side")
    parser.add_argument("--batch", type=int, default=2 if on_cpu else 64)
    parser.add_argument("--n", type=int, default=2000 if on_cpu else 50000, help="features per set")
    parser.add_argument("--dim", type=int, default=512 if on_cpu else 4096)
    parser.add_argument("--row_batch", type=int, default=1000 if on_cpu else 10000)
    parser.add_argument("--col_batch", type=int, default=1000 if on_cpu else 10000)
    parser.add_argument("--half", type=int, default=1, help="1: float16 features/distances as NVIDIA's")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip_vgg", action="store_true")
    parser.add_argument("--skip_pr", action="store_true")
    args = parser.parse_args()
    print(f"backend={jax.default_backend()} devices={jax.device_count()} ({jax.devices()[0].device_kind})")

    if not args.skip_vgg:
        x = jnp.asarray(np.random.RandomState(0).randn(args.batch, args.size, args.size, 3).astype(np.float32))
        variables = jax.jit(vgg16.VGG16().init)(jax.random.PRNGKey(0), x[:1])
        taps = jax.jit(vgg16.relu_features)
        full = jax.jit(vgg16.VGG16().apply)
        for name, fn in (("relu taps (LPIPS trunk)", lambda: jax.block_until_ready(taps(variables, x))),
                         ("features + classifier", lambda: jax.block_until_ready(full(variables, x)))):
            first, per, _ = timed(fn, args.repeats)
            print(f"vgg16 {name}: {args.batch / per:.1f} images/s at {args.size}x{args.size}, batch {args.batch} "
                  f"({per * 1000:.0f} ms per batch; first call {first:.1f} s)")

    if not args.skip_pr:
        rs = np.random.RandomState(1)
        a = rs.randn(args.n, args.dim).astype(np.float32)
        b = rs.randn(args.n, args.dim).astype(np.float32)
        kw = {"row_batch_size": args.row_batch, "col_batch_size": args.col_batch, "half": bool(args.half)}
        def report(name: str, first: float, per: float) -> None:
            print(f"distances {name}: {args.n / per:.0f} rows/s against {args.n} columns, dim {args.dim}, "
                  f"blocks {args.row_batch}x{args.col_batch} ({per:.2f} s per {args.n} rows; first call {first:.1f} s)")

        first, t_radii, radii = timed(lambda: precision_recall.kth_radii(a, **kw), args.repeats)
        report("radii", first, t_radii)
        first, t_covered, _ = timed(lambda: precision_recall.covered(b, a, radii, **kw), args.repeats)
        report("covered", first, t_covered)
        scale = (50_000 / args.n) ** 2
        print(f"pr50k3 projected (features given, 50k x 50k, same dim): "
              f"{2 * scale * (t_radii + t_covered):.0f} s")


if __name__ == "__main__":
    main()
