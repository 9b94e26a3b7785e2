"""StyleGAN (1): NVlabs/stylegan TF variables (G_style / D_basic ``Network.vars``) <-> Flax.

A TF variable name is the Flax path joined by '/', without the collection:
``G_mapping/Dense0/weight`` <-> ``params/G_mapping/Dense0/weight``, ``dlatent_avg`` and
``G_synthesis/noise{i}`` <-> ``buffers/...``. Layouts (``permutations.STYLEGAN``): conv
``[k, k, in, out]`` and dense ``[in, out]`` as TF; ``4x4/Const/const`` TF ``[1, C, 4, 4]`` <->
``[1, 4, 4, C]``; ``noise{i}`` TF ``[1, 1, H, W]`` <-> ``[1, H, W, 1]``. The scalar ``lod``
variables (``lod``, ``G_synthesis/lod``; D's ``lod``) are the level of detail the network was last
run at: gan_jax takes it per call, so they are checked to be scalars and not stored.

This module imports only jax, flax, numpy and gan_jax.models.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import flax
import jax.numpy as jnp
import numpy as np

from gan_jax.layouts import common
from gan_jax.layouts.common import StateDictMismatch, Variables
from gan_jax.layouts.permutations import STYLEGAN as LAYOUT
from gan_jax.models import stylegan
from gan_jax.models.from_kwargs import stylegan_discriminator_from_kwargs, stylegan_generator_from_kwargs

__all__ = ["StateDictMismatch", "stylegan_from_tf", "stylegan_tf_from_variables", "stylegan_tf_shapes",
           "stylegan_variables_from_tf"]

_LOD_VARS = {"G": ("lod", "G_synthesis/lod"), "D": ("lod",)}


def _abstract(module: Any) -> Variables:
    c = jnp.zeros((1, module.label_size), jnp.float32) if module.label_size else None
    if isinstance(module, stylegan.Generator):
        return common.abstract_init(module, jnp.zeros((1, module.latent_size), jnp.float32), c, noise_mode="const")
    r = module.resolution
    img = jnp.zeros((1, r, r, module.num_channels), jnp.float32)
    return common.abstract_init(module.clone(mbstd_num_shards=1), img, c)


def stylegan_tf_shapes(module: Any) -> dict[str, tuple[int, ...]]:
    """The official variable names and TF shapes of a StyleGAN ``Generator`` / ``Discriminator``
    (without the scalar ``lod`` variables)."""
    names = common.upstream_names(common.flat_variables(_abstract(module)), LAYOUT, "/")
    return {name: shape for name, (_, shape) in names.items()}


def stylegan_variables_from_tf(module: Any, tf_vars: Mapping[str, Any]) -> Variables:
    """Official ``Network.vars`` (name -> array, TF layouts) -> Flax variables of ``module``.

    Raises ``StateDictMismatch`` listing every missing, unexpected and mis-shaped name.
    """
    who = "G" if isinstance(module, stylegan.Generator) else "D"
    names = common.upstream_names(common.flat_variables(_abstract(module)), LAYOUT, "/")
    tf_vars = {k: np.asarray(v) for k, v in tf_vars.items()}
    common.check_arrays({name: shape for name, (_, shape) in names.items()}, tf_vars,
                        f"TF variables do not match StyleGAN {'G_style' if who == 'G' else 'D_basic'}"
                        f"(resolution={module.resolution}, ...)", scalars=_LOD_VARS[who])
    return common.import_arrays(names, tf_vars, LAYOUT)


def stylegan_tf_from_variables(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Flax variables (or a gradient tree of ``params``) -> official names and TF layouts (numpy)."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables))
    # a gradient tree's paths have no collection: give them one for export_arrays to drop
    flat = {k if k[0] in ("params", "buffers") else ("params", *k): v for k, v in flat.items()}
    return common.export_arrays(flat, LAYOUT, "/")


def stylegan_from_tf(
    G_kwargs: Mapping[str, Any],
    G_vars: Mapping[str, Any],
    D_kwargs: Mapping[str, Any] | None = None,
    D_vars: Mapping[str, Any] | None = None,
    dtype: Any = None,
) -> tuple[stylegan.Generator, Variables, stylegan.Discriminator | None, Variables | None]:
    """NVlabs/stylegan ``(static_kwargs, vars)`` of G_style (and D_basic) -> ``(G, G_vars, D, D_vars)``.

    ``G.apply(G_vars, z, None, truncation_psi=psi, truncation_cutoff=k, noise_mode='const', lod=L)``
    gives NHWC images as the official ``Gs.run(z, None, randomize_noise=False)`` at ``lod``;
    ``method='mapping'`` gives the dlatents [N, num_layers, dlatent_size] the synthesis receives;
    ``D.apply(D_vars, images_nhwc, None, lod=L)`` gives scores [N, 1]. ``D``, ``D_vars`` are None
    without ``D_kwargs``. Names are those of ``Network.vars`` (``G_mapping/Dense0/weight``,
    ``G_synthesis/4x4/Const/const``, ``dlatent_avg``, ``FromRGB_lod0/weight``, ...).
    """
    return common.networks_from_upstream(functools.partial(stylegan_generator_from_kwargs, dtype=dtype),
                                         functools.partial(stylegan_discriminator_from_kwargs, dtype=dtype),
                                         stylegan_variables_from_tf, G_kwargs, G_vars, D_kwargs, D_vars, "D_vars")
