"""ProGAN: tkarras/progressive_growing_of_gans TF variables (G_paper / D_paper ``Network.vars``) <-> Flax.

The names and layouts are the official ones, unchanged (``permutations.PROGAN``): a TF variable
name is the Flax path joined by '/' without the collection, ``4x4/Dense/weight`` <->
``params/4x4/Dense/weight``, ``8x8/Conv0_up/weight`` (fused up-conv, ``[3, 3, out, in]`` in both),
``8x8/Conv0/weight`` (unfused, ``[3, 3, in, out]``), ``ToRGB_lod0/bias``, ``FromRGB_lod1/weight``,
``16x16/Conv1_down/weight``, ``4x4/Dense0/weight`` ``[in, out]``, ``4x4/Dense1/bias``. The scalar
``lod`` variable (the level of detail the network last ran at; gan_jax takes it per call) is
checked to be a scalar and not stored.

This module imports only jax, flax, numpy and gan_jax.models.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from gan_jax.layouts import common
from gan_jax.layouts.common import StateDictMismatch, Variables
from gan_jax.layouts.permutations import PROGAN as LAYOUT
from gan_jax.models import progan
from gan_jax.models.from_kwargs import progan_discriminator_from_kwargs, progan_generator_from_kwargs

__all__ = ["StateDictMismatch", "progan_from_tf", "progan_tf_from_variables", "progan_tf_shapes",
           "progan_variables_from_tf"]


def _names(module: Any) -> dict[str, tuple[tuple[str, ...], tuple[int, ...]]]:
    """``{official name: (Flax key, shape)}`` of a ProGAN G or D, by shape only."""
    if isinstance(module, progan.Generator):
        c = jnp.zeros((1, module.c_dim), jnp.float32) if module.c_dim else None
        abstract = common.abstract_init(module, jnp.zeros((1, module.z_dim), jnp.float32), c)
    elif isinstance(module, progan.Discriminator):
        r, ch = int(module.resolution), int(module.num_channels)
        abstract = common.abstract_init(module.clone(mbstd_num_shards=1), jnp.zeros((1, r, r, ch)))
    else:
        raise TypeError(f"not a ProGAN network: {type(module).__name__}")
    return common.upstream_names(common.flat_variables(abstract, ("params",)), LAYOUT, "/")


def progan_tf_shapes(module: Any) -> dict[str, tuple[int, ...]]:
    """The official variable names and shapes of a ProGAN G or D (without ``lod``), by shape only."""
    return {name: shape for name, (_, shape) in _names(module).items()}


def progan_variables_from_tf(module: Any, tf_vars: Mapping[str, Any]) -> Variables:
    """Official ``Network.vars`` (name -> array, e.g. a pickle's ``variables``) -> ``{'params': ...}``.

    Raises ``StateDictMismatch`` listing every missing, unexpected and mis-shaped name.
    """
    names = _names(module)
    tf_vars = {k: np.asarray(v) for k, v in tf_vars.items()}
    common.check_arrays({name: shape for name, (_, shape) in names.items()}, tf_vars,
                        f"variables do not match {type(module).__name__}(resolution={module.resolution}, ...)",
                        scalars=("lod",))
    return common.import_arrays(names, tf_vars, LAYOUT)


def progan_tf_from_variables(variables: Mapping[str, Any], lod: float = 0.0) -> dict[str, np.ndarray]:
    """Flax variables -> official ``Network.vars`` names and layouts (with the scalar ``lod``)."""
    return {"lod": np.float32(lod), **common.export_arrays(common.flat_variables(variables, ("params",)), LAYOUT, "/")}


def progan_from_tf(G_kwargs: Mapping[str, Any], G_vars: Mapping[str, Any], D_kwargs: Mapping[str, Any] | None = None,
                   D_vars: Mapping[str, Any] | None = None,
                   dtype: Any = None) -> tuple[progan.Generator, Variables, progan.Discriminator | None, Variables | None]:
    """The official ``(static_kwargs, variables)`` of ``G_paper`` / ``D_paper`` -> ``(G, G_vars, D, D_vars)``.

    ``G.apply(G_vars, latents, labels, lod=L)`` gives NHWC images [N, R, R, C] at full resolution and
    ``D.apply(D_vars, images_nhwc, labels, lod=L)`` scores [N, 1] (``return_label_logits=True`` adds
    the AC-GAN logits); labels may be None. ``D`` and ``D_vars`` are None when ``D_kwargs`` is None.
    """
    return common.networks_from_upstream(functools.partial(progan_generator_from_kwargs, dtype=dtype),
                                         functools.partial(progan_discriminator_from_kwargs, dtype=dtype),
                                         progan_variables_from_tf, G_kwargs, G_vars, D_kwargs, D_vars, "D_vars")
