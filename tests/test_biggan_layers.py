"""BigGAN's layers on their own: BatchNorm over the global batch of 8 devices, spectral norm's
train / eval semantics against a numpy power iteration, constructor-derived shapes, clear errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import convert, parallel
from gan_jax.models import biggan
from gan_jax.nn import BatchNorm, ConditionalBatchNorm, SNLinear
from tolerance import assert_close


def test_batchnorm_statistics_over_the_global_batch_of_8_devices():
    """Train-mode BN under jit with the batch sharded over 8 devices = one device on the whole batch =
    the closed form (biased variance to normalise, unbiased running variance, momentum 0.1)."""
    assert jax.device_count() == 8, "conftest sets --xla_force_host_platform_device_count=8"
    rng = np.random.RandomState(0)
    x = (rng.randn(16, 4, 4, 6) * 3 + rng.randn(6)).astype(np.float32)  # each device holds 2 rows
    c = rng.randn(16, 5).astype(np.float32)
    module = ConditionalBatchNorm(6, 5, eps=1e-5, sn_eps=1e-6)
    variables = module.init({"params": jax.random.PRNGKey(0)}, x[:1], c[:1])
    results = []
    for mesh in (parallel.make_mesh(), parallel.make_mesh(jax.devices()[:1])):
        f = jax.jit(lambda v, x, c: module.apply(v, x, c, train=True, mutable=["sn", "batch_stats"]),
                    in_shardings=(parallel.replicated(mesh), parallel.data_sharded(mesh), parallel.data_sharded(mesh)))
        xs, cs = (jax.device_put(a, parallel.data_sharded(mesh)) for a in (x, c))
        assert len(xs.sharding.device_set) == mesh.devices.size
        out, new = f(variables, xs, cs)
        results.append(jax.device_get((out, new)))
    (out8, new8), (out1, new1) = results
    assert_close(out8, out1, atol=1e-5)
    for a, b in zip(jax.tree.leaves(new8), jax.tree.leaves(new1)):
        assert_close(a, b, atol=1e-6)
    mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
    n = 16 * 4 * 4
    assert_close(new8["batch_stats"]["stored_mean"], 0.1 * mean, atol=1e-5)
    assert_close(new8["batch_stats"]["stored_var"], 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
    # and the plain output BN normalises with the biased variance of the whole batch
    bn = BatchNorm(6)
    bv = bn.init({"params": jax.random.PRNGKey(0)}, x[:1])
    mesh = parallel.make_mesh()
    out = jax.jit(lambda v, x: bn.apply(v, x, train=True), in_shardings=(parallel.replicated(mesh), parallel.data_sharded(mesh)))(bv, x)
    assert_close(out, (x - mean) / np.sqrt(var + 1e-5), atol=1e-4)


def test_spectral_norm_train_writes_one_step_eval_repeats_it():
    rng = np.random.RandomState(1)
    w = rng.randn(5, 7).astype(np.float32)
    u0 = rng.randn(1, 5).astype(np.float32)
    layer = SNLinear(5, use_bias=False, eps=1e-6)
    variables = {"params": {"weight": w}, "sn": {"u0": u0, "sv0": np.ones(1, np.float32)}}
    x = rng.randn(3, 7).astype(np.float32)
    v = u0 @ w
    v /= np.linalg.norm(v)
    u = v @ w.T
    u /= np.linalg.norm(u)
    sigma = float((v @ w.T @ u.T)[0, 0])
    # 1e-5 of max|out|: an element that cancels (0.0028 from terms ~1) moves by ~4e-8 with the
    # summation order (another CPU's kernels); relative to itself that is 1.4e-5 (tests/tolerance.py).
    assert_close(layer.apply(variables, x), x @ (w / sigma).T, rtol=1e-5)
    _, unchanged = layer.apply(variables, x, mutable=["sn"])  # eval: nothing written
    np.testing.assert_array_equal(unchanged["sn"]["u0"], u0)
    out, new = layer.apply(variables, x, train=True, mutable=["sn"])
    assert_close(out, x @ (w / sigma).T, rtol=1e-5)
    assert_close(new["sn"]["u0"], u, rtol=1e-5)
    assert_close(new["sn"]["sv0"], [sigma], rtol=1e-5)
    # d sigma / dW = u^T v with u, v held constant: the gradient of sum(x W^T / sigma)
    g = jax.grad(lambda p: jnp.sum(layer.apply({**variables, "params": p}, x)))(variables["params"])["weight"]
    s = np.ones((3, 5), np.float32).T @ x  # d sum / d(W / sigma)
    want = s / sigma - np.sum(s * w) / sigma**2 * (u.T @ v)
    assert_close(g, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("deep", [False, True])
def test_sizes_come_from_the_constructor(deep):
    """A held-out shape: 64x64, G_ch 8, 7 classes, shared_dim 12 - every size follows the arch table."""
    if deep:
        G = biggan.DeepGenerator(G_ch=8, dim_z=20, resolution=64, G_attn="32", n_classes=7, shared_dim=12, hier=True)
        D = biggan.DeepDiscriminator(D_ch=8, resolution=64, D_attn="32", n_classes=7)
    else:
        G = biggan.Generator(G_ch=8, dim_z=20, resolution=64, G_attn="32", n_classes=7, shared_dim=12, hier=True)
        D = biggan.Discriminator(D_ch=8, resolution=64, D_attn="32", n_classes=7)
    g, d = convert.biggan_state_shapes(G), convert.biggan_state_shapes(D)
    assert g["shared.weight"] == (7, 12) and d["embed.weight"] == (7, 16 * 8)
    if deep:
        assert g["linear.weight"] == (16 * 8 * 16, 20 + 12) and g["blocks.0.0.bn1.gain.weight"] == (16 * 8, 12 + 20)
        assert "blocks.5.1.gamma" in g and "blocks.0.2.gamma" in d and d["input_conv.weight"] == (8, 3, 3, 3)
        assert d["blocks.0.0.conv_sc.weight"] == (8, 8, 1, 1)  # concat skip: in 8 -> out 16
    else:
        assert G.z_dim == 20 and g["linear.weight"] == (16 * 8 * 16, 4)  # 5 slots of 4
        assert g["blocks.0.0.bn1.gain.weight"] == (16 * 8, 12 + 4) and "blocks.2.1.gamma" in g
        assert "blocks.0.1.gamma" in d and g["output_layer.2.weight"] == (3, 16, 3, 3)
    img = jax.eval_shape(lambda: G.init_with_output({"params": jax.random.key(0)}, jnp.zeros((2, G.z_dim)), jnp.zeros((2,), jnp.int32))[0])
    assert img.shape == (2, 64, 64, 3)


def test_state_dict_mismatch_lists_each_problem():
    G = biggan.Generator(G_ch=4, dim_z=32, resolution=32, G_attn="0", n_classes=10, shared_dim=16, hier=True, SN_eps=1e-6)
    kwargs = {"G_ch": 4, "dim_z": 32, "resolution": 32, "G_attn": "0", "n_classes": 10, "shared_dim": 16, "hier": True}
    state = {k: np.zeros(s, np.float32) for k, s in convert.biggan_state_shapes(G).items()}
    state["linear.weight"] = np.zeros((3, 3), np.float32)
    del state["blocks.0.0.conv1.u0"]
    state["blocks.9.0.conv1.weight"] = np.zeros((1,), np.float32)
    with pytest.raises(convert.StateDictMismatch) as err:
        convert.biggan_from_torch(kwargs, state)
    text = str(err.value)
    assert "3 problem(s)" in text and "missing    blocks.0.0.conv1.u0: expected shape [1, 16]" in text
    assert "wrong shape linear.weight: expected [256, 8], found [3, 3]" in text and "unexpected blocks.9.0.conv1.weight" in text
    with pytest.raises(ValueError, match=r"unknown Generator keyword\(s\) \['G_chh'\]"):
        convert.biggan_from_torch({**kwargs, "G_chh": 4}, state)


def test_bad_inputs_say_what_was_expected():
    G = biggan.Generator(G_ch=4, dim_z=32, resolution=32, G_attn="0", n_classes=10, shared_dim=16, hier=True)
    y = jnp.zeros((2,), jnp.int32)
    with pytest.raises(ValueError, match=r"expects z of shape \[N, 32\], got \(2, 31\)"):
        G.init({"params": jax.random.key(0)}, jnp.zeros((2, 31)), y)
    with pytest.raises(ValueError, match=r"integer class labels y of shape \[2\].*argmax"):
        G.init({"params": jax.random.key(0)}, jnp.zeros((2, 32)), jnp.zeros((2, 10)))
    D = biggan.Discriminator(D_ch=4, resolution=32, D_attn="0", n_classes=10)
    with pytest.raises(ValueError, match=r"images of shape \[N, 32, 32, 3\] \(NHWC\), got \(2, 3, 32, 32\)"):
        D.init({"params": jax.random.key(0)}, jnp.zeros((2, 3, 32, 32)), y)
    with pytest.raises(ValueError, match="resolution must be one of"):
        biggan.Generator(resolution=48).init({"params": jax.random.key(0)}, jnp.zeros((1, 128)), y[:1])
