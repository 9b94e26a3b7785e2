"""``python -m gan_jax.convert --source=network-snapshot.pkl --dest=DIR``: official network pickles -> gan_jax runs.

Reads an NVIDIA StyleGAN2-ADA / StyleGAN3-repo PyTorch snapshot, or a ProGAN / StyleGAN (1)
TensorFlow ``(G, D, Gs)`` pickle, without running any code from it (:mod:`gan_jax.nvidia_pickle`),
and writes ``DIR/checkpoints/0`` and ``DIR/config.py`` (:mod:`gan_jax.run_dir`), which
``gan_jax.sample``, ``gan_jax.evaluate`` and ``gan_jax.main`` accept.

The pieces live with what they are about, and are re-exported here so that
``from gan_jax.convert import load_nvidia_pickle, stylegan2_from_torch, ...`` keeps working:

* :mod:`gan_jax.models.from_kwargs`: official constructor keywords -> Flax modules
  (``generator_from_kwargs``, ``progan_generator_from_kwargs``, ``biggan_networks_from_kwargs``, ...);
* :mod:`gan_jax.layouts`: upstream weights <-> Flax variables, one module per upstream
  (``stylegan2_from_torch``, ``progan_from_tf``, ``stylegan_from_tf``, ``biggan_from_torch``, ...),
  with the mismatch report ``StateDictMismatch``.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import numpy as np

from gan_jax import nvidia_pickle
from gan_jax.layouts.biggan import (
    biggan_abstract_variables,
    biggan_from_torch,
    biggan_state_dict_from_variables,
    biggan_state_shapes,
    biggan_variables_from_state_dict,
)
from gan_jax.layouts.common import StateDict, StateDictMismatch, Variables
from gan_jax.layouts.progan import progan_from_tf, progan_tf_from_variables, progan_tf_shapes, progan_variables_from_tf
from gan_jax.layouts.stylegan import (
    stylegan_from_tf,
    stylegan_tf_from_variables,
    stylegan_tf_shapes,
    stylegan_variables_from_tf,
)
from gan_jax.layouts.stylegan2 import (
    state_dict_from_variables,
    stylegan2_from_torch,
    upstream_state_shapes,
    variables_from_state_dict,
)
from gan_jax.models.from_kwargs import (
    biggan_discriminator_from_kwargs,
    biggan_generator_from_kwargs,
    biggan_networks_from_kwargs,
    discriminator_from_kwargs,
    generator_from_kwargs,
    progan_discriminator_from_kwargs,
    progan_generator_from_kwargs,
    stylegan2_discriminator_from_kwargs,
    stylegan2_generator_from_kwargs,
    stylegan_discriminator_from_kwargs,
    stylegan_generator_from_kwargs,
)

__all__ = [
    # the command
    "convert_nvidia_pickle", "load_nvidia_pickle", "main",
    # re-exported from gan_jax.models.from_kwargs
    "biggan_discriminator_from_kwargs", "biggan_generator_from_kwargs", "biggan_networks_from_kwargs",
    "discriminator_from_kwargs", "generator_from_kwargs", "progan_discriminator_from_kwargs",
    "progan_generator_from_kwargs", "stylegan2_discriminator_from_kwargs", "stylegan2_generator_from_kwargs",
    "stylegan_discriminator_from_kwargs", "stylegan_generator_from_kwargs",
    # re-exported from gan_jax.layouts
    "StateDict", "StateDictMismatch", "Variables",
    "state_dict_from_variables", "stylegan2_from_torch", "upstream_state_shapes", "variables_from_state_dict",
    "progan_from_tf", "progan_tf_from_variables", "progan_tf_shapes", "progan_variables_from_tf",
    "stylegan_from_tf", "stylegan_tf_from_variables", "stylegan_tf_shapes", "stylegan_variables_from_tf",
    "biggan_abstract_variables", "biggan_from_torch", "biggan_state_dict_from_variables", "biggan_state_shapes",
    "biggan_variables_from_state_dict",
]


def load_nvidia_pickle(path: Any) -> dict[str, Any]:
    """Read an NVIDIA StyleGAN2-ADA / StyleGAN3-repo ``network-snapshot-*.pkl`` without torch and
    without running any code from it: ``{'G', 'D', 'G_ema': (init_kwargs, state_dict),
    'training_set_kwargs': dict | None}`` (absent keys stay absent). See ``gan_jax.nvidia_pickle``."""
    return nvidia_pickle.load_nvidia_pickle(path)


# ----------------------------------------------------------------------------------------------
# The command.

_STYLEGAN2_NETWORKS = ("G", "G_ema", "D")
_STYLEGAN2_DATA_KWARGS = ("c_dim", "img_resolution", "img_channels")  # the config's data / model.c_dim fields
_GROWING_DATA_KWARGS = ("num_channels", "resolution", "label_size")


def _plain_kwargs(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain_kwargs(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_kwargs(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _model_kwargs(kwargs: Mapping[str, Any], data_kwargs: tuple[str, ...]) -> dict[str, Any]:
    """A network's kwargs as config data (``model.G`` / ``model.D``), less those the data section sets."""
    return {k: _plain_kwargs(v) for k, v in kwargs.items() if k not in data_kwargs}


def _recipe(config: Any) -> Any:
    """The recipe object of ``config.recipe`` on one device (the only place the command makes one)."""
    from gan_jax import recipes  # noqa: PLC0415 (optax, orbax: not needed to read or convert weights)

    return recipes.recipe_class(config.recipe)(config, num_shards=1)


def _write_run(source: str, dest: str, recipe: Any, config: Any, g_vars: Variables, d_vars: Variables | None,
               g_ema_vars: Variables, **state_kwargs: Any) -> str:
    """A fresh training state around the converted variables -> a run directory; returns the config path."""
    from gan_jax import parallel, run_dir  # noqa: PLC0415

    config.train.num_shards = None  # the run's own choice again (1 was for building the recipe here)
    state = recipe.create_state(jax.random.PRNGKey(0), g_vars, d_vars, g_ema_vars, **state_kwargs)
    return run_dir.write_run_dir(source, dest, parallel.replicate(state, parallel.make_mesh()), config)


def _run_config(G_kwargs: Mapping[str, Any], D_kwargs: Mapping[str, Any] | None, training_set: Mapping[str, Any] | None):
    """A gan_jax StyleGAN2 config (``gan_jax.configs.common`` defaults) around NVIDIA's network kwargs."""
    from gan_jax.configs import common  # noqa: PLC0415 (ml_collections)

    G = generator_from_kwargs(G_kwargs)  # validates the kwargs before anything is written
    config = common.stylegan2(resolution=G.img_resolution)
    config.data.channels = G.img_channels
    config.model.c_dim = G.c_dim
    config.model.G = _model_kwargs(G_kwargs, _STYLEGAN2_DATA_KWARGS)
    if D_kwargs is not None:
        config.model.D = _model_kwargs(D_kwargs, _STYLEGAN2_DATA_KWARGS)
        # so that fine-tuning can set --config.model.D.block_kwargs.freeze_layers (NVIDIA's --freezed)
        config.model.D.block_kwargs = {"freeze_layers": 0, **dict(config.model.D.get("block_kwargs") or {})}
    training_set = dict(training_set or {})
    config.data.source = training_set.get("path") or "embedded"
    config.data.use_labels = bool(G.c_dim)
    config.data.xflip = bool(training_set.get("xflip", False))
    return config


def convert_nvidia_pickle(source: str, dest: str) -> str:
    """``network-snapshot.pkl`` -> ``dest/checkpoints/0`` (G, D, G_ema, fresh Adam) and
    ``dest/config.py``, which ``gan_jax.sample``, ``gan_jax.evaluate`` and ``gan_jax.main`` accept.
    Returns the config path."""
    nets = load_nvidia_pickle(source)  # refuses a G that is not a Generator, a D that is not a Discriminator
    if any(getattr(net, "format", None) in ("B", "C", "D") for net in nets.values()):
        return _convert_tf_pickle(nets, source, dest)  # TensorFlow (G, D, Gs) pickles
    for key in _STYLEGAN2_NETWORKS:
        kind = getattr(nets.get(key), "kind", "stylegan2")
        if key in nets and kind not in ("stylegan2", "unknown"):
            raise ValueError(f"{source}: {key} is a {kind} network; gan_jax.convert reads StyleGAN2 networks")
    g_key = "G_ema" if "G_ema" in nets else "G"
    if g_key not in nets:
        raise ValueError(f"{source} holds no generator (expected 'G' or 'G_ema'; found {sorted(nets)})")
    D_kwargs = nets["D"][0] if "D" in nets else None
    config = _run_config(nets[g_key][0], D_kwargs, nets.get("training_set_kwargs"))
    config.train.num_shards = 1
    recipe = _recipe(config)
    g_ema = variables_from_state_dict(recipe.G, nets[g_key][1])
    g = variables_from_state_dict(recipe.G, nets["G"][1]) if "G" in nets else g_ema
    d = variables_from_state_dict(recipe.D.clone(mbstd_num_shards=1), nets["D"][1]) if "D" in nets else None
    return _write_run(source, dest, recipe, config, g, d, g_ema)


def _convert_growing_pickle(nets: Mapping[str, Any], source: str, dest: str, family: str) -> str:
    """ProGAN / StyleGAN (1) ``(G, D, Gs)`` records -> a gan_jax run of recipe ``family``, sampled at
    ``Gs``'s ``lod``. The config is ``gan_jax.configs.<family>_common``'s with the pickle's static
    kwargs as ``model.G`` / ``model.D`` (build-function defaults for the rest, as the official code)."""
    from gan_jax.configs import progan_common, stylegan_common  # noqa: PLC0415 (ml_collections)

    make_config, from_kwargs, from_tf = {
        "progan": (progan_common.progan, progan_generator_from_kwargs, progan_variables_from_tf),
        "stylegan": (stylegan_common.stylegan, stylegan_generator_from_kwargs, stylegan_variables_from_tf),
    }[family]
    g_ema = nets.get("G_ema") or nets.get("G")
    if g_ema is None:
        raise ValueError(f"{source} holds no generator (expected 'G' or 'G_ema'; found {sorted(nets)})")
    G_kwargs = dict(g_ema.static_kwargs)
    G = from_kwargs(G_kwargs)  # validates the kwargs before anything is written
    config = make_config(resolution=int(G.resolution))
    config.data.channels, config.model.c_dim = int(G.num_channels), int(G.label_size)
    config.data.use_labels = bool(G.label_size)
    config.model.G = _model_kwargs(G_kwargs, _GROWING_DATA_KWARGS)
    if "D" in nets:
        config.model.D = _model_kwargs(nets["D"].static_kwargs, _GROWING_DATA_KWARGS)
    config.train.num_shards = 1
    recipe = _recipe(config)
    g_ema_vars = from_tf(recipe.G, g_ema.variables)
    g_vars = from_tf(recipe.G, nets["G"].variables) if "G" in nets else g_ema_vars
    d_vars = from_tf(recipe.D, nets["D"].variables) if "D" in nets else None
    lod = float(np.asarray(g_ema.variables.get("lod", 0.0)))
    return _write_run(source, dest, recipe, config, g_vars, d_vars, g_ema_vars, lod=lod)


# TF pickle kind (gan_jax.nvidia_pickle.TFNetwork.kind) -> converter(nets, source, dest) -> config path.
_TF_PICKLE_CONVERTERS: dict[str, Any] = {
    family: functools.partial(_convert_growing_pickle, family=family) for family in ("progan", "stylegan")}
_TF_PICKLE_REFUSALS = {
    "stylegan2-tf": "convert it to a PyTorch snapshot with NVIDIA's stylegan2-ada-pytorch `python legacy.py "
                    "--source=FILE.pkl --dest=FILE-pt.pkl`, then run gan_jax.convert on that",
}


def _convert_tf_pickle(nets: Mapping[str, Any], source: str, dest: str) -> str:
    kinds = {net.kind for net in nets.values() if hasattr(net, "kind")}
    kind = next(iter(kinds)) if len(kinds) == 1 else None
    if kind in _TF_PICKLE_CONVERTERS:
        return _TF_PICKLE_CONVERTERS[kind](nets, source, dest)
    hint = _TF_PICKLE_REFUSALS.get(kind, f"networks of kinds {sorted(kinds)}")
    raise ValueError(f"{source}: a TensorFlow {kind or 'mixed'} pickle, which `gan_jax.convert` does not turn into a "
                     f"run; {hint}")


def main(argv: list[str] | None = None) -> None:
    """``python -m gan_jax.convert --source=network-snapshot.pkl --dest=DIR``."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(description="Convert an NVIDIA StyleGAN2(-ADA) network pickle into a gan_jax run directory.")
    parser.add_argument("--source", required=True, help="network-snapshot-*.pkl (read safely: no code from it runs)")
    parser.add_argument("--dest", required=True, help="directory for the checkpoint and config.py")
    args = parser.parse_args(argv)
    path = convert_nvidia_pickle(args.source, args.dest)
    print(f"wrote {args.dest}/checkpoints/0 and {path}\n"
          f"  generate: python -m gan_jax.sample --workdir={args.dest} --seeds=0-7 --trunc=0.7 --outdir=OUT\n"
          f"  fine-tune: python -m gan_jax.main --config={path} --workdir={args.dest} --config.data.source=DATA.zip")


if __name__ == "__main__":
    main()
