"""Config files of ``python -m gan_jax.main`` (no flags are defined here, so tools and tests may import it):
where the installed configs are, how ``--config=configs/NAME.py[:variant]`` finds them from any folder,
loading one, and checking ``--config.a.b`` overrides against it."""

from __future__ import annotations

import difflib
import importlib.util
import os

from absl import app

import gan_jax.configs

CONFIGS_DIR = os.path.dirname(os.path.abspath(gan_jax.configs.__file__))  # the installed configs/ folder
DEFAULT_CONFIG = os.path.join(CONFIGS_DIR, "default.py")


def config_keys(config, prefix: str = "") -> list[str]:
    """Every dotted field name of ``config``."""
    keys = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        keys.append(name)
        if hasattr(value, "items"):
            keys += config_keys(value, name + ".")
    return keys


def check_config_overrides(argv: list[str], config) -> None:
    """An unknown ``--config.a.b`` is an error naming the closest valid key."""
    valid = config_keys(config)
    for arg in argv:
        if arg.startswith("--config."):
            key = arg[len("--config."):].split("=", 1)[0]
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1, cutoff=0.0)
                hint = f"; did you mean --config.{close[0]}?" if close else ""
                raise app.UsageError(f"unknown config key {key!r}{hint}")


def resolve_config_spec(spec: str) -> str:
    """``path.py[:arg]`` with a missing ``configs/NAME.py`` (or ``NAME.py``) replaced by the packaged one.

    A path that exists relative to the current folder is used as given; so is any other path (then
    config_flags reports the missing file).
    """
    path, sep, arg = spec.partition(":")
    if not path or os.path.exists(path):
        return spec
    folder, name = os.path.split(os.path.normpath(path))
    packaged = os.path.join(CONFIGS_DIR, name)
    if folder in ("", "configs") and name.endswith(".py") and name != "__init__.py" and os.path.isfile(packaged):
        return packaged + sep + arg
    return spec


def load_config(spec: str):
    """The ConfigDict of ``path.py[:arg]``, loaded as config_flags loads it."""
    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("_gan_jax_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()
