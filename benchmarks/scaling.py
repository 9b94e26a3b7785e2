"""Train-step throughput against the device count, and the per-step cost that a pod estimate needs.

    python benchmarks/scaling.py                 # measured table: 1, 2, 4, 8 fake CPU devices
    python benchmarks/scaling.py --paper         # FLOPs / bytes of the full-size configs' steps

Measured: each device count runs in its own subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``; the StyleGAN2 step of
``configs/default.py:tiny`` (16x16, the Gmain+Dmain+Gema variant that most steps run) is timed
at a fixed per-device batch (weak scaling) and at a fixed global batch (strong scaling). Each row
also gives XLA's ``cost_analysis()`` of the compiled step (FLOPs, bytes accessed) and the bytes
of the parameters that the gradient all-reduce moves. Fake devices share the host's cores: this
measures what sharding costs (partitioned program, collectives), not a speed-up.

``--paper``: the same step of ``configs/stylegan2_ffhq.py`` (1024x1024) and
``configs/biggan_imagenet128.py``, traced with abstract values (``jax.eval_shape``, no weights are
made) and lowered without compiling; ``Lowered.cost_analysis()`` counts the FLOPs and bytes of
the unoptimised HLO (FLOPs are what the chip must do; bytes are an upper bound, before fusion).
docs/scaling.md turns both into TPU estimates.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _config(spec: str, batch: int | None):
    """The config of ``spec``; ``batch`` (None: the config's own) as its train.batch_size."""
    from gan_jax.main import _load_config

    cfg = _load_config(os.path.join(REPO, spec))
    if batch is not None:
        cfg.train.batch_size = batch
    cfg.log.tensorboard = False
    return cfg


def _step_fn(recipe, cfg, mesh, step: int):
    """The jit-able ``(state, batch) -> state`` of the phases active at ``step`` (as train.CompiledSteps)."""
    import jax

    phases = recipe.phases(recipe.stages()[0])
    index = {p.name: i for i, p in enumerate(phases)}
    active = [p for p in phases if step % p.interval == 0]

    def fn(state, batch):
        key = jax.random.fold_in(state.rng, state.step)
        for phase in active:
            state, _ = phase.fn(state, batch, jax.random.fold_in(key, index[phase.name]))
        return state.replace(step=state.step + 1)

    return fn, "+".join(p.name for p in active)


def _param_bytes(state) -> int:
    import jax

    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state.params))


def _cost(analysis) -> tuple[float, float]:
    if isinstance(analysis, list):  # older jax: one dict per program
        analysis = analysis[0]
    return float(analysis.get("flops", float("nan"))), float(analysis.get("bytes accessed", float("nan")))


def child(spec: str, batch: int, repeats: int) -> dict:
    """One row: this process's devices, the step of ``spec`` at global ``batch``."""
    import jax
    import numpy as np

    from gan_jax import parallel, recipes, train

    cfg = _config(spec, batch)
    cfg.train.num_shards = jax.device_count()  # one mbstd group set per device, as on real devices
    source = train.open_dataset(cfg)
    cfg = train.resolve_config(cfg, source)
    mesh = parallel.make_mesh()
    recipe = recipes.build(cfg, mesh)
    state = parallel.replicate(recipe.create_state(jax.random.PRNGKey(0)), mesh)
    state = state.replace(step=jax.device_put(np.int32(1), parallel.replicated(mesh)))
    fn, name = _step_fn(recipe, cfg, mesh, step=1)
    local = {k: v for k, v in train.data_lib.load_batch(source, batch, 0, 0, False).items()}
    batch_arrays = parallel.global_batch(local, mesh)
    t0 = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=0, in_shardings=(parallel.replicated(mesh), parallel.data_sharded(mesh)),
                       out_shardings=parallel.replicated(mesh)).lower(state, batch_arrays).compile()
    compile_s = time.perf_counter() - t0
    flops, nbytes = _cost(compiled.cost_analysis())
    param_bytes = _param_bytes(state)
    for _ in range(2):  # warm-up
        state = compiled(state, batch_arrays)
    jax.block_until_ready(state.step)
    t0 = time.perf_counter()
    for _ in range(repeats):
        state = compiled(state, batch_arrays)
    jax.block_until_ready(state.step)
    seconds = (time.perf_counter() - t0) / repeats
    return {"devices": jax.device_count(), "batch": batch, "phases": name, "step_s": seconds,
            "images_per_s": batch / seconds, "compile_s": compile_s, "flops": flops, "bytes": nbytes,
            "param_bytes": param_bytes}


def paper(spec: str, batch: int | None = None) -> dict:
    """FLOPs and bytes of the step of ``spec`` at ``batch`` on one device, lowered, not compiled."""
    import jax
    import numpy as np

    from gan_jax import parallel, recipes

    cfg = _config(spec, batch)
    batch = int(cfg.train.batch_size)
    cfg.train.num_shards = 1
    cfg.data.channels = 3
    cfg.model.c_dim = int(cfg.data.get("num_classes", 0) or 0) if cfg.data.get("use_labels", False) else 0
    mesh = parallel.make_mesh(jax.devices()[:1])
    recipe = recipes.build(cfg, mesh)
    state = jax.eval_shape(recipe.create_state, jax.random.PRNGKey(0))
    r = int(cfg.data.resolution)
    batch_arrays = {"image": jax.ShapeDtypeStruct((batch, r, r, 3), np.uint8),
                    "label": jax.ShapeDtypeStruct((batch, cfg.model.c_dim), np.float32)}
    out = {"config": spec, "batch": batch, "param_bytes": _param_bytes(state),
           "params": sum(x.size for x in jax.tree.leaves(state.params))}
    for step in (1, 0):  # 1: the main phases only; 0: all phases, regularisers included
        fn, name = _step_fn(recipe, cfg, mesh, step)
        t0 = time.perf_counter()
        flops, nbytes = _cost(jax.jit(fn).lower(state, batch_arrays).cost_analysis())
        out[f"step{step}"] = {"phases": name, "flops": flops, "bytes": nbytes, "lower_s": time.perf_counter() - t0}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/default.py:tiny")
    ap.add_argument("--per_device_batch", type=int, default=4, help="weak scaling: global batch = this x devices")
    ap.add_argument("--global_batch", type=int, default=32, help="strong scaling: this global batch on every count")
    ap.add_argument("--devices", default="1,2,4,8")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--paper", action="store_true", help="FLOPs / bytes of the full-size configs (no compile)")
    ap.add_argument("--paper_configs", default="configs/stylegan2_ffhq.py,configs/biggan_imagenet128.py",
                    help="--paper: the configs to lower (each at its own batch)")
    ap.add_argument("--child_batch", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child_batch is not None:
        print("RESULT " + json.dumps(child(args.config, args.child_batch, args.repeats)), flush=True)
        return
    if args.paper:
        os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
        for spec in args.paper_configs.split(","):  # each at its own batch
            print(json.dumps(paper(spec)), flush=True)
        return

    rows = []
    for n in (int(x) for x in args.devices.split(",")):
        for mode, batch in (("weak", args.per_device_batch * n), ("strong", args.global_batch)):
            if mode == "strong" and batch == args.per_device_batch * n:
                rows.append({**rows[-1], "mode": "weak+strong"})
                continue
            env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}
            proc = subprocess.run([sys.executable, __file__, f"--config={args.config}", f"--child_batch={batch}",
                                   f"--repeats={args.repeats}"], env=env, capture_output=True, text=True, check=False)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                raise RuntimeError(f"{n} devices, batch {batch} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
            rows.append({**json.loads(line[len("RESULT "):]), "mode": mode})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| devices | mode | global batch | per device | step ms | images/s | GFLOP/step | GB accessed/step | param MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['devices']} | {r['mode']} | {r['batch']} | {r['batch'] // r['devices']} | {r['step_s'] * 1e3:.0f} | "
              f"{r['images_per_s']:.1f} | {r['flops'] / 1e9:.2f} | {r['bytes'] / 1e9:.3f} | {r['param_bytes'] / 1e6:.2f} |")


if __name__ == "__main__":
    main()
