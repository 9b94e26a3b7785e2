"""Images from a trained run: ``python -m gan_jax.sample --workdir=DIR --seeds=0-15 --trunc=0.7 --outdir=OUT``.

Seed ``s`` means ``z = numpy.random.RandomState(s).randn(1, z_dim)``, as NVIDIA's ``generate.py``,
so the same network, seed, truncation, class and noise mode give the same image in both. Writes
``seed0000.png``, ... and ``grid.png`` (G_ema, ``noise_mode='const'`` by default, as generate.py).
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
from absl import app, flags, logging

_WORKDIR = flags.DEFINE_string("workdir", None, "Training directory (its latest checkpoint is used).")
_SEEDS = flags.DEFINE_string("seeds", "0-15", "Seeds: '0-15', '1,5,9' or a mix.")
_TRUNC = flags.DEFINE_float("trunc", 1.0, "Truncation psi.")
_CLASS = flags.DEFINE_integer("class_idx", None, "Class label for a conditional network.")
_NOISE = flags.DEFINE_enum("noise_mode", "const", ["const", "random", "none"], "Noise mode (generate.py's --noise-mode).")
_OUTDIR = flags.DEFINE_string("outdir", None, "Where the PNGs go.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")


def parse_seeds(spec: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7] (generate.py's num_range)."""
    seeds: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            seeds += list(range(int(lo), int(hi) + 1))
        else:
            seeds.append(int(part))
    if not seeds:
        raise ValueError(f"no seeds in {spec!r}; expected e.g. '0-15' or '1,5,9'")
    return seeds


def seed_latents(seeds: list[int], z_dim: int) -> np.ndarray:
    """float32 [len(seeds), z_dim]: row i is ``RandomState(seeds[i]).randn(1, z_dim)``."""
    return np.concatenate([np.random.RandomState(s).randn(1, z_dim) for s in seeds]).astype(np.float32)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """``(x * 127.5 + 128).clamp(0, 255)`` -> uint8, as generate.py."""
    return np.clip(np.asarray(images, np.float32) * 127.5 + 128, 0, 255).astype(np.uint8)


def load_run(workdir: str, step: int | None = None):
    """(config, recipe statics, state) of the checkpoint in ``workdir``."""
    import jax  # noqa: PLC0415
    import ml_collections  # noqa: PLC0415

    from gan_jax import checkpoint, parallel, recipes  # noqa: PLC0415

    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), async_save=False)
    if ckpt.latest_step() is None:
        raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, 'checkpoints')}; train with "
                                f"`python -m gan_jax.main --workdir={workdir}` first")
    config = ml_collections.ConfigDict(ckpt.saved_config(step))
    recipe = recipes.get_recipe(config.recipe)
    mesh = parallel.make_mesh()
    state = ckpt.restore(recipe.create_state(config, jax.random.PRNGKey(0), mesh), config.to_dict(), step)
    ckpt.close()
    return config, recipe, mesh, state


def generate(workdir: str, seeds: list[int], truncation_psi: float = 1.0, class_idx: int | None = None,
             noise_mode: str = "const", step: int | None = None) -> np.ndarray:
    """uint8 [len(seeds), H, W, C] images of G_ema for ``seeds``."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    config, recipe, mesh, state = load_run(workdir, step)
    c_dim = int(config.model.c_dim)
    c = None
    if c_dim:
        if class_idx is None:
            raise ValueError(f"the network is conditional ({c_dim} classes): pass --class_idx")
        if not 0 <= class_idx < c_dim:
            raise ValueError(f"--class_idx={class_idx} is outside 0..{c_dim - 1}")
        c = jnp.asarray(np.eye(c_dim, dtype=np.float32)[[class_idx] * len(seeds)])
    elif class_idx is not None:
        raise ValueError("--class_idx given, but the network is unconditional")
    z = jnp.asarray(seed_latents(seeds, int(config.model.G.z_dim)))
    sample = jax.jit(lambda s, z, c: recipe.sample_fn(config, mesh)(s, z, c, truncation_psi=truncation_psi,
                                                                       noise_mode=noise_mode))
    return to_uint8(jax.device_get(sample(state, z, c)))


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not _WORKDIR.value or not _OUTDIR.value:
        raise app.UsageError("--workdir and --outdir are required")
    from PIL import Image  # noqa: PLC0415

    seeds = parse_seeds(_SEEDS.value)
    images = generate(_WORKDIR.value, seeds, _TRUNC.value, _CLASS.value, _NOISE.value, _STEP.value)
    os.makedirs(_OUTDIR.value, exist_ok=True)
    squeeze = (lambda x: x[..., 0]) if images.shape[-1] == 1 else (lambda x: x)
    for seed, img in zip(seeds, images):
        Image.fromarray(squeeze(img)).save(os.path.join(_OUTDIR.value, f"seed{seed:04d}.png"))
    cols = math.ceil(math.sqrt(len(seeds)))
    rows = math.ceil(len(seeds) / cols)
    pad = np.zeros((rows * cols - len(seeds), *images.shape[1:]), np.uint8)
    grid = np.concatenate([images, pad]).reshape(rows, cols, *images.shape[1:]).transpose(0, 2, 1, 3, 4)
    grid = grid.reshape(rows * images.shape[1], cols * images.shape[2], images.shape[3])
    Image.fromarray(squeeze(grid)).save(os.path.join(_OUTDIR.value, "grid.png"))
    print(f"wrote {len(seeds)} images and grid.png to {_OUTDIR.value}")


if __name__ == "__main__":
    app.run(main)
