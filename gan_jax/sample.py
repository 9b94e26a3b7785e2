"""Images from a trained or converted run, the tools NVIDIA's users know.

    python -m gan_jax.sample --workdir=DIR --seeds=0-15 --trunc=0.7 --outdir=OUT          # generate.py
    python -m gan_jax.sample style-mix --workdir=DIR --rows=85,100,75 --cols=55,821 --styles=0-6 --outdir=OUT
    python -m gan_jax.sample interpolate --workdir=DIR --seeds=0,5,9 --frames=24 --outdir=OUT

Seed ``s`` means ``z = numpy.random.RandomState(s).randn(1, z_dim)``, as NVIDIA's ``generate.py``
and ``style_mixing.py``, so the same network, seed, truncation, class and noise mode give the same
image in both. Images come from G_ema with ``noise_mode='const'`` by default, as generate.py.
``--class_idx`` picks the class of a conditional network. Any family works through its recipe's
``sampling`` (``gan_jax.recipes.Sampling``); style mixing needs styles (``num_ws``) and
truncation a mapping (``truncation=True``), and other families say so.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from absl import app, flags, logging

from gan_jax.images import save_png, tile

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (its latest checkpoint is used).")
_SEEDS = flags.DEFINE_string("seeds", "0-15", "generate/interpolate: seeds, e.g. '0-15' or '1,5,9'.")
_ROWS = flags.DEFINE_string("rows", "85,100,75,458,1500", "style-mix: row seeds (their coarse styles are kept).")
_COLS = flags.DEFINE_string("cols", "55,821,1789,293", "style-mix: column seeds (their --styles are copied in).")
_STYLES = flags.DEFINE_string("styles", "0-6", "style-mix: the ws indices taken from the column seed.")
_FRAMES = flags.DEFINE_integer("frames", 24, "interpolate: frames per transition between consecutive seeds.")
_FORMAT = flags.DEFINE_enum("format", "gif", ["gif", "mp4"], "interpolate: video format (mp4 needs imageio-ffmpeg).")
_TRUNC = flags.DEFINE_float("trunc", 1.0, "Truncation psi.")
_CLASS = flags.DEFINE_integer("class_idx", None, "Class label for a conditional network.")
_NOISE = flags.DEFINE_enum("noise_mode", "const", ["const", "random", "none"], "Noise mode (generate.py's --noise-mode).")
_OUTDIR = flags.DEFINE_string("outdir", None, "Where the images go.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")


def parse_range(spec: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7] (NVIDIA's num_range)."""
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            lo, hi = part.split("-", 1)
            out += list(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    if not out:
        raise ValueError(f"no numbers in {spec!r}; expected e.g. '0-15' or '1,5,9'")
    return out


parse_seeds = parse_range


def seed_latents(seeds: list[int], z_dim: int) -> np.ndarray:
    """float32 [len(seeds), z_dim]: row i is ``RandomState(seeds[i]).randn(1, z_dim)``."""
    return np.concatenate([np.random.RandomState(s).randn(1, z_dim) for s in seeds]).astype(np.float32)


def to_uint8(images: Any) -> np.ndarray:
    """``(x * 127.5 + 128).clamp(0, 255)`` -> uint8, as generate.py."""
    return np.clip(np.asarray(images, np.float32) * 127.5 + 128, 0, 255).astype(np.uint8)


class Sampler:
    """G_ema of the checkpoint in ``workdir``: latents -> ws -> images, each step compiled once."""

    def __init__(self, workdir: str, step: int | None = None):
        import jax  # noqa: PLC0415
        import ml_collections  # noqa: PLC0415

        from gan_jax import checkpoint, parallel, recipes  # noqa: PLC0415
        from gan_jax.compiled import initial_state  # noqa: PLC0415

        ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), async_save=False)
        if ckpt.latest_step() is None:
            raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, 'checkpoints')}; train with "
                                    f"`python -m gan_jax.main --workdir={workdir}` or convert a pickle with "
                                    f"`python -m gan_jax.convert --source=PKL --dest={workdir}` first")
        self.config = ml_collections.ConfigDict(ckpt.saved_config(step))
        mesh = parallel.make_mesh()
        recipe = recipes.build(self.config, mesh)
        self.state = ckpt.restore(initial_state(recipe, mesh), self.config.to_dict(), step)
        ckpt.close()
        self.sampling: recipes.Sampling = recipe.sampling()
        self.z_dim, self.c_dim, self.num_ws = self.sampling.z_dim, self.sampling.c_dim, self.sampling.num_ws
        self._mapping = jax.jit(self.sampling.mapping)
        self._synthesis = jax.jit(self.sampling.synthesis, static_argnums=3)

    def labels(self, class_idx: int | None, n: int):
        if self.c_dim == 0:
            if class_idx is not None:
                raise ValueError("--class_idx given, but the network is unconditional")
            return None
        if class_idx is None:
            raise ValueError(f"the network is conditional ({self.c_dim} classes): pass --class_idx")
        if not 0 <= class_idx < self.c_dim:
            raise ValueError(f"--class_idx={class_idx} is outside 0..{self.c_dim - 1}")
        return np.eye(self.c_dim, dtype=np.float32)[[class_idx] * n]

    def mapping(self, z: np.ndarray, c: np.ndarray | None = None, truncation_psi: float = 1.0) -> np.ndarray:
        """ws [N, num_ws, w_dim] of G_ema (truncated towards w_avg as NVIDIA's mapping does); for a family
        without a mapping network, what its synthesis takes (ProGAN: ``[z, c]``)."""
        if not self.sampling.truncation and truncation_psi != 1:
            raise ValueError(f"--trunc={truncation_psi}: this {self.config.recipe} network has no mapping network "
                             "to truncate in; use --trunc=1")
        return np.asarray(self._mapping(self.state, z, c, truncation_psi))

    def synthesis(self, ws: np.ndarray, noise_mode: str = "const", seed: int = 0) -> np.ndarray:
        """float images [N, H, W, C] from ws."""
        import jax  # noqa: PLC0415

        return np.asarray(self._synthesis(self.state, ws, jax.random.PRNGKey(seed), noise_mode))

    def images(self, z: np.ndarray, c: np.ndarray | None = None, truncation_psi: float = 1.0,
               noise_mode: str = "const") -> np.ndarray:
        """float images [N, H, W, C] in about [-1, 1]: ``G_ema(z, c, truncation_psi, noise_mode)``."""
        return self.synthesis(self.mapping(z, c, truncation_psi), noise_mode)


def generate(workdir: str, seeds: list[int], truncation_psi: float = 1.0, class_idx: int | None = None,
             noise_mode: str = "const", step: int | None = None, sampler: Sampler | None = None) -> np.ndarray:
    """uint8 [len(seeds), H, W, C]: NVIDIA generate.py's images for ``seeds``."""
    s = sampler or Sampler(workdir, step)
    z = seed_latents(seeds, s.z_dim)
    return to_uint8(s.images(z, s.labels(class_idx, len(seeds)), truncation_psi, noise_mode))


def style_mix(workdir: str, row_seeds: list[int], col_seeds: list[int], col_styles: list[int],
              truncation_psi: float = 1.0, class_idx: int | None = None, noise_mode: str = "const",
              step: int | None = None, sampler: Sampler | None = None) -> np.ndarray:
    """NVIDIA style_mixing.py's grid, uint8 [(R+1)*H, (C+1)*W, ch]: first row the column seeds,
    first column the row seeds, cell (r, c) = row seed r's ws with ``col_styles`` from column seed c."""
    s = sampler or Sampler(workdir, step)
    num_ws = s.num_ws
    if num_ws is None:
        raise ValueError(f"style mixing needs a network with styles (ws); this {s.config.recipe} network has none")
    bad = [i for i in col_styles if not 0 <= i < num_ws]
    if bad:
        raise ValueError(f"--styles {bad} outside 0..{num_ws - 1} (this network has {num_ws} ws)")
    seeds = sorted(set(row_seeds + col_seeds))
    # style_mixing.py truncates all ws towards w_avg, as the mapping's truncation does
    ws = s.mapping(seed_latents(seeds, s.z_dim), s.labels(class_idx, len(seeds)), truncation_psi)
    w = dict(zip(seeds, ws))
    mixed = []
    for r in row_seeds:
        for c in col_seeds:
            m = w[r].copy()
            m[col_styles] = w[c][col_styles]
            mixed.append(m)
    singles = to_uint8(s.synthesis(np.stack([w[x] for x in seeds]), noise_mode))
    single = dict(zip(seeds, singles))
    cells = to_uint8(s.synthesis(np.stack(mixed), noise_mode))
    h, wd, ch = singles.shape[1:]
    blank = np.zeros((h, wd, ch), np.uint8)
    tiles = [blank] + [single[c] for c in col_seeds]
    for i, r in enumerate(row_seeds):
        tiles += [single[r]] + list(cells[i * len(col_seeds):(i + 1) * len(col_seeds)])
    return tile(np.stack(tiles), len(col_seeds) + 1)


def interpolate(workdir: str, seeds: list[int], frames: int = 24, truncation_psi: float = 1.0,
                class_idx: int | None = None, noise_mode: str = "const", step: int | None = None,
                sampler: Sampler | None = None) -> np.ndarray:
    """uint8 frames [T, H, W, C]: linear interpolation in W between consecutive seeds, looping back."""
    if len(seeds) < 2:
        raise ValueError("interpolate needs at least two seeds, e.g. --seeds=0,5")
    s = sampler or Sampler(workdir, step)
    ws = s.mapping(seed_latents(seeds, s.z_dim), s.labels(class_idx, len(seeds)), truncation_psi)
    t = (np.arange(frames, dtype=np.float32) / frames).reshape(-1, *[1] * (ws.ndim - 1))  # ws [N, ...]
    path = np.concatenate([ws[i] * (1 - t) + ws[(i + 1) % len(seeds)] * t for i in range(len(seeds))])
    return np.concatenate([to_uint8(s.synthesis(path[i:i + 16], noise_mode)) for i in range(0, len(path), 16)])


def write_video(path: str, frames: np.ndarray, fps: int = 24) -> str:
    """GIF with Pillow, or MP4 with imageio-ffmpeg where it is installed. Returns the path written."""
    from PIL import Image  # noqa: PLC0415

    squeeze = (lambda x: x[..., 0]) if frames.shape[-1] == 1 else (lambda x: x)
    if path.endswith(".mp4"):
        try:
            import imageio.v2 as imageio  # noqa: PLC0415
        except ImportError as err:
            raise RuntimeError("MP4 needs `pip install imageio imageio-ffmpeg`; use --format=gif") from err
        imageio.mimwrite(path, [squeeze(f) for f in frames], fps=fps)
        return path
    images = [Image.fromarray(squeeze(f)) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.WARNING)
    command = argv[1] if len(argv) > 1 else "generate"
    if len(argv) > 2 or command not in ("generate", "style-mix", "interpolate"):
        raise app.UsageError(f"expected one of generate (default), style-mix, interpolate; got {argv[1:]}")
    if not _WORKDIR.value or not _OUTDIR.value:
        raise app.UsageError("--workdir and --outdir are required")
    os.makedirs(_OUTDIR.value, exist_ok=True)
    common = dict(truncation_psi=_TRUNC.value, class_idx=_CLASS.value, noise_mode=_NOISE.value, step=_STEP.value)
    if command == "generate":
        seeds = parse_range(_SEEDS.value)
        images = generate(_WORKDIR.value, seeds, **common)
        for seed, img in zip(seeds, images):
            save_png(os.path.join(_OUTDIR.value, f"seed{seed:04d}.png"), img)
        save_png(os.path.join(_OUTDIR.value, "grid.png"), tile(images, math.ceil(math.sqrt(len(seeds)))))
        print(f"wrote {len(seeds)} images and grid.png to {_OUTDIR.value}")
    elif command == "style-mix":
        image = style_mix(_WORKDIR.value, parse_range(_ROWS.value), parse_range(_COLS.value), parse_range(_STYLES.value), **common)
        save_png(os.path.join(_OUTDIR.value, "grid.png"), image)
        print(f"wrote the style-mixing grid {_OUTDIR.value}/grid.png")
    else:
        frames = interpolate(_WORKDIR.value, parse_range(_SEEDS.value), _FRAMES.value, **common)
        path = write_video(os.path.join(_OUTDIR.value, f"interpolation.{_FORMAT.value}"), frames)
        print(f"wrote {len(frames)} frames to {path}")


if __name__ == "__main__":
    app.run(main)
