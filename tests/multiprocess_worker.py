"""One process of tests/test_multiprocess.py: ``python -m gan_jax.main`` plus a record of what it did.

    python tests/multiprocess_worker.py --record=DIR [--every_step] [--throttle_after=K] -- <gan_jax.main flags>

Runs ``gan_jax.main`` unchanged (flags, ``jax.distributed``, the train loop, checkpoints), with
three observers patched in, and writes ``DIR/process<i>.json`` and ``DIR/process<i>.npz``:
- ``batches``: for each step whose batch this process loaded, the image indices it read from the
  dataset (the indices ``gan_jax.data.pipeline.load_batch`` passed to ``source.images``);
- ``z_rows``: the Gmain latents z of step 0 that live on this process's devices, drawn by the
  recipe's own ``draw_inputs`` under the training key ``fold_in(fold_in(rng, step), phase)``;
- the npz: the final ``params`` / ``ema_params`` / ``extra`` (``final/<path>``), and with
  ``--every_step`` the params after each step (``<step>/<path>``, the 1-process reference).
Start it with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` for N fake CPU devices.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _flat(tree, prefix: str) -> dict:
    import jax
    import numpy as np

    return {f"{prefix}{jax.tree_util.keystr(path)}": np.asarray(x) for path, x in jax.tree_util.tree_leaves_with_path(tree)}


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--")
    opts, main_argv = argv[:split], argv[split + 1:]
    record = next(o.split("=", 1)[1] for o in opts if o.startswith("--record="))
    every_step = "--every_step" in opts
    # --throttle_after=K: from step K on, loading a batch takes at least 0.2 s (at most 5 steps/s),
    # so that a preemption notice, agreed about a second after it arrives, lands well before the end.
    throttle_after = next((int(o.split("=", 1)[1]) for o in opts if o.startswith("--throttle_after=")), None)

    import jax
    import numpy as np

    from gan_jax import main as main_lib
    from gan_jax import parallel, train
    from gan_jax.data import pipeline
    from gan_jax.recipes import stylegan2

    batches: dict[int, list[int]] = {}
    per_step: dict[str, np.ndarray] = {}
    lock = threading.Lock()
    real_load = pipeline.load_batch

    def load_batch(source, global_batch, step, *args, **kwargs):
        read: list[np.ndarray] = []

        class Recorder:  # the source, with its reads written down
            def __getattr__(self, name):
                return getattr(source, name)

            def images(self, indices):
                read.append(np.asarray(indices))
                return source.images(indices)

        if throttle_after is not None and step >= throttle_after:
            time.sleep(0.2)
        out = real_load(Recorder(), global_batch, step, *args, **kwargs)
        with lock:
            batches[int(step)] = np.concatenate(read).tolist()
        return out

    pipeline.load_batch = load_batch  # _produce (the prefetch thread) looks it up in the module

    if every_step:
        real_call = train.CompiledSteps.__call__

        def call(self, state, batch, step):
            state, metrics = real_call(self, state, batch, step)
            per_step.update(_flat(jax.device_get(state.params), f"{step + 1}/"))
            return state, metrics

        train.CompiledSteps.__call__ = call

    real_train = train.train

    def recorded_train(config, workdir, max_steps=None):
        state = real_train(config, workdir, max_steps)
        mesh = parallel.make_mesh()
        config = train.resolve_config(config, train.open_dataset(config))
        recipe = stylegan2.StyleGAN2(config, num_shards=mesh.devices.size)
        key = jax.random.fold_in(jax.random.fold_in(state.rng, 0), 0)  # step 0, phase 0 (Gmain)
        z = jax.jit(lambda k: recipe.draw_inputs("Gmain", k, {})["z"], out_shardings=parallel.data_sharded(mesh))(key)
        shards = sorted(z.addressable_shards, key=lambda s: s.index[0].start)
        z_rows = np.concatenate([np.asarray(s.data) for s in shards]).tolist()
        p = jax.process_index()
        arrays = {**_flat(jax.device_get(state.params), "final/params"),
                  **_flat(jax.device_get(state.ema_params), "final/ema_params"),
                  **_flat(jax.device_get(state.extra), "final/extra"), **per_step}
        np.savez(os.path.join(record, f"process{p}.npz"), **arrays)
        with open(os.path.join(record, f"process{p}.json"), "w") as f:
            json.dump({"process_index": p, "process_count": jax.process_count(), "step": int(state.step),
                       "devices": jax.device_count(), "batches": {str(k): v for k, v in sorted(batches.items())},
                       "z_rows": z_rows}, f)
        return state

    train.train = recorded_train
    sys.argv = [sys.argv[0], *main_argv]
    main_lib.run()


if __name__ == "__main__":
    main()
