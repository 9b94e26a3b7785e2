"""What a run tells its user: the progress line, TensorBoard scalars and images, and the throughput
and NaN checks behind them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np

from gan_jax.compiled import check_finite


class Logger:
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


def eta(seconds: float) -> str:
    """``1h05m`` / ``4m07s``."""
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """The metrics of the steps since the last report, and their throughput.

    The metrics of step ``s`` are checked for NaN when step ``s + 1`` has been dispatched (reading
    them then costs no stall), or at once by :meth:`flush` (before a checkpoint, at a report, at the
    end): ``last_good`` is the number of steps known to be finite. Throughput windows leave out
    compilation and evaluations (:meth:`restart_clock`).
    """

    def __init__(self, logger: Logger, images_at: Callable[[int], int], total_steps: int,
                 recipe_console: Callable[[Mapping[str, float]], str], start: int):
        self.logger, self.images_at, self.total_steps = logger, images_at, total_steps
        self.recipe_console = recipe_console
        self.pending: tuple[int, Any] | None = None
        self.window: list[dict[str, float]] = []
        self.t0: float | None = None
        self.steps_timed = 0
        self.last_good = start

    def restart_clock(self) -> None:
        """The next window starts after the next step (e.g. after a compilation)."""
        self.t0 = None

    def step_done(self, step: int, metrics: Any, state_step: jax.Array, compiled: tuple[str, float] | None) -> None:
        if compiled is not None:
            if compiled[1] > 0.5:
                self.logger.print(f"compiled step {compiled[0]} in {compiled[1]:.1f} s")
            self.t0 = None
        if self.pending is not None:
            self.window.append(check_finite(*self.pending))
            self.last_good = self.pending[0] + 1
        self.pending = (step, metrics)
        if self.t0 is None:  # time from the end of a step that compiled
            jax.block_until_ready(state_step)
            self.t0, self.steps_timed = time.perf_counter(), 0
        else:
            self.steps_timed += 1

    def flush(self) -> None:
        """Check the last step's metrics now."""
        if self.pending is not None:
            self.window.append(check_finite(*self.pending))
            self.last_good = self.pending[0] + 1
            self.pending = None

    def report(self, done: int, batch_size: int) -> None:
        """Means since the last report to TensorBoard, and one console line."""
        self.flush()
        elapsed = time.perf_counter() - self.t0 if self.t0 is not None else 0.0
        ips = self.steps_timed * batch_size / elapsed if elapsed > 0 and self.steps_timed else float("nan")
        keys = dict.fromkeys(k for w in self.window for k in w)  # every metric of the window (Greg runs every 4th step)
        means = {k: float(np.mean([w[k] for w in self.window if k in w])) for k in keys}
        kimg = self.images_at(done) / 1000
        means.update({"Progress/kimg": kimg, "Timing/images_per_sec": ips,
                      "Timing/sec_per_kimg": 1000 / ips if ips > 0 else float("nan")})
        self.logger.scalars(done, means)
        left = self.images_at(self.total_steps) - self.images_at(done)
        speed = f"{ips:.1f} img/s {1000 / ips:.1f} s/kimg ETA {eta(left / ips)}" if ips > 0 else "(timing after compilation)"
        self.logger.print(f"step {done}/{self.total_steps} kimg {kimg:.1f} | {self.recipe_console(means)} | {speed}")
        self.window, self.t0, self.steps_timed = [], time.perf_counter(), 0
