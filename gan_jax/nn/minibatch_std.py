"""Minibatch standard deviation (Karras et al. 2018, sec. 3), with NVIDIA's grouping."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def minibatch_std(x: jax.Array, group_size: int | None = 4, num_channels: int = 1, num_shards: int = 1) -> jax.Array:
    """Append ``num_channels`` stddev features to ``x`` [N, H, W, C] -> [N, H, W, C + F].

    As the official `MinibatchStdLayer`: ``G = min(group_size, N)`` (None = N); the batch is
    reshaped as ``[G, N/G, ...]``, so sample ``i`` is grouped with ``i + N/G, i + 2N/G, ...``
    (for N=8, G=4 the groups are {0,2,4,6} and {1,3,5,7}). The statistic is the biased
    variance over the group, ``sqrt(var + 1e-8)``, averaged over the channel slice and pixels.

    ``num_shards > 1`` splits the batch into that many equal consecutive slices first and groups
    within each (one slice per data-parallel device, as NVIDIA groups within each GPU's batch).
    """
    if num_shards > 1:
        n = x.shape[0]
        if n % num_shards:
            raise ValueError(f"minibatch_std: batch size {n} must be divisible by the number of shards {num_shards}")
        shards = x.reshape(num_shards, n // num_shards, *x.shape[1:])
        out = jax.vmap(lambda s: minibatch_std(s, group_size, num_channels))(shards)
        return out.reshape(n, *out.shape[2:])
    n, h, w, c = x.shape
    g = n if group_size is None else min(int(group_size), n)
    f = int(num_channels)
    if n % g != 0:
        raise ValueError(
            f"minibatch_std: batch size {n} must be divisible by the group size {g} "
            f"(mbstd_group_size={group_size}); use a batch that is a multiple of it"
        )
    if c % f != 0:
        raise ValueError(f"minibatch_std: {c} channels cannot be split into {f} stddev groups")
    y = x.astype(jnp.float32).reshape(g, n // g, h, w, f, c // f)
    y = y - jnp.mean(y, axis=0)
    y = jnp.mean(jnp.square(y), axis=0)  # [n, H, W, F, c]
    y = jnp.sqrt(y + 1e-8)
    y = jnp.mean(y, axis=(1, 2, 4))  # [n, F]
    y = jnp.tile(y, (g, 1))  # sample i gets the statistic of group i mod (N/G)
    y = jnp.broadcast_to(y[:, None, None, :], (n, h, w, f)).astype(x.dtype)
    return jnp.concatenate([x, y], axis=-1)
