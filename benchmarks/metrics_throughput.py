"""Throughput of the issue-20 metrics' heavy parts on the current backend: VGG16 features, PPL samples,
precision/recall distance blocks.

    taskset -c 0 python benchmarks/metrics_throughput.py              # small CPU defaults (docs/metrics.md)
    python benchmarks/metrics_throughput.py --batch=64 --n=50000 --dim=4096 --row_batch=10000 --col_batch=10000 \
        --ppl_resolution=256 --ppl_batch=64 --ppl_samples=1024

Each number is the median of ``--repeats`` timed runs after one warm-up run (the compile), timed
with ``time.perf_counter`` around calls that end in a device-to-host copy or ``block_until_ready``.
Random weights (speed does not depend on them). Each line also gives the work per item that XLA's
cost analysis counts (``compiled.cost_analysis()['flops']``), from which docs/metrics.md estimates
the time on an accelerator (``--tflops``: the sustained float32 rate assumed there).

- **VGG16 features**: images/s of the LPIPS trunk (``vgg16.relu_features``, what PPL and the
  projector run at up to 256x256) and of ``vgg16.pr_features`` (VGG16 to fc2 at 224x224, the
  precision/recall embedding), on ``[batch, size, size, 3]`` inputs, on the default device;
- **PPL samples**: samples/s of ``ppl.compute_ppl`` (two generator images and their LPIPS features
  per sample) with the demo's StyleGAN2 (configs/default.py, ``--ppl_resolution`` overriding its
  32x32), ``--ppl_setting`` (default ``ppl_wend``), batches of ``--ppl_batch`` over all devices;
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

from gan_jax.metrics import ppl, precision_recall, vgg16


def flops_of(fn: Callable, *args: Any) -> float:
    """XLA's flop count of ``jax.jit(fn)(*args)`` (0.0 when the backend gives none)."""
    try:
        cost = jax.jit(fn).lower(*args).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost.get("flops", 0.0))
    except Exception:  # noqa: BLE001 (cost analysis is optional per backend)
        return 0.0


def random_variables(shapes: Any, seed: int = 0) -> Any:
    """Random float32 arrays of ``jax.eval_shape`` results (N(0, 0.02): activations stay finite)."""
    rs = np.random.RandomState(seed)
    return jax.tree.map(lambda s: jnp.asarray(rs.randn(*s.shape).astype(np.float32) * 0.02 + 0.01), shapes)


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
    parser.add_argument("--size", type=int, default=256, help="LPIPS-trunk input side (PPL's 256x256)")
    parser.add_argument("--pr_size", type=int, default=vgg16.PR_SIZE, help="pr_features input side (224)")
    parser.add_argument("--batch", type=int, default=2 if on_cpu else 64)
    parser.add_argument("--n", type=int, default=2000 if on_cpu else 50000, help="features per set")
    parser.add_argument("--dim", type=int, default=512 if on_cpu else 4096)
    parser.add_argument("--row_batch", type=int, default=1000 if on_cpu else 10000)
    parser.add_argument("--col_batch", type=int, default=1000 if on_cpu else 10000)
    parser.add_argument("--half", type=int, default=1, help="1: float16 features/distances as NVIDIA's")
    parser.add_argument("--ppl_resolution", type=int, default=32, help="the demo G's resolution (configs/default.py)")
    parser.add_argument("--ppl_setting", default="ppl_wend", choices=sorted(ppl.PPL_METRICS))
    parser.add_argument("--ppl_batch", type=int, default=8 if on_cpu else 64)
    parser.add_argument("--ppl_samples", type=int, default=32 if on_cpu else 1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tflops", type=float, default=30.0, help="assumed accelerator float32 TFLOP/s for the "
                        "estimates printed (docs/metrics.md)")
    parser.add_argument("--skip_vgg", action="store_true")
    parser.add_argument("--skip_ppl", action="store_true")
    parser.add_argument("--skip_pr", action="store_true")
    args = parser.parse_args()
    print(f"backend={jax.default_backend()} devices={jax.device_count()} ({jax.devices()[0].device_kind})")
    est = lambda flops: f"{flops / (args.tflops * 1e12) * 1e3:.3g} ms at {args.tflops:g} TFLOP/s"  # noqa: E731

    if not args.skip_vgg:
        trunk_vars = random_variables(vgg16.abstract_variables(classifier=False))
        full_vars = random_variables(vgg16.abstract_variables(classifier=True))
        rs = np.random.RandomState(0)
        x = jnp.asarray(rs.randn(args.batch, args.size, args.size, 3).astype(np.float32))
        u8 = jnp.asarray(rs.randint(0, 256, (args.batch, args.pr_size, args.pr_size, 3)).astype(np.uint8))
        taps = jax.jit(vgg16.relu_features)
        embed = jax.jit(lambda v, a: vgg16.pr_features(v, a, args.pr_size))
        for name, fn, f_args, size in (
                ("LPIPS trunk (relu taps)", lambda: jax.block_until_ready(taps(trunk_vars, x)),
                 (vgg16.relu_features, trunk_vars, x), args.size),
                ("pr_features (to fc2)", lambda: jax.block_until_ready(embed(full_vars, u8)),
                 (lambda v, a: vgg16.pr_features(v, a, args.pr_size), full_vars, u8), args.pr_size)):
            first, per, _ = timed(fn, args.repeats)
            flops = flops_of(*f_args) / args.batch
            print(f"vgg16 {name}: {args.batch / per:.2f} images/s at {size}x{size}, batch {args.batch} "
                  f"({per * 1000:.0f} ms per batch; first call {first:.1f} s); {flops / 1e9:.2f} GFLOP/image "
                  f"(accelerator estimate {est(flops)} per image)")
        del full_vars

    if not args.skip_ppl:
        from gan_jax.configs import default as default_config  # noqa: PLC0415

        from gan_jax.recipes import stylegan2 as sg2_recipe  # noqa: PLC0415

        cfg = default_config.get_config()
        cfg.data.resolution = args.ppl_resolution
        G, _ = sg2_recipe.build_networks(cfg)
        G_vars = random_variables(jax.eval_shape(lambda: G.init(
            jax.random.PRNGKey(0), jnp.zeros((1, G.z_dim)), None, noise_mode="const")))
        G_vars = {"params": G_vars["params"], "buffers": G_vars["buffers"]}
        lp = random_variables({"params": {"net": vgg16.abstract_variables(classifier=False)["params"]["features"],
                                          **{f"lin{k}": {"weight": jax.ShapeDtypeStruct((c,), jnp.float32)}
                                             for k, c in enumerate(vgg16.LPIPS_CHANNELS)}}})
        lp = jax.tree.map(jnp.abs, lp)
        s = ppl.PPL_METRICS[args.ppl_setting]
        run = lambda: ppl.compute_ppl(G, G_vars, ppl.lpips_features, lp, space=s.space, sampling=s.sampling,  # noqa: E731
                                      crop=s.crop, num_samples=args.ppl_samples, batch_size=args.ppl_batch)
        first, per, _ = timed(run, args.repeats)
        draws = ppl.draw_ppl(jax.random.PRNGKey(0), G, G_vars, args.ppl_batch)
        flops = flops_of(lambda gv, fv, d: ppl.ppl_sampler(G, gv, ppl.lpips_features, fv, d, space=s.space,
                                                           sampling=s.sampling, crop=s.crop), G_vars, lp, draws)
        flops /= args.ppl_batch
        print(f"ppl {args.ppl_setting} (G {args.ppl_resolution}x{args.ppl_resolution}, the demo's channels): "
              f"{args.ppl_samples / per:.1f} samples/s, batch {args.ppl_batch} ({per:.2f} s per {args.ppl_samples}; "
              f"first call {first:.1f} s); {flops / 1e9:.2f} GFLOP/sample (accelerator estimate {est(flops)} per "
              f"sample); 50k samples: {50000 * per / args.ppl_samples / 60:.1f} min here")

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
        pair_flops = 2 * args.dim + 3  # the r.c matmul (2 D) and |r|^2 + |c|^2 - 2 r.c
        print(f"distance blocks: {args.n * args.n / t_radii / 1e6:.1f} M pairs/s (radii); pr50k3_full at dim 4096 "
              f"is 4 x 50000^2 pairs = {4 * 50000 ** 2 * (2 * 4096 + 3) / 1e12:.0f} TFLOP (accelerator estimate "
              f"{4 * 50000 ** 2 * (2 * 4096 + 3) / (args.tflops * 1e12):.1f} s at {args.tflops:g} TFLOP/s); "
              f"{pair_flops} flop per pair here")


if __name__ == "__main__":
    main()
