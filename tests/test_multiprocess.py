"""Two processes, one run: ``jax.distributed`` on localhost, 4 fake CPU devices each (gloo collectives).

Three runs of ``gan_jax.main`` (through tests/multiprocess_worker.py, which records what each
process read and the parameters it ended with), shared by the tests of this file:
- R: 1 process x 8 devices, ``STEPS`` steps uninterrupted, the params after every step recorded;
- B: 2 processes x 4 devices, the same command line plus the coordinator flags, the params after
  every step recorded; once process 0 logs step 4, process 1 and then process 0 get SIGTERM (a
  preemption notice); all must agree on one step ``s``, save it, and exit with status 0;
- C: the same 2-process command again: it resumes at ``s`` and trains to ``STEPS``.
R and B run at the same time, then C, which reuses B's compiled programs (a persistent
compilation cache in the test's tmp dir), so the file costs about one compilation per layout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO
from tolerance import assert_close

WORKER = os.path.join(REPO, "tests", "multiprocess_worker.py")
BATCH = 8
STEPS = 24  # B is throttled to <= 5 steps/s after step 4: the agreed step (~1 s after the notice) comes well before
# configs/default.py:tiny made cheaper to compile: 8x8 (two blocks), no R1 phase (one compiled step
# variant), no sample grids or checkpoints between the first and the last step. xflip off, so that
# the 8 rows of a batch (of 64 images, one epoch per 8 steps) are 8 different images. Adam's eps
# 1e-6 (NVIDIA's 1e-8): a gradient element near 0 makes Adam's first update lr * g / (|g| + eps)
# amplify the gradient's rounding by up to lr / eps; at 1e-8 that is 2.5e5, and one element of
# 2304 (D.b8.conv1) differed by 1e-4 after one step; at 1e-6 the bound is 2.5e3.
FLAGS = ["--config=configs/default.py:tiny", "--config.log.tensorboard=False", "--config.train.num_shards=1",
         f"--config.train.total_kimg={STEPS * BATCH / 1000}", "--config.train.r1_gamma=0", "--config.data.resolution=8",
         "--config.data.xflip=False", "--config.train.eps=1e-6",
         "--config.log.sample_every_kimg=1000", "--config.checkpoint.every_kimg=1000"]
TIMEOUT = 480  # s, for one run (another test file compiles on the other core); a hang (a process waiting on a collective its peer left) fails here


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Run:
    """The processes of one run, their merged stdout/stderr in ``record/out<i>.txt``."""

    def __init__(self, record, workdir, devices: int, num_processes: int = 1, port: int | None = None,
                 every_step: bool = False, cache_dir=None, throttle_after: int | None = None):
        os.makedirs(record, exist_ok=True)
        self.record = record
        flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f]
        env = {**os.environ, "XLA_FLAGS": " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"]),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        if cache_dir is not None:  # every compilation cached, however short
            env.update(JAX_COMPILATION_CACHE_DIR=str(cache_dir), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                       JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
        self.procs, self.logs = [], []
        for p in range(num_processes):
            argv = [sys.executable, WORKER, f"--record={record}", *(["--every_step"] if every_step else []),
                    *([f"--throttle_after={throttle_after}"] if throttle_after is not None else []), "--",
                    *FLAGS, f"--workdir={workdir}"]
            if num_processes > 1:
                argv += [f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={num_processes}", f"--process_id={p}"]
            log = open(os.path.join(record, f"out{p}.txt"), "w")  # noqa: SIM115 - closed by wait()
            self.logs.append(log)
            self.procs.append(subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))

    def output(self, p: int) -> str:
        with open(os.path.join(self.record, f"out{p}.txt")) as f:
            return f.read()

    def wait_for(self, pattern: str, p: int = 0, timeout: float = TIMEOUT) -> None:
        deadline = time.time() + timeout
        while not re.search(pattern, self.output(p), re.MULTILINE):
            if time.time() > deadline or any(proc.poll() is not None for proc in self.procs):
                raise AssertionError(f"process {p} never printed {pattern!r}:\n{self.output(p)[-3000:]}")
            time.sleep(0.1)

    def wait(self, timeout: float = TIMEOUT) -> list[int]:
        deadline = time.time() + timeout
        try:
            codes = [proc.wait(timeout=max(1.0, deadline - time.time())) for proc in self.procs]
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the run did not end in {timeout} s:\n" +
                                 "\n".join(self.output(p)[-2000:] for p in range(len(self.procs)))) from None
        for log in self.logs:
            log.close()
        return codes

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)

    def result(self, p: int) -> tuple[dict, dict[str, np.ndarray]]:
        with open(os.path.join(self.record, f"process{p}.json")) as f:
            info = json.load(f)
        with np.load(os.path.join(self.record, f"process{p}.npz")) as f:
            arrays = {k: f[k] for k in f.files}
        return info, arrays


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiprocess")
    port, cache = _free_port(), root / "compile_cache"
    t0 = time.perf_counter()
    started: list[_Run] = []
    try:
        ref = _Run(root / "R", root / "R" / "workdir", devices=8, every_step=True)
        started.append(ref)
        two = _Run(root / "B", root / "two_workdir", devices=4, num_processes=2, port=port, cache_dir=cache,
                   every_step=True, throttle_after=4)
        started.append(two)
        two.wait_for(r"^step 4/")
        for p in (1, 0):  # a notice on one host first, then on the other (both as SLURM / a TPU preemption do)
            two.procs[p].send_signal(signal.SIGTERM)
            time.sleep(0.3)
        codes_b = two.wait()
        saved_steps = sorted(int(d) for d in os.listdir(root / "two_workdir" / "checkpoints") if d.isdigit())
        codes_r = ref.wait()
        resumed = _Run(root / "C", root / "two_workdir", devices=4, num_processes=2, port=port, cache_dir=cache)
        started.append(resumed)
        codes_c = resumed.wait()
    finally:
        for run in started:
            run.kill()
    print(f"multiprocess runs: {time.perf_counter() - t0:.1f} s")
    return {"R": (ref, codes_r), "B": (two, codes_b), "C": (resumed, codes_c), "saved_steps": saved_steps}


def _saved_step(text: str, p: int) -> int:
    m = re.search(rf"\[process {p}/2\] preemption notice .* agreed by all 2 processes: saved step (\d+) to ", text)
    assert m, text[-3000:]
    return int(m.group(1))


def _close(a: dict[str, np.ndarray], b: dict[str, np.ndarray], prefix_a: str, prefix_b: str, atol: float,
           rtol: float = 0.0) -> int:
    """``|x - y| <= atol + rtol |y|`` for every array x under ``prefix_a`` in ``a`` and its twin y in
    ``b``; returns the count. (rtol: the mapping's equalized-lr weights are stored as N(0, 1/lr_mul^2)
    = N(0, 100^2), where one float32 ulp is already 1.5e-5.)"""
    keys = [k[len(prefix_a):] for k in a if k.startswith(prefix_a)]
    assert keys, f"no arrays under {prefix_a}"
    for k in keys:
        x, y = a[prefix_a + k], b[prefix_b + k]
        excess = float(np.max(np.abs(x - y) - rtol * np.abs(y)))
        assert excess <= atol, f"{k}: max |diff| {float(np.max(np.abs(x - y)))} exceeds {atol} + {rtol} |value|"
    return len(keys)


def test_two_processes_step_as_one_process_of_8_devices_and_read_disjoint_halves(runs):
    ref, codes_r = runs["R"]
    two, codes_b = runs["B"]
    assert codes_r == [0], ref.output(0)[-3000:]
    assert codes_b == [0, 0], two.output(0)[-3000:] + two.output(1)[-3000:]
    r_info, r_arrays = ref.result(0)
    (i0, a0), (i1, a1) = two.result(0), two.result(1)
    assert (r_info["devices"], r_info["process_count"]) == (8, 1)
    assert (i0["devices"], i0["process_count"], i1["process_index"]) == (8, 2, 1)
    step = i0["step"]
    assert i1["step"] == step and 0 < step < STEPS

    # Each train step on 2 processes = the step of the 1-process 8-device run, to 1e-5 (they differ
    # by rounding only: gloo sums the 8 shards' gradients in another order); printed for the record.
    assert _close(a0, r_arrays, "1/", "1/", 1e-5) > 10
    drift = [max(float(np.max(np.abs(a0[k] - r_arrays[k]))) for k in a0 if k.startswith(f"{k_}/"))
             for k_ in range(1, step + 1)]
    print("max |2-process - 1-process| of the params after each step:", " ".join(f"{d:.1e}" for d in drift))
    assert max(drift) <= 1e-5
    assert _close(a0, a0, "final/params", f"{step}/", 0.0) > 10  # the recorded last step is the final state
    for k in a0:  # replicated: both processes hold the same values
        np.testing.assert_array_equal(a0[k], a1[k], err_msg=k)

    # Each process read its own half of every global batch: disjoint, and together the batch.
    steps = sorted(set(i0["batches"]) & set(i1["batches"]), key=int)
    assert [int(s) for s in steps[:step]] == list(range(step))
    for s in steps:
        p0, p1, whole = i0["batches"][s], i1["batches"][s], r_info["batches"][s]
        assert len(p0) == len(p1) == BATCH // 2 and len(whole) == BATCH
        assert not set(p0) & set(p1), (s, p0, p1)
        assert p0 + p1 == whole, (s, p0, p1, whole)

    # The latents of step 0 drawn on each process's devices: no row repeats across processes, and
    # together they are the 1-process draw (one global draw, sharded; not one draw per process).
    z0, z1, z = (np.asarray(i["z_rows"]) for i in (i0, i1, r_info))
    assert z0.shape == z1.shape == (BATCH // 2, z.shape[1]) and z.shape == (BATCH, 16)
    assert np.min(np.abs(z0[:, None, :] - z1[None, :, :]).max(axis=-1)) > 0.1
    assert_close(np.concatenate([z0, z1]), z, atol=1e-6)


def test_sigterm_on_two_processes_saves_one_step_and_the_same_command_resumes(runs):
    ref, _ = runs["R"]
    two, codes_b = runs["B"]
    resumed, codes_c = runs["C"]
    assert codes_b == [0, 0], two.output(0)[-3000:] + two.output(1)[-3000:]
    saved = {_saved_step(two.output(p), p) for p in (0, 1)}
    assert len(saved) == 1, f"the processes saved different steps: {saved}"
    step = saved.pop()
    assert 4 < step < STEPS
    assert runs["saved_steps"] == [step]  # B saved that one step (checkpoint.every_kimg is beyond the run)

    assert codes_c == [0, 0], resumed.output(0)[-3000:] + resumed.output(1)[-3000:]
    assert re.search(rf"^resumed from .* at step {step} ", resumed.output(0), re.MULTILINE), resumed.output(0)[-3000:]
    (c0, a0), (c1, a1) = resumed.result(0), resumed.result(1)
    assert c0["step"] == c1["step"] == STEPS
    assert min(int(s) for s in c0["batches"]) == step  # the resumed run starts with the batch of step s
    for k in a0:
        np.testing.assert_array_equal(a0[k], a1[k], err_msg=k)
    # Interrupted at s and resumed on 2 processes = uninterrupted R (1 process, 8 devices), to 1e-5:
    # params, G_ema, buffers (w_avg) and pl_mean after STEPS steps. (A second, uninterrupted
    # 2-process run to compare bit for bit would cost another ~50 s of this file.)
    _, r_arrays = ref.result(0)
    assert _close(a0, r_arrays, "final/", "final/", 1e-5, rtol=1e-6) > 20  # measured: 1.5e-5 = 1 ulp at |w| ~ 200
