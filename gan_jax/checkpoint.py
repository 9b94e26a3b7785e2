"""Orbax ``CheckpointManager`` around the train state: async, keeps the last K, multi-host,
``gs://`` capable; restores onto the current mesh; refuses a checkpoint whose arrays do not fit
this run's state (another network), naming the config fields and arrays that differ."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from gan_jax.state import TrainState

# Config fields that decide the network (what a mismatch message lists first): a difference here is
# the likely reason why the checkpoint's arrays do not fit. A difference alone does not refuse a
# checkpoint (model.dtype, model.fused_modconv change no variable): the arrays decide.
_NETWORK_FIELDS = ("recipe", "model", "data.resolution", "data.channels", "data.use_labels", "data.num_classes")
# Other sections listed after those when the arrays differ (e.g. an optimizer setting), except the
# fields that only say how long to train or where the images come from.
_OTHER_FIELDS = ("train", "data")
_NOT_STRUCTURAL = ("train.total_kimg", "data.source", "data.prefetch", "data.workers", "data.prepare_command",
                   "data.num_images", "data.xflip")
_MAX_LISTED = 8  # differing arrays / other config fields named in a mismatch message


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


def _config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(differing network fields, other differing train/data fields), one ``'  a.b: ...'`` line each."""
    network = [d for key in _NETWORK_FIELDS for d in _differences(_get(saved, key), _get(current, key), key)]
    other = [d for key in _OTHER_FIELDS for d in _differences(_get(saved, key), _get(current, key), key)
             if not any(d.startswith(f"  {f}:") or d.startswith(f"  {f}.") for f in _NOT_STRUCTURAL + _NETWORK_FIELDS)]
    return network, other


def _key_name(entry: Any) -> str:
    """One entry of a jax key path as a plain name: dict key, attribute or sequence index."""
    for attr in ("key", "name", "idx"):  # DictKey / FlattenedIndexKey, GetAttrKey, SequenceKey
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def array_specs(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{'params/D/b16/conv0/weight': (shape, dtype name), ...}`` for every array leaf of ``tree``.

    ``tree`` is a pytree of arrays / ``jax.ShapeDtypeStruct`` (e.g. a ``TrainState``) or orbax's
    metadata tree of a saved item (``ArrayMetadata`` leaves). Paths join dict keys, dataclass
    attributes and namedtuple fields by name and sequence entries by index, so that both spell a
    leaf the same way; empty nodes (``None``, ``()``, optax's ``EmptyState``) hold no leaf.
    """
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if leaf is None:
            continue
        shape = tuple(int(d) for d in getattr(leaf, "shape", np.shape(leaf)))
        dtype = getattr(leaf, "dtype", None)
        out["/".join(_key_name(e) for e in path)] = (shape, _dtype_name(dtype))
    return out


def _dtype_name(dtype: Any) -> str:
    if dtype is None:
        return "?"
    try:
        return str(np.dtype(dtype))
    except TypeError:  # e.g. a typed PRNG key dtype
        return str(dtype)


def _array_differences(saved: Mapping[str, tuple], current: Mapping[str, tuple]) -> list[str]:
    """One line per array whose presence, shape or dtype differs: this run's arrays in tree order
    (``params`` before ``opt_state``), then those only the checkpoint has."""
    out = []
    for path in [*current, *(p for p in saved if p not in current)]:
        a, b = saved.get(path), current.get(path)
        if a == b:
            continue
        if a is None:
            out.append(f"  {path}: not in the checkpoint, this run has shape {b[0]} {b[1]}")
        elif b is None:
            out.append(f"  {path}: checkpoint has shape {a[0]} {a[1]}, not in this run")
        else:
            out.append(f"  {path}: checkpoint has shape {a[0]} {a[1]}, this run has shape {b[0]} {b[1]}")
    return out


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
        # Handlers named up front, so that item_metadata() can read a checkpoint that this process
        # has not saved or restored yet (the array structure that restore() checks first).
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers={
            "state": ocp.StandardCheckpointHandler(), "config": ocp.JsonCheckpointHandler()})

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

    def saved_arrays(self, step: int | None = None) -> dict[str, tuple[tuple[int, ...], str]] | None:
        """``{path: (shape, dtype name)}`` of the arrays the ``state`` at ``step`` (default: latest)
        holds, read from orbax's metadata without loading them (see ``array_specs``); None when the
        checkpoint has no readable metadata."""
        step = self.latest_step() if step is None else step
        try:
            meta = self.manager.item_metadata(step)["state"]  # orbax: a TreeMetadata of ArrayMetadata
        except (FileNotFoundError, KeyError, ValueError, TypeError):
            return None
        if meta is None:
            return None
        return array_specs(getattr(meta, "tree", meta))

    def restore(self, target: TrainState, config: Mapping[str, Any], step: int | None = None) -> TrainState:
        """The checkpoint at ``step`` (default: latest), laid out like ``target`` (shapes, shardings).

        The checkpoint is restored when its arrays (tree paths, shapes, dtypes) are those of
        ``target``, whatever else of ``config`` differs from the saved config (e.g. ``model.dtype``,
        the compute dtype, or ``model.fused_modconv``). Otherwise raises ``CheckpointMismatch``
        naming the config fields that differ (dotted paths, both values) and the first arrays that
        differ (path, the checkpoint's shape, this run's shape).
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), target)
        saved_arrays = self.saved_arrays(step)
        if saved_arrays is not None:
            array_diffs = _array_differences(saved_arrays, array_specs(abstract))
            if array_diffs:
                raise self._mismatch(step, config, array_diffs)
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
        except (ValueError, KeyError) as err:  # no metadata to compare, and orbax refused the target
            raise self._mismatch(step, config, [f"  {err}"]) from err
        return restored["state"]

    def _mismatch(self, step: int, config: Mapping[str, Any], array_diffs: list[str]) -> CheckpointMismatch:
        try:
            network, other = _config_differences(self.saved_config(step), dict(config))
        except Exception as err:  # noqa: BLE001 - the arrays still say what is wrong
            network, other = [f"  (the saved config could not be read: {err})"], []
        lines = [f"the checkpoint at step {step} in {self.directory} was written for another network."]
        if network:
            lines += ["Config fields that differ:"] + network
        if other:
            lines += ["Other train/data settings that differ:"] + other[:_MAX_LISTED]
            lines += [f"  ... and {len(other) - _MAX_LISTED} more"] if len(other) > _MAX_LISTED else []
        if not network and not other:
            lines += ["No config field differs (the code that builds the state may have changed)."]
        lines += ["Arrays that differ:"] + array_diffs[:_MAX_LISTED]
        lines += [f"  ... and {len(array_diffs) - _MAX_LISTED} more"] if len(array_diffs) > _MAX_LISTED else []
        lines += ["Use a new --workdir, or the config that wrote the checkpoint."]
        return CheckpointMismatch("\n".join(lines))

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
