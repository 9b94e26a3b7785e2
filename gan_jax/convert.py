"""Upstream weights <-> gan_jax Flax variables.

StyleGAN2 (NVlabs/stylegan2-ada-pytorch ``state_dict``)
--------------------------------------------------------
A Flax variable path is the upstream name: ``params/synthesis/b8/conv0/weight`` <->
``synthesis.b8.conv0.weight``, ``buffers/mapping/w_avg`` <-> ``mapping.w_avg``. Layouts:

| upstream name ends in            | upstream layout   | gan_jax layout     |
| -------------------------------- | ----------------- | ------------------ |
| ``.weight`` of a conv / modconv  | ``[O, I, kh, kw]`` | ``[kh, kw, I, O]`` |
| ``.weight`` of an FC / affine    | ``[out, in]``     | ``[in, out]``      |
| ``.const``                       | ``[C, H, W]``     | ``[H, W, C]``      |
| everything else                  | as is             | as is              |

The ``resample_filter`` buffers are constants that every upstream block and conv layer carries;
gan_jax builds them from the constructor's ``resample_filter`` instead of storing them. On import
the ones that filter (block level, G ``conv0``/``skip``, D ``conv1``/``skip``) must equal that
filter; the others are unused upstream too and only have to be present. On export they are
written as upstream writes them.

This module imports only jax, flax and numpy.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.models import stylegan2
from gan_jax.nn.upfirdn2d import setup_filter

StateDict = Mapping[str, Any]
Variables = dict[str, Any]

# Official constructor keywords and the gan_jax fields they become.
_G_TOP = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"}
_MAPPING = {"num_layers": "mapping_layers", "embed_features": "mapping_embed_features",
            "layer_features": "mapping_layer_features", "activation": "mapping_activation",
            "lr_multiplier": "mapping_lr_multiplier"}
_G_MAPPING = {**_MAPPING, "w_avg_beta": "w_avg_beta"}
_G_SYNTHESIS = {"channel_base", "channel_max", "num_fp16_res", "architecture", "resample_filter", "conv_clamp",
                "kernel_size", "use_noise", "activation"}
_D_TOP = {"c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max", "num_fp16_res",
          "conv_clamp", "cmap_dim", "block_kwargs", "mapping_kwargs", "epilogue_kwargs"}
_D_BLOCK = {"activation": "activation", "resample_filter": "resample_filter", "freeze_layers": "freeze_layers"}
_D_EPILOGUE = {"mbstd_group_size": "mbstd_group_size", "mbstd_num_channels": "mbstd_num_channels",
               "activation": "epilogue_activation"}
# Execution choices of the PyTorch code that do not change the numbers: the memory format, and the
# StyleGAN3 repo's default modconv form (gan_jax takes ``fused_modconv`` per call).
_LAYOUT_ONLY = {"fp16_channels_last", "fused_modconv_default"}


def _take(kwargs: Mapping[str, Any], known: Mapping[str, str] | set, where: str) -> dict[str, Any]:
    unknown = sorted(set(kwargs) - set(known) - _LAYOUT_ONLY)
    if unknown:
        raise ValueError(f"unknown {where} keyword(s) {unknown}; expected a subset of {sorted(known)}")
    names = known if isinstance(known, Mapping) else {k: k for k in known}
    out = {}
    for key, value in kwargs.items():
        if key in _LAYOUT_ONLY:
            continue
        out[names[key]] = tuple(value) if key == "resample_filter" else value
    return out


def generator_from_kwargs(G_kwargs: Mapping[str, Any], dtype: Any = jnp.float32) -> stylegan2.Generator:
    """Build gan_jax's Generator from the official ``Generator(**init_kwargs)`` keywords.

    Synthesis keywords given at the top level (the StyleGAN3 repo's ``**synthesis_kwargs``) are
    accepted too. Unknown keywords raise ``ValueError`` naming them.
    """
    top = {k: v for k, v in G_kwargs.items() if k in _G_TOP}
    synthesis = dict(G_kwargs.get("synthesis_kwargs", {}))
    for k, v in G_kwargs.items():
        if k not in _G_TOP:
            synthesis[k] = v
    fields = {k: top[k] for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels") if k in top}
    missing = sorted({"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"} - set(fields))
    if missing:
        raise ValueError(f"Generator kwargs lack {missing}")
    fields.update(_take(top.get("mapping_kwargs", {}), _G_MAPPING, "Generator mapping_kwargs"))
    fields.update(_take(synthesis, _G_SYNTHESIS, "Generator synthesis_kwargs"))
    return stylegan2.Generator(**fields, dtype=dtype)


def discriminator_from_kwargs(D_kwargs: Mapping[str, Any], dtype: Any = jnp.float32) -> stylegan2.Discriminator:
    """Build gan_jax's Discriminator from the official ``Discriminator(**init_kwargs)`` keywords."""
    top = _take({k: v for k, v in D_kwargs.items() if k not in ("block_kwargs", "mapping_kwargs", "epilogue_kwargs")},
                _D_TOP - {"block_kwargs", "mapping_kwargs", "epilogue_kwargs"}, "Discriminator")
    for key in ("c_dim", "img_resolution", "img_channels"):
        if key not in top:
            raise ValueError(f"Discriminator kwargs lack {key!r}")
    top.update(_take(D_kwargs.get("block_kwargs", {}), _D_BLOCK, "Discriminator block_kwargs"))
    top.update(_take(D_kwargs.get("mapping_kwargs", {}), _MAPPING, "Discriminator mapping_kwargs"))
    top.update(_take(D_kwargs.get("epilogue_kwargs", {}), _D_EPILOGUE, "Discriminator epilogue_kwargs"))
    return stylegan2.Discriminator(**top, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# Layouts.


def _to_upstream(leaf: str, x: np.ndarray) -> np.ndarray:
    if leaf == "weight" and x.ndim == 4:
        return np.transpose(x, (3, 2, 0, 1))
    if leaf == "weight" and x.ndim == 2:
        return np.transpose(x, (1, 0))
    if leaf == "const" and x.ndim == 3:
        return np.transpose(x, (2, 0, 1))
    return x


def _from_upstream(leaf: str, x: np.ndarray) -> np.ndarray:
    if leaf == "weight" and x.ndim == 4:
        return np.transpose(x, (2, 3, 1, 0))
    if leaf == "weight" and x.ndim == 2:
        return np.transpose(x, (1, 0))
    if leaf == "const" and x.ndim == 3:
        return np.transpose(x, (1, 2, 0))
    return x


def _upstream_shape(leaf: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    return _to_upstream(leaf, np.empty(shape, np.uint8)).shape


def _abstract_variables(module: Any) -> Variables:
    """Shapes of ``module``'s variables, without computing anything."""
    rngs = {"params": jax.random.key(0), "noise": jax.random.key(0)}
    if isinstance(module, stylegan2.Generator):
        z = jnp.zeros((1, module.z_dim), jnp.float32)
        c = jnp.zeros((1, module.c_dim), jnp.float32) if module.c_dim else None
        return jax.eval_shape(lambda: module.init(rngs, z, c, noise_mode="const"))
    if isinstance(module, stylegan2.Discriminator):
        r = module.img_resolution
        img = jnp.zeros((1, r, r, module.img_channels), jnp.float32)
        c = jnp.zeros((1, module.c_dim), jnp.float32) if module.c_dim else None
        return jax.eval_shape(lambda: module.init(rngs, img, c))
    raise TypeError(f"no upstream layout known for {type(module).__name__}")


def _resample_filter_buffers(module: Any, module_paths: set[tuple[str, ...]]) -> dict[str, tuple[np.ndarray, bool]]:
    """``{upstream name: (value upstream stores, whether gan_jax's computation depends on it)}``."""
    is_g = isinstance(module, stylegan2.Generator)
    configured = setup_filter(module.resample_filter)
    default = setup_filter(stylegan2.DEFAULT_FILTER)
    resampling_layers = {"conv0", "skip"} if is_g else {"conv1", "skip"}
    out = {}
    for path in module_paths:
        name = ".".join(path)
        is_block = re.fullmatch(r"b\d+", path[-1]) and (path[:-1] == ("synthesis",) if is_g else (len(path) == 1 and path[0] != "b4"))
        if is_block:
            out[name + ".resample_filter"] = (configured, True)
        elif path[-1] in {"conv0", "conv1", "skip", "fromrgb", "conv"}:
            used = path[-1] in resampling_layers
            out[name + ".resample_filter"] = (configured if used else default, used)
    return out


def _module_paths(flat: Mapping[tuple[str, ...], Any]) -> set[tuple[str, ...]]:
    """Every module path that owns a variable or a child that does."""
    return {k[1:i] for k in flat for i in range(2, len(k))}


def _flat_variables(variables: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    """``{(collection, *path): leaf}`` for the persistent collections (params, buffers)."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables))
    return {k: v for k, v in flat.items() if k[0] in ("params", "buffers")}


def upstream_state_shapes(module: Any) -> dict[str, tuple[int, ...]]:
    """The upstream ``state_dict`` names and shapes of ``module`` (parameters and buffers)."""
    flat = _flat_variables(_abstract_variables(module))
    shapes = {".".join(k[1:]): _upstream_shape(k[-1], tuple(v.shape)) for k, v in flat.items()}
    for name, (value, _) in _resample_filter_buffers(module, _module_paths(flat)).items():
        shapes[name] = value.shape
    return shapes


class StateDictMismatch(ValueError):
    """The state dict does not fit the network built from the constructor kwargs."""


def variables_from_state_dict(module: Any, state: StateDict) -> Variables:
    """Upstream ``state_dict`` (name -> array, torch layouts) -> Flax variables of ``module``.

    Raises ``StateDictMismatch`` listing every missing, unexpected and mis-shaped name with the
    expected and found shapes.
    """
    abstract = _flat_variables(_abstract_variables(module))
    filters = _resample_filter_buffers(module, _module_paths(abstract))
    state = {k: np.asarray(v) for k, v in state.items()}

    problems = []
    expected = {".".join(k[1:]): (k, _upstream_shape(k[-1], tuple(v.shape))) for k, v in abstract.items()}
    for name, (_, shape) in sorted(expected.items()):
        if name not in state:
            problems.append(f"  missing    {name}: expected shape {list(shape)}")
        elif tuple(state[name].shape) != shape:
            problems.append(f"  wrong shape {name}: expected {list(shape)}, found {list(state[name].shape)}")
    for name, (value, used) in sorted(filters.items()):
        if name not in state:
            problems.append(f"  missing    {name}: expected shape {list(value.shape)}")
        elif tuple(state[name].shape) != value.shape:
            problems.append(f"  wrong shape {name}: expected {list(value.shape)}, found {list(state[name].shape)}")
        elif used and not np.allclose(state[name], value, rtol=1e-6, atol=1e-7):
            problems.append(f"  wrong value {name}: expected setup_filter({list(module.resample_filter)}), "
                            "found another filter; pass its taps as resample_filter")
    for name in sorted(set(state) - set(expected) - set(filters)):
        problems.append(f"  unexpected {name}: shape {list(state[name].shape)}")
    if problems:
        raise StateDictMismatch(
            f"state dict does not match {type(module).__name__}(img_resolution={module.img_resolution}, ...) "
            f"built from the given kwargs ({len(problems)} problem(s)):\n" + "\n".join(problems))

    flat = {}
    for name, (key, _) in expected.items():
        value = state[name]
        if not np.issubdtype(value.dtype, np.floating):
            raise StateDictMismatch(f"{name}: expected a floating-point array, found dtype {value.dtype}")
        flat[key] = jnp.asarray(_from_upstream(key[-1], value.astype(np.float32)))
    return flax.traverse_util.unflatten_dict(flat)


def state_dict_from_variables(module: Any, variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Flax variables of ``module`` -> upstream ``state_dict`` (numpy, torch layouts, float32)."""
    flat = _flat_variables(variables)
    state = {".".join(k[1:]): np.asarray(_to_upstream(k[-1], np.asarray(v))) for k, v in flat.items()}
    for name, (value, _) in _resample_filter_buffers(module, _module_paths(flat)).items():
        state[name] = value.copy()
    return state


def stylegan2_from_torch(
    G_kwargs: Mapping[str, Any],
    G_state: StateDict,
    D_kwargs: Mapping[str, Any] | None = None,
    D_state: StateDict | None = None,
    dtype: Any = jnp.float32,
) -> tuple[stylegan2.Generator, Variables, stylegan2.Discriminator | None, Variables | None]:
    """NVIDIA's StyleGAN2-ADA ``(init_kwargs, state_dict)`` pairs -> ``(G, G_vars, D, D_vars)``.

    ``G.apply(G_vars, z, c, truncation_psi=psi, noise_mode='const')`` gives NHWC images,
    ``G.apply(G_vars, z, c, truncation_psi=psi, method='mapping')`` gives ws
    ``[N, num_ws, w_dim]`` and ``D.apply(D_vars, images_nhwc, c)`` gives logits ``[N, 1]``.
    ``D`` and ``D_vars`` are None when ``D_kwargs`` is None.
    """
    G = generator_from_kwargs(G_kwargs, dtype=dtype)
    G_vars = variables_from_state_dict(G, G_state)
    if D_kwargs is None:
        return G, G_vars, None, None
    if D_state is None:
        raise ValueError("D_kwargs given without D_state")
    D = discriminator_from_kwargs(D_kwargs, dtype=dtype)
    return G, G_vars, D, variables_from_state_dict(D, D_state)


# ----------------------------------------------------------------------------------------------
# NVIDIA network pickles -> a gan_jax run directory.


def load_nvidia_pickle(path: Any) -> dict[str, Any]:
    """Read an NVIDIA StyleGAN2-ADA / StyleGAN3-repo ``network-snapshot-*.pkl`` without torch and
    without running any code from it: ``{'G', 'D', 'G_ema': (init_kwargs, state_dict),
    'training_set_kwargs': dict | None}`` (absent keys stay absent). See ``gan_jax.nvidia_pickle``."""
    from gan_jax import nvidia_pickle  # noqa: PLC0415 (stdlib + numpy only)

    return nvidia_pickle.load_nvidia_pickle(path)


_STYLEGAN2_CLASSES = {"G": "Generator", "G_ema": "Generator", "D": "Discriminator"}


def _run_config(G_kwargs: Mapping[str, Any], D_kwargs: Mapping[str, Any] | None, training_set: Mapping[str, Any] | None):
    """A gan_jax StyleGAN2 config (configs/common.py defaults) around NVIDIA's network kwargs."""
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if repo not in sys.path:
        sys.path.append(repo)
    from configs import common  # noqa: PLC0415

    G = generator_from_kwargs(G_kwargs)  # validates the kwargs before anything is written
    config = common.stylegan2(resolution=G.img_resolution)
    config.data.channels = G.img_channels
    config.model.c_dim = G.c_dim
    config.model.G = {k: _plain_kwargs(v) for k, v in G_kwargs.items() if k not in ("c_dim", "img_resolution", "img_channels")}
    if D_kwargs is not None:
        config.model.D = {k: _plain_kwargs(v) for k, v in D_kwargs.items() if k not in ("c_dim", "img_resolution", "img_channels")}
    training_set = dict(training_set or {})
    config.data.source = training_set.get("path") or "embedded"
    config.data.use_labels = bool(G.c_dim)
    config.data.xflip = bool(training_set.get("xflip", False))
    return config


def _plain_kwargs(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain_kwargs(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_kwargs(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def convert_nvidia_pickle(source: str, dest: str) -> str:
    """``network-snapshot.pkl`` -> ``dest/checkpoints/0`` (G, D, G_ema, fresh Adam) and
    ``dest/config.py``, which ``gan_jax.sample``, ``gan_jax.evaluate`` and ``gan_jax.main`` accept.
    Returns the config path."""
    import os  # noqa: PLC0415

    from gan_jax import checkpoint, parallel  # noqa: PLC0415
    from gan_jax.recipes import stylegan2 as recipe_lib  # noqa: PLC0415

    nets = load_nvidia_pickle(source)  # refuses a G that is not a Generator, a D that is not a Discriminator
    for key in _STYLEGAN2_CLASSES:
        kind = getattr(nets.get(key), "kind", "stylegan2")
        if key in nets and kind not in ("stylegan2", "unknown"):
            raise ValueError(f"{source}: {key} is a {kind} network; gan_jax.convert reads StyleGAN2 networks")
    g_key = "G_ema" if "G_ema" in nets else "G"
    if g_key not in nets:
        raise ValueError(f"{source} holds no generator (expected 'G' or 'G_ema'; found {sorted(nets)})")
    G_kwargs = nets[g_key][0]
    D_kwargs = nets["D"][0] if "D" in nets else None
    config = _run_config(G_kwargs, D_kwargs, nets.get("training_set_kwargs"))
    config.train.num_shards = 1
    recipe = recipe_lib.StyleGAN2(config, num_shards=1)
    g_ema = variables_from_state_dict(recipe.G, nets[g_key][1])
    g = variables_from_state_dict(recipe.G, nets["G"][1]) if "G" in nets else g_ema
    d = variables_from_state_dict(recipe.D.clone(mbstd_num_shards=1), nets["D"][1]) if "D" in nets else None
    config.train.num_shards = None
    state = recipe.create_state(jax.random.PRNGKey(0), g, d, g_ema)
    state = parallel.replicate(state, parallel.make_mesh())
    os.makedirs(dest, exist_ok=True)
    ckpt = checkpoint.Checkpointer(os.path.join(dest, "checkpoints"), async_save=False)
    ckpt.save(0, state, config.to_dict())
    ckpt.close()
    with open(os.path.join(dest, "config.json"), "w") as f:
        f.write(config.to_json(indent=1))
    path = os.path.join(dest, "config.py")
    with open(path, "w") as f:
        f.write(f'"""gan_jax config of the network converted from {os.path.basename(source)}.\n\n'
                f'    python -m gan_jax.main --config={path} --workdir={dest} --config.data.source=YOUR_DATA.zip\n"""\n\n'
                "import json\nimport os\n\nimport ml_collections\n\n\n"
                "def get_config(arg=None):\n"
                "    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'config.json')) as f:\n"
                "        return ml_collections.ConfigDict(json.load(f))\n")
    return path


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
