"""Train a GAN: ``python -m gan_jax.main --config=configs/default.py --workdir=DIR``.

``--config`` is an ml_collections config file (``path.py`` or ``path.py:variant``); any field can
be overridden, e.g. ``--config.train.batch_size=64``. Without ``--config`` the embedded demo
(``configs/default.py``) runs. The same command resumes from the latest checkpoint in DIR.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DEFAULT_CONFIG = os.path.join(_REPO, "configs", "default.py")
if _REPO not in sys.path:  # config files import their shared defaults as `configs.common`
    sys.path.append(_REPO)

_CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Training configuration file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs and samples.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 for a multi-process run.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in a multi-process run.")
_MULTIHOST = flags.DEFINE_bool("multihost", False, "Join the other processes of a TPU slice / SLURM job with "
                               "jax.distributed.initialize()'s own auto-detection.")


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


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.WARNING)  # orbax and clu log every save at INFO
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required: the directory for checkpoints, logs and samples")
    # Imported after flag parsing, so that --help is fast.
    from gan_jax import parallel, train

    parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                                    auto=_MULTIHOST.value)
    train.train(_CONFIG.value, _WORKDIR.value)


def _load_config(spec: str):
    """The ConfigDict of ``path.py[:arg]``, loaded as config_flags loads it."""
    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("_gan_jax_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()


def _parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing; an unknown ``--config.x`` override is one line naming the closest key."""
    if any(a.startswith("--config.") for a in argv):
        spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), _DEFAULT_CONFIG)
        try:
            config = _load_config(spec)
        except Exception:  # noqa: BLE001 - config_flags reports a broken file itself, below
            config = None
        if config is not None:
            try:
                check_config_overrides(argv, config)
            except app.UsageError as err:
                sys.exit(f"error: {err}")
    return flags.FLAGS(argv)


def run() -> None:
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
