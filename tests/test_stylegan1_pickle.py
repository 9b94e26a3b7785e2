"""StyleGAN (1) TF pickles (format B of ../shared/fixtures/PICKLE_FORMATS.md), read without TensorFlow.

The pickle is written by hand from the documented state layout (section 2: a ``(G, D, Gs)`` tuple of
``dnnlib.tflib.network.Network`` objects whose state holds ``version``, ``name``, ``static_kwargs``,
``components``, ``build_module_src``, ``build_func_name`` and the network's *own* ``variables``;
G_style's ``synthesis`` / ``mapping`` components hold theirs) with the fixture's variables; no NVIDIA
source is involved. It must load through ``gan_jax.convert.load_nvidia_pickle``, reproduce the
fixture's images and scores, convert into a run that ``gan_jax.sample`` uses, and a pickle that
would run code on load must be refused.
"""

from __future__ import annotations

import os
import pickle
import pickletools

import numpy as np
import nvidia_pickle_writer as npw
import pytest
from conftest import load_json, load_npz, nchw, nhwc

from gan_jax import convert
from tolerance import assert_close

FAMILY = "stylegan1"
G_STYLE_ARGS = ("truncation_psi", "truncation_cutoff", "truncation_psi_val", "truncation_cutoff_val",
                "dlatent_avg_beta", "style_mixing_prob")  # G_style's own keywords; the rest go to the components
SRC = "# stand-in for training/networks_stylegan.py: a loader must never run this\nraise SystemExit\n"


def _split(variables: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in variables.items() if k.startswith(prefix)}


def stylegan_pickle(nets: dict, G_vars: dict, D_vars: dict, protocol: int = 4) -> bytes:
    """``(G, D, Gs)`` as the official training loop's ``save_pkl`` writes it (PICKLE_FORMATS sec. 2)."""
    G_kwargs, D_kwargs = nets["G_kwargs"], nets["D_kwargs"]
    comp_kwargs = {k: v for k, v in G_kwargs.items() if k not in G_STYLE_ARGS}

    def g_style(name: str):
        synthesis = npw.tf_network("G_synthesis", "G_synthesis", comp_kwargs, _split(G_vars, "G_synthesis/"),
                                   version=3, components={}, module="dnnlib.tflib.network", module_src=SRC)
        mapping = npw.tf_network("G_mapping", "G_mapping", {**comp_kwargs, "dlatent_broadcast": nets["num_layers"]},
                                 _split(G_vars, "G_mapping/"), version=3, components={},
                                 module="dnnlib.tflib.network", module_src=SRC)
        own = {k: v for k, v in G_vars.items() if "/" not in k}  # lod, dlatent_avg
        return npw.tf_network(name, "G_style", G_kwargs, own, version=3,
                              components={"synthesis": synthesis, "mapping": mapping},
                              module="dnnlib.tflib.network", module_src=SRC)

    D = npw.tf_network("D", "D_basic", D_kwargs, D_vars, version=3, components={}, module="dnnlib.tflib.network",
                       module_src=SRC)
    return npw.dumps((g_style("G"), D, g_style("Gs")), protocol=protocol)


@pytest.fixture(scope="module")
def fixture_nets():
    return load_json(FAMILY, "nets.json"), load_npz(FAMILY, "G_vars.npz"), load_npz(FAMILY, "D_vars.npz")


@pytest.fixture(scope="module")
def pkl_path(fixture_nets, tmp_path_factory):
    path = tmp_path_factory.mktemp("pkl") / "karras2019stylegan-handmade-32x32.pkl"
    path.write_bytes(stylegan_pickle(*fixture_nets))
    return path


def test_layout_uses_only_the_documented_globals(pkl_path):
    data = pkl_path.read_bytes()
    assert data[:2] == b"\x80\x04"  # PROTO 4, as HIGHEST_PROTOCOL under Python 3.6
    pushed, memo, globals_ = [], {}, set()  # STACK_GLOBAL takes the two strings pushed before it
    for op, arg, _ in pickletools.genops(data):
        if op.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1]
        elif op.name in ("BINGET", "LONG_BINGET"):
            pushed.append(memo[arg])
        elif op.name == "STACK_GLOBAL":
            globals_.add((pushed[-2], pushed[-1]))
            pushed.append(None)
        elif op.name != "FRAME":
            pushed.append(arg if op.name in ("SHORT_BINUNICODE", "BINUNICODE") else None)
    assert globals_ == {("dnnlib.tflib.network", "Network"), ("numpy._core.multiarray", "_reconstruct"),
                        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy._core.multiarray", "scalar")}


def test_loads_without_tensorflow_and_names_as_the_fixture(pkl_path, fixture_nets):
    nets, G_vars, D_vars = fixture_nets
    loaded = convert.load_nvidia_pickle(str(pkl_path))
    assert set(loaded) >= {"G", "D", "G_ema"}
    gs, d = loaded["G_ema"], loaded["D"]
    assert (gs.name, gs.build_func_name, gs.kind, gs.format) == ("Gs", "G_style", "stylegan", "B")
    assert (d.name, d.build_func_name) == ("D", "D_basic")
    assert set(gs.variables) == set(G_vars) and set(d.variables) == set(D_vars)
    for name, value in G_vars.items():
        np.testing.assert_array_equal(gs.variables[name], value, err_msg=name)
    assert gs.static_kwargs == nets["G_kwargs"]
    # without TensorFlow: a fresh interpreter loads it and has imported no tensorflow (this process
    # may have, for other tests' TensorBoard logging)
    code = (f"import sys; from gan_jax import nvidia_pickle; nvidia_pickle.load_nvidia_pickle({str(pkl_path)!r}); "
            "print('tensorflow' in sys.modules)")
    out = __import__("subprocess").run([__import__("sys").executable, "-c", code], capture_output=True, text=True,
                                       timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-2000:]


def test_reproduces_the_fixture_images_and_scores(pkl_path):
    loaded = convert.load_nvidia_pickle(str(pkl_path))
    gs, d = loaded["G_ema"], loaded["D"]
    G, G_vars, D, D_vars = convert.stylegan_from_tf(gs.static_kwargs, gs.variables, d.static_kwargs, d.variables)
    z = load_npz(FAMILY, "mapping.npz")["z"]
    ref = load_npz(FAMILY, "images_gstyle.npz")
    img = G.apply(G_vars, z, None, noise_mode="const")  # G_style defaults: psi 0.7, cutoff 8
    assert_close(nchw(img), ref["G_style_lod0_trunc_psi0.7_cut8"], atol=1e-4)
    img = G.apply(G_vars, z, None, truncation_psi=0.5, truncation_cutoff=4, noise_mode="const")
    assert_close(nchw(img), ref["G_style_lod0_trunc_psi0.5_cut4"], atol=1e-4)
    disc = load_npz(FAMILY, "discriminator.npz")
    assert_close(D.apply(D_vars, nhwc(disc["reals"]), None, lod=1.5), disc["scores_reals_lod1.5"], atol=1e-5)


def test_code_executing_pickles_are_refused(fixture_nets, tmp_path):
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"echo pwned > {marker}",))

    nets = fixture_nets[0]
    evil_var = npw.tf_network("D", "D_basic", nets["D_kwargs"], {}, version=3, components={},
                              module="dnnlib.tflib.network")
    evil_var.state["variables"] = [("lod", Evil())]  # a variable whose value runs a shell command
    blobs = {"top": pickle.dumps({"G": Evil()}, protocol=4),
             "inside": npw.dumps((evil_var, evil_var, evil_var)),
             "eval": npw.dumps(npw.Call(npw.Global("builtins", "eval"), "1+1"))}
    for what, blob in blobs.items():
        path = tmp_path / f"{what}.pkl"
        path.write_bytes(blob)
        with pytest.raises(pickle.UnpicklingError, match=r"refused global (posix|nt)\.system|refused global builtins\.eval"):
            convert.load_nvidia_pickle(str(path))
    assert not marker.exists()


@pytest.mark.slow  # ~36 s of compiling on 2 cores; keeps the default run under 25 minutes
def test_convert_cli_and_sampling(pkl_path, tmp_path):
    from gan_jax import sample

    dest = tmp_path / "run"
    convert.main([f"--source={pkl_path}", f"--dest={dest}"])
    assert (dest / "config.py").exists() and (dest / "checkpoints").is_dir()
    s = sample.Sampler(str(dest))
    assert s.config.recipe == "stylegan" and (s.z_dim, s.c_dim, s.num_ws) == (32, 0, 8)
    # The fixture's latents through the sampler: G_ema (Gs), const noise, lod 0 (Gs's lod variable).
    z = load_npz(FAMILY, "mapping.npz")["z"]
    ref = load_npz(FAMILY, "images_gstyle.npz")
    assert_close(nchw(s.images(z, None, 0.7)), ref["G_style_lod0_trunc_psi0.7_cut8"], atol=1e-4)
    assert_close(nchw(s.images(z, None, 1.0)), ref["G_style_lod0_trunc_none"], atol=1e-4)
    # Seeds as NVIDIA's scripts (RandomState(seed).randn), truncation 0.7 with G_style's cutoff 8.
    images = sample.generate(str(dest), [0, 1], truncation_psi=0.7, sampler=s)
    G, G_vars, _, _ = convert.stylegan_from_tf(*_gs(pkl_path))
    want = sample.to_uint8(G.apply(G_vars, sample.seed_latents([0, 1], 32), None, noise_mode="const"))
    assert images.shape == (2, 32, 32, 3) and np.abs(images.astype(int) - want.astype(int)).max() <= 1
    grid = sample.style_mix(str(dest), [1, 2], [3], [0, 1, 2], truncation_psi=0.7, sampler=s)
    assert grid.shape == (3 * 32, 2 * 32, 3)
    # Row seed 1 with styles 0..2 of seed 3: the synthesis of the mixed, truncated dlatents.
    w = G.apply(G_vars, sample.seed_latents([1, 3], 32), None, method="mapping")
    mixed = np.array(w[0])
    mixed[:3] = w[1][:3]
    cell = sample.to_uint8(G.apply(G_vars, mixed[None], noise_mode="const", method="synthesis"))[0]
    assert np.abs(grid[32:64, 32:64].astype(int) - cell.astype(int)).max() <= 1


def _gs(pkl_path):
    gs = convert.load_nvidia_pickle(str(pkl_path))["G_ema"]
    return gs.static_kwargs, gs.variables
