"""The generic training loop: data -> compiled step -> metrics, samples, checkpoints.

It knows no model: a recipe (``gan_jax.recipes``) supplies the state, the phases and the sampler,
and optionally the run's stages (progressive growing: each stage its batch size and compiled
program; see ``gan_jax.recipes.stage_plan``).
One ``jax.jit`` step is compiled per distinct set of active phases (StyleGAN2: at most four), with
the state donated; the step never returns to the host between phases. Metrics of step ``s`` are
read while step ``s + 1`` runs, so checking them for NaN costs no stall.
"""

from __future__ import annotations

import collections
import io
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from etils import epath

from gan_jax import checkpoint as checkpoint_lib
from gan_jax import data as data_lib
from gan_jax import parallel, recipes
from gan_jax.images import tile
from gan_jax.metrics import evaluation
from gan_jax.recipes import Phase
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
_EXECUTABLES = ProgramCache(limit=32)


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
        self._cache_key = None if cache_key is None else (cache_key, tuple(d.id for d in mesh.devices.flat), global_batch)

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
        if names not in self._compiled:
            key = None if self._cache_key is None else (*self._cache_key, names)
            t0 = time.perf_counter()
            if key is not None and key in _EXECUTABLES:
                self._compiled[names] = _EXECUTABLES[key]
            else:
                self._compiled[names] = self._build(active).lower(state, batch).compile()
                if key is not None:
                    _EXECUTABLES[key] = self._compiled[names]
            self.compile_seconds[names] = time.perf_counter() - t0
        return self._compiled[names](state, batch)


def check_finite(step: int, metrics: dict[str, Any]) -> dict[str, float]:
    """Host copies of ``metrics``; raises ``NonFiniteLoss`` naming the step and the loss."""
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    bad = sorted(k for k, v in values.items() if not math.isfinite(v))
    if bad:
        raise NonFiniteLoss(f"step {step}: {', '.join(f'{k}={values[k]}' for k in bad)} is not finite")
    return values


def resolve_config(config: ml_collections.ConfigDict, source: data_lib.ImageSource) -> ml_collections.ConfigDict:
    """A copy of ``config`` with what the dataset decides: image channels and the label size."""
    config = ml_collections.ConfigDict(config.to_dict())
    if source.resolution != config.data.resolution:
        raise ValueError(f"dataset {source.name} is {source.resolution}x{source.resolution}, the config says "
                         f"data.resolution={config.data.resolution}; set --config.data.resolution={source.resolution} "
                         f"or prepare the data at {config.data.resolution}")
    config.data.channels = source.channels
    if config.data.use_labels and source.label_dim == 0:
        raise ValueError(f"data.use_labels=True but dataset {source.name} has no labels (dataset.json)")
    config.model.c_dim = source.label_dim if config.data.use_labels else 0
    return config


def open_dataset(config: ml_collections.ConfigDict) -> data_lib.ImageSource:
    d = config.data
    kwargs: dict[str, Any] = {}
    if d.source.startswith("embedded"):
        kwargs = {"num_images": int(d.num_images), "seed": int(config.seed),
                  "num_classes": int(d.get("num_classes", 0) or 0)}
    elif d.source.startswith("tfds:") and d.get("tfds_data_dir"):
        kwargs = {"data_dir": os.path.expanduser(d.tfds_data_dir)}
    try:
        return data_lib.open_source(os.path.expanduser(d.source), resolution=int(d.resolution), **kwargs)
    except FileNotFoundError as err:
        if d.get("prepare_command"):
            raise FileNotFoundError(f"{err}\nThis config expects the dataset made by:\n  {d.prepare_command}") from None
        raise


def image_grid(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """uint8 [rows*H, cols*W, C] from float images [N >= rows*cols, H, W, C] in [-1, 1]."""
    x = np.clip(np.rint(np.asarray(images, np.float32) * 127.5 + 128), 0, 255).astype(np.uint8)[: rows * cols]
    return tile(x, cols)


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 [H, W, C] image (C = 1 as grayscale) to a local or ``gs://`` path (etils epath)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
    epath.Path(path).write_bytes(buffer.getvalue())


class _StopRequest:
    """Asks the loop to save and leave; ``due(step)`` is called once after every step.

    One process: SIGTERM / SIGINT set a flag (Python handlers), the loop saves the step it is at.
    Several processes (``jax.distributed``): a flag on one process is no agreement (the others
    would run on into a collective it never joins). JAX's coordination service owns SIGTERM there
    (its preemption notifier, which on a TPU VM also receives maintenance events) and propagates a
    notice on any process to all; ``multihost_utils.reached_preemption_sync_point(step)`` is then
    true on every process at the same step (the largest step any process had reported, plus one),
    so all save that step. No Python SIGTERM handler is installed there, as it would replace
    JAX's; SIGINT (Ctrl-C) re-sends SIGTERM to this process, so it takes the same path.
    """

    def __init__(self):
        self.signal: int | None = None
        self.multiprocess = jax.process_count() > 1
        self._old: dict[int, Any] = {}

    def __enter__(self):
        for sig in (signal.SIGINT,) if self.multiprocess else (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.multiprocess:
            os.kill(os.getpid(), signal.SIGTERM)  # to JAX's preemption notifier
        else:
            self.signal = signum

    def due(self, step: int) -> bool:
        """Whether to save ``step`` and stop; in a multi-process run, the same answer on every process."""
        if not self.multiprocess:
            return self.signal is not None
        from jax.experimental import multihost_utils

        try:
            return multihost_utils.reached_preemption_sync_point(step)
        except RuntimeError:  # jax_enable_preemption_service is off: no agreement possible
            return False

    def describe(self) -> str:
        if self.multiprocess:
            return f"preemption notice (SIGTERM or TPU maintenance) agreed by all {jax.process_count()} processes"
        return f"signal {self.signal}"

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class _Logger:
    """Console progress on every process 0; TensorBoard through clu when ``log.tensorboard``."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str):
        self.is_main = jax.process_index() == 0
        self.writer = None
        if self.is_main and config.log.tensorboard:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
            # clu imports TensorFlow: only when logging is on.
            from clu import metric_writers

            # TensorBoard events only: the console line below is the human-readable log.
            self.writer = metric_writers.AsyncWriter(metric_writers.SummaryWriter(workdir))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            self.writer.write_scalars(step, values)

    def images(self, step: int, name: str, grid: np.ndarray) -> None:
        if self.writer is not None:
            self.writer.write_images(step, {name: grid[None]})

    def print(self, line: str) -> None:
        if self.is_main:
            print(line, flush=True)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()


def _fresh_state(recipe: Any, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> TrainState:
    """The recipe's fresh state, replicated on ``mesh``, made by one compiled program.

    Op by op, initialising the networks compiles each of their few hundred operations (about 12 s
    of a 40 s tiny run on a CPU); under ``jit`` it is one program. A recipe whose ``create_state``
    cannot be traced (it reads values on the host) is run op by op instead.
    """
    rng = jax.random.PRNGKey(int(config.seed))
    key = ("init", config.to_json(), tuple(d.id for d in mesh.devices.flat))
    try:
        init = _EXECUTABLES.setdefault(key, jax.jit(lambda r: recipe.create_state(config, r, mesh),
                                                    out_shardings=parallel.replicated(mesh)))
        return init(rng)
    except jax.errors.JAXTypeError:  # ConcretizationTypeError, TracerBoolConversionError, ...
        _EXECUTABLES.pop(key, None)
        return recipe.create_state(config, rng, mesh)


def _eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def train(config: ml_collections.ConfigDict, workdir: str, max_steps: int | None = None) -> TrainState:
    """Train ``config`` in ``workdir`` (resuming from its latest checkpoint); returns the final state.

    ``max_steps`` stops after that many steps of this call (tests, benchmarks).
    """
    recipe = recipes.get_recipe(config.recipe)
    mesh = parallel.make_mesh()
    source = open_dataset(config)
    config = resolve_config(config, source)
    cfg_dict = config.to_dict()
    plan = recipes.stage_plan(recipe, config)
    total_steps = plan.total_steps
    logger = _Logger(config, workdir)
    samples_dir = epath.Path(workdir) / "samples"  # a local path or gs:// (etils: tf.io.gfile)
    if logger.is_main:
        samples_dir.mkdir(parents=True, exist_ok=True)

    ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"), keep=int(config.checkpoint.keep),
                                       async_save=bool(config.checkpoint.async_save),
                                       best_metric=evaluation.best_metric(config))
    state = _fresh_state(recipe, config, mesh)
    if ckpt.latest_step() is not None:
        state = ckpt.restore(state, cfg_dict)
        logger.print(f"resumed from {ckpt.directory} at step {int(state.step)} ({int(state.images_seen) / 1000:.1f} kimg)")
    start = int(state.step)
    stop_at = total_steps if max_steps is None else min(total_steps, start + max_steps)

    compiled: dict[Any, CompiledSteps] = {}  # per stage program

    def steps_of(stage: recipes.Stage) -> CompiledSteps:
        if stage.program not in compiled:
            compiled[stage.program] = CompiledSteps(recipes.stage_phases(recipe, config, mesh, stage), mesh,
                                                    stage.batch_size, cache_key=(config.to_json(), stage.program))
        return compiled[stage.program]

    sample_key = ("sample", config.to_json(), tuple(d.id for d in mesh.devices.flat))
    sample = _EXECUTABLES.setdefault(sample_key, jax.jit(recipe.sample_fn(config, mesh)))
    # Grids: replicated output, so that every process may read it (process 0 writes it).
    grid_sample = _EXECUTABLES.setdefault(("grid", *sample_key[1:]), jax.jit(
        recipe.sample_fn(config, mesh), out_shardings=parallel.replicated(mesh)))
    rows, cols = config.log.sample_grid
    z_dim = recipe.sampling(config, mesh).z_dim if hasattr(recipe, "sampling") else int(config.model.G.z_dim)
    # The same values on every process, placed on the whole mesh (a host-local array is no input
    # of a multi-process computation).
    grid_z = parallel.replicate(np.random.RandomState(123).randn(rows * cols, z_dim).astype(np.float32), mesh)
    grid_c = (parallel.replicate(np.asarray(source.labels(np.arange(rows * cols) % source.num_images), np.float32), mesh)
              if config.model.c_dim else None)
    fid = evaluation.training_fid(config, mesh, source, sample, z_dim, plan.images_at(start))
    if fid.evaluator is None and fid.metric:
        logger.print(f"FID is off ({fid.reason}); training goes on without it")

    def write_samples(step: int, stage_name: str | None = None) -> None:
        grid = image_grid(jax.device_get(grid_sample(state, grid_z, grid_c)), rows, cols)
        logger.images(step, "samples" if stage_name is None else f"stages/{stage_name}", grid)
        if logger.is_main:  # named by images seen, as NVIDIA's fakes<kimg>.png
            name = f"fakes{plan.images_at(step):09d}.png" if stage_name is None else f"stage-{stage_name}.png"
            write_png(samples_dir / name, grid)

    if start == 0 and logger.is_main:
        write_png(samples_dir / "reals.png", image_grid(
            source.images(np.arange(rows * cols) % source.num_images).astype(np.float32) / 127.5 - 1, rows, cols))

    batches, stage_index, staged = None, -1, len(plan.stages) > 1
    log_every = max(1, int(config.log.every_steps))
    logger.print(f"training {config.recipe} at {config.data.resolution}x{config.data.resolution} on {source.name}: "
                 f"batch {plan.stages[0].batch_size}{f' (+{len(plan.stages) - 1} stages)' if staged else ''} over "
                 f"{mesh.devices.size} device(s), steps {start}..{stop_at} of {total_steps}")
    if start == 0:
        write_samples(0)

    pending: tuple[int, Any] | None = None
    window: list[dict[str, float]] = []
    t_window, n_window = None, 0
    last_good = start
    try:
        with _StopRequest() as stop:
            for step in range(start, stop_at):
                if plan.index_at(step) != stage_index:  # a new stage (or the first): its batches and step
                    stage_index = plan.index_at(step)
                    stage, stage_start = plan.stages[stage_index], plan.start_steps[stage_index]
                    batch_size = stage.batch_size
                    if batches is not None:
                        batches.close()
                    batches = data_lib.make_batches(
                        source, batch_size, seed=int(config.seed), xflip=bool(config.data.xflip),
                        start_step=plan.data_step(step), process_index=jax.process_index(),
                        process_count=jax.process_count(), prefetch=int(config.data.prefetch))
                    steps = steps_of(stage)
                    sample_every = max(1, round(config.log.sample_every_kimg * 1000 / batch_size))
                    ckpt_every = max(1, round(config.checkpoint.every_kimg * 1000 / batch_size))
                    stage_end = plan.start_steps[stage_index + 1] if stage_index + 1 < len(plan.stages) else total_steps
                    if step == stage_start and hasattr(recipe, "enter_stage"):
                        state = recipe.enter_stage(config, state, stage)
                    if staged:
                        logger.print(f"stage {stage.name}: batch {batch_size}, steps {stage_start}..{stage_end}")
                    t_window = None
                batch = parallel.global_batch(next(batches), mesh)
                fresh = not steps.is_compiled(step)
                state, metrics = steps(state, batch, step)
                if fresh:
                    names = tuple(p.name for p in steps.active(step))
                    if steps.compile_seconds[names] > 0.5:
                        logger.print(f"compiled step {'+'.join(names)} in {steps.compile_seconds[names]:.1f} s")
                    t_window = None  # throughput windows exclude compilation
                if pending is not None:
                    window.append(check_finite(*pending))
                    last_good = pending[0] + 1
                pending = (step, metrics)
                done = step + 1
                if t_window is None:  # time from the end of a step that compiled
                    jax.block_until_ready(state.step)
                    t_window, n_window = time.perf_counter(), 0
                else:
                    n_window += 1
                if done % log_every == 0 or done == stop_at:
                    window.append(check_finite(*pending))
                    pending = None
                    last_good = done
                    elapsed = time.perf_counter() - t_window
                    ips = n_window * batch_size / elapsed if elapsed > 0 and n_window else float("nan")
                    means = {k: float(np.mean([w[k] for w in window if k in w])) for k in window[-1]}
                    kimg = plan.images_at(done) / 1000
                    means.update({"Progress/kimg": kimg, "Timing/images_per_sec": ips,
                                  "Timing/sec_per_kimg": 1000 / ips if ips > 0 else float("nan")})
                    logger.scalars(done, means)
                    shown = " ".join(f"{k.split('/', 1)[0]}/{k.rsplit('/', 1)[-1]}={v:.3f}" for k, v in means.items()
                                     if k.startswith(("Gmain", "Dmain", "Greg", "Dreg")) and ("loss" in k or "penalty" in k))
                    if "Progress/lod" in means:
                        shown += f" lod={means['Progress/lod']:.3f}"
                    left = plan.images_at(total_steps) - plan.images_at(done)
                    speed = (f"{ips:.1f} img/s {1000 / ips:.1f} s/kimg ETA {_eta(left / ips)}"
                             if ips > 0 else "(timing after compilation)")
                    logger.print(f"step {done}/{total_steps} kimg {kimg:.1f} | {shown} | {speed}")
                    window, t_window, n_window = [], time.perf_counter(), 0
                if (done - stage_start) % sample_every == 0 or done == stop_at:
                    write_samples(done)
                if staged and done == stage_end:
                    write_samples(done, stage.name)  # the grid each level (stage) ends with
                fid_metrics = None
                if fid.due(plan.images_at(done), done == stop_at):
                    value, seconds = fid.compute(state, plan.images_at(done))
                    fid_metrics = {fid.metric: value}
                    logger.scalars(done, {fid.key: value})
                    logger.print(f"{fid.key} {value:.6g} ({seconds:.0f} s)")
                    t_window, n_window = time.perf_counter(), 0  # throughput leaves the evaluation out
                stopping = stop.due(done)
                if fid_metrics or stopping or (done - stage_start) % ckpt_every == 0 or \
                        done == stop_at or (staged and done == stage_end):
                    if pending is not None:
                        check_finite(*pending)
                        pending = None
                        last_good = done
                    ckpt.save(done, state, cfg_dict, metrics=fid_metrics)
                    if stopping:
                        ckpt.wait()
                        message = (f"{stop.describe()}: saved step {done} to {ckpt.directory}; "
                                   "the same command resumes from it")
                        if jax.process_count() > 1:  # each host's log says why it stopped
                            print(f"[process {jax.process_index()}/{jax.process_count()}] {message}", flush=True)
                        else:
                            logger.print(message)
                        break
            if pending is not None:
                check_finite(*pending)
    except NonFiniteLoss as err:
        ckpt.wait()
        good = ckpt.latest_step()
        raise NonFiniteLoss(f"{err}; training stopped and saved nothing after step {last_good}. The last good "
                            f"checkpoint is step {good} in {ckpt.directory}" if good is not None else
                            f"{err}; training stopped; no checkpoint was written") from None
    finally:
        if batches is not None:
            batches.close()
        ckpt.close()
        logger.close()
    return state
