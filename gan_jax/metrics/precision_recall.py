"""Improved precision and recall (Kynkaanniemi et al. 2019) on feature arrays, in blocks, with JAX.

Follows the arithmetic of NVIDIA's stylegan2-ada-pytorch ``metrics/precision_recall.py``
(``compute_distances`` and ``compute_pr``; this is a separate implementation, no code is copied):

- the **radius** of each point of a manifold (the real features for precision, the generated ones
  for recall) is its ``(nhood_size + 1)``-th smallest distance to the manifold's points, the point
  itself included (``kthvalue(nhood_size + 1)``): with the default ``nhood_size=3``, the distance
  to its third nearest other point;
- a **probe** (a generated feature for precision, a real one for recall) is covered when its
  distance to some manifold point is ``<=`` that point's radius;
- **precision** is the fraction of generated features covered by the real manifold, **recall** the
  fraction of real features covered by the generated manifold.

Distances are Euclidean, computed as ``torch.cdist`` computes them for more than 25 rows: the
expansion ``sqrt(max(|r|^2 + |c|^2 - 2 r.c, 0))`` (one matmul per block), here in float32 at
``Precision.HIGHEST``. NVIDIA keeps the features and the distances in float16; ``half=True`` (the
default) rounds the features to float16 before, and the distances to float16 after, the float32
arithmetic, so ties and the ``<=`` test see float16 values as NVIDIA's do. ``half=False`` keeps
float32 throughout.

Blocks: probes and manifold rows are taken ``row_batch_size`` at a time (NVIDIA's
``row_batch_size``), the manifold's columns ``col_batch_size`` at a time (its ``col_batch_size``).
Each jitted call holds one ``[row_batch_size, col_batch_size]`` block of distances and a running
result (the ``nhood_size + 1`` smallest distances so far per row, or whether a row is covered so
far) while a ``lax.scan`` walks over the column blocks, so neither ``[N, N]`` nor
``[row_batch_size, N]`` distances are ever held. Each row block is split across ``devices``
(default: all of ``jax.devices()``); the manifold is replicated on each.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["PrecisionRecall", "compute_distances", "covered", "kth_radii", "precision_recall"]

NHOOD_SIZE = 3
ROW_BATCH_SIZE = 10000  # NVIDIA's defaults (metric_main.pr50k3_full)
COL_BATCH_SIZE = 10000
_HIGHEST = lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class PrecisionRecall:
    """``precision``: fraction of generated features inside the real manifold; ``recall``: fraction of
    real features inside the generated manifold."""

    precision: float
    recall: float

    def as_dict(self, suffix: str = "") -> dict[str, float]:
        return {f"precision{suffix}": self.precision, f"recall{suffix}": self.recall}


def _distances(rows: jax.Array, cols: jax.Array, half: bool) -> jax.Array:
    """[R, D] x [C, D] -> [R, C] Euclidean distances (float32; float16 values when ``half``)."""
    sq = (jnp.sum(rows * rows, axis=1)[:, None] + jnp.sum(cols * cols, axis=1)[None, :]
          - 2.0 * jnp.dot(rows, cols.T, precision=_HIGHEST))
    d = jnp.sqrt(jnp.maximum(sq, 0.0))
    return d.astype(jnp.float16).astype(jnp.float32) if half else d


@functools.partial(jax.jit, static_argnames=("k", "half"))
def _kth_block(rows: jax.Array, cols: jax.Array, valid: jax.Array, k: int, half: bool) -> jax.Array:
    """rows [R, D], cols [B, C, D] (B column blocks), valid [B, C] -> the k-th smallest distance of
    each row to the valid columns, [R]."""

    def step(smallest, block):
        c, ok = block
        d = jnp.where(ok[None, :], _distances(rows, c, half), jnp.inf)
        merged = jnp.concatenate([smallest, d], axis=1)
        return -lax.top_k(-merged, k)[0], None

    init = jnp.full((rows.shape[0], k), jnp.inf, jnp.float32)
    smallest, _ = lax.scan(step, init, (cols, valid))
    return smallest[:, k - 1]


@functools.partial(jax.jit, static_argnames=("half",))
def _covered_block(rows: jax.Array, cols: jax.Array, radii: jax.Array, half: bool) -> jax.Array:
    """rows [R, D], cols [B, C, D], radii [B, C] (-inf for padding) -> [R] bool: some column's
    distance to the row is <= that column's radius."""

    def step(hit, block):
        c, r = block
        return hit | jnp.any(_distances(rows, c, half) <= r[None, :], axis=1), None

    hit, _ = lax.scan(step, jnp.zeros((rows.shape[0],), bool), (cols, radii))
    return hit


def _features(x: Any, half: bool, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{what}: expected features [N, D] with N >= 1, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{what}: expected numeric features, got dtype {x.dtype}")
    return x.astype(np.float16).astype(np.float32) if half else x.astype(np.float32)


def _check_batches(row_batch_size: int, col_batch_size: int) -> None:
    if int(row_batch_size) < 1 or int(col_batch_size) < 1:
        raise ValueError(f"row_batch_size and col_batch_size must be >= 1, got {row_batch_size}, {col_batch_size}")


class _Blocks:
    """The devices' mesh, a manifold cut into column blocks (replicated), and row blocks padded to
    a multiple of the device count (split across the devices)."""

    def __init__(self, manifold: np.ndarray, col_batch_size: int, devices: Sequence[jax.Device] | None):
        self.devices = list(devices) if devices is not None else jax.devices()
        self.mesh = Mesh(np.array(self.devices), ("rows",))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.split = NamedSharding(self.mesh, PartitionSpec("rows"))
        n, d = manifold.shape
        cb = min(int(col_batch_size), n)
        self.n_blocks = -(-n // cb)
        self.n = n
        padded = np.zeros((self.n_blocks * cb, d), np.float32)
        padded[:n] = manifold
        self.cols = jax.device_put(padded.reshape(self.n_blocks, cb, d), self.replicated)
        self.valid = np.arange(self.n_blocks * cb).reshape(self.n_blocks, cb) < n

    def column_values(self, values: np.ndarray, fill: float) -> jax.Array:
        """Per-column ``values`` [N] laid out as the column blocks [B, C], padding set to ``fill``."""
        out = np.full(self.valid.shape, fill, np.float32)
        out[self.valid] = values
        return jax.device_put(out, self.replicated)

    def row_blocks(self, rows: np.ndarray, row_batch_size: int):
        """(start, stop, device block [R', D]) for each block of ``row_batch_size`` rows, all blocks
        padded with zero rows to one shape R' (a multiple of the device count)."""
        n = rows.shape[0]
        rb = min(int(row_batch_size), n)
        rb = -(-rb // len(self.devices)) * len(self.devices)
        for start in range(0, n, rb):
            block = np.zeros((rb, rows.shape[1]), np.float32)
            stop = min(start + rb, n)
            block[: stop - start] = rows[start:stop]
            yield start, stop, jax.device_put(block, self.split)


def kth_radii(manifold: Any, nhood_size: int = NHOOD_SIZE, row_batch_size: int = ROW_BATCH_SIZE,
              col_batch_size: int = COL_BATCH_SIZE, half: bool = True,
              devices: Sequence[jax.Device] | None = None) -> np.ndarray:
    """``manifold`` [N, D] -> [N] float32: each point's ``(nhood_size + 1)``-th smallest distance
    to the manifold's points, itself included (NVIDIA's ``kthvalue(nhood_size + 1)``)."""
    _check_batches(row_batch_size, col_batch_size)
    m = _features(manifold, half, "manifold")
    k = int(nhood_size) + 1
    if not 1 <= k <= m.shape[0]:
        raise ValueError(f"nhood_size {nhood_size} needs more than {nhood_size} points, the manifold has {m.shape[0]}")
    blocks = _Blocks(m, col_batch_size, devices)
    valid = jax.device_put(blocks.valid, blocks.replicated)
    out = np.empty(m.shape[0], np.float32)
    for start, stop, rows in blocks.row_blocks(m, row_batch_size):
        out[start:stop] = np.asarray(_kth_block(rows, blocks.cols, valid, k, half))[: stop - start]
    return out


def covered(probes: Any, manifold: Any, radii: Any, row_batch_size: int = ROW_BATCH_SIZE,
            col_batch_size: int = COL_BATCH_SIZE, half: bool = True,
            devices: Sequence[jax.Device] | None = None) -> np.ndarray:
    """``probes`` [M, D], ``manifold`` [N, D], ``radii`` [N] -> [M] bool: the probe is within the
    radius of at least one manifold point (``(dist <= kth).any(dim=1)``)."""
    _check_batches(row_batch_size, col_batch_size)
    p, m = _features(probes, half, "probes"), _features(manifold, half, "manifold")
    radii = np.asarray(radii, np.float32)
    if p.shape[1] != m.shape[1] or radii.shape != (m.shape[0],):
        raise ValueError(f"probes {p.shape}, manifold {m.shape} and radii {radii.shape}: expected [M, D], [N, D], [N]")
    blocks = _Blocks(m, col_batch_size, devices)
    col_radii = blocks.column_values(radii, -np.inf)
    out = np.empty(p.shape[0], bool)
    for start, stop, rows in blocks.row_blocks(p, row_batch_size):
        out[start:stop] = np.asarray(_covered_block(rows, blocks.cols, col_radii, half))[: stop - start]
    return out


def precision_recall(real: Any, fake: Any, nhood_size: int = NHOOD_SIZE, row_batch_size: int = ROW_BATCH_SIZE,
                     col_batch_size: int = COL_BATCH_SIZE, half: bool = True,
                     devices: Sequence[jax.Device] | None = None) -> PrecisionRecall:
    """Precision and recall of ``fake`` [M, D] against ``real`` [N, D] features (NVIDIA's
    ``compute_pr`` after feature extraction; its ``pr50k3`` is N = M = 50000, nhood_size 3,
    row and column blocks of 10000, on VGG16 features [N, 4096])."""
    real, fake = np.asarray(real), np.asarray(fake)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"expected real [N, D] and fake [M, D] features, got {real.shape} and {fake.shape}")
    kw = {"row_batch_size": row_batch_size, "col_batch_size": col_batch_size, "half": half, "devices": devices}
    results = []
    for manifold, probes in ((real, fake), (fake, real)):
        radii = kth_radii(manifold, nhood_size, **kw)
        results.append(float(np.mean(covered(probes, manifold, radii, **kw))))
    return PrecisionRecall(*results)


def compute_distances(rows: Any, cols: Any, col_batch_size: int = COL_BATCH_SIZE, half: bool = True) -> np.ndarray:
    """All distances ``rows`` [R, D] x ``cols`` [C, D] -> [R, C] float32 (the arithmetic of the
    blocked functions, computed ``col_batch_size`` columns at a time on the default device; for
    inspection and tests: it holds the whole [R, C] result)."""
    _check_batches(1, col_batch_size)
    r, c = _features(rows, half, "rows"), _features(cols, half, "cols")
    dist = jax.jit(_distances, static_argnums=2)
    return np.concatenate([np.asarray(dist(r, c[i:i + col_batch_size], half))
                           for i in range(0, c.shape[0], col_batch_size)], axis=1)
