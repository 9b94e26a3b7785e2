"""Shape rules the families share: power-of-two resolutions, and the TF-era feature-map count ``nf``."""

from __future__ import annotations

import numpy as np


def log2_resolution(resolution: int, name: str = "resolution") -> int:
    """``log2(resolution)``; the resolution must be a power of two >= 4 (the official assertions)."""
    r = int(resolution)
    if r < 4 or r & (r - 1):
        raise ValueError(f"{name} must be a power of two >= 4, got {resolution}")
    return int(np.log2(r))


def nf(stage: int, fmap_base: int, fmap_decay: float, fmap_max: int) -> int:
    """Feature maps of ``stage`` (ProGAN's and StyleGAN's ``nf``): ``min(int(fmap_base / 2**(stage * fmap_decay)), fmap_max)``."""
    return min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)
