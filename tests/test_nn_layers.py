"""The shared layers against single-op cases of NVIDIA's official code (fixtures/stylegan2_ada/layers.*)."""

from __future__ import annotations

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_json, load_npz, nchw, nhwc, oihw_to_hwio
from gan_jax import nn as gnn
from tolerance import assert_close

FAMILY = "stylegan2_ada"


@pytest.fixture(scope="module")
def layers():
    return load_npz(FAMILY, "layers.npz"), load_json(FAMILY, "layers.json")


def _filter(arrays, name):
    return None if name in (None, "None") else arrays[f"filter.{name}"]


def test_setup_filter_matches_official(layers):
    arrays, _ = layers
    np.testing.assert_array_equal(gnn.setup_filter([1, 3, 3, 1]), arrays["filter.f1331"])
    assert_close(gnn.setup_filter([1, 3, 3, 1], separable=True), arrays["filter.f1331_sep"], rtol=1e-7)
    assert_close(gnn.setup_filter([1, 2, 5, 3], separable=True), arrays["filter.fasym_1d"], rtol=1e-7)
    # >= 8 taps become separable automatically, as upstream.
    assert gnn.setup_filter(np.ones(8)).ndim == 1 and gnn.setup_filter(np.ones(7)).ndim == 2


UPFIRDN_FNS = {
    "upfirdn2d.upfirdn2d": gnn.upfirdn2d,
    "upfirdn2d.upsample2d": gnn.upsample2d,
    "upfirdn2d.downsample2d": gnn.downsample2d,
    "upfirdn2d.filter2d": gnn.filter2d,
}


def test_upfirdn2d_cases(layers):
    arrays, meta = layers
    x = nhwc(arrays["upfirdn.x"])
    assert len(meta["upfirdn2d"]) >= 15
    for case, kw in meta["upfirdn2d"].items():
        kw = dict(kw)
        fn = UPFIRDN_FNS[kw.pop("fn")]
        f = _filter(arrays, kw.pop("f"))
        kw.pop("x")
        out = jax.jit(lambda x: fn(x, f, **kw))(x)
        assert_close(nchw(out), arrays[f"upfirdn.{case}.out"], atol=1e-5, what=case)


def test_conv2d_resample_cases(layers):
    arrays, meta = layers
    for case, kw in meta["conv2d_resample"].items():
        kw = dict(kw)
        f = _filter(arrays, kw.pop("f"))
        x = nhwc(arrays[f"conv2d_resample.{case}.x"])
        w = oihw_to_hwio(arrays[f"conv2d_resample.{case}.w"])
        padding = kw.pop("padding")
        out = jax.jit(lambda x, w: gnn.conv2d_resample(x, w, f=f, padding=padding, **kw))(x, w)
        assert_close(nchw(out), arrays[f"conv2d_resample.{case}.out"], atol=1e-5, what=case)


def _modconv_case(arrays, case, kw, fused=None):
    x = nhwc(arrays[f"modconv.{case}.x"])
    w = oihw_to_hwio(arrays[f"modconv.{case}.weight"])
    s = arrays[f"modconv.{case}.styles"]
    noise = arrays[f"modconv.{case}.noise"][:, :, None] if kw["noise"] else None
    fn = functools.partial(
        gnn.modulated_conv2d, up=kw.get("up", 1), down=kw.get("down", 1), padding=kw["padding"],
        resample_filter=_filter(arrays, kw["resample_filter"]), demodulate=kw["demodulate"],
        flip_weight=kw["flip_weight"], fused_modconv=kw["fused_modconv"] if fused is None else fused,
    )
    return jax.jit(fn)(x, w, s, noise)


def test_modulated_conv_cases(layers):
    arrays, meta = layers
    for case, kw in meta["modulated_conv2d"].items():
        out = _modconv_case(arrays, case, kw)
        assert_close(nchw(out), arrays[f"modconv.{case}.out"], atol=1e-5, what=case)


def test_grouped_and_per_sample_modconv_agree(layers):
    arrays, meta = layers
    for case, kw in meta["modulated_conv2d"].items():
        grouped = _modconv_case(arrays, case, kw, fused=True)
        per_sample = _modconv_case(arrays, case, kw, fused=False)
        assert_close(grouped, per_sample, atol=1e-5, what=case)


def test_bias_act_cases(layers):
    arrays, meta = layers
    for case, kw in meta["bias_act"].items():
        kw = dict(kw)
        x = arrays[f"bias_act.{case}.x"]
        b = arrays.get(f"bias_act.{case}.b")
        dim = kw.pop("dim", 1)
        # The fixture is NCHW; with dim=d the bias runs along axis d of the same array.
        out = jax.jit(lambda x, b: gnn.bias_act(x, b, axis=dim, **kw))(x, b)
        assert_close(out, arrays[f"bias_act.{case}.out"], atol=1e-6, what=case)


def test_minibatch_std_cases(layers):
    arrays, meta = layers
    x = nhwc(arrays["mbstd.x"])
    for case, kw in meta["mbstd"].items():
        out = jax.jit(lambda x: gnn.minibatch_std(x, kw["group_size"], kw["num_channels"]))(x)
        assert_close(nchw(out), arrays[f"mbstd.{case}.out"], atol=1e-6, what=case)


def test_minibatch_std_groups_are_strided(layers):
    """Changing one sample changes the statistic of exactly its group {i, i+N/G, ...}."""
    arrays, meta = layers
    x = nhwc(arrays["mbstd.x"])
    for case, kw in meta["mbstd"].items():
        base = gnn.minibatch_std(x, kw["group_size"], kw["num_channels"])[..., -1]
        for group in arrays[f"mbstd.{case}.groups"]:
            bumped = x.copy()
            bumped[group[0]] *= 3.0
            changed = np.abs(gnn.minibatch_std(bumped, kw["group_size"], kw["num_channels"])[..., -1] - base).max(axis=(1, 2)) > 0
            np.testing.assert_array_equal(np.flatnonzero(changed), np.sort(group), err_msg=case)


def test_minibatch_std_rejects_indivisible_batch():
    with pytest.raises(ValueError, match="divisible by the group size 4"):
        gnn.minibatch_std(jnp.zeros((6, 4, 4, 3)), 4)


def test_normalize_2nd_moment(layers):
    arrays, _ = layers
    out = gnn.normalize_2nd_moment(arrays["normalize_2nd_moment.x"])
    assert_close(out, arrays["normalize_2nd_moment.out"], atol=1e-6)


def test_fully_connected_module(layers):
    arrays, meta = layers
    init = meta["modules"]["fc_lrelu_lr0.01"]["init"]
    layer = gnn.FullyConnectedLayer(init["out_features"], activation=init["activation"],
                                    lr_multiplier=init["lr_multiplier"], bias_init=init["bias_init"])
    params = {"weight": arrays["mod.fc_lrelu_lr0.01.weight"].T, "bias": arrays["mod.fc_lrelu_lr0.01.bias"]}
    out = jax.jit(layer.apply)({"params": params}, arrays["mod.fc_lrelu_lr0.01.x"])
    assert_close(out, arrays["mod.fc_lrelu_lr0.01.out"], atol=1e-5)


def test_conv2d_layer_modules(layers):
    arrays, meta = layers
    for name, gains in [("conv2dlayer_k3_down2_clamp", {"out_gain1": 1.0, "out_gainsqrt0.5": np.sqrt(0.5)}),
                        ("conv2dlayer_k1_up2_nobias", {"out_gainsqrt0.5": np.sqrt(0.5)})]:
        init = dict(meta["modules"][name]["init"])
        in_ch = init.pop("in_channels")
        layer = gnn.Conv2dLayer(init.pop("out_channels"), init.pop("kernel_size"), **init)
        params = {"weight": oihw_to_hwio(arrays[f"mod.{name}.weight"])}
        if f"mod.{name}.bias" in arrays:
            params["bias"] = arrays[f"mod.{name}.bias"]
        x = nhwc(arrays[f"mod.{name}.x"])
        assert x.shape[-1] == in_ch
        for key, gain in gains.items():
            out = layer.apply({"params": params}, x, gain=gain)
            assert_close(nchw(out), arrays[f"mod.{name}.{key}"], atol=1e-5, what=f"{name}.{key}")


@pytest.mark.parametrize("shape", [(1, 4), (3, 1), (1, 1), (4, 4), (3, 4), (20, 20)])
@pytest.mark.parametrize("down", [1, 2, (2, 1), (1, 3)])
def test_upfirdn2d_shift_sum_paths_match_a_direct_convolution(shape, down):
    """Every filter-path of upfirdn2d (shifted sums, separable rank-1, depthwise conv) against a
    direct numpy evaluation of the four official steps (zero-insert, pad, convolve, drop)."""
    rng = np.random.RandomState(sum(shape))
    f = rng.rand(*shape).astype(np.float32)
    if shape == (4, 4):
        f = np.outer(rng.rand(4), rng.rand(4)).astype(np.float32)  # rank 1: the separable path
    x = rng.randn(2, 24, 13, 3).astype(np.float32)
    up, pad = (2, 1), [1, 2, 3, 0]
    dx, dy = (down, down) if isinstance(down, int) else down
    # numpy reference
    z = np.zeros((2, 24 * 1, 13 * 2, 3), np.float32)
    z[:, ::1, ::2] = x
    z = np.pad(z, [(0, 0), (pad[2], pad[3]), (pad[0], pad[1]), (0, 0)])
    kf = f[::-1, ::-1]
    fh, fw = f.shape
    out = np.zeros((2, z.shape[1] - fh + 1, z.shape[2] - fw + 1, 3), np.float64)
    for i in range(fh):
        for j in range(fw):
            out += kf[i, j] * z[:, i:i + out.shape[1], j:j + out.shape[2]]
    want = out[:, ::dy, ::dx]
    got = gnn.upfirdn2d(jnp.asarray(x), f, up=up, down=down, padding=pad)
    assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("taps,up,down,pad,flip", [
    ([1, 3, 3, 1], 2, 1, [2, 1, 2, 1], False),     # G's upsampling filter (setup_filter: 2-D, rank 1)
    ([1, 3, 3, 1], 1, 2, [1, 1, 1, 1], False),     # D's downsampling filter
    ([1, 3, 3, 1], 1, 1, [-1, 2, 0, 1], True),     # crop on one side, correlation
    (list(range(1, 13)), 2, 1, [6, 5, 6, 5], False),  # a 12-tap separable filter (the ADA pipe's sym6 size)
    (list(range(1, 13)), 1, 2, [4, 3, 5, -1], True),
])
def test_upfirdn2d_gradients_are_the_transposed_matrices(taps, up, down, pad, flip):
    """upfirdn2d is ``My x Mx^T`` per channel; its gradient (a hand-written rule, gan_jax.nn.upfirdn2d
    ._fir_bwd) must be ``My^T ct Mx``, and the gradient of that gradient with respect to the cotangent
    (R1's second derivative) the forward map again. The matrices are built column by column in numpy
    from the four official steps (upfirdn1d_matrix), independently of the JAX shifted sums."""
    upf = importlib.import_module("gan_jax.nn.upfirdn2d")
    f = upf.setup_filter(taps)
    taps_1d = np.asarray(taps, np.float64) / np.sum(taps)
    gain = 3.0
    rng = np.random.RandomState(len(taps) + up + 3 * down)
    x = rng.randn(2, 11, 9, 3).astype(np.float32)
    mx = upf.upfirdn1d_matrix(9, taps_1d, up, down, pad[:2], flip, np.sqrt(gain)).astype(np.float64)
    my = upf.upfirdn1d_matrix(11, taps_1d, up, down, pad[2:], flip, np.sqrt(gain)).astype(np.float64)

    def fn(x):
        return upf.upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=gain)

    out, vjp = jax.vjp(fn, jnp.asarray(x))
    assert_close(out, np.einsum("yi,nijc,xj->nyxc", my, x, mx), rtol=1e-5, what="forward")
    ct = rng.randn(*out.shape).astype(np.float32)
    assert_close(vjp(jnp.asarray(ct))[0], np.einsum("yi,nyxc,xj->nijc", my, ct, mx), rtol=1e-5, what="gradient")
    w = rng.randn(*x.shape).astype(np.float32)
    second = jax.grad(lambda c: jnp.sum(jnp.asarray(w) * vjp(c)[0]))(jnp.asarray(ct))
    assert_close(second, np.einsum("yi,nijc,xj->nyxc", my, w, mx), rtol=1e-5, what="gradient of the gradient")
