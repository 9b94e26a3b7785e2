"""TF1's Adam as the TF-era official trainers run it (ProGAN ``tfutil.Optimizer``, StyleGAN
``dnnlib/tflib/optimizer.py``): TF adds epsilon to ``sqrt(v)`` before the step size's bias
correction, and a step whose gradients are not all finite changes nothing."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


class TFAdamState(NamedTuple):
    count: jax.Array
    mu: Any
    nu: Any


def tf_adam(learning_rate: float, b1: float = 0.0, b2: float = 0.99, eps: float = 1e-8) -> optax.GradientTransformation:
    """``tf.train.AdamOptimizer`` inside ``tfutil.Optimizer``: ``m += (g - m)(1 - b1)``,
    ``v += (g^2 - v)(1 - b2)``, ``update = -lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``;
    a step whose gradients are not all finite changes nothing (the official ``grad_ok`` cond)."""

    def init(params):
        zeros = lambda p: jnp.zeros_like(p, jnp.float32)
        return TFAdamState(jnp.zeros((), jnp.int32), jax.tree.map(zeros, params), jax.tree.map(zeros, params))

    def update(grads, state, params=None):
        ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        count = state.count + 1
        mu = jax.tree.map(lambda m, g: m + (g - m) * np.float32(1 - b1), state.mu, grads)
        nu = jax.tree.map(lambda v, g: v + (jnp.square(g) - v) * np.float32(1 - b2), state.nu, grads)
        t = count.astype(jnp.float32)
        lr_t = np.float32(learning_rate) * jnp.sqrt(1 - np.float32(b2) ** t) / (1 - np.float32(b1) ** t)
        updates = jax.tree.map(lambda m, v: jnp.where(ok, -lr_t * m / (jnp.sqrt(v) + np.float32(eps)), 0.0), mu, nu)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
        return updates, TFAdamState(jnp.where(ok, count, state.count), keep(mu, state.mu), keep(nu, state.nu))

    return optax.GradientTransformation(init, update)
