"""The embedded procedural dataset: coloured shapes over a gradient, generated on the fly (no download).

Each image is one or two filled shapes (disc, square or triangle) of a bright random colour, position
and size over a muted two-colour vertical gradient, anti-aliased by 4x supersampling and a box
downsample. A StyleGAN2 learns them visibly within minutes on a CPU at 32x32. With
``num_classes > 0`` the class (``index % num_classes``, so classes are balanced) decides the shape
kind and the colour family, which gives a conditional GAN something to learn.

``max_shapes=1`` (name suffix ``-s1``) draws one shape per image, ``radius=(lo, hi)`` (suffix
``-rLO-HI``) the shapes' radius range in image widths (default 0.12-0.28) and ``palette=N`` (suffix
``-pN``) one of N fully saturated, evenly spaced hues instead of any bright colour: easier data
for short runs (config fields ``data.max_shapes``, ``data.radius``, ``data.palette``; what they did
for the demo: docs/demo.md). The defaults draw the images they always did, draw for draw.

Image ``i`` is a pure function of ``(seed, i, resolution, channels, num_classes)`` and those
options: it is drawn from its own ``np.random.RandomState([seed, i])``, so any subset can be
generated in any order and at any resolution >= 4 with small memory. This module imports only numpy.
"""

from __future__ import annotations

import colorsys

import numpy as np

from gan_jax.data.base import check_indices, one_hot

SUPERSAMPLE = 4  # sub-pixels per pixel side for anti-aliasing (4x4 = 16 samples per pixel)
KINDS = ("disc", "square", "triangle")
CACHE_BYTES = 64 * 2**20  # generated images are kept while they fit in 64 MiB (all of 4096 at 64x64x3)
DEFAULT_RADIUS = (0.12, 0.28)  # the shapes' radius range, in image widths
GOLDEN = 0.6180339887498949  # class c's hue is frac(c * golden ratio): consecutive classes far apart


class EmbeddedShapes:
    """``num_images`` procedural images uint8 [R, R, C] (C = 3 RGB or 1 gray), labels one-hot [K] or [0]."""

    def __init__(self, resolution: int, num_images: int = 4096, seed: int = 0, channels: int = 3,
                 num_classes: int = 0, max_shapes: int = 2, radius: tuple[float, float] = (0.12, 0.28),
                 palette: int = 0):
        if int(resolution) != resolution or resolution < 4:
            raise ValueError(f"EmbeddedShapes: resolution must be an integer >= 4 (e.g. 32), got {resolution!r}")
        if int(num_images) != num_images or num_images < 1:
            raise ValueError(f"EmbeddedShapes: num_images must be a positive integer, got {num_images!r}")
        if int(seed) != seed or not 0 <= seed < 2**32:
            raise ValueError(f"EmbeddedShapes: seed must be an integer in [0, 2**32), got {seed!r}")
        if channels not in (1, 3):
            raise ValueError(f"EmbeddedShapes: channels must be 1 (gray) or 3 (RGB), got {channels!r}")
        if int(num_classes) != num_classes or num_classes < 0:
            raise ValueError(f"EmbeddedShapes: num_classes must be an integer >= 0 (0 = unlabeled), got {num_classes!r}")
        if max_shapes not in (1, 2):
            raise ValueError(f"EmbeddedShapes: max_shapes must be 1 or 2, got {max_shapes!r}")
        lo, hi = (float(r) for r in radius)
        if not 0.02 <= lo <= hi < 0.5:
            raise ValueError(f"EmbeddedShapes: radius must be (lo, hi) with 0.02 <= lo <= hi < 0.5 image widths, got {radius!r}")
        if int(palette) != palette or palette < 0:
            raise ValueError(f"EmbeddedShapes: palette must be an integer >= 0 (0 = any bright colour), got {palette!r}")
        self.resolution = int(resolution)
        self.num_images = int(num_images)
        self.seed = int(seed)
        self.channels = int(channels)
        self.num_classes = int(num_classes)
        self.label_dim = self.num_classes
        self.max_shapes, self.radius, self.palette = int(max_shapes), (lo, hi), int(palette)
        name = f"embedded:shapes-{self.resolution}-{self.num_images}-{self.seed}"
        if self.channels != 3:
            name += f"-c{self.channels}"
        if self.num_classes:
            name += f"-k{self.num_classes}"
        if self.max_shapes != 2:
            name += f"-s{self.max_shapes}"
        if self.radius != DEFAULT_RADIUS:
            name += f"-r{lo:g}-{hi:g}"
        if self.palette:
            name += f"-p{self.palette}"
        self.name = name
        self._cache: dict[int, np.ndarray] = {}
        self._cache_limit = CACHE_BYTES // (self.resolution**2 * self.channels)

    def __repr__(self) -> str:
        return f"EmbeddedShapes({self.name!r})"

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 [n, R, R, C] for the indices [n]."""
        idx = check_indices(indices, self.num_images, self.name)
        out = np.empty((len(idx), self.resolution, self.resolution, self.channels), np.uint8)
        for row, i in enumerate(idx):
            out[row] = self._image(int(i))
        return out

    def labels(self, indices: np.ndarray) -> np.ndarray:
        """float32 [n, num_classes] one-hot (class of image i = i % num_classes); [n, 0] when unlabeled."""
        idx = check_indices(indices, self.num_images, self.name)
        if not self.num_classes:
            return np.zeros((len(idx), 0), np.float32)
        return one_hot(idx % self.num_classes, self.num_classes)

    def _image(self, index: int) -> np.ndarray:
        img = self._cache.get(index)
        if img is None:
            img = render_shapes(np.random.RandomState([self.seed, index]), self.resolution, self.channels,
                                index % self.num_classes if self.num_classes else None,
                                max_shapes=self.max_shapes, radius=self.radius, palette=self.palette)
            if len(self._cache) < self._cache_limit:
                self._cache[index] = img
        return img


def _rgb(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32)


def render_shapes(rs: np.random.RandomState, resolution: int, channels: int = 3, label: int | None = None, *,
                  max_shapes: int = 2, radius: tuple[float, float] = DEFAULT_RADIUS, palette: int = 0,
                  ) -> np.ndarray:
    """One image uint8 [R, R, C] drawn from ``rs``; ``label`` fixes the shape kind and colour family.

    ``max_shapes``: 2 = one or two shapes (even odds), 1 = one. ``radius``: the range of the shapes'
    radii in image widths. ``palette``: 0 = a bright colour of any hue; N > 0 = one of N evenly spaced
    hues at full saturation and value (with a ``label``, its colour family as without a palette).
    """
    r_px = resolution
    # Background: vertical gradient between two muted colours of nearby hues.
    h0 = rs.uniform()
    top = _rgb(h0, rs.uniform(0.2, 0.5), rs.uniform(0.15, 0.45))
    bottom = _rgb(h0 + rs.uniform(0.1, 0.4), rs.uniform(0.2, 0.5), rs.uniform(0.35, 0.65))
    t = ((np.arange(r_px, dtype=np.float32) + 0.5) / r_px)[:, None, None]  # pixel-centre heights in (0, 1)
    img = np.broadcast_to(top * (1 - t) + bottom * t, (r_px, r_px, 3)).copy()

    num_shapes = 1 + int(rs.uniform() < 0.5) if max_shapes == 2 else 1
    for _ in range(num_shapes):
        if label is None:
            kind = KINDS[rs.randint(len(KINDS))]
            hue = rs.randint(palette) / palette if palette else rs.uniform()
        else:
            kind = KINDS[label % len(KINDS)]
            hue = label * GOLDEN + rs.uniform(-0.04, 0.04)
        if palette and label is None:
            colour = _rgb(hue, 1.0, 1.0)
        else:
            colour = _rgb(hue, rs.uniform(0.65, 1.0), rs.uniform(0.8, 1.0))
        r = rs.uniform(*radius)  # in image widths; the shape stays inside the image
        cx, cy = rs.uniform(r, 1 - r, size=2)
        _paint(img, kind, cx, cy, r, colour)

    if channels == 1:
        img = img @ np.array([0.299, 0.587, 0.114], np.float32)[:, None]  # ITU-R BT.601 luma, as PIL's 'L'
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def _paint(img: np.ndarray, kind: str, cx: float, cy: float, radius: float, colour: np.ndarray) -> None:
    """Alpha-composite one shape onto img [R, R, 3] (in place), coverage from SUPERSAMPLE^2 samples per pixel."""
    r_px, s = img.shape[0], SUPERSAMPLE
    # Only the pixels of the shape's bounding box are supersampled.
    x0, x1 = max(0, int(np.floor((cx - radius) * r_px))), min(r_px, int(np.ceil((cx + radius) * r_px)))
    y0, y1 = max(0, int(np.floor((cy - radius) * r_px))), min(r_px, int(np.ceil((cy + radius) * r_px)))
    if x1 <= x0 or y1 <= y0:
        return
    n = r_px * s
    px = ((np.arange(x0 * s, x1 * s, dtype=np.float32) + 0.5) / n)[None, :] - cx  # sub-pixel centres
    py = ((np.arange(y0 * s, y1 * s, dtype=np.float32) + 0.5) / n)[:, None] - cy
    if kind == "disc":
        inside = px**2 + py**2 <= radius**2
    elif kind == "square":
        half = radius * 0.85  # side 1.7 r: area 2.89 r^2, about the disc's pi r^2
        inside = (np.abs(px) <= half) & (np.abs(py) <= half)
    else:  # upright equilateral triangle inscribed in the circle of `radius`: apex up, y grows downwards
        apex, base_y, half_base = -radius, radius / 2, radius * np.sqrt(3) / 2
        slope = half_base / (base_y - apex)
        inside = (py <= base_y) & (np.abs(px) <= (py - apex) * slope)
    coverage = inside.reshape(y1 - y0, s, x1 - x0, s).mean(axis=(1, 3), dtype=np.float32)[..., None]
    region = img[y0:y1, x0:x1]
    img[y0:y1, x0:x1] = region * (1 - coverage) + colour * coverage
