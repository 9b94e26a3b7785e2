"""The train state: one pytree with everything a run needs to continue bit for bit."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax


@flax.struct.dataclass
class TrainState:
    """All arrays of a run; the networks and optimizers themselves live in the recipe.

    Fields:
      step: iteration counter (NVIDIA's ``batch_idx``), int32 scalar.
      images_seen: training images consumed so far (NVIDIA's ``cur_nimg``), int32 scalar.
      params: trainable parameters per network, e.g. ``{'G': ..., 'D': ...}``.
      ema_params: exponential moving averages, e.g. ``{'G': ...}`` (G_ema).
      opt_state: optax state per network.
      extra: non-trained collections: ``{'G_buffers', 'G_ema_buffers', 'pl_mean', ...}``.
      rng: the run's base PRNG key (uint32[2]); each step and phase folds in its own index.
    """

    step: jax.Array
    images_seen: jax.Array
    params: dict[str, Any]
    ema_params: dict[str, Any]
    opt_state: dict[str, Any]
    extra: dict[str, Any]
    rng: jax.Array
