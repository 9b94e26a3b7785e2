"""Progressive growing, family-agnostic (ProGAN, StyleGAN 1): the official schedule, the real-image
fade, and the training stages it defines.

Sources: tkarras/progressive_growing_of_gans ``train.py`` (``TrainingSchedule``, ``process_reals``,
the loop of ``train_progressive_gan``) and ``dataset_tool.py`` (the resolution pyramid); the same
code is in NVlabs/stylegan ``training/training_loop.py``.

* :func:`training_schedule` is ``TrainingSchedule(cur_nimg, ...)``: ``lod``, ``resolution``,
  ``minibatch``, learning rates and tick length at ``cur_nimg`` images, in the official float64.
* The official loop evaluates the schedule once per ``minibatch_repeats`` (4) minibatches: the
  ``lod`` of a step is the schedule's at the first image of its group of ``repeats`` steps.
  :func:`graph_lod` computes that inside the compiled step from the (traced) images seen.
* A *stage* is a stretch of groups over which ``floor(lod)`` and ``ceil(lod)`` stay put: a stable
  level, or a fade-in towards the next. Stages change exactly where the official loop resets the
  optimizers (``reset_opt_for_new_lod``) and, at a fade-in, the minibatch size and the dataset
  level; :func:`growing_stages` lists them (``program`` = the resolution, so a fade-in and the
  stable phase after it share one compiled step).
* :func:`process_reals` fades the real images as the official ``process_reals`` (mirroring is the
  data pipeline's ``xflip``), from the full-resolution uint8 batch via :func:`dataset_level`.
* :class:`GrowingRecipe` is what the two families' recipes share: the schedule's stages and lod,
  TF's Adam, the optimizer reset at a new lod, and the train state's layout.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gan_jax.recipes.base import Recipe, Stage, copy_tree, given_or_initial
from gan_jax.recipes.tf_adam import tf_adam
from gan_jax.state import TrainState

# Official TrainingSchedule defaults (train.py).
SCHEDULE_DEFAULTS: dict[str, Any] = {
    "lod_initial_resolution": 4, "lod_training_kimg": 600, "lod_transition_kimg": 600, "minibatch_base": 16,
    "minibatch_dict": {}, "max_minibatch_per_gpu": {}, "G_lrate_base": 0.001, "G_lrate_dict": {},
    "D_lrate_base": 0.001, "D_lrate_dict": {}, "tick_kimg_base": 160,
    "tick_kimg_dict": {4: 160, 8: 140, 16: 120, 32: 100, 64: 80, 128: 60, 256: 40, 512: 20, 1024: 10}}
MINIBATCH_REPEATS = 4  # train_progressive_gan(minibatch_repeats=4)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The official ``TrainingSchedule`` fields at one ``cur_nimg``."""

    kimg: float
    lod: float
    resolution: int
    minibatch: int
    G_lrate: float
    D_lrate: float
    tick_kimg: float


def _int_keys(d: Mapping[Any, Any] | None) -> dict[int, Any]:
    """Resolution dicts with int keys (configs store them with str keys, as JSON does)."""
    return {int(k): v for k, v in (d or {}).items()}


def schedule_kwargs(sched: Mapping[str, Any] | None) -> dict[str, Any]:
    """Official defaults updated by ``sched`` (a dict or ConfigDict); unknown keys are an error."""
    sched = dict(sched.to_dict() if hasattr(sched, "to_dict") else (sched or {}))
    unknown = sorted(set(sched) - set(SCHEDULE_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown schedule keyword(s) {unknown}; expected a subset of {sorted(SCHEDULE_DEFAULTS)}")
    out = {**SCHEDULE_DEFAULTS, **sched}
    for key in ("minibatch_dict", "max_minibatch_per_gpu", "G_lrate_dict", "D_lrate_dict", "tick_kimg_dict"):
        out[key] = _int_keys(out[key])
    return out


def training_schedule(cur_nimg: int, resolution_log2: int, num_gpus: int = 1,
                      sched: Mapping[str, Any] | None = None) -> Schedule:
    """``train.TrainingSchedule(cur_nimg, training_set, **sched)`` with ``config.num_gpus``."""
    s = schedule_kwargs(sched)
    kimg = cur_nimg / 1000.0
    phase_dur = s["lod_training_kimg"] + s["lod_transition_kimg"]
    phase_idx = int(np.floor(kimg / phase_dur)) if phase_dur > 0 else 0
    phase_kimg = kimg - phase_idx * phase_dur
    lod = float(resolution_log2)
    lod -= np.floor(np.log2(s["lod_initial_resolution"]))
    lod -= phase_idx
    if s["lod_transition_kimg"] > 0:
        lod -= max(phase_kimg - s["lod_training_kimg"], 0.0) / s["lod_transition_kimg"]
    lod = max(float(lod), 0.0)
    resolution = 2 ** (resolution_log2 - int(np.floor(lod)))
    minibatch = s["minibatch_dict"].get(resolution, s["minibatch_base"])
    minibatch -= minibatch % num_gpus
    if resolution in s["max_minibatch_per_gpu"]:
        minibatch = min(minibatch, s["max_minibatch_per_gpu"][resolution] * num_gpus)
    return Schedule(kimg=kimg, lod=lod, resolution=resolution, minibatch=int(minibatch),
                    G_lrate=float(s["G_lrate_dict"].get(resolution, s["G_lrate_base"])),
                    D_lrate=float(s["D_lrate_dict"].get(resolution, s["D_lrate_base"])),
                    tick_kimg=float(s["tick_kimg_dict"].get(resolution, s["tick_kimg_base"])))


def _images(kimg: float, what: str) -> int:
    n = round(kimg * 1000)
    if abs(n - kimg * 1000) > 1e-6 or n < 0:
        raise ValueError(f"{what}={kimg} kimg is not a whole number of images; the in-graph schedule counts images")
    return int(n)


def graph_lod(images_seen: jax.Array, resolution_log2: int, sched: Mapping[str, Any] | None = None) -> jax.Array:
    """The schedule's ``lod`` at ``images_seen`` (int32, may be traced) as float32, in the graph.

    Integer phase arithmetic and one float32 division: equals ``float32(training_schedule(n).lod)``
    (exactly while ``lod * lod_transition_kimg * 1000 < 2**24``). Pass the first image of the step's group (see :func:`group_start`).
    """
    s = schedule_kwargs(sched)
    train_n = _images(s["lod_training_kimg"], "lod_training_kimg")
    trans_n = _images(s["lod_transition_kimg"], "lod_transition_kimg")
    n = jnp.asarray(images_seen, jnp.int32)
    base = resolution_log2 - int(np.floor(np.log2(s["lod_initial_resolution"])))
    if train_n + trans_n > 0:
        phase_idx = n // (train_n + trans_n)
        phase_n = n - phase_idx * (train_n + trans_n)
    else:
        phase_idx, phase_n = jnp.zeros((), jnp.int32), n
    if trans_n == 0:
        return jnp.maximum((base - phase_idx).astype(jnp.float32), 0.0)
    # lod * trans_n is an integer: one correctly rounded float32 division (exact operands below 2**24).
    numerator = (base - phase_idx) * trans_n - jnp.maximum(phase_n - train_n, 0)
    # (The barrier keeps XLA from turning the division by a constant into a multiplication by its
    # rounded reciprocal, which is 1 ulp off.)
    denominator = jax.lax.optimization_barrier(jnp.asarray(trans_n, jnp.float32))
    return jnp.maximum(numerator.astype(jnp.float32) / denominator, 0.0)


def group_start(images_seen: jax.Array, step: jax.Array, batch_size: int,
                repeats: int = MINIBATCH_REPEATS) -> jax.Array:
    """First image of the step's group of ``repeats`` minibatches, where the official loop evaluated
    the schedule. Stages are whole groups, so the group of step s starts ``s % repeats`` steps back."""
    return images_seen - (step % repeats) * batch_size


def _key(lod: float) -> tuple[int, int]:
    return int(np.floor(lod)), int(np.ceil(lod))


def growing_stages(resolution_log2: int, total_kimg: float, num_gpus: int = 1,
                   sched: Mapping[str, Any] | None = None, repeats: int = MINIBATCH_REPEATS) -> list[Stage]:
    """The stages of a growing run: ``Stage(name, start_images, batch_size, program=resolution)``.

    A stage starts at the first group start (the loop's ``cur_nimg`` when it evaluates the schedule)
    where ``floor(lod)`` or ``ceil(lod)`` differs from the previous group's, i.e. where the official
    loop resets the optimizers. Names: ``'8x8'`` (stable), ``'8x8-fade'`` (fading in 8x8).
    """
    total = math.ceil(total_kimg * 1000)
    out: list[Stage] = []
    n = 0
    while n < total:
        s = training_schedule(n, resolution_log2, num_gpus, sched)
        if s.minibatch < 1:
            raise ValueError(f"the schedule gives minibatch {s.minibatch} at {s.resolution}x{s.resolution}")
        key = _key(s.lod)
        fading = key[0] != key[1]
        out.append(Stage(name=f"{s.resolution}x{s.resolution}" + ("-fade" if fading else ""), start_images=n,
                         batch_size=s.minibatch, program=s.resolution))
        group = repeats * s.minibatch
        last = max(1, -(-(total - n) // group))  # groups until the end of training
        if _key(training_schedule(n + last * group, resolution_log2, num_gpus, sched).lod) == key:
            break
        lo, hi = 0, last  # key(n + lo*group) == key, key(n + hi*group) != key (monotone in n)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _key(training_schedule(n + mid * group, resolution_log2, num_gpus, sched).lod) == key:
                lo = mid
            else:
                hi = mid
        n += hi * group
    return out


def dataset_level(images: jax.Array, level: int) -> jax.Array:
    """``dataset_tool`` pyramid level ``level`` of uint8 images [N, R, R, C] -> float32 [N, R/2^l, R/2^l, C]
    with integer values: ``rint(clip(.))`` of ``level`` float32 2x2 means of the *unquantized* chain."""
    x = images.astype(jnp.float32)
    if level == 0:
        return x
    for _ in range(level):
        x = (x[:, 0::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 0::2] + x[:, 1::2, 1::2]) * np.float32(0.25)
    return jnp.clip(jnp.round(x), 0, 255)


def process_reals(images: jax.Array, lod: jax.Array, level: int) -> jax.Array:
    """Official ``process_reals`` (mirroring excluded): uint8 [N, R, R, C] -> float32 [N, R, R, C] in [-1, 1].

    ``level`` (static) is ``floor(lod)``, the dataset level the official loop reads; the images are
    taken to that level (:func:`dataset_level`), mapped ``x * 2/255 - 1``, faded towards their 2x2
    box mean by ``lod - floor(lod)`` and nearest-upscaled by ``2 ** level``.
    """
    x = dataset_level(images, level)
    scale = np.float32(2.0 / 255.0)  # misc.adjust_dynamic_range([0, 255] -> [-1, 1])
    x = x * scale + np.float32(-1.0)
    n, h, w, c = x.shape
    y = jnp.mean(x.reshape(n, h // 2, 2, w // 2, 2, c), axis=(2, 4), keepdims=True)
    y = jnp.broadcast_to(y, (n, h // 2, 2, w // 2, 2, c)).reshape(n, h, w, c)
    lod = jnp.asarray(lod, jnp.float32)
    x = x + (y - x) * (lod - jnp.floor(lod))
    if level == 0:
        return x
    f = 2 ** level
    return jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, f, w, f, c)).reshape(n, h * f, w * f, c)


class GrowingRecipe(Recipe):
    """What a growing family's recipe shares (networks, schedule, TF Adam's hyper-parameters).

    A subclass sets ``build_networks(config, num_shards) -> (G, D)`` and ``init_variables(rng)``,
    and writes its losses, ``phases(stage)`` and sampling; ``G.resolution`` is the final resolution.
    The schedule decides each stage's minibatch (``sched.minibatch_base`` / ``minibatch_dict``), so a
    config with ``train.batch_size`` is refused rather than silently ignored.
    """

    build_networks: Any
    kwargs_sections = ("model.G", "model.D", "sched")

    def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None, *,
                 num_shards: int | None = None):
        super().__init__(config, mesh, num_shards=num_shards)
        t = config.train
        if "batch_size" in t:
            raise ValueError(f"train.batch_size={t.batch_size}: the {config.recipe} schedule sets the minibatch of each "
                             "resolution; set --config.sched.minibatch_base (and sched.minibatch_dict) instead")
        self.G, self.D = type(self).build_networks(config, self.num_shards)
        self.resolution_log2 = int(np.log2(self.G.resolution))
        self.sched = schedule_kwargs(config.sched)
        self.num_gpus = int(t.num_gpus)  # the schedule's minibatch rounding (official submit_config.num_gpus)
        self.repeats = int(t.minibatch_repeats)
        self.betas, self.eps = tuple(float(b) for b in t.betas), float(t.eps)
        self.reset_opt = bool(t.reset_opt_for_new_lod)
        if int(t.get("D_repeats", 1)) != 1:
            raise ValueError(f"train.D_repeats={t.D_repeats}: only the official 1 (n_critic 1) is implemented")

    def stages(self) -> list[Stage]:
        return checked_stages(self.resolution_log2, float(self.config.train.total_kimg), self.num_gpus,
                              self.sched, self.repeats, self.num_shards)

    def optimizer(self, lr: float) -> optax.GradientTransformation:
        return tf_adam(lr, self.betas[0], self.betas[1], self.eps)

    def step_lod(self, state: TrainState, batch_size: int) -> jax.Array:
        """The lod of the step about to run: the schedule at the first image of its group of
        ``minibatch_repeats`` steps."""
        start = group_start(state.images_seen, state.step, batch_size, self.repeats)
        return graph_lod(start, self.resolution_log2, self.sched)

    def init_variables(self, rng: jax.Array) -> tuple[dict, dict]:
        raise NotImplementedError

    def create_state(self, rng: jax.Array, g_vars: dict | None = None, d_vars: dict | None = None,
                     g_ema_vars: dict | None = None, lod: float | None = None) -> TrainState:
        """A fresh state: networks from ``rng`` (or the given variables), fresh Adam states.

        ``extra['lod']`` is the level of detail the networks were last trained at (the official
        ``G/lod`` variable, which Gs copies): samples use it. It starts at the schedule's first lod,
        or ``lod`` (a converted pickle's). G's non-trainable collections (StyleGAN's
        ``dlatent_avg``) are ``extra['G_buffers']`` and ``extra['G_ema_buffers']``.
        """
        init_rng, run_rng = jax.random.split(rng)
        g_vars, d_vars, g_ema_vars = given_or_initial(self.init_variables, init_rng, g_vars, d_vars, g_ema_vars)
        if lod is None:
            lod = training_schedule(0, self.resolution_log2, self.num_gpus, self.sched).lod
        extra = {"lod": jnp.asarray(lod, jnp.float32)}
        if "buffers" in g_vars:
            extra.update(G_buffers=g_vars["buffers"], G_ema_buffers=copy_tree(g_ema_vars["buffers"]))
        opt = self.optimizer(0.0)
        return self.new_state(run_rng, {"G": g_vars["params"], "D": d_vars["params"]}, {"G": opt, "D": opt}, extra,
                              ema_params={"G": g_ema_vars["params"]})

    def enter_stage(self, state: TrainState, stage: Stage) -> TrainState:
        """Official ``reset_opt_for_new_lod``: fresh Adam moments and step counts at each new lod."""
        if not self.reset_opt:
            return state
        opt = self.optimizer(0.0)
        return state.replace(opt_state={k: opt.init(v) for k, v in state.params.items()})

    def console(self, means: Mapping[str, float]) -> str:
        line = super().console(means)
        return f"{line} lod={means['Progress/lod']:.3f}" if "Progress/lod" in means else line


def checked_stages(resolution_log2: int, total_kimg: float, num_gpus: int, sched: Mapping[str, Any],
                   repeats: int, num_shards: int) -> list[Stage]:
    """``growing_stages``, each of whose minibatches must split over ``num_shards`` devices."""
    stages = growing_stages(resolution_log2, total_kimg, num_gpus, sched, repeats)
    for s in stages:
        if s.batch_size % num_shards:
            raise ValueError(f"stage {s.name}: the schedule's minibatch {s.batch_size} is not divisible by the "
                             f"{num_shards} data shards (devices); set --config.train.num_gpus={num_shards} so "
                             "that the schedule rounds minibatches to a multiple of it")
    return stages
