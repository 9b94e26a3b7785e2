"""Metrics of a saved run, with NVIDIA's names and numbers comparable to papers.

    python -m gan_jax.evaluate --workdir=DIR --metrics=fid50k_full,kid50k_full,is50k

Uses G_ema of the latest checkpoint (``--step`` for another) against the run's dataset
(``--data`` for another path). Each metric appends one JSON line to ``DIR/metric-<name>.jsonl``
(NVIDIA's ``metric-fid50k_full.jsonl`` layout: ``results``, ``metric``, ``total_time``,
``snapshot``, ``num_devices``, ``timestamp``, plus the Inception ``convention``). KID and IS come
from the same generated features as FID. The Inception weights are found as
``gan_jax/metrics/weights.py`` says, or given with ``--inception``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from absl import app, flags, logging


def evaluate(workdir: str, metrics: list[str], step: int | None = None, data: str | None = None,
             convention: str = "nvidia", inception: str | None = None, download: bool = False,
             batch_size: int = 64) -> dict[str, Any]:
    """Compute ``metrics`` on the checkpoint; appends the JSON lines and returns ``{name: results}``."""
    import jax
    import ml_collections

    from gan_jax import checkpoint, parallel, recipes
    from gan_jax.compiled import initial_state
    from gan_jax.run_config import open_dataset
    from gan_jax.metrics import evaluation
    from gan_jax.metrics import weights as weights_lib

    for name in metrics:
        evaluation.parse_metric(name)  # a bad name fails before anything is loaded
    if "://" not in workdir and not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, 'checkpoints')}")
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), async_save=False)
    if ckpt.latest_step() is None:
        raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, 'checkpoints')}")
    step = ckpt.latest_step() if step is None else step
    config = ml_collections.ConfigDict(ckpt.saved_config(step))
    if data:
        config.data.source = data
    mesh = parallel.make_mesh()
    recipe = recipes.build(config, mesh)
    source = open_dataset(config)
    state = ckpt.restore(initial_state(recipe, mesh), config.to_dict(), step)
    ckpt.close()
    path = weights_lib.find_weights(inception)
    if path is None and download:
        path = weights_lib.download_pytorch_fid()
    if path is None:
        raise weights_lib.InceptionWeightsMissing(weights_lib.missing_message(inception))
    evaluator = evaluation.Evaluator(mesh, source, jax.jit(recipe.sample), recipe.sampling().z_dim, recipe.c_dim, weights_lib.read_weights_file(path),
                                     convention=convention, batch_size=batch_size,
                                     weights_id=evaluation.weights_identity(path), seed=int(config.seed))
    out: dict[str, Any] = {}
    for name in metrics:
        t0 = time.time()
        values = evaluator.compute(state, [name])
        results = {k.split("/", 2)[1] + ("_" + k.rsplit("/", 1)[1] if k.endswith(("/mean", "/std")) else ""): v
                   for k, v in values.items()}
        record = {"results": results, "metric": name, "convention": convention, "total_time": time.time() - t0,
                  "snapshot": step, "num_devices": mesh.devices.size, "timestamp": time.time()}
        out[name] = results
        if jax.process_index() == 0:
            with open(os.path.join(workdir, f"metric-{name}.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
    return out


def _define_flags() -> None:
    """The command line (defined only when run as a program: ``gan_jax.sample`` has a --workdir too)."""
    flags.DEFINE_string("workdir", None, "Run directory (its checkpoints are evaluated).")
    flags.DEFINE_list("metrics", ["fid50k_full"], "Comma-separated metric names (fid50k_full, kid50k_full, is50k...).")
    flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
    flags.DEFINE_string("data", None, "Dataset to compare with (default: the run's data.source).")
    flags.DEFINE_enum("convention", "nvidia", ["nvidia", "pytorch_fid"], "Inception input convention.")
    flags.DEFINE_string("inception", None, "Inception weights file (pytorch-fid's .pth or a converted .npz).")
    flags.DEFINE_bool("download", False, "Download pytorch-fid's weights (sha256-checked) if none is found.")
    flags.DEFINE_integer("batch", 64, "Images per Inception step, over all devices.")


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint operation at INFO
    f = flags.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if not f.workdir:
        raise app.UsageError("--workdir is required")
    try:
        evaluate(f.workdir, f.metrics, f.step, f.data, f.convention, f.inception, f.download, f.batch)
    except (FileNotFoundError, ValueError) as err:  # no checkpoint, no weights, a bad metric name
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    _define_flags()
    app.run(main)
