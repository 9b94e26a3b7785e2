"""Per-pixel noise inputs of the style-based generators (Karras et al. 2019, sec. 2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

NOISE_MODES = ("random", "const", "none", "given")


def noise_input(
    mode: str,
    shape: tuple[int, int, int],
    strength: jax.Array,
    noise_const: jax.Array | None = None,
    rng: jax.Array | None = None,
    given: jax.Array | None = None,
) -> jax.Array | None:
    """Noise to add to an activation of ``shape`` ``(N, H, W)``; broadcasts against [N, H, W, C].

    - ``'random'``: ``randn[N, H, W, 1] * strength`` from ``rng``;
    - ``'const'``: the stored ``noise_const`` [H, W] times ``strength``, the same for every sample;
    - ``'none'``: no noise (returns None);
    - ``'given'``: a caller-supplied N(0, 1) draw ``given`` [N, H, W, 1] times ``strength`` (to replay
      recorded noise, e.g. a reference run's).
    """
    if mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {mode!r}")
    if mode == "none":
        return None
    if mode == "const":
        return (noise_const * strength)[:, :, None]
    if mode == "given":
        if given is None:
            raise ValueError("noise_mode='given' needs the draws in the 'noise_inputs' collection")
        return given * strength
    if rng is None:
        raise ValueError("noise_mode='random' needs a 'noise' PRNG key (apply(..., rngs={'noise': key}))")
    n, h, w = shape
    return jax.random.normal(rng, (n, h, w, 1), jnp.float32) * strength
