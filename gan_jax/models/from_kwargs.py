"""gan_jax networks from the official constructor keywords, one factory per upstream network.

| factory                                  | keywords of                                                   |
| ---------------------------------------- | ------------------------------------------------------------- |
| ``generator_from_kwargs``                | NVlabs StyleGAN2-ADA / StyleGAN3 repo ``Generator(**init_kwargs)`` |
| ``discriminator_from_kwargs``            | their ``Discriminator(**init_kwargs)``                        |
| ``progan_generator_from_kwargs``         | tkarras/progressive_growing_of_gans ``G_paper`` static kwargs |
| ``progan_discriminator_from_kwargs``     | its ``D_paper``                                               |
| ``stylegan_generator_from_kwargs``       | NVlabs/stylegan ``G_style`` static kwargs                      |
| ``stylegan_discriminator_from_kwargs``   | its ``D_basic``                                               |
| ``biggan_generator_from_kwargs``         | ajbrock/BigGAN-PyTorch ``Generator`` (``BigGANdeep``'s too)    |
| ``biggan_discriminator_from_kwargs``     | its ``Discriminator``; ``biggan_networks_from_kwargs`` builds both |

Keywords a factory does not know raise ``ValueError`` naming them; keywords that do not change the
numbers (memory formats, run-time switches, optimizer settings) are accepted and dropped. Keywords
the trainers do not store take the official defaults, which are the modules' field defaults.

This module imports only jax, flax, numpy and gan_jax.models.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from gan_jax.models import biggan, progan, stylegan, stylegan2

__all__ = [
    "biggan_discriminator_from_kwargs",
    "biggan_generator_from_kwargs",
    "biggan_networks_from_kwargs",
    "discriminator_from_kwargs",
    "generator_from_kwargs",
    "progan_discriminator_from_kwargs",
    "progan_generator_from_kwargs",
    "stylegan2_discriminator_from_kwargs",
    "stylegan2_generator_from_kwargs",
    "stylegan_discriminator_from_kwargs",
    "stylegan_generator_from_kwargs",
]

# Module fields that are no constructor keyword upstream: Flax's own, the compute dtype (an
# argument of the factories), and how many devices share the minibatch-stddev groups.
_NOT_KEYWORDS = {"parent", "name", "dtype", "mbstd_num_shards"}


def _refuse_unknown(kwargs: Mapping[str, Any], known: Any, ignored: set[str], who: str) -> None:
    unknown = sorted(set(kwargs) - set(known) - ignored)
    if unknown:
        raise ValueError(f"unknown {who} keyword(s) {unknown}; expected a subset of {sorted(known)}")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _module_fields(cls: type, kwargs: Mapping[str, Any], who: str, ignored: set[str]) -> dict[str, Any]:
    """The keywords of ``kwargs`` that are fields of the Flax module ``cls`` (numpy scalars as
    Python numbers); ``ignored`` ones are dropped, any other raises ``ValueError``."""
    fields = {f.name for f in dataclasses.fields(cls)} - _NOT_KEYWORDS
    _refuse_unknown(kwargs, fields, ignored, who)
    return {k: _plain(v) for k, v in kwargs.items() if k in fields}


def _compute_dtype(dtype: Any, kwargs: Mapping[str, Any]) -> jnp.dtype:
    """``dtype`` if given, else the TF build functions' ``dtype`` keyword, else float32."""
    return jnp.dtype(dtype if dtype is not None else (kwargs.get("dtype") or "float32"))


# ----------------------------------------------------------------------------------------------
# StyleGAN2 (NVlabs/stylegan2-ada-pytorch, and the StyleGAN3 repo's networks_stylegan2).

# Official constructor keywords and the gan_jax fields they become.
_G_TOP = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"}
_G_REQUIRED = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
_D_REQUIRED = ("c_dim", "img_resolution", "img_channels")
_MAPPING = {"num_layers": "mapping_layers", "embed_features": "mapping_embed_features",
            "layer_features": "mapping_layer_features", "activation": "mapping_activation",
            "lr_multiplier": "mapping_lr_multiplier"}
_G_MAPPING = {**_MAPPING, "w_avg_beta": "w_avg_beta"}
_G_SYNTHESIS = {"channel_base", "channel_max", "num_fp16_res", "architecture", "resample_filter", "conv_clamp",
                "kernel_size", "use_noise", "activation"}
_D_NESTED = ("block_kwargs", "mapping_kwargs", "epilogue_kwargs")
_D_TOP = {"c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max", "num_fp16_res",
          "conv_clamp", "cmap_dim"}
_D_BLOCK = {"activation": "activation", "resample_filter": "resample_filter", "freeze_layers": "freeze_layers"}
_D_EPILOGUE = {"mbstd_group_size": "mbstd_group_size", "mbstd_num_channels": "mbstd_num_channels",
               "activation": "epilogue_activation"}
# Execution choices of the PyTorch code that do not change the numbers: the memory format, and the
# StyleGAN3 repo's default modconv form (gan_jax takes ``fused_modconv`` per call).
_LAYOUT_ONLY = {"fp16_channels_last", "fused_modconv_default"}


def _take(kwargs: Mapping[str, Any], known: Mapping[str, str] | set[str], where: str) -> dict[str, Any]:
    """``kwargs`` renamed to gan_jax fields (``known``: official -> field name, or a set of names kept)."""
    _refuse_unknown(kwargs, known, _LAYOUT_ONLY, where)
    names = known if isinstance(known, Mapping) else {k: k for k in known}
    return {names[k]: tuple(v) if k == "resample_filter" else v for k, v in kwargs.items() if k not in _LAYOUT_ONLY}


def _require(fields: Mapping[str, Any], required: tuple[str, ...], who: str) -> None:
    missing = sorted(set(required) - set(fields))
    if missing:
        raise ValueError(f"{who} kwargs lack {missing}")


def generator_from_kwargs(G_kwargs: Mapping[str, Any], dtype: Any = jnp.float32) -> stylegan2.Generator:
    """gan_jax's StyleGAN2 ``Generator`` from the official ``Generator(**init_kwargs)`` keywords.

    Synthesis keywords given at the top level (the StyleGAN3 repo's ``**synthesis_kwargs``) are
    accepted too. Unknown keywords raise ``ValueError`` naming them. The network maps z
    ``[N, z_dim]`` (and c ``[N, c_dim]``) to NHWC images ``[N, img_resolution, img_resolution,
    img_channels]``.
    """
    synthesis = dict(G_kwargs.get("synthesis_kwargs", {}))
    synthesis.update({k: v for k, v in G_kwargs.items() if k not in _G_TOP})
    fields = {k: G_kwargs[k] for k in _G_REQUIRED if k in G_kwargs}
    _require(fields, _G_REQUIRED, "Generator")
    fields.update(_take(G_kwargs.get("mapping_kwargs", {}), _G_MAPPING, "Generator mapping_kwargs"))
    fields.update(_take(synthesis, _G_SYNTHESIS, "Generator synthesis_kwargs"))
    return stylegan2.Generator(**fields, dtype=dtype)


def discriminator_from_kwargs(D_kwargs: Mapping[str, Any], dtype: Any = jnp.float32) -> stylegan2.Discriminator:
    """gan_jax's StyleGAN2 ``Discriminator`` from the official ``Discriminator(**init_kwargs)``
    keywords: NHWC images ``[N, R, R, img_channels]`` (and c ``[N, c_dim]``) -> logits ``[N, 1]``."""
    fields = _take({k: v for k, v in D_kwargs.items() if k not in _D_NESTED}, _D_TOP, "Discriminator")
    for key in _D_REQUIRED:
        if key not in fields:
            raise ValueError(f"Discriminator kwargs lack {key!r}")
    fields.update(_take(D_kwargs.get("block_kwargs", {}), _D_BLOCK, "Discriminator block_kwargs"))
    fields.update(_take(D_kwargs.get("mapping_kwargs", {}), _MAPPING, "Discriminator mapping_kwargs"))
    fields.update(_take(D_kwargs.get("epilogue_kwargs", {}), _D_EPILOGUE, "Discriminator epilogue_kwargs"))
    return stylegan2.Discriminator(**fields, dtype=dtype)


stylegan2_generator_from_kwargs = generator_from_kwargs
stylegan2_discriminator_from_kwargs = discriminator_from_kwargs


# ----------------------------------------------------------------------------------------------
# ProGAN (tkarras/progressive_growing_of_gans, networks.py G_paper / D_paper).

# Keywords the official build functions take that do not change the numbers.
_PROGAN_IGNORED = {"structure", "is_template_graph", "dtype"}


def progan_generator_from_kwargs(G_kwargs: Mapping[str, Any], dtype: Any = None) -> progan.Generator:
    """gan_jax's ProGAN ``Generator`` from the official ``G_paper`` static kwargs (build-function
    defaults for the rest, including ``num_channels=1, resolution=32``, which trainers always store):
    latents ``[N, latent_size]`` (and labels ``[N, label_size]``) -> NHWC images ``[N, R, R, C]``."""
    fields = _module_fields(progan.Generator, G_kwargs, "G_paper", _PROGAN_IGNORED)
    return progan.Generator(**fields, dtype=_compute_dtype(dtype, G_kwargs))


def progan_discriminator_from_kwargs(D_kwargs: Mapping[str, Any], dtype: Any = None) -> progan.Discriminator:
    """gan_jax's ProGAN ``Discriminator`` from the official ``D_paper`` static kwargs: NHWC images
    ``[N, R, R, C]`` -> scores ``[N, 1]``."""
    fields = _module_fields(progan.Discriminator, D_kwargs, "D_paper", _PROGAN_IGNORED)
    return progan.Discriminator(**fields, dtype=_compute_dtype(dtype, D_kwargs))


# ----------------------------------------------------------------------------------------------
# StyleGAN (1) (NVlabs/stylegan, training/networks_stylegan.py G_style / D_basic).

# Keywords the official networks receive at run time, never stored by a trainer (Network.run
# args), and the build function's own ``dtype``.
_SG1_IGNORED = {"is_training", "is_validation", "is_template_graph", "force_clean_graph", "components", "dtype"}


def _sg1_fields(cls: type, kwargs: Mapping[str, Any], who: str, ignored: set[str]) -> dict[str, Any]:
    fields = _module_fields(cls, kwargs, who, ignored)
    if fields.get("blur_filter") is not None:
        fields["blur_filter"] = tuple(float(v) for v in fields["blur_filter"])
    if "use_noise" in fields:
        fields["use_noise"] = bool(fields["use_noise"])  # the official noise shape is [1, use_noise, H, W]: 1 == True
    return fields


def stylegan_generator_from_kwargs(G_kwargs: Mapping[str, Any], dtype: Any = None) -> stylegan.Generator:
    """gan_jax's StyleGAN ``Generator`` from the official ``G_style`` static kwargs (build-function
    defaults for the rest: psi 0.7, cutoff 8, resolution 1024, 512-d latents, 8 mapping layers ...):
    latents ``[N, latent_size]`` -> NHWC images ``[N, R, R, num_channels]``."""
    # dlatent_broadcast: G_mapping's output broadcast, implied by G_synthesis's num_layers.
    fields = _sg1_fields(stylegan.Generator, G_kwargs, "G_style", _SG1_IGNORED | {"dlatent_broadcast"})
    return stylegan.Generator(**fields, dtype=_compute_dtype(dtype, G_kwargs))


def stylegan_discriminator_from_kwargs(D_kwargs: Mapping[str, Any], dtype: Any = None) -> stylegan.Discriminator:
    """gan_jax's StyleGAN ``Discriminator`` from the official ``D_basic`` static kwargs (official
    defaults otherwise, including ``num_channels=1, resolution=32``, which trainers always store):
    NHWC images ``[N, R, R, C]`` -> scores ``[N, 1]``."""
    fields = _sg1_fields(stylegan.Discriminator, D_kwargs, "D_basic", _SG1_IGNORED)
    return stylegan.Discriminator(**fields, dtype=_compute_dtype(dtype, D_kwargs))


# ----------------------------------------------------------------------------------------------
# BigGAN / BigGAN-deep (ajbrock/BigGAN-PyTorch BigGAN.py / BigGANdeep.py).

# Constructor keywords that do not define the network (optimizer, precision and init switches);
# they are accepted and ignored.
_BIGGAN_IGNORED = {"G_lr", "G_B1", "G_B2", "D_lr", "D_B1", "D_B2", "adam_eps", "G_mixed_precision", "G_fp16",
                   "D_mixed_precision", "D_fp16", "skip_init", "no_optim"}
_BIGGAN_ACTIVATIONS = ("G_activation", "D_activation")
# str() of the nn.ReLU modules the launch scripts pass, and the name train.py maps to one.
_RELU = ("relu", "relu()", "relu(inplace=false)", "relu(inplace=true)", "inplace_relu")


def _biggan(cls: type, kwargs: Mapping[str, Any], dtype: Any) -> Any:
    who = cls.__name__
    for key in _BIGGAN_ACTIVATIONS:
        if key in kwargs and str(kwargs[key]).lower() not in _RELU:
            raise ValueError(f"{who}: {key}={kwargs[key]!r}; gan_jax's BigGAN uses ReLU as the reference's launch scripts")
    return cls(**_module_fields(cls, kwargs, who, _BIGGAN_IGNORED | set(_BIGGAN_ACTIVATIONS)), dtype=dtype)


def biggan_generator_from_kwargs(G_kwargs: Mapping[str, Any], dtype: Any = jnp.float32) -> biggan.Generator:
    """gan_jax's BigGAN G from the reference ``Generator`` keywords (``DeepGenerator`` when they
    carry ``G_depth``): z ``[N, dim_z]`` and integer labels ``[N]`` -> NHWC images ``[N, R, R, 3]``."""
    return _biggan(biggan.DeepGenerator if "G_depth" in G_kwargs else biggan.Generator, G_kwargs, dtype)


def biggan_discriminator_from_kwargs(D_kwargs: Mapping[str, Any], dtype: Any = jnp.float32) -> biggan.Discriminator:
    """gan_jax's BigGAN D from the reference ``Discriminator`` keywords (``DeepDiscriminator`` when
    they carry ``D_depth``): NHWC images ``[N, R, R, 3]`` and integer labels ``[N]`` -> logits ``[N, 1]``."""
    return _biggan(biggan.DeepDiscriminator if "D_depth" in D_kwargs else biggan.Discriminator, D_kwargs, dtype)


def biggan_networks_from_kwargs(G_kwargs: Mapping[str, Any], D_kwargs: Mapping[str, Any] | None = None,
                                dtype: Any = jnp.float32) -> tuple[biggan.Generator, biggan.Discriminator | None]:
    """gan_jax's BigGAN G and D (None without ``D_kwargs``) from the reference constructor
    keywords: BigGAN-deep when they carry ``G_depth`` / ``D_depth``."""
    G = biggan_generator_from_kwargs(G_kwargs, dtype)
    return G, (None if D_kwargs is None else biggan_discriminator_from_kwargs(D_kwargs, dtype))
