"""StyleGAN (1) G and D against NVIDIA's official TF code (../shared/fixtures/stylegan1).

Networks are built by ``convert.stylegan_from_tf`` from the official kwargs (nets.json) and the
official variables (G_vars.npz, D_vars.npz); every output runs under ``jax.jit``. Tolerances:
images 1e-4, dlatents and scores 1e-5 (the official networks are float32; the images reach ~27).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_json, load_npz, nchw, nhwc

from gan_jax import convert
from gan_jax.models import stylegan
from gan_jax.recipes import stylegan as recipe
from tolerance import assert_close

FAMILY = "stylegan1"
# Absolute tolerances at the outputs' scale (tests/tolerance.py): images and intermediates reach
# max|x| ~ 27 here (1e-4 = 4e-6 of that, ~30 float32 ulps), dlatents / scores / losses ~ 1-6
# (1e-5 = 2e-6 to 1e-5 of that); every element is held to it, cancelling ones included.
IMG_ATOL = 1e-4
ATOL = 1e-5
LODS = ("0", "0.5", "1", "1.5", "2.5", "3")


@pytest.fixture(scope="module")
def nets():
    return load_json(FAMILY, "nets.json")


@pytest.fixture(scope="module")
def networks(nets):
    return convert.stylegan_from_tf(nets["G_kwargs"], load_npz(FAMILY, "G_vars.npz"),
                                    nets["D_kwargs"], load_npz(FAMILY, "D_vars.npz"))


@pytest.fixture(scope="module")
def g_out(networks):
    """Every G output the fixtures hold, from one compiled function."""
    G, G_vars, _, _ = networks
    m, s, mix = load_npz(FAMILY, "mapping.npz"), load_npz(FAMILY, "synthesis.npz"), load_npz(FAMILY, "style_mixing.npz")
    G_fused = G.clone(fused_scale=True)

    @jax.jit
    def run(v, z, w, w1, w2):
        synth = functools.partial(G.apply, v, noise_mode="const", method="synthesis")
        out = {
            "dlatents": G.apply(v, z, None, truncation_psi=None, method="mapping"),
            "dlatents_default": G.apply(v, z, None, method="mapping"),
            "dlatents_trunc_psi0.5_cut4": G.apply(v, z, None, truncation_psi=0.5, truncation_cutoff=4, method="mapping"),
            "G_style_lod0_trunc_none": G.apply(v, z, None, truncation_psi=None, noise_mode="const", lod=0.0),
            "G_style_lod0_trunc_default": G.apply(v, z, None, noise_mode="const"),
            "G_style_lod0_trunc_psi0.7_cut8": G.apply(v, z, None, truncation_psi=0.7, truncation_cutoff=8, noise_mode="const"),
            "G_style_lod0_trunc_psi0.5_cut4": G.apply(v, z, None, truncation_psi=0.5, truncation_cutoff=4, noise_mode="const"),
            "fused": G_fused.apply(v, w, noise_mode="const", method="synthesis"),
            "mixed_k2": stylegan.mix_styles(w1, w2, 2),
            "mixed_k5": stylegan.mix_styles(w1, w2, 5),
        }
        for lod in LODS:
            out[f"images_lod{lod}"] = synth(w, lod=float(lod))
        for k in (2, 5):
            out[f"images_k{k}"] = synth(stylegan.mix_styles(w1, w2, k))
        out["lod1.5_max16"] = synth(w, lod=1.5, max_resolution=16)
        out["lod3_max4"] = synth(w, lod=3.0, max_resolution=4)
        _, inter = G.apply(v, w[:4], noise_mode="const", method="synthesis", mutable=["intermediates"])
        out["inter"] = inter["intermediates"]
        _, mapped = G.apply(v, z, None, truncation_psi=None, method="mapping", capture_intermediates=True,
                            mutable=["intermediates"])
        out["mapping_inter"] = mapped["intermediates"]
        return out

    w1 = G.apply(G_vars, mix["z1"], None, truncation_psi=None, method="mapping")
    w2 = G.apply(G_vars, mix["z2"], None, truncation_psi=None, method="mapping")
    return run(G_vars, m["z"], s["dlatents"], w1, w2), dict(m=m, s=s, mix=mix, w1=w1, w2=w2)


def test_mapping_and_truncation(g_out):
    out, ref = g_out
    m = ref["m"]
    assert_close(out["dlatents"], m["dlatents"], atol=ATOL)
    # G_style's defaults (psi 0.7, cutoff 8): an evaluation call without arguments is truncated.
    assert_close(out["dlatents_default"], m["dlatents_trunc_psi0.7_cut8"], atol=ATOL)
    assert_close(out["dlatents_trunc_psi0.5_cut4"], m["dlatents_trunc_psi0.5_cut4"], atol=ATOL)
    inter = out["mapping_inter"]["G_mapping"]
    assert_close(inter["after_pixelnorm"][0], m["inter/after_pixelnorm"], atol=ATOL)
    for i in (0, 1):
        assert_close(inter[f"Dense{i}"]["__call__"][0], m[f"inter/Dense{i}/after_lrelu"], atol=ATOL)


def test_synthesis_every_lod(g_out):
    out, ref = g_out
    for lod in LODS:
        assert_close(nchw(out[f"images_lod{lod}"]), ref["s"][f"images_lod{lod}"], atol=IMG_ATOL, what=lod)


def test_max_resolution_skips_exactly_the_faded_out_levels(g_out):
    out, ref = g_out
    assert_close(nchw(out["lod1.5_max16"]), ref["s"]["images_lod1.5"], atol=IMG_ATOL)
    assert_close(nchw(out["lod3_max4"]), ref["s"]["images_lod3"], atol=IMG_ATOL)


def test_fused_up_conv(g_out):
    out, ref = g_out
    assert_close(nchw(out["fused"]), ref["s"]["images_lod0_fused_scale_True"], atol=IMG_ATOL)


def test_g_style_images(g_out):
    """G_style end to end: no truncation, the default (psi 0.7, cutoff 8), psi 0.5 / cutoff 4."""
    out, _ = g_out
    ref = load_npz(FAMILY, "images_gstyle.npz")
    for key in ("G_style_lod0_trunc_none", "G_style_lod0_trunc_psi0.7_cut8", "G_style_lod0_trunc_psi0.5_cut4"):
        assert_close(nchw(out[key]), ref[key], atol=IMG_ATOL, what=key)
    assert_close(nchw(out["G_style_lod0_trunc_default"]), ref["G_style_lod0_trunc_psi0.7_cut8"], atol=IMG_ATOL)


def test_style_mixing_both_crossovers(g_out):
    out, ref = g_out
    mix = ref["mix"]
    assert_close(ref["w1"], mix["dlatents1"], atol=ATOL)
    assert_close(ref["w2"], mix["dlatents2"], atol=ATOL)
    for k in (2, 5):
        assert_close(out[f"mixed_k{k}"], mix[f"mixed_dlatents_k{k}"], atol=ATOL)
        assert_close(nchw(out[f"images_k{k}"]), mix[f"images_k{k}"], atol=IMG_ATOL, what=str(k))


def test_synthesis_intermediates(g_out):
    out, _ = g_out
    ref = load_npz(FAMILY, "synthesis_intermediates.npz")
    inter = out["inter"]["G_synthesis"]
    checked = 0
    for key, want in ref.items():
        if key.startswith("ToRGB"):
            got = inter[key]["out"][0]
        else:
            block, layer, what = key.split("/")
            node = inter[block][layer]
            got = node["StyleMod"]["style"][0] if what == "style" else node[what][0]
        got = np.asarray(got)
        assert_close(nchw(got) if got.ndim == 4 else got, want, atol=IMG_ATOL, what=key)
        checked += 1
    assert checked == len(ref) == 38  # every stored intermediate


@pytest.fixture(scope="module")
def d_out(networks):
    _, _, D, D_vars = networks
    d, s = load_npz(FAMILY, "discriminator.npz"), load_npz(FAMILY, "synthesis.npz")
    D_fused = D.clone(fused_scale=True)

    @jax.jit
    def run(v, reals, fakes):
        out = {"scores_reals_lod0_fused_scale_True": D_fused.apply(v, reals, None)}
        for lod in ("0", "1.5", "3"):
            out[f"scores_reals_lod{lod}"] = D.apply(v, reals, None, lod=float(lod))
            out[f"scores_fakes_lod{lod}"] = D.apply(v, fakes[lod], None, lod=float(lod))
        out["reals_lod1.5_max16"] = D.apply(v, reals, None, lod=1.5, max_resolution=16)
        return out

    fakes = {lod: nhwc(s[f"images_lod{lod}"]) for lod in ("0", "1.5", "3")}
    return run(D_vars, nhwc(d["reals"]), fakes), d


def test_d_scores_every_lod(d_out):
    out, ref = d_out
    for key in ref:
        if key.startswith("scores"):
            assert_close(out[key], ref[key], atol=ATOL, what=key)
    assert_close(out["reals_lod1.5_max16"], ref["scores_reals_lod1.5"], atol=ATOL)


# -- losses: training/loss.py with the recorded random draws -----------------------------------------


def _inputs(ref: dict, who: str) -> dict:
    prefix = f"random/{who}_loss/"
    noise = [nhwc(ref[k]) for k in sorted((k for k in ref if k.startswith(prefix + "G/G_synthesis/")),
                                          key=lambda k: _layer_index(k))]
    cutoff = int(ref["style_mixing_cutoff"])
    u = float(ref[prefix + "G/StyleMix/uniform"])
    assert (u < 0.9) == (cutoff < 8), (u, cutoff)  # mixing happened iff u < style_mixing_prob
    return {"z": ref[prefix + "normal"], "labels": None, "mix_z": ref[prefix + "G/StyleMix/normal"],
            "mix_cutoff": cutoff, "noise": noise}


def _layer_index(key: str) -> int:
    block, layer = key.split("/")[-4:-2]
    res_log2 = int(np.log2(int(block.split("x")[0])))
    return 2 * res_log2 - 4 + (layer in ("Conv", "Conv1"))


def _tf_grads(grads: dict) -> dict:
    return convert.stylegan_tf_from_variables({"params": grads})


@pytest.fixture(scope="module")
def losses(networks):
    G, G_vars, D, D_vars = networks
    ref_g, ref_d = load_npz(FAMILY, "loss_G.npz"), load_npz(FAMILY, "loss_D.npz")
    reals = jnp.asarray(nhwc(load_npz(FAMILY, "discriminator.npz")["reals"]))

    @jax.jit
    def run(g_params, g_buffers, d_params, in_g, in_d, reals):
        (lg, (buf_g, loss_g, _)), grads_g = jax.value_and_grad(
            lambda p: recipe.g_loss(G, D, p, g_buffers, d_params, in_g, 0.0), has_aux=True)(g_params)
        (ld, (buf_d, aux_d)), grads_d = jax.value_and_grad(
            lambda p: recipe.d_loss(G, D, g_params, g_buffers, p, reals, None, in_d, 0.0, 10.0), has_aux=True)(d_params)
        return dict(lg=lg, loss_g=loss_g, grads_g=grads_g, avg_g=buf_g["dlatent_avg"],
                    ld=ld, aux_d=aux_d, grads_d=grads_d, avg_d=buf_d["dlatent_avg"])

    out = run(G_vars["params"], G_vars["buffers"], D_vars["params"], _inputs(ref_g, "G"), _inputs(ref_d, "D"), reals)
    return out, ref_g, ref_d


def test_g_loss_and_grads(losses):
    out, ref, _ = losses
    assert_close(out["loss_g"], ref["loss"], atol=ATOL)
    assert_close(out["lg"], ref["loss_mean"], atol=ATOL)
    assert_close(out["avg_g"], ref["dlatent_avg_after"], atol=ATOL)
    grads = _tf_grads(out["grads_g"])
    want = {k[len("grad/"):]: v for k, v in ref.items() if k.startswith("grad/")}
    assert set(grads) == set(want)
    for name, g in want.items():
        scale = max(1.0, float(np.abs(g).max()))
        assert_close(grads[name], g, atol=1e-4 * scale, what=name)


def test_d_loss_r1_and_grads(losses):
    out, _, ref = losses
    aux = out["aux_d"]
    assert_close(aux["real_scores"], ref["real_scores"], atol=ATOL)
    assert_close(aux["fake_scores"], ref["fake_scores"], atol=ATOL)
    assert_close(aux["r1_penalty"], ref["r1_penalty"], rtol=1e-5, atol=ATOL)
    assert_close(out["ld"], ref["loss_mean"], atol=ATOL)
    # The official loss is [N, 1] + [N] -> [N, N]; per-sample loss_i + r1_j * gamma / 2.
    per_sample = np.asarray(aux["loss"]) - np.asarray(aux["r1_penalty"]) * 5.0
    assert_close(per_sample[:, None] + np.asarray(aux["r1_penalty"])[None, :] * 5.0, ref["loss"], atol=ATOL)
    assert_close(out["avg_d"], ref["dlatent_avg_after"], atol=ATOL)
    grads = _tf_grads(out["grads_d"])
    want = {k[len("grad/"):]: v for k, v in ref.items() if k.startswith("grad/")}
    assert set(grads) == set(want)
    for name, g in want.items():
        scale = max(1.0, float(np.abs(g).max()))
        assert_close(grads[name], g, atol=1e-4 * scale, what=name)


# -- conversion errors ---------------------------------------------------------------------------


def test_mismatched_variables_are_listed(nets):
    G_vars = load_npz(FAMILY, "G_vars.npz")
    bad = dict(G_vars)
    del bad["G_mapping/Dense0/weight"]
    bad["G_synthesis/4x4/Conv/weight"] = np.zeros((3, 3, 32, 31), np.float32)
    bad["G_synthesis/extra"] = np.zeros((2,), np.float32)
    with pytest.raises(convert.StateDictMismatch) as err:
        convert.stylegan_from_tf(nets["G_kwargs"], bad)
    msg = str(err.value)
    assert "missing    G_mapping/Dense0/weight: expected shape [32, 32]" in msg
    assert "wrong shape G_synthesis/4x4/Conv/weight: expected [3, 3, 32, 32], found [3, 3, 32, 31]" in msg
    assert "unexpected G_synthesis/extra" in msg and "3 problem(s)" in msg
    with pytest.raises(ValueError, match="unknown G_style keyword"):
        convert.stylegan_from_tf({**nets["G_kwargs"], "mapping_layer": 3}, G_vars)


def test_defaults_of_the_build_functions():
    """Kwargs a pickle does not store take the official build-function defaults."""
    G = convert.stylegan_generator_from_kwargs({"num_channels": 3, "resolution": 1024, "label_size": 0})
    assert (G.truncation_psi, G.truncation_cutoff, G.latent_size, G.dlatent_size, G.mapping_layers) == (0.7, 8, 512, 512, 8)
    assert (G.fmap_base, G.fmap_max, G.mapping_lrmul, G.num_layers) == (8192, 512, 0.01, 18)
    shapes = convert.stylegan_tf_shapes(G)
    assert shapes["G_synthesis/4x4/Const/const"] == (1, 512, 4, 4)
    assert shapes["G_synthesis/1024x1024/Conv0_up/weight"] == (3, 3, 32, 16)
    assert shapes["G_synthesis/noise17"] == (1, 1, 1024, 1024)
    syn = stylegan.Synthesis(resolution=1024)
    assert [syn.fused_at(r) for r in (3, 6, 7, 10)] == [False, False, True, True]  # 'auto': output res >= 128
    D = convert.stylegan_discriminator_from_kwargs({"num_channels": 3, "resolution": 1024, "label_size": 0})
    assert [D.fused_at(r) for r in (6, 7)] == [False, True]
    assert convert.stylegan_tf_shapes(D)["4x4/Conv/weight"] == (3, 3, 513, 512)
