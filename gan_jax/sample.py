"""Images from a trained or converted run, the tools NVIDIA's users know.

    python -m gan_jax.sample --workdir=DIR --seeds=0-15 --trunc=0.7 --outdir=OUT          # generate.py
    python -m gan_jax.sample --network=network-snapshot.pkl --seeds=0-999 --batch=32 --outdir=OUT
    python -m gan_jax.sample style-mix --workdir=DIR --rows=85,100,75 --cols=55,821 --styles=0-6 --outdir=OUT
    python -m gan_jax.sample interpolate --workdir=DIR --seeds=0,5,9 --frames=24 --outdir=OUT

Seed ``s`` means ``z = numpy.random.RandomState(s).randn(1, z_dim)``, as NVIDIA's ``generate.py``
and ``style_mixing.py``, so the same network, seed, truncation, class and noise mode give the same
image in both. Images come from G_ema with ``noise_mode='const'`` by default, as generate.py.
``--network=FILE.pkl`` samples an NVIDIA pickle converted in memory (``gan_jax.convert``) instead of a
run. Seeds go through the networks ``--batch`` at a time (the last batch padded to the same shape), so
a long range does not run out of memory and gives the images it gives one by one.
``--class_idx`` picks the class of a conditional network. Any family works through its recipe's
``sampling`` (``gan_jax.recipes.Sampling``); style mixing needs styles (``num_ws``) and
truncation a mapping (``truncation=True``), and other families say so. BigGAN's ``--trunc=T`` (T < 1)
is the author's truncation, not a psi towards an average: seed ``s`` gives the latents of
BigGAN-PyTorch's ``truncated_z_sample(1, dim_z, truncation=T, seed=s)`` (``T * truncnorm(-2, 2)``).
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
_NETWORK = flags.DEFINE_string("network", None, "An NVIDIA network pickle (StyleGAN2-ADA / StyleGAN3 snapshot, ProGAN / "
                               "StyleGAN TF pickle), converted in memory: instead of --workdir (generate.py's --network).")
_BATCH = flags.DEFINE_integer("batch", 16, "Images per device batch (the last one is padded to it); lower it when "
                              "memory runs out.")
_PROJECTED_W = flags.DEFINE_string("projected_w", None, "generate: render the ws of a projected_w.npz (gan_jax.project) "
                                   "as proj00.png, ... instead of --seeds (generate.py's --projected-w).")


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
    """G_ema of the checkpoint in ``workdir`` (or of the NVIDIA pickle ``network``): latents -> ws ->
    images, ``batch_size`` at a time (the last batch padded), so each step compiles once."""

    def __init__(self, workdir: str | None = None, step: int | None = None, network: str | None = None,
                 batch_size: int = 16):
        import jax  # noqa: PLC0415

        from gan_jax import recipes  # noqa: PLC0415

        if batch_size < 1:
            raise ValueError(f"--batch must be at least 1, got {batch_size}")
        from gan_jax.run_loader import load_run  # noqa: PLC0415

        self.config, recipe, self.state = load_run(workdir, step, network)
        self.batch_size = int(batch_size)
        self.sampling: recipes.Sampling = recipe.sampling()
        self.z_dim, self.c_dim, self.num_ws = self.sampling.z_dim, self.sampling.c_dim, self.sampling.num_ws
        self._mapping = jax.jit(self.sampling.mapping)
        self._synthesis = jax.jit(self.sampling.synthesis, static_argnums=3)
        self._seed_latents = recipe.seed_latents  # NVIDIA's rule; BigGAN's truncation has its own

    def latents(self, seeds: list[int], truncation_psi: float = 1.0) -> np.ndarray:
        """z [len(seeds), z_dim] of ``seeds``: the recipe's ``seed_latents(seeds, psi)`` (NVIDIA's rule but
        for BigGAN's truncation)."""
        return np.asarray(self._seed_latents(seeds, truncation_psi), np.float32)

    def _batched(self, fn: Any, *arrays: np.ndarray | None) -> np.ndarray:
        """``fn(*batch)`` over ``batch_size`` rows of ``arrays`` (None passes through), concatenated; the
        last batch is padded with copies of its first row and cut back, so one shape is compiled."""
        n = next(len(a) for a in arrays if a is not None)
        out = []
        for lo in range(0, n, self.batch_size):
            part = [None if a is None else np.asarray(a[lo:lo + self.batch_size]) for a in arrays]
            real = len(next(p for p in part if p is not None))
            if n > self.batch_size and real < self.batch_size:
                part = [None if p is None else np.concatenate([p, np.repeat(p[:1], self.batch_size - real, 0)])
                        for p in part]
            out.append(np.asarray(fn(*part))[:real])
        return np.concatenate(out)

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
        return self._batched(lambda z, c: self._mapping(self.state, z, c, truncation_psi), z, c)

    def synthesis(self, ws: np.ndarray, noise_mode: str = "const", seed: int = 0) -> np.ndarray:
        """float images [N, H, W, C] from ws, ``batch_size`` at a time (``noise_mode='random'`` draws
        each batch's noise from ``seed`` folded with the batch's first row)."""
        import jax  # noqa: PLC0415

        rows = np.arange(len(ws))
        return self._batched(lambda w, r: self._synthesis(
            self.state, w, jax.random.fold_in(jax.random.PRNGKey(seed), int(r[0])), noise_mode), ws, rows)

    def images(self, z: np.ndarray, c: np.ndarray | None = None, truncation_psi: float = 1.0,
               noise_mode: str = "const") -> np.ndarray:
        """float images [N, H, W, C] in about [-1, 1]: ``G_ema(z, c, truncation_psi, noise_mode)``."""
        return self.synthesis(self.mapping(z, c, truncation_psi), noise_mode)


def generate(workdir: str | None, seeds: list[int], truncation_psi: float = 1.0, class_idx: int | None = None,
             noise_mode: str = "const", step: int | None = None, sampler: Sampler | None = None) -> np.ndarray:
    """uint8 [len(seeds), H, W, C]: NVIDIA generate.py's images for ``seeds``."""
    s = sampler or Sampler(workdir, step)
    z = s.latents(seeds, truncation_psi)
    return to_uint8(s.images(z, s.labels(class_idx, len(seeds)), truncation_psi, noise_mode))


def style_mix(workdir: str | None, row_seeds: list[int], col_seeds: list[int], col_styles: list[int],
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
    ws = s.mapping(s.latents(seeds, truncation_psi), s.labels(class_idx, len(seeds)), truncation_psi)
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


def interpolate(workdir: str | None, seeds: list[int], frames: int = 24, truncation_psi: float = 1.0,
                class_idx: int | None = None, noise_mode: str = "const", step: int | None = None,
                sampler: Sampler | None = None) -> np.ndarray:
    """uint8 frames [T, H, W, C]: linear interpolation in W between consecutive seeds, looping back."""
    if len(seeds) < 2:
        raise ValueError("interpolate needs at least two seeds, e.g. --seeds=0,5")
    s = sampler or Sampler(workdir, step)
    ws = s.mapping(s.latents(seeds, truncation_psi), s.labels(class_idx, len(seeds)), truncation_psi)
    t = (np.arange(frames, dtype=np.float32) / frames).reshape(-1, *[1] * (ws.ndim - 1))  # ws [N, ...]
    path = np.concatenate([ws[i] * (1 - t) + ws[(i + 1) % len(seeds)] * t for i in range(len(seeds))])
    return to_uint8(s.synthesis(path, noise_mode))  # in batches of s.batch_size


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
    from gan_jax.console import quiet_libraries  # noqa: PLC0415 (imports jax: after flag parsing)

    quiet_libraries()  # before TensorFlow is imported (tensorflow_datasets)
    logging.set_verbosity(logging.WARNING)
    command = argv[1] if len(argv) > 1 else "generate"
    if len(argv) > 2 or command not in ("generate", "style-mix", "interpolate"):
        raise app.UsageError(f"expected one of generate (default), style-mix, interpolate; got {argv[1:]}")
    if bool(_WORKDIR.value) == bool(_NETWORK.value) or not _OUTDIR.value:
        raise app.UsageError("--outdir and one of --workdir (a run) and --network (an NVIDIA pickle) are required")
    if _BATCH.value < 1:
        raise app.UsageError(f"--batch must be at least 1, got {_BATCH.value}")
    os.makedirs(_OUTDIR.value, exist_ok=True)
    sampler = Sampler(_WORKDIR.value, _STEP.value, network=_NETWORK.value, batch_size=_BATCH.value)
    common = dict(truncation_psi=_TRUNC.value, class_idx=_CLASS.value, noise_mode=_NOISE.value, sampler=sampler)
    if command == "generate" and _PROJECTED_W.value:  # proj00.png, ... as generate.py --projected-w
        from gan_jax.project import render_projected_w  # noqa: PLC0415
        paths = render_projected_w(sampler, _PROJECTED_W.value, _OUTDIR.value, _NOISE.value)
        print(f"wrote {len(paths)} images to {_OUTDIR.value}")
    elif command == "generate":
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
