"""The recipe interface: what the training loop and the tools need of a GAN family.

A recipe is a subclass of :class:`Recipe`, constructed as ``Recipe(config, mesh)`` (``mesh`` may be
None, e.g. to inspect shapes). It must define three methods:

- ``create_state(rng) -> TrainState``: networks, variables, optimizer states, extra collections.
- ``phases(stage) -> list[Phase]``: the pure ``(state, batch, key) -> (state, metrics)`` functions
  of one training step and how often each runs (``step % interval == 0``).
- ``sample(state, z [N, z_dim], c [N, c_dim] | None) -> images [N, H, W, C]`` in about [-1, 1]:
  G_ema for sample grids and FID.

and may override, where the defaults do not fit:

- ``stages() -> list[Stage]``: default one stage of ``config.train.batch_size`` images a step.
  Progressive growing has one per level of detail, each with its own batch and compiled program.
- ``enter_stage(state, stage) -> state``: applied before the first step of a stage (default: none).
- ``sampling() -> Sampling``: the generator as ``gan_jax.sample`` splits it (latents -> styles ->
  images); the default has no mapping network (``[z, c]`` goes to ``sample``).
- ``transfer_state(rng, source_state) -> TrainState``: step 0 from another run's networks (``config.resume``).
- ``seed_latents(seeds, psi) -> z``: the latents ``gan_jax.sample`` gives each seed (NVIDIA's rule).
- ``console(means) -> str``: the part of the progress line this recipe wants to show.
- ``default_config()`` (classmethod): the family's defaults; a config that sets a field outside them
  (and outside ``kwargs_sections``, the upstream constructor keywords that the networks check
  themselves) is refused by name. Default None: no check.

``config.recipe`` names a family (``stylegan2``, a module of ``gan_jax.recipes``) or the dotted path of a
module of your own that defines one ``Recipe`` subclass (``my_lab.dcgan``, or ``my_lab.dcgan:DCGAN``):
see ``docs/recipes.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gan_jax.state import TrainState

PhaseFn = Callable[[TrainState, dict[str, jax.Array], jax.Array], tuple[TrainState, dict[str, jax.Array]]]
REQUIRED_METHODS = ("create_state", "phases", "sample")


@dataclasses.dataclass(frozen=True)
class Phase:
    """One optimisation phase: runs at iteration ``step`` when ``step % interval == 0``.

    ``fn(state, batch, key) -> (state, metrics)`` is pure; ``batch`` holds global arrays
    (``image`` uint8 [N, H, W, C], optional ``label`` float32 [N, c_dim]); ``metrics`` are scalars.
    """

    name: str
    interval: int
    fn: PhaseFn


@dataclasses.dataclass(frozen=True)
class Sampling:
    """A family's generator as ``gan_jax.sample`` uses it: pure functions of the train state (G_ema).

    ``mapping(state, z [N, z_dim], c [N, c_dim] | None, psi) -> w``: whatever ``synthesis`` takes
    (StyleGAN: ws ``[N, num_ws, w_dim]``, truncated towards the average by ``psi``; a family without
    a mapping returns ``z`` and sets ``truncation=False``). ``c`` is one-hot float, as the data's labels.
    ``synthesis(state, w, key, noise_mode) -> images [N, H, W, C]`` in about [-1, 1]; ``noise_mode``
    ('const' | 'random' | 'none') is static. ``num_ws`` is the number of style inputs that style mixing
    may exchange (``None``: the family has none).
    """

    z_dim: int
    c_dim: int
    mapping: Callable[..., jax.Array]
    synthesis: Callable[..., jax.Array]
    num_ws: int | None = None
    truncation: bool = True


@dataclasses.dataclass(frozen=True)
class Stage:
    """A stretch of training with one batch size and one compiled program.

    ``start_images``: images seen when it starts; ``batch_size``: its global batch; ``program``:
    stages with equal values share their compiled steps (ProGAN: the resolution).
    """

    name: str
    start_images: int
    batch_size: int
    program: Hashable = None


def plain(section: Any) -> dict[str, Any]:
    """A config section (ConfigDict, mapping or None) as a plain dict, e.g. constructor keywords."""
    if section is None:
        return {}
    return section.to_dict() if isinstance(section, ml_collections.ConfigDict) else dict(section)


def prefixed(prefix: str, metrics: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """``{f'{prefix}/{name}': value}``: a phase's metrics under its name (TensorBoard groups)."""
    return {f"{prefix}/{k}": v for k, v in metrics.items()}


def copy_tree(tree: Any) -> Any:
    """A copy of every array of ``tree`` (G_ema starts as a copy of G, not an alias of it)."""
    return jax.tree.map(jnp.array, tree)


def given_or_initial(init_variables: Callable[[jax.Array], tuple[dict, dict]], rng: jax.Array, g_vars: dict | None,
                     d_vars: dict | None, g_ema_vars: dict | None) -> tuple[dict, dict, dict]:
    """``(G, D, G_ema)`` variables: the given ones (e.g. converted weights), else ``init_variables(rng)``'s;
    G_ema starts as G."""
    if g_vars is None or d_vars is None:
        g_init, d_init = init_variables(rng)
        g_vars, d_vars = g_vars or g_init, d_vars or d_init
    return g_vars, d_vars, g_ema_vars or g_vars


class Recipe:
    """Base class of the training recipes; see the module docstring for the interface.

    ``num_shards`` is the number of data shards the batch is split in for per-device statistics
    (minibatch stddev groups, per-device random draws): ``config.train.num_shards`` if set (so that a
    1-device run can reproduce an 8-device one), else the argument, else the mesh's devices, else
    every device.
    """

    kwargs_sections: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None, *,
                 num_shards: int | None = None):
        self.config = config
        self.mesh = mesh
        train = config.get("train") or {}
        self.num_shards = int(train.get("num_shards") or num_shards
                              or (mesh.devices.size if mesh is not None else jax.device_count()))

    # -- required ---------------------------------------------------------------------------------

    def create_state(self, rng: jax.Array) -> TrainState:
        """A fresh train state (unreplicated) from ``rng``."""
        raise NotImplementedError(f"{type(self).__name__} must define create_state(rng)")

    def phases(self, stage: Stage) -> list[Phase]:
        """The phases of one step of ``stage``, in order."""
        raise NotImplementedError(f"{type(self).__name__} must define phases(stage)")

    def sample(self, state: TrainState, z: jax.Array, c: jax.Array | None = None) -> jax.Array:
        """G_ema images [N, H, W, C] for latents z [N, z_dim] and one-hot labels c [N, c_dim] or None."""
        raise NotImplementedError(f"{type(self).__name__} must define sample(state, z, c)")

    # -- defaults ---------------------------------------------------------------------------------

    @property
    def z_dim(self) -> int:
        """Width of the latents ``sample`` takes: the generator's ``self.G.z_dim`` where the recipe has one,
        else ``config.model.G.z_dim``."""
        return int(getattr(getattr(self, "G", None), "z_dim", None) or self.config.model.G.z_dim)

    @property
    def c_dim(self) -> int:
        """Width of the one-hot labels (0: unconditional): ``self.G.c_dim`` where the recipe's generator
        has one, else ``config.model.c_dim``."""
        c_dim = getattr(getattr(self, "G", None), "c_dim", None)
        return int(c_dim if c_dim is not None else (self.config.model.get("c_dim", 0) or 0))

    def stages(self) -> list[Stage]:
        """One stage of ``config.train.batch_size`` images per step."""
        return [Stage("main", 0, int(self.config.train.batch_size))]

    def enter_stage(self, state: TrainState, stage: Stage) -> TrainState:
        """Applied just before the first step of ``stage`` (also when a resume lands exactly there)."""
        return state

    def transfer_state(self, rng: jax.Array, source: TrainState) -> TrainState:
        """Step 0 of a run that starts from the networks of ``source`` (another run's state) with fresh
        optimizers: ``config.resume``, NVIDIA's ``--resume`` (transfer learning)."""
        raise NotImplementedError(f"{type(self).__name__} cannot start from another run's networks (config.resume)")

    def sampling(self) -> Sampling:
        """A generator without a mapping network: ``w = [z, c]``, ``synthesis(w) = sample(z, c)``."""
        z_dim, c_dim = self.z_dim, self.c_dim

        def mapping(state, z, c=None, psi=1.0):
            return jnp.concatenate([z, c.astype(z.dtype)], axis=1) if c_dim else z

        def synthesis(state, w, key=None, noise_mode="const"):
            return self.sample(state, w[:, :z_dim], w[:, z_dim:] if c_dim else None)

        return Sampling(z_dim=z_dim, c_dim=c_dim, mapping=mapping, synthesis=synthesis, num_ws=None, truncation=False)

    def seed_latents(self, seeds: list[int], psi: float = 1.0) -> np.ndarray:
        """float32 [len(seeds), z_dim], the latents ``gan_jax.sample`` gives seed ``s``: row i is
        ``RandomState(seeds[i]).randn(1, z_dim)`` (NVIDIA's ``generate.py``). A family whose truncation
        draws its own latents (BigGAN: the author's ``truncated_z_sample``) overrides it."""
        return np.concatenate([np.random.RandomState(s).randn(1, self.z_dim) for s in seeds]).astype(np.float32)

    def console(self, means: Mapping[str, float]) -> str:
        """The recipe's part of the progress line: every loss and penalty, as ``phase/name=value``."""
        return " ".join(f"{k.split('/', 1)[0]}/{k.rsplit('/', 1)[-1]}={v:.3f}" for k, v in means.items()
                        if "/" in k and any(w in k.rsplit("/", 1)[-1] for w in ("loss", "penalty")))

    @classmethod
    def default_config(cls) -> ml_collections.ConfigDict | None:
        """The family's default config: every field a config of this recipe may set. None: unchecked."""
        return None

    # -- helpers for subclasses ---------------------------------------------------------------------

    @staticmethod
    def new_state(rng: jax.Array, params: dict[str, Any], opt: Mapping[str, optax.GradientTransformation],
                  extra: dict[str, Any], ema: tuple[str, ...] = ("G",), ema_params: dict[str, Any] | None = None
                  ) -> TrainState:
        """Step 0: ``params`` per network, an optimizer state per network of ``opt``, EMA copies of the
        networks in ``ema`` (or the given ``ema_params``), ``extra`` collections and the run key."""
        ema_params = ema_params if ema_params is not None else {k: params[k] for k in ema}
        return TrainState(step=jnp.zeros((), jnp.int32), images_seen=jnp.zeros((), jnp.int32), params=params,
                          ema_params=copy_tree(ema_params), opt_state={k: tx.init(params[k]) for k, tx in opt.items()},
                          extra=extra, rng=rng)

    @staticmethod
    def apply_grads(state: TrainState, net: str, opt: optax.GradientTransformation, grads: Any) -> TrainState:
        """One optimizer step of network ``net`` from ``grads``."""
        updates, opt_state = opt.update(grads, state.opt_state[net], state.params[net])
        params = optax.apply_updates(state.params[net], updates)
        return state.replace(params={**state.params, net: params}, opt_state={**state.opt_state, net: opt_state})
