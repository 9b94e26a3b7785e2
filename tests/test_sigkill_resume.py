"""Issue 22, Must-show 3: ``python -m gan_jax.main`` killed with SIGKILL at several moments of a
tiny run (while an asynchronous orbax checkpoint is being written, while stepping, early), rerun
with the same command each time until it finishes, ends with exactly the parameters of a run that
was never killed; and each rerun resumes from the newest checkpoint that was complete when the
previous process died (no step after it is counted as done)."""

from __future__ import annotations

import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# A checkpoint every step (8 images) of the tiny run's 10 steps, so that kills land near saves.
ARGS = ["-m", "gan_jax.main", "--config=configs/default.py:tiny", "--config.log.tensorboard=false",
        "--config.checkpoint.every_kimg=0.008"]
RUN_TIMEOUT_S = 600


def _complete_steps(workdir: pathlib.Path) -> list[int]:
    """Steps whose checkpoint orbax finalised (a plain ``<step>`` folder; in-progress saves are
    ``<step>.orbax-checkpoint-tmp-*``)."""
    folder = workdir / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def _saving(workdir: pathlib.Path) -> bool:
    folder = workdir / "checkpoints"
    return folder.is_dir() and any("tmp" in p.name for p in folder.iterdir())


def _start(workdir: pathlib.Path, log: pathlib.Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *ARGS, f"--workdir={workdir}"], cwd=REPO, stdout=open(log, "w"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)


def _kill_when(proc: subprocess.Popen, ready, what: str) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()``; False when it finished first."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while proc.poll() is None:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"run did not reach '{what}' in {RUN_TIMEOUT_S} s")
        time.sleep(0.02)
    return False


def _resumed_step(log: pathlib.Path) -> int | None:
    found = re.findall(r"resumed from \S+ at step (\d+)", log.read_text())
    return int(found[-1]) if found else None


def _final_state(workdir: pathlib.Path):
    import ml_collections  # noqa: PLC0415

    from gan_jax import checkpoint, compiled, parallel, recipes  # noqa: PLC0415

    ckpt = checkpoint.Checkpointer(str(workdir / "checkpoints"), async_save=False)
    config = ml_collections.ConfigDict(ckpt.saved_config())
    mesh = parallel.make_mesh()
    recipe = recipes.build(config, mesh)
    state = ckpt.restore(compiled.initial_state(recipe, mesh), config.to_dict())
    ckpt.close()
    return jax.device_get(state)


def _killed_run(root: pathlib.Path, moments: list[str]) -> pathlib.Path:
    """Run in ``root/killed``, SIGKILLed at each of ``moments`` in turn, then rerun to the end;
    checks after each rerun that it resumed from the newest checkpoint complete at the last kill."""
    workdir, complete_at_kill, resumed_from = root / "killed", None, []
    for i, moment in enumerate([*moments, "end"]):
        log = root / f"run{i}.log"
        start_steps = _complete_steps(workdir)
        t0 = time.monotonic()
        proc = _start(workdir, log)
        if moment == "saving":  # while orbax writes a checkpoint asynchronously, after this run completed one
            killed = _kill_when(proc, lambda before=start_steps: _saving(workdir) and bool(_complete_steps(workdir))
                                and _complete_steps(workdir)[-1] > max(before, default=0), moment)
        elif moment == "stepping":  # between checkpoints, once this run has written one of its own
            killed = _kill_when(proc, lambda before=start_steps: bool(_complete_steps(workdir))
                                and _complete_steps(workdir)[-1] > max(before, default=0)
                                and not _saving(workdir), moment)
        elif moment == "early":  # before the first step (compiling, or restoring)
            killed = _kill_when(proc, lambda started=t0: time.monotonic() - started > 3.0, moment)
        else:
            proc.wait(timeout=RUN_TIMEOUT_S)
            assert proc.returncode == 0, log.read_text()[-3000:]
            killed = False
        resumed = _resumed_step(log)
        if complete_at_kill is not None and (not killed or resumed is not None):
            # The previous kill left these complete checkpoints: this run resumed from the newest.
            assert resumed == (complete_at_kill[-1] if complete_at_kill else None), (moment, log.read_text()[-2000:])
            resumed_from.append(resumed)
        if killed:
            complete_at_kill = _complete_steps(workdir)
        else:
            assert moment == "end", f"the run finished before the '{moment}' kill"
    assert resumed_from and all(step is not None and step > 0 for step in resumed_from[-1:]), resumed_from
    return workdir


def _check_same(root: pathlib.Path, killed: pathlib.Path) -> None:
    straight = root / "straight"
    proc = subprocess.run([sys.executable, *ARGS, f"--workdir={straight}"], cwd=REPO, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    a, b = _final_state(straight), _final_state(killed)
    assert int(a.step) == int(b.step) and int(a.step) > 0
    for x, y in zip(jax.tree.leaves((a.params, a.ema_params, a.opt_state)),
                    jax.tree.leaves((b.params, b.ema_params, b.opt_state)), strict=True):
        np.testing.assert_array_equal(x, y)  # resume is exact: the same program on the same batches


def test_sigkill_during_an_async_save_resumes_exactly(tmp_path):
    _check_same(tmp_path, _killed_run(tmp_path, ["saving"]))


@pytest.mark.slow
def test_sigkill_at_several_moments_resumes_exactly(tmp_path):
    _check_same(tmp_path, _killed_run(tmp_path, ["early", "saving", "stepping", "saving"]))
