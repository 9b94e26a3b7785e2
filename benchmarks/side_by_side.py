"""gan_jax against NVIDIA's official StyleGAN2-ADA trainer, on the same machine in the same run.

    python benchmarks/side_by_side.py                      # bench32 with ADA, 3 repeats of each, alternating
    python benchmarks/side_by_side.py --aug=noaug          # the networks and losses alone
    python benchmarks/side_by_side.py --repeats=5 --threads=1
    python benchmarks/side_by_side.py --host_malloc=auto,0  # also gan_jax with GAN_JAX_HOST_MALLOC=0

Each repeat runs, one after the other and never at the same time (the official trainer first in
odd repeats and last in even ones),
  * ``../shared/peers/stylegan2_ada_official.py --cfg bench32`` (the official training step:
    ``training/networks.py``, ``training/loss.py``, its phase table and Adam, from a checkout of
    NVlabs/stylegan2-ada-pytorch given by ``--src``; kept out of git), one warm-up iteration and 16
    timed ones (batch_idx 1..16: 16 Gmain, 4 Greg, 16 Dmain, 1 Dreg), and
  * ``benchmarks/train_throughput.py --config=configs/stylegan2_bench32.py`` (the same networks,
    batch, losses and lazy-regularisation schedule; one warm-up cycle of 16 iterations, then
    16 timed ones, also containing one Dreg),
and prints both images/s figures, then the medians and their ratio. ``--aug`` (default ``ada``, as
NVIDIA's ``train.py``) is given to both: the driver's ``--aug`` and ``--config.augment.mode``, with the
'bgc' pipeline and p starting at 0 on both sides (the geometric resampling runs at any p). Both sides are float32 on
CPU, the reals are already in memory, and compilation / warm-up are left out (the peers README's
rules for a fair comparison). ``--threads`` is torch's thread count; JAX is given the same number
of cores with ``taskset`` when it is smaller than the machine's.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys

from absl import app, flags

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SRC = flags.DEFINE_string("src", os.environ.get("STYLEGAN2_ADA_SRC", os.path.join(_REPO, "scratch", "peers", "src")),
                           "Checkout of NVlabs/stylegan2-ada-pytorch (commit d72cc7d).")
_DRIVER = flags.DEFINE_string("driver", os.path.join(_REPO, "..", "shared", "peers", "stylegan2_ada_official.py"),
                              "The official-trainer driver.")
_PEER_PYTHON = flags.DEFINE_string("peer_python", sys.executable, "Python with torch for the official trainer.")
_CONFIG = flags.DEFINE_string("config", os.path.join(_REPO, "configs", "stylegan2_bench32.py"), "gan_jax config.")
_PEER_CFG = flags.DEFINE_string("peer_cfg", "bench32", "The driver's --cfg preset matching --config.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Alternating runs of each side.")
_THREADS = flags.DEFINE_integer("threads", os.cpu_count() or 1, "Threads (torch) / cores (JAX).")
_AUG = flags.DEFINE_enum("aug", "ada", ["ada", "noaug"], "Augmentation on both sides (NVIDIA's --aug).")
_HOST_MALLOC = flags.DEFINE_list("host_malloc", ["auto"],
                                 "GAN_JAX_HOST_MALLOC settings of gan_jax's runs (gan_jax/host_malloc.py), one "
                                 "run per setting and repeat: auto (the default, as a user runs it), 0, 1.")

_FIGURE = re.compile(r"images_per_sec=([0-9.]+)")


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    out = proc.stdout + proc.stderr
    found = _FIGURE.findall(out)
    if proc.returncode or not found:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{out[-3000:]}")
    return float(found[-1]), out


def main(argv: list[str]) -> None:
    del argv
    if not os.path.isdir(os.path.join(_SRC.value, "training")):
        raise app.UsageError(f"--src={_SRC.value} is not a checkout of NVlabs/stylegan2-ada-pytorch (no training/); "
                             "see ../shared/peers/README.md for the set-up")
    env = dict(os.environ)
    threads = _THREADS.value
    peer = [_PEER_PYTHON.value, _DRIVER.value, "--src", _SRC.value, "--cfg", _PEER_CFG.value, "--iters", "16",
            "--warmup", "1", "--threads", str(threads), "--aug", _AUG.value]
    ours = [sys.executable, os.path.join(_REPO, "benchmarks", "train_throughput.py"), f"--config={_CONFIG.value}",
            f"--config.augment.mode={_AUG.value}"]
    if threads < (os.cpu_count() or 1):
        ours = ["taskset", "-c", ",".join(str(i) for i in range(threads)), *ours]
    runs = [("official", peer, env)]
    for setting in _HOST_MALLOC.value:
        if setting not in ("auto", "0", "1"):
            raise app.UsageError(f"--host_malloc={setting!r}: expected auto, 0 or 1 (a comma-separated list)")
        name = "gan_jax" if setting == "auto" else f"gan_jax host_malloc={setting}"
        runs.append((name, ours, dict(env, GAN_JAX_HOST_MALLOC=setting)))
    figures: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    for i in range(_REPEATS.value):
        # Official first in odd repeats, last in even ones: a machine that speeds up or slows down
        # over the run (a shared host) favours neither side.
        for name, cmd, run_env in runs if i % 2 == 0 else runs[::-1]:
            ips, out = _run(cmd, run_env)
            figures[name].append(ips)
            load = os.getloadavg()[0]
            print(f"repeat {i + 1} {name:21s} images_per_sec={ips:.2f} (load average {load:.2f})", flush=True)
            if i == 0:
                for line in out.splitlines():
                    if line.startswith(("params:", "compile_seconds", "config=", "precision:")):
                        print(f"    {line}")
    med = {k: statistics.median(v) for k, v in figures.items()}
    for name in med:
        if name != "official":
            print(f"median images_per_sec: official={med['official']:.2f} {name}={med[name]:.2f} "
                  f"ratio={med[name] / med['official']:.2f}x (threads={threads}, repeats={_REPEATS.value})")


if __name__ == "__main__":
    app.run(main)
