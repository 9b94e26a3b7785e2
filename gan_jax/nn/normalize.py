"""Feature normalisations shared by the style-based families."""

from __future__ import annotations

import jax
import jax.lax as lax
import jax.numpy as jnp


def normalize_2nd_moment(x: jax.Array, axis: int = 1, eps: float = 1e-8) -> jax.Array:
    """``x * rsqrt(mean(x**2, axis) + eps)`` (official `networks.normalize_2nd_moment`; ProGAN's pixel norm)."""
    return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + eps)
