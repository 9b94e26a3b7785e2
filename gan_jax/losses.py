"""Loss functions shared by the recipes. Logits are [N, 1]; per-sample values are [N]."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def g_logistic_nonsaturating(fake_logits: jax.Array) -> jax.Array:
    """G's non-saturating logistic loss ``softplus(-D(G(z)))`` (Goodfellow et al. 2014), per sample."""
    return jax.nn.softplus(-fake_logits)


def d_logistic(real_logits: jax.Array, fake_logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """D's logistic loss terms ``softplus(D(G(z)))`` and ``softplus(-D(x))``, per sample."""
    return jax.nn.softplus(fake_logits), jax.nn.softplus(-real_logits)


def r1_penalty(d_fn: Callable[[jax.Array], jax.Array], real: jax.Array) -> tuple[jax.Array, jax.Array]:
    """R1 (Mescheder et al. 2018, eq. 9): ``||grad_x D(x)||^2`` per sample, summed over H, W, C.

    ``d_fn`` maps images [N, H, W, C] to logits [N, 1]. Returns ``(penalty [N], logits [N, 1])``.
    """
    logits, vjp = jax.vjp(d_fn, real)
    (grads,) = vjp(jnp.ones_like(logits))
    return jnp.sum(jnp.square(grads), axis=(1, 2, 3)), logits


def path_length(
    synthesis_fn: Callable[[jax.Array], jax.Array], ws: jax.Array, pl_noise: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Path length (Karras et al. 2020, eq. 4): ``||J_w^T y||`` with ``y = pl_noise``, per sample.

    ``pl_lengths = sqrt(mean_over_ws(sum_over_wdim(grad_ws sum(img * y))^2))`` for ws
    [N, num_ws, w_dim] (NVIDIA's StyleGAN2Loss). Returns ``(pl_lengths [N], images)``.
    """
    img, vjp = jax.vjp(synthesis_fn, ws)
    (grads,) = vjp(pl_noise.astype(img.dtype))
    return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1)), img
