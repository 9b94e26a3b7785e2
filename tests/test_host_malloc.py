"""gan_jax.host_malloc: with it, a large block freed by one step is reused by the next without page
faults (what XLA:CPU's per-step scratch block needs); without it, glibc maps and faults it in anew.

Each case runs in a fresh interpreter: the allocator's settings are process-wide and must precede
the threads. The block is allocated in a worker thread, as XLA's executor threads do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_PROBE = r"""
import json, resource, sys, threading
from gan_jax import host_malloc
applied = host_malloc.configure()
import numpy as np

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


def _probe(setting: str | None) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != "GAN_JAX_HOST_MALLOC"}
    environ.update(PYTHONPATH=_REPO, **({} if setting is None else {"GAN_JAX_HOST_MALLOC": setting}))
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=environ, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_block_is_reused_without_page_faults():
    off, on = _probe("0"), _probe("1")
    assert off["applied"] is False and on["applied"] is True
    # Counted in faults, whatever their page size (4 KiB, or 2 MiB with transparent huge pages):
    # without, every step faults the whole block in anew; with, only the first step does.
    assert min(off["faults"][1:]) > 0.8 * off["faults"][0] > 0, off
    assert max(on["faults"][1:]) < 0.02 * on["faults"][0], on


def test_off_by_default_and_bad_values_are_refused():
    assert _probe(None)["applied"] is False
    environ = dict(os.environ, GAN_JAX_HOST_MALLOC="yes", PYTHONPATH=_REPO)
    out = subprocess.run([sys.executable, "-c", "from gan_jax import host_malloc; host_malloc.configure()"],
                         capture_output=True, text=True, env=environ, check=False, timeout=60)
    assert out.returncode != 0 and "GAN_JAX_HOST_MALLOC='yes'" in out.stderr and "'1' (on)" in out.stderr
