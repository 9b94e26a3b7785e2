"""Orbax ``CheckpointManager`` around the train state: async, keeps the last K, multi-host,
``gs://`` capable; restores onto the current mesh; refuses a checkpoint of another network."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp

from gan_jax.state import TrainState

# Config sections that must agree between a checkpoint and the run that restores it.
_MUST_MATCH = ("recipe", "model", "data.resolution", "data.channels")


class CheckpointMismatch(ValueError):
    """The checkpoint was written for another architecture or configuration."""


def _get(tree: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, Mapping) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _differences(saved: Any, current: Any, prefix: str) -> list[str]:
    if isinstance(saved, Mapping) and isinstance(current, Mapping):
        out = []
        for key in sorted(set(saved) | set(current)):
            out += _differences(saved.get(key), current.get(key), f"{prefix}.{key}")
        return out
    if isinstance(saved, (list, tuple)) and isinstance(current, (list, tuple)):
        saved, current = list(saved), list(current)
    return [] if saved == current else [f"  {prefix}: checkpoint has {saved!r}, this run has {current!r}"]


class Checkpointer:
    """``directory/<step>/{state,config}``; the ``keep`` newest steps are kept and, with
    ``best_metric`` (e.g. ``'fid50k_full'``, lower is better), also the step saved with the lowest
    value of that metric (orbax preservation policies ``LatestN`` + ``BestN``)."""

    def __init__(self, directory: str, keep: int = 3, async_save: bool = True, best_metric: str | None = None):
        self.directory = directory if "://" in directory else os.path.abspath(directory)
        self.best_metric = best_metric
        policy = ocp.checkpoint_managers.LatestN(n=keep)
        if best_metric:
            best = ocp.checkpoint_managers.BestN(get_metric_fn=lambda m: -float(m[best_metric]), n=1,
                                                 keep_checkpoints_without_metrics=False)
            policy = ocp.checkpoint_managers.AnyPreservationPolicy([policy, best])
        # best_fn only makes orbax write each step's metrics to disk (so that BestN still knows them
        # after a restart); which steps stay is the preservation policy's decision.
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policy, enable_async_checkpointing=async_save, create=True,
            best_fn=(lambda m: float(m.get(best_metric, float("inf")))) if best_metric else None, best_mode="min",
            keep_checkpoints_without_metrics=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state: TrainState, config: Mapping[str, Any],
             metrics: Mapping[str, float] | None = None) -> None:
        """Start saving ``state`` at ``step`` (asynchronously; ``wait()`` blocks until written).
        ``metrics`` (e.g. ``{'fid50k_full': 3.1}``) rank it for ``best_metric``."""
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        config=ocp.args.JsonSave(dict(config))),
                          metrics=dict(metrics) if metrics else None, force=True)

    def best_step(self) -> int | None:
        """The kept step with the lowest ``best_metric``, or None."""
        if not self.best_metric:
            return None
        self.manager.wait_until_finished()
        scored = [(float(m[self.best_metric]), step) for step in self.manager.all_steps()
                  if (m := self.manager.metrics(step)) and self.best_metric in m]
        return min(scored)[1] if scored else None

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def saved_config(self, step: int | None = None) -> dict[str, Any]:
        step = self.latest_step() if step is None else step
        restored = self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
        return dict(restored["config"])

    def restore(self, target: TrainState, config: Mapping[str, Any], step: int | None = None) -> TrainState:
        """The checkpoint at ``step`` (default: latest), laid out like ``target`` (shapes, shardings).

        Raises ``CheckpointMismatch`` naming each config field that differs, or each array whose
        shape differs, when the checkpoint belongs to another network.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        saved = self.saved_config(step)
        diffs = []
        for key in _MUST_MATCH:
            diffs += _differences(_get(saved, key), _get(dict(config), key), key)
        if diffs:
            raise CheckpointMismatch(
                f"the checkpoint at step {step} in {self.directory} was written for another network; it differs in:\n"
                + "\n".join(diffs) + "\nuse a new --workdir, or the config that wrote the checkpoint")
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), target)
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
        except (ValueError, KeyError) as err:
            raise CheckpointMismatch(f"the checkpoint at step {step} in {self.directory} does not fit this run's state: {err}") from err
        return restored["state"]

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
