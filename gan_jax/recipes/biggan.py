"""BigGAN / BigGAN-deep training (Brock et al. 2019, arXiv 1809.11096) with the numerics of the author's
BigGAN-PyTorch (``train_fns.GAN_training_function``, ``losses.py``, ``utils.ortho`` / ``utils.ema``).

One iteration (one train step, ``state.step``) is the reference's:

  Dmain0 .. Dmain{k-1}  ``num_D_steps`` D steps (paper: 2), each over ``num_D_accumulations``
                        micro-batches (``lax.scan``): G (train mode, no gradient) makes fakes of
                        uniformly drawn classes, D runs once on ``[fakes, reals]`` and takes the hinge
                        loss ``mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))`` / accumulations;
                        then optional orthogonal regularisation and one Adam step of D.
  Gmain                 ``num_G_accumulations`` micro-batches of ``-mean(D(G(z)))``, optional
                        orthogonal regularisation of G (``shared`` excluded), one Adam step of G.
  Gema                  ``G_ema = decay * G_ema + (1 - decay) * G`` over parameters **and** buffers
                        (SN u / sv, BN statistics), with decay 0 (a copy) before ``ema_start``.

Every G and D call is in train mode, so each advances its spectral-norm u by one power-iteration
step and each G call moves its BN running statistics, as the reference (G twice per D step pair
and once in the G step, D once per micro-batch). BatchNorm statistics are over the global
micro-batch (all devices): the paper's cross-replica BN.

The loader batch ``train.batch_size`` is the real images of one iteration: ``num_D_steps`` D steps of
``train.batch_size / num_D_steps`` (the paper's batch, 2048 for ImageNet 128). Labels come from the
data as one-hot ``[N, c_dim]`` and are converted with ``argmax``; ``c_dim = 0`` trains one class.

**Orthogonal regularisation** (paper sec. 3.1, eq. 3): ``R_beta(W) = beta ||W W^T (.) (1 - I)||_F^2`` per
weight with ``W = weight.view(out, -1)``, added to the loss (``train.G_ortho`` / ``train.D_ortho`` =
beta, paper 1e-4; 0 = off, as the public launch scripts ``--G_ortho 0.0``). Its gradient is
``4 beta (W W^T (.) (1 - I)) W``; the reference's ``utils.ortho(model, beta)`` adds
``2 beta (W W^T (.) (1 - I)) W``, **half** of it: the reference's ``--G_ortho b`` is ``G_ortho = b / 2`` here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gan_jax import losses, parallel
from gan_jax.models import from_kwargs
from gan_jax.nn.batch_norm import MOMENTS_COLLECTION
from gan_jax.nn.spectral_norm import sn_matrix
from gan_jax.recipes.base import (
    Phase,
    Recipe,
    Sampling,
    Stage,
    copy_tree,
    given_or_initial,
    plain,
)
from gan_jax.state import TrainState

Batch = Mapping[str, jax.Array]


# ----------------------------------------------------------------------------------------------
# Pieces that tests and tools use on their own.


def ortho_penalty(params: Any, beta: float, blacklist: tuple[str, ...] = ()) -> jax.Array:
    """The paper's off-diagonal orthogonal regulariser ``beta * sum_W ||W W^T (.) (1 - I)||_F^2`` over every
    parameter with >= 2 dims whose reference name does not start with a ``blacklist`` entry.

    ``jax.grad`` of it is twice the gradient that BigGAN-PyTorch's ``utils.ortho(model, beta)`` adds."""
    total = jnp.zeros((), jnp.float32)
    for path, w in flax.traverse_util.flatten_dict(flax.core.unfreeze(params)).items():
        name = ".".join(path)
        if w.ndim < 2 or any(name == b or name.startswith(b + ".") for b in blacklist):
            continue
        m = sn_matrix(w.astype(jnp.float32))
        gram = m @ m.T
        total = total + jnp.sum(jnp.square(gram * (1.0 - jnp.eye(gram.shape[0], dtype=gram.dtype))))
    return beta * total


def truncate_latents(z: jax.Array, threshold: float) -> jax.Array:
    """Map N(0, 1) draws to the normal truncated to ``[-threshold, threshold]`` (the truncation trick,
    paper sec. 4.1: values outside are re-sampled) by the inverse-CDF transform ``Phi^-1(Phi(-t) +
    Phi(z) (Phi(t) - Phi(-t)))``: monotone and deterministic, so a fixed latent grid stays fixed."""
    from jax.scipy.special import ndtr, ndtri

    t = jnp.float32(threshold)
    lo, hi = ndtr(-t), ndtr(t)
    return jnp.clip(ndtri(lo + ndtr(z.astype(jnp.float32)) * (hi - lo)), -t, t)


# The author's truncated sampler (BigGAN-PyTorch TFHub/biggan_v1.py ``truncated_z_sample``, as the
# TF-Hub BigGAN modules are sampled): ``truncation * truncnorm.rvs(-2, 2, size, RandomState(seed))``.
AUTHOR_TRUNCNORM_BOUND = 2.0


def author_truncated_z(z: jax.Array, truncation: jax.Array | float) -> jax.Array:
    """``truncation * T(z)`` with ``T`` the monotone map of N(0, 1) onto the normal truncated to [-2, 2]
    (``truncate_latents``): the author's ``truncated_z_sample`` distribution, z [N, z_dim] -> [N, z_dim].
    ``truncation >= 1`` leaves z as it is (no truncation). Traceable in ``truncation``."""
    t = jnp.asarray(truncation, jnp.float32)
    return jnp.where(t < 1, t * truncate_latents(z, AUTHOR_TRUNCNORM_BOUND), z.astype(jnp.float32))


def author_seed_latents(seeds: list[int], z_dim: int) -> np.ndarray:
    """float32 [len(seeds), z_dim] whose ``author_truncated_z(., psi)`` is, row by row, the author's
    ``truncated_z_sample(1, z_dim, psi, seed)``: scipy's ``truncnorm.rvs`` draws ``RandomState(seed)
    .uniform`` and returns ``truncnorm.ppf(u)``, so row i is ``Phi^-1(u)`` of seed i's uniforms."""
    from scipy.special import ndtri  # noqa: PLC0415

    u = np.concatenate([np.random.RandomState(s).uniform(size=(1, z_dim)) for s in seeds])
    return ndtri(u).astype(np.float32)


def sample_latents(key: jax.Array, n: int, z_dim: int, truncation: float = 0.0) -> jax.Array:
    """z [n, z_dim]: N(0, 1), or the normal truncated to ``[-truncation, truncation]`` when > 0."""
    if truncation and truncation > 0:
        return jax.random.truncated_normal(key, -truncation, truncation, (n, z_dim), jnp.float32)
    return jax.random.normal(key, (n, z_dim), jnp.float32)


def labels_from_batch(c: jax.Array | None, n: int) -> jax.Array:
    """Integer classes [n] from one-hot (or soft) labels [n, c_dim]; zeros when the data has none."""
    if c is None or c.ndim != 2 or c.shape[-1] == 0:
        return jnp.zeros((n,), jnp.int32)
    return jnp.argmax(c, axis=-1).astype(jnp.int32)


def generate(G: Any, g_params, g_cols: dict, z: jax.Array, y: jax.Array) -> tuple[jax.Array, dict]:
    """Train-mode G: images [N, R, R, 3] and the updated ``sn`` / ``batch_stats`` collections."""
    img, cols = G.apply({"params": g_params, **g_cols}, z, y, train=True, mutable=list(g_cols))
    return img, {**g_cols, **cols}


def discriminate(D: Any, d_params, d_cols: dict, x: jax.Array, y: jax.Array) -> tuple[jax.Array, dict]:
    """Train-mode D: logits [N, 1] and the updated ``sn`` collection."""
    logits, cols = D.apply({"params": d_params, **d_cols}, x, y, train=True, mutable=list(d_cols))
    return logits, {**d_cols, **cols}


def discriminator_loss(D: Any, d_params, d_cols: dict, fake: jax.Array, y_fake: jax.Array, real: jax.Array,
                       y_real: jax.Array, scale: float = 1.0) -> tuple[jax.Array, tuple[dict, dict]]:
    """The hinge loss of one D micro-batch, D run once on ``[fake, real]`` (``G_D`` with split_D=False):
    ``(loss * scale, (updated D collections, metrics))``; fakes [N, R, R, 3], classes int [N]."""
    logits, d_cols = discriminate(D, d_params, d_cols, jnp.concatenate([fake, real]), jnp.concatenate([y_fake, y_real]))
    d_fake, d_real = logits[: fake.shape[0]], logits[fake.shape[0]:]
    loss_real, loss_fake = losses.hinge_d(d_real, d_fake)
    metrics = {"Loss/D/loss_real": loss_real, "Loss/D/loss_fake": loss_fake, "Loss/D/loss": loss_real + loss_fake,
               "Loss/scores/real": jnp.mean(d_real), "Loss/scores/fake": jnp.mean(d_fake)}
    return (loss_real + loss_fake) * scale, (d_cols, metrics)


def generator_loss(G: Any, D: Any, g_params, g_cols: dict, d_params, d_cols: dict, z: jax.Array, y: jax.Array,
                   scale: float = 1.0) -> tuple[jax.Array, tuple[dict, dict, dict]]:
    """``-mean(D(G(z, y), y))`` with G and D in train mode: ``(loss * scale, (G cols, D cols, metrics))``."""
    fake, g_cols = generate(G, g_params, g_cols, z, y)
    logits, d_cols = discriminate(D, d_params, d_cols, fake, y)
    loss = losses.hinge_g(logits)
    return loss * scale, (g_cols, d_cols, {"Loss/G/loss": loss, "Loss/scores/fake": jnp.mean(logits)})


def build_networks(config: ml_collections.ConfigDict) -> tuple[Any, Any]:
    """G and D from ``config.model.G`` / ``config.model.D`` (the reference's constructor keywords, with
    ``z_dim`` for ``dim_z``), ``data.resolution`` and ``model.c_dim`` classes (1 when 0)."""
    m, d = config.model, config.data
    if int(d.get("channels", 3)) != 3:
        raise ValueError(f"BigGAN makes and reads RGB images (3 channels); the dataset has {d.channels}")
    g = plain(m.G)
    if "z_dim" in g:
        g["dim_z"] = g.pop("z_dim")
    common = {"resolution": int(d.resolution), "n_classes": max(int(m.c_dim), 1)}
    return from_kwargs.biggan_networks_from_kwargs({**g, **common}, {**plain(m.D), **common},
                                                   dtype=jnp.dtype(m.get("dtype", "float32")))


def _collections(variables: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in variables.items() if k not in ("params", "intermediates", MOMENTS_COLLECTION)}


class BigGAN(Recipe):
    """The author's BigGAN training: networks, optimizers and batch plan of one config."""

    kwargs_sections = ("model.G", "model.D")

    def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None, *,
                 num_shards: int | None = None):
        # Without a mesh (shapes, tools) one shard: nothing is placed on devices.
        super().__init__(config, mesh, num_shards=num_shards or (None if mesh is not None else 1))
        t = config.train
        self.batch_size = int(t.batch_size)
        self.num_D_steps = int(t.num_D_steps)
        self.d_acc, self.g_acc = int(t.num_D_accumulations), int(t.num_G_accumulations)
        if self.num_D_steps < 1 or self.d_acc < 1 or self.g_acc < 1:
            raise ValueError("train.num_D_steps, num_D_accumulations and num_G_accumulations must be >= 1")
        per_step, rem = divmod(self.batch_size, self.num_D_steps)
        if rem:
            raise ValueError(f"train.batch_size={self.batch_size} (real images per iteration) must be a multiple of "
                             f"train.num_D_steps={self.num_D_steps}")
        if t.get("D_batch_size") is not None and int(t.D_batch_size) != per_step:
            raise ValueError(f"train.D_batch_size={t.D_batch_size} but train.batch_size / num_D_steps = {per_step}; "
                             "set one of them")
        unit = self.num_shards * self.d_acc
        if per_step % unit:
            raise ValueError(f"the D-step batch {per_step} must be a multiple of num_D_accumulations x devices = {unit}")
        self.d_micro = per_step // self.d_acc
        self.g_batch = int(t.get("G_batch_size") or per_step)
        if self.g_batch % (self.num_shards * self.g_acc):
            raise ValueError(f"train.G_batch_size={self.g_batch} must be a multiple of num_G_accumulations x devices = "
                             f"{self.num_shards * self.g_acc}")
        self.g_micro = self.g_batch // self.g_acc
        self.G, self.D = build_networks(config)
        self.n_classes = self.G.n_classes
        self.opt = {
            "G": optax.adam(float(t.G_lr), b1=float(t.G_B1), b2=float(t.G_B2), eps=float(t.adam_eps)),
            "D": optax.adam(float(t.D_lr), b1=float(t.D_B1), b2=float(t.D_B2), eps=float(t.adam_eps)),
        }
        self.G_ortho, self.D_ortho = float(t.G_ortho), float(t.D_ortho)
        self.ema_decay, self.ema_start = float(t.ema_decay), int(t.ema_start)
        s = config.get("sample", ml_collections.ConfigDict())
        self.truncation = float(s.get("truncation", 0.0) or 0.0)
        self.G_eval_mode = bool(s.get("G_eval_mode", True))
        self.num_standing = int(s.get("num_standing_accumulations", 0) or 0)

    # -- state ----------------------------------------------------------------------------------

    def init_variables(self, rng: jax.Array) -> tuple[dict, dict]:
        kg, kd = jax.random.split(rng)
        y = jnp.zeros((1,), jnp.int32)
        r = self.D.resolution
        g_vars = self.G.init({"params": kg}, jnp.zeros((1, self.z_dim), jnp.float32), y)
        d_vars = self.D.init({"params": kd}, jnp.zeros((1, r, r, 3), jnp.float32), y)
        return dict(g_vars), dict(d_vars)

    def create_state(self, rng: jax.Array, g_vars: dict | None = None, d_vars: dict | None = None,
                     g_ema_vars: dict | None = None) -> TrainState:
        """A fresh state: networks from ``rng`` (or the given variables, e.g. ``biggan_from_torch``'s)."""
        init_rng, run_rng = jax.random.split(rng)
        g_vars, d_vars, g_ema_vars = given_or_initial(self.init_variables, init_rng, g_vars, d_vars, g_ema_vars)
        extra = {"G": _collections(g_vars), "D": _collections(d_vars), "G_ema": copy_tree(_collections(g_ema_vars))}
        return self.new_state(run_rng, {"G": g_vars["params"], "D": d_vars["params"]}, self.opt, extra,
                              ema_params={"G": g_ema_vars["params"]})

    # -- batches ----------------------------------------------------------------------------------

    def _shard(self, x: jax.Array) -> jax.Array:
        if self.mesh is None or self.mesh.devices.size == 1:
            return x
        return jax.lax.with_sharding_constraint(x, parallel.data_sharded(self.mesh))

    def real_micro_batches(self, batch: Batch, d_step: int) -> tuple[jax.Array, jax.Array]:
        """Images float [A, m, R, R, 3] in [-1, 1] and classes int [A, m] of D step ``d_step``: each
        micro-batch takes the same number of rows from every device's shard (no data movement)."""
        s, k, a = self.num_shards, self.num_D_steps, self.d_acc
        img = batch["image"]
        n = img.shape[0]
        if n != self.batch_size:
            raise ValueError(f"BigGAN expects a batch of train.batch_size={self.batch_size} images, got {n}")
        b = n // (s * k * a)
        labels = labels_from_batch(batch.get("label"), n)

        def split(x):
            x = x.reshape(s, k, a, b, *x.shape[1:])[:, d_step]
            return jnp.swapaxes(x, 0, 1).reshape(a, s * b, *x.shape[3:])

        return split(img).astype(jnp.float32) / 127.5 - 1.0, split(labels)

    def draw(self, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
        """The G inputs of one micro-batch: z ~ N(0, 1) [n, z_dim] and uniform classes [n] (``prepare_z_y``)."""
        kz, ky = jax.random.split(key)
        z = jax.random.normal(kz, (n, self.z_dim), jnp.float32)
        y = jax.random.randint(ky, (n,), 0, self.n_classes, jnp.int32)
        return self._shard(z), self._shard(y)

    # -- networks in train mode ---------------------------------------------------------------------

    def generate(self, g_params, g_cols, z, y):
        return generate(self.G, g_params, g_cols, z, y)

    def d_loss(self, d_params, d_cols, fake, y_fake, real, y_real, scale: float = 1.0):
        return discriminator_loss(self.D, d_params, d_cols, fake, y_fake, real, y_real, scale)

    def g_loss(self, g_params, g_cols, d_params, d_cols, z, y, scale: float = 1.0):
        return generator_loss(self.G, self.D, g_params, g_cols, d_params, d_cols, z, y, scale)

    # -- steps ------------------------------------------------------------------------------------

    def d_step(self, state: TrainState, batch: Batch, key: jax.Array, d_step: int) -> tuple[TrainState, dict]:
        reals, real_y = self.real_micro_batches(batch, d_step)
        g_params, d_params = state.params["G"], state.params["D"]

        def micro(carry, xs):
            g_cols, d_cols, grads = carry
            real, y_real, k = xs
            z, y_fake = self.draw(k, self.d_micro)
            fake, g_cols = self.generate(g_params, g_cols, z, y_fake)
            g, (d_cols, m) = jax.grad(self.d_loss, has_aux=True)(d_params, d_cols, jax.lax.stop_gradient(fake), y_fake,
                                                                 real, y_real, 1.0 / self.d_acc)
            return (g_cols, d_cols, jax.tree.map(jnp.add, grads, g)), m

        zeros = jax.tree.map(jnp.zeros_like, d_params)
        keys = jax.random.split(key, self.d_acc)
        (g_cols, d_cols, grads), m = jax.lax.scan(micro, (state.extra["G"], state.extra["D"], zeros), (reals, real_y, keys))
        if self.D_ortho > 0:
            grads = jax.tree.map(jnp.add, grads, jax.grad(ortho_penalty)(d_params, self.D_ortho))
        state = self.apply_grads(state, "D", self.opt["D"], grads)
        state = state.replace(extra={**state.extra, "G": g_cols, "D": d_cols})
        return state, {f"Dmain/{k}": jnp.mean(v) for k, v in m.items()}

    def g_step(self, state: TrainState, batch: Batch, key: jax.Array) -> tuple[TrainState, dict]:
        g_params, d_params = state.params["G"], state.params["D"]

        def micro(carry, k):
            g_cols, d_cols, grads = carry
            z, y = self.draw(k, self.g_micro)
            g, (g_cols, d_cols, m) = jax.grad(self.g_loss, has_aux=True)(g_params, g_cols, d_params, d_cols, z, y,
                                                                         1.0 / self.g_acc)
            return (g_cols, d_cols, jax.tree.map(jnp.add, grads, g)), m

        zeros = jax.tree.map(jnp.zeros_like, g_params)
        keys = jax.random.split(key, self.g_acc)
        (g_cols, d_cols, grads), m = jax.lax.scan(micro, (state.extra["G"], state.extra["D"], zeros), keys)
        if self.G_ortho > 0:  # train_fns: G.shared is blacklisted
            grads = jax.tree.map(jnp.add, grads, jax.grad(ortho_penalty)(g_params, self.G_ortho, ("shared",)))
        state = self.apply_grads(state, "G", self.opt["G"], grads)
        state = state.replace(extra={**state.extra, "G": g_cols, "D": d_cols})
        return state, {f"Gmain/{k}": jnp.mean(v) for k, v in m.items()}

    def ema_decay_at(self, step: jax.Array) -> jax.Array:
        """``utils.ema.update(itr)``: 0 (copy) while the iteration ``itr = step + 1 < ema_start``, else the decay."""
        return jnp.where(step + 1 < self.ema_start, 0.0, self.ema_decay).astype(jnp.float32)

    def ema_update(self, state: TrainState) -> tuple[TrainState, dict]:
        decay = self.ema_decay_at(state.step)
        lerp = lambda e, s: e * decay + s * (1 - decay)
        ema = jax.tree.map(lerp, state.ema_params["G"], state.params["G"])
        ema_cols = jax.tree.map(lerp, state.extra["G_ema"], state.extra["G"])
        return (state.replace(ema_params={**state.ema_params, "G": ema}, extra={**state.extra, "G_ema": ema_cols}),
                {"Gema/Progress/ema_decay": decay})

    def phases(self, stage: Stage | None = None) -> list[Phase]:
        """``num_D_steps`` D steps (Dmain0, Dmain1, ...), Gmain and Gema, all in every iteration."""
        table = [Phase(f"Dmain{i}", 1, functools.partial(self._d_phase, i)) for i in range(self.num_D_steps)]
        table.append(Phase("Gmain", 1, self.g_step))
        table.append(Phase("Gema", 1, lambda state, batch, key: self.ema_update(state)))
        return table

    def _d_phase(self, i: int, state, batch, key):
        return self.d_step(state, batch, key, i)

    # -- sampling -----------------------------------------------------------------------------------

    def standing_stats(self, variables: dict, key: jax.Array, n: int, num: int) -> dict:
        """``utils.accumulate_standing_stats``: BN statistics averaged over ``num`` train-mode forwards of
        ``n`` fresh (z, y) each (mean of the batch means and biased variances, as ``myBN``); the SN u's
        are not advanced. Returns ``variables`` with these statistics as ``batch_stats``."""
        def one(k):
            z, y = self.draw(k, n)
            _, st = self.G.apply(variables, z, y, train=True, mutable=[MOMENTS_COLLECTION])
            return jax.tree.map(lambda t: t[0] if isinstance(t, tuple) else t, st[MOMENTS_COLLECTION],
                                is_leaf=lambda t: isinstance(t, tuple))
        moments = jax.lax.map(one, jax.random.split(key, num))
        flat = flax.traverse_util.flatten_dict(moments)
        stats = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables["batch_stats"]))
        for path, value in flat.items():
            stats[(*path[:-1], "stored_mean" if path[-1] == "mean" else "stored_var")] = jnp.mean(value, axis=0)
        return {**variables, "batch_stats": flax.traverse_util.unflatten_dict(stats)}

    def sample(self, state: TrainState, z: jax.Array, c: jax.Array | None = None, truncation: float | None = None,
               key: jax.Array | None = None) -> jax.Array:
        """G_ema images [N, R, R, 3] in [-1, 1] for z [N, >= z_dim] (first ``z_dim`` columns used, as
        the reference's hier truncation of dim_z) and one-hot labels c [N, c_dim] (or None).

        ``truncation`` (default ``sample.truncation``; 0 = off) maps z to the truncated normal
        (``truncate_latents``). ``sample.G_eval_mode`` (the launch scripts' ``--G_eval_mode``) samples
        with stored BN statistics, otherwise with the batch's; ``sample.num_standing_accumulations > 0``
        first replaces them by standing statistics."""
        if z.ndim != 2 or z.shape[1] < self.z_dim:
            raise ValueError(f"BigGAN sampling expects z of shape [N, >= {self.z_dim}], got {tuple(z.shape)}")
        n = z.shape[0]
        z = z[:, : self.z_dim].astype(jnp.float32)
        t = self.truncation if truncation is None else truncation
        if t and t > 0:
            z = truncate_latents(z, t)
        variables = {"params": state.ema_params["G"], **state.extra["G_ema"]}
        if self.num_standing > 0 and "batch_stats" in variables:
            variables = self.standing_stats(variables, jax.random.fold_in(key if key is not None else jax.random.PRNGKey(0), 1),
                                            n, self.num_standing)
        return self.G.apply(variables, z, labels_from_batch(c, n), train=not self.G_eval_mode)

    @property
    def c_dim(self) -> int:
        """The data's one-hot label width ``model.c_dim`` (G has ``max(c_dim, 1)`` classes)."""
        return int(self.config.model.c_dim)

    def sampling(self) -> Sampling:
        """G_ema as ``gan_jax.sample`` uses it. BigGAN has no mapping network: ``mapping`` packs
        ``[z', c]`` and ``synthesis`` is the generator. ``psi < 1`` (``--trunc``) is the author's
        truncation: ``z' = psi * truncnorm(-2, 2)`` (``author_truncated_z``; with ``seed_latents``'
        latents, the author's ``truncated_z_sample(1, dim_z, psi, seed)`` exactly); ``psi = 1`` keeps
        the config's ``sample.truncation`` (a threshold, 0 = off), as training samples."""
        c_dim, threshold = self.c_dim, self.truncation

        def mapping(state, z, c=None, psi=1.0):
            z = z[:, : self.z_dim].astype(jnp.float32)
            plain = truncate_latents(z, threshold) if threshold > 0 else z
            z = jnp.where(jnp.asarray(psi) < 1, author_truncated_z(z, psi), plain)
            return z if c is None else jnp.concatenate([z, c.astype(z.dtype)], axis=1)

        def synthesis(state, w, key, noise_mode="const"):
            z, c = (w, None) if not c_dim else (w[:, :-c_dim], w[:, -c_dim:])
            return self.sample(state, z, c, truncation=0.0, key=key)  # mapping truncated z

        return Sampling(z_dim=self.z_dim, c_dim=c_dim, mapping=mapping, synthesis=synthesis, num_ws=None,
                        truncation=True)

    def seed_latents(self, seeds: list[int], psi: float = 1.0) -> np.ndarray:
        """z [len(seeds), z_dim] of ``gan_jax.sample``'s seeds: ``RandomState(seed).randn`` (NVIDIA's
        rule) at ``psi >= 1``; below, the author's uniforms (``author_seed_latents``) so that ``mapping``
        gives the author's ``truncated_z_sample`` for each seed."""
        return author_seed_latents(seeds, self.z_dim) if psi < 1 else super().seed_latents(seeds, psi)

    @classmethod
    def default_config(cls) -> ml_collections.ConfigDict:
        from gan_jax.configs import biggan_common  # noqa: PLC0415 (configs import only ml_collections)

        return biggan_common.biggan()


def param_counts(config: ml_collections.ConfigDict) -> dict[str, int]:
    """Trainable parameters of G and D (``jax.eval_shape``: nothing is computed)."""
    r = BigGAN(config)
    g, d = jax.eval_shape(lambda: r.init_variables(jax.random.PRNGKey(0)))
    count = lambda v: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(v["params"]))
    return {"G": count(g), "D": count(d)}
