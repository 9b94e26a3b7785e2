"""state_dict <-> Flax variables: exact round trip, and clear errors for state dicts that do not fit."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from conftest import load_json, load_npz
from gan_jax import convert

FAMILY = "stylegan2_ada"
NETS = ["G_orig", "G_skip", "G_resnet", "G_cond", "D_orig", "D_skip", "D_resnet", "D_cond"]


@pytest.fixture(scope="module")
def nets():
    return load_json(FAMILY, "nets.json")["nets"]


def _build(name, kwargs):
    return convert.generator_from_kwargs(kwargs) if name.startswith("G") else convert.discriminator_from_kwargs(kwargs)


@pytest.mark.parametrize("name", NETS)
def test_round_trip_is_identical(nets, name):
    state = load_npz(FAMILY, f"{name}_params.npz")
    net = _build(name, nets[name]["init_kwargs"])
    back = convert.state_dict_from_variables(net, convert.variables_from_state_dict(net, state))
    assert sorted(back) == sorted(state)
    for key, value in state.items():
        assert back[key].dtype == value.dtype and back[key].shape == value.shape, key
        np.testing.assert_array_equal(back[key], value, err_msg=key)


@pytest.mark.parametrize("name", NETS)
def test_counts_match_official(nets, name):
    """Parameter and buffer element counts of the converted nets equal the official ones (nets.json)."""
    net = _build(name, nets[name]["init_kwargs"])
    variables = convert.variables_from_state_dict(net, load_npz(FAMILY, f"{name}_params.npz"))
    n_params = sum(np.size(v) for v in jax.tree.leaves(variables["params"]))
    n_all = sum(v.size for v in convert.state_dict_from_variables(net, variables).values())
    assert n_params == nets[name]["num_params"]
    assert n_all - n_params == nets[name]["num_buffer_elems"]


@pytest.fixture(scope="module")
def skip_g(nets):
    return nets["G_skip"]["init_kwargs"], load_npz(FAMILY, "G_skip_params.npz")


def test_missing_key_is_named(skip_g):
    kwargs, state = skip_g
    state = dict(state)
    del state["synthesis.b8.conv0.weight"]
    with pytest.raises(convert.StateDictMismatch, match=r"missing +synthesis\.b8\.conv0\.weight: expected shape \[32, 32, 3, 3\]"):
        convert.stylegan2_from_torch(kwargs, state)


def test_wrong_shape_is_named_with_both_shapes(skip_g):
    kwargs, state = skip_g
    state = dict(state)
    state["mapping.fc1.weight"] = np.zeros((32, 16), np.float32)
    with pytest.raises(convert.StateDictMismatch, match=r"wrong shape mapping\.fc1\.weight: expected \[32, 32\], found \[32, 16\]"):
        convert.stylegan2_from_torch(kwargs, state)


def test_unexpected_key_is_named(skip_g):
    kwargs, state = skip_g
    state = dict(state, **{"synthesis.b4.extra": np.zeros(3, np.float32)})
    with pytest.raises(convert.StateDictMismatch, match=r"unexpected synthesis\.b4\.extra"):
        convert.stylegan2_from_torch(kwargs, state)


def test_state_of_another_resolution_is_refused(skip_g):
    kwargs, state = skip_g
    kwargs64 = dict(kwargs, img_resolution=64)
    with pytest.raises(convert.StateDictMismatch) as err:
        convert.stylegan2_from_torch(kwargs64, state)
    msg = str(err.value)
    assert "img_resolution=64" in msg
    assert "missing    synthesis.b64.conv0.weight" in msg
    assert "synthesis.b64.torgb.weight" in msg


def test_every_problem_is_listed_at_once(skip_g):
    kwargs, state = skip_g
    state = dict(state)
    del state["synthesis.b4.const"]
    del state["mapping.w_avg"]
    state["synthesis.b32.torgb.bias"] = np.zeros(4, np.float32)
    with pytest.raises(convert.StateDictMismatch, match="3 problem") as err:
        convert.stylegan2_from_torch(kwargs, state)
    for name in ("synthesis.b4.const", "mapping.w_avg", "synthesis.b32.torgb.bias"):
        assert name in str(err.value)


def test_d_state_given_to_g_is_refused(nets):
    with pytest.raises(convert.StateDictMismatch, match="unexpected b32.fromrgb.weight"):
        convert.stylegan2_from_torch(nets["G_skip"]["init_kwargs"], load_npz(FAMILY, "D_skip_params.npz"))


def test_other_resample_filter_is_refused(skip_g):
    kwargs, state = skip_g
    state = dict(state)
    state["synthesis.b8.resample_filter"] = np.full((4, 4), 1 / 16, np.float32)
    with pytest.raises(convert.StateDictMismatch, match=r"wrong value synthesis\.b8\.resample_filter"):
        convert.stylegan2_from_torch(kwargs, state)


def test_unknown_kwargs_are_named(skip_g):
    kwargs, _ = skip_g
    bad = dict(kwargs, mapping_kwargs={"num_layers": 2, "lr_mult": 0.01})
    with pytest.raises(ValueError, match=r"unknown Generator mapping_kwargs keyword\(s\) \['lr_mult'\]"):
        convert.generator_from_kwargs(bad)
    with pytest.raises(ValueError, match=r"unknown Discriminator epilogue_kwargs keyword\(s\) \['mbstd_group'\]"):
        convert.discriminator_from_kwargs({"c_dim": 0, "img_resolution": 32, "img_channels": 3,
                                           "epilogue_kwargs": {"mbstd_group": 4}})


def test_stylegan3_repo_style_top_level_synthesis_kwargs(skip_g):
    """The StyleGAN3 repo passes synthesis kwargs at the Generator's top level; both spellings build the same net."""
    kwargs, _ = skip_g
    flat = {k: v for k, v in kwargs.items() if k != "synthesis_kwargs"}
    flat.update(kwargs["synthesis_kwargs"], fused_modconv_default="inference_only")  # as StyleGAN3's train.py sets it
    assert convert.generator_from_kwargs(flat) == convert.generator_from_kwargs(kwargs)
