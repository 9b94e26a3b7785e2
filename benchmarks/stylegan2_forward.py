"""StyleGAN2 G and D forward throughput on the current backend, grouped vs per-sample modconv.

    python benchmarks/stylegan2_forward.py                       # 32x32 and 256x256
    python benchmarks/stylegan2_forward.py --resolutions=256 --batch=32 --channel_max=512

Prints one line per figure: ``<net> <res>x<res> <variant> batch=<N> channels<=<C>: <images/s>``.
On a CPU backend the channel count is capped (``--channel_max``, default 64 there) so that a
256x256 run takes seconds; the networks are otherwise the paper256 configuration
(channel_base 16384, 8 mapping layers, skip G, resnet D).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from gan_jax.models import stylegan2


def _time(fn, *args, iters: int) -> tuple[float, float]:
    """(compile + first call seconds, mean seconds per call after warm-up)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    jax.block_until_ready(fn(*args))
    t0 = time.perf_counter()
    for _ in range(iters):
        out = fn(*args)
    jax.block_until_ready(out)
    return first, (time.perf_counter() - t0) / iters


def main() -> None:
    on_cpu = jax.default_backend() == "cpu"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", default="32,256")
    parser.add_argument("--batch", type=int, default=8 if on_cpu else 32)
    parser.add_argument("--channel_base", type=int, default=16384)
    parser.add_argument("--channel_max", type=int, default=64 if on_cpu else 512)
    parser.add_argument("--iters", type=int, default=5 if on_cpu else 50)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    dtype = jnp.dtype(args.dtype)
    print(f"backend={jax.default_backend()} devices={jax.device_count()} dtype={args.dtype}")

    for res in [int(r) for r in args.resolutions.split(",")]:
        G = stylegan2.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                                channel_base=args.channel_base, channel_max=args.channel_max, conv_clamp=256, dtype=dtype)
        D = stylegan2.Discriminator(c_dim=0, img_resolution=res, img_channels=3, channel_base=args.channel_base,
                                    channel_max=args.channel_max, conv_clamp=256, dtype=dtype)
        z = jax.random.normal(jax.random.key(0), (args.batch, 512))
        img = jax.random.normal(jax.random.key(1), (args.batch, res, res, 3))
        g_vars = G.init({"params": jax.random.key(2)}, z[:1], noise_mode="const")
        d_vars = D.init({"params": jax.random.key(3)}, img[:1])
        tag = f"{res}x{res} batch={args.batch} channels<={args.channel_max}"
        for fused, name in ((True, "grouped"), (False, "per-sample")):
            g = jax.jit(lambda v, z, key, fused=fused: G.apply(v, z, noise_mode="random", fused_modconv=fused,
                                                               rngs={"noise": key}))
            first, sec = _time(g, g_vars, z, jax.random.key(4), iters=args.iters)
            print(f"G {tag} modconv={name}: {args.batch / sec:.1f} images/s (compile+first {first:.1f} s)", flush=True)
        d = jax.jit(D.apply)
        first, sec = _time(d, d_vars, img, iters=args.iters)
        print(f"D {tag}: {args.batch / sec:.1f} images/s (compile+first {first:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
