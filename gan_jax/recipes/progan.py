"""ProGAN training with the numerics of the official TF code (tkarras/progressive_growing_of_gans:
``train.py::train_progressive_gan``, ``loss.py``, ``tfutil.Optimizer``, ``config.py``).

Per step (one official "minibatch"; ``D_repeats`` 1), in the official order:
  Dmain  WGAN-GP ``D(G(z)) - D(x) + (lambda / target^2)(|grad D(mixed)| - target)^2 + eps D(x)^2``
         (+ AC-GAN ``xent(c, D_c(x)) + xent(c, D_c(G(z)))``), lambda 10, target 1, eps 0.001
  Gema   ``G_ema = lerp(G, G_ema, 0.999)`` (run with the D step, before G's update, as the official
         ``[D_train_op, Gs_update_op]``)
  Gmain  ``-D(G(z))`` (+ ``xent(c, D_c(G(z)))``)
Adam (TF's ``AdamOptimizer``: ``lr * sqrt(1 - b2^t) / (1 - b1^t)`` and epsilon added to ``sqrt(v)``)
with betas (0, 0.99), eps 1e-8, learning rates per resolution from the schedule, updates skipped
when a gradient is not finite (``tfutil.Optimizer``), and fresh states at each new stage
(``reset_opt_for_new_lod``). ``lod`` follows the official schedule evaluated every
``minibatch_repeats`` (4) steps, computed in the graph from the images seen; the real images are
faded as ``process_reals``; mirroring is ``config.data.xflip``. The stages (stable level / fade-in)
come from :mod:`gan_jax.recipes.growing`; one step is compiled per resolution.

Departure: G's loss uses the labels of the step's real batch (a sample of the dataset's labels)
where the official draws ``training_set.get_random_labels_tf``; same distribution.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gan_jax import losses
from gan_jax.models import from_kwargs, progan
from gan_jax.recipes import growing
from gan_jax.recipes.base import Phase, Stage, plain, prefixed
from gan_jax.state import TrainState

Batch = Mapping[str, jax.Array]


def build_networks(config: ml_collections.ConfigDict, num_shards: int = 1) -> tuple[progan.Generator, progan.Discriminator]:
    """G and D from the config's official kwargs (``config.model.G`` / ``config.model.D``; the
    dataset decides ``num_channels``, ``resolution`` and ``label_size``)."""
    m, d = config.model, config.data
    common = {"num_channels": int(d.channels), "resolution": int(d.resolution), "label_size": int(m.c_dim)}
    dtype = jnp.dtype(m.get("dtype", "float32"))
    G = from_kwargs.progan_generator_from_kwargs({**plain(m.G), **common}, dtype=dtype)
    D = from_kwargs.progan_discriminator_from_kwargs({**plain(m.D), **common}, dtype=dtype)
    return G, D.clone(mbstd_num_shards=num_shards)


class ProGAN(growing.GrowingRecipe):
    """The recipe's statics (networks, schedule, hyper-parameters) built once from a config."""

    build_networks = staticmethod(build_networks)

    def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None, *,
                 num_shards: int | None = None):
        super().__init__(config, mesh, num_shards=num_shards)
        t = config.train
        self.g_smoothing = float(t.G_smoothing)
        self.wgan_lambda, self.wgan_epsilon = float(t.wgan_lambda), float(t.wgan_epsilon)
        self.wgan_target, self.cond_weight = float(t.wgan_target), float(t.cond_weight)

    def lrates(self, resolution: int) -> tuple[float, float]:
        """(G_lrate, D_lrate) of ``resolution`` (TrainingSchedule's dicts)."""
        s = self.sched
        return (float(s["G_lrate_dict"].get(resolution, s["G_lrate_base"])),
                float(s["D_lrate_dict"].get(resolution, s["D_lrate_base"])))

    def init_variables(self, rng: jax.Array) -> tuple[dict, dict]:
        kg, kd = jax.random.split(rng)
        G, D = self.G, self.D
        c = jnp.zeros((1, G.c_dim), jnp.float32) if G.c_dim else None
        g_vars = G.init({"params": kg}, jnp.zeros((1, G.z_dim), jnp.float32), c)
        r, ch = G.resolution, G.num_channels
        d_vars = D.clone(mbstd_num_shards=1).init({"params": kd}, jnp.zeros((1, r, r, ch), jnp.float32))
        return dict(g_vars), dict(d_vars)

    # -- losses ---------------------------------------------------------------------------------------

    def _d(self, d_params, images, lod, resolution):
        return self.D.apply({"params": d_params}, images, lod=lod, max_resolution=resolution, return_label_logits=True)

    def generate(self, g_params, latents, labels, lod, resolution: int | None = None) -> jax.Array:
        return self.G.apply({"params": g_params}, latents, labels, lod=lod, max_resolution=resolution)

    def d_loss(self, d_params, reals, fakes, labels, mixing_factors, lod, resolution: int | None = None):
        """Official ``D_wgangp_acgan``: ``(mean loss, per-sample terms)``; reals/fakes [N, R, R, C]."""
        real_scores, real_logits = self._d(d_params, reals, lod, resolution)
        fake_scores, fake_logits = self._d(d_params, fakes, lod, resolution)
        penalty, norms, mixed_scores = losses.wgan_gradient_penalty(
            lambda x: self._d(d_params, x, lod, resolution)[0], reals, fakes, mixing_factors, self.wgan_target)
        drift = losses.drift_penalty(real_scores)
        loss = (losses.d_wgan(real_scores, fake_scores)[:, 0] + penalty * (self.wgan_lambda / self.wgan_target ** 2)
                + drift[:, 0] * self.wgan_epsilon)
        terms = {"real_scores": real_scores, "fake_scores": fake_scores, "mixed_scores": mixed_scores,
                 "mixed_norms": norms, "epsilon_penalty": drift}
        if self.D.c_dim:
            terms["label_penalty_reals"] = losses.acgan_label_penalty(labels, real_logits)
            terms["label_penalty_fakes"] = losses.acgan_label_penalty(labels, fake_logits)
            loss = loss + (terms["label_penalty_reals"] + terms["label_penalty_fakes"]) * self.cond_weight
        return jnp.mean(loss), terms

    def g_loss(self, g_params, d_params, latents, labels, lod, resolution: int | None = None):
        """Official ``G_wgan_acgan``: ``(mean loss, per-sample terms)``."""
        fakes = self.generate(g_params, latents, labels, lod, resolution)
        fake_scores, fake_logits = self._d(d_params, fakes, lod, resolution)
        loss = losses.g_wgan(fake_scores)[:, 0]
        terms = {"fake_scores": fake_scores}
        if self.D.c_dim:
            terms["label_penalty_fakes"] = losses.acgan_label_penalty(labels, fake_logits)
            loss = loss + terms["label_penalty_fakes"] * self.cond_weight
        return jnp.mean(loss), terms

    # -- phases -----------------------------------------------------------------------------------------

    def phases(self, stage: Stage) -> list[Phase]:
        res, n = int(stage.program), int(stage.batch_size)
        level = self.resolution_log2 - int(np.log2(res))
        g_lr, d_lr = self.lrates(res)
        opt_g, opt_d = self.optimizer(g_lr), self.optimizer(d_lr)
        z_dim, c_dim = self.G.z_dim, self.G.c_dim

        def dmain(state, batch, key):
            lod = self.step_lod(state, n)
            k_z, k_u = jax.random.split(key)
            labels = batch["label"] if c_dim else None
            reals = growing.process_reals(batch["image"], lod, level)
            latents = jax.random.normal(k_z, (n, z_dim), jnp.float32)
            fakes = jax.lax.stop_gradient(self.generate(state.params["G"], latents, labels, lod, res))
            u = jax.random.uniform(k_u, (n, 1, 1, 1), jnp.float32)
            (loss, terms), grads = jax.value_and_grad(self.d_loss, has_aux=True)(
                state.params["D"], reals, fakes, labels, u, lod, res)
            state = self.apply_grads(state, "D", opt_d, grads)
            state = state.replace(extra={**state.extra, "lod": lod})
            metrics = {"Loss/D/loss": loss, "Loss/scores/real": jnp.mean(terms["real_scores"]),
                       "Loss/scores/fake": jnp.mean(terms["fake_scores"]),
                       "Loss/mixed_norms": jnp.mean(terms["mixed_norms"]),
                       "Loss/epsilon_penalty": jnp.mean(terms["epsilon_penalty"])}
            return state, {**prefixed("Dmain", metrics), "Progress/lod": lod}

        def gema(state, batch, key):
            beta = np.float32(self.g_smoothing)  # official lerp(G, Gs, beta) per step
            ema = jax.tree.map(lambda g, e: g + (e - g) * beta, state.params["G"], state.ema_params["G"])
            return state.replace(ema_params={**state.ema_params, "G": ema}), {}

        def gmain(state, batch, key):
            lod = self.step_lod(state, n)
            labels = batch["label"] if c_dim else None
            latents = jax.random.normal(key, (n, z_dim), jnp.float32)
            (loss, terms), grads = jax.value_and_grad(self.g_loss, has_aux=True)(
                state.params["G"], state.params["D"], latents, labels, lod, res)
            state = self.apply_grads(state, "G", opt_g, grads)
            return state, prefixed("Gmain", {"Loss/G/loss": loss, "Loss/scores/fake": jnp.mean(terms["fake_scores"])})

        return [Phase("Dmain", 1, dmain), Phase("Gema", 1, gema), Phase("Gmain", 1, gmain)]

    # -- sampling -----------------------------------------------------------------------------------------

    def sample(self, state: TrainState, z: jax.Array, c: jax.Array | None = None) -> jax.Array:
        """G_ema images [N, R, R, C] at the state's current ``lod`` (``extra['lod']``)."""
        return self.generate(state.ema_params["G"], z, c, state.extra["lod"])

    @classmethod
    def default_config(cls) -> ml_collections.ConfigDict:
        from gan_jax.configs import progan_common  # noqa: PLC0415 (configs import only ml_collections)

        return progan_common.progan()
