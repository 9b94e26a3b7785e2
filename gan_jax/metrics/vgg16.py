"""torchvision's VGG16 (``torchvision.models.vgg16``, configuration "D", no BatchNorm) in Flax, NHWC.

The layout is torchvision's: ``features`` (13 3x3 convolutions with padding 1, each followed by a
ReLU, and 5 2x2 stride-2 max pools), ``avgpool`` (adaptive average pooling to 7x7), ``classifier``
(Linear 25088 -> 4096, ReLU, Dropout, Linear 4096 -> 4096, ReLU, Dropout, Linear 4096 -> 1000;
dropout is the identity at inference). Parameter paths are torchvision's state-dict names with
``.`` as the path separator (``features.28.weight`` -> ``features/28/weight``), convolution weights
HWIO, dense weights ``[in, out]``. Every convolution and matmul runs at ``Precision.HIGHEST``.

The network takes already-normalised images ``[N, H, W, 3]`` (torchvision's ImageNet models
expect ``(x - mean) / std`` of [0, 1] pixels; LPIPS applies its own scaling, see
:mod:`gan_jax.metrics.lpips`). :func:`relu_features` returns the five ReLU outputs LPIPS reads
(``relu1_2`` ... ``relu5_3``).

Weights: torchvision's ImageNet file ``vgg16-397923af.pth`` (what ``vgg16(weights="IMAGENET1K_V1")``
downloads into the torch hub cache), read by :mod:`gan_jax.torch_file` (restricted unpickler, no
torch, nothing in the file runs). :func:`load_vgg16` looks, in order, at the path given,
``$GAN_JAX_VGG16``, ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth`` (default
``~/.cache/torch/hub/checkpoints``) and ``~/.cache/gan_jax/vgg16-397923af.pth``; without any it
downloads torchvision's file (sha256-checked) when ``download=True``, or raises
:class:`VGG16WeightsMissing` naming the paths it looked at and the file to put there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from jax import lax

from gan_jax import restricted_pickle as rp
from gan_jax.layouts import permutations
from gan_jax.metrics.weights import cache_dir

__all__ = ["LPIPS_LAYERS", "TORCHVISION_FILE", "TORCHVISION_URL", "VGG16", "VGG16Features",
           "VGG16WeightsError", "VGG16WeightsMismatch", "VGG16WeightsMissing", "abstract_variables",
           "adaptive_avg_pool", "adaptive_pool_matrix", "download", "find_weights", "load_vgg16",
           "missing_message", "pr_features", "read_weights_file", "relu_features", "variables_from_torchvision"]

TORCHVISION_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
TORCHVISION_FILE = os.path.basename(TORCHVISION_URL)
_SHA256_PREFIX = "397923af"  # torch hub convention: the file name carries its sha256's first hex digits
ENV_VAR = "GAN_JAX_VGG16"

# torchvision's cfgs["D"]: output channels of each convolution, "M" a 2x2 max pool.
CONFIG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                                 512, 512, 512, "M")
# The ReLU outputs LPIPS uses: the last ReLU of each block, before its max pool.
LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
POOL_SIZE = 7  # torchvision's AdaptiveAvgPool2d((7, 7))
FEATURE_DIM = 512
NUM_CLASSES = 1000
_HIGHEST = lax.Precision.HIGHEST


class Conv3x3(nn.Module):
    """3x3 convolution, stride 1, padding 1, with bias; weight ``[3, 3, in, out]``."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.param("weight", nn.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features))
        b = self.param("bias", nn.initializers.zeros, (self.features,))
        y = lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)], dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     precision=_HIGHEST)
        return y + b


class Dense(nn.Module):
    """``x @ weight + bias``, ``weight`` [in, out] (torch's ``Linear.weight`` transposed)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.param("weight", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        return jnp.dot(x, w, precision=_HIGHEST) + self.param("bias", nn.initializers.zeros, (self.features,))


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """``nn.MaxPool2d(2, 2)`` on [N, H, W, C]: odd trailing rows/columns are dropped (floor mode)."""
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def adaptive_pool_matrix(n_in: int, n_out: int = POOL_SIZE) -> np.ndarray:
    """[n_out, n_in] weights of ``AdaptiveAvgPool`` along one axis: output ``i`` averages inputs
    ``floor(i * n_in / n_out)`` to ``ceil((i + 1) * n_in / n_out) - 1`` (bins overlap or repeat
    when ``n_in`` is not a multiple of ``n_out``)."""
    m = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m.astype(np.float32)


def adaptive_avg_pool(x: jax.Array, size: int = POOL_SIZE) -> jax.Array:
    """``nn.AdaptiveAvgPool2d((size, size))`` on ``x`` [N, H, W, C] -> [N, size, size, C]."""
    h, w = x.shape[1:3]
    if h != size:
        x = jnp.einsum("ph,nhwc->npwc", adaptive_pool_matrix(h, size), x, precision=_HIGHEST)
    if w != size:
        x = jnp.einsum("qw,npwc->npqc", adaptive_pool_matrix(w, size), x, precision=_HIGHEST)
    return x


class VGG16Features(nn.Module):
    """torchvision's ``vgg16().features``; submodule names are the ``nn.Sequential`` indices.

    ``x`` [N, H, W, 3] -> [N, H // 32, W // 32, 512] (after the fifth max pool), or with
    ``taps=True`` the dict ``{relu1_2: [N, H, W, 64], relu2_2: [N, H/2, W/2, 128], relu3_3:
    [N, H/4, W/4, 256], relu4_3: [N, H/8, W/8, 512], relu5_3: [N, H/16, W/16, 512]}`` (sizes
    floored at each pool), computed without the last max pool.
    """

    @nn.compact
    def __call__(self, x: jax.Array, taps: bool = False) -> jax.Array | dict[str, jax.Array]:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"VGG16 expects [N, H, W, 3] images, got shape {tuple(x.shape)}")
        out: dict[str, jax.Array] = {}
        index, block, conv = 0, 1, 0
        for v in CONFIG:
            if v == "M":
                if taps:
                    out[f"relu{block}_{conv}"] = x
                    if block == len(LPIPS_LAYERS):
                        return out
                x = max_pool_2x2(x)
                index, block, conv = index + 1, block + 1, 0
            else:
                x = nn.relu(Conv3x3(int(v), name=str(index))(x))
                index, conv = index + 2, conv + 1  # Conv2d, ReLU
        return x


class Classifier(nn.Module):
    """torchvision's ``classifier``: Linear(25088, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU,
    Dropout, Linear(4096, num_classes); dropout is the identity (inference)."""

    num_classes: int = NUM_CLASSES

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.relu(Dense(4096, name="0")(x))
        x = nn.relu(Dense(4096, name="3")(x))
        return Dense(self.num_classes, name="6")(x)


class VGG16(nn.Module):
    """``x`` [N, H, W, 3] (normalised) -> (features [N, H // 32, W // 32, 512], logits [N, 1000]).

    The classifier reads the 7x7 adaptive average pool of the features flattened in NHWC order
    (h, w, c); torchvision flattens (c, h, w), which :func:`variables_from_torchvision` accounts
    for by permuting the rows of ``classifier.0.weight``.
    """

    num_classes: int = NUM_CLASSES

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        features = VGG16Features(name="features")(x)
        pooled = adaptive_avg_pool(features).reshape(features.shape[0], -1)
        return features, Classifier(self.num_classes, name="classifier")(pooled)


def relu_features(variables: Mapping[str, Any], x: jax.Array) -> dict[str, jax.Array]:
    """The ReLU outputs LPIPS uses, ``{name: [N, h, w, c]}`` for ``name`` in :data:`LPIPS_LAYERS`,
    of ``x`` [N, H, W, 3] (normalised), from :class:`VGG16` variables (only ``features`` is read;
    variables holding the features alone, as ``load_vgg16(classifier=False)`` returns, work too)."""
    return VGG16Features().apply({"params": variables["params"]["features"]}, x, taps=True)


# torchvision's ImageNet normalisation (transforms.Normalize in its VGG16 recipe), of [0, 1] pixels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PR_SIZE = 224  # NVIDIA's vgg16.pt resizes its input to 224x224 (resize_images=True)
PR_DIM = 4096


def pr_features(variables: Mapping[str, Any], images: jax.Array, size: int = PR_SIZE) -> jax.Array:
    """Precision/recall embeddings: uint8 (or float 0..255) images ``[N, H, W, C]`` (C = 1 or 3) ->
    ``[N, 4096]`` float32, the output of torchvision's ``classifier.4`` (fc2 after its ReLU: the
    "fc2" features of Kynkaanniemi et al. 2019, as Keras' VGG16 layer of that name).

    The images are mapped to [0, 1], a grey image repeated to RGB, area-resized to ``size`` x
    ``size`` (``F.interpolate(mode='area')``, i.e. adaptive average pooling, as NVIDIA's ``vgg16.pt``
    with ``resize_images=True``) and normalised with the ImageNet mean and std. ``variables``: the
    full :class:`VGG16` (classifier included). NVIDIA's ``pr50k3`` reads the same layer of its
    TorchScript ``vgg16.pt`` (``return_features=True``), which gan_jax does not read; the weights
    here are torchvision's, so values are close to, not equal to, NVIDIA's (docs/metrics.md).
    """
    x = jnp.asarray(images).astype(jnp.float32) / 255.0
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"pr_features expects images [N, H, W, 1 or 3], got shape {tuple(x.shape)}")
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    x = adaptive_avg_pool(x, size)
    x = (x - jnp.asarray(IMAGENET_MEAN, jnp.float32)) / jnp.asarray(IMAGENET_STD, jnp.float32)
    features = VGG16Features().apply({"params": variables["params"]["features"]}, x)
    pooled = adaptive_avg_pool(features).reshape(features.shape[0], -1)
    c = variables["params"]["classifier"]
    h = nn.relu(jnp.dot(pooled, c["0"]["weight"], precision=_HIGHEST) + c["0"]["bias"])
    return nn.relu(jnp.dot(h, c["3"]["weight"], precision=_HIGHEST) + c["3"]["bias"])


# ---------------------------------------------------------------------------------------------
# Weights.


class VGG16WeightsMissing(FileNotFoundError):
    """No VGG16 weights file was found (and none could be downloaded)."""


class VGG16WeightsError(rp.RestrictedPickleError):
    """A weights file that cannot be read (corrupt, hostile, or not a weights file); one line naming it."""


class VGG16WeightsMismatch(VGG16WeightsError):
    """A weights file whose names or shapes are not torchvision's VGG16."""


def abstract_variables(classifier: bool = True) -> dict[str, Any]:
    """VGG16's variables as shapes only (no compute); ``classifier=False``: ``features`` alone."""
    x = jnp.zeros((1, 32, 32, 3))
    if classifier:
        return jax.eval_shape(lambda: VGG16().init(jax.random.PRNGKey(0), x))
    return jax.eval_shape(lambda: {"params": {"features": VGG16Features().init(jax.random.PRNGKey(0), x)["params"]}})


def _torch_to_flax(path: tuple[str, ...], value: np.ndarray) -> np.ndarray:
    """conv ``[out, in, 3, 3]`` -> ``[3, 3, in, out]``; linear ``[out, in]`` -> ``[in, out]``, and the
    first linear layer's inputs from torch's (c, h, w) flattening to NHWC's (h, w, c)."""
    if path == ("classifier", "0", "weight") and value.ndim == 2 and value.shape[1] == FEATURE_DIM * POOL_SIZE ** 2:
        out_dim = value.shape[0]
        return value.reshape(out_dim, FEATURE_DIM, POOL_SIZE, POOL_SIZE).transpose(2, 3, 1, 0).reshape(-1, out_dim)
    if path[-1] == "weight" and value.ndim == 4:
        return permutations.CONV.from_upstream(value)
    if path[-1] == "weight" and value.ndim == 2:
        return permutations.DENSE.from_upstream(value)
    return value


def _torch_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The torch shape of a parameter of Flax ``shape``: OIHW convolutions, ``[out, in]`` linears."""
    if len(shape) == 4:
        return permutations.CONV.upstream_shape(shape)
    return permutations.DENSE.upstream_shape(shape) if len(shape) == 2 else shape


def variables_from_torchvision(state: Mapping[str, np.ndarray], classifier: bool = True) -> dict[str, Any]:
    """torchvision ``vgg16`` state dict -> ``{'params': ...}`` for :class:`VGG16`.

    ``classifier=False`` keeps ``features.*`` only (what LPIPS needs; ``classifier.*`` tensors in
    the file are then ignored). Every name and shape is checked; raises
    :class:`VGG16WeightsMismatch` listing the missing, unexpected or wrong-shaped tensors.
    """
    want = traverse_util.flatten_dict(abstract_variables(classifier)["params"])
    got: dict[tuple[str, ...], np.ndarray] = {}
    problems: list[str] = []
    for name, value in state.items():
        path = tuple(name.split("."))
        if not classifier and path[0] == "classifier":
            continue
        value = np.asarray(value)
        if path not in want:
            problems.append(f"unexpected {name} {tuple(value.shape)}")
            continue
        expected = _torch_shape(tuple(want[path].shape))
        if tuple(value.shape) != expected:
            problems.append(f"{name}: expected {expected}, found {tuple(value.shape)}")
        else:
            got[path] = _torch_to_flax(path, value).astype(np.float32)
    named = {p.split(":")[0] for p in problems}
    problems += [f"missing {'.'.join(p)}" for p in want if p not in got and ".".join(p) not in named]
    if problems:
        listed = "; ".join(problems[:4]) + ("; ..." if len(problems) > 4 else "")
        raise VGG16WeightsMismatch(f"not torchvision's VGG16 ({TORCHVISION_FILE}): {len(problems)} problem(s): "
                                   f"{listed}")
    return {"params": traverse_util.unflatten_dict(got)}


def read_weights_file(path: str, classifier: bool = True) -> dict[str, Any]:
    """VGG16 variables from a torchvision state-dict file (``.pth``), read without torch.

    Any failure is one :class:`VGG16WeightsError` naming the file; :class:`VGG16WeightsMismatch`
    (a subclass) when it is a readable state dict but not torchvision's VGG16."""
    from gan_jax import torch_file

    try:
        return variables_from_torchvision(torch_file.load_state_dict(path), classifier)
    except torch_file.TorchFileError as e:
        if "TorchScript" not in str(e):
            raise rp.failure(VGG16WeightsError, path, e, "corrupt or not a VGG16 weights file") from None
        # NVIDIA's metrics/vgg16.pt is TorchScript: its layers live in code gan_jax does not run.
        raise VGG16WeightsError(f"{e}. NVIDIA's TorchScript vgg16.pt is not read; use torchvision's "
                                f"{TORCHVISION_FILE} (from {TORCHVISION_URL}) in the torch hub cache "
                                f"(~/.cache/torch/hub/checkpoints/), ${ENV_VAR} or --vgg16") from None
    except Exception as e:  # noqa: BLE001 (zipfile, numpy and the unpickler raise many kinds)
        raise rp.failure(VGG16WeightsError, path, e, "corrupt or not a VGG16 weights file") from None


def _candidates(path: str | None) -> list[str]:
    out = [path] if path else []
    if os.environ.get(ENV_VAR):
        out.append(os.environ[ENV_VAR])
    hub = os.path.join(os.path.expanduser(os.environ.get("TORCH_HOME", "~/.cache/torch")), "hub", "checkpoints")
    return out + [os.path.join(hub, TORCHVISION_FILE), os.path.join(cache_dir(), TORCHVISION_FILE)]


def missing_message(path: str | None = None) -> str:
    """What was looked for and where to put it."""
    where = "\n".join(f"  {p}" for p in _candidates(path))
    return (f"no VGG16 weights found; looked at:\n{where}\n"
            f"Put torchvision's {TORCHVISION_FILE} (from {TORCHVISION_URL}; torchvision's "
            f"vgg16(weights='IMAGENET1K_V1') saves it in the torch hub cache) at one of these paths, "
            f"or set ${ENV_VAR}=PATH")


def find_weights(path: str | None = None) -> str | None:
    """The first existing file of the search order, or None; a given ``path`` must exist."""
    if path and not os.path.exists(path):
        raise VGG16WeightsMissing(f"VGG16 weights {path} do not exist; expected torchvision's {TORCHVISION_FILE} "
                                  f"(from {TORCHVISION_URL})")
    return next((p for p in _candidates(path) if os.path.exists(p)), None)


def download(url: str = TORCHVISION_URL, dest_dir: str | None = None, sha256_prefix: str = _SHA256_PREFIX) -> str:
    """``url`` into ``dest_dir`` (default: the gan_jax cache) under its own name, kept only when its
    sha256 starts with ``sha256_prefix``; returns its path."""
    dest_dir = dest_dir or cache_dir()
    os.makedirs(dest_dir, exist_ok=True)
    dest = os.path.join(dest_dir, os.path.basename(url))
    fd, tmp = tempfile.mkstemp(dir=dest_dir)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as src:
            shutil.copyfileobj(src, out)
        digest = hashlib.sha256()
        with open(tmp, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if not digest.hexdigest().startswith(sha256_prefix):
            raise VGG16WeightsMismatch(f"downloaded {url} has sha256 {digest.hexdigest()}, expected {sha256_prefix}...")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def load_vgg16(path: str | None = None, classifier: bool = True, download_missing: bool = False) -> dict[str, Any]:
    """VGG16 variables from the first file of the search order (module docstring).

    ``classifier=False``: the convolutions only (LPIPS). ``download_missing=True`` fetches
    torchvision's file into ``~/.cache/gan_jax`` when none is found; otherwise a missing file is
    :class:`VGG16WeightsMissing` with the paths looked at."""
    found = find_weights(path)
    if found is None:
        if not download_missing:
            raise VGG16WeightsMissing(missing_message(path))
        try:
            found = download()
        except OSError as err:
            raise VGG16WeightsMissing(f"{missing_message(path)}\n(download failed: {err})") from None
    return read_weights_file(found, classifier)
