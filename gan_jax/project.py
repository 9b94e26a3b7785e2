"""Projection of an image into W: NVIDIA's ``projector.py`` (stylegan2-ada-pytorch) in JAX.

    python -m gan_jax.project --workdir=RUN --target=img.png --outdir=OUT [--num_steps=1000] [--seed=303]
    python -m gan_jax.project --network=network-snapshot.pkl --target=img.png --outdir=OUT --save_video
    python -m gan_jax.sample --workdir=RUN --projected_w=OUT/projected_w.npz --outdir=OUT2   # generate.py

The numerics are ``project()``'s:

1. ``w_avg`` [1, 1, w_dim] and the scalar ``w_std`` from ``w_avg_samples=10000`` mapped latents,
   ``z = numpy.random.RandomState(123).randn(N, z_dim)`` (the first w of each sample; ``w_std`` is
   ``sqrt(sum((w - w_avg)^2) / N)`` over all N x w_dim entries) -- :func:`w_stats`;
2. the target's features: the image [1, R, R, C] in 0..255, area-downsampled to 256x256 when R > 256
   (``F.interpolate(mode='area')``: :func:`area_resize`), through the distance network;
3. ``w_opt = w_avg``, one N(0, 1) map per ``noise_const`` buffer (:func:`initial_state`) and Adam
   (betas 0.9, 0.999, eps 1e-8; ``optax.scale_by_adam``) over both;
4. per step ``t = step / num_steps`` (:func:`schedule`): ``lr = 0.1 * rampdown * rampup`` with the
   cosine ramp-down over the last ``lr_rampdown_length=0.25`` and the linear ramp-up over the first
   ``lr_rampup_length=0.05``; ``w_noise = randn * w_std * 0.05 * max(0, 1 - t / 0.75)^2``;
5. :func:`projection_step`: ``ws = repeat(w_opt + w_noise, num_ws)`` through the synthesis network
   with ``noise_mode='const'`` whose ``noise_const`` buffers are the optimised maps; the images
   ``(x + 1) * (255 / 2)``, area-downsampled to 256x256 when larger; ``dist = sum((f(target) -
   f(synth))^2)``; the noise regularisation (:func:`noise_regularization`) ``sum over maps and over
   the 2x2 average-pooling pyramid down to 8x8 of mean(n * roll(n, 1, x))^2 + mean(n * roll(n, 1,
   y))^2``; ``loss = dist + 1e5 * reg``; one Adam step at ``lr``; each map re-normalised to zero mean
   and unit mean square. ``w_opt`` after each step is that step's projected w.

The output is ``projected_w.npz`` (``w`` [1, num_ws, w_dim], as NVIDIA writes it), ``target.png``
(the centre-cropped, LANCZOS-resized target), ``proj.png`` (the last w through the network's own
``noise_const`` maps, as NVIDIA renders it: its ``project()`` optimises a copy of G's buffers, so the
optimised noise is not kept) and with ``--save_video`` ``proj.gif``, target | projection every
``--video_every`` steps (NVIDIA writes an MP4 of every step).

Differences from NVIDIA's run. **Distance network**: NVIDIA calls its TorchScript ``vgg16.pt`` with
``resize_images=False, return_lpips=True``; gan_jax cannot read that file, so the distance network
is a parameter ``features(feature_variables, images [N, H, W, 3] in 0..255) -> [N, D]``, by default
:func:`gan_jax.metrics.ppl.lpips_features` (the Flax LPIPS VGG16 of :mod:`gan_jax.metrics.lpips`,
torchvision's ImageNet weights and lpips v0.1's linear layers): the same kind of network, whose
weights are not verified against ``vgg16.pt``, so projections are close to, not equal to, NVIDIA's.
**Random draws**: the initial noise maps and the per-step w noise come from ``jax.random`` with
``PRNGKey(seed)``, not torch's generator. **Precision**: float32 throughout (NVIDIA maps the 10k
latents in float64, and on a GPU runs the ``num_fp16_res`` highest resolutions in float16).
**Grey networks** (``img_channels == 1``): the target is converted to ``L`` and the images are
repeated to 3 channels for the distance network (NVIDIA's projector supports RGB only).
Conditional networks are refused, as NVIDIA's mapping without a label refuses them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from gan_jax.metrics import ppl
from gan_jax.models import stylegan2

__all__ = [
    "ProjectionSettings",
    "ProjectionState",
    "area_resize",
    "initial_state",
    "load_target",
    "make_step",
    "noise_regularization",
    "project",
    "projection_step",
    "render_projected_w",
    "schedule",
    "w_stats",
]

Features = Callable[[Any, jax.Array], jax.Array]
FEATURE_RESOLUTION = 256  # images larger than this are area-downsampled to it ("VGG was built for 224x224")


@dataclasses.dataclass(frozen=True)
class ProjectionSettings:
    """``project()``'s keyword arguments, with NVIDIA's defaults."""

    num_steps: int = 1000
    w_avg_samples: int = 10000
    initial_learning_rate: float = 0.1
    initial_noise_factor: float = 0.05
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    noise_ramp_length: float = 0.75
    regularize_noise_weight: float = 1e5


class ProjectionState(NamedTuple):
    """What the optimisation carries: ``w_opt`` [1, 1, w_dim], ``noise`` ``{official buffer name
    ('synthesis.b8.conv0.noise_const'): [R, R]}`` and the Adam state over ``(w_opt, noise)``."""

    w_opt: jax.Array
    noise: dict[str, jax.Array]
    opt_state: Any


ADAM = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)  # torch.optim.Adam's defaults but the betas given


# ---------------------------------------------------------------------------------------------
# Pieces.


def area_resize(images: jax.Array, size: int) -> jax.Array:
    """``F.interpolate(mode='area')`` (adaptive average pooling) of ``images`` [N, H, W, C] to
    [N, size, size, C]: output row i averages input rows ``floor(i H / size)`` to ``ceil((i + 1) H /
    size) - 1`` (and the same for columns); a block mean when ``size`` divides H."""

    def pool_matrix(n_in: int) -> np.ndarray:
        m = np.zeros((size, n_in), np.float32)
        for i in range(size):
            lo, hi = (i * n_in) // size, -(-((i + 1) * n_in) // size)
            m[i, lo:hi] = 1.0 / (hi - lo)
        return m

    n, h, w, c = images.shape
    if h % size == 0 and w % size == 0:
        return images.reshape(n, size, h // size, size, w // size, c).mean(axis=(2, 4))
    rows, cols = jnp.asarray(pool_matrix(h)), jnp.asarray(pool_matrix(w))
    hi = jax.lax.Precision.HIGHEST
    return jnp.einsum("ih,jw,nhwc->nijc", rows, cols, images.astype(jnp.float32), precision=hi)


def distance_input(images: jax.Array) -> jax.Array:
    """Images [N, H, W, C] in 0..255 -> the distance network's input: area-downsampled to 256x256 when
    H > 256 (as NVIDIA checks the height), grey repeated to 3 channels."""
    if images.shape[1] > FEATURE_RESOLUTION:
        images = area_resize(images, FEATURE_RESOLUTION)
    if images.shape[-1] == 1:
        images = jnp.repeat(images, 3, axis=-1)
    return images


def noise_regularization(noise: Mapping[str, jax.Array]) -> jax.Array:
    """NVIDIA's noise regularisation of the maps ``{name: [H, W]}`` -> scalar: for each map and each
    level of its pyramid (2x2 average pooling while the side exceeds 8), ``mean(n * roll(n, 1, axis=W))^2
    + mean(n * roll(n, 1, axis=H))^2``, summed."""
    reg = jnp.float32(0)
    for v in noise.values():
        n = v
        while True:
            reg = reg + jnp.mean(n * jnp.roll(n, 1, axis=1)) ** 2
            reg = reg + jnp.mean(n * jnp.roll(n, 1, axis=0)) ** 2
            if n.shape[0] <= 8:
                break
            h, w = n.shape
            n = n.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return reg


def schedule(step: int, settings: ProjectionSettings, w_std: float) -> tuple[float, float]:
    """``(lr, w_noise_scale)`` of step ``step`` (0-based), in float64 as NVIDIA's Python computes them."""
    s = settings
    t = step / s.num_steps
    w_noise_scale = w_std * s.initial_noise_factor * max(0.0, 1.0 - t / s.noise_ramp_length) ** 2
    lr_ramp = min(1.0, (1.0 - t) / s.lr_rampdown_length)
    lr_ramp = 0.5 - 0.5 * math.cos(lr_ramp * math.pi)
    lr_ramp = lr_ramp * min(1.0, t / s.lr_rampup_length)
    return s.initial_learning_rate * lr_ramp, w_noise_scale


def _with_noise(G_vars: Mapping[str, Any], noise: Mapping[str, jax.Array]) -> dict[str, Any]:
    """G's variables (params, buffers) with the ``noise_const`` buffers replaced by ``noise``."""
    flat = traverse_util.flatten_dict(dict(G_vars["buffers"]))
    for name, value in noise.items():
        path = tuple(name.split("."))
        if path not in flat:
            raise ValueError(f"G has no buffer {name}")
        flat[path] = value
    return {"params": G_vars["params"], "buffers": traverse_util.unflatten_dict(flat)}


def _buffer(G_vars: Mapping[str, Any], name: str) -> Any:
    value = G_vars["buffers"]
    for part in name.split("."):
        value = value[part]
    return value


def _check_generator(G: Any) -> stylegan2.Generator:
    if not isinstance(G, stylegan2.Generator):
        raise ValueError(f"projection needs a StyleGAN2 generator (gan_jax.models.stylegan2.Generator, as NVIDIA's "
                         f"projector.py); got {type(G).__name__}")
    if G.c_dim:
        raise ValueError(f"G is conditional (c_dim={G.c_dim}); NVIDIA's projector maps without labels and so does "
                         "this one")
    return G.clone(dtype=jnp.float32)


def w_stats(G: stylegan2.Generator, G_vars: Mapping[str, Any], w_avg_samples: int = 10000,
            batch_size: int = 1000) -> tuple[np.ndarray, float]:
    """``(w_avg [1, 1, w_dim] float32, w_std)`` of ``w_avg_samples`` latents
    ``RandomState(123).randn(w_avg_samples, z_dim)`` mapped (untruncated) to their first w, in
    batches of ``batch_size`` (the last one padded)."""
    G = _check_generator(G)
    z = np.random.RandomState(123).randn(w_avg_samples, G.z_dim).astype(np.float32)
    variables = {"params": G_vars["params"], "buffers": G_vars["buffers"]}
    first_w = jax.jit(lambda v, z: G.apply(v, z, None, method="mapping")[:, 0])
    out = []
    for lo in range(0, w_avg_samples, batch_size):
        part = z[lo:lo + batch_size]
        real = len(part)
        if w_avg_samples > batch_size and real < batch_size:
            part = np.concatenate([part, np.zeros((batch_size - real, G.z_dim), np.float32)])
        out.append(np.asarray(first_w(variables, part))[:real])
    w = np.concatenate(out).astype(np.float64)[:, None, :]  # [N, 1, C]
    w_avg = w.mean(axis=0, keepdims=True)
    w_std = float(np.sqrt(np.sum((w - w_avg) ** 2) / w_avg_samples))
    return w_avg.astype(np.float32), w_std


def initial_state(w_avg: np.ndarray, noise: Mapping[str, Any]) -> ProjectionState:
    """The state before step 0: ``w_opt = w_avg`` [1, 1, w_dim] and the N(0, 1) maps ``noise``
    ``{name: [R, R]}`` (NVIDIA: ``buf[:] = torch.randn_like(buf)`` in ``named_buffers`` order)."""
    w_opt = jnp.asarray(w_avg, jnp.float32)
    noise = {k: jnp.asarray(v, jnp.float32) for k, v in noise.items()}
    return ProjectionState(w_opt, noise, ADAM.init((w_opt, noise)))


def draw_noise(key: jax.Array, G_vars: Mapping[str, Any]) -> dict[str, jax.Array]:
    """One N(0, 1) map per ``noise_const`` buffer ``{name: [R, R]}`` from ``key``."""
    names = ppl.noise_const_names(G_vars)
    keys = jax.random.split(key, max(len(names), 1))
    return {name: jax.random.normal(k, _buffer(G_vars, name).shape, jnp.float32) for name, k in zip(names, keys)}


def target_features(features: Features, feature_variables: Any, target: jax.Array) -> jax.Array:
    """Features [1, D] of the target ``target`` [R, R, C] (uint8 or float, 0..255)."""
    return features(feature_variables, distance_input(jnp.asarray(target, jnp.float32)[None]))


def projection_step(G: stylegan2.Generator, features: Features, regularize_noise_weight: float,
                    state: ProjectionState, G_vars: Mapping[str, Any], feature_variables: Any,
                    target_feats: jax.Array, w_noise: jax.Array, lr: jax.Array | float,
                    ) -> tuple[ProjectionState, jax.Array, jax.Array, jax.Array]:
    """One step of NVIDIA's loop -> ``(state, loss, dist, reg)`` (the scalars before the update).

    ``w_noise`` [1, 1, w_dim]: this step's w perturbation, already scaled (``randn * w_noise_scale``);
    ``lr``: this step's learning rate (:func:`schedule`); ``target_feats`` [1, D]. Pure: the noise
    maps are re-normalised (zero mean, unit mean square) after the Adam update."""
    G = _check_generator(G)

    def loss_fn(params):
        w_opt, noise = params
        ws = jnp.repeat(w_opt + w_noise, G.num_ws, axis=1)
        img = G.apply(_with_noise(G_vars, noise), ws, noise_mode="const", method="synthesis")
        img = (img.astype(jnp.float32) + 1) * (255 / 2)
        synth = features(feature_variables, distance_input(img))
        dist = jnp.sum(jnp.square(target_feats - synth))
        reg = noise_regularization(noise)
        return dist + reg * regularize_noise_weight, (dist, reg)

    params = (state.w_opt, state.noise)
    (loss, (dist, reg)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = ADAM.update(grads, state.opt_state, params)
    w_opt, noise = jax.tree.map(lambda p, u: p - lr * u, params, updates)
    normalized = {}
    for name, buf in noise.items():
        buf = buf - jnp.mean(buf)
        normalized[name] = buf * jax.lax.rsqrt(jnp.mean(jnp.square(buf)))
    return ProjectionState(w_opt, normalized, opt_state), loss, dist, reg


def make_step(G: stylegan2.Generator, features: Features = ppl.lpips_features, regularize_noise_weight: float = 1e5
              ) -> Callable[..., tuple[ProjectionState, jax.Array, jax.Array, jax.Array]]:
    """The jitted ``step(state, G_vars, feature_variables, target_feats, w_noise, lr) -> (state, loss,
    dist, reg)`` (:func:`projection_step` with G, the distance network and the weight bound)."""
    return jax.jit(functools.partial(projection_step, _check_generator(G), features, float(regularize_noise_weight)))


def project(G: stylegan2.Generator, G_vars: Mapping[str, Any], target: np.ndarray, *,
            features: Features = ppl.lpips_features, feature_variables: Any = None,
            settings: ProjectionSettings = ProjectionSettings(), seed: int = 303, verbose: bool = False,
            ) -> np.ndarray:
    """NVIDIA's ``project()``: the projected w of every step, float32 [num_steps, num_ws, w_dim].

    ``G``: a StyleGAN2 generator and ``G_vars`` its (G_ema's) ``params`` and ``buffers``; ``target``
    [R, R, C] in 0..255 (R = G.img_resolution, C = G.img_channels; :func:`load_target` makes one);
    ``features(feature_variables, images [N, H, W, 3] in 0..255) -> [N, D]`` the distance network
    (default :func:`ppl.lpips_features` with :func:`gan_jax.metrics.lpips.load_lpips`'s variables);
    the initial noise maps and the w noise are drawn from ``PRNGKey(seed)``."""
    G = _check_generator(G)
    target = np.asarray(target)
    if target.shape != (G.img_resolution, G.img_resolution, G.img_channels):
        raise ValueError(f"target must be [{G.img_resolution}, {G.img_resolution}, {G.img_channels}] (the "
                         f"generator's images), got {tuple(target.shape)}")
    if feature_variables is None:
        if features is not ppl.lpips_features:
            raise ValueError("pass feature_variables for a features function other than ppl.lpips_features")
        from gan_jax.metrics import lpips as lpips_lib  # noqa: PLC0415

        feature_variables = lpips_lib.load_lpips()
    G_vars = {"params": G_vars["params"], "buffers": G_vars["buffers"]}
    log = print if verbose else (lambda *a: None)
    log(f"Computing W midpoint and stddev using {settings.w_avg_samples} samples...")
    w_avg, w_std = w_stats(G, G_vars, settings.w_avg_samples)
    key_noise, key_w = jax.random.split(jax.random.PRNGKey(seed))
    state = initial_state(w_avg, draw_noise(key_noise, G_vars))
    feats = jax.jit(target_features, static_argnums=0)(features, feature_variables, target)
    step = make_step(G, features, settings.regularize_noise_weight)
    w_out = np.zeros((settings.num_steps, G.w_dim), np.float32)
    for i in range(settings.num_steps):
        lr, w_noise_scale = schedule(i, settings, w_std)
        w_noise = jax.random.normal(jax.random.fold_in(key_w, i), state.w_opt.shape, jnp.float32) * w_noise_scale
        state, loss, dist, _ = step(state, G_vars, feature_variables, feats, w_noise, jnp.float32(lr))
        w_out[i] = np.asarray(state.w_opt)[0, 0]
        log(f"step {i + 1:>4d}/{settings.num_steps}: dist {float(dist):<4.2f} loss {float(loss):<5.2f}")
    return np.repeat(w_out[:, None, :], G.num_ws, axis=1)


# ---------------------------------------------------------------------------------------------
# Files.


def load_target(path: str, resolution: int, channels: int) -> np.ndarray:
    """The target as projector.py prepares it: converted to RGB (``channels == 3``) or L (1), the
    centred ``min(w, h)`` square cropped and LANCZOS-resized to ``resolution``; uint8
    [resolution, resolution, channels]."""
    from PIL import Image  # noqa: PLC0415

    if channels not in (1, 3):
        raise ValueError(f"projection supports RGB (3) and grey (1) generators, this one makes {channels} channels")
    img = Image.open(path).convert("RGB" if channels == 3 else "L")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
    img = img.resize((resolution, resolution), Image.LANCZOS)
    return np.asarray(img, np.uint8).reshape(resolution, resolution, channels)


def _render(G: stylegan2.Generator, G_vars: Mapping[str, Any], ws: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """uint8 [N, R, R, C] of ws [N, num_ws, w_dim] with the network's own ``noise_const`` maps:
    projector.py's ``((x + 1) * (255 / 2)).clamp(0, 255).to(uint8)`` (truncation, not rounding)."""
    G = _check_generator(G)
    fn = jax.jit(lambda v, w: G.apply(v, w, noise_mode="const", method="synthesis"))
    variables = {"params": G_vars["params"], "buffers": G_vars["buffers"]}
    out = []
    for lo in range(0, len(ws), batch_size):
        part = np.asarray(ws[lo:lo + batch_size], np.float32)
        real = len(part)
        if real < batch_size and len(ws) > batch_size:
            part = np.concatenate([part, np.repeat(part[:1], batch_size - real, 0)])
        img = np.asarray(fn(variables, part), np.float32)[:real]
        out.append(np.clip((img + 1) * (255 / 2), 0, 255).astype(np.uint8))
    return np.concatenate(out)


def _save_image(path: str, img: np.ndarray) -> None:
    from PIL import Image  # noqa: PLC0415

    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(path)


def _save_gif(path: str, frames: np.ndarray, fps: int = 10) -> None:
    from PIL import Image  # noqa: PLC0415

    images = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


def run_projection(G: stylegan2.Generator, G_vars: Mapping[str, Any], target_path: str, outdir: str, *,
                   features: Features = ppl.lpips_features, feature_variables: Any = None,
                   settings: ProjectionSettings = ProjectionSettings(), seed: int = 303, save_video: bool = False,
                   video_every: int = 10, verbose: bool = True) -> np.ndarray:
    """projector.py's ``run_projection`` after loading G: load the target, :func:`project`, write
    ``target.png``, ``proj.png``, ``projected_w.npz`` (``w`` [1, num_ws, w_dim]) and with
    ``save_video`` ``proj.gif`` (target | projection at steps ``video_every``, ``2 video_every``, ...
    and the last). Returns the projected ws of every step [num_steps, num_ws, w_dim]."""
    G = _check_generator(G)
    target = load_target(target_path, G.img_resolution, G.img_channels)
    start = time.perf_counter()
    ws = project(G, G_vars, target, features=features, feature_variables=feature_variables, settings=settings,
                 seed=seed, verbose=verbose)
    if verbose:
        print(f"Elapsed: {time.perf_counter() - start:.1f} s")
    os.makedirs(outdir, exist_ok=True)
    if save_video:
        picks = sorted(set(range(video_every - 1, len(ws), max(video_every, 1))) | {len(ws) - 1})
        frames = _render(G, G_vars, ws[picks])
        _save_gif(os.path.join(outdir, "proj.gif"), np.concatenate([np.broadcast_to(target, frames.shape), frames],
                                                                   axis=2))
        if verbose:
            print(f'Saved optimization progress video "{outdir}/proj.gif" ({len(frames)} frames)')
    _save_image(os.path.join(outdir, "target.png"), target)
    _save_image(os.path.join(outdir, "proj.png"), _render(G, G_vars, ws[-1:])[0])
    np.savez(os.path.join(outdir, "projected_w.npz"), w=ws[-1:].astype(np.float32))
    return ws


def render_projected_w(sampler: Any, path: str, outdir: str, noise_mode: str = "const") -> list[str]:
    """generate.py's ``--projected-w``: each w [num_ws, w_dim] of the npz's ``w`` [N, num_ws, w_dim]
    through ``sampler`` (a :class:`gan_jax.sample.Sampler`) -> ``outdir/proj{idx:02d}.png``
    (generate.py's ``x * 127.5 + 128`` conversion). Returns the paths written."""
    from gan_jax.images import save_png  # noqa: PLC0415

    ws = np.asarray(np.load(path)["w"], np.float32)
    if ws.ndim != 3 or ws.shape[1] != sampler.num_ws:
        raise ValueError(f"{path}: w must be [N, num_ws={sampler.num_ws}, w_dim] for this network, got "
                         f"{tuple(ws.shape)}")
    images = np.clip(sampler.synthesis(ws, noise_mode) * 127.5 + 128, 0, 255).astype(np.uint8)
    paths = []
    for idx, img in enumerate(images):
        paths.append(os.path.join(outdir, f"proj{idx:02d}.png"))
        save_png(paths[-1], img)
    return paths


# ---------------------------------------------------------------------------------------------
# Command line (flags defined only when run as a program, so that gan_jax.sample can import this module).


def _define_flags() -> dict[str, Any]:
    from absl import flags  # noqa: PLC0415

    d = ProjectionSettings()
    return {
        "workdir": flags.DEFINE_string("workdir", None, "Run directory (its latest checkpoint, or --step)."),
        "step": flags.DEFINE_integer("step", None, "Checkpoint step (default: latest)."),
        "network": flags.DEFINE_string("network", None, "An NVIDIA StyleGAN2(-ADA) network pickle converted in "
                                       "memory: instead of --workdir (projector.py's --network)."),
        "target": flags.DEFINE_string("target", None, "Target image file to project."),
        "outdir": flags.DEFINE_string("outdir", None, "Where to save the output images."),
        "num_steps": flags.DEFINE_integer("num_steps", d.num_steps, "Number of optimization steps."),
        "seed": flags.DEFINE_integer("seed", 303, "Random seed (jax.random.PRNGKey(seed))."),
        "save_video": flags.DEFINE_boolean("save_video", False, "Save proj.gif: target | projection during the "
                                           "optimization (NVIDIA writes proj.mp4)."),
        "video_every": flags.DEFINE_integer("video_every", 10, "Steps between the frames of proj.gif."),
        "w_avg_samples": flags.DEFINE_integer("w_avg_samples", d.w_avg_samples, "Latents for w_avg and w_std."),
        "vgg16": flags.DEFINE_string("vgg16", None, "torchvision's vgg16-397923af.pth for the LPIPS distance "
                                     "network (default: the search order of gan_jax.metrics.vgg16)."),
        "lpips_lin": flags.DEFINE_string("lpips_lin", None, "lpips v0.1's vgg.pth linear layers (default: "
                                         "the installed lpips package's, see gan_jax.metrics.lpips)."),
    }


def main(argv: list[str], f: Mapping[str, Any]) -> None:
    """``python -m gan_jax.project``: load the run or pickle, project, write the outputs."""
    from absl import app  # noqa: PLC0415

    from gan_jax.console import quiet_libraries  # noqa: PLC0415

    quiet_libraries()
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if bool(f["workdir"].value) == bool(f["network"].value) or not f["outdir"].value or not f["target"].value:
        raise app.UsageError("--target, --outdir and one of --workdir (a run) and --network (an NVIDIA pickle) are "
                             "required")
    if f["num_steps"].value < 1 or f["w_avg_samples"].value < 1 or f["video_every"].value < 1:
        raise app.UsageError("--num_steps, --w_avg_samples and --video_every must be at least 1")
    from gan_jax.metrics import lpips as lpips_lib  # noqa: PLC0415
    from gan_jax.run_loader import load_run  # noqa: PLC0415

    feature_variables = lpips_lib.load_lpips(f["vgg16"].value, f["lpips_lin"].value)
    print(f'Loading networks from "{f["workdir"].value or f["network"].value}"...')
    _, recipe, state = load_run(f["workdir"].value, f["step"].value, f["network"].value)
    G = getattr(recipe, "G", None)
    G_vars = jax.device_get({"params": state.ema_params["G"], "buffers": state.extra["G_ema_buffers"]})
    settings = ProjectionSettings(num_steps=f["num_steps"].value, w_avg_samples=f["w_avg_samples"].value)
    run_projection(G, G_vars, f["target"].value, f["outdir"].value, feature_variables=feature_variables,
                   settings=settings, seed=f["seed"].value, save_video=f["save_video"].value,
                   video_every=f["video_every"].value)
    print(f"wrote target.png, proj.png, projected_w.npz{' and proj.gif' if f['save_video'].value else ''} to "
          f"{f['outdir'].value}")


if __name__ == "__main__":
    from absl import app

    _FLAGS = _define_flags()
    app.run(functools.partial(main, f=_FLAGS))
