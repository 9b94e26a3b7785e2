"""The figures of docs/ada.md: augmented reals at several p, and ADA vs noaug on limited data.

    python experiments/ada/figures.py grid --out=docs/ada_reals.png
    python experiments/ada/figures.py train --workdir=/tmp/ada_limited --kimg=16 --num_images=256
    python experiments/ada/figures.py curves --workdir=/tmp/ada_limited --nvidia=/tmp/ada_limited --out=docs/ada_limited.png
    python experiments/ada/figures.py zips --workdir=/tmp/ada_limited   # the same images for NVIDIA's trainer

``train`` runs ``configs/default.py`` (the CPU demo network) on the first ``num_images`` images of the
embedded shapes dataset twice, with ``augment.mode='ada'`` and ``'noaug'``, keeping a checkpoint every
``--every_kimg``. ``curves`` evaluates each checkpoint: D's mean raw output on the training reals, on
held-out reals (images the run never saw: indices ``num_images .. 2 num_images - 1`` of the same
procedural dataset) and on G_ema's fakes (the ADA paper's Fig. 1b/c picture of D overfitting), and
reads ``p`` and ``r_t`` from each run's ``metrics.jsonl``. It needs matplotlib (``pip install matplotlib``;
not a gan_jax dependency).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

_OUT = flags.DEFINE_string("out", "", "PNG to write.")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/ada_limited", "Folder of the two runs (ada/, noaug/).")
_KIMG = flags.DEFINE_float("kimg", 16.0, "Training length of each run.")
_EVERY = flags.DEFINE_float("every_kimg", 2.0, "Checkpoint (and curve point) interval.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 256, "Training images (the limited dataset).")
_MODES = flags.DEFINE_list("modes", ["ada", "noaug"], "Runs to train / plot.")
_NVIDIA = flags.DEFINE_string("nvidia", "", "Folder of benchmarks/peers/ada_limited_official.py's nvidia_<mode>.jsonl "
                              "(a second row of plots); '' = gan_jax only.")


def limited_config(mode: str):
    from gan_jax.configs import default  # noqa: PLC0415

    c = default.get_config()
    # The network and schedule of the documented runs (the demo's settings before 2026-12-06 09:00):
    for kw in (c.model.G.synthesis_kwargs, c.model.D):
        kw.channel_base, kw.channel_max = 1024, 128
    c.model.G.synthesis_kwargs.use_noise = True
    c.train.style_mixing_prob = 0.9
    c.train.g_lr = c.train.d_lr = 0.0025
    c.train.r1_gamma = 0.01
    c.data.num_images = _NUM_IMAGES.value
    c.augment.mode = mode
    c.augment.pipe = "bgc" if mode != "noaug" else None
    c.augment.ada_kimg = 10.0 if mode == "ada" else None  # p can move by 1 in 10 kimg: a short run reacts
    c.train.total_kimg = _KIMG.value
    c.train.max_minutes = 0.0
    c.checkpoint.every_kimg = _EVERY.value
    c.checkpoint.keep = 1000
    c.checkpoint.async_save = False
    c.log.every_steps = 10
    c.fid.every_kimg = 0.0
    c.fid.at_start = False
    return c


def grid(out: str) -> None:
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    from gan_jax import augment, images  # noqa: PLC0415
    from gan_jax.data.embedded import EmbeddedShapes  # noqa: PLC0415

    reals = EmbeddedShapes(32, num_images=8).images(np.arange(8)).astype(np.float32) / 127.5 - 1
    pipe = augment.AugmentPipe(**augment.PRESETS["bgc"])
    rows = [pipe(jnp.asarray(reals), p, jax.random.PRNGKey(1)) for p in (0.0, 0.2, 0.5, 0.8)]
    png = images.image_grid(np.concatenate([np.asarray(r) for r in rows]), 4, 8)
    images.write_png(out, np.repeat(np.repeat(png, 2, axis=0), 2, axis=1))
    print(f"wrote {out}: rows p = 0, 0.2, 0.5, 0.8 ('bgc')")


def zips() -> None:
    """``limited.zip`` (the training images) and ``heldout.zip`` in NVIDIA's dataset_tool layout, for
    ``benchmarks/peers/ada_limited_official.py``; gan_jax reads them too (``--config.data.source=...``)."""
    import io  # noqa: PLC0415
    import zipfile  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    from gan_jax.data.embedded import EmbeddedShapes  # noqa: PLC0415
    from gan_jax.data.prepare import archive_name  # noqa: PLC0415

    n = _NUM_IMAGES.value
    data = EmbeddedShapes(32, num_images=2 * n)
    os.makedirs(_WORKDIR.value, exist_ok=True)
    for name, indices in (("limited.zip", range(n)), ("heldout.zip", range(n, 2 * n))):
        with zipfile.ZipFile(os.path.join(_WORKDIR.value, name), "w") as z:
            for k, i in enumerate(indices):
                buffer = io.BytesIO()
                Image.fromarray(data.images(np.asarray([i]))[0]).save(buffer, format="PNG")
                z.writestr(archive_name(k), buffer.getvalue())
            z.writestr("dataset.json", json.dumps({"labels": None}))
        print(f"wrote {os.path.join(_WORKDIR.value, name)}")


def train_runs() -> None:
    from gan_jax import train  # noqa: PLC0415

    for mode in _MODES.value:
        train.train(limited_config(mode), os.path.join(_WORKDIR.value, mode))


def gan_jax_rows(mode: str) -> tuple[list, list]:
    """``(D rows, p rows)`` of the gan_jax run ``mode``: per checkpoint ``(kimg, D(train reals),
    D(held-out reals), D(fakes))``, and ``(kimg, p, r_t)`` from its metrics.jsonl."""
    import jax  # noqa: PLC0415
    import ml_collections  # noqa: PLC0415

    from gan_jax import checkpoint, parallel, recipes  # noqa: PLC0415
    from gan_jax.compiled import initial_state  # noqa: PLC0415
    from gan_jax.data.embedded import EmbeddedShapes  # noqa: PLC0415

    n = _NUM_IMAGES.value
    data = EmbeddedShapes(32, num_images=2 * n)
    train_reals = data.images(np.arange(n)).astype(np.float32) / 127.5 - 1
    held_out = data.images(np.arange(n, 2 * n)).astype(np.float32) / 127.5 - 1
    mesh = parallel.make_mesh(jax.devices()[:1])
    run = os.path.join(_WORKDIR.value, mode)
    ckpt = checkpoint.Checkpointer(os.path.join(run, "checkpoints"), async_save=False)
    config = ml_collections.ConfigDict(ckpt.saved_config())
    recipe = recipes.build(config, mesh)
    template = initial_state(recipe, mesh)
    d = jax.jit(lambda params, x: recipe.discriminate(params, x, None))
    z = np.random.RandomState(123).randn(n, recipe.G.z_dim).astype(np.float32)
    rows = []
    for step in ckpt.all_steps():
        state = ckpt.restore(template, config.to_dict(), step)
        fakes = np.asarray(recipe.sample(state, z))
        rows.append((int(state.images_seen) / 1000, *(float(np.mean(np.asarray(d(state.params["D"], x))))
                                                     for x in (train_reals, held_out, fakes))))
    ckpt.close()
    with open(os.path.join(run, "metrics.jsonl")) as f:
        metrics = [json.loads(line) for line in f]
    p = [(m["kimg"], m["Progress/augment"], m["ADA/r_t"]) for m in metrics if "Progress/augment" in m]
    return rows, p


def nvidia_rows(mode: str) -> tuple[list, list]:
    """The same from ``benchmarks/peers/ada_limited_official.py``'s ``nvidia_<mode>.jsonl`` in ``--nvidia``."""
    with open(os.path.join(_NVIDIA.value, f"nvidia_{mode}.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    rows = [(m["kimg"], m["D_train_reals"], m["D_heldout_reals"], m["D_fakes"]) for m in lines]
    return rows, [(m["kimg"], m["p"], m["r_t"]) for m in lines if mode == "ada"]


def curves(out: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    sides = [("gan_jax", gan_jax_rows)] + ([("NVIDIA", nvidia_rows)] if _NVIDIA.value else [])
    modes = _MODES.value
    fig, axes = plt.subplots(len(sides), 1 + len(modes), figsize=(4.5 * (1 + len(modes)), 3.6 * len(sides)), squeeze=False)
    table = {}
    for row, (side, load) in enumerate(sides):
        for k, mode in enumerate(modes):
            rows, p = load(mode)
            table[f"{side}/{mode}"] = {"D": rows, "p": p}
            rows = np.asarray(rows)
            ax = axes[row, k + 1]
            for j, label in enumerate(("training reals", "held-out reals", "fakes (G_ema)")):
                ax.plot(rows[:, 0], rows[:, 1 + j], marker="o", markersize=3, label=label)
            ax.axhline(0, color="grey", linewidth=0.5)
            ax.set_title(f"{side}, {mode}: mean D output")
            ax.set_xlabel("kimg")
            ax.legend(fontsize=7)
            if p:
                p = np.asarray(p, dtype=np.float64)
                axes[row, 0].plot(p[:, 0], p[:, 1], label=f"{mode}: p")
                axes[row, 0].plot(p[:, 0], p[:, 2], linestyle="--", label=f"{mode}: r_t")
        axes[row, 0].axhline(0.6, color="grey", linewidth=0.5)
        axes[row, 0].set_title(f"{side}: p and r_t (target 0.6)")
        axes[row, 0].set_xlabel("kimg")
        axes[row, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=64)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(table, f)
    print(f"wrote {out} and its numbers beside it (.json)")


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in ("grid", "train", "curves", "zips"):
        raise app.UsageError("expected one of: grid, train, curves, zips")
    {"grid": lambda: grid(_OUT.value or "docs/ada_reals.png"), "train": train_runs, "zips": zips,
     "curves": lambda: curves(_OUT.value or "docs/ada_limited.png")}[argv[1]]()


if __name__ == "__main__":
    app.run(main)
