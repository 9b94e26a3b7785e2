"""``python -m gan_jax.convert --source=network-snapshot.pkl --dest=DIR``: official network pickles -> gan_jax runs.

``python -m gan_jax.convert --biggan_G=G_ema.pth [--biggan_D=D.pth] --biggan_config=settings.json
[--biggan_set=dim_z=120 ...] --dest=DIR``: the BigGAN author's weights (ajbrock/BigGAN-PyTorch) and
the run's settings (its ``prepare_parser`` names) -> a gan_jax BigGAN run.

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
    "convert_nvidia_pickle", "load_nvidia_pickle", "main", "nvidia_pickle_run",
    "biggan_author_kwargs", "biggan_author_run", "biggan_settings", "convert_biggan",
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


def _make_run(recipe: Any, config: Any, g_vars: Variables, d_vars: Variables | None,
              g_ema_vars: Variables, **state_kwargs: Any) -> tuple[Any, Any]:
    """A fresh training state around the converted variables: ``(config, state)`` (host arrays)."""
    config.train.num_shards = None  # the run's own choice again (1 was for building the recipe here)
    return config, recipe.create_state(jax.random.PRNGKey(0), g_vars, d_vars, g_ema_vars, **state_kwargs)


def _write_run(source: str, dest: str, config: Any, state: Any) -> str:
    """``(config, state)`` -> a run directory (``gan_jax.run_dir``); returns the config path."""
    from gan_jax import parallel, run_dir  # noqa: PLC0415

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
    config, state = nvidia_pickle_run(source)
    return _write_run(source, dest, config, state)


def nvidia_pickle_run(source: str) -> tuple[Any, Any]:
    """An NVIDIA pickle (StyleGAN2-ADA / StyleGAN3-repo snapshot, ProGAN / StyleGAN TF pickle) converted
    in memory: ``(config, state)``, the ``ml_collections.ConfigDict`` and the host ``TrainState``
    (G, D, G_ema, fresh optimizer states) that ``convert_nvidia_pickle`` writes as a run directory.
    What ``--network=FILE.pkl`` of ``gan_jax.sample`` and ``gan_jax.evaluate`` reads."""
    nets = load_nvidia_pickle(source)  # refuses a G that is not a Generator, a D that is not a Discriminator
    if any(getattr(net, "format", None) in ("B", "C", "D") for net in nets.values()):
        return _convert_tf_pickle(nets, source)  # TensorFlow (G, D, Gs) pickles
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
    return _make_run(recipe, config, g, d, g_ema)


def _convert_growing_pickle(nets: Mapping[str, Any], source: str, family: str) -> tuple[Any, Any]:
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
    return _make_run(recipe, config, g_vars, d_vars, g_ema_vars, lod=lod)


# TF pickle kind (gan_jax.nvidia_pickle.TFNetwork.kind) -> converter(nets, source) -> (config, state).
_TF_PICKLE_CONVERTERS: dict[str, Any] = {
    family: functools.partial(_convert_growing_pickle, family=family) for family in ("progan", "stylegan")}
_TF_PICKLE_REFUSALS = {
    "stylegan2-tf": "convert it to a PyTorch snapshot with NVIDIA's stylegan2-ada-pytorch `python legacy.py "
                    "--source=FILE.pkl --dest=FILE-pt.pkl`, then run gan_jax.convert on that",
}


def _convert_tf_pickle(nets: Mapping[str, Any], source: str) -> tuple[Any, Any]:
    kinds = {net.kind for net in nets.values() if hasattr(net, "kind")}
    kind = next(iter(kinds)) if len(kinds) == 1 else None
    if kind in _TF_PICKLE_CONVERTERS:
        return _TF_PICKLE_CONVERTERS[kind](nets, source)
    hint = _TF_PICKLE_REFUSALS.get(kind, f"networks of kinds {sorted(kinds)}")
    raise ValueError(f"{source}: a TensorFlow {kind or 'mixed'} pickle, which `gan_jax.convert` does not turn into a "
                     f"run; {hint}")


# ----------------------------------------------------------------------------------------------
# The BigGAN author's weights (ajbrock/BigGAN-PyTorch ``utils.save_weights``: G.pth, G_ema.pth, D.pth)
# and the run's settings (the ``prepare_parser`` config that train.py passes as ``Generator(**config)``).

# prepare_parser defaults (BigGAN-PyTorch utils.py) of the keywords that shape the networks: what a
# setting missing from --biggan_config / --biggan_set means, as in the author's train.py.
BIGGAN_AUTHOR_DEFAULTS: dict[str, Any] = {
    "model": "BigGAN", "dataset": "I128_hdf5", "G_param": "SN", "D_param": "SN", "G_ch": 64, "D_ch": 64,
    "G_depth": 1, "D_depth": 1, "D_wide": True, "G_shared": False, "shared_dim": 0, "dim_z": 128, "hier": False,
    "cross_replica": False, "mybn": False, "G_nl": "relu", "D_nl": "relu", "G_attn": "64", "D_attn": "64",
    "norm_style": "bn", "G_init": "ortho", "D_init": "ortho", "num_G_SVs": 1, "num_D_SVs": 1,
    "num_G_SV_itrs": 1, "num_D_SV_itrs": 1, "SN_eps": 1e-8, "BN_eps": 1e-5}
# utils.imsize_dict / nclass_dict: train.py sets config['resolution'] and config['n_classes'] from --dataset.
BIGGAN_DATASETS: dict[str, tuple[int, int]] = {
    **{f"I{r}{h}": (r, 1000) for r in (32, 64, 128, 256) for h in ("", "_hdf5")}, "C10": (32, 10), "C100": (32, 100)}
_BIGGAN_RELU = ("relu", "inplace_relu")  # utils.activation_dict names that are ReLU
_BIGGAN_MODELS = ("BigGAN", "BigGANdeep")


def biggan_author_kwargs(settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The author's run settings (``prepare_parser`` names, e.g. the ``config`` of a run's
    ``state_dict.pth`` or the launch script's flags; missing ones take ``BIGGAN_AUTHOR_DEFAULTS``)
    -> the ``(G_kwargs, D_kwargs)`` that train.py's ``model.Generator(**config)`` /
    ``model.Discriminator(**config)`` read, with ``resolution`` / ``n_classes`` from ``dataset``
    unless given."""
    import dataclasses  # noqa: PLC0415

    from gan_jax.models import biggan as biggan_models  # noqa: PLC0415

    cfg = {**BIGGAN_AUTHOR_DEFAULTS, **dict(settings)}
    if cfg["model"] not in _BIGGAN_MODELS:
        raise ValueError(f"BigGAN setting model={cfg['model']!r}; expected one of {list(_BIGGAN_MODELS)}")
    for key in ("G_nl", "D_nl"):
        if str(cfg[key]).lower() not in _BIGGAN_RELU:
            raise ValueError(f"BigGAN setting {key}={cfg[key]!r}; gan_jax's BigGAN uses ReLU ({' or '.join(_BIGGAN_RELU)})")
    if "resolution" not in cfg or "n_classes" not in cfg:
        if cfg["dataset"] not in BIGGAN_DATASETS:
            raise ValueError(f"BigGAN setting dataset={cfg['dataset']!r} is not one of the author's "
                             f"{sorted(BIGGAN_DATASETS)}; give resolution and n_classes instead")
        resolution, n_classes = BIGGAN_DATASETS[cfg["dataset"]]
        cfg.setdefault("resolution", resolution)
        cfg.setdefault("n_classes", n_classes)
    deep = cfg["model"] == "BigGANdeep"
    g_cls = biggan_models.DeepGenerator if deep else biggan_models.Generator
    d_cls = biggan_models.DeepDiscriminator if deep else biggan_models.Discriminator
    pick = lambda cls: {f.name: _plain_kwargs(cfg[f.name]) for f in dataclasses.fields(cls)  # noqa: E731
                        if f.name in cfg and f.name not in ("dtype", "parent", "name")}
    return pick(g_cls), pick(d_cls)


def biggan_author_run(settings: Mapping[str, Any], G_state: StateDict, D_state: StateDict | None = None,
                      G_train_state: StateDict | None = None) -> tuple[Any, Any]:
    """The author's weights converted in memory: ``(config, state)`` of a gan_jax BigGAN run
    (``configs/biggan_common.py`` training settings around the networks of ``settings``; see
    ``biggan_author_kwargs``). ``G_state`` is ``G_ema.pth``'s state dict (what sampling uses),
    ``G_train_state`` ``G.pth``'s (default: G_ema's), ``D_state`` ``D.pth``'s (default: a fresh D)."""
    from gan_jax.configs import biggan_common  # noqa: PLC0415 (ml_collections)

    G_kwargs, D_kwargs = biggan_author_kwargs(settings)
    resolution, n_classes = int(G_kwargs["resolution"]), int(G_kwargs["n_classes"])
    config = biggan_common.biggan(resolution=resolution, deep="G_depth" in G_kwargs)
    model_kwargs = lambda kw: {k: v for k, v in kw.items() if k not in ("resolution", "n_classes")}  # noqa: E731
    g = model_kwargs(G_kwargs)
    g["z_dim"] = g.pop("dim_z")  # the config's name for the author's dim_z (configs/biggan_common.py)
    config.model.G = g
    config.model.D = model_kwargs(D_kwargs)
    config.model.c_dim = n_classes
    config.data.channels = 3
    config.data.num_classes = n_classes
    config.data.use_labels = n_classes > 1
    config.data.source = "embedded"  # the author's data is not part of the weights: --config.data.source=...
    config.train.num_shards = 1
    recipe = _recipe(config)
    g_ema = biggan_variables_from_state_dict(recipe.G, G_state)
    g = biggan_variables_from_state_dict(recipe.G, G_train_state) if G_train_state is not None else g_ema
    d = biggan_variables_from_state_dict(recipe.D, D_state) if D_state is not None else None
    return _make_run(recipe, config, g, d, g_ema)


def convert_biggan(G_path: str, dest: str, settings: Mapping[str, Any], D_path: str | None = None,
                   G_train_path: str | None = None) -> str:
    """The BigGAN author's ``G_ema.pth`` (``G_path``; optional ``D.pth`` and ``G.pth``) and run settings
    -> ``dest/checkpoints/0`` and ``dest/config.py``, which ``gan_jax.sample`` accepts. Returns the
    config path. The files are read with ``gan_jax.torch_file`` (no torch, no code from them runs)."""
    from gan_jax import torch_file  # noqa: PLC0415

    load = lambda path: torch_file.load_state_dict(path) if path else None  # noqa: E731
    config, state = biggan_author_run(settings, load(G_path), load(D_path), load(G_train_path))
    return _write_run(G_path, dest, config, state)


def biggan_settings(json_path: str | None, assignments: list[str] | None) -> dict[str, Any]:
    """The author's settings from a JSON object file (e.g. a run's ``config``) and ``KEY=VALUE``
    overrides (values parsed as JSON where they are: ``dim_z=120``, ``hier=true``; text otherwise, and
    for the settings whose default is text: ``G_attn=64`` is ``'64'``)."""
    import json  # noqa: PLC0415

    settings: dict[str, Any] = {}
    if json_path:
        with open(json_path, encoding="utf-8") as f:
            settings = json.load(f)
        if not isinstance(settings, dict):
            raise ValueError(f"{json_path}: expected a JSON object of BigGAN-PyTorch settings, found {type(settings).__name__}")
    for item in assignments or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--biggan_set {item!r}: expected KEY=VALUE, e.g. dim_z=120")
        if isinstance(BIGGAN_AUTHOR_DEFAULTS.get(key), str):  # a text setting stays text (G_attn=64 is '64')
            settings[key] = value
            continue
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings


def _add_biggan_arguments(parser: Any) -> None:
    g = parser.add_argument_group("the BigGAN author's weights (ajbrock/BigGAN-PyTorch), instead of --source")
    g.add_argument("--biggan_G", metavar="G_ema.pth", help="the generator to sample: the run's G_ema.pth (or G.pth)")
    g.add_argument("--biggan_D", metavar="D.pth", help="the run's discriminator (optional; a fresh D otherwise)")
    g.add_argument("--biggan_G_train", metavar="G.pth", help="the run's training G (optional; default --biggan_G)")
    g.add_argument("--biggan_config", metavar="settings.json", help="the run's prepare_parser settings as a JSON "
                   "object (model, dataset or resolution/n_classes, G_ch, dim_z, hier, G_shared, shared_dim, ...)")
    g.add_argument("--biggan_set", metavar="KEY=VALUE", action="append", default=[],
                   help="one setting, as the launch script's flag (repeat: --biggan_set=dim_z=120 --biggan_set=hier=true)")


def _convert_from_args(args: Any) -> str:
    """What ``main`` converts: an NVIDIA pickle (``--source``) or the BigGAN author's weights."""
    if bool(args.source) == bool(args.biggan_G):
        raise ValueError(f"expected one of --source (an NVIDIA pickle) and --biggan_G (the BigGAN author's G_ema.pth); "
                         f"got --source={args.source} --biggan_G={args.biggan_G}")
    if args.source:
        return convert_nvidia_pickle(args.source, args.dest)
    return convert_biggan(args.biggan_G, args.dest, biggan_settings(args.biggan_config, args.biggan_set),
                          args.biggan_D, args.biggan_G_train)


def main(argv: list[str] | None = None) -> None:
    """``python -m gan_jax.convert --source=network-snapshot.pkl --dest=DIR``."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(description="Convert an NVIDIA StyleGAN2(-ADA) network pickle into a gan_jax run directory.")
    parser.add_argument("--source", help="network-snapshot-*.pkl (read safely: no code from it runs)")
    parser.add_argument("--dest", required=True, help="directory for the checkpoint and config.py")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error, not only its line")
    _add_biggan_arguments(parser)
    args = parser.parse_args(argv)
    try:
        path = _convert_from_args(args)
    except (ValueError, OSError) as e:  # the loaders' one-line errors (RestrictedPickleError is a ValueError)
        if args.debug:
            raise
        import sys  # noqa: PLC0415

        line = " ".join(str(e).split()) or type(e).__name__
        print(f"error: {line}\n(run again with --debug for the traceback)", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"wrote {args.dest}/checkpoints/0 and {path}\n"
          f"  generate: python -m gan_jax.sample --workdir={args.dest} --seeds=0-7 --trunc=0.7 --outdir=OUT\n"
          f"  fine-tune: python -m gan_jax.main --config={path} --workdir={args.dest} --config.data.source=DATA.zip")


if __name__ == "__main__":
    main()
