"""StyleGAN (1) training with the numerics of NVlabs/stylegan (``training/training_loop.py``,
``training/loss.py``, ``dnnlib/tflib/optimizer.py``, ``train.py``'s FFHQ configuration).

Per iteration (the official loop runs ``[D_train_op, Gs_update_op]`` then ``G_train_op``):
  Dmain  ``mean(softplus(D(G(z))) + softplus(-D(x))) + mean(R1) * gamma / 2``, R1 on the reals of
         every step (``D_logistic_simplegp``, gamma 10, not lazy)
  Gema   ``Gs = lerp(G, Gs, 0.5 ** (minibatch / (G_smoothing_kimg * 1000)))``, non-trainables copied
  Gmain  ``mean(softplus(-D(G(z))))`` (``G_logistic_nonsaturating``)
G runs in training mode in both losses: no truncation, style mixing with probability 0.9, random
noise, and ``dlatent_avg`` updated by each call. Adam is TF's (``beta1=0, beta2=0.99, eps=1e-8``;
TF adds eps to ``sqrt(v)`` before the bias correction of the step size; ``recipes.tf_adam``), skips a step whose gradients
are not all finite (``tflib.Optimizer``), and is reset whenever a new level of detail starts
(``reset_opt_for_new_lod``).

Progressive growing is the shared :mod:`gan_jax.recipes.growing`: the official TrainingSchedule
(lod from the images seen, minibatch and learning rates per resolution), the real-image fade and the
training stages; one compiled step per resolution serves its fade-in and its stable phase.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gan_jax.models import from_kwargs, stylegan
from gan_jax.models.shapes import log2_resolution
from gan_jax.recipes import growing
from gan_jax.recipes.base import Phase, Sampling, Stage, plain
from gan_jax.state import TrainState

Batch = Mapping[str, jax.Array]
Inputs = dict[str, Any]


# ----------------------------------------------------------------------------------------------
# The two losses, as functions of explicit random draws (so recorded draws can be replayed).


def generator_forward(G: stylegan.Generator, g_params, g_buffers, inputs: Inputs, lod: Any,
                      max_resolution: int | None = None) -> tuple[jax.Array, Any]:
    """G_style in training mode: images [N, R, R, C] and the buffers with the updated ``dlatent_avg``.

    ``inputs``: ``z`` [N, latent_size], ``labels`` or None, optional style mixing ``mix_z``
    [N, latent_size] and ``mix_cutoff`` (scalar or [N]: layers below it from ``z``), and either
    ``noise`` (a list of N(0, 1) arrays [N, H, W, 1], one per layer) or a ``noise_key``.
    """
    variables = {"params": g_params, "buffers": g_buffers}
    ws, mutated = G.apply(variables, inputs["z"], inputs.get("labels"), is_training=True, method="mapping",
                          mutable=["buffers"])
    buffers = {**g_buffers, **mutated["buffers"]}
    if inputs.get("mix_z") is not None:
        ws2 = G.apply(variables, inputs["mix_z"], inputs.get("labels"), is_training=True, update_dlatent_avg=False,
                      method="mapping")
        ws = stylegan.mix_styles(ws, ws2, inputs["mix_cutoff"])
    variables = {"params": g_params, "buffers": buffers}
    if inputs.get("noise") is not None:
        img = G.apply(variables, ws, noise_mode="given", noise_inputs=inputs["noise"], lod=lod,
                      max_resolution=max_resolution, method="synthesis")
    else:
        img = G.apply(variables, ws, noise_mode="random", lod=lod, max_resolution=max_resolution,
                      rngs={"noise": inputs["noise_key"]}, method="synthesis")
    return img, buffers


def g_loss(G: stylegan.Generator, D: stylegan.Discriminator, g_params, g_buffers, d_params, inputs: Inputs,
           lod: Any, max_resolution: int | None = None):
    """``G_logistic_nonsaturating``: ``(mean(softplus(-D(G(z)))), (buffers, per-sample loss [N, 1], fake scores))``."""
    img, buffers = generator_forward(G, g_params, g_buffers, inputs, lod, max_resolution)
    scores = D.apply({"params": d_params}, img, inputs.get("labels"), lod=lod, max_resolution=max_resolution)
    loss = jax.nn.softplus(-scores)
    return jnp.mean(loss), (buffers, loss, scores)


def d_loss(G: stylegan.Generator, D: stylegan.Discriminator, g_params, g_buffers, d_params, reals: jax.Array,
           real_labels: jax.Array | None, inputs: Inputs, lod: Any, r1_gamma: float = 10.0,
           max_resolution: int | None = None):
    """``D_logistic_simplegp``: ``softplus(D(fake)) + softplus(-D(real)) + R1 * gamma / 2``, R1 =
    ``sum_HWC (d sum D(reals) / d reals)^2`` per sample.

    Returns ``(loss_mean, aux)`` with aux ``(buffers, dict(real_scores, fake_scores, r1_penalty, loss))``.
    The official code adds ``[N, 1] + [N]`` into an ``[N, N]`` loss; its mean is the mean used here.
    """
    fake, buffers = generator_forward(G, g_params, g_buffers, inputs, lod, max_resolution)
    fake = jax.lax.stop_gradient(fake)

    def d_fn(x: jax.Array) -> jax.Array:
        return D.apply({"params": d_params}, x, real_labels, lod=lod, max_resolution=max_resolution)

    fake_scores = D.apply({"params": d_params}, fake, inputs.get("labels"), lod=lod, max_resolution=max_resolution)
    if r1_gamma:
        real_scores, vjp = jax.vjp(d_fn, reals)
        (grads,) = vjp(jnp.ones_like(real_scores))
        r1 = jnp.sum(jnp.square(grads), axis=(1, 2, 3))
    else:
        real_scores, r1 = d_fn(reals), jnp.zeros((reals.shape[0],), jnp.float32)
    loss = jax.nn.softplus(fake_scores) + jax.nn.softplus(-real_scores)
    loss_mean = jnp.mean(loss) + jnp.mean(r1) * np.float32(r1_gamma * 0.5)
    aux = dict(real_scores=real_scores, fake_scores=fake_scores, r1_penalty=r1, loss=loss[:, 0] + r1 * np.float32(r1_gamma * 0.5))
    return loss_mean, (buffers, aux)


# ----------------------------------------------------------------------------------------------
# The recipe statics.


def _rbg(key: jax.Array) -> jax.Array:
    """An ``unsafe_rbg`` key with the bits of ``key`` (deterministic on a given backend)."""
    data = key if key.dtype == jnp.uint32 else jax.random.key_data(key)
    return jax.random.wrap_key_data(jnp.concatenate([data.reshape(-1)] * 2)[:4], impl="unsafe_rbg")


def build_networks(config: ml_collections.ConfigDict, num_shards: int = 1) -> tuple[stylegan.Generator, stylegan.Discriminator]:
    """G_style and D_basic from ``config.model.G`` / ``config.model.D`` (official keyword names);
    ``num_channels``, ``resolution`` and ``label_size`` come from the data, as the official loop passes them."""
    m, d = config.model, config.data
    common = dict(num_channels=int(d.channels), resolution=int(d.resolution), label_size=int(m.c_dim))
    dtype = m.get("dtype", "float32")
    G = from_kwargs.stylegan_generator_from_kwargs({**plain(m.G), **common}, dtype=dtype)
    D = from_kwargs.stylegan_discriminator_from_kwargs({**plain(m.D), **common}, dtype=dtype)
    return G, D.clone(mbstd_num_shards=num_shards)


class StyleGAN(growing.GrowingRecipe):
    """Networks, schedule and hyper-parameters of one config, built once."""

    build_networks = staticmethod(build_networks)

    def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None, *,
                 num_shards: int | None = None):
        super().__init__(config, mesh, num_shards=num_shards)
        t = config.train
        self.r1_gamma = float(t.r1_gamma)
        self.style_mixing_prob = float(self.G.style_mixing_prob or 0.0)
        self.smoothing_kimg = float(t.G_smoothing_kimg)

    def schedule_at(self, resolution: int) -> growing.Schedule:
        """The schedule's per-resolution values (minibatch, learning rates) for ``resolution``."""
        for stage in self.stages():
            if stage.program == resolution:
                return growing.training_schedule(stage.start_images, self.resolution_log2, self.num_gpus, self.sched)
        raise ValueError(f"the schedule never trains at {resolution}x{resolution}")

    def init_variables(self, rng: jax.Array) -> tuple[dict, dict]:
        kg, kd = jax.random.split(rng)
        G, D = self.G, self.D
        z = jnp.zeros((1, G.latent_size), jnp.float32)
        c = jnp.zeros((1, G.label_size), jnp.float32) if G.label_size else None
        # Compiled, and drawn with XLA's RngBitGenerator (a key made from the seed's bits): the ~100
        # per-parameter threefry expansions make op-by-op or threefry initialisation 3x slower on CPU.
        g_vars = jax.jit(lambda k: G.init({"params": _rbg(k)}, z, c, noise_mode="const"))(kg)
        r = D.resolution
        d_vars = jax.jit(lambda k: D.clone(mbstd_num_shards=1).init(
            {"params": _rbg(k)}, jnp.zeros((1, r, r, D.num_channels)), c))(kd)
        return dict(g_vars), dict(d_vars)

    # -- random inputs --------------------------------------------------------------------------

    def draw_inputs(self, key: jax.Array, batch: Batch, n: int, lod: jax.Array) -> Inputs:
        """Latents, labels, style-mixing draws (one cutoff per device shard, as each GPU draws its own)."""
        k_z, k_mix, k_z2, k_noise = jax.random.split(key, 4)
        G = self.G
        inputs: Inputs = {"z": jax.random.normal(k_z, (n, G.latent_size), jnp.float32),
                          "labels": batch.get("label") if G.label_size else None, "noise_key": k_noise}
        if self.style_mixing_prob > 0:
            s = self.num_shards
            cut = jax.vmap(lambda k: stylegan.style_mixing_cutoff(k, G.num_layers, lod, self.style_mixing_prob))(
                jax.random.split(k_mix, s))
            inputs["mix_cutoff"] = jnp.repeat(cut, n // s)
            inputs["mix_z"] = jax.random.normal(k_z2, (n, G.latent_size), jnp.float32)
        return inputs

    # -- phases ---------------------------------------------------------------------------------

    def phases(self, stage: Stage) -> list[Phase]:
        """Dmain, Gema, Gmain of one stage (all three every step)."""
        resolution = int(stage.program)
        sched = self.schedule_at(resolution)
        batch_size = int(stage.batch_size)
        level = self.resolution_log2 - log2_resolution(resolution)
        opt_g, opt_d = self.optimizer(sched.G_lrate), self.optimizer(sched.D_lrate)
        # Official Gs_beta = 0.5 ** (minibatch / (G_smoothing_kimg * 1000)).
        ema_beta = np.float32(0.5 ** (batch_size / (self.smoothing_kimg * 1000.0))) if self.smoothing_kimg > 0 else np.float32(0)
        G, D = self.G, self.D

        def dmain(state, batch, key):
            lod = self.step_lod(state, batch_size)
            reals = growing.process_reals(batch["image"], lod, level)
            inputs = self.draw_inputs(key, batch, batch_size, lod)
            real_labels = batch.get("label") if D.label_size else None
            grad_fn = jax.grad(lambda p: d_loss(G, D, state.params["G"], state.extra["G_buffers"], p, reals, real_labels,
                                                inputs, lod, self.r1_gamma, resolution), has_aux=True)
            grads, (buffers, aux) = grad_fn(state.params["D"])
            state = self.apply_grads(state, "D", opt_d, grads)
            state = state.replace(extra={**state.extra, "G_buffers": buffers, "lod": lod})
            return state, {"Dmain/Loss/D/loss": jnp.mean(aux["loss"]), "Dmain/Loss/r1_penalty": jnp.mean(aux["r1_penalty"]),
                           "Dmain/Loss/scores/real": jnp.mean(aux["real_scores"]),
                           "Dmain/Loss/scores/fake": jnp.mean(aux["fake_scores"]), "Progress/lod": lod}

        def gema(state, batch, key):
            ema = jax.tree.map(lambda p, e: p + (e - p) * ema_beta, state.params["G"], state.ema_params["G"])
            extra = {**state.extra, "G_ema_buffers": state.extra["G_buffers"]}
            return state.replace(ema_params={**state.ema_params, "G": ema}, extra=extra), {}

        def gmain(state, batch, key):
            lod = self.step_lod(state, batch_size)
            inputs = self.draw_inputs(key, batch, batch_size, lod)
            grad_fn = jax.grad(lambda p: g_loss(G, D, p, state.extra["G_buffers"], state.params["D"], inputs, lod,
                                                resolution), has_aux=True)
            grads, (buffers, loss, scores) = grad_fn(state.params["G"])
            state = self.apply_grads(state, "G", opt_g, grads)
            state = state.replace(extra={**state.extra, "G_buffers": buffers})
            return state, {"Gmain/Loss/G/loss": jnp.mean(loss), "Gmain/Loss/scores/fake": jnp.mean(scores)}

        return [Phase("Dmain", 1, dmain), Phase("Gema", 1, gema), Phase("Gmain", 1, gmain)]

    # -- sampling -------------------------------------------------------------------------------

    def ema_variables(self, state: TrainState) -> dict:
        return {"params": state.ema_params["G"], "buffers": state.extra["G_ema_buffers"]}

    def sample(self, state: TrainState, z: jax.Array, c: jax.Array | None = None) -> jax.Array:
        """Training grids as the official loop draws them: ``Gs.run(is_validation=True)`` (the
        ``*_val`` truncation, None by default), at the current lod; const noise so grids are comparable."""
        return self.G.apply(self.ema_variables(state), z, c, truncation_psi=self.G.truncation_psi_val,
                            truncation_cutoff=self.G.truncation_cutoff_val, noise_mode="const", lod=state.extra["lod"])

    @property
    def z_dim(self) -> int:
        return self.G.latent_size

    @property
    def c_dim(self) -> int:
        return self.G.label_size

    def sampling(self) -> Sampling:
        G = self

        def mapping(state, z, c, psi):
            ws = self.G.apply(G.ema_variables(state), z, c, truncation_psi=None, method="mapping")
            avg = state.extra["G_ema_buffers"]["dlatent_avg"]
            cutoff = self.G.truncation_cutoff if self.G.truncation_cutoff is not None else self.G.num_layers
            return stylegan.truncate(ws, avg, psi, cutoff)

        def synthesis(state, ws, key, noise_mode):
            return self.G.apply(G.ema_variables(state), ws, noise_mode=noise_mode, lod=state.extra["lod"],
                                rngs={"noise": key}, method="synthesis")

        return Sampling(z_dim=self.G.latent_size, c_dim=self.G.label_size, mapping=mapping, synthesis=synthesis,
                        num_ws=self.G.num_layers, truncation=True)

    @classmethod
    def default_config(cls) -> ml_collections.ConfigDict:
        from gan_jax.configs import stylegan_common  # noqa: PLC0415 (configs import only ml_collections)

        return stylegan_common.stylegan()
