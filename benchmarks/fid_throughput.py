"""FID Inception throughput on the current backend, and the time a 50k-sample FID would take.

    python benchmarks/fid_throughput.py                     # 32x32 inputs, batch 16 (CPU) / 256 (GPU)
    python benchmarks/fid_throughput.py --resolution=256 --batch=128

Runs the in-graph feature step (TF1 resize to 299, Inception-v3, moments over the global batch)
of ``gan_jax.metrics.fid.FeatureExtractor`` on random uint8 images with random weights (the
speed does not depend on the weights), over all local devices. Prints the compile time, images/s
and the projected seconds for 50,000 generated + 50,000 real images (``fid50k_full`` on a 50k
dataset; the real half is computed once and cached).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import parallel
from gan_jax.metrics import fid, inception


def main() -> None:
    on_cpu = jax.default_backend() == "cpu"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16 if on_cpu else 256)
    parser.add_argument("--iters", type=int, default=3 if on_cpu else 20)
    parser.add_argument("--convention", default="nvidia", choices=inception.CONVENTIONS)
    args = parser.parse_args()
    mesh = parallel.make_mesh()
    variables = inception.InceptionV3().init(jax.random.PRNGKey(0), jnp.zeros((1, 299, 299, 3)))
    ext = fid.FeatureExtractor(variables, mesh, args.convention)
    images = np.random.RandomState(0).randint(0, 256, (args.batch, args.resolution, args.resolution, 3)).astype(np.uint8)
    stats = fid.FeatureStats(inception.FEATURE_DIM)
    t0 = time.perf_counter()
    ext.update(stats, images)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.iters):
        ext.update(stats, images)
    per_batch = (time.perf_counter() - t0) / args.iters
    ips = args.batch / per_batch
    print(f"backend={jax.default_backend()} devices={mesh.devices.size} input={args.resolution}x{args.resolution} "
          f"batch={args.batch} convention={args.convention}")
    print(f"compile+first batch: {first:.1f} s")
    print(f"inception: {ips:.1f} images/s ({per_batch * 1000:.0f} ms per batch of {args.batch})")
    print(f"fid50k_full projected: {100_000 / ips:.0f} s ({100_000 / ips / 3600:.2f} h) for 50k generated + 50k "
          f"real images, the generator's time not included; {50_000 / ips:.0f} s once the real statistics are cached")


if __name__ == "__main__":
    main()
