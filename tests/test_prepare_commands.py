"""Every ``data.prepare_command`` a config prints runs as printed: it parses with ``gan_jax.data.prepare``'s
own argument parser (issue 23, must-show 3); and dataset_tool.py's ``--transform`` / ``--width`` /
``--height`` / ``--max-images`` / ``--resize-filter`` spellings work."""

from __future__ import annotations

import ast
import importlib
import pathlib
import shlex

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from gan_jax.data import prepare

PREFIX = ["python", "-m", "gan_jax.data.prepare"]


def _variants(path: pathlib.Path) -> list[str | None]:
    """None and every short string literal of the config file that ``get_config`` accepts as a variant."""
    module = importlib.import_module(f"gan_jax.configs.{path.stem}")
    literals = {n.value for n in ast.walk(ast.parse(path.read_text()))
                if isinstance(n, ast.Constant) and isinstance(n.value, str) and 0 < len(n.value) <= 16
                and n.value.replace("_", "").replace("-", "").isalnum()}
    out: list[str | None] = [None]
    for name in sorted(literals):
        try:
            module.get_config(name)
        except (ValueError, KeyError, TypeError):
            continue
        out.append(name)
    return out


def _commands() -> list[tuple[str, str]]:
    found = []
    for path in sorted((REPO / "configs").glob("*.py")):
        module = importlib.import_module(f"gan_jax.configs.{path.stem}")
        if not hasattr(module, "get_config"):
            continue
        for variant in _variants(path):
            config = module.get_config(variant) if variant else module.get_config()
            command = config.data.get("prepare_command") or ""
            if command:
                found.append((f"{path.name}:{variant or ''}", command))
    return found


COMMANDS = _commands()


def test_the_configs_print_prepare_commands():
    names = {name.split(":")[0] for name, _ in COMMANDS}
    # the ImageNet BigGAN configs (--transform=center-crop) and the FFHQ / CelebA-HQ ones at least
    assert {"biggan_imagenet128.py", "biggan_deep_imagenet256.py", "stylegan2_ffhq.py", "progan_celebahq.py"} <= names
    assert any("--transform=center-crop" in command for _, command in COMMANDS)


@pytest.mark.parametrize("name, command", COMMANDS, ids=[name for name, _ in COMMANDS])
def test_prepare_command_parses(name, command):
    argv = shlex.split(command)
    assert argv[:3] == PREFIX, f"{name}: {command!r} is not a `python -m gan_jax.data.prepare` command"
    args = prepare._parse(argv[3:])  # argparse exits (SystemExit) on an unknown or invalid flag
    config_name, _, variant = name.partition(":")
    module = importlib.import_module(f"gan_jax.configs.{config_name[:-3]}")
    config = module.get_config(variant) if variant else module.get_config()
    assert args.dest.endswith(".zip"), f"{name}: --dest={args.dest} is no zip"
    if config.data.source.endswith(pathlib.Path(args.dest).name):  # (a tiny variant trains on embedded data)
        assert args.resolution == config.data.resolution, (f"{name}: the command makes {args.resolution}x"
                                                           f"{args.resolution}, the config reads {config.data.resolution}")


def _image(path: pathlib.Path, w: int, h: int) -> None:
    rows = np.linspace(0, 255, h, dtype=np.uint8)[:, None, None]
    Image.fromarray(np.broadcast_to(rows, (h, w, 3)).copy()).save(path)


def test_dataset_tool_spellings(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _image(src / "a.png", 64, 32)  # a 2:1 image
    _image(src / "b.png", 40, 40)
    _image(src / "c.png", 8, 8)  # narrower than the canvas: center-crop-wide skips it, as dataset_tool.py
    wide = tmp_path / "wide"
    assert prepare.main([f"--source={src}", f"--dest={wide}", "--transform=center-crop-wide", "--width=16",
                         "--height=8", "--max-images=5", "--labels=none"]) == 0
    images = sorted(wide.rglob("*.png"))
    assert len(images) == 2  # c.png skipped
    a = np.asarray(Image.open(images[0]))
    assert a.shape == (16, 16, 3)
    assert not a[:4].any() and not a[12:].any() and a[4:12].any()  # the 16x8 band letterboxed in the middle
    square = tmp_path / "square"
    assert prepare.main([f"--source={src}", f"--dest={square}", "--width=8", "--height=8", "--resize-filter=lanczos",
                         "--max-images=1"]) == 0
    assert len(list(square.rglob("*.png"))) == 1
    with pytest.raises(SystemExit):
        prepare._parse([f"--source={src}", "--dest=x.zip", "--width=16", "--height=8"])  # not square, not wide
    with pytest.raises(SystemExit):
        prepare._parse([f"--source={src}", "--dest=x.zip", "--resolution=16", "--transform=center-crop-wide"])
