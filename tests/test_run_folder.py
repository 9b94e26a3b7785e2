"""Issue 23, must-show 2: the tiny demo through ``python -m gan_jax.main`` prints a clean console and
writes the run folder's ``config.json``, ``log.txt`` and ``metrics.jsonl``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

# What the console must not show: TensorFlow's C++ log lines (oneDNN banner, cuda/TensorRT notices
# start with "I0000"/"W0000"/"E0000"... and the file name), absl's C++ pre-init notice, orbax's
# tracked-metric warning at each save.
_NOISE = [
    re.compile(r"^[IWEF]\d{4} .*\.(cc|h):\d+\]"),  # absl/TF C++ log line: I0000 00:00:... port.cc:153]
    re.compile(r"oneDNN"),
    re.compile(r"tensorflow", re.IGNORECASE),
    re.compile(r"before absl::InitializeLog"),
    re.compile(r"tracked_metric"),
]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One subprocess run of the tiny demo: (workdir, console lines)."""
    workdir = tmp_path_factory.mktemp("run_folder") / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
    out = subprocess.run([sys.executable, "-m", "gan_jax.main", "--config=configs/default.py:tiny",
                          f"--workdir={workdir}"], capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    console = (out.stdout + out.stderr).splitlines()
    assert out.returncode == 0, "\n".join(console[-40:])
    return workdir, out.stdout.splitlines(), console


def test_console_is_clean(demo_run):
    _, _, console = demo_run
    noisy = [line for line in console if any(p.search(line) for p in _NOISE)]
    assert not noisy, "library noise on the console:\n" + "\n".join(noisy)
    progress = [line for line in console if line.startswith("step ")]
    assert len(progress) == 5, console  # tiny: 10 steps, a line every 2 (log.every_steps)


def test_config_json_is_the_resolved_config(demo_run):
    from gan_jax.configs import default

    workdir, _, _ = demo_run
    saved = json.loads((workdir / "config.json").read_text())
    expected = json.loads(default.get_config("tiny").to_json())
    # run_config.resolve_config fills these in from the dataset: RGB shapes, no labels
    expected["data"]["channels"], expected["model"]["c_dim"] = 3, 0
    assert saved["data"]["channels"] == 3 and saved["model"]["c_dim"] == 0
    assert saved == expected


def test_log_txt_holds_the_console(demo_run):
    workdir, stdout, _ = demo_run
    log = (workdir / "log.txt").read_text().splitlines()
    assert log == [line for line in stdout if line.strip()]
    assert any(line.startswith("training stylegan2") for line in log)


def test_metrics_jsonl(demo_run):
    workdir, _, _ = demo_run
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    progress = [r for r in records if "Gmain/Loss/G/loss" in r]
    assert [r["step"] for r in progress] == [2, 4, 6, 8, 10]
    for r in progress:
        assert {"step", "kimg", "Gmain/Loss/G/loss", "Dmain/Loss/D/loss", "Progress/kimg", "timestamp"} <= set(r)
        assert r["kimg"] == pytest.approx(r["step"] * 8 / 1000)  # batch 8
    assert progress[0]["Dreg/Loss/r1_penalty"] >= 0  # step 0 ran the D regulariser (d_reg_interval 16)
    assert progress[0]["Timing/images_per_sec"] is None  # no timing in the window that compiled: null, not NaN


def test_orbax_tracked_metric_warning_is_filtered(tmp_path):
    """A checkpointer that keeps the best FID, saved without one: no orbax warning."""
    import logging

    import jax.numpy as jnp
    from absl import logging as absl_logging

    from gan_jax.checkpoint import Checkpointer
    from gan_jax.console import quiet_libraries

    quiet_libraries()
    seen: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Catch()
    absl_logging.get_absl_logger().addHandler(handler)
    try:
        ckpt = Checkpointer(str(tmp_path / "ckpt"), async_save=False, best_metric="fid16")
        ckpt.save(1, {"x": jnp.zeros(2)}, {"a": 1})
        ckpt.close()
    finally:
        absl_logging.get_absl_logger().removeHandler(handler)
    assert not [m for m in seen if "tracked_metric" in m]


def test_resume_appends(tmp_path):
    """A second Logger on the same folder appends to log.txt and metrics.jsonl."""
    from gan_jax.configs import default
    from gan_jax.console import Logger

    config = default.get_config("tiny")
    config.log.tensorboard = False
    for text in ("first", "second"):
        logger = Logger(config, str(tmp_path), images_at=lambda s: 8 * s)
        logger.print(text)
        logger.scalars(3, {"loss": 1.5, "nan": float("nan")})
        logger.close()
    assert (tmp_path / "log.txt").read_text() == "first\nsecond\n"
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["kimg"], r["loss"], r["nan"]) for r in lines] == [(3, 0.024, 1.5, None)] * 2
