"""gan_jax.host_malloc: with it, a large block freed by one step is reused by the next without page
faults (what XLA:CPU's per-step scratch block needs); without it, glibc maps and faults it in anew;
``auto`` turns it on for large networks on a CPU only.

Each case runs in a fresh interpreter: the allocator's settings are process-wide and must precede
the threads. The block is allocated in a worker thread, as XLA's executor threads do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gan_jax import host_malloc
from gan_jax.config_files import load_config

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")

_PROBE = r"""
import json, resource, sys, threading
from gan_jax import host_malloc
from gan_jax.config_files import load_config
spec, thread_first = sys.argv[1], sys.argv[2] == "1"
import jax  # as gan_jax.main: the config decides after the imports, before the first computation
import numpy as np
if thread_first:  # a thread that allocated before: it has an arena of its own
    t = threading.Thread(target=lambda: np.ones(2**16)); t.start(); t.join()
applied = host_malloc.configure(load_config(spec) if spec else None)

faults = []
def steps():
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = np.ones(160 * 2**20 // 8)  # 160 MB, every page written (as a step's scratch block)
        del block
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
t = threading.Thread(target=steps)
t.start(); t.join()
print(json.dumps({"applied": applied, "faults": faults}))
"""


def _probe(setting: str | None, config: str = "", thread_first: bool = False, platforms: str = "cpu") -> dict:
    environ = {k: v for k, v in os.environ.items() if k not in ("GAN_JAX_HOST_MALLOC", "JAX_PLATFORMS")}
    environ.update(PYTHONPATH=_REPO, JAX_PLATFORMS=platforms,
                   **({} if setting is None else {"GAN_JAX_HOST_MALLOC": setting}))
    out = subprocess.run([sys.executable, "-c", _PROBE, config, str(int(thread_first))], capture_output=True,
                         text=True, env=environ, check=True, timeout=120, cwd=_REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _reused(result: dict) -> bool:
    # Counted in faults, whatever their page size (4 KiB, or 2 MiB with transparent huge pages):
    # without, every step faults the whole block in anew; with, only the first step does.
    first, rest = result["faults"][0], result["faults"][1:]
    if max(rest) < 0.02 * first:
        return True
    assert min(rest) > 0.8 * first > 0, result  # neither pattern: the probe itself is wrong
    return False


@_LINUX
def test_freed_block_is_reused_without_page_faults():
    off, on = _probe("0", "configs/stylegan2_bench32.py"), _probe("1")
    assert off["applied"] is False and not _reused(off)
    assert on["applied"] is True and _reused(on)


@_LINUX
def test_auto_is_on_for_large_networks_on_a_cpu_only():
    bench32 = _probe(None, "configs/stylegan2_bench32.py")  # auto is the default
    assert bench32["applied"] is True and _reused(bench32)
    demo = _probe("auto", "configs/default.py")
    assert demo["applied"] is False and not _reused(demo)
    gpu = _probe("auto", "configs/stylegan2_bench32.py", platforms="cuda")  # judged only, never started
    assert gpu["applied"] is False
    late = _probe("auto", "configs/stylegan2_bench32.py", thread_first=True)
    assert late["applied"] is False and not _reused(late)


def test_output_activation_is_nvidias_channels_dict():
    # bench32: batch 32 at 32x32, channels min(channel_base 4096 // 32, channel_max 256) = 128
    assert host_malloc.output_activation_bytes(load_config("configs/stylegan2_bench32.py")) == 32 * 32 * 32 * 128 * 4
    demo = load_config("configs/default.py")  # batch 16; channel_base 256, channel_max 128: 8 channels at 32x32
    assert host_malloc.output_activation_bytes(demo) == 16 * 32 * 32 * 8 * 4 < host_malloc.LARGE_ACTIVATION_BYTES
    demo.unlock()
    demo.train.batch_gpu = 4  # one round's activation
    assert host_malloc.output_activation_bytes(demo) == 4 * 32 * 32 * 8 * 4
    assert host_malloc.output_activation_bytes(load_config("configs/progan_cifar10.py")) is None


def test_runs_on_cpu_reads_jax_platforms(monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert host_malloc.runs_on_cpu()
    for platforms in ("cuda", "tpu", "cuda,cpu"):
        monkeypatch.setenv("JAX_PLATFORMS", platforms)
        assert not host_malloc.runs_on_cpu()


def test_bad_values_are_refused():
    environ = dict(os.environ, GAN_JAX_HOST_MALLOC="yes", PYTHONPATH=_REPO)
    out = subprocess.run([sys.executable, "-c", "from gan_jax import host_malloc; host_malloc.configure()"],
                         capture_output=True, text=True, env=environ, check=False, timeout=60)
    assert out.returncode != 0 and "GAN_JAX_HOST_MALLOC='yes'" in out.stderr
    assert "'auto' (the default" in out.stderr and "'1' (on)" in out.stderr
