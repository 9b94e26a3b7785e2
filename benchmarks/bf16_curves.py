"""bfloat16 compute against float32: do the training curves agree over a few hundred steps?

    python benchmarks/bf16_curves.py                                   # the demo config, 300 steps
    python benchmarks/bf16_curves.py --config=configs/stylegan2_bench32.py --steps=200 --window=25

Three runs of the same config on the same batches (the data pipeline's, seed 0): float32 from
seed 0 (the reference), ``model.dtype=bfloat16`` from seed 0 (convolutions and activations in
bfloat16; parameters, optimizer states and losses stay float32), and float32 from seed 1, which
is how far two float32 runs drift apart by chance alone. A GAN's losses are noisy step to step and
two runs diverge chaotically within tens of steps whatever the precision, so the comparison is of
window means (``--window`` steps): bfloat16 matches when its distance from the reference is of the
size of the seed-to-seed distance. Prints one row per window and a summary line per loss:

    loss  mean|bf16 - f32|  mean|f32 seed 1 - f32|  ratio
"""

from __future__ import annotations

import os
import sys
import time

from absl import app, flags
from ml_collections import config_flags

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO)

_CONFIG = config_flags.DEFINE_config_file("config", os.path.join(_REPO, "configs", "default.py"), "Config file.")
_STEPS = flags.DEFINE_integer("steps", 300, "Training steps per run.")
_WINDOW = flags.DEFINE_integer("window", 50, "Steps per window mean.")

# The losses compared (StyleGAN2's metric names; others are listed if present).
_KEYS = ("Gmain/Loss/G/loss", "Dmain/Loss/D/loss", "Dmain/Loss/scores/real", "Dmain/Loss/scores/fake",
         "Dreg/Loss/r1_penalty")


def _run(config, source, dtype: str, seed: int, steps: int) -> dict[str, list[tuple[int, float]]]:
    """Per-step host values of the losses of one run: ``{name: [(step, value), ...]}``."""
    import jax

    from gan_jax import data as data_lib
    from gan_jax import parallel, recipes, train

    config = train.resolve_config(config, source)
    config.model.dtype = dtype
    config.seed = seed
    mesh = parallel.make_mesh()
    recipe = recipes.build(config, mesh)
    b = int(config.train.batch_size)
    state = parallel.replicate(recipe.create_state(jax.random.PRNGKey(seed)), mesh)
    steps_fn = train.CompiledSteps(recipe.phases(recipe.stages()[0]), mesh, b)
    batches = data_lib.make_batches(source, b, seed=0, xflip=bool(config.data.xflip))  # the same batches for all runs
    curves: dict[str, list[tuple[int, float]]] = {}
    t0 = time.perf_counter()
    for step in range(steps):
        state, metrics = steps_fn(state, parallel.global_batch(next(batches), mesh), step)
        for k, v in train.check_finite(step, metrics).items():
            curves.setdefault(k, []).append((step, v))
    batches.close()
    print(f"  {dtype} seed {seed}: {steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)
    return curves


def _window_means(curve: list[tuple[int, float]], window: int, steps: int) -> list[float]:
    out = []
    for start in range(0, steps, window):
        vals = [v for s, v in curve if start <= s < start + window]
        out.append(sum(vals) / len(vals) if vals else float("nan"))
    return out


def main(argv: list[str]) -> None:
    del argv
    config, steps, window = _CONFIG.value, _STEPS.value, _WINDOW.value
    print(f"config={config.recipe} res={config.data.resolution} batch={config.train.batch_size} steps={steps} "
          f"window={window}")
    from gan_jax import train

    source = train.open_dataset(config)  # the config's seed: the same images for the three runs
    ref = _run(config, source, "float32", 0, steps)
    bf16 = _run(config, source, "bfloat16", 0, steps)
    other = _run(config, source, "float32", 1, steps)
    keys = [k for k in _KEYS if k in ref] or sorted(k for k in ref if "Loss" in k)
    for k in keys:
        r, b, o = (_window_means(c[k], window, steps) for c in (ref, bf16, other))
        print(f"\n{k}  (window means; steps)")
        print(f"{'steps':>11s} {'f32 seed0':>10s} {'bf16 seed0':>10s} {'f32 seed1':>10s}")
        for i, (x, y, z) in enumerate(zip(r, b, o)):
            print(f"{i * window:5d}-{min((i + 1) * window, steps) - 1:<5d} {x:10.4f} {y:10.4f} {z:10.4f}")
    print("\nloss  mean|bf16 - f32|  mean|f32 seed 1 - f32|  ratio   (over the window means)")
    for k in keys:
        r, b, o = (_window_means(c[k], window, steps) for c in (ref, bf16, other))
        d_bf16 = sum(abs(y - x) for x, y in zip(r, b)) / len(r)
        d_seed = sum(abs(z - x) for x, z in zip(r, o)) / len(r)
        print(f"{k}  {d_bf16:.4f}  {d_seed:.4f}  {d_bf16 / d_seed if d_seed else float('nan'):.2f}")


if __name__ == "__main__":
    app.run(main)
