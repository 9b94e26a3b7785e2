"""What the upstream layouts share: name tables, the mismatch report and the import / export loops.

An upstream name is a Flax variable path without its collection, joined by the upstream's
separator: ``params/synthesis/b8/conv0/weight`` <-> ``synthesis.b8.conv0.weight`` (torch, '.'),
``params/G_mapping/Dense0/weight`` <-> ``G_mapping/Dense0/weight`` (TF, '/'). Arrays are
permuted by the upstream's :class:`~gan_jax.layouts.permutations.Layout`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.layouts.permutations import Layout

__all__ = ["StateDict", "StateDictMismatch", "Variables", "abstract_init", "check_arrays", "export_arrays",
           "flat_variables", "import_arrays", "networks_from_upstream", "upstream_names"]

StateDict = Mapping[str, Any]
Variables = dict[str, Any]
Key = tuple[str, ...]  # (collection, *path)


class StateDictMismatch(ValueError):
    """The state dict / variables do not fit the network built from the constructor kwargs."""


def abstract_init(module: Any, *args: Any, **kwargs: Any) -> Variables:
    """The shapes of ``module.init(rngs, *args, **kwargs)``'s variables, computing nothing."""
    rngs = {"params": jax.random.key(0), "noise": jax.random.key(0)}
    return jax.eval_shape(lambda: module.init(rngs, *args, **kwargs))


def flat_variables(variables: Mapping[str, Any], collections: Iterable[str] = ("params", "buffers")) -> dict[Key, Any]:
    """``{(collection, *path): leaf}`` of the given (persistent) collections."""
    collections = tuple(collections)
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables))
    return {k: v for k, v in flat.items() if k[0] in collections}


def upstream_names(flat: Mapping[Key, Any], layout: Layout, sep: str) -> dict[str, tuple[Key, tuple[int, ...]]]:
    """``{upstream name: (Flax key, upstream shape)}`` of flat (abstract) variables."""
    return {sep.join(k[1:]): (k, layout.upstream_shape(k[-1], tuple(v.shape))) for k, v in flat.items()}


def check_arrays(expected: Mapping[str, tuple[int, ...]], arrays: Mapping[str, np.ndarray], what: str, *,
                 scalars: Iterable[str] = (), more: Iterable[str] = ()) -> None:
    """Raise :class:`StateDictMismatch` listing every problem of ``arrays`` at once.

    ``expected``: upstream name -> shape; each must be present, of that shape and floating point.
    ``scalars``: names that may be present as 0-d arrays and are not stored (TF's ``lod``).
    ``more``: problems the caller found (lines ``'  wrong value NAME: ...'``). Every other name is
    unexpected. ``what`` opens the message: ``'state dict does not match Generator(...)'``.
    """
    problems = []
    for name, shape in sorted(expected.items()):
        found = arrays.get(name)
        if found is None:
            problems.append(f"  missing    {name}: expected shape {list(shape)}")
        elif tuple(found.shape) != tuple(shape):
            problems.append(f"  wrong shape {name}: expected {list(shape)}, found {list(found.shape)}")
        elif not np.issubdtype(found.dtype, np.floating):
            problems.append(f"  wrong dtype {name}: expected a floating-point array, found {found.dtype}")
    scalars = tuple(scalars)
    for name in scalars:
        if name in arrays and arrays[name].shape != ():
            problems.append(f"  wrong shape {name}: expected a scalar, found {list(arrays[name].shape)}")
    problems += list(more)
    for name in sorted(set(arrays) - set(expected) - set(scalars)):
        problems.append(f"  unexpected {name}: shape {list(arrays[name].shape)}")
    if problems:
        raise StateDictMismatch(f"{what} built from the given kwargs ({len(problems)} problem(s)):\n" + "\n".join(problems))


def import_arrays(names: Mapping[str, tuple[Key, Any]], arrays: Mapping[str, np.ndarray], layout: Layout) -> Variables:
    """Checked upstream arrays -> Flax variables (float32, gan_jax layouts); ``names`` as
    :func:`upstream_names` gives them."""
    flat = {key: jnp.asarray(layout.from_upstream(key[-1], arrays[name].astype(np.float32)))
            for name, (key, _) in names.items()}
    return flax.traverse_util.unflatten_dict(flat)


def export_arrays(flat: Mapping[Key, Any], layout: Layout, sep: str, dtype: Any = None) -> dict[str, np.ndarray]:
    """Flat Flax variables -> ``{upstream name: numpy array in the upstream layout}`` (cast to
    ``dtype`` when given)."""
    return {sep.join(k[1:]): np.asarray(layout.to_upstream(k[-1], np.asarray(v, dtype))) for k, v in flat.items()}


def networks_from_upstream(
    build_G: Callable[[Mapping[str, Any]], Any],
    build_D: Callable[[Mapping[str, Any]], Any],
    load: Callable[[Any, Any], Variables],
    G_kwargs: Mapping[str, Any],
    G_arrays: Any,
    D_kwargs: Mapping[str, Any] | None,
    D_arrays: Any,
    arrays_name: str,
) -> tuple[Any, Variables, Any, Variables | None]:
    """``(G, load(G, G_arrays), D, load(D, D_arrays))`` for networks built from upstream kwargs;
    ``D`` and its variables are None when ``D_kwargs`` is None. ``arrays_name`` names the D
    arguments in the error when ``D_kwargs`` come without them."""
    G = build_G(G_kwargs)
    G_vars = load(G, G_arrays)
    if D_kwargs is None:
        return G, G_vars, None, None
    if D_arrays is None:
        raise ValueError(f"D_kwargs given without {arrays_name}")
    D = build_D(D_kwargs)
    return G, G_vars, D, load(D, D_arrays)
