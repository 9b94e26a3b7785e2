"""The axis permutations between upstream array layouts and gan_jax's, in one table.

Each :class:`Permutation` is defined by one tuple ``perm`` of gan_jax's axes:
``to_upstream(x) = np.transpose(x, perm)``; ``from_upstream`` transposes by the inverse
permutation, which is computed from ``perm`` (never written a second time).

| permutation | gan_jax layout         | upstream layout            | used for                                        |
| ----------- | ---------------------- | -------------------------- | ----------------------------------------------- |
| ``CONV``    | ``[kh, kw, I, O]`` HWIO | ``[O, I, kh, kw]`` OIHW    | torch conv / modconv weights                    |
| ``DENSE``   | ``[in, out]``          | ``[out, in]``              | torch Linear weights (FC, affine)               |
| ``CONST``   | ``[H, W, C]``          | ``[C, H, W]``              | StyleGAN2's learned constant input              |
| ``NCHW``    | ``[N, H, W, C]`` NHWC   | ``[N, C, H, W]`` NCHW      | StyleGAN (TF) constant input and noise inputs   |

Which one applies to an array is a :class:`Layout`: a rule per (leaf name, rank). The layouts of
every upstream are below (TF convolutions and dense layers are HWIO / ``[in, out]`` as gan_jax's).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

import numpy as np

__all__ = ["BIGGAN", "CONST", "CONV", "DENSE", "NCHW", "PROGAN", "PYTORCH_FID", "STYLEGAN", "STYLEGAN2",
           "Layout", "Permutation"]


@dataclasses.dataclass(frozen=True)
class Permutation:
    """gan_jax layout -> upstream layout: ``upstream = np.transpose(ours, perm)``."""

    perm: tuple[int, ...]

    @property
    def inverse(self) -> tuple[int, ...]:
        """The permutation that undoes ``perm``: ``ours = np.transpose(upstream, inverse)``."""
        return tuple(int(i) for i in np.argsort(self.perm))

    def to_upstream(self, x: np.ndarray) -> np.ndarray:
        """gan_jax array -> the upstream layout."""
        return np.transpose(x, self.perm)

    def from_upstream(self, x: np.ndarray) -> np.ndarray:
        """Upstream array -> gan_jax's layout."""
        return np.transpose(x, self.inverse)

    def upstream_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The upstream shape of a gan_jax array of ``shape``."""
        return tuple(shape[i] for i in self.perm)


CONV = Permutation((3, 2, 0, 1))
DENSE = Permutation((1, 0))
CONST = Permutation((2, 0, 1))
NCHW = Permutation((0, 3, 1, 2))


class Layout:
    """Which permutation an upstream applies to an array, by the array's leaf name (a regular
    expression that must match the whole name) and rank; arrays no rule names are stored as is."""

    def __init__(self, rules: Mapping[tuple[str, int], Permutation]):
        self.rules = {(re.compile(leaf), ndim): perm for (leaf, ndim), perm in rules.items()}

    def permutation(self, leaf: str, ndim: int) -> Permutation | None:
        """The permutation of an array named ``leaf`` of rank ``ndim``, None when it is stored as is."""
        for (pattern, rank), perm in self.rules.items():
            if rank == ndim and pattern.fullmatch(leaf):
                return perm
        return None

    def to_upstream(self, leaf: str, x: np.ndarray) -> np.ndarray:
        """gan_jax array ``leaf`` -> the upstream layout."""
        perm = self.permutation(leaf, x.ndim)
        return x if perm is None else perm.to_upstream(x)

    def from_upstream(self, leaf: str, x: np.ndarray) -> np.ndarray:
        """Upstream array ``leaf`` -> gan_jax's layout."""
        perm = self.permutation(leaf, x.ndim)
        return x if perm is None else perm.from_upstream(x)

    def upstream_shape(self, leaf: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The upstream shape of gan_jax's array ``leaf`` of ``shape``."""
        perm = self.permutation(leaf, len(shape))
        return tuple(shape) if perm is None else perm.upstream_shape(shape)


# NVlabs/stylegan2-ada-pytorch state_dict: conv / modconv / FC / affine weights, synthesis.b4.const.
STYLEGAN2 = Layout({("weight", 4): CONV, ("weight", 2): DENSE, ("const", 3): CONST})
# NVlabs/stylegan TF vars: 4x4/Const/const [1, C, 4, 4] and noise{i} [1, 1, H, W].
STYLEGAN = Layout({("const", 4): NCHW, (r"noise\d+", 4): NCHW})
# tkarras/progressive_growing_of_gans TF vars: all as gan_jax's.
PROGAN = Layout({})
# ajbrock/BigGAN-PyTorch state_dict: (SN)Conv2d weights; (SN)Linear and Embedding weights are kept
# [out, in] / [n, dim], the matrix the spectral norm's u vectors belong to.
BIGGAN = Layout({("weight", 4): CONV})
# pytorch-fid's FIDInceptionV3 state_dict: conv and fc weights.
PYTORCH_FID = Layout({("weight", 4): CONV, ("weight", 2): DENSE})
