"""Sliced Wasserstein distance (SWD) between two image sets, as ProGAN computes it.

Follows ``metrics/sliced_wasserstein.py`` of https://github.com/tkarras/progressive_growing_of_gans at
commit ``2504c3f3cb98ca58751610ad61fa1097313152bd`` (Karras et al. 2018, "Progressive Growing of GANs",
appendix D), for uint8 NHWC images:

1. Laplacian pyramid (``generate_laplacian_pyramid``) with the 5x5 binomial kernel
   ``outer([1,4,6,4,1])/256``, scipy's ``mode='mirror'`` borders, from the full resolution down to 16x16
   (the last level is the 16x16 Gaussian level);
2. per level, 128 descriptors of 7x7 pixels x C channels per image at uniformly drawn positions
   (``get_descriptors_for_minibatch``);
3. per level and set, every channel normalised to zero mean and unit standard deviation over all the
   set's descriptors (``finalize_descriptors``);
4. per level, 4 repeats x 128 random unit directions; the projections of the two sets are sorted and
   the mean absolute difference is the distance (``sliced_wasserstein``); the 4 repeats are averaged;
5. distances x 1e3 (``API.end``), one per level, and their mean.

The pyramid and the descriptor gather run in jitted JAX (elementwise float32; every tap of the first
two levels is an exact integer sum, so a 32x32 pyramid equals scipy's bit for bit). Steps 3-4 run in
numpy float32 with the official calls (``np.mean``/``np.std`` over ``(0, 2, 3)`` of ``[M, C, 7, 7]``,
``np.matmul``, ``np.sort(axis=0)``): their float32 rounding is part of the official numbers, and
numpy's sort is ~8x faster than XLA:CPU's.

Random draws: :func:`draw_swd` consumes a ``np.random.RandomState`` exactly as ProGAN's ``API``
consumes the global ``np.random`` when ``util_scripts.evaluate_metrics`` feeds the reals and then the
fakes (positions per minibatch and level, x before y; the reals-vs-reals directions that
``end('reals')`` draws; the fakes' positions; the directions per level and repeat). So
``sliced_wasserstein(reals, fakes, seed=s, minibatch_size=b)`` equals the official API run after
``np.random.seed(s)`` with both sets fed in minibatches of ``b`` (ProGAN's own evaluation also draws
latents from the same global generator between feeds, which no replay can reproduce).

Generalisations (documented deviations): any channel count C >= 1 (the official code asserts C == 3;
the descriptor is then C x 7 x 7), and the directions/positions can be injected (``rng=`` or
``draws=``). Sets whose descriptors have a zero-variance channel give NaN, as the official code does.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

UPSTREAM = "tkarras/progressive_growing_of_gans@2504c3f3cb98ca58751610ad61fa1097313152bd"

NHOOD_SIZE = 7  # API.__init__: self.nhood_size = 7
NHOODS_PER_IMAGE = 128  # API.__init__: self.nhoods_per_image = 128
DIR_REPEATS = 4  # API.__init__: self.dir_repeats = 4
DIRS_PER_REPEAT = 128  # API.__init__: self.dirs_per_repeat = 128
MIN_RESOLUTION = 16  # API.__init__: while res >= 16: self.resolutions.append(res)
SCALE = 1e3  # API.end: dist = [d * 1e3 for d in dist]  # multiply by 10^3
# gaussian_filter = np.float32(outer([1, 4, 6, 4, 1])) / 256.0: applied here as integer taps per axis
# (sums of at most 256 * 255 * 256 < 2**24 stay exact in float32), divided by a power of two after.
_TAPS = (1.0, 4.0, 6.0, 4.0, 1.0)
# Images per jitted pyramid/descriptor call when no minibatch_size is given (bounds device memory).
_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class SWDResult:
    """SWD in ProGAN's units (x 1e3).

    ``resolutions``: the pyramid levels' resolutions, full resolution first, down to 16 (``[32, 16]``
    for 32x32 images); ``levels``: one distance per resolution, same order (ProGAN's
    ``SWDx1e3_<res>``); ``mean``: their mean (``SWDx1e3_avg``).
    """

    resolutions: list[int]
    levels: list[float]
    mean: float

    def as_dict(self) -> dict[str, float]:
        """ProGAN's metric names -> values: ``{'SWDx1e3_32': ..., 'SWDx1e3_16': ..., 'SWDx1e3_avg': ...}``."""
        out = {f"SWDx1e3_{r}": v for r, v in zip(self.resolutions, self.levels)}
        out["SWDx1e3_avg"] = self.mean
        return out


@dataclasses.dataclass(frozen=True)
class SWDDraws:
    """Every random number SWD uses, per pyramid level (full resolution first).

    ``real_x``/``real_y``/``fake_x``/``fake_y``: ``[N * 128]`` int descriptor centres (column, row) in
    that level, descriptor ``m`` belonging to image ``m // 128``; each in ``[3, res_level - 4]``.
    ``directions``: ``[4, C * 49, 128]`` float32 unit columns (repeat, descriptor component, direction),
    the components in the official descriptor order (channel, x offset, y offset).
    """

    real_x: list[np.ndarray]
    real_y: list[np.ndarray]
    fake_x: list[np.ndarray]
    fake_y: list[np.ndarray]
    directions: list[np.ndarray]


def resolutions_of(resolution: int) -> list[int]:
    """The pyramid levels' resolutions, as ``API.__init__`` lists them: ``[res, res / 2, ..., 16]``."""
    out = []
    res = resolution
    while res >= MIN_RESOLUTION:
        out.append(res)
        res //= 2
    return out


def _draw_positions(rng: np.random.RandomState, num_images: int, levels: list[int],
                    minibatch_size: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Centres in the order API.feed draws them: per minibatch, per level, x then y."""
    half = NHOOD_SIZE // 2
    xs: list[list[np.ndarray]] = [[] for _ in levels]
    ys: list[list[np.ndarray]] = [[] for _ in levels]
    for begin in range(0, num_images, minibatch_size):
        n = NHOODS_PER_IMAGE * (min(begin + minibatch_size, num_images) - begin)
        for lod, res in enumerate(levels):
            # get_descriptors_for_minibatch: x = x + np.random.randint(H, S[3] - H, size=(N, 1, 1, 1)),
            # then y = y + np.random.randint(H, S[2] - H, ...); square levels, so S[2] == S[3] == res.
            xs[lod].append(rng.randint(half, res - half, size=n))
            ys[lod].append(rng.randint(half, res - half, size=n))
    return [np.concatenate(x) for x in xs], [np.concatenate(y) for y in ys]


def _draw_directions(rng: np.random.RandomState, levels: list[int], channels: int) -> list[np.ndarray]:
    """Directions in the order API.end draws them: per level, per repeat, [C*49, 128] unit columns."""
    dim = channels * NHOOD_SIZE * NHOOD_SIZE
    out = []
    for _ in levels:
        reps = []
        for _ in range(DIR_REPEATS):
            dirs = rng.randn(dim, DIRS_PER_REPEAT)  # sliced_wasserstein: np.random.randn(A.shape[1], dirs_per_repeat)
            dirs /= np.sqrt(np.sum(np.square(dirs), axis=0, keepdims=True))  # normalise each direction
            reps.append(dirs.astype(np.float32))  # dirs = dirs.astype(np.float32)
        out.append(np.stack(reps))
    return out


def draw_swd(rng: np.random.RandomState, num_images: int, resolution: int, channels: int,
             minibatch_size: int | None = None) -> SWDDraws:
    """All of SWD's random draws, consumed from ``rng`` in the official API's order (module docstring).

    ``minibatch_size``: the size of the minibatches the official API would be fed (``None``: one
    minibatch of ``num_images``); it changes only the order in which positions are drawn.
    """
    levels = resolutions_of(resolution)
    mb = num_images if minibatch_size is None else int(minibatch_size)
    real_x, real_y = _draw_positions(rng, num_images, levels, mb)
    _draw_directions(rng, levels, channels)  # end('reals') compares the reals with themselves: drawn, unused
    fake_x, fake_y = _draw_positions(rng, num_images, levels, mb)
    directions = _draw_directions(rng, levels, channels)
    return SWDDraws(real_x, real_y, fake_x, fake_y, directions)


def _blur(x: jax.Array) -> jax.Array:
    """5x5 binomial sum with integer taps and scipy 'mirror' borders: [N, H, W, C] -> same, x 256."""
    h, w = x.shape[1], x.shape[2]
    # scipy.ndimage mode='mirror' (d c b | a b c d | c b a) is numpy's pad mode 'reflect'.
    p = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    rows = sum(t * p[:, k:k + h] for k, t in enumerate(_TAPS))
    return sum(t * rows[:, :, k:k + w] for k, t in enumerate(_TAPS))


def _pyr_down(x: jax.Array) -> jax.Array:
    """pyr_down: convolve(gaussian_filter, mode='mirror')[:, :, ::2, ::2] (NHWC here)."""
    return _blur(x)[:, ::2, ::2] / 256.0


def _pyr_up(x: jax.Array) -> jax.Array:
    """pyr_up: zeros with x at [::2, ::2], convolved with gaussian_filter * 4.0, mode='mirror'."""
    n, h, w, c = x.shape
    z = jnp.zeros((n, 2 * h, 2 * w, c), x.dtype).at[:, ::2, ::2].set(x)
    return _blur(z) / 64.0  # * 4.0 / 256.0


def _laplacian_pyramid(images: jax.Array, num_levels: int) -> list[jax.Array]:
    """generate_laplacian_pyramid on float32 [N, H, W, C]; level i is [N, H / 2**i, W / 2**i, C]."""
    pyramid = [images.astype(jnp.float32)]
    for _ in range(1, num_levels):
        pyramid.append(_pyr_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - _pyr_up(pyramid[-1])
    return pyramid


def laplacian_pyramid(images: np.ndarray, num_levels: int | None = None) -> list[np.ndarray]:
    """ProGAN's Laplacian pyramid of uint8/float [N, H, W, C] images as float32 NHWC arrays.

    Level 0 is ``[N, H, W, C]`` (full resolution, band-pass), the last level the Gaussian low-pass at
    ``H / 2**(num_levels - 1)``. ``num_levels`` defaults to the SWD levels down to 16x16.
    """
    images = np.asarray(images)
    if num_levels is None:
        num_levels = len(resolutions_of(images.shape[1]))
    return [np.asarray(a) for a in _pyramid_jit(jnp.asarray(images), num_levels)]


@functools.partial(jax.jit, static_argnums=1)
def _pyramid_jit(images: jax.Array, num_levels: int) -> list[jax.Array]:
    return _laplacian_pyramid(images, num_levels)


def _gather(level: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    """get_descriptors_for_minibatch: [n, h, w, C] level, [n*128] centres -> [n*128, C, 7, 7].

    The official ``nhood, chan, x, y = np.ogrid[0:N, 0:C, -H:H+1, -H:H+1]`` puts the x (column)
    offset on axis 2 and the y (row) offset on axis 3, so a descriptor is the patch transposed:
    ``desc[m, c, i, j] = image[m // 128, y_m + j - 3, x_m + i - 3, c]``.
    """
    half = NHOOD_SIZE // 2
    img = jnp.arange(x.shape[0]) // NHOODS_PER_IMAGE  # img = nhood // nhoods_per_image
    off = jnp.arange(-half, half + 1)
    rows = y[:, None, None] + off[None, None, :]  # [M, 1, 7]: y offset on the last axis (j)
    cols = x[:, None, None] + off[None, :, None]  # [M, 7, 1]: x offset on the middle axis (i)
    patch = level[img[:, None, None], rows, cols]  # [M, 7 (i), 7 (j), C]
    return jnp.transpose(patch, (0, 3, 1, 2))


@functools.partial(jax.jit, static_argnums=1)
def _descriptors_jit(images: jax.Array, num_levels: int, xs: tuple[jax.Array, ...],
                     ys: tuple[jax.Array, ...]) -> list[jax.Array]:
    """uint8 [n, H, W, C] + per-level centres [n*128] -> per-level descriptors [n*128, C, 7, 7]."""
    pyramid = _laplacian_pyramid(images, num_levels)
    return [_gather(level, x, y) for level, x, y in zip(pyramid, xs, ys)]


def _descriptors(images: np.ndarray | Iterable[np.ndarray], xs: list[np.ndarray], ys: list[np.ndarray],
                 chunk: int, name: str = "images", shape: tuple[int, ...] | None = None) -> list[np.ndarray]:
    """Descriptors of all images per level, float32 [N*128, C, 7, 7], computed ``chunk`` images at a time.

    ``images``: uint8 [N, H, W, C], or an iterable of consecutive uint8 chunks [n_i, H, W, C] (each
    checked against ``shape`` [N, H, W, C]; they must add up to N): only one chunk of images is held
    at a time. A descriptor depends only on its image and its centre, so chunking changes nothing."""
    num_levels = len(xs)
    total = xs[0].shape[0] // NHOODS_PER_IMAGE if num_levels else 0
    if isinstance(images, np.ndarray):
        chunks: Iterable[np.ndarray] = (images[b:b + chunk] for b in range(0, images.shape[0], chunk))
    else:
        chunks = images
    parts: list[list[np.ndarray]] = [[] for _ in range(num_levels)]
    begin = 0
    for part in chunks:
        part = _check_images(name, part)
        if shape is not None and part.shape[1:] != tuple(shape[1:]):
            raise ValueError(f"SWD: {name} chunks must be [n, {', '.join(map(str, shape[1:]))}]; found {part.shape}")
        end = begin + part.shape[0]
        if end > total:
            raise ValueError(f"SWD: {name} chunks hold more than the {total} images announced")
        sl = slice(NHOODS_PER_IMAGE * begin, NHOODS_PER_IMAGE * end)
        # Centres are local to the chunk's images: image index m // 128 restarts at the chunk.
        out = _descriptors_jit(jnp.asarray(part), num_levels,
                               tuple(jnp.asarray(x[sl], jnp.int32) for x in xs),
                               tuple(jnp.asarray(y[sl], jnp.int32) for y in ys))
        for lod, d in enumerate(out):
            parts[lod].append(np.asarray(d))
        begin = end
    if begin != total:
        raise ValueError(f"SWD: {name} chunks hold {begin} images, {total} were announced")
    return [np.concatenate(p) if len(p) > 1 else p[0] for p in parts]


def finalize_descriptors(desc: np.ndarray) -> np.ndarray:
    """finalize_descriptors: [M, C, 7, 7] -> [M, C*49], each channel to zero mean, unit std (float32)."""
    desc = np.array(desc, dtype=np.float32)  # a copy: the official code works in place
    desc -= np.mean(desc, axis=(0, 2, 3), keepdims=True)
    desc /= np.std(desc, axis=(0, 2, 3), keepdims=True)
    return desc.reshape(desc.shape[0], -1)


def sliced_wasserstein_distance(a: np.ndarray, b: np.ndarray, directions: np.ndarray) -> float:
    """Official ``sliced_wasserstein`` with the directions given: [M, D], [M, D], [R, D, K] -> float.

    Per repeat: project on the K directions, sort each direction's projections over the M
    descriptors, mean absolute difference; then the mean over the R repeats (not yet x 1e3).
    """
    results = []
    for dirs in np.asarray(directions, dtype=np.float32):  # dirs = dirs.astype(np.float32)
        proj_a = np.sort(np.matmul(a, dirs), axis=0)  # projA = np.sort(np.matmul(A, dirs), axis=0)
        proj_b = np.sort(np.matmul(b, dirs), axis=0)
        results.append(np.mean(np.abs(proj_a - proj_b)))  # average over neighborhoods and directions
    return float(np.mean(np.asarray(results, dtype=np.float64)))  # average over repeats


def _check_images(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"SWD: {name} must be uint8 images [N, H, W, C] in [0, 255]; found dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"SWD: {name} must be uint8 NHWC [N, H, W, C] (4 dimensions); found shape {x.shape}")
    n, h, w, c = x.shape
    if h != w or h < MIN_RESOLUTION or h & (h - 1):
        raise ValueError(f"SWD: {name} must be square with a power-of-two resolution >= {MIN_RESOLUTION} "
                         f"(ProGAN's pyramid goes down to 16x16); found {h}x{w} (shape {x.shape})")
    if n < 1 or c < 1:
        raise ValueError(f"SWD: {name} needs at least one image and one channel; found shape {x.shape}")
    return x


def sliced_wasserstein(reals: np.ndarray, fakes: np.ndarray, seed: int = 0, *,
                       rng: np.random.RandomState | None = None, draws: SWDDraws | None = None,
                       minibatch_size: int | None = None) -> SWDResult:
    """ProGAN's SWD between two uint8 image sets, in ProGAN's units (x 1e3).

    Args:
      reals, fakes: uint8 ``[N, H, W, C]`` arrays of the same shape; H == W a power of two >= 16;
        any C >= 1 (ProGAN used C == 3).
      seed: seeds a ``np.random.RandomState`` for the draws when neither ``rng`` nor ``draws`` is given.
      rng: a ``RandomState`` to draw from instead (consumed as ProGAN's API consumes ``np.random``).
      draws: all random numbers given explicitly (:class:`SWDDraws`, e.g. from :func:`draw_swd`);
        overrides ``seed`` and ``rng``.
      minibatch_size: replay the draw order of the official API fed in minibatches of this size
        (``None``: one minibatch); also the number of images per jitted call.

    Returns:
      :class:`SWDResult`: ``levels`` (one float per resolution from H down to 16) and ``mean``.

    Raises:
      ValueError: shapes differ, not uint8, not 4-D, or not a square power-of-two >= 16 resolution.
    """
    reals = _check_images("reals", reals)
    fakes = _check_images("fakes", fakes)
    if reals.shape != fakes.shape:
        raise ValueError(f"SWD: reals and fakes must have the same shape [N, H, W, C]; "
                         f"found reals {reals.shape} vs fakes {fakes.shape}")
    n, res, _, channels = reals.shape
    levels = resolutions_of(res)
    if minibatch_size is not None and minibatch_size < 1:
        raise ValueError(f"SWD: minibatch_size must be >= 1 or None; found {minibatch_size}")
    if draws is None:
        draws = draw_swd(rng if rng is not None else np.random.RandomState(seed), n, res, channels,
                         minibatch_size)
    _check_draws(draws, n, levels, channels)
    chunk = minibatch_size or min(n, _CHUNK)
    desc_real = _descriptors(reals, draws.real_x, draws.real_y, chunk)
    desc_fake = _descriptors(fakes, draws.fake_x, draws.fake_y, chunk)
    return _result(desc_real, desc_fake, draws, levels)


def _result(desc_real: list[np.ndarray], desc_fake: list[np.ndarray], draws: SWDDraws, levels: list[int]) -> SWDResult:
    """Per level: finalize both sets' descriptors [M, C, 7, 7], the distance with the level's directions, x 1e3."""
    dist = []
    for lod in range(len(levels)):
        a = finalize_descriptors(desc_real[lod])
        b = finalize_descriptors(desc_fake[lod])
        dist.append(sliced_wasserstein_distance(a, b, draws.directions[lod]) * SCALE)
    return SWDResult(resolutions=levels, levels=dist, mean=float(np.mean(dist)))


def sliced_wasserstein_chunks(reals: Iterable[np.ndarray], fakes: Iterable[np.ndarray], shape: tuple[int, ...],
                              seed: int = 0, *, rng: np.random.RandomState | None = None,
                              draws: SWDDraws | None = None) -> SWDResult:
    """:func:`sliced_wasserstein` of image sets given as iterables of consecutive uint8 chunks
    ``[n_i, H, W, C]`` (e.g. read from a dataset or generated batch by batch), ``shape`` =
    ``(N, H, W, C)`` of each whole set: only one chunk of images is in memory at a time (the
    descriptors of each level are, as in the official code). Same draws, same numbers as
    :func:`sliced_wasserstein` on the concatenated arrays with ``minibatch_size=None``.
    ``swd16k`` at 1024x1024 holds 16384 x 128 x 147 float32 descriptors per level and set (1.2 GB)
    instead of 51 GB of images."""
    if len(shape) != 4:
        raise ValueError(f"SWD: shape must be (N, H, W, C); found {shape}")
    n, res, width, channels = (int(v) for v in shape)
    if n < 1:
        raise ValueError(f"SWD: needs at least one image; found shape {shape}")
    _check_images("images", np.empty((1, res, width, channels), np.uint8))  # square, power of two, >= 16
    levels = resolutions_of(res)
    if draws is None:
        draws = draw_swd(rng if rng is not None else np.random.RandomState(seed), n, res, channels, None)
    _check_draws(draws, n, levels, channels)
    desc_real = _descriptors(reals, draws.real_x, draws.real_y, _CHUNK, "reals", (n, res, width, channels))
    desc_fake = _descriptors(fakes, draws.fake_x, draws.fake_y, _CHUNK, "fakes", (n, res, width, channels))
    return _result(desc_real, desc_fake, draws, levels)


def _check_draws(draws: SWDDraws, n: int, levels: list[int], channels: int) -> None:
    m = n * NHOODS_PER_IMAGE
    dim = channels * NHOOD_SIZE * NHOOD_SIZE
    half = NHOOD_SIZE // 2
    for field in ("real_x", "real_y", "fake_x", "fake_y", "directions"):
        if len(getattr(draws, field)) != len(levels):
            raise ValueError(f"SWD draws: {field} must have one entry per level {levels}; "
                             f"found {len(getattr(draws, field))}")
    for lod, res in enumerate(levels):
        for field in ("real_x", "real_y", "fake_x", "fake_y"):
            pos = np.asarray(getattr(draws, field)[lod])
            if pos.shape != (m,):
                raise ValueError(f"SWD draws: {field}[{lod}] must be [{m}] (N * {NHOODS_PER_IMAGE}); found {pos.shape}")
            if pos.size and (pos.min() < half or pos.max() > res - half - 1):
                raise ValueError(f"SWD draws: {field}[{lod}] must lie in [{half}, {res - half - 1}] at "
                                 f"resolution {res}; found [{pos.min()}, {pos.max()}]")
        want = (DIR_REPEATS, dim, DIRS_PER_REPEAT)
        if np.shape(draws.directions[lod]) != want:
            raise ValueError(f"SWD draws: directions[{lod}] must be {list(want)}; "
                             f"found {list(np.shape(draws.directions[lod]))}")
