"""Leaving a run cleanly: SIGTERM / SIGINT / a TPU maintenance notice make the loop save and stop."""

from __future__ import annotations

import os
import signal
from typing import Any

import jax


class StopRequest:
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
