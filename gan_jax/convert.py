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

import functools
import re
from typing import Any, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.models import stylegan, stylegan2
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

    from gan_jax import parallel  # noqa: PLC0415
    from gan_jax.recipes import stylegan2 as recipe_lib  # noqa: PLC0415

    nets = load_nvidia_pickle(source)  # refuses a G that is not a Generator, a D that is not a Discriminator
    if any(getattr(net, "format", None) in ("B", "C", "D") for net in nets.values()):
        return _convert_tf_pickle(nets, source, dest)  # TensorFlow (G, D, Gs) pickles
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
    return _write_run_dir(source, dest, parallel.replicate(state, parallel.make_mesh()), config)


# ----------------------------------------------------------------------------------------------
# StyleGAN (1): NVlabs/stylegan TF variables (G_style / D_basic ``Network.vars``) <-> Flax.
#
# A TF variable name is the Flax path joined by '/', without the collection:
# ``G_mapping/Dense0/weight`` <-> ``params/G_mapping/Dense0/weight``, ``dlatent_avg`` and
# ``G_synthesis/noise{i}`` <-> ``buffers/...``. Layouts: conv ``[k, k, in, out]`` and dense
# ``[in, out]`` as TF; ``4x4/Const/const`` TF ``[1, C, 4, 4]`` <-> ``[1, 4, 4, C]``; ``noise{i}`` TF
# ``[1, 1, H, W]`` <-> ``[1, H, W, 1]``. The scalar ``lod`` variables (``lod``, ``G_synthesis/lod``;
# D's ``lod``) are the level of detail the network was last run at: gan_jax takes it per call, so
# they are checked to be scalars and returned separately.

_SG1_LOD_VARS = {"G": ("lod", "G_synthesis/lod"), "D": ("lod",)}
# Keywords the official networks receive at run time, never stored by a trainer (Network.run args).
_SG1_RUNTIME = {"is_training", "is_validation", "is_template_graph", "force_clean_graph", "components"}


def _sg1_fields(cls: type, kwargs: Mapping[str, Any], who: str, dtype: Any) -> dict[str, Any]:
    import dataclasses  # noqa: PLC0415

    fields = {f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name", "dtype")}
    if cls is stylegan.Discriminator:
        fields.discard("mbstd_num_shards")
    extra = {"dlatent_broadcast"} if cls is stylegan.Generator else set()
    unknown = sorted(set(kwargs) - fields - extra - _SG1_RUNTIME - {"dtype"})
    if unknown:
        raise ValueError(f"unknown {who} keyword(s) {unknown}; the official build functions take {sorted(fields)}")
    out = {}
    for key, value in kwargs.items():
        if key not in fields:
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if key == "blur_filter" and value is not None:
            value = tuple(float(v) for v in value)
        elif key == "use_noise":
            value = bool(value)  # the official noise shape is [1, use_noise, H, W]: 1 == True
        out[key] = value
    compute = kwargs.get("dtype", None)
    out["dtype"] = jnp.dtype(dtype if dtype is not None else (compute or "float32"))
    return out


def stylegan_generator_from_kwargs(G_kwargs: Mapping[str, Any], dtype: Any = None) -> stylegan.Generator:
    """gan_jax's StyleGAN ``Generator`` from the official ``G_style`` static kwargs (build-function
    defaults for the rest: psi 0.7, cutoff 8, resolution 1024, 512-d latents, 8 mapping layers ...)."""
    return stylegan.Generator(**_sg1_fields(stylegan.Generator, G_kwargs, "G_style", dtype))


def stylegan_discriminator_from_kwargs(D_kwargs: Mapping[str, Any], dtype: Any = None) -> stylegan.Discriminator:
    """gan_jax's StyleGAN ``Discriminator`` from the official ``D_basic`` static kwargs (official
    defaults otherwise, including ``num_channels=1, resolution=32``, which trainers always store)."""
    return stylegan.Discriminator(**_sg1_fields(stylegan.Discriminator, D_kwargs, "D_basic", dtype))


def _sg1_tf_layout(name: str, x: np.ndarray) -> np.ndarray:
    leaf = name.rsplit("/", 1)[-1]
    if leaf == "const" or re.fullmatch(r"noise\d+", leaf):
        return np.transpose(x, (0, 3, 1, 2))
    return x


def _sg1_from_tf_layout(name: str, x: np.ndarray) -> np.ndarray:
    leaf = name.rsplit("/", 1)[-1]
    if (leaf == "const" or re.fullmatch(r"noise\d+", leaf)) and x.ndim == 4:
        return np.transpose(x, (0, 2, 3, 1))
    return x


def _sg1_abstract(module: Any) -> Variables:
    rngs = {"params": jax.random.key(0), "noise": jax.random.key(0)}
    if isinstance(module, stylegan.Generator):
        z = jnp.zeros((1, module.latent_size), jnp.float32)
        c = jnp.zeros((1, module.label_size), jnp.float32) if module.label_size else None
        return jax.eval_shape(lambda: module.init(rngs, z, c, noise_mode="const"))
    r = module.resolution
    img = jnp.zeros((1, r, r, module.num_channels), jnp.float32)
    c = jnp.zeros((1, module.label_size), jnp.float32) if module.label_size else None
    return jax.eval_shape(lambda: module.clone(mbstd_num_shards=1).init(rngs, img, c))


def stylegan_tf_shapes(module: Any) -> dict[str, tuple[int, ...]]:
    """The official variable names and TF shapes of a StyleGAN ``Generator`` / ``Discriminator``
    (without the scalar ``lod`` variables)."""
    flat = _flat_variables(_sg1_abstract(module))
    return {"/".join(k[1:]): _sg1_tf_layout("/".join(k[1:]), np.empty(v.shape, np.uint8)).shape for k, v in flat.items()}


def stylegan_variables_from_tf(module: Any, tf_vars: Mapping[str, Any]) -> Variables:
    """Official ``Network.vars`` (name -> array, TF layouts) -> Flax variables of ``module``.

    Raises ``StateDictMismatch`` listing every missing, unexpected and mis-shaped name.
    """
    who = "G" if isinstance(module, stylegan.Generator) else "D"
    abstract = _flat_variables(_sg1_abstract(module))
    expected = {"/".join(k[1:]): k for k in abstract}
    tf_vars = {k: np.asarray(v) for k, v in tf_vars.items()}
    problems = []
    for name, key in sorted(expected.items()):
        shape = _sg1_tf_layout(name, np.empty(abstract[key].shape, np.uint8)).shape
        if name not in tf_vars:
            problems.append(f"  missing    {name}: expected shape {list(shape)}")
        elif tuple(tf_vars[name].shape) != tuple(shape):
            problems.append(f"  wrong shape {name}: expected {list(shape)}, found {list(tf_vars[name].shape)}")
        elif not np.issubdtype(tf_vars[name].dtype, np.floating):
            problems.append(f"  wrong dtype {name}: expected floating point, found {tf_vars[name].dtype}")
    for name in _SG1_LOD_VARS[who]:
        if name in tf_vars and tf_vars[name].shape != ():
            problems.append(f"  wrong shape {name}: expected a scalar, found {list(tf_vars[name].shape)}")
    for name in sorted(set(tf_vars) - set(expected) - set(_SG1_LOD_VARS[who])):
        problems.append(f"  unexpected {name}: shape {list(tf_vars[name].shape)}")
    if problems:
        raise StateDictMismatch(
            f"TF variables do not match StyleGAN {'G_style' if who == 'G' else 'D_basic'}(resolution={module.resolution}, "
            f"...) built from the given kwargs ({len(problems)} problem(s)):\n" + "\n".join(problems))
    flat = {key: jnp.asarray(_sg1_from_tf_layout(name, tf_vars[name].astype(np.float32))) for name, key in expected.items()}
    return flax.traverse_util.unflatten_dict(flat)


def stylegan_tf_from_variables(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Flax variables (or a gradient tree of ``params``) -> official names and TF layouts (numpy)."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables))
    out = {}
    for key, value in flat.items():
        path = key[1:] if key[0] in ("params", "buffers") else key
        name = "/".join(path)
        out[name] = np.asarray(_sg1_tf_layout(name, np.asarray(value)))
    return out


def stylegan_from_tf(
    G_kwargs: Mapping[str, Any],
    G_vars: Mapping[str, Any],
    D_kwargs: Mapping[str, Any] | None = None,
    D_vars: Mapping[str, Any] | None = None,
    dtype: Any = None,
) -> tuple[stylegan.Generator, Variables, stylegan.Discriminator | None, Variables | None]:
    """NVlabs/stylegan ``(static_kwargs, vars)`` of G_style (and D_basic) -> ``(G, G_vars, D, D_vars)``.

    ``G.apply(G_vars, z, None, truncation_psi=psi, truncation_cutoff=k, noise_mode='const', lod=L)``
    gives NHWC images as the official ``Gs.run(z, None, randomize_noise=False)`` at ``lod``;
    ``method='mapping'`` gives the dlatents [N, num_layers, dlatent_size] the synthesis receives;
    ``D.apply(D_vars, images_nhwc, None, lod=L)`` gives scores [N, 1]. ``D``, ``D_vars`` are None
    without ``D_kwargs``. Names are those of ``Network.vars`` (``G_mapping/Dense0/weight``,
    ``G_synthesis/4x4/Const/const``, ``dlatent_avg``, ``FromRGB_lod0/weight``, ...).
    """
    G = stylegan_generator_from_kwargs(G_kwargs, dtype)
    G_variables = stylegan_variables_from_tf(G, G_vars)
    if D_kwargs is None:
        return G, G_variables, None, None
    if D_vars is None:
        raise ValueError("D_kwargs given without D_vars")
    D = stylegan_discriminator_from_kwargs(D_kwargs, dtype)
    return G, G_variables, D, stylegan_variables_from_tf(D, D_vars)


# ----------------------------------------------------------------------------------------------
# BigGAN / BigGAN-deep (ajbrock/BigGAN-PyTorch ``state_dict``).
#
# A Flax variable path is the reference name: ``params/blocks.1.0/conv1/weight`` <->
# ``blocks.1.0.conv1.weight``, ``sn/blocks.1.0/conv1/u0`` <-> ``blocks.1.0.conv1.u0``,
# ``batch_stats/output_layer.0/stored_mean`` <-> ``output_layer.0.stored_mean`` (collections:
# ``params``, ``sn`` for the spectral-norm ``u{i}`` / ``sv{i}``, ``batch_stats`` for BatchNorm). Layouts:
#
# | reference name ends in                | reference layout  | gan_jax layout     |
# | ------------------------------------- | ----------------- | ------------------ |
# | ``.weight`` of a (SN)Conv2d            | ``[O, I, kh, kw]`` | ``[kh, kw, I, O]`` |
# | ``.weight`` of a (SN)Linear / Embedding | ``[out, in]`` / ``[n, dim]`` | as is (the SN matrix) |
# | ``.u0`` ``[1, O]``, ``.sv0`` ``[1]``, ``.stored_*`` ``[C]``, ``.gamma`` ``[]`` | as is | as is |

# Constructor keywords of BigGAN.py / BigGANdeep.py that do not define the network (optimizer,
# precision and init switches); they are accepted and ignored.
_BIGGAN_IGNORED = {"G_lr", "G_B1", "G_B2", "D_lr", "D_B1", "D_B2", "adam_eps", "G_mixed_precision", "G_fp16",
                   "D_mixed_precision", "D_fp16", "skip_init", "no_optim"}
_BIGGAN_COLLECTIONS = ("params", "sn", "batch_stats")


def _biggan_fields(cls: type, kwargs: Mapping[str, Any], who: str) -> dict[str, Any]:
    import dataclasses  # noqa: PLC0415

    fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name", "dtype"}
    out, unknown = {}, []
    for key, value in kwargs.items():
        if key in ("G_activation", "D_activation"):
            if str(value).lower() not in ("relu", "relu()", "relu(inplace=false)", "relu(inplace=true)", "inplace_relu"):
                raise ValueError(f"{who}: {key}={value!r}; gan_jax's BigGAN uses ReLU as the reference's launch scripts")
        elif key in fields:
            out[key] = value
        elif key not in _BIGGAN_IGNORED:
            unknown.append(key)
    if unknown:
        raise ValueError(f"unknown {who} keyword(s) {sorted(unknown)}; expected a subset of {sorted(fields | _BIGGAN_IGNORED)}")
    return out


def biggan_networks_from_kwargs(G_kwargs: Mapping[str, Any], D_kwargs: Mapping[str, Any] | None = None,
                                dtype: Any = jnp.float32) -> tuple[Any, Any]:
    """gan_jax's BigGAN G (and D) from the reference constructor keywords: BigGAN-deep
    (``DeepGenerator`` / ``DeepDiscriminator``) when they carry ``G_depth`` / ``D_depth``."""
    from gan_jax.models import biggan  # noqa: PLC0415

    g_cls = biggan.DeepGenerator if "G_depth" in G_kwargs else biggan.Generator
    G = g_cls(**_biggan_fields(g_cls, G_kwargs, g_cls.__name__), dtype=dtype)
    D = None
    if D_kwargs is not None:
        d_cls = biggan.DeepDiscriminator if "D_depth" in D_kwargs else biggan.Discriminator
        D = d_cls(**_biggan_fields(d_cls, D_kwargs, d_cls.__name__), dtype=dtype)
    return G, D


def biggan_abstract_variables(module: Any) -> Variables:
    """Shapes of a BigGAN network's ``params`` / ``sn`` / ``batch_stats``, without computing anything."""
    from gan_jax.models import biggan  # noqa: PLC0415

    rngs = {"params": jax.random.key(0)}
    y = jnp.zeros((1,), jnp.int32)
    if isinstance(module, biggan.Generator):
        return jax.eval_shape(lambda: module.init(rngs, jnp.zeros((1, module.z_dim), jnp.float32), y))
    if isinstance(module, biggan.Discriminator):
        r = module.resolution
        return jax.eval_shape(lambda: module.init(rngs, jnp.zeros((1, r, r, 3), jnp.float32), y))
    raise TypeError(f"not a BigGAN network: {type(module).__name__}")


def _biggan_flat(variables: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables))
    return {k: v for k, v in flat.items() if k[0] in _BIGGAN_COLLECTIONS}


def _biggan_layout(leaf: str, x: np.ndarray, to_upstream: bool) -> np.ndarray:
    if leaf == "weight" and x.ndim == 4:
        return np.transpose(x, (3, 2, 0, 1) if to_upstream else (2, 3, 1, 0))
    return x


def biggan_state_shapes(module: Any) -> dict[str, tuple[int, ...]]:
    """Reference ``state_dict`` names and shapes (parameters and buffers) of a BigGAN network."""
    flat = _biggan_flat(biggan_abstract_variables(module))
    return {".".join(k[1:]): _biggan_layout(k[-1], np.empty(v.shape, np.uint8), True).shape for k, v in flat.items()}


def biggan_variables_from_state_dict(module: Any, state: StateDict, abstract: Variables | None = None) -> Variables:
    """Reference ``state_dict`` -> ``{'params', 'sn', 'batch_stats'}`` of ``module``; raises
    ``StateDictMismatch`` listing every missing, unexpected and mis-shaped name. ``abstract`` (the
    ``jax.eval_shape`` of an init) serves a single block or layer; G and D know their own."""
    abstract = _biggan_flat(biggan_abstract_variables(module) if abstract is None else abstract)
    state = {k: np.asarray(v) for k, v in state.items()}
    expected = {".".join(k[1:]): (k, _biggan_layout(k[-1], np.empty(v.shape, np.uint8), True).shape) for k, v in abstract.items()}
    problems = []
    for name, (_, shape) in sorted(expected.items()):
        if name not in state:
            problems.append(f"  missing    {name}: expected shape {list(shape)}")
        elif tuple(state[name].shape) != tuple(shape):
            problems.append(f"  wrong shape {name}: expected {list(shape)}, found {list(state[name].shape)}")
        elif not np.issubdtype(state[name].dtype, np.floating):
            problems.append(f"  wrong dtype {name}: expected a floating-point array, found {state[name].dtype}")
    for name in sorted(set(state) - set(expected)):
        problems.append(f"  unexpected {name}: shape {list(state[name].shape)}")
    if problems:
        raise StateDictMismatch(
            f"state dict does not match {type(module).__name__}(resolution={getattr(module, 'resolution', '?')}, ...) built from the "
            f"given kwargs ({len(problems)} problem(s)):\n" + "\n".join(problems))
    flat = {key: jnp.asarray(_biggan_layout(key[-1], state[name].astype(np.float32), False)) for name, (key, _) in expected.items()}
    return flax.traverse_util.unflatten_dict(flat)


def biggan_state_dict_from_variables(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``{'params', 'sn', 'batch_stats'}`` -> reference ``state_dict`` (numpy, torch layouts, float32)."""
    return {".".join(k[1:]): np.asarray(_biggan_layout(k[-1], np.asarray(v, np.float32), True))
            for k, v in _biggan_flat(variables).items()}


def biggan_from_torch(
    G_kwargs: Mapping[str, Any],
    G_state: StateDict,
    D_kwargs: Mapping[str, Any] | None = None,
    D_state: StateDict | None = None,
    dtype: Any = jnp.float32,
) -> tuple[Any, Variables, Any, Variables | None]:
    """BigGAN-PyTorch ``(constructor kwargs, state_dict)`` pairs -> ``(G, G_vars, D, D_vars)``.

    BigGAN-deep when the kwargs carry ``G_depth`` / ``D_depth`` (as ``BigGANdeep``'s constructors take).
    ``G.apply(G_vars, z, y)`` (eval mode, integer labels ``y`` [N]) gives NHWC images in [-1, 1];
    ``D.apply(D_vars, images_nhwc, y)`` gives logits ``[N, 1]``; ``G.apply(G_vars, z, y, train=True,
    mutable=['sn', 'batch_stats'])`` is a train-mode call that returns the updated SN and BN collections.
    ``D`` and ``D_vars`` are None when ``D_kwargs`` is None.
    """
    G, D = biggan_networks_from_kwargs(G_kwargs, D_kwargs, dtype=dtype)
    G_vars = biggan_variables_from_state_dict(G, G_state)
    if D is None:
        return G, G_vars, None, None
    if D_state is None:
        raise ValueError("D_kwargs given without D_state")
    return G, G_vars, D, biggan_variables_from_state_dict(D, D_state)


# ----------------------------------------------------------------------------------------------
# ProGAN: tkarras/progressive_growing_of_gans TF variables (G_paper / D_paper ``Network.vars``) <-> Flax.
#
# The names and layouts are the official ones, unchanged: a TF variable name is the Flax path joined
# by '/' without the collection, ``4x4/Dense/weight`` <-> ``params/4x4/Dense/weight``,
# ``8x8/Conv0_up/weight`` (fused up-conv, ``[3, 3, out, in]`` in both), ``8x8/Conv0/weight`` (unfused,
# ``[3, 3, in, out]``), ``ToRGB_lod0/bias``, ``FromRGB_lod1/weight``, ``16x16/Conv1_down/weight``,
# ``4x4/Dense0/weight`` ``[in, out]``, ``4x4/Dense1/bias``. The scalar ``lod`` variable (the level of
# detail the network last ran at; gan_jax takes it per call) is checked to be a scalar and not stored.

# Keywords the official build functions take that do not change the numbers.
_PROGAN_IGNORED = {"structure", "is_template_graph"}


def _progan_fields(cls: type, kwargs: Mapping[str, Any], who: str, dtype: Any) -> dict[str, Any]:
    import dataclasses  # noqa: PLC0415

    fields = {f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name", "dtype", "mbstd_num_shards")}
    unknown = sorted(set(kwargs) - fields - _PROGAN_IGNORED - {"dtype"})
    if unknown:
        raise ValueError(f"unknown {who} keyword(s) {unknown}; the official build function takes {sorted(fields)}")
    out = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in kwargs.items() if k in fields}
    out["dtype"] = jnp.dtype(dtype if dtype is not None else (kwargs.get("dtype") or "float32"))
    return out


def progan_generator_from_kwargs(G_kwargs: Mapping[str, Any], dtype: Any = None) -> Any:
    """gan_jax's ProGAN ``Generator`` from the official ``G_paper`` static kwargs (build-function
    defaults for the rest, including ``num_channels=1, resolution=32``, which trainers always store)."""
    from gan_jax.models import progan  # noqa: PLC0415

    return progan.Generator(**_progan_fields(progan.Generator, G_kwargs, "G_paper", dtype))


def progan_discriminator_from_kwargs(D_kwargs: Mapping[str, Any], dtype: Any = None) -> Any:
    """gan_jax's ProGAN ``Discriminator`` from the official ``D_paper`` static kwargs."""
    from gan_jax.models import progan  # noqa: PLC0415

    return progan.Discriminator(**_progan_fields(progan.Discriminator, D_kwargs, "D_paper", dtype))


def progan_tf_shapes(module: Any) -> dict[str, tuple[int, ...]]:
    """The official variable names and shapes of a ProGAN G or D (without ``lod``), by shape only."""
    from gan_jax.models import progan  # noqa: PLC0415

    r, ch = int(module.resolution), int(module.num_channels)
    if isinstance(module, progan.Generator):
        c = jnp.zeros((1, module.c_dim), jnp.float32) if module.c_dim else None
        init = lambda: module.init(jax.random.key(0), jnp.zeros((1, module.z_dim), jnp.float32), c)  # noqa: E731
    elif isinstance(module, progan.Discriminator):
        init = lambda: module.clone(mbstd_num_shards=1).init(jax.random.key(0), jnp.zeros((1, r, r, ch)))  # noqa: E731
    else:
        raise TypeError(f"not a ProGAN network: {type(module).__name__}")
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(jax.eval_shape(init))["params"])
    return {"/".join(k): tuple(v.shape) for k, v in flat.items()}


def progan_variables_from_tf(module: Any, tf_vars: Mapping[str, Any]) -> Variables:
    """Official ``Network.vars`` (name -> array, e.g. a pickle's ``variables``) -> ``{'params': ...}``.

    Raises ``StateDictMismatch`` listing every missing, unexpected and mis-shaped name.
    """
    shapes = progan_tf_shapes(module)
    tf_vars = {k: np.asarray(v) for k, v in tf_vars.items()}
    problems = []
    for name, shape in sorted(shapes.items()):
        if name not in tf_vars:
            problems.append(f"  missing    {name}: expected shape {list(shape)}")
        elif tuple(tf_vars[name].shape) != shape:
            problems.append(f"  wrong shape {name}: expected {list(shape)}, found {list(tf_vars[name].shape)}")
        elif not np.issubdtype(tf_vars[name].dtype, np.floating):
            problems.append(f"  wrong dtype {name}: expected floating point, found {tf_vars[name].dtype}")
    for name in sorted(set(tf_vars) - set(shapes)):
        if name == "lod" and tf_vars[name].shape == ():
            continue
        problems.append(f"  unexpected {name}: shape {list(tf_vars[name].shape)}")
    if problems:
        raise StateDictMismatch(
            f"variables do not match {type(module).__name__}(resolution={module.resolution}, ...) built from the given "
            f"kwargs ({len(problems)} problem(s)):\n" + "\n".join(problems))
    flat = {tuple(name.split("/")): jnp.asarray(tf_vars[name].astype(np.float32)) for name in shapes}
    return {"params": flax.traverse_util.unflatten_dict(flat)}


def progan_tf_from_variables(variables: Mapping[str, Any], lod: float = 0.0) -> dict[str, np.ndarray]:
    """Flax variables -> official ``Network.vars`` names and layouts (with the scalar ``lod``)."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables["params"]))
    return {"lod": np.float32(lod), **{"/".join(k): np.asarray(v) for k, v in flat.items()}}


def progan_from_tf(G_kwargs: Mapping[str, Any], G_vars: Mapping[str, Any], D_kwargs: Mapping[str, Any] | None = None,
                   D_vars: Mapping[str, Any] | None = None, dtype: Any = None) -> tuple[Any, Variables, Any, Variables | None]:
    """The official ``(static_kwargs, variables)`` of ``G_paper`` / ``D_paper`` -> ``(G, G_vars, D, D_vars)``.

    ``G.apply(G_vars, latents, labels, lod=L)`` gives NHWC images [N, R, R, C] at full resolution and
    ``D.apply(D_vars, images_nhwc, labels, lod=L)`` scores [N, 1] (``return_label_logits=True`` adds
    the AC-GAN logits); labels may be None. ``D`` and ``D_vars`` are None when ``D_kwargs`` is None.
    """
    G = progan_generator_from_kwargs(G_kwargs, dtype)
    G_variables = progan_variables_from_tf(G, G_vars)
    if D_kwargs is None:
        return G, G_variables, None, None
    if D_vars is None:
        raise ValueError("D_kwargs given without D_vars")
    D = progan_discriminator_from_kwargs(D_kwargs, dtype)
    return G, G_variables, D, progan_variables_from_tf(D, D_vars)


def _write_run_dir(source: str, dest: str, state: Any, config: Any) -> str:
    """``dest/checkpoints/0`` + ``dest/config.json`` + ``dest/config.py``; returns the config path."""
    import os  # noqa: PLC0415

    from gan_jax import checkpoint  # noqa: PLC0415

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


_PROGAN_DATA_KWARGS = ("num_channels", "resolution", "label_size")


def _convert_growing_pickle(nets: Mapping[str, Any], source: str, dest: str, family: str) -> str:
    """ProGAN / StyleGAN (1) ``(G, D, Gs)`` records -> a gan_jax run of recipe ``family``, sampled at
    ``Gs``'s ``lod``. The config is ``configs/<family>_common.py``'s with the pickle's static kwargs as
    ``model.G`` / ``model.D`` (build-function defaults for the rest, as the official code)."""
    import importlib  # noqa: PLC0415
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from gan_jax import parallel  # noqa: PLC0415

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if repo not in sys.path:
        sys.path.append(repo)
    recipe_lib = importlib.import_module(f"gan_jax.recipes.{family}")
    make_config = getattr(importlib.import_module(f"configs.{family}_common"), family)
    from_kwargs, from_tf = {"progan": (progan_generator_from_kwargs, progan_variables_from_tf),
                            "stylegan": (stylegan_generator_from_kwargs, stylegan_variables_from_tf)}[family]

    g_ema = nets.get("G_ema") or nets.get("G")
    if g_ema is None:
        raise ValueError(f"{source} holds no generator (expected 'G' or 'G_ema'; found {sorted(nets)})")
    G_kwargs = dict(g_ema.static_kwargs)
    G = from_kwargs(G_kwargs)  # validates the kwargs before anything is written
    config = make_config(resolution=int(G.resolution))
    config.data.channels, config.model.c_dim = int(G.num_channels), int(G.label_size)
    config.data.use_labels = bool(G.label_size)
    config.model.G = {k: _plain_kwargs(v) for k, v in G_kwargs.items() if k not in _PROGAN_DATA_KWARGS}
    if "D" in nets:
        config.model.D = {k: _plain_kwargs(v) for k, v in nets["D"].static_kwargs.items() if k not in _PROGAN_DATA_KWARGS}
    config.train.num_shards = 1
    r = recipe_lib.recipe(config, 1)
    g_ema_vars = from_tf(r.G, g_ema.variables)
    g_vars = from_tf(r.G, nets["G"].variables) if "G" in nets else g_ema_vars
    d_vars = from_tf(r.D, nets["D"].variables) if "D" in nets else None
    lod = float(np.asarray(g_ema.variables.get("lod", 0.0)))
    config.train.num_shards = None
    state = r.create_state(jax.random.PRNGKey(0), g_vars, d_vars, g_ema_vars, lod=lod)
    return _write_run_dir(source, dest, parallel.replicate(state, parallel.make_mesh()), config)


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
