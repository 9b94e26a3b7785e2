"""What a user of the StyleGAN2 networks sees: conditional nets, bf16 compute, noise modes, bad input."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_json, load_npz
from gan_jax import convert
from tolerance import assert_close

FAMILY = "stylegan2_ada"

# A small conditional pair, in NVIDIA's kwargs; sizes differ from the fixture nets on purpose.
COND_G = {"z_dim": 16, "c_dim": 3, "w_dim": 24, "img_resolution": 16, "img_channels": 1,
          "mapping_kwargs": {"num_layers": 2}, "synthesis_kwargs": {"channel_base": 128, "channel_max": 16,
                                                                   "architecture": "skip", "conv_clamp": 256}}
COND_D = {"c_dim": 3, "img_resolution": 16, "img_channels": 1, "architecture": "resnet", "channel_base": 128,
          "channel_max": 16, "conv_clamp": 256, "mapping_kwargs": {"num_layers": 2},
          "epilogue_kwargs": {"mbstd_group_size": 2}}


def _random_upstream_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.RandomState(seed)
    state = {k: np.asarray(rng.randn(*s), np.float32) for k, s in shapes.items()}
    for k in state:
        if k.startswith("mapping.fc") and k.endswith(".weight"):
            state[k] /= 0.01  # the official init stores randn / lr_multiplier
        if k.endswith("resample_filter"):
            state[k] = np.outer([1, 3, 3, 1], [1, 3, 3, 1]).astype(np.float32) / 64
    return state


@pytest.fixture(scope="module")
def conditional():
    G = convert.generator_from_kwargs(COND_G)
    D = convert.discriminator_from_kwargs(COND_D)
    g_state = _random_upstream_state(convert.upstream_state_shapes(G), 0)
    d_state = _random_upstream_state(convert.upstream_state_shapes(D), 1)
    # The label paths, in upstream layout [out, in], computed by hand from the kwargs:
    # G embed c_dim -> w_dim; G fc0 takes z and the embedding; D embed c_dim -> cmap_dim = channels[4] = 16.
    assert g_state["mapping.embed.weight"].shape == (24, 3)
    assert g_state["mapping.fc0.weight"].shape == (24, 16 + 24)
    assert d_state["mapping.embed.weight"].shape == (16, 3)
    assert d_state["b4.out.weight"].shape == (16, 16)
    return convert.stylegan2_from_torch(COND_G, g_state, COND_D, d_state)


def test_conditional_nets_shapes_and_label_dependence(conditional):
    G, G_vars, D, D_vars = conditional
    z = jax.random.normal(jax.random.key(0), (4, 16))
    c0 = jax.nn.one_hot(jnp.array([0, 1, 2, 0]), 3)
    c1 = jax.nn.one_hot(jnp.array([1, 2, 0, 2]), 3)
    ws = G.apply(G_vars, z, c0, method="mapping")
    assert ws.shape == (4, G.num_ws, 24) and G.num_ws == 6
    img0 = G.apply(G_vars, z, c0, noise_mode="const")
    img1 = G.apply(G_vars, z, c1, noise_mode="const")
    assert img0.shape == (4, 16, 16, 1)
    assert np.all(np.abs(img0 - img1).max(axis=(1, 2, 3)) > 1e-3)
    l0, l1 = D.apply(D_vars, img0, c0), D.apply(D_vars, img0, c1)
    assert l0.shape == (4, 1)
    assert np.all(np.abs(l0 - l1) > 1e-6)


def test_conditional_nets_need_labels(conditional):
    G, G_vars, D, D_vars = conditional
    with pytest.raises(ValueError, match=r"conditional \(c_dim=3\) and needs labels c of shape \[2, 3\]"):
        G.apply(G_vars, jnp.zeros((2, 16)), None)
    with pytest.raises(ValueError, match=r"D is conditional \(c_dim=3\) and needs labels c of shape \[2, 3\]"):
        D.apply(D_vars, jnp.zeros((2, 16, 16, 1)), None)
    with pytest.raises(ValueError, match=r"expects labels c of shape \[2, 3\], got \(2, 5\)"):
        D.apply(D_vars, jnp.zeros((2, 16, 16, 1)), jnp.zeros((2, 5)))


@pytest.fixture(scope="module")
def skip_nets():
    nets = load_json(FAMILY, "nets.json")["nets"]
    return convert.stylegan2_from_torch(nets["G_skip"]["init_kwargs"], load_npz(FAMILY, "G_skip_params.npz"),
                                        nets["D_skip"]["init_kwargs"], load_npz(FAMILY, "D_skip_params.npz"))


def test_unconditional_nets_refuse_labels(skip_nets):
    G, G_vars, D, D_vars = skip_nets
    with pytest.raises(ValueError, match=r"unconditional \(c_dim=0\) but got a label of shape \(2, 5\)"):
        G.apply(G_vars, jnp.zeros((2, 32)), jnp.ones((2, 5)))
    with pytest.raises(ValueError, match=r"D is unconditional"):
        D.apply(D_vars, jnp.zeros((2, 32, 32, 3)), jnp.ones((2, 5)))
    # NVIDIA passes an empty [N, 0] label to unconditional nets: accepted.
    assert D.apply(D_vars, jnp.zeros((2, 32, 32, 3)), jnp.zeros((2, 0))).shape == (2, 1)


@pytest.mark.parametrize("shape, expect", [
    ((2, 3, 32, 32), r"expects images of shape \[N, 32, 32, 3\] \(NHWC\), got \(2, 3, 32, 32\) \(it looks like NCHW"),
    ((2, 64, 64, 3), r"expects images of shape \[N, 32, 32, 3\] \(NHWC\), got \(2, 64, 64, 3\)"),
    ((2, 32, 32, 1), r"expects images of shape \[N, 32, 32, 3\] \(NHWC\), got \(2, 32, 32, 1\)"),
    ((32, 32, 3), r"expects images of shape \[N, 32, 32, 3\] \(NHWC\), got \(32, 32, 3\)"),
])
def test_d_bad_image_shapes(skip_nets, shape, expect):
    _, _, D, D_vars = skip_nets
    with pytest.raises(ValueError, match=expect):
        D.apply(D_vars, jnp.zeros(shape))


def test_g_bad_latent_shapes(skip_nets):
    G, G_vars, _, _ = skip_nets
    with pytest.raises(ValueError, match=r"mapping expects z of shape \[N, 32\], got \(2, 16\)"):
        G.apply(G_vars, jnp.zeros((2, 16)))
    with pytest.raises(ValueError, match=r"synthesis expects ws of shape \[N, 8, 32\], got \(2, 7, 32\)"):
        G.apply(G_vars, jnp.zeros((2, 7, 32)), method="synthesis")


def test_mbstd_batch_must_divide(skip_nets):
    _, _, D, D_vars = skip_nets
    with pytest.raises(ValueError, match="batch size 6 must be divisible by the group size 4"):
        D.apply(D_vars, jnp.zeros((6, 32, 32, 3)))


@pytest.mark.slow  # ~21 s of compiling on 2 cores; keeps the default run under 25 minutes
def test_bf16_compute_close_to_float32_and_params_stay_float32(skip_nets):
    """bf16 has an 8-bit mantissa (relative step 2**-8 = 0.4%); over 9 layers the image error stays
    within 2% of the image's RMS (relative RMS error) and 3% of its peak (max error)."""
    G, G_vars, _, _ = skip_nets
    G16 = G.clone(dtype=jnp.bfloat16)
    z = load_npz(FAMILY, "inputs.npz")["z"]
    ref = jax.jit(lambda v, z: G.apply(v, z, noise_mode="const"))(G_vars, z)
    img, inter = jax.jit(lambda v, z: G16.apply(v, z, noise_mode="const", capture_intermediates=True,
                                                 mutable=["intermediates"]))(G_vars, z)
    assert img.dtype == jnp.float32
    assert inter["intermediates"]["synthesis"]["b32"]["conv1"]["__call__"][0].dtype == jnp.bfloat16
    rms = float(np.sqrt(np.mean(np.square(ref))))
    err = np.asarray(img - ref)
    assert np.sqrt(np.mean(err**2)) < 0.02 * rms
    assert np.abs(err).max() < 0.03 * np.abs(ref).max()
    fresh = G16.init({"params": jax.random.key(0)}, z[:1], noise_mode="const")
    assert {x.dtype for x in jax.tree.leaves(fresh)} == {jnp.dtype(jnp.float32)}


def test_random_noise_mode(skip_nets):
    G, G_vars, _, _ = skip_nets
    z = jnp.asarray(load_npz(FAMILY, "inputs.npz")["z"][:2])
    with pytest.raises(ValueError, match="needs a 'noise' PRNG key"):
        G.apply(G_vars, z, noise_mode="random")
    a = G.apply(G_vars, z, noise_mode="random", rngs={"noise": jax.random.key(1)})
    b = G.apply(G_vars, z, noise_mode="random", rngs={"noise": jax.random.key(1)})
    c = G.apply(G_vars, z, noise_mode="random", rngs={"noise": jax.random.key(2)})
    none = G.apply(G_vars, z, noise_mode="none")
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3 and np.abs(a - none).max() > 1e-3
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        G.apply(G_vars, z, noise_mode="constant")


def test_w_avg_tracks_the_batch_mean(skip_nets):
    """Training mode: w_avg <- lerp(mean_batch(w), w_avg, beta), beta = 0.995 (official default)."""
    G, G_vars, _, _ = skip_nets
    z = jnp.asarray(load_npz(FAMILY, "inputs.npz")["z"])
    ws, state = G.apply(G_vars, z, method="mapping", update_w_avg=True, mutable=["buffers"])
    w_mean = np.asarray(ws[:, 0]).mean(axis=0)
    old = np.asarray(G_vars["buffers"]["mapping"]["w_avg"])
    assert_close(state["buffers"]["mapping"]["w_avg"], w_mean + 0.995 * (old - w_mean), atol=1e-5)


def test_core_imports_only_jax_flax_numpy():
    """The core (nn, models, layouts) and the readers and converter functions import nothing heavier."""
    code = ("import sys; import gan_jax.nn, gan_jax.models.from_kwargs, gan_jax.layouts.stylegan2, "
            "gan_jax.layouts.stylegan, gan_jax.layouts.progan, gan_jax.layouts.biggan, gan_jax.torch_file, "
            "gan_jax.nvidia_pickle, gan_jax.convert; "
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'clu', 'torch', 'optax', 'orbax', "
            "'tensorflow_datasets', 'ml_collections', 'PIL'}); "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
