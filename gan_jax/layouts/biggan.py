"""BigGAN / BigGAN-deep: ajbrock/BigGAN-PyTorch ``state_dict`` <-> gan_jax Flax variables.

A Flax variable path is the reference name: ``params/blocks.1.0/conv1/weight`` <->
``blocks.1.0.conv1.weight``, ``sn/blocks.1.0/conv1/u0`` <-> ``blocks.1.0.conv1.u0``,
``batch_stats/output_layer.0/stored_mean`` <-> ``output_layer.0.stored_mean`` (collections:
``params``, ``sn`` for the spectral-norm ``u{i}`` / ``sv{i}``, ``batch_stats`` for BatchNorm).
Layouts (``permutations.BIGGAN``):

| reference name ends in                | reference layout  | gan_jax layout     |
| ------------------------------------- | ----------------- | ------------------ |
| ``.weight`` of a (SN)Conv2d            | ``[O, I, kh, kw]`` | ``[kh, kw, I, O]`` |
| ``.weight`` of a (SN)Linear / Embedding | ``[out, in]`` / ``[n, dim]`` | as is (the SN matrix) |
| ``.u0`` ``[1, O]``, ``.sv0`` ``[1]``, ``.stored_*`` ``[C]``, ``.gamma`` ``[]`` | as is | as is |

This module imports only jax, flax, numpy and gan_jax.models.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from gan_jax.layouts import common
from gan_jax.layouts.common import StateDict, StateDictMismatch, Variables
from gan_jax.layouts.permutations import BIGGAN as LAYOUT
from gan_jax.models import biggan
from gan_jax.models.from_kwargs import biggan_discriminator_from_kwargs, biggan_generator_from_kwargs

__all__ = ["StateDictMismatch", "biggan_abstract_variables", "biggan_from_torch", "biggan_state_dict_from_variables",
           "biggan_state_shapes", "biggan_variables_from_state_dict"]

_COLLECTIONS = ("params", "sn", "batch_stats")


def biggan_abstract_variables(module: Any) -> Variables:
    """Shapes of a BigGAN network's ``params`` / ``sn`` / ``batch_stats``, without computing anything."""
    y = jnp.zeros((1,), jnp.int32)
    if isinstance(module, biggan.Generator):
        return common.abstract_init(module, jnp.zeros((1, module.z_dim), jnp.float32), y)
    if isinstance(module, biggan.Discriminator):
        r = module.resolution
        return common.abstract_init(module, jnp.zeros((1, r, r, 3), jnp.float32), y)
    raise TypeError(f"not a BigGAN network: {type(module).__name__}")


def biggan_state_shapes(module: Any) -> dict[str, tuple[int, ...]]:
    """Reference ``state_dict`` names and shapes (parameters and buffers) of a BigGAN network."""
    flat = common.flat_variables(biggan_abstract_variables(module), _COLLECTIONS)
    return {name: shape for name, (_, shape) in common.upstream_names(flat, LAYOUT, ".").items()}


def biggan_variables_from_state_dict(module: Any, state: StateDict, abstract: Variables | None = None) -> Variables:
    """Reference ``state_dict`` -> ``{'params', 'sn', 'batch_stats'}`` of ``module``; raises
    ``StateDictMismatch`` listing every missing, unexpected and mis-shaped name. ``abstract`` (the
    ``jax.eval_shape`` of an init) serves a single block or layer; G and D know their own."""
    flat = common.flat_variables(biggan_abstract_variables(module) if abstract is None else abstract, _COLLECTIONS)
    names = common.upstream_names(flat, LAYOUT, ".")
    state = {k: np.asarray(v) for k, v in state.items()}
    common.check_arrays({name: shape for name, (_, shape) in names.items()}, state,
                        f"state dict does not match {type(module).__name__}"
                        f"(resolution={getattr(module, 'resolution', '?')}, ...)")
    return common.import_arrays(names, state, LAYOUT)


def biggan_state_dict_from_variables(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``{'params', 'sn', 'batch_stats'}`` -> reference ``state_dict`` (numpy, torch layouts, float32)."""
    return common.export_arrays(common.flat_variables(variables, _COLLECTIONS), LAYOUT, ".", np.float32)


def biggan_from_torch(
    G_kwargs: Mapping[str, Any],
    G_state: StateDict,
    D_kwargs: Mapping[str, Any] | None = None,
    D_state: StateDict | None = None,
    dtype: Any = jnp.float32,
) -> tuple[biggan.Generator, Variables, biggan.Discriminator | None, Variables | None]:
    """BigGAN-PyTorch ``(constructor kwargs, state_dict)`` pairs -> ``(G, G_vars, D, D_vars)``.

    BigGAN-deep when the kwargs carry ``G_depth`` / ``D_depth`` (as ``BigGANdeep``'s constructors take).
    ``G.apply(G_vars, z, y)`` (eval mode, integer labels ``y`` [N]) gives NHWC images in [-1, 1];
    ``D.apply(D_vars, images_nhwc, y)`` gives logits ``[N, 1]``; ``G.apply(G_vars, z, y, train=True,
    mutable=['sn', 'batch_stats'])`` is a train-mode call that returns the updated SN and BN collections.
    ``D`` and ``D_vars`` are None when ``D_kwargs`` is None.
    """
    return common.networks_from_upstream(functools.partial(biggan_generator_from_kwargs, dtype=dtype),
                                         functools.partial(biggan_discriminator_from_kwargs, dtype=dtype),
                                         biggan_variables_from_state_dict, G_kwargs, G_state, D_kwargs, D_state,
                                         "D_state")
