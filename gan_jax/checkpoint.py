"""Orbax ``CheckpointManager`` around the train state: async, keeps the last K, multi-host,
``gs://`` capable; restores onto the current mesh; refuses a checkpoint of another network."""

from __future__ import annotations

import os
from typing import Any, Mapping

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
    """``directory/<step>/{state,config}``; ``keep`` newest steps are kept."""

    def __init__(self, directory: str, keep: int = 3, async_save: bool = True):
        self.directory = directory if "://" in directory else os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state: TrainState, config: Mapping[str, Any]) -> None:
        """Start saving ``state`` at ``step`` (asynchronously; ``wait()`` blocks until written)."""
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        config=ocp.args.JsonSave(dict(config))), force=True)

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
