"""StyleGAN2 G and D against NVIDIA's official code (fixtures/stylegan2_ada/*_outputs.npz).

Every network is built from the official constructor kwargs in nets.json and loaded from the
official state dict; every recorded output and per-block intermediate must agree to 1e-4.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from conftest import load_json, load_npz, nchw, nhwc, oihw_to_hwio
from gan_jax import convert
from gan_jax.models import stylegan2
from tolerance import assert_close

FAMILY = "stylegan2_ada"
# Absolute, at the outputs' scale (tests/tolerance.py): images, features, ws and logits reach max|x| ~ 1-14
# (1e-4 = 7e-6 to 1e-4 of that); every element is held to it, cancelling ones included.
ATOL = 1e-4
G_NETS = ["G_orig", "G_skip", "G_resnet", "G_cond"]
D_NETS = ["D_orig", "D_skip", "D_resnet", "D_cond"]


@pytest.fixture(scope="module")
def inputs():
    return load_npz(FAMILY, "inputs.npz")


@pytest.fixture(scope="module")
def nets():
    return load_json(FAMILY, "nets.json")["nets"]


def _lookup(tree, dotted: str):
    """Captured intermediate of the module at ``a.b.c`` (the output of its ``__call__``)."""
    node = tree
    for part in dotted.split("."):
        node = node[part]
    return node["__call__"][0]


@pytest.fixture(scope="module", params=G_NETS)
def g_run(request, nets, inputs):
    name = request.param
    G, G_vars, _, _ = convert.stylegan2_from_torch(nets[name]["init_kwargs"], load_npz(FAMILY, f"{name}_params.npz"))
    c = inputs["c"] if G.c_dim else None

    @jax.jit
    def run(variables, z, c):
        out = {
            "ws_psi1": G.apply(variables, z, c, method="mapping"),
            "ws_psi0.5": G.apply(variables, z, c, truncation_psi=0.5, method="mapping"),
            "ws_psi0.5_cutoff3": G.apply(variables, z, c, truncation_psi=0.5, truncation_cutoff=3, method="mapping"),
            "img_psi0.5": G.apply(variables, z, c, truncation_psi=0.5, noise_mode="const"),
            "img_noise_none": G.apply(variables, z, c, noise_mode="none"),
            "img_unfused": G.apply(variables, z, c, noise_mode="const", fused_modconv=False),
        }
        out["img"], state = G.apply(variables, z, c, noise_mode="const", capture_intermediates=True, mutable=["intermediates"])
        return out, state["intermediates"]

    out, inter = run(G_vars, inputs["z"], c)
    return name, G, load_npz(FAMILY, f"{name}_outputs.npz"), out, inter


def test_g_mapping_and_truncation(g_run):
    name, _, ref, out, _ = g_run
    for key in ("ws_psi1", "ws_psi0.5", "ws_psi0.5_cutoff3"):
        assert_close(out[key], ref[key], atol=ATOL, what=f"{name}:{key}")


def test_g_images(g_run):
    name, _, ref, out, _ = g_run
    keys = [k for k in ("img", "img_psi0.5", "img_noise_none") if k in ref]
    assert "img" in keys
    for key in keys:
        assert_close(nchw(out[key]), ref[key], atol=ATOL, what=f"{name}:{key}")


def test_g_per_sample_modconv_matches_grouped(g_run):
    """The whole G run with per-sample scaling equals the official (fused) image."""
    name, _, ref, out, _ = g_run
    assert_close(nchw(out["img_unfused"]), ref["img"], atol=ATOL, what=name)
    assert_close(out["img_unfused"], out["img"], atol=ATOL, what=name)


def test_g_every_intermediate(g_run):
    name, G, ref, _, inter = g_run
    checked = 0
    for key, want in ref.items():
        if not (key.startswith("synthesis.") or key.startswith("mapping.")):
            continue
        module, what = key.rsplit(".", 1)
        if what in ("out_x", "out_img"):
            got = _lookup(inter, module)[0 if what == "out_x" else 1]
        else:
            assert what == "out", key
            got = _lookup(inter, module)
        got = np.asarray(got)[: want.shape[0]]
        assert_close(nchw(got) if got.ndim == 4 else got, want, atol=ATOL, what=f"{name}:{key}")
        checked += 1
    # per block: out_x, affine outputs, ...; at least every block's x was checked
    assert checked >= len(stylegan2.SynthesisNetwork(G.w_dim, G.img_resolution, 3).block_resolutions) * 2, (name, checked)


@pytest.fixture(scope="module", params=D_NETS)
def d_run(request, nets, inputs):
    name = request.param
    D = convert.discriminator_from_kwargs(nets[name]["init_kwargs"])
    D_vars = convert.variables_from_state_dict(D, load_npz(FAMILY, f"{name}_params.npz"))
    ref = load_npz(FAMILY, f"{name}_outputs.npz")
    c = inputs["c"] if D.c_dim else None
    fake_from = "G_cond" if D.c_dim else "G_skip"
    fake = load_npz(FAMILY, f"{fake_from}_outputs.npz")["img"]

    @jax.jit
    def run(variables, real, fake, c):
        real_logits, state = D.apply(variables, real, c, capture_intermediates=True, mutable=["intermediates"])
        return real_logits, D.apply(variables, fake, c), state["intermediates"]

    real_logits, fake_logits, inter = run(D_vars, nhwc(inputs["real_images"]), nhwc(fake), c)
    return name, D, ref, real_logits, fake_logits, inter


def test_d_logits(d_run):
    name, _, ref, real_logits, fake_logits, _ = d_run
    assert real_logits.shape == (8, 1)
    assert_close(real_logits, ref["logits_real"], atol=ATOL, what=name)
    assert_close(real_logits, ref["b4.out"], atol=ATOL, what=name)
    assert_close(fake_logits, ref["logits_fake"], atol=ATOL, what=name)


def test_d_every_intermediate(d_run):
    name, D, ref, _, _, inter = d_run
    last = f"b{D.block_resolutions[-1]}"
    derived = {  # the epilogue's inputs are the last block's outputs and the label map
        "b4.in_x": lambda: _lookup(inter, last)[0],
        "b4.in_img": lambda: _lookup(inter, last)[1],
        "b4.in_cmap": lambda: _lookup(inter, "mapping"),
        "b4.mbstd.out": lambda: inter["b4"]["mbstd"][0],
        "mapping.out": lambda: _lookup(inter, "mapping"),
    }
    checked = 0
    for key, want in ref.items():
        if key in ("logits_real", "logits_fake", "b4.out"):
            continue
        if key in derived:
            got = derived[key]()
        else:
            module, what = key.rsplit(".", 1)
            got = _lookup(inter, module)
            if what in ("out_x", "out_img"):
                got = got[0 if what == "out_x" else 1]
        got = np.asarray(got)[: want.shape[0]]
        assert_close(nchw(got) if got.ndim == 4 else got, want, atol=ATOL, what=f"{name}:{key}")
        checked += 1
    assert checked >= 8, (name, checked)


def test_synthesis_layer_module():
    """Official SynthesisLayer(4->6, w_dim 8, res 16, up 2, conv_clamp 0.3): const noise fused and
    unfused, noise 'none' with gain sqrt(0.5); the clamp is active."""
    arrays = load_npz(FAMILY, "layers.npz")
    init = load_json(FAMILY, "layers.json")["modules"]["synthlayer_up2_clamp"]["init"]
    p = "mod.synthlayer_up2_clamp"
    layer = stylegan2.SynthesisLayer(init["out_channels"], w_dim=init["w_dim"], resolution=init["resolution"],
                                     up=init["up"], conv_clamp=init["conv_clamp"])
    variables = {
        "params": {"weight": oihw_to_hwio(arrays[f"{p}.weight"]), "bias": arrays[f"{p}.bias"],
                   "noise_strength": arrays[f"{p}.noise_strength"],
                   "affine": {"weight": arrays[f"{p}.affine.weight"].T, "bias": arrays[f"{p}.affine.bias"]}},
        "buffers": {"noise_const": arrays[f"{p}.noise_const"]},
    }
    x, w = nhwc(arrays[f"{p}.x"]), arrays[f"{p}.w"]
    cases = {"out_const_fused": dict(noise_mode="const", fused_modconv=True),
             "out_const_unfused": dict(noise_mode="const", fused_modconv=False),
             "out_none_gainsqrt0.5": dict(noise_mode="none", gain=np.sqrt(0.5))}
    for key, kw in cases.items():
        out = layer.apply(variables, x, w, **kw)
        assert_close(nchw(out), arrays[f"{p}.{key}"], atol=1e-5, what=key)
    assert np.abs(arrays[f"{p}.out_const_fused"]).max() == pytest.approx(0.3, abs=1e-6)  # clamp reached
