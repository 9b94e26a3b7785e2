"""What a run tells its user: the progress line, TensorBoard scalars and images, and the throughput
and NaN checks behind them; and the run folder's text files, as NVIDIA's and big_vision's runs write
them (process 0 only, local or ``gs://`` through ``etils.epath``):

* ``config.json``: the resolved config (what the dataset filled in included);
* ``log.txt``: every line the run printed (appended to on resume);
* ``metrics.jsonl``: one JSON object per logged step, ``{"step", "kimg", <scalar>: value, ...}``
  (appended to on resume).
"""

from __future__ import annotations

import json
import logging as py_logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np

from gan_jax.compiled import check_finite

# orbax warns at every save of a manager with a ``best_fn`` that is given no metrics; a training run
# saves most steps without a FID (only evaluated steps carry one), which is expected, not news.
_QUIET_MESSAGES = ("Requested `tracked_metric`; did not provide metrics.",)


class _DropExpected(py_logging.Filter):
    """Drops the library log records in ``_QUIET_MESSAGES`` (expected, nothing for the user to do)."""

    def filter(self, record: py_logging.LogRecord) -> bool:
        return record.getMessage() not in _QUIET_MESSAGES


def quiet_libraries() -> None:
    """Silence the start-up chatter of the libraries a command imports, at its source.

    TensorFlow (imported by clu's TensorBoard writer and tensorflow_datasets) reads
    ``TF_CPP_MIN_LOG_LEVEL`` (2: warnings and errors hidden, which also keeps absl's C++ "log
    messages before InitializeLog" notice away) and ``TF_ENABLE_ONEDNN_OPTS`` (0: no oneDNN banner;
    TensorFlow computes nothing of the model here) when it is imported: call this before. A value the
    user set wins. orbax's expected warnings go through absl's Python logger: filtered there.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    from absl import logging as absl_logging  # noqa: PLC0415

    absl = absl_logging.get_absl_logger()
    if not any(isinstance(f, _DropExpected) for f in absl.filters):
        absl.addFilter(_DropExpected())


class _TextFile:
    """A text file of the run folder that grows (``log.txt``, ``metrics.jsonl``): appended to
    locally; on a remote path (``gs://``, no append there) rewritten whole at most every
    ``remote_every`` seconds and at ``close``."""

    def __init__(self, path: Any, remote_every: float = 60.0):
        from etils import epath  # noqa: PLC0415

        self.path = epath.Path(path)
        self.remote = "://" in str(path)
        self.remote_every, self.last = remote_every, 0.0
        self.text = self.path.read_text() if self.remote and self.path.exists() else ""
        self.file = None if self.remote else open(self.path, "a", encoding="utf-8")

    def write(self, line: str) -> None:
        if self.file is not None:
            self.file.write(line + "\n")
            self.file.flush()
            return
        self.text += line + "\n"
        if time.time() - self.last >= self.remote_every:
            self.flush()

    def flush(self) -> None:
        if self.remote:
            self.path.write_text(self.text)
            self.last = time.time()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        else:
            self.flush()


class Logger:
    """Console progress on process 0, with the run folder's ``config.json``, ``log.txt`` and
    ``metrics.jsonl`` (see the module docstring); TensorBoard through clu when ``log.tensorboard``.

    ``images_at(step)`` (images seen after ``step`` steps) gives each metrics line its ``kimg``.
    """

    def __init__(self, config: ml_collections.ConfigDict, workdir: str,
                 images_at: Callable[[int], int] | None = None):
        self.is_main = jax.process_index() == 0
        self.writer = None
        self.images_at = images_at
        self.log = self.metrics = None
        if self.is_main:
            from etils import epath  # noqa: PLC0415

            folder = epath.Path(workdir)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "config.json").write_text(config.to_json(indent=2) + "\n")
            self.log = _TextFile(folder / "log.txt")
            self.metrics = _TextFile(folder / "metrics.jsonl")
        if self.is_main and config.log.tensorboard:
            quiet_libraries()  # TensorFlow's start-up chatter, if no command did it before
            # clu imports TensorFlow: only when logging is on.
            from clu import metric_writers

            # TensorBoard events only: the console line below is the human-readable log.
            self.writer = metric_writers.AsyncWriter(metric_writers.SummaryWriter(workdir))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """TensorBoard scalars and one ``metrics.jsonl`` line ``{"step", "kimg", **values}``."""
        if self.writer is not None:
            self.writer.write_scalars(step, values)
        if self.metrics is not None:
            record: dict[str, Any] = {"step": int(step)}
            if self.images_at is not None:
                record["kimg"] = self.images_at(step) / 1000
            record.update({k: _json_number(v) for k, v in values.items()})
            record.setdefault("kimg", record.get("Progress/kimg"))
            record["timestamp"] = time.time()
            self.metrics.write(json.dumps(record))

    def images(self, step: int, name: str, grid: np.ndarray) -> None:
        if self.writer is not None:
            self.writer.write_images(step, {name: grid[None]})

    def print(self, line: str) -> None:
        """One console line (process 0), also appended to ``log.txt``."""
        if self.is_main:
            print(line, flush=True)
            if self.log is not None:
                self.log.write(line)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
        for f in (self.log, self.metrics):
            if f is not None:
                f.close()
        self.log = self.metrics = None


def _json_number(value: Any) -> float | None:
    """A scalar as JSON holds it: NaN and infinities (e.g. no timing yet) as null."""
    value = float(value)
    return value if np.isfinite(value) else None


def eta(seconds: float) -> str:
    """``1h05m`` / ``4m07s``."""
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


# The loop may wait for data this fraction of its time before the run says so: "a few percent" of a
# step (issue #21); below it the accelerator is fed, above it the input pipeline is the bottleneck.
DATA_WAIT_WARN_FRACTION = 0.05


class Progress:
    """The metrics of the steps since the last report, and their throughput and data wait.

    The metrics of step ``s`` are checked for NaN when step ``s + 1`` has been dispatched (reading
    them then costs no stall), or at once by :meth:`flush` (before a checkpoint, at a report, at the
    end): ``last_good`` is the number of steps known to be finite. Throughput windows leave out
    compilation and evaluations (:meth:`restart_clock`). The data wait (seconds the loop spent getting
    each timed step's batch while the devices had no step left to run: a wait that ends before the
    last dispatched step does counts 0, ``train._StageInput.next_batch``) is reported as
    ``Timing/data_wait_sec`` (mean per step) and
    ``Timing/data_wait_frac`` (its share of the window's time), on the console line as ``data N%``; a
    share over ``DATA_WAIT_WARN_FRACTION`` prints one warning naming ``data.workers``.
    """

    def __init__(self, logger: Logger, images_at: Callable[[int], int], total_steps: int,
                 recipe_console: Callable[[Mapping[str, float]], str], start: int):
        self.logger, self.images_at, self.total_steps = logger, images_at, total_steps
        self.recipe_console = recipe_console
        self.pending: tuple[int, Any] | None = None
        self.window: list[dict[str, float]] = []
        self.t0: float | None = None
        self.steps_timed = 0
        self.data_wait = 0.0  # seconds waited for data by the timed steps of the window
        self.warned_data_wait = False
        self.last_good = start

    def restart_clock(self) -> None:
        """The next window starts after the next step (e.g. after a compilation)."""
        self.t0 = None

    def step_done(self, step: int, metrics: Any, state_step: jax.Array, compiled: tuple[str, float] | None,
                  data_wait: float = 0.0) -> None:
        """Step ``step`` was dispatched; ``data_wait``: the seconds the loop waited for its batch."""
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
            self.t0, self.steps_timed, self.data_wait = time.perf_counter(), 0, 0.0
        else:
            self.steps_timed += 1
            self.data_wait += data_wait

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
        timed = elapsed > 0 and self.steps_timed
        wait_frac = self.data_wait / elapsed if timed else float("nan")
        means.update({"Progress/kimg": kimg, "Timing/images_per_sec": ips,
                      "Timing/sec_per_kimg": 1000 / ips if ips > 0 else float("nan"),
                      "Timing/data_wait_sec": self.data_wait / self.steps_timed if timed else float("nan"),
                      "Timing/data_wait_frac": wait_frac})
        self.logger.scalars(done, means)
        left = self.images_at(self.total_steps) - self.images_at(done)
        speed = (f"{ips:.1f} img/s {1000 / ips:.1f} s/kimg data {wait_frac:.0%} ETA {eta(left / ips)}" if ips > 0
                 else "(timing after compilation)")
        self.logger.print(f"step {done}/{self.total_steps} kimg {kimg:.1f} | {self.recipe_console(means)} | {speed}")
        if timed and wait_frac > DATA_WAIT_WARN_FRACTION and not self.warned_data_wait:
            self.warned_data_wait = True
            self.logger.print(f"warning: the loop waited for data {wait_frac:.0%} of the time (more than "
                              f"{DATA_WAIT_WARN_FRACTION:.0%}): the input pipeline is the bottleneck. Raise data.workers "
                              f"(decoding processes; -1 = one per host core up to 16, this host has {os.cpu_count()}), or "
                              "prepare the dataset at the training resolution")
        self.window, self.t0, self.steps_timed, self.data_wait = [], time.perf_counter(), 0, 0.0
