"""Shared test helpers: where the reference fixtures live, and NCHW <-> NHWC."""

from __future__ import annotations

import atexit
import gc
import json
import os
import pathlib
import shutil
import tempfile

# Eight fake CPU devices for the sharding tests; set before anything imports jax.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Compiling dominates these tests on a CPU: one persistent compilation cache for the session, which
# the command-line tests' subprocesses inherit (a fresh folder each session, so CI times stay honest).
# The process that makes the folder (pytest's controller; xdist workers inherit it) removes it at exit.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="gan_jax_test_xla_cache_")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
REPO = pathlib.Path(__file__).resolve().parents[1]

import numpy as np
import pytest

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program when a test module ends.

    Each XLA:CPU executable holds its machine code in its own memory mappings. One pytest process
    that keeps the executables of all ~350 tests alive passes Linux's default ``vm.max_map_count``
    (65530): LLVM then fails with "Cannot allocate memory" and the process aborts.
    """
    yield
    import jax

    jax.clear_caches()
    gc.collect()


def fixture_dir(family: str) -> pathlib.Path:
    """The fixture folder of ``family``, or skip the test saying why."""
    path = (FIXTURES / family).resolve()
    if not path.is_dir():
        pytest.skip(f"reference fixtures not found at {path} (expected ../shared/fixtures/{family} beside the repo)")
    return path


def load_npz(family: str, name: str) -> dict[str, np.ndarray]:
    with np.load(fixture_dir(family) / name) as f:
        return {k: f[k] for k in f.files}


def load_json(family: str, name: str):
    return json.loads((fixture_dir(family) / name).read_text())


def nhwc(x: np.ndarray) -> np.ndarray:
    """[N, C, H, W] -> [N, H, W, C]."""
    return np.transpose(x, (0, 2, 3, 1))


def nchw(x) -> np.ndarray:
    """[N, H, W, C] -> [N, C, H, W]."""
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def oihw_to_hwio(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 1, 0))


def stylegan2_train_config(fixture: dict, **train_overrides):
    """A gan_jax config with the settings of the sg2_32_train fixture (NVIDIA's loop kwargs)."""
    from gan_jax.configs import common

    cfg, k = common.stylegan2(fixture["config"]["resolution"]), fixture["config"]
    cfg.model.G.z_dim, cfg.model.G.w_dim = k["z_dim"], k["w_dim"]
    cfg.model.G.mapping_kwargs = dict(fixture["G_kwargs"]["mapping_kwargs"])
    cfg.model.G.synthesis_kwargs = dict(fixture["G_kwargs"]["synthesis_kwargs"])
    cfg.model.D = {k2: v for k2, v in fixture["D_kwargs"].items() if k2 != "class_name"}
    t = cfg.train
    t.batch_size, t.r1_gamma, t.pl_weight = k["batch_size"], k["r1_gamma"], k["pl_weight"]
    t.pl_batch_shrink, t.pl_decay, t.style_mixing_prob = k["pl_batch_shrink"], k["pl_decay"], k["style_mixing_prob"]
    t.g_reg_interval, t.d_reg_interval = k["G_reg_interval"], k["D_reg_interval"]
    t.g_lr = t.d_lr = k["lr"]
    t.betas, t.eps, t.ema_kimg = tuple(k["betas"]), k["eps"], k["ema_kimg"]
    t.ema_rampup = k["ema_rampup"]
    t.num_shards = 1
    cfg.augment.mode = "noaug"  # the fixture is NVIDIA's --aug=noaug loop
    for key, value in train_overrides.items():
        setattr(t, key, value)
    return cfg


def tiny_config(**train_overrides):
    """configs/default.py:tiny with TensorBoard off, and ``train`` fields overridden."""
    from gan_jax.configs import default

    cfg = default.get_config("tiny")
    cfg.log.tensorboard = False
    cfg.train.num_shards = 1  # mbstd over the whole (tiny) batch, whatever the device count
    for key, value in train_overrides.items():
        setattr(cfg.train, key, value)
    return cfg
