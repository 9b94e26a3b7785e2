"""The figures of docs/ada.md: augmented reals at several p, and ADA vs noaug on limited data.

    python experiments/ada/figures.py grid --out=docs/ada_reals.png
    python experiments/ada/figures.py train --workdir=/tmp/ada_limited --kimg=16 --num_images=256
    python experiments/ada/figures.py curves --workdir=/tmp/ada_limited --out=docs/ada_limited.png
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


def limited_config(mode: str):
    from gan_jax.configs import default  # noqa: PLC0415

    c = default.get_config()
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


def curves(out: str) -> None:
    import jax  # noqa: PLC0415
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from gan_jax import checkpoint, parallel, recipes  # noqa: PLC0415
    from gan_jax.compiled import initial_state  # noqa: PLC0415
    from gan_jax.data.embedded import EmbeddedShapes  # noqa: PLC0415

    n = _NUM_IMAGES.value
    data = EmbeddedShapes(32, num_images=2 * n)
    train_reals = data.images(np.arange(n)).astype(np.float32) / 127.5 - 1
    held_out = data.images(np.arange(n, 2 * n)).astype(np.float32) / 127.5 - 1
    mesh = parallel.make_mesh(jax.devices()[:1])
    fig, axes = plt.subplots(1, 1 + len(_MODES.value), figsize=(5 * (1 + len(_MODES.value)), 4))
    table = {}
    for k, mode in enumerate(_MODES.value):
        run = os.path.join(_WORKDIR.value, mode)
        ckpt = checkpoint.Checkpointer(os.path.join(run, "checkpoints"), async_save=False)
        import ml_collections  # noqa: PLC0415

        config = ml_collections.ConfigDict(ckpt.saved_config())
        recipe = recipes.build(config, mesh)
        template = initial_state(recipe, mesh)
        d = jax.jit(lambda params, x: recipe.discriminate(params, x, None))
        z = np.random.RandomState(0).randn(n, recipe.G.z_dim).astype(np.float32)
        rows = []
        for step in ckpt.all_steps():
            state = ckpt.restore(template, config.to_dict(), step)
            fakes = np.asarray(recipe.sample(state, z))
            means = [float(np.mean(np.asarray(d(state.params["D"], x)))) for x in (train_reals, held_out, fakes)]
            rows.append((int(state.images_seen) / 1000, *means))
        ckpt.close()
        rows = np.asarray(rows)
        table[mode] = rows.tolist()
        ax = axes[k + 1]
        for j, label in enumerate(("training reals", "held-out reals", "fakes (G_ema)")):
            ax.plot(rows[:, 0], rows[:, 1 + j], marker="o", label=label)
        ax.set_title(f"{mode}: mean D output")
        ax.set_xlabel("kimg")
        ax.legend()
        metrics = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
        p = [(m["kimg"], m["Progress/augment"]) for m in metrics if "Progress/augment" in m]
        r_t = [(m["kimg"], m["ADA/r_t"]) for m in metrics if "ADA/r_t" in m]
        if p:
            axes[0].plot(*zip(*p), label=f"{mode}: p")
            axes[0].plot(*zip(*r_t), linestyle="--", label=f"{mode}: r_t")
    axes[0].axhline(0.6, color="grey", linewidth=0.5)
    axes[0].set_title("ADA: p and r_t (target 0.6)")
    axes[0].set_xlabel("kimg")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=60)
    print(json.dumps(table))
    print(f"wrote {out}")


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in ("grid", "train", "curves", "zips"):
        raise app.UsageError("expected one of: grid, train, curves, zips")
    {"grid": lambda: grid(_OUT.value or "docs/ada_reals.png"), "train": train_runs, "zips": zips,
     "curves": lambda: curves(_OUT.value or "docs/ada_limited.png")}[argv[1]]()


if __name__ == "__main__":
    app.run(main)
