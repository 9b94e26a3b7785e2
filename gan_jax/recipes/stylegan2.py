"""StyleGAN2 training with the numerics of NVIDIA's stylegan2-ada-pytorch
(``training/loss.py::StyleGAN2Loss`` and ``training/training_loop.py``).

Phases per iteration ``step`` (NVIDIA's ``batch_idx``):
  Gmain (every step)   ``mean(softplus(-D(G(z))))``
  Greg  (every 4)      path length ``mean((|J^T y| - pl_mean)^2) * pl_weight``, batch / pl_batch_shrink
  Dmain (every step)   ``mean(softplus(D(G(z)))) + mean(softplus(-D(x)))``
  Dreg  (every 16)     R1 ``mean(|grad_x D(x)|^2) * gamma / 2``
  Gema  (every step)   ``G_ema = lerp(G, G_ema, beta)``, buffers copied from G
  ADA   (every step)   with ``augment.mode='ada'``: every ``ada_interval`` steps
                       ``p += sign(r_t - target) * batch * interval / (ada_kimg * 1000)``, ``p >= 0``
D sees every image through the augmentation pipe (``gan_jax.augment``, NVIDIA's ``AugmentPipe``) unless
``augment.mode='noaug'``: the fakes of Gmain and Dmain, the reals of Dmain and Dreg (whose R1 gradient
is taken with respect to the reals before augmentation), each call with its own draws. ``r_t`` is the
mean of ``sign(D(real))`` over the Dmain and Dreg calls since the last adjustment (NVIDIA's
``Loss/signs/real`` collector); ``p`` and those sums live in the train state.
Each loss is multiplied by its phase's interval (lazy regularisation, Karras et al. 2020 sec. 3.1),
and each network has one Adam whose ``lr`` and ``betas`` are corrected by ``c = k / (k + 1)``.
G runs in "training mode": ``w_avg`` is updated by every mapping call of Gmain, Greg and Dmain,
noise is random, and the modulated convolutions take the per-sample-scaling form.
With ``train.batch_gpu`` (NVIDIA's ``--batch-gpu``) each device's share of a phase's batch runs in
rounds of that size, one after the other (a ``lax.scan``: one round's activations in memory at a
time): per round ``loss.mean() * interval`` is differentiated and the gradients are summed, the
minibatch stddev groups and the style-mixing cutoff are per round, and ``w_avg`` and ``pl_mean``
move once per round, as the official loop's rounds do.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gan_jax import augment as augment_lib
from gan_jax import losses
from gan_jax.models import from_kwargs, stylegan2
from gan_jax.recipes.base import (
    Phase,
    Recipe,
    Sampling,
    Stage,
    copy_tree,
    given_or_initial,
    plain,
    prefixed,
)
from gan_jax.state import TrainState

Batch = Mapping[str, jax.Array]
Inputs = dict[str, Any]
InputsFn = Callable[[str, jax.Array, Batch], Inputs]


def lazy_adam(lr: float, betas: tuple[float, float], eps: float, reg_interval: int | None) -> optax.GradientTransformation:
    """Adam with NVIDIA's lazy-regularisation correction ``lr * c``, ``betas ** c``, ``c = k / (k + 1)``.

    Non-finite gradients become finite first (``nan_to_num(nan=0, posinf=1e5, neginf=-1e5)``),
    as the official loop does before ``opt.step()``. Returns the transformation whose
    ``(lr, b1, b2)`` are also exposed for tests as ``hyperparams``.
    """
    c = reg_interval / (reg_interval + 1) if reg_interval else 1.0
    b1, b2 = betas[0] ** c, betas[1] ** c
    finite = optax.stateless(lambda g, _: jax.tree.map(lambda x: jnp.nan_to_num(x, nan=0.0, posinf=1e5, neginf=-1e5), g))
    tx = optax.chain(finite, optax.adam(lr * c, b1=b1, b2=b2, eps=eps))
    tx.hyperparams = dict(lr=lr * c, b1=b1, b2=b2, eps=eps)  # type: ignore[attr-defined]
    return tx


def freeze_updates(mask_fn: Callable[[Any], Any]) -> optax.GradientTransformation:
    """Zero updates where ``mask_fn(params)`` is True: parameters NVIDIA holds as buffers (not trained)."""
    def zero(updates, params):
        return jax.tree.map(lambda u, frozen: jnp.zeros_like(u) if frozen else u, updates, mask_fn(params))
    return optax.stateless(zero)


class StyleGAN2(Recipe):
    """NVIDIA's StyleGAN2 training: networks, optimizers and hyper-parameters of one config."""

    kwargs_sections = ("model.G", "model.D")

    def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None, *,
                 num_shards: int | None = None):
        super().__init__(config, mesh, num_shards=num_shards)
        t = config.train
        self.batch_size = int(t.batch_size)
        if self.batch_size % self.num_shards:
            raise ValueError(f"train.batch_size={self.batch_size} must be divisible by the {self.num_shards} data shards (devices)")
        per_shard = self.batch_size // self.num_shards
        # NVIDIA's batch_gpu: each device runs its batch in rounds of batch_gpu, each round's
        # loss.mean() backpropagated and the gradients summed before the optimizer step. A device
        # batch of at most batch_gpu is one round (so a config sized for 8 GPUs runs on a pod).
        self.batch_gpu = min(int(t.get("batch_gpu") or per_shard), per_shard)
        if self.batch_gpu < 1 or per_shard % self.batch_gpu:
            raise ValueError(f"train.batch_gpu={t.get('batch_gpu')} must divide the per-device batch batch_size / "
                             f"num_shards = {self.batch_size} / {self.num_shards} = {per_shard}")
        self.rounds = per_shard // self.batch_gpu
        if float(t.pl_weight) > 0 and self.batch_gpu % int(t.pl_batch_shrink):
            raise ValueError(f"the path-length batch is batch_gpu / pl_batch_shrink = {self.batch_gpu} / "
                             f"{int(t.pl_batch_shrink)} per device and round, which is not whole; use a train.batch_size "
                             f"(and train.batch_gpu) that is a multiple of {self.num_shards * int(t.pl_batch_shrink)} "
                             "per device (or set train.num_shards)")
        self.G, self.D = build_networks(config, self.num_shards)
        self.augment = augment_lib.settings_from_config(config.get("augment"), resuming=bool(config.get("resume")))
        self.num_ws = self.G.num_ws
        self.fused_modconv = bool(config.model.get("fused_modconv", False))
        self.r1_gamma = float(t.r1_gamma)
        self.pl_weight = float(t.pl_weight)
        self.pl_batch_shrink = int(t.pl_batch_shrink)
        self.pl_decay = float(t.pl_decay)
        self.style_mixing_prob = float(t.style_mixing_prob)
        self.g_reg_interval = int(t.g_reg_interval or 0)
        self.d_reg_interval = int(t.d_reg_interval or 0)
        self.ema_kimg = float(t.ema_kimg)
        self.ema_rampup = None if t.ema_rampup is None else float(t.ema_rampup)
        if config.get("resume"):
            self.ema_rampup = None  # train.py: --resume disables the EMA ramp-up (and sets ada_kimg 100)
        betas = tuple(t.betas)
        self.opt = {
            "G": lazy_adam(float(t.g_lr), betas, float(t.eps), self.g_reg_interval),
            "D": lazy_adam(float(t.d_lr), betas, float(t.eps), self.d_reg_interval),
        }
        if self.D.freeze_layers > 0:  # Freeze-D (NVIDIA's --freezed): the first layers of D never move
            self.opt["D"] = optax.chain(self.opt["D"], freeze_updates(lambda params: stylegan2.freeze_d_mask(self.D, params)))

    # -- state ----------------------------------------------------------------------------------

    def init_variables(self, rng: jax.Array) -> tuple[dict, dict]:
        kg, kd = jax.random.split(rng)
        G, D = self.G, self.D
        z = jnp.zeros((1, G.z_dim), jnp.float32)
        c = jnp.zeros((1, G.c_dim), jnp.float32) if G.c_dim else None
        g_vars = G.init({"params": kg}, z, c, noise_mode="const")
        d_vars = D.clone(mbstd_num_shards=1).init({"params": kd}, jnp.zeros((1, D.img_resolution, D.img_resolution, D.img_channels)), c)
        return dict(g_vars), dict(d_vars)

    def create_state(self, rng: jax.Array, g_vars: dict | None = None, d_vars: dict | None = None,
                     g_ema_vars: dict | None = None) -> TrainState:
        """A fresh state: networks from ``rng`` (or the given variables), fresh Adam states, pl_mean 0."""
        init_rng, run_rng = jax.random.split(rng)
        g_vars, d_vars, g_ema_vars = given_or_initial(self.init_variables, init_rng, g_vars, d_vars, g_ema_vars)
        extra = {"G_buffers": g_vars["buffers"], "G_ema_buffers": copy_tree(g_ema_vars["buffers"]),
                 "pl_mean": jnp.zeros((), jnp.float32)}
        if self.augment.pipe is not None:
            # p, and the sum and count of sign(D(real)) since the last ADA adjustment
            extra.update(augment_p=jnp.asarray(self.augment.p, jnp.float32), ada_signs=jnp.zeros((), jnp.float32),
                         ada_count=jnp.zeros((), jnp.float32))
        return self.new_state(run_rng, {"G": g_vars["params"], "D": d_vars["params"]}, self.opt, extra,
                              ema_params={"G": g_ema_vars["params"]})

    def transfer_state(self, rng: jax.Array, source: TrainState) -> TrainState:
        """Step 0 of a run that starts from ``source``'s G, D and G_ema (NVIDIA's ``--resume``): fresh
        optimizers and pl_mean, ADA from the config. The networks must have this config's shapes."""
        g = {"params": source.params["G"], "buffers": source.extra["G_buffers"]}
        d = {"params": source.params["D"]}
        g_ema = {"params": source.ema_params["G"], "buffers": source.extra["G_ema_buffers"]}
        check_same_shapes(jax.eval_shape(self.init_variables, rng), (g, d), ("G", "D"))
        return self.create_state(rng, g, d, g_ema)

    # -- random inputs --------------------------------------------------------------------------

    def phase_batch(self, phase: str) -> int:
        return self.batch_size // self.pl_batch_shrink if phase == "Greg" else self.batch_size

    def draw_inputs(self, phase: str, key: jax.Array, batch: Batch) -> Inputs:
        """The random inputs of one G forward: z, labels, style-mixing draws, noise key, pl noise."""
        n = self.phase_batch(phase)
        k_z, k_mix, k_noise, k_pl = jax.random.split(key, 4)
        k_aug = jax.random.fold_in(key, 4)  # the augmentation's draws leave the others as they were without it
        if phase == "Dreg":
            return {"augment_key": k_aug} if self.augment.pipe is not None else {}
        inputs: Inputs = {"z": jax.random.normal(k_z, (n, self.G.z_dim), jnp.float32),
                          "c": self._gen_labels(batch, n), "noise_key": k_noise}
        if self.augment.pipe is not None and phase != "Greg":
            inputs["augment_key"] = k_aug
        if self.style_mixing_prob > 0:
            k_cut, k_prob, k_z2 = jax.random.split(k_mix, 3)
            s = self.num_shards * self.rounds
            # One cutoff per device shard and round, as each GPU of NVIDIA's loop draws one per G call.
            cutoff = jax.random.randint(k_cut, (s,), 1, self.num_ws)
            cutoff = jnp.where(jax.random.uniform(k_prob, (s,)) < self.style_mixing_prob, cutoff, self.num_ws)
            inputs["mix_cutoff"] = jnp.repeat(cutoff, n // s)
            inputs["mix_z"] = jax.random.normal(k_z2, (n, self.G.z_dim), jnp.float32)
        if phase == "Greg":
            r, ch = self.G.img_resolution, self.G.img_channels
            inputs["pl_noise"] = jax.random.normal(k_pl, (n, r, r, ch), jnp.float32) / np.float32(math.sqrt(r * r))
        return inputs

    def _gen_labels(self, batch: Batch, n: int) -> jax.Array | None:
        # Generated samples take the labels of the real batch (a sample of the dataset's labels,
        # as NVIDIA's loop draws gen_c from the training set).
        if not self.G.c_dim:
            return None
        return self._shard_head(batch["label"], n)

    def _shard_head(self, x: jax.Array, n: int) -> jax.Array:
        """The first ``n / S`` rows of each of the S device shards (Greg's pl_batch_shrink per device)."""
        s = self.num_shards
        if x.shape[0] == n:
            return x
        return x.reshape(s, x.shape[0] // s, *x.shape[1:])[:, : n // s].reshape(n, *x.shape[1:])

    # -- networks in training mode ----------------------------------------------------------------

    def mapping(self, g_params, g_buffers, inputs: Inputs, update_w_avg: bool = True) -> tuple[jax.Array, Any]:
        """ws [N, num_ws, w_dim] with NVIDIA's style mixing; returns the updated buffers (w_avg)."""
        ws, mutated = self.G.apply({"params": g_params, "buffers": g_buffers}, inputs["z"], inputs["c"],
                                   method="mapping", update_w_avg=update_w_avg, mutable=["buffers"])
        g_buffers = mutated["buffers"]
        if "mix_z" in inputs:
            ws2 = self.G.apply({"params": g_params, "buffers": g_buffers}, inputs["mix_z"], inputs["c"], method="mapping")
            mixed = jnp.arange(self.num_ws)[None, :, None] >= inputs["mix_cutoff"][:, None, None]
            ws = jnp.where(mixed, ws2, ws)
        return ws, g_buffers

    def synthesis(self, g_params, g_buffers, ws: jax.Array, inputs: Inputs) -> jax.Array:
        variables = {"params": g_params, "buffers": g_buffers}
        if "noise" in inputs:  # recorded draws, e.g. a reference run's
            return self.G.apply({**variables, "noise_inputs": inputs["noise"]}, ws, noise_mode="given",
                                fused_modconv=self.fused_modconv, method="synthesis")
        return self.G.apply(variables, ws, noise_mode="random", fused_modconv=self.fused_modconv,
                            rngs={"noise": inputs["noise_key"]}, method="synthesis")

    def discriminate(self, d_params, images: jax.Array, c: jax.Array | None) -> jax.Array:
        return self.D.apply({"params": d_params}, images, c)

    def augmented(self, state: TrainState, images: jax.Array, key: jax.Array | None) -> jax.Array:
        """``images`` as D sees them: through the augmentation pipe at the state's ``p`` (or unchanged
        with ``noaug``). The margin of the geometric transforms is per device shard, as per GPU upstream."""
        if self.augment.pipe is None:
            return images
        return self.augment.pipe(images, state.extra["augment_p"], key, groups=self.num_shards)

    def count_signs(self, extra: dict, real_logits: jax.Array) -> dict:
        """``extra`` with ``sign(D(real))`` added to the ADA accumulators (when adapting)."""
        if not self.augment.adaptive:
            return extra
        return {**extra, "ada_signs": extra["ada_signs"] + jnp.sum(jnp.sign(real_logits)),
                "ada_count": extra["ada_count"] + np.float32(real_logits.size)}

    @staticmethod
    def real_images(batch: Batch) -> jax.Array:
        return batch["image"].astype(jnp.float32) / 127.5 - 1.0

    # -- the four losses: (grads, aux) -------------------------------------------------------------

    def gmain_grads(self, state: TrainState, batch: Batch, inputs: Inputs):
        def loss_fn(g_params):
            ws, buffers = self.mapping(g_params, state.extra["G_buffers"], inputs)
            img = self.synthesis(g_params, buffers, ws, inputs)
            logits = self.discriminate(state.params["D"], self.augmented(state, img, inputs.get("augment_key")), inputs["c"])
            loss = losses.g_logistic_nonsaturating(logits)
            return jnp.mean(loss), (buffers, {"Loss/G/loss": jnp.mean(loss), "Loss/scores/fake": jnp.mean(logits),
                                              "Loss/signs/fake": jnp.mean(jnp.sign(logits))})
        grads, (buffers, metrics) = jax.grad(loss_fn, has_aux=True)(state.params["G"])
        return grads, buffers, metrics

    def greg_grads(self, state: TrainState, batch: Batch, inputs: Inputs):
        gain = self.g_reg_interval or 1

        def loss_fn(g_params):
            ws, buffers = self.mapping(g_params, state.extra["G_buffers"], inputs)
            pl_lengths, _ = losses.path_length(lambda w: self.synthesis(g_params, buffers, w, inputs), ws, inputs["pl_noise"])
            pl_mean = stylegan2.lerp(state.extra["pl_mean"], jnp.mean(pl_lengths), self.pl_decay)
            pl_penalty = jnp.square(pl_lengths - pl_mean)
            loss = jnp.mean(pl_penalty * self.pl_weight) * gain
            metrics = {"Loss/pl_penalty": jnp.mean(pl_penalty), "Loss/G/reg": jnp.mean(pl_penalty * self.pl_weight)}
            return loss, (buffers, jax.lax.stop_gradient(pl_mean), metrics)
        grads, (buffers, pl_mean, metrics) = jax.grad(loss_fn, has_aux=True)(state.params["G"])
        return grads, buffers, pl_mean, metrics

    def dmain_grads(self, state: TrainState, batch: Batch, inputs: Inputs):
        g_params = state.params["G"]
        ws, buffers = self.mapping(g_params, state.extra["G_buffers"], inputs)  # G in train mode: w_avg moves
        fake = jax.lax.stop_gradient(self.synthesis(g_params, buffers, ws, inputs))
        real = self.real_images(batch)
        real_c = batch.get("label") if self.D.c_dim else None
        if self.augment.pipe is not None:
            k_fake, k_real = jax.random.split(inputs["augment_key"])
            fake, real = self.augmented(state, fake, k_fake), self.augmented(state, real, k_real)

        def loss_fn(d_params):
            fake_logits = self.discriminate(d_params, fake, inputs["c"])
            real_logits = self.discriminate(d_params, real, real_c)
            loss_fake, loss_real = losses.d_logistic(real_logits, fake_logits)
            metrics = {"Loss/D/loss": jnp.mean(loss_fake + loss_real), "Loss/scores/fake": jnp.mean(fake_logits),
                       "Loss/scores/real": jnp.mean(real_logits), "Loss/signs/fake": jnp.mean(jnp.sign(fake_logits)),
                       "Loss/signs/real": jnp.mean(jnp.sign(real_logits))}
            return jnp.mean(loss_fake) + jnp.mean(loss_real), (metrics, real_logits)
        grads, (metrics, real_logits) = jax.grad(loss_fn, has_aux=True)(state.params["D"])
        return grads, buffers, metrics, jax.lax.stop_gradient(real_logits)

    def dreg_grads(self, state: TrainState, batch: Batch, inputs: Inputs | None = None):
        gain = self.d_reg_interval or 1
        real = self.real_images(batch)
        real_c = batch.get("label") if self.D.c_dim else None
        key = (inputs or {}).get("augment_key")

        def loss_fn(d_params):
            # R1 with respect to the reals before augmentation: the gradient flows through the pipe.
            r1, logits = losses.r1_penalty(lambda x: self.discriminate(d_params, self.augmented(state, x, key), real_c), real)
            loss = jnp.mean(r1 * (self.r1_gamma / 2)) * gain
            return loss, ({"Loss/r1_penalty": jnp.mean(r1), "Loss/D/reg": jnp.mean(r1 * (self.r1_gamma / 2)),
                           "Loss/scores/real": jnp.mean(logits), "Loss/signs/real": jnp.mean(jnp.sign(logits))}, logits)
        grads, (metrics, logits) = jax.grad(loss_fn, has_aux=True)(state.params["D"])
        return grads, metrics, jax.lax.stop_gradient(logits)

    # -- rounds (NVIDIA's batch_gpu) -----------------------------------------------------------------

    def split_rounds(self, tree: Any, n: int) -> Any:
        """Arrays of ``tree`` with ``n`` rows -> ``[rounds, n / rounds, ...]``; round ``r`` holds rows
        ``r k .. (r + 1) k - 1`` of each device shard (``k = n / (shards rounds)``), so that a round
        is every device's ``r``-th chunk of ``batch_gpu``. ``noise_key`` and ``augment_key`` are split in
        ``rounds`` keys.
        """
        s, r = self.num_shards, self.rounds

        def split(x):
            if getattr(x, "ndim", 0) == 0 or x.shape[0] != n:
                raise ValueError(f"cannot split an input of shape {getattr(x, 'shape', None)} into rounds of a "
                                 f"batch of {n}")
            return x.reshape(s, r, n // (s * r), *x.shape[1:]).swapaxes(0, 1).reshape(r, n // r, *x.shape[1:])

        tree = dict(tree)
        keys = {k: tree.pop(k) for k in ("noise_key", "augment_key") if k in tree}
        out = jax.tree.map(split, tree)
        out.update({k: jax.random.split(key, r) for k, key in keys.items()})
        return out

    def round_grads(self, phase: str, state: TrainState, batch: Batch, inputs: Inputs | None) -> tuple[Any, dict, dict]:
        """One round of ``phase``: ``(grads, state.extra updated, metrics)``."""
        if phase == "Gmain":
            grads, buffers, metrics = self.gmain_grads(state, batch, inputs)
            return grads, {**state.extra, "G_buffers": buffers}, metrics
        if phase == "Greg":
            grads, buffers, pl_mean, metrics = self.greg_grads(state, batch, inputs)
            return grads, {**state.extra, "G_buffers": buffers, "pl_mean": pl_mean}, metrics
        if phase == "Dmain":
            grads, buffers, metrics, real_logits = self.dmain_grads(state, batch, inputs)
            return grads, self.count_signs({**state.extra, "G_buffers": buffers}, real_logits), metrics
        if phase == "Dreg":
            grads, metrics, real_logits = self.dreg_grads(state, batch, inputs)
            return grads, self.count_signs(state.extra, real_logits), metrics
        raise ValueError(f"unknown phase {phase!r}; expected Gmain, Greg, Dmain or Dreg")

    def phase_grads(self, phase: str, state: TrainState, batch: Batch, inputs: Inputs | None) -> tuple[Any, dict, dict]:
        """``round_grads`` over the phase's rounds: the gradients summed, ``extra`` (w_avg, pl_mean)
        carried from round to round, the metrics averaged. ``inputs`` are the whole phase's draws."""
        if self.rounds == 1:
            return self.round_grads(phase, state, batch, inputs)
        n = self.phase_batch(phase)
        xs = (self.split_rounds(batch, self.batch_size), None if inputs is None else self.split_rounds(inputs, n))

        def body(carry, x):
            total, extra = carry
            grads, extra, metrics = self.round_grads(phase, state.replace(extra=extra), *x)
            return (jax.tree.map(jnp.add, total, grads), extra), metrics

        zeros = jax.tree.map(jnp.zeros_like, state.params["G" if phase.startswith("G") else "D"])
        (grads, extra), metrics = jax.lax.scan(body, (zeros, state.extra), xs)
        return grads, extra, jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)

    # -- updates ------------------------------------------------------------------------------------

    def ema_beta(self, images_seen: jax.Array) -> jax.Array:
        """``0.5 ** (batch / ema_nimg)``, ``ema_nimg = ema_kimg * 1000`` (optionally ramped up by
        ``images_seen * ema_rampup``): the half-life of G_ema is ``ema_kimg`` thousand images of the
        global batch (official training_loop)."""
        ema_nimg = jnp.asarray(self.ema_kimg * 1000, jnp.float32)
        if self.ema_rampup is not None:
            ema_nimg = jnp.minimum(ema_nimg, images_seen.astype(jnp.float32) * self.ema_rampup)
        return jnp.power(0.5, self.batch_size / jnp.maximum(ema_nimg, 1e-8))

    def ema_update(self, state: TrainState) -> TrainState:
        beta = self.ema_beta(state.images_seen)
        ema = jax.tree.map(lambda p, e: stylegan2.lerp(p, e, beta), state.params["G"], state.ema_params["G"])
        extra = {**state.extra, "G_ema_buffers": state.extra["G_buffers"]}
        return state.replace(ema_params={**state.ema_params, "G": ema}, extra=extra)

    # -- phases ---------------------------------------------------------------------------------

    def phases(self, stage: Stage | None = None, inputs_fn: InputsFn | None = None) -> list[Phase]:
        """NVIDIA's phase table: Gmain, Greg (every 4), Dmain, Dreg (every 16), Gema.
        ``inputs_fn(phase, key, batch)`` replaces the random draws (tests)."""
        draw = inputs_fn or self.draw_inputs

        def step(name):
            net = "G" if name.startswith("G") else "D"

            def phase_fn(state, batch, key):
                if name == "Dreg":  # its only draws: the augmentation's
                    inputs = self.draw_inputs(name, key, batch) if self.augment.pipe is not None else None
                else:
                    inputs = draw(name, key, batch)
                grads, extra, metrics = self.phase_grads(name, state, batch, inputs)
                if name == "Greg":
                    metrics["pl_mean"] = extra["pl_mean"]
                return self.apply_grads(state, net, self.opt[net], grads).replace(extra=extra), prefixed(name, metrics)
            return phase_fn

        gmain, greg, dmain, dreg = step("Gmain"), step("Greg"), step("Dmain"), step("Dreg")

        def gema(state, batch, key):
            return self.ema_update(state), {"Progress/ema_beta": self.ema_beta(state.images_seen)}

        table = [Phase("Gmain", 1, gmain)]
        if self.pl_weight > 0 and self.g_reg_interval:
            table.append(Phase("Greg", self.g_reg_interval, greg))
        table.append(Phase("Dmain", 1, dmain))
        if self.r1_gamma > 0 and self.d_reg_interval:
            table.append(Phase("Dreg", self.d_reg_interval, dreg))
        table.append(Phase("Gema", 1, gema))
        if self.augment.adaptive:
            table.append(Phase("ADA", 1, self.ada_update))
        return table

    def ada_update(self, state: TrainState, batch: Batch, key: jax.Array) -> tuple[TrainState, dict]:
        """NVIDIA's ADA heuristic after step ``state.step`` (its ``batch_idx`` + 1 is a multiple of
        ``ada_interval``): ``p <- max(p + sign(r_t - target) * batch * interval / (ada_kimg * 1000), 0)``,
        ``r_t`` the mean sign of D's real logits since the last adjustment; the accumulators restart."""
        a, extra = self.augment, state.extra
        r_t = extra["ada_signs"] / jnp.maximum(extra["ada_count"], 1.0)
        due = (state.step + 1) % a.interval == 0
        adjusted = jnp.maximum(extra["augment_p"] + jnp.sign(r_t - np.float32(a.target)) * np.float32(a.adjustment(self.batch_size)), 0.0)
        p = jnp.where(due, adjusted, extra["augment_p"])
        zero = jnp.zeros((), jnp.float32)
        extra = {**extra, "augment_p": p, "ada_signs": jnp.where(due, zero, extra["ada_signs"]),
                 "ada_count": jnp.where(due, zero, extra["ada_count"])}
        return state.replace(extra=extra), {"Progress/augment": p, "ADA/r_t": r_t}

    def sample(self, state: TrainState, z: jax.Array, c: jax.Array | None = None,
               truncation_psi: float = 1.0, noise_mode: str = "const") -> jax.Array:
        """G_ema images [N, R, R, C] in about [-1, 1] (eval mode: grouped modconv, const noise)."""
        variables = {"params": state.ema_params["G"], "buffers": state.extra["G_ema_buffers"]}
        return self.G.apply(variables, z, c, truncation_psi=truncation_psi, noise_mode=noise_mode,
                            rngs={"noise": jax.random.PRNGKey(0)})


    def sampling(self) -> Sampling:
        """G_ema as ``gan_jax.sample`` uses it: mapping (with truncation) -> ws [N, num_ws, w_dim] -> synthesis."""
        G = self.G
        ema = lambda state: {"params": state.ema_params["G"], "buffers": state.extra["G_ema_buffers"]}  # noqa: E731

        def mapping(state, z, c=None, psi=1.0):
            return G.apply(ema(state), z, c, truncation_psi=psi, method="mapping")

        def synthesis(state, ws, key, noise_mode="const"):
            return G.apply(ema(state), ws, noise_mode=noise_mode, rngs={"noise": key}, method="synthesis")

        return Sampling(z_dim=G.z_dim, c_dim=G.c_dim, mapping=mapping, synthesis=synthesis, num_ws=G.num_ws,
                        truncation=True)

    @classmethod
    def default_config(cls) -> ml_collections.ConfigDict:
        from gan_jax.configs import common  # noqa: PLC0415 (configs import only ml_collections)

        return common.stylegan2()


def build_networks(config: ml_collections.ConfigDict, num_shards: int = 1) -> tuple[stylegan2.Generator, stylegan2.Discriminator]:
    """G and D from the config's NVIDIA-style kwargs (``config.model.G`` / ``config.model.D``)."""
    m, d = config.model, config.data
    common = dict(c_dim=int(m.c_dim), img_resolution=int(d.resolution), img_channels=int(d.channels))
    dtype = jnp.dtype(m.get("dtype", "float32"))
    G = from_kwargs.generator_from_kwargs({**plain(m.G), **common}, dtype=dtype)
    D = from_kwargs.discriminator_from_kwargs({**plain(m.D), **common}, dtype=dtype)
    return G, D.clone(mbstd_num_shards=num_shards)


def check_same_shapes(expected: Any, given: Any, names: tuple[str, ...]) -> None:
    """Refuse networks whose arrays differ from this config's (names and shapes), listing a few."""
    for name, e, g in zip(names, expected, given):
        e_flat = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_flatten_with_path(e)[0]}
        g_flat = {jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree_util.tree_flatten_with_path(g)[0]}
        diff = sorted(k for k in e_flat.keys() | g_flat.keys() if e_flat.get(k) != g_flat.get(k))
        if diff:
            listed = "; ".join(f"{k}: config {e_flat.get(k, 'absent')}, source {g_flat.get(k, 'absent')}" for k in diff[:5])
            raise ValueError(f"the networks to start from do not fit this config: {name} differs in {len(diff)} "
                             f"array(s) ({listed}); use the source run's model settings (config.json) and resolution")
