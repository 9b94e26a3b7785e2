"""Metrics of a saved run, with NVIDIA's names and numbers comparable to papers.

    python -m gan_jax.evaluate --workdir=DIR --metrics=fid50k_full,kid50k_full,is50k
    python -m gan_jax.evaluate --network=network-snapshot.pkl --data=ffhq.zip --metrics=fid50k_full

Uses G_ema of the latest checkpoint (``--step`` for another) against the run's dataset
(``--data`` for another path), or an NVIDIA pickle converted in memory (``--network``, as
calc_metrics.py). Each metric appends one JSON line to ``DIR/metric-<name>.jsonl`` (``--outdir``
for another folder; local or ``gs://``, through ``etils.epath``)
(NVIDIA's ``metric-fid50k_full.jsonl`` layout: ``results``, ``metric``, ``total_time``,
``snapshot``, ``num_devices``, ``timestamp``, plus the Inception ``convention``). KID and IS come
from the same generated features as FID. The Inception weights are found as
``gan_jax/metrics/weights.py`` says, or given with ``--inception``. ProGAN's ``swd16k`` (and other
counts: ``swd2k``) needs no weights. ``pr50k3_full`` needs torchvision's VGG16 (``--vgg16``) and
``ppl_zfull``, ``ppl_wfull``, ``ppl_zend``, ``ppl_wend``, ``ppl2_wend`` also the lpips package's
``vgg.pth`` (``--lpips_lin``); the names are those of training's ``config.fid.metric``
(``gan_jax/metrics/evaluation.py``). The reals honour the run's ``data.xflip`` as NVIDIA's ``--mirror``
(legacy names only; ``_full`` names read no flips, as ``metric_main.py``).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from absl import app, flags, logging


def evaluate(workdir: str | None, metrics: list[str], step: int | None = None, data: str | None = None,
             convention: str = "nvidia", inception: str | None = None, download: bool = False,
             batch_size: int = 64, network: str | None = None, outdir: str | None = None,
             vgg16: str | None = None, lpips_lin: str | None = None) -> dict[str, Any]:
    """Compute ``metrics`` on the checkpoint of ``workdir`` (or on the NVIDIA pickle ``network``,
    converted in memory: calc_metrics.py's ``--network``); appends the JSON lines to
    ``outdir`` (default: ``workdir``, or the pickle's folder) and returns ``{name: results}``."""
    import jax
    from etils import epath

    from gan_jax import parallel
    from gan_jax.run_loader import load_run
    from gan_jax.metrics import evaluation
    from gan_jax.metrics import weights as weights_lib
    from gan_jax.run_config import open_dataset

    metrics = evaluation.parse_metrics(metrics)  # a str or a list; a bad name fails before anything is loaded
    if workdir is not None and "://" not in workdir and not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, 'checkpoints')}")
    config, recipe, state = load_run(workdir, step, network)
    if network is not None:
        snapshot = os.path.basename(network)
        if not data and config.data.source in ("", "embedded"):
            raise ValueError(f"{network} names no dataset that gan_jax can read (its training set: "
                             f"{config.data.source!r}); pass --data=DATASET.zip")
    else:
        from gan_jax import checkpoint  # noqa: PLC0415

        ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), async_save=False)
        snapshot = ckpt.latest_step() if step is None else step
        ckpt.close()
    if data:
        config.data.source = data
    mesh = parallel.make_mesh()  # the mesh load_run placed the state on
    source = open_dataset(config)
    folder = epath.Path(outdir or workdir or os.path.dirname(network) or ".")
    variables, weights_id = None, ""
    if evaluation.needs_inception(list(metrics)):
        path = weights_lib.find_weights(inception)
        if path is None and download:
            path = weights_lib.download_pytorch_fid()
        if path is None:
            raise weights_lib.InceptionWeightsMissing(weights_lib.missing_message(inception))
        variables, weights_id = weights_lib.read_weights_file(path), evaluation.weights_identity(path)
    vgg_vars = lpips_vars = generator = None
    vgg_id = ""
    if any(evaluation.parse_metric(n).kind == "pr" for n in metrics):
        from gan_jax.metrics import vgg16 as vgg16_lib  # noqa: PLC0415

        vgg_vars = vgg16_lib.load_vgg16(vgg16)  # VGG16WeightsMissing (a FileNotFoundError) says where to put it
        vgg_id = evaluation.vgg16_identity(vgg16)  # the reals' embeddings are cached with the FID statistics
    if evaluation.needs_lpips(metrics):
        from gan_jax.metrics import lpips as lpips_lib  # noqa: PLC0415

        generator = evaluation.stylegan2_generator(recipe)
        if generator is None:
            raise ValueError(f"PPL needs a StyleGAN2 generator (NVIDIA's PPLSampler); {workdir or network} is a "
                             f"{config.recipe!r} run")
        lpips_vars = lpips_lib.load_lpips(vgg16, lpips_lin)
    evaluator = evaluation.Evaluator(mesh, source, jax.jit(recipe.sample), recipe.sampling().z_dim, recipe.c_dim,
                                     variables, convention=convention, batch_size=batch_size,
                                     weights_id=weights_id, seed=int(config.seed),
                                     xflip=bool(config.data.get("xflip", False)), vgg16_variables=vgg_vars,
                                     lpips_variables=lpips_vars, generator=generator, vgg16_id=vgg_id)
    out: dict[str, Any] = {}
    for name in metrics:
        t0 = time.time()
        values = evaluator.compute(state, [name])
        # "Metrics/is50k/nvidia/mean" -> "is50k_mean"; "Metrics/swd16k/32" -> "swd16k_32";
        # "Metrics/pr50k3_full/precision" -> "pr50k3_full_precision" (metric_main.py's names)
        results = {"_".join(p for p in k.split("/")[1:] if p != convention): v for k, v in values.items()}
        record = {"results": results, "metric": name, "convention": convention, "total_time": time.time() - t0,
                  "snapshot": snapshot, "num_devices": mesh.devices.size, "timestamp": time.time()}
        out[name] = results
        if jax.process_index() == 0:
            append_line(folder / f"metric-{name}.jsonl", json.dumps(record))
            print(json.dumps(record), flush=True)
    return out


def append_line(path: Any, line: str) -> None:
    """Append ``line`` to the text file ``path``, local or remote (``gs://``: read, extend, rewrite,
    as object stores have no append) through ``etils.epath``."""
    from etils import epath  # noqa: PLC0415

    path = epath.Path(path)
    if "://" not in str(path):
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        return
    old = path.read_text() if path.exists() else ""
    path.write_text(old + line + "\n")


def _define_flags() -> None:
    """The command line (defined only when run as a program: ``gan_jax.sample`` has a --workdir too)."""
    flags.DEFINE_string("workdir", None, "Run directory (its checkpoints are evaluated).")
    flags.DEFINE_list("metrics", ["fid50k_full"], "Comma-separated metric names (fid50k_full, kid50k_full, is50k, "
                      "pr50k3_full, ppl_zfull, ppl_wfull, ppl_zend, ppl_wend, ppl2_wend, swd16k, ...).")
    flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
    flags.DEFINE_string("data", None, "Dataset to compare with (default: the run's data.source).")
    flags.DEFINE_enum("convention", "nvidia", ["nvidia", "pytorch_fid"], "Inception input convention.")
    flags.DEFINE_string("inception", None, "Inception weights file (pytorch-fid's .pth or a converted .npz).")
    flags.DEFINE_bool("download", False, "Download pytorch-fid's weights (sha256-checked) if none is found.")
    flags.DEFINE_integer("batch", 64, "Images per Inception step, over all devices.")
    flags.DEFINE_string("network", None, "An NVIDIA network pickle converted in memory, instead of --workdir "
                        "(calc_metrics.py's --network); needs --data unless the pickle names a dataset file.")
    flags.DEFINE_string("vgg16", None, "torchvision's vgg16-397923af.pth for pr* and ppl* (default: the search "
                        "order of gan_jax.metrics.vgg16).")
    flags.DEFINE_string("lpips_lin", None, "lpips v0.1's vgg.pth for ppl* (default: the installed lpips package's).")
    flags.DEFINE_string("outdir", None, "Where the metric-*.jsonl lines go (default: --workdir, or the pickle's "
                        "folder); local or gs://.")


def main(argv: list[str]) -> None:
    from gan_jax.console import quiet_libraries  # noqa: PLC0415 (imports jax: after flag parsing)

    quiet_libraries()  # before TensorFlow is imported (tensorflow_datasets)
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint operation at INFO
    f = flags.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if bool(f.workdir) == bool(f.network):
        raise app.UsageError("one of --workdir (a run) and --network (an NVIDIA pickle) is required")
    try:
        evaluate(f.workdir, f.metrics, f.step, f.data, f.convention, f.inception, f.download, f.batch,
                 network=f.network, outdir=f.outdir, vgg16=f.vgg16, lpips_lin=f.lpips_lin)
    except (FileNotFoundError, ValueError) as err:  # no checkpoint, no weights, a bad metric name
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    _define_flags()
    app.run(main)
