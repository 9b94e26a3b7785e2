"""Perceptual path length (PPL; Karras et al. 2019, "A Style-Based Generator Architecture for GANs", sec. 4.2).

Follows ``metrics/perceptual_path_length.py`` of NVlabs/stylegan2-ada-pytorch (``PPLSampler`` and
``compute_ppl``) and the settings of ``metrics/metric_main.py`` (:data:`PPL_METRICS`). Per sample:

1. ``t ~ U[0, 1)`` (``'full'`` paths) or ``t = 0`` (``'end'``: the uniform draw times 0), two latents
   ``z0, z1 ~ N(0, I)`` and a label ``c``;
2. ``space='z'``: the points ``slerp(z0, z1, t)`` and ``slerp(z0, z1, t + epsilon)`` (:func:`slerp`,
   NVIDIA's, with its normalisations) are mapped to W; ``space='w'``: ``w0, w1 = mapping(z0), mapping(z1)``
   and the points are ``lerp(w0, w1, t)``, ``lerp(w0, w1, t + epsilon)`` (``torch.lerp``'s formula);
3. both ws go through the synthesis network in float32 with ``noise_mode='const'`` whose ``noise_const``
   buffers NVIDIA redraws from N(0, 1) before every forward (so one noise map per layer per batch of
   the official ``batch_size=2`` per GPU; here: per group of ``noise_group`` samples);
4. :func:`prepare_images`: the face crop (``crop=True``: rows ``[3c, 7c)``, columns ``[2c, 6c)``,
   ``c = H // 8``), area downsampling by ``factor = img_resolution // 256`` when that is above 1
   (computed from the generator's resolution, as the official code does, also after a crop), the
   ``[-1, 1] -> [0, 255]`` map ``(x + 1) * (255 / 2)`` and grey -> RGB;
5. ``dist = sum((f(img_t) - f(img_t+eps))^2) / epsilon^2`` with ``f`` the distance network's features.

The PPL is the mean of the distances between their 1st (``'lower'``) and 99th (``'higher'``)
percentiles (:func:`aggregate`).

**Distance network.** NVIDIA uses its TorchScript ``vgg16.pt`` called with ``return_lpips=True``:
0..255 images -> LPIPS-style VGG16 features, unit-normalised per position and scaled by the LPIPS
linear weights, so that the squared-difference sum is the LPIPS distance. gan_jax cannot read that
file, so the distance network is a parameter, ``features(feature_variables, images [N, H, W, 3]
in 0..255) -> [N, D]``; :func:`lpips_features` is the one built from :mod:`gan_jax.metrics.lpips`
(``lpips.LPIPS(net='vgg')``'s trunk and linear layers; 0..255 is mapped to LPIPS's [-1, 1] input by
``x / 127.5 - 1``): each layer's unit-normalised map times ``sqrt(lin weight) / sqrt(H_l W_l)``,
flattened and concatenated, whose squared-difference sum equals :class:`lpips.LPIPS`'s distance.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from gan_jax import parallel
from gan_jax.metrics import lpips as lpips_lib
from gan_jax.metrics import vgg16
from gan_jax.models import stylegan2

__all__ = [
    "EPSILON",
    "PPL_METRICS",
    "PPLDraws",
    "PPLSetting",
    "aggregate",
    "compute_ppl",
    "draw_ppl",
    "lpips_features",
    "noise_const_names",
    "ppl_metric",
    "ppl_sampler",
    "prepare_images",
    "slerp",
]

EPSILON = 1e-4
SPACES = ("z", "w")
SAMPLINGS = ("full", "end")
Features = Callable[[Any, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class PPLSetting:
    """One official PPL metric: ``compute_ppl(opts, num_samples, epsilon, space, sampling, crop, batch_size)``."""

    space: str
    sampling: str
    crop: bool
    num_samples: int
    epsilon: float = EPSILON
    batch_size: int = 2  # the official per-GPU batch: one noise_const draw per batch (noise_group here)


# metric_main.py of stylegan2-ada-pytorch (every PPL metric there draws 50k samples).
PPL_METRICS: dict[str, PPLSetting] = {
    "ppl_zfull": PPLSetting("z", "full", True, 50000),
    "ppl_wfull": PPLSetting("w", "full", True, 50000),
    "ppl_zend": PPLSetting("z", "end", True, 50000),
    "ppl_wend": PPLSetting("w", "end", True, 50000),
    "ppl2_wend": PPLSetting("w", "end", False, 50000),
}


class PPLDraws(NamedTuple):
    """The random draws of one batch of N samples, as ``PPLSampler.forward`` makes them.

    ``t`` [N] uniform in [0, 1) (multiplied by 0 for ``'end'`` sampling), ``z0``, ``z1`` [N, z_dim]
    standard normal, ``c`` [N, c_dim] labels (None when ``c_dim == 0``), ``noise`` ``{name: [N, R, R]}``
    N(0, 1) noise maps keyed by the official buffer names (``'synthesis.b8.conv0.noise_const'``):
    sample i's two images (at t and t + epsilon) both use ``noise[name][i]``; NVIDIA's buffers are
    one map per forward, i.e. the same map for every sample of its batch.
    """

    t: jax.Array
    z0: jax.Array
    z1: jax.Array
    c: jax.Array | None
    noise: Mapping[str, jax.Array]


def slerp(a: jax.Array, b: jax.Array, t: jax.Array) -> jax.Array:
    """NVIDIA's spherical interpolation of ``a``, ``b`` [N, D] at ``t`` [N, 1] -> [N, D], unit norm.

    Both ends are normalised, ``b``'s component orthogonal to ``a`` is normalised, the point is
    ``a cos(t theta) + c sin(t theta)`` with ``theta = acos(a . b)``, and it is normalised again.
    """
    norm = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True)
    a, b = norm(a), norm(b)
    d = jnp.sum(a * b, axis=-1, keepdims=True)
    p = t * jnp.arccos(d)
    c = norm(b - d * a)
    return norm(a * jnp.cos(p) + c * jnp.sin(p))


def prepare_images(img: jax.Array, img_resolution: int, crop: bool) -> jax.Array:
    """Generator images [N, H, W, C] in ~[-1, 1] -> distance-network input [N, h, w, 3] in ~[0, 255].

    ``crop``: ``img[:, 3c:7c, 2c:6c]`` with ``c = H // 8`` (H == W required); then, when
    ``factor = img_resolution // 256`` exceeds 1, the mean of each ``factor x factor`` block; then
    ``(img + 1) * (255 / 2)``; a 1-channel image is repeated to 3 channels.
    """
    if crop:
        if img.shape[1] != img.shape[2]:
            raise ValueError(f"the PPL crop needs square images, got {tuple(img.shape)}")
        c = img.shape[1] // 8
        img = img[:, c * 3:c * 7, c * 2:c * 6]
    factor = img_resolution // 256
    if factor > 1:
        n, h, w, ch = img.shape
        img = img.reshape(n, h // factor, factor, w // factor, factor, ch).mean(axis=(2, 4))
    img = (img + 1) * (255 / 2)
    if img.shape[-1] == 1:
        img = jnp.repeat(img, 3, axis=-1)
    return img


def lpips_features(variables: Mapping[str, Any], images: jax.Array) -> jax.Array:
    """LPIPS VGG16 features of ``images`` [N, H, W, 3] (float, 0..255) -> [N, D].

    ``variables``: :func:`gan_jax.metrics.lpips.load_lpips`'s (``params/net`` the VGG16 trunk,
    ``params/lin{k}/weight`` [C_k]). The images are mapped to LPIPS's [-1, 1] by ``x / 127.5 - 1``
    and scaled by LPIPS's ``ScalingLayer``; each tap ``relu{k}`` [N, H_k, W_k, C_k] is
    unit-normalised across channels (:func:`lpips.normalize_tensor`), times ``sqrt(lin_k) /
    sqrt(H_k W_k)``, flattened, and the five are concatenated: ``D = sum_k H_k W_k C_k``, and
    ``sum((features(x) - features(y))^2)`` is the LPIPS distance of x and y.
    """
    shift = jnp.asarray(lpips_lib.SHIFT, jnp.float32)
    scale = jnp.asarray(lpips_lib.SCALE, jnp.float32)
    x = (images.astype(jnp.float32) / 127.5 - 1 - shift) / scale
    taps = vgg16.VGG16Features().apply({"params": variables["params"]["net"]}, x, taps=True)
    out = []
    for k, layer in enumerate(vgg16.LPIPS_LAYERS):
        f = lpips_lib.normalize_tensor(taps[layer])
        w = variables["params"][f"lin{k}"]["weight"]
        f = f * (jnp.sqrt(w) / math.sqrt(f.shape[1] * f.shape[2]))
        out.append(f.reshape(f.shape[0], -1))
    return jnp.concatenate(out, axis=1)


def noise_const_names(G_vars: Mapping[str, Any]) -> list[str]:
    """The official names of the ``noise_const`` buffers of generator variables, in NVIDIA's
    ``named_buffers`` order (by resolution, ``conv0`` before ``conv1``)."""
    flat = traverse_util.flatten_dict(dict(G_vars.get("buffers", {})))
    names = [".".join(path) for path in flat if path[-1] == "noise_const"]

    def order(name: str) -> tuple[int, str]:
        parts = name.split(".")
        return int(parts[1][1:]), parts[2]

    return sorted(names, key=order)


def _noise_inputs(noise: Mapping[str, jax.Array]) -> dict[str, Any]:
    """``{'synthesis.b8.conv0.noise_const': [N, R, R]}`` -> the ``noise_inputs`` collection
    (``synthesis/b8/conv0/noise`` [2N, R, R, 1]: the same map for both images of a sample)."""
    flat = {}
    for name, value in noise.items():
        path = tuple(name.split(".")[:-1]) + ("noise",)
        value = jnp.asarray(value, jnp.float32)
        flat[path] = jnp.concatenate([value, value])[..., None]
    return traverse_util.unflatten_dict(flat)


def ppl_sampler(
    G: stylegan2.Generator,
    G_vars: Mapping[str, Any],
    features: Features,
    feature_variables: Any,
    draws: PPLDraws,
    *,
    space: str,
    sampling: str,
    crop: bool,
    epsilon: float = EPSILON,
) -> jax.Array:
    """Per-sample PPL distances [N] of one batch, as ``PPLSampler.forward`` computes them.

    ``G``: a StyleGAN2 :class:`~gan_jax.models.stylegan2.Generator`, run in float32 (NVIDIA's
    ``force_fp32=True``); ``G_vars``: its variables (``params``, ``buffers``; G_ema's);
    ``features(feature_variables, images [2N, h, w, 3] in 0..255) -> [2N, D]`` the distance network;
    ``draws``: :class:`PPLDraws` of N samples. Pure; jit it with ``G``, ``features``, ``space``,
    ``sampling``, ``crop`` and ``epsilon`` static (:func:`compute_ppl` does).
    """
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    G = G.clone(dtype=jnp.float32)
    t = draws.t.astype(jnp.float32) * (1 if sampling == "full" else 0)
    z0, z1 = draws.z0.astype(jnp.float32), draws.z1.astype(jnp.float32)
    c = draws.c
    if G.c_dim == 0 or c is None or np.size(c) == 0:
        c2 = None
    else:
        c2 = jnp.concatenate([c, c]).astype(jnp.float32)
    variables = {"params": G_vars["params"], "buffers": G_vars["buffers"]}
    mapping = lambda z: G.apply(variables, z, c2, method="mapping")
    n = t.shape[0]
    if space == "w":
        ws = mapping(jnp.concatenate([z0, z1]))
        w0, w1 = ws[:n], ws[n:]
        wt0 = stylegan2.lerp(w0, w1, t[:, None, None])
        wt1 = stylegan2.lerp(w0, w1, t[:, None, None] + epsilon)
    else:
        zt0 = slerp(z0, z1, t[:, None])
        zt1 = slerp(z0, z1, t[:, None] + epsilon)
        ws = mapping(jnp.concatenate([zt0, zt1]))
        wt0, wt1 = ws[:n], ws[n:]
    missing = set(noise_const_names(G_vars)) - set(draws.noise)
    if missing:
        raise ValueError(f"draws.noise lacks {sorted(missing)}")
    img = G.apply({**variables, "noise_inputs": _noise_inputs(draws.noise)}, jnp.concatenate([wt0, wt1]),
                  noise_mode="given", method="synthesis")
    img = prepare_images(img, G.img_resolution, crop)
    f = features(feature_variables, img)
    return jnp.sum(jnp.square(f[:n] - f[n:]), axis=1) / epsilon ** 2


def draw_ppl(
    key: jax.Array,
    G: stylegan2.Generator,
    G_vars: Mapping[str, Any],
    batch_size: int,
    labels: jax.Array | None = None,
    noise_group: int = 2,
) -> PPLDraws:
    """Random draws of ``batch_size`` samples: t, z0, z1; labels ``c`` [batch_size, c_dim] picked
    uniformly from ``labels`` [L, c_dim] (the official code picks dataset labels uniformly; None when
    ``c_dim == 0``, and a conditional G without ``labels`` is a ``ValueError``);
    one noise map per ``noise_const`` buffer per group of ``noise_group`` consecutive samples
    (NVIDIA's per-GPU batch of 2 shares one). ``batch_size`` must be a multiple of ``noise_group``."""
    if batch_size % noise_group:
        raise ValueError(f"batch_size {batch_size} is not a multiple of noise_group {noise_group}")
    k_t, k_z, k_c, k_n = jax.random.split(key, 4)
    t = jax.random.uniform(k_t, (batch_size,), jnp.float32)
    z0, z1 = jnp.split(jax.random.normal(k_z, (2 * batch_size, G.z_dim), jnp.float32), 2)
    c = None
    if G.c_dim:
        if labels is None or labels.shape[-1] != G.c_dim:
            raise ValueError(f"G is conditional (c_dim={G.c_dim}): pass the dataset's labels [L, {G.c_dim}], got "
                             f"{None if labels is None else tuple(labels.shape)}")
        labels = jnp.asarray(labels, jnp.float32)
        c = labels[jax.random.randint(k_c, (batch_size,), 0, labels.shape[0])]
    noise = {}
    names = noise_const_names(G_vars)
    for name, k in zip(names, jax.random.split(k_n, max(len(names), 1))):
        shape = G_vars["buffers"]
        for part in name.split("."):
            shape = shape[part]
        groups = jax.random.normal(k, (batch_size // noise_group, *shape.shape), jnp.float32)
        noise[name] = jnp.repeat(groups, noise_group, axis=0)
    return PPLDraws(t, z0, z1, c, noise)


def aggregate(dist: np.ndarray) -> float:
    """The PPL of per-sample distances [N]: the mean of those within ``[percentile 1 ('lower'),
    percentile 99 ('higher')]``, as the official ``compute_ppl``."""
    dist = np.asarray(dist)
    lo = np.percentile(dist, 1, method="lower")
    hi = np.percentile(dist, 99, method="higher")
    return float(np.extract(np.logical_and(dist >= lo, dist <= hi), dist).mean())


def compute_ppl(
    G: stylegan2.Generator,
    G_vars: Mapping[str, Any],
    features: Features = lpips_features,
    feature_variables: Any = None,
    *,
    space: str,
    sampling: str,
    crop: bool,
    num_samples: int,
    epsilon: float = EPSILON,
    batch_size: int = 64,
    noise_group: int = 2,
    labels: np.ndarray | None = None,
    seed: int = 0,
    return_distances: bool = False,
    devices: list[jax.Device] | None = None,
) -> float | tuple[float, np.ndarray]:
    """The PPL of G (its G_ema variables) over ``num_samples`` samples.

    Batch ``i`` is drawn by :func:`draw_ppl` from ``fold_in(PRNGKey(seed), i)`` and run through the
    jitted :func:`ppl_sampler`, its batch split over the local devices when ``batch_size`` is a
    multiple of their count (else on one device). ``feature_variables`` defaults to
    :func:`lpips.load_lpips`'s (torchvision's VGG16 and the lpips package's linear layers);
    ``labels`` [L, c_dim]: the dataset's labels for a conditional G. Returns the PPL (and the
    distances [num_samples] with ``return_distances=True``). :func:`ppl_metric` runs it with an
    official metric's settings (:data:`PPL_METRICS`). ``devices``: the devices to split each batch
    over (default: ``jax.local_devices()``).
    """
    if feature_variables is None:
        if features is not lpips_features:
            raise ValueError("pass feature_variables for a features function other than lpips_features")
        feature_variables = lpips_lib.load_lpips()
    devices = list(jax.local_devices() if devices is None else devices)
    mesh = parallel.make_mesh(devices) if len(devices) > 1 and batch_size % len(devices) == 0 else None
    G_vars = {"params": G_vars["params"], "buffers": G_vars["buffers"]}
    labels = None if labels is None else jnp.asarray(labels, jnp.float32)
    if mesh is not None:
        G_vars, feature_variables, labels = parallel.replicate((G_vars, feature_variables, labels), mesh)
    run = functools.partial(_ppl_batch, G, features, space, sampling, crop, float(epsilon), batch_size, noise_group,
                            mesh)
    base = jax.random.PRNGKey(seed)
    out = []
    for i in range(-(-num_samples // batch_size)):
        out.append(np.asarray(run(G_vars, feature_variables, jax.random.fold_in(base, i), labels)))
    dist = np.concatenate(out)[:num_samples]
    ppl = aggregate(dist)
    return (ppl, dist) if return_distances else ppl


def ppl_metric(
    name: str,
    G: stylegan2.Generator,
    G_vars: Mapping[str, Any],
    features: Features = lpips_features,
    feature_variables: Any = None,
    *,
    num_samples: int | None = None,
    **kwargs: Any,
) -> float:
    """The official metric ``name`` (``'ppl_zfull'``, ``'ppl_wfull'``, ``'ppl_zend'``, ``'ppl_wend'``,
    ``'ppl2_wend'``): :func:`compute_ppl` with its space, sampling, crop, epsilon and sample count
    (``num_samples`` overrides the count) and ``noise_group`` = the official per-GPU batch (2);
    ``kwargs``: :func:`compute_ppl`'s ``batch_size``, ``labels``, ``seed``, ``return_distances``."""
    if name not in PPL_METRICS:
        raise ValueError(f"unknown PPL metric {name!r}; known: {sorted(PPL_METRICS)}")
    s = PPL_METRICS[name]
    kwargs.setdefault("noise_group", s.batch_size)
    return compute_ppl(G, G_vars, features, feature_variables, space=s.space, sampling=s.sampling, crop=s.crop,
                       num_samples=s.num_samples if num_samples is None else num_samples, epsilon=s.epsilon,
                       **kwargs)


@functools.partial(jax.jit, static_argnums=tuple(range(9)))
def _ppl_batch(G: stylegan2.Generator, features: Features, space: str, sampling: str, crop: bool, epsilon: float,
               batch_size: int, noise_group: int, mesh: Any, G_vars: Mapping[str, Any], feature_variables: Any,
               key: jax.Array, labels: jax.Array | None) -> jax.Array:
    """One batch of :func:`compute_ppl`: :func:`draw_ppl` then :func:`ppl_sampler` (compiled once per setting)."""
    draws = draw_ppl(key, G, G_vars, batch_size, labels, noise_group)
    sampler = functools.partial(_sampler_positional, G, features, space, sampling, crop, epsilon)
    if mesh is None:
        return sampler(G_vars, feature_variables, draws)
    # Each device runs its own rows (as gan_jax.metrics.fid does): the SPMD partitioner does not split
    # the generator's grouped (fused modulated) convolutions along the batch.
    P = jax.sharding.PartitionSpec
    draws = jax.lax.with_sharding_constraint(draws, parallel.data_sharded(mesh))
    local = jax.shard_map(sampler, mesh=mesh, in_specs=(P(), P(), P(parallel.DATA_AXIS)),
                          out_specs=P(parallel.DATA_AXIS), check_vma=False)
    return local(G_vars, feature_variables, draws)


def _sampler_positional(G: stylegan2.Generator, features: Features, space: str, sampling: str, crop: bool,
                        epsilon: float, G_vars: Mapping[str, Any], feature_variables: Any, draws: PPLDraws) -> jax.Array:
    """:func:`ppl_sampler` with its settings first."""
    return ppl_sampler(G, G_vars, features, feature_variables, draws, space=space, sampling=sampling, crop=crop,
                       epsilon=epsilon)
