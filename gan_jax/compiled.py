"""Compiled programs of a run: the train step per set of active phases, the initial state, and a
bounded cache that lets an in-process resume (or a test) reuse them."""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax

from gan_jax import parallel
from gan_jax.recipes.base import Phase, Recipe
from gan_jax.state import TrainState


class NonFiniteLoss(FloatingPointError):
    """A loss or regulariser became NaN or Inf; training stopped without saving."""


class ProgramCache(collections.OrderedDict):
    """Compiled programs keyed by what defines them; only the ``limit`` most recently used are kept.

    They outlive one ``train()`` call (an in-process resume, tests). Each XLA:CPU executable holds
    its machine code in memory mappings of its own, so a long-lived process that kept every program
    (a notebook sweeping configs) would pass Linux's ``vm.max_map_count`` (65530 by default) and
    abort inside LLVM ("Cannot allocate memory").
    """

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def __getitem__(self, key):
        value = super().__getitem__(key)
        self.move_to_end(key)
        return value

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]


# One run compiles a dozen programs or fewer (a growing family: one step per resolution, up to 9, plus
# init and the two samplers), so 32 keeps a run and an in-process resume of it.
PROGRAMS = ProgramCache(limit=32)


class CompiledSteps:
    """``step(state, batch, step_index)``: the phases active at ``step_index``, compiled once per set.

    ``cache_key`` (e.g. the config's JSON) identifies the phases' computation, so that another
    ``CompiledSteps`` of the same config and mesh reuses the executables.
    """

    def __init__(self, phases: Sequence[Phase], mesh: jax.sharding.Mesh, global_batch: int, cache_key: Any = None):
        self.phases = list(phases)
        self.mesh = mesh
        self.global_batch = global_batch
        self._compiled: dict[tuple[str, ...], Callable] = {}
        self.compile_seconds: dict[tuple[str, ...], float] = {}
        self.just_compiled: tuple[str, float] | None = None  # ('Gmain+Dmain', seconds) after a call that compiled
        self._cache_key = None if cache_key is None else (cache_key, mesh_key(mesh), global_batch)

    def active(self, step: int) -> tuple[Phase, ...]:
        return tuple(p for p in self.phases if step % p.interval == 0)

    def is_compiled(self, step: int) -> bool:
        return tuple(p.name for p in self.active(step)) in self._compiled

    def _build(self, active: tuple[Phase, ...]) -> Callable:
        index = {p.name: i for i, p in enumerate(self.phases)}

        def step_fn(state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict[str, jax.Array]]:
            key = jax.random.fold_in(state.rng, state.step)
            metrics: dict[str, jax.Array] = {}
            for phase in active:
                state, m = phase.fn(state, batch, jax.random.fold_in(key, index[phase.name]))
                metrics.update(m)
            state = state.replace(step=state.step + 1, images_seen=state.images_seen + self.global_batch)
            return state, metrics

        return jax.jit(step_fn, donate_argnums=0,
                       in_shardings=(parallel.replicated(self.mesh), parallel.data_sharded(self.mesh)),
                       out_shardings=(parallel.replicated(self.mesh), parallel.replicated(self.mesh)))

    def __call__(self, state: TrainState, batch: dict[str, jax.Array], step: int):
        active = self.active(step)
        names = tuple(p.name for p in active)
        self.just_compiled = None
        if names not in self._compiled:
            key = None if self._cache_key is None else (*self._cache_key, names)
            t0 = time.perf_counter()
            if key is not None and key in PROGRAMS:
                self._compiled[names] = PROGRAMS[key]
            else:
                self._compiled[names] = self._build(active).lower(state, batch).compile()
                if key is not None:
                    PROGRAMS[key] = self._compiled[names]
            self.compile_seconds[names] = time.perf_counter() - t0
            self.just_compiled = ("+".join(names), self.compile_seconds[names])
        return self._compiled[names](state, batch)


def mesh_key(mesh: jax.sharding.Mesh) -> tuple[int, ...]:
    return tuple(d.id for d in mesh.devices.flat)


def cached_jit(key: Hashable, fn: Callable, **jit_kwargs: Any) -> Callable:
    """``jax.jit(fn, **jit_kwargs)``, shared with every later call of the same ``key`` (kept in PROGRAMS)."""
    return PROGRAMS.setdefault(key, jax.jit(fn, **jit_kwargs))


def initial_state(recipe: Recipe, mesh: jax.sharding.Mesh) -> TrainState:
    """The recipe's fresh state from ``config.seed``, replicated on ``mesh``, made by one compiled program.

    Op by op, initialising the networks compiles each of their few hundred operations (about 12 s
    of a 40 s tiny run on a CPU); under ``jit`` it is one program. A recipe whose ``create_state``
    cannot be traced (it reads values on the host) is run op by op instead.
    """
    config = recipe.config
    rng = jax.random.PRNGKey(int(config.seed))
    key = ("init", config.to_json(), mesh_key(mesh))
    try:
        return cached_jit(key, recipe.create_state, out_shardings=parallel.replicated(mesh))(rng)
    except jax.errors.JAXTypeError:  # ConcretizationTypeError, TracerBoolConversionError, ...
        PROGRAMS.pop(key, None)
        return parallel.replicate(recipe.create_state(rng), mesh)


def check_finite(step: int, metrics: dict[str, Any]) -> dict[str, float]:
    """Host copies of ``metrics``; raises ``NonFiniteLoss`` naming the step and the loss."""
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    bad = sorted(k for k, v in values.items() if not math.isfinite(v))
    if bad:
        raise NonFiniteLoss(f"step {step}: {', '.join(f'{k}={values[k]}' for k in bad)} is not finite")
    return values
