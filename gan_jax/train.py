"""The generic training loop: data -> compiled step -> metrics, samples, checkpoints, FID.

It knows no family: the recipe (``gan_jax.recipes``) supplies the state, the stages, the phases of a
step, the sampler and its part of the console line. One ``jax.jit`` step is compiled per stage program
and set of active phases, with the state donated; the step never returns to the host between phases.
The metrics of step ``s`` are checked for NaN while step ``s + 1`` runs, so the check costs no stall.
Every ``*_every_kimg`` counts the images seen since the start of training (``gan_jax.cadence``).
"""

from __future__ import annotations

import collections
import os
import time

import jax
import ml_collections

from gan_jax import checkpoint as checkpoint_lib
from gan_jax import data as data_lib
from gan_jax import parallel, recipes
from gan_jax.cadence import Cadence
from gan_jax.compiled import PROGRAMS, CompiledSteps, NonFiniteLoss, ProgramCache, check_finite, initial_state
from gan_jax.console import Logger, Progress
from gan_jax.grids import SampleGrids
from gan_jax.metrics import evaluation
from gan_jax.preemption import StopRequest
from gan_jax.run_config import open_dataset, resolve_config
from gan_jax.state import TrainState

__all__ = ["PROGRAMS", "CompiledSteps", "NonFiniteLoss", "ProgramCache", "check_finite", "open_dataset",
           "resolve_config", "train"]


class _StageInput:
    """The batches and compiled steps of the stage that holds a step; a new stage opens new ones."""

    def __init__(self, recipe: recipes.Recipe, plan: recipes.StagePlan, mesh: jax.sharding.Mesh, source):
        self.recipe, self.plan, self.mesh, self.source = recipe, plan, mesh, source
        self.index, self.batches = -1, None
        self._steps: dict = {}
        # Device prefetch: the batches of the next steps, already placed on the devices (2: the current and the next).
        self.ahead: collections.deque = collections.deque()
        self.data_wait = 0.0  # seconds the last next_batch() waited for the host pipeline and the placement

    def enter(self, step: int) -> bool:
        """Make ``step``'s stage current; True when it changed (then ``stage``, ``steps``, ``batches`` are new)."""
        if self.plan.index_at(step) == self.index:
            return False
        self.close()
        self.index = self.plan.index_at(step)
        self.stage, self.start = self.plan.stages[self.index], self.plan.start_steps[self.index]
        self.end = self.plan.start_steps[self.index + 1] if self.index + 1 < len(self.plan.stages) else self.plan.total_steps
        config = self.recipe.config
        self.batches = data_lib.make_batches(
            self.source, self.stage.batch_size, seed=int(config.seed), xflip=bool(config.data.xflip),
            start_step=self.plan.data_step(step), process_index=jax.process_index(),
            process_count=jax.process_count(), prefetch=int(config.data.prefetch), workers=int(config.data.workers))
        self.next_load = step  # the step whose batch the pipeline gives next
        program = self.stage.program
        if program not in self._steps:
            self._steps[program] = CompiledSteps(self.recipe.phases(self.stage), self.mesh, self.stage.batch_size,
                                                 cache_key=(config.to_json(), program))
        self.steps = self._steps[program]
        return True

    def next_batch(self, in_flight: jax.Array | None = None) -> dict[str, jax.Array]:
        """The current step's batch, placed on the devices while the previous step ran; places the next
        step's (within the stage) before returning, so its host-to-device copy overlaps this step.

        ``data_wait``: the seconds this took (waiting on the pipeline included), counted only when the
        devices may have idled for it: 0 when ``in_flight`` (an output of the step dispatched last) is
        still being computed after the wait, since the loop then waited while the devices worked."""
        start = time.perf_counter()
        while len(self.ahead) < 2 and self.next_load < self.end:
            self.ahead.append(parallel.global_batch(next(self.batches), self.mesh))
            self.next_load += 1
        busy = in_flight is not None and hasattr(in_flight, "is_ready") and not in_flight.is_ready()
        self.data_wait = 0.0 if busy else time.perf_counter() - start
        return self.ahead.popleft()

    def close(self) -> None:
        self.ahead.clear()
        if self.batches is not None:
            self.batches.close()
            self.batches = None


def wall_time_limit(config: ml_collections.ConfigDict) -> float:
    """``train.max_minutes`` (0: none), checked."""
    minutes = float(config.train.get("max_minutes", 0) or 0)
    if not minutes >= 0:
        raise ValueError(f"train.max_minutes must be >= 0 (0 = no limit), got {config.train.max_minutes!r}")
    return minutes


def _log_metric(logger: Logger, fid: evaluation.TrainingFID, state: TrainState, step: int) -> float | None:
    """Compute and log every metric of ``config.fid.metric``; returns the ranking metric's value (or None)."""
    values, best, seconds = fid.compute_all(state)
    logger.scalars(step, values)
    for i, (key, value) in enumerate(values.items()):  # the first line carries the time of all
        logger.print(f"{key} {value:.6g}" + ("" if i else f" ({seconds:.0f} s)"))
    return best


def _stopped_message(stop: StopRequest, done: int, directory: str) -> None:
    message = f"{stop.describe()}: saved step {done} to {directory}; the same command resumes from it"
    # Each host's log says why it stopped.
    prefix = f"[process {jax.process_index()}/{jax.process_count()}] " if jax.process_count() > 1 else ""
    if prefix or jax.process_index() == 0:
        print(prefix + message, flush=True)


def start_from(path: str, recipe: recipes.Recipe, mesh: jax.sharding.Mesh) -> TrainState:
    """Transfer learning (``config.resume``, NVIDIA's ``--resume``): the networks of an NVIDIA pickle
    (converted in memory) or of a gan_jax run folder's latest checkpoint, in a fresh state of ``recipe``."""
    from gan_jax import run_loader  # noqa: PLC0415

    is_pickle = path.endswith(".pkl")
    if not is_pickle and not os.path.isdir(os.path.join(path, "checkpoints")):
        raise FileNotFoundError(f"config.resume={path!r} is neither an NVIDIA .pkl nor a gan_jax run folder "
                                "(a folder with checkpoints/)")
    _, _, source = run_loader.load_run(network=path) if is_pickle else run_loader.load_run(workdir=path)
    state = recipe.transfer_state(jax.random.PRNGKey(int(recipe.config.seed)), jax.device_get(source))
    return parallel.replicate(state, mesh)


def train(config: ml_collections.ConfigDict, workdir: str, max_steps: int | None = None) -> TrainState:
    """Train ``config`` in ``workdir`` (resuming from its latest checkpoint); returns the final state.

    ``max_steps`` stops after that many steps of this call (tests, benchmarks); ``train.max_minutes``
    after that wall time (the grid, the metric and a checkpoint are written as at the end).
    """
    started = time.monotonic()
    recipe_cls = recipes.recipe_class(config.recipe)
    recipes.check_config(config, recipe_cls)
    mesh = parallel.make_mesh()
    source = open_dataset(config)
    config = resolve_config(config, source)
    recipe = recipe_cls(config, mesh)
    plan = recipes.stage_plan(recipe)
    logger = Logger(config, workdir, images_at=plan.images_at)
    ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"), keep=int(config.checkpoint.keep),
                                       async_save=bool(config.checkpoint.async_save),
                                       best_metric=evaluation.best_metric(config))
    state = initial_state(recipe, mesh)
    if ckpt.latest_step() is not None:
        state = ckpt.restore(state, config.to_dict())
        logger.print(f"resumed from {ckpt.directory} at step {int(state.step)} ({int(state.images_seen) / 1000:.1f} kimg)")
    elif config.get("resume"):
        state = start_from(str(config.resume), recipe, mesh)
        logger.print(f"starting from the networks of {config.resume} (fresh optimizers, step 0)")
    start = int(state.step)
    stop_at = plan.total_steps if max_steps is None else min(plan.total_steps, start + max_steps)

    grids = SampleGrids(recipe, mesh, source, workdir, logger)
    fid = evaluation.training_fid(config, mesh, source, grids.sample, recipe.sampling().z_dim, recipe=recipe)
    for message in fid.messages():  # a metric without its weights file: off, training goes on
        logger.print(message)
    samples_due, ckpt_due = Cadence(config.log.sample_every_kimg), Cadence(config.checkpoint.every_kimg)
    log_every = max(1, int(config.log.every_steps))
    progress = Progress(logger, plan.images_at, plan.total_steps, recipe.console, start)
    staged = len(plan.stages) > 1
    logger.print(f"training {config.recipe} at {config.data.resolution}x{config.data.resolution} on {source.name}: "
                 f"batch {plan.stages[0].batch_size}{f' (+{len(plan.stages) - 1} stages)' if staged else ''} over "
                 f"{mesh.devices.size} device(s), steps {start}..{stop_at} of {plan.total_steps}")
    if start == 0:
        grids.write_reals()
        grids.write(state, 0, 0)
        if fid.evaluator is not None and config.fid.get("at_start", False):
            _log_metric(logger, fid, state, 0)
    max_minutes = wall_time_limit(config)
    deadline = started + 60 * max_minutes if max_minutes else None  # wall time of this call, compiles included

    inputs = _StageInput(recipe, plan, mesh, source)
    try:
        with StopRequest() as stop:
            for step in range(start, stop_at):
                if inputs.enter(step):
                    if step == inputs.start:
                        state = recipe.enter_stage(state, inputs.stage)
                    if staged:
                        logger.print(f"stage {inputs.stage.name}: batch {inputs.stage.batch_size}, "
                                     f"steps {inputs.start}..{inputs.end}")
                    progress.restart_clock()
                state, metrics = inputs.steps(state, inputs.next_batch(in_flight=state.step), step)
                progress.step_done(step, metrics, state.step, inputs.steps.just_compiled, inputs.data_wait)

                done, before, after = step + 1, plan.images_at(step), plan.images_at(step + 1)
                out_of_time = deadline is not None and time.monotonic() > deadline and done < stop_at
                last, stage_end = done == stop_at or out_of_time, staged and done == inputs.end
                if done % log_every == 0 or last:
                    progress.report(done, inputs.stage.batch_size)
                if samples_due.due(before, after) or last:
                    grids.write(state, done, after)
                if stage_end:  # the grid each level (stage) ends with
                    grids.write(state, done, after, inputs.stage.name)
                fid_value = None
                if fid.due(before, after, last):
                    fid_value = _log_metric(logger, fid, state, done)
                    progress.restart_clock()  # throughput leaves the evaluation out
                stopping = stop.due(done)
                if fid_value is not None or stopping or ckpt_due.due(before, after) or last or stage_end:
                    progress.flush()
                    ckpt.save(done, state, config.to_dict(), metrics=None if fid_value is None else {fid.metric: fid_value})
                if stopping:
                    ckpt.wait()
                    _stopped_message(stop, done, ckpt.directory)
                    break
                if out_of_time:
                    logger.print(f"stopped by train.max_minutes={max_minutes:g} at step {done} of "
                                 f"{plan.total_steps} ({after / 1000:.1f} kimg): saved to {ckpt.directory}; the same "
                                 f"command goes on from there")
                    break
            progress.flush()
    except NonFiniteLoss as err:
        ckpt.wait()
        good = ckpt.latest_step()
        raise NonFiniteLoss(f"{err}; training stopped and saved nothing after step {progress.last_good}. The last good "
                            f"checkpoint is step {good} in {ckpt.directory}" if good is not None else
                            f"{err}; training stopped; no checkpoint was written") from None
    finally:
        inputs.close()
        ckpt.close()
        logger.close()
    return state
