"""Train a GAN: ``python -m gan_jax.main --config=configs/default.py --workdir=DIR``.

``--config`` is an ml_collections config file (``path.py`` or ``path.py:variant``); any field can
be overridden, e.g. ``--config.train.batch_size=64``. Without ``--config`` the embedded demo
(``configs/default.py``) runs. The same command resumes from the latest checkpoint in DIR.

The repository's ``configs/`` folder is installed as the package ``gan_jax.configs``: a
``--config=configs/NAME.py`` (or ``NAME.py``) that does not exist relative to the current folder is
looked up there, so the README's commands work from any folder after ``pip install .``. A path
that exists is used as given (a copied and edited config anywhere).
"""

from __future__ import annotations

import os
import sys

# Before anything imports TensorFlow (clu's writers, tensorflow_datasets): its banners read these
# variables at import (gan_jax.console.quiet_libraries says which and why; a user's value wins).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from gan_jax import host_malloc  # noqa: E402
from gan_jax.config_files import (  # noqa: E402
    CONFIGS_DIR,
    DEFAULT_CONFIG,
    check_config_overrides,
    load_config,
    resolve_config_spec,
)

_CONFIG = config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Training configuration file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs and samples.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 for a multi-process run.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in a multi-process run.")
_MULTIHOST = flags.DEFINE_bool("multihost", False, "Join the other processes of a TPU slice / SLURM job with "
                               "jax.distributed.initialize()'s own auto-detection.")


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.WARNING)  # orbax and clu log every save at INFO
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required: the directory for checkpoints, logs and samples")
    host_malloc.configure(_CONFIG.value)  # before jax's first computation (gan_jax/host_malloc.py)
    # Imported after flag parsing, so that --help is fast.
    from gan_jax import parallel, recipes, train
    from gan_jax.console import quiet_libraries

    quiet_libraries()
    parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                                    auto=_MULTIHOST.value)
    try:
        train.train(_CONFIG.value, _WORKDIR.value)
    except (recipes.RecipeNotFound, recipes.UnknownConfigField) as err:  # a config mistake: one line, no traceback
        sys.exit(f"error: {err}")


def _resolve_config_flag(argv: list[str]) -> list[str]:
    """``argv`` with the value of ``--config=SPEC`` / ``--config SPEC`` passed through ``resolve_config_spec``."""
    out = list(argv)
    for i in range(1, len(out)):
        arg = out[i]
        if arg == "--":
            break
        for name in ("--config", "-config"):
            if arg.startswith(name + "="):
                out[i] = f"{name}={resolve_config_spec(arg[len(name) + 1:])}"
            elif arg == name and i + 1 < len(out):
                out[i + 1] = resolve_config_spec(out[i + 1])
    return out


def _config_spec(argv: list[str]) -> str:
    """The ``--config`` value in ``argv`` (the last one wins, as in absl), else the default config."""
    spec = DEFAULT_CONFIG
    for i, arg in enumerate(argv[1:], 1):
        if arg == "--":
            break
        for name in ("--config", "-config"):
            if arg.startswith(name + "="):
                spec = arg[len(name) + 1:]
            elif arg == name and i + 1 < len(argv):
                spec = argv[i + 1]
    return spec


def _parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing; a missing ``configs/NAME.py`` is the packaged config of that name
    (``resolve_config_spec``); an unknown ``--config.x`` override is one line naming the closest key."""
    argv = _resolve_config_flag(argv)
    path = _config_spec(argv).partition(":")[0]
    if not os.path.isfile(path):  # config_flags would only fail when the config is first read
        names = sorted(f for f in os.listdir(CONFIGS_DIR)
                       if f.endswith(".py") and not f.endswith(("common.py", "__init__.py")))
        sys.exit(f"error: config file {path!r} not found (relative to {os.getcwd()}); the packaged configs "
                 f"are configs/NAME.py with NAME.py one of {', '.join(names)}")
    if any(a.startswith("--config.") for a in argv):
        try:
            config = load_config(_config_spec(argv))
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
