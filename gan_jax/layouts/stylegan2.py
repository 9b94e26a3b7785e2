"""StyleGAN2: NVlabs/stylegan2-ada-pytorch ``state_dict`` <-> gan_jax Flax variables.

A Flax variable path is the upstream name: ``params/synthesis/b8/conv0/weight`` <->
``synthesis.b8.conv0.weight``, ``buffers/mapping/w_avg`` <-> ``mapping.w_avg``. Layouts
(``permutations.STYLEGAN2``):

| upstream name ends in            | upstream layout   | gan_jax layout     |
| -------------------------------- | ----------------- | ------------------ |
| ``.weight`` of a conv / modconv  | ``[O, I, kh, kw]`` | ``[kh, kw, I, O]`` |
| ``.weight`` of an FC / affine    | ``[out, in]``     | ``[in, out]``      |
| ``.const``                       | ``[C, H, W]``     | ``[H, W, C]``      |
| everything else                  | as is             | as is              |

The ``resample_filter`` buffers are constants that every upstream block and conv layer carries;
gan_jax builds them from the constructor's ``resample_filter`` instead of storing them. On import
the ones that filter (block level, G ``conv0``/``skip``, D ``conv1``/``skip``) must equal that
filter; the others are unused upstream too and only have to be present. On export they are
written as upstream writes them.

This module imports only jax, flax, numpy and gan_jax.models / gan_jax.nn.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from gan_jax.layouts import common
from gan_jax.layouts.common import StateDict, StateDictMismatch, Variables
from gan_jax.layouts.permutations import STYLEGAN2 as LAYOUT
from gan_jax.models import stylegan2
from gan_jax.models.from_kwargs import discriminator_from_kwargs, generator_from_kwargs
from gan_jax.nn.upfirdn2d import setup_filter

__all__ = ["StateDictMismatch", "state_dict_from_variables", "stylegan2_from_torch", "upstream_state_shapes",
           "variables_from_state_dict"]


def _abstract_variables(module: Any) -> Variables:
    """Shapes of ``module``'s variables, without computing anything."""
    c = jnp.zeros((1, module.c_dim), jnp.float32) if module.c_dim else None
    if isinstance(module, stylegan2.Generator):
        return common.abstract_init(module, jnp.zeros((1, module.z_dim), jnp.float32), c, noise_mode="const")
    if isinstance(module, stylegan2.Discriminator):
        r = module.img_resolution
        return common.abstract_init(module, jnp.zeros((1, r, r, module.img_channels), jnp.float32), c)
    raise TypeError(f"no upstream layout known for {type(module).__name__}")


def _resample_filter_buffers(module: Any, module_paths: set[tuple[str, ...]]) -> dict[str, tuple[np.ndarray, bool]]:
    """``{upstream name: (value upstream stores, whether gan_jax's computation depends on it)}``."""
    is_g = isinstance(module, stylegan2.Generator)
    configured = setup_filter(module.resample_filter)
    default = setup_filter(stylegan2.DEFAULT_FILTER)
    resampling_layers = {"conv0", "skip"} if is_g else {"conv1", "skip"}
    out = {}
    for path in module_paths:
        name = ".".join(path)
        is_block = re.fullmatch(r"b\d+", path[-1]) and (path[:-1] == ("synthesis",) if is_g else (len(path) == 1 and path[0] != "b4"))
        if is_block:
            out[name + ".resample_filter"] = (configured, True)
        elif path[-1] in {"conv0", "conv1", "skip", "fromrgb", "conv"}:
            used = path[-1] in resampling_layers
            out[name + ".resample_filter"] = (configured if used else default, used)
    return out


def _module_paths(flat: Mapping[tuple[str, ...], Any]) -> set[tuple[str, ...]]:
    """Every module path that owns a variable or a child that does."""
    return {k[1:i] for k in flat for i in range(2, len(k))}


def upstream_state_shapes(module: Any) -> dict[str, tuple[int, ...]]:
    """The upstream ``state_dict`` names and shapes of ``module`` (parameters and buffers)."""
    flat = common.flat_variables(_abstract_variables(module))
    shapes = {name: shape for name, (_, shape) in common.upstream_names(flat, LAYOUT, ".").items()}
    for name, (value, _) in _resample_filter_buffers(module, _module_paths(flat)).items():
        shapes[name] = value.shape
    return shapes


def variables_from_state_dict(module: Any, state: StateDict) -> Variables:
    """Upstream ``state_dict`` (name -> array, torch layouts) -> Flax variables of ``module``.

    Raises ``StateDictMismatch`` listing every missing, unexpected, mis-shaped and non-float name
    with the expected and found shapes, and every resampling filter other than the configured one.
    """
    abstract = common.flat_variables(_abstract_variables(module))
    filters = _resample_filter_buffers(module, _module_paths(abstract))
    state = {k: np.asarray(v) for k, v in state.items()}
    names = common.upstream_names(abstract, LAYOUT, ".")
    shapes = {name: shape for name, (_, shape) in names.items()}
    shapes.update({name: value.shape for name, (value, _) in filters.items()})
    other_filters = [f"  wrong value {name}: expected setup_filter({list(module.resample_filter)}), found another "
                     "filter; pass its taps as resample_filter"
                     for name, (value, used) in sorted(filters.items())
                     if used and name in state and state[name].shape == value.shape
                     and not np.allclose(state[name], value, rtol=1e-6, atol=1e-7)]
    common.check_arrays(shapes, state, f"state dict does not match {type(module).__name__}"
                        f"(img_resolution={module.img_resolution}, ...)", more=other_filters)
    return common.import_arrays(names, state, LAYOUT)


def state_dict_from_variables(module: Any, variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Flax variables of ``module`` -> upstream ``state_dict`` (numpy, torch layouts, float32)."""
    flat = common.flat_variables(variables)
    state = common.export_arrays(flat, LAYOUT, ".")
    for name, (value, _) in _resample_filter_buffers(module, _module_paths(flat)).items():
        state[name] = value.copy()
    return state


def stylegan2_from_torch(
    G_kwargs: Mapping[str, Any],
    G_state: StateDict,
    D_kwargs: Mapping[str, Any] | None = None,
    D_state: StateDict | None = None,
    dtype: Any = jnp.float32,
) -> tuple[stylegan2.Generator, Variables, stylegan2.Discriminator | None, Variables | None]:
    """NVIDIA's StyleGAN2-ADA ``(init_kwargs, state_dict)`` pairs -> ``(G, G_vars, D, D_vars)``.

    ``G.apply(G_vars, z, c, truncation_psi=psi, noise_mode='const')`` gives NHWC images,
    ``G.apply(G_vars, z, c, truncation_psi=psi, method='mapping')`` gives ws
    ``[N, num_ws, w_dim]`` and ``D.apply(D_vars, images_nhwc, c)`` gives logits ``[N, 1]``.
    ``D`` and ``D_vars`` are None when ``D_kwargs`` is None.
    """
    return common.networks_from_upstream(functools.partial(generator_from_kwargs, dtype=dtype),
                                         functools.partial(discriminator_from_kwargs, dtype=dtype),
                                         variables_from_state_dict, G_kwargs, G_state, D_kwargs, D_state, "D_state")
