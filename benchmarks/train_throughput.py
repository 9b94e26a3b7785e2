"""Training throughput of a config: images/s and sec/kimg after warm-up, compile time, peak memory.

    python benchmarks/train_throughput.py --config=configs/stylegan2_bench32.py
    python benchmarks/train_throughput.py --config=configs/default.py --config.train.batch_size=64 --cycles=2
    python benchmarks/train_throughput.py --config=configs/biggan_imagenet128.py --config.train.D_batch_size=256

BigGAN (``recipe == 'biggan'``) runs with 1000 classes; ``--biggan_width=auto`` (default) keeps the
config's full width on a GPU / TPU and uses G_ch = D_ch = 16 with a D-step batch of 16 on a CPU
(``full`` / ``reduced`` force either). One BigGAN iteration is its D steps, G step and EMA.

The real batch is random uint8 already on the devices, as NVIDIA's side-by-side driver does
(``../shared/peers``), so only the compiled step is timed. Warm-up runs one full cycle of the
lazy-regularisation schedule (compiling every phase set); the timed window is ``--cycles`` full
cycles (``lcm(g_reg_interval, d_reg_interval)`` iterations each, 16 for StyleGAN2). Imports neither
TensorFlow nor clu.
"""

from __future__ import annotations

import math
import os
import sys
import time

from absl import app, flags
from ml_collections import config_flags

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO)

from gan_jax import host_malloc  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", os.path.join(_REPO, "configs", "default.py"), "Config file.")
_CYCLES = flags.DEFINE_integer("cycles", 1, "Timed lazy-regularisation cycles (16 iterations each for StyleGAN2).")
_BIGGAN_WIDTH = flags.DEFINE_enum("biggan_width", "auto", ["auto", "full", "reduced"],
                                  "BigGAN configs: full width on an accelerator, reduced on a CPU (auto).")


def main(argv: list[str]) -> None:
    kept_scratch = host_malloc.configure(_CONFIG.value)  # before jax's first computation, as gan_jax.main
    import jax
    import numpy as np

    from gan_jax import parallel, recipes, train

    config = _CONFIG.value
    config.unlock()
    config.data.channels = int(config.data.get("channels", 3))
    config.model.c_dim = int(config.model.get("c_dim", 0))
    if config.recipe == "biggan":
        config.model.c_dim = config.model.c_dim or 1000  # ImageNet's classes
        if _BIGGAN_WIDTH.value == "reduced" or (_BIGGAN_WIDTH.value == "auto" and jax.default_backend() == "cpu"):
            config.model.G.G_ch = config.model.D.D_ch = 16
            config.train.D_batch_size = 16
            config.train.batch_size = 16 * int(config.train.num_D_steps)
    mesh = parallel.make_mesh()
    recipe = recipes.build(config, mesh)
    b, r, ch = int(config.train.batch_size), int(config.data.resolution), config.data.channels
    state = parallel.replicate(recipe.create_state(jax.random.PRNGKey(0)), mesh)
    phases = recipe.phases(recipe.stages()[0])
    steps = train.CompiledSteps(phases, mesh, b)
    cycle = math.lcm(*[p.interval for p in phases])
    rng = np.random.RandomState(0)
    batch = {"image": rng.randint(0, 256, (b, r, r, ch), dtype=np.uint8)}
    if config.model.c_dim:
        batch["label"] = np.eye(config.model.c_dim, dtype=np.float32)[rng.randint(0, config.model.c_dim, b)]
    batch = parallel.global_batch(batch, mesh)

    t0 = time.perf_counter()
    for step in range(cycle):  # warm-up: compiles every phase set of the schedule
        state, metrics = steps(state, batch, step)
    jax.block_until_ready(state)
    warm = time.perf_counter() - t0
    compile_s = sum(steps.compile_seconds.values())

    n = cycle * _CYCLES.value
    t0 = time.perf_counter()
    for step in range(cycle, cycle + n):
        state, metrics = steps(state, batch, step)
    jax.block_until_ready(state)
    sec = time.perf_counter() - t0
    losses = {k: float(v) for k, v in jax.device_get(metrics).items() if "loss" in k}

    ips = n * b / sec
    print(f"config={config.recipe} res={r} batch={b} devices={mesh.devices.size} backend={jax.default_backend()} "
          f"dtype={config.model.dtype} fused_modconv={config.model.get('fused_modconv')} timed_iters={n}"
          + (f" G_ch={config.model.G.G_ch}" if config.recipe == "biggan" else "") + f" host_malloc={int(kept_scratch)}")
    print(f"losses after the timed window: {losses}")
    print(f"compile_seconds={compile_s:.1f} ({len(steps.compile_seconds)} phase sets; warm-up cycle {warm:.1f} s)")
    stats = [d.memory_stats() or {} for d in mesh.devices.flat]
    peak = max((s.get("peak_bytes_in_use", 0) for s in stats), default=0)
    print(f"peak_device_memory_bytes={peak}" if peak else "peak_device_memory_bytes=unavailable on this backend")
    print(f"images_per_sec={ips:.2f} sec_per_kimg={1000 / ips:.1f}")


if __name__ == "__main__":
    app.run(main)
