"""docs/recipes.md runs as written: its recipe module and config file, saved where it says, trained and sampled
with its two commands (the run cut to a few steps, and its /tmp folder moved into the test's own)."""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "recipes.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


def test_the_dcgan_example_trains_and_samples(tmp_path):
    module, config = _blocks("python")[:2]
    commands = [line for line in _blocks("bash")[0].splitlines() if line.strip()]
    assert len(commands) == 2 and "my_lab/dcgan.py" in DOC.read_text() and "my_lab/dcgan_config.py" in DOC.read_text()
    (tmp_path / "my_lab").mkdir()
    (tmp_path / "my_lab" / "__init__.py").write_text("")
    (tmp_path / "my_lab" / "dcgan.py").write_text(module)
    (tmp_path / "my_lab" / "dcgan_config.py").write_text(config)
    workdir = tmp_path / "run"
    for i, line in enumerate(commands):
        words = shlex.split(line.replace("/tmp/dcgan", str(workdir)))
        env = dict(os.environ)
        while "=" in words[0]:  # PYTHONPATH=.
            key, value = words.pop(0).split("=", 1)
            env[key] = value
        assert words[0] == "python"
        if i == 0:  # four steps of 32 images instead of 20 kimg
            words += ["--config.train.total_kimg=0.128", "--config.log.every_steps=2"]
        out = subprocess.run([sys.executable, *words[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=900)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
        if i == 0:
            assert "training my_lab.dcgan at 32x32" in out.stdout and "Dmain/loss=" in out.stdout and "Gmain/loss=" in out.stdout
    assert (workdir / "checkpoints" / "4").is_dir()
    assert (workdir / "samples" / f"fakes{128:09d}.png").is_file()
    assert len(list((workdir / "out").glob("seed*.png"))) == 16
