"""Freeze-D: which parameters of D NVIDIA's ``--freezed=N`` freezes, and that training leaves them be.

Rule (stylegan2-ada-pytorch ``training/networks.py``, ``Discriminator.__init__`` and
``DiscriminatorBlock.__init__``): blocks from the highest resolution down, layers numbered from 0
in creation order ``fromrgb`` (first block, or every block of ``skip``), ``conv0``, ``conv1``,
``skip`` (``resnet`` only); layer ``i`` is frozen when ``i < freeze_layers``. ``b4`` (epilogue)
and the label mapping network are never frozen. The expected names below are written out by hand
from that rule.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config
from gan_jax.models import stylegan2

# 32x32: blocks b32, b16, b8 (then the b4 epilogue).
EXPECTED = {
    # resnet: b32 fromrgb 0, conv0 1, conv1 2, skip 3; b16 conv0 4, conv1 5, skip 6; b8 conv0 7, ...
    ("resnet", 0): set(),
    ("resnet", 1): {"b32/fromrgb"},
    ("resnet", 3): {"b32/fromrgb", "b32/conv0", "b32/conv1"},
    ("resnet", 5): {"b32/fromrgb", "b32/conv0", "b32/conv1", "b32/skip", "b16/conv0"},
    # skip: every block has a fromrgb, none a skip: b32 fromrgb 0, conv0 1, conv1 2; b16 fromrgb 3, conv0 4, ...
    ("skip", 0): set(),
    ("skip", 1): {"b32/fromrgb"},
    ("skip", 3): {"b32/fromrgb", "b32/conv0", "b32/conv1"},
    ("skip", 5): {"b32/fromrgb", "b32/conv0", "b32/conv1", "b16/fromrgb", "b16/conv0"},
    # orig: fromrgb in the first block only: b32 fromrgb 0, conv0 1, conv1 2; b16 conv0 3, conv1 4; b8 conv0 5, ...
    ("orig", 0): set(),
    ("orig", 1): {"b32/fromrgb"},
    ("orig", 3): {"b32/fromrgb", "b32/conv0", "b32/conv1"},
    ("orig", 5): {"b32/fromrgb", "b32/conv0", "b32/conv1", "b16/conv0", "b16/conv1"},
}


def _d_params(D: stylegan2.Discriminator, c_dim: int = 0):
    """D's ``params`` as ShapeDtypeStructs (no arrays computed)."""
    img = jnp.zeros((2, D.img_resolution, D.img_resolution, D.img_channels), jnp.float32)
    c = jnp.zeros((2, c_dim), jnp.float32) if c_dim else None
    return jax.eval_shape(D.init, jax.random.PRNGKey(0), img, c)["params"]


def _layer(path) -> str:
    return "/".join(str(e.key) for e in path[:2])


def _frozen_layers(mask) -> set[str]:
    """The layers of the True leaves, checking that a layer is frozen as a whole (weight and bias)."""
    by_layer: dict[str, set[bool]] = {}
    for path, value in jax.tree_util.tree_leaves_with_path(mask):
        assert isinstance(value, bool), jax.tree_util.keystr(path)
        by_layer.setdefault(_layer(path), set()).add(value)
    assert all(len(v) == 1 for v in by_layer.values()), by_layer
    return {layer for layer, v in by_layer.items() if v == {True}}


@pytest.mark.parametrize("architecture,freeze_layers", sorted(EXPECTED))
def test_frozen_layers_follow_nvidia_numbering(architecture, freeze_layers):
    D = stylegan2.Discriminator(c_dim=0, img_resolution=32, img_channels=3, architecture=architecture,
                                channel_base=64, channel_max=8, freeze_layers=freeze_layers)
    params = _d_params(D)
    mask = stylegan2.freeze_d_mask(D, params)
    assert jax.tree.structure(mask) == jax.tree.structure(params)
    assert _frozen_layers(mask) == EXPECTED[architecture, freeze_layers]


def test_layer_numbering_of_a_resnet_d():
    D = stylegan2.Discriminator(c_dim=0, img_resolution=32, img_channels=3, channel_base=64, channel_max=8)
    assert stylegan2.discriminator_layer_names(D) == [
        "b32/fromrgb", "b32/conv0", "b32/conv1", "b32/skip", "b16/conv0", "b16/conv1", "b16/skip",
        "b8/conv0", "b8/conv1", "b8/skip"]


def test_epilogue_and_label_mapping_are_never_frozen():
    D = stylegan2.Discriminator(c_dim=2, img_resolution=32, img_channels=3, channel_base=64, channel_max=8,
                                freeze_layers=100, mapping_layers=2)
    mask = stylegan2.freeze_d_mask(D, _d_params(D, c_dim=2))
    assert _frozen_layers(mask) == {"b32/fromrgb", "b32/conv0", "b32/conv1", "b32/skip", "b16/conv0", "b16/conv1",
                                    "b16/skip", "b8/conv0", "b8/conv1", "b8/skip"}
    assert not any(jax.tree.leaves(mask["b4"])) and not any(jax.tree.leaves(mask["mapping"]))


def test_params_of_another_d_are_refused():
    small = stylegan2.Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=64, channel_max=8)
    big = small.clone(img_resolution=32, freeze_layers=1)
    with pytest.raises(ValueError, match=r"b32/fromrgb"):
        stylegan2.freeze_d_mask(big, _d_params(small))


def test_training_leaves_frozen_layers_unchanged(tmp_path):
    """tiny config: 16x16 resnet D, freeze 2 = b16/fromrgb and b16/conv0 (NVIDIA's --freezed=2).

    Fails until the StyleGAN2 recipe gives the leaves of ``stylegan2.freeze_d_mask`` zero updates.
    """
    from gan_jax import train

    cfg = tiny_config()
    cfg.model.D.block_kwargs = {"freeze_layers": 2}
    initial = jax.device_get(train.train(cfg, str(tmp_path / "initial"), max_steps=0).params["D"])
    # Step 0 runs Dmain and Dreg (R1): both update D.
    trained = jax.device_get(train.train(cfg, str(tmp_path / "trained"), max_steps=1).params["D"])
    changed, frozen = {}, {}
    for (path, before), after in zip(jax.tree_util.tree_leaves_with_path(initial), jax.tree.leaves(trained)):
        layer = _layer(path)
        (frozen if layer in ("b16/fromrgb", "b16/conv0") else changed)[jax.tree_util.keystr(path)] = (before, after)
    assert len(frozen) == 4  # weight and bias of both layers
    for name, (before, after) in frozen.items():
        assert np.array_equal(np.asarray(before), np.asarray(after)), f"{name} is frozen but was updated"
    for name, (before, after) in changed.items():
        assert not np.array_equal(np.asarray(before), np.asarray(after)), f"{name} is trainable but did not change"
