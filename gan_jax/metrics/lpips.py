"""LPIPS (Zhang et al. 2018) with the VGG16 trunk, as ``lpips.LPIPS(net='vgg', version='0.1')``.

The distance between images ``x0`` and ``x1`` [N, H, W, 3] in [-1, 1] (the ``lpips`` package's
``normalize=False`` inputs), per image, follows ``lpips/lpips.py`` of the ``lpips`` 0.1.4 wheel:

1. ``ScalingLayer``: ``(x - shift) / scale`` with shift ``(-.030, -.088, -.188)`` and scale
   ``(.458, .448, .450)`` (ImageNet's mean and std carried to [-1, 1] inputs);
2. torchvision's VGG16 ``features`` (:mod:`gan_jax.metrics.vgg16`), tapped at ``relu1_2``,
   ``relu2_2``, ``relu3_3``, ``relu4_3`` and ``relu5_3``;
3. each tap unit-normalised across channels, ``f / (sqrt(sum_c f^2) + 1e-10)``
   (``lpips.normalize_tensor``);
4. the squared difference of the two images' normalised taps, weighted by the 1x1 convolution
   without bias ``lin{k}`` (one output channel; non-negative learned weights), averaged over the
   spatial positions (``spatial_average``), and summed over the five layers.

Weights: the trunk is torchvision's ImageNet VGG16 (``vgg16-397923af.pth``, found as
:func:`gan_jax.metrics.vgg16.load_vgg16` finds it); the linear layers are the ``lpips`` wheel's
``lpips/weights/v0.1/vgg.pth`` (``lin{k}.model.1.weight`` [1, C, 1, 1]), looked for at the path
given, ``$GAN_JAX_LPIPS``, inside the installed ``lpips`` package (found without importing it,
which would import torch), and ``~/.cache/gan_jax/lpips/v0.1/vgg.pth``. Both files are read by
:mod:`gan_jax.torch_file` (no torch). Only the scalar (non-spatial) LPIPS is provided.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gan_jax import restricted_pickle as rp
from gan_jax.metrics import vgg16
from gan_jax.metrics.weights import cache_dir

__all__ = ["LPIPS", "SCALE", "SHIFT", "LPIPSWeightsError", "LPIPSWeightsMissing", "find_lin_weights",
           "lin_params_from_state", "load_lpips", "lpips_distance", "missing_message", "normalize_tensor",
           "read_lin_file"]

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10
VERSION = "0.1"
LIN_FILE = os.path.join("weights", f"v{VERSION}", "vgg.pth")  # inside the lpips package
LIN_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth"
ENV_VAR = "GAN_JAX_LPIPS"
_LIN_NAME = re.compile(r"lin([0-4])\.model\.[01]\.weight")  # model.1 after a Dropout (the shipped file), else model.0
_HIGHEST = lax.Precision.HIGHEST


def normalize_tensor(f: jax.Array, eps: float = EPS) -> jax.Array:
    """``f`` [N, H, W, C] divided by its channel norm plus ``eps`` (``lpips.normalize_tensor``)."""
    return f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + eps)


class LPIPS(nn.Module):
    """``(x0, x1)`` [N, H, W, 3] each, float in [-1, 1] -> LPIPS distance [N].

    Parameters: ``net`` (torchvision VGG16 ``features``, see :class:`vgg16.VGG16Features`) and
    ``lin0`` ... ``lin4`` ``{'weight': [C]}``, C = 64, 128, 256, 512, 512.
    ``per_layer=True`` returns ``(distance [N], [layer 0 ... 4 terms, each [N]])``.
    """

    @nn.compact
    def __call__(self, x0: jax.Array, x1: jax.Array, per_layer: bool = False) -> Any:
        if x0.shape != x1.shape:
            raise ValueError(f"LPIPS compares images of one shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
        shift, scale = jnp.asarray(SHIFT, jnp.float32), jnp.asarray(SCALE, jnp.float32)
        n = x0.shape[0]
        net = vgg16.VGG16Features(name="net")
        # Both images through the trunk in one batch.
        taps = net((jnp.concatenate([x0, x1]).astype(jnp.float32) - shift) / scale, taps=True)
        terms = []
        for k, (layer, channels) in enumerate(zip(vgg16.LPIPS_LAYERS, vgg16.LPIPS_CHANNELS)):
            w = self.param(f"lin{k}", lambda key, c: {"weight": jnp.full((c,), 1.0 / c)}, channels)["weight"]
            f = normalize_tensor(taps[layer])
            d = (f[:n] - f[n:]) ** 2
            terms.append(jnp.mean(jnp.einsum("nhwc,c->nhw", d, w, precision=_HIGHEST), axis=(1, 2)))
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return (total, terms) if per_layer else total


def lpips_distance(variables: Mapping[str, Any], x0: jax.Array, x1: jax.Array) -> jax.Array:
    """LPIPS between ``x0`` and ``x1`` [N, H, W, 3] (float, [-1, 1]) -> [N], with
    :func:`load_lpips`'s variables."""
    return LPIPS().apply(variables, x0, x1)


# ---------------------------------------------------------------------------------------------
# Weights.


class LPIPSWeightsMissing(FileNotFoundError):
    """The LPIPS linear-layer weights file was not found."""


class LPIPSWeightsError(rp.RestrictedPickleError):
    """The linear-layer file cannot be read or is not LPIPS v0.1 VGG's; one line naming it."""


def _package_file() -> str | None:
    """``weights/v0.1/vgg.pth`` inside the installed ``lpips`` package, found without importing it."""
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(next(iter(spec.submodule_search_locations)), LIN_FILE)


def _candidates(path: str | None) -> list[str]:
    out = [path] if path else []
    if os.environ.get(ENV_VAR):
        out.append(os.environ[ENV_VAR])
    package = _package_file()
    return out + ([package] if package else []) + [os.path.join(cache_dir(), "lpips", LIN_FILE.split(os.sep, 1)[1])]


def missing_message(path: str | None = None) -> str:
    """What was looked for and where to put it."""
    where = "\n".join(f"  {p}" for p in _candidates(path))
    return (f"no LPIPS v{VERSION} VGG linear-layer weights (vgg.pth) found; looked at:\n{where}\n"
            f"Install the lpips package (pip install lpips==0.1.4; its wheel ships lpips/{LIN_FILE}), or put "
            f"that vgg.pth (from {LIN_URL}) at one of these paths, or set ${ENV_VAR}=PATH")


def find_lin_weights(path: str | None = None) -> str | None:
    """The first existing linear-layer file of the search order, or None; a given ``path`` must exist."""
    if path and not os.path.exists(path):
        raise LPIPSWeightsMissing(f"LPIPS linear-layer weights {path} do not exist; expected the lpips package's "
                                  f"{LIN_FILE} (from {LIN_URL})")
    return next((p for p in _candidates(path) if os.path.exists(p)), None)


def lin_params_from_state(state: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """``{lin{k}.model.1.weight: [1, C, 1, 1]}`` -> ``{'lin{k}': {'weight': [C]}}``; names and shapes checked."""
    got: dict[str, Any] = {}
    problems = []
    for name, value in state.items():
        m = _LIN_NAME.fullmatch(name)
        value = np.asarray(value)
        if m is None:
            problems.append(f"unexpected {name} {tuple(value.shape)}")
            continue
        c = vgg16.LPIPS_CHANNELS[int(m.group(1))]
        if value.shape != (1, c, 1, 1):
            problems.append(f"{name}: expected {(1, c, 1, 1)}, found {tuple(value.shape)}")
        elif f"lin{m.group(1)}" in got:
            problems.append(f"lin{m.group(1)} given twice")
        else:
            got[f"lin{m.group(1)}"] = {"weight": value.reshape(c).astype(np.float32)}
    problems += [f"missing lin{k}.model.1.weight" for k in range(len(vgg16.LPIPS_CHANNELS)) if f"lin{k}" not in got
                 and not any(p.startswith(f"lin{k}.") for p in problems)]
    if problems:
        raise LPIPSWeightsError(f"not LPIPS v{VERSION} VGG linear layers: {'; '.join(problems[:4])}"
                                + ("; ..." if len(problems) > 4 else ""))
    return got


def read_lin_file(path: str) -> dict[str, Any]:
    """The linear layers from a ``vgg.pth`` state dict, read without torch; any failure is one
    :class:`LPIPSWeightsError` naming the file."""
    from gan_jax import torch_file

    try:
        return lin_params_from_state(torch_file.load_state_dict(path))
    except Exception as e:  # noqa: BLE001 (zipfile, numpy and the unpickler raise many kinds)
        raise rp.failure(LPIPSWeightsError, path, e, "corrupt or not an LPIPS weights file") from None


def load_lpips(vgg_path: str | None = None, lin_path: str | None = None,
               download_missing: bool = False) -> dict[str, Any]:
    """LPIPS variables: the VGG16 trunk (:func:`vgg16.load_vgg16`, ``features`` only) and the
    linear layers (search order in the module docstring). A missing file raises
    :class:`vgg16.VGG16WeightsMissing` or :class:`LPIPSWeightsMissing` saying where to put it."""
    found = find_lin_weights(lin_path)
    if found is None:
        raise LPIPSWeightsMissing(missing_message(lin_path))
    lins = read_lin_file(found)
    trunk = vgg16.load_vgg16(vgg_path, classifier=False, download_missing=download_missing)
    return {"params": {"net": trunk["params"]["features"], **lins}}
