"""ProGAN's published pickles (format C of PICKLE_FORMATS.md: a ``(G, D, Gs)`` tuple of
``tfutil.Network`` states) read without TensorFlow and without running their source; converted by
``python -m gan_jax.convert`` into a run that reproduces the official images. Format B (StyleGAN 1,
nested components) loads into the same records; formats refused for conversion say what to do."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest
from conftest import REPO, load_json, load_npz, nchw

from gan_jax import convert, sample
from gan_jax.nvidia_pickle import NvidiaPickleError, TFNetwork, load_nvidia_pickle
from tolerance import assert_close

w = pytest.importorskip("nvidia_pickle_writer")
FAMILY = "progan"
GS_LOD = 1.25  # the lod stored in Gs's variables: the converted run samples at it


def _vars(f, prefix):
    return {k[len(prefix):]: v for k, v in f.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def fused():
    spec = load_json(FAMILY, "nets.json")["pairs"]["fused"]
    f = load_npz(FAMILY, "progan_fused.npz")
    g_vars, d_vars = _vars(f, "G/param/"), _vars(f, "D/param/")
    g_vars["lod"], d_vars["lod"] = np.float32(0.0), np.float32(0.0)
    return spec, f, g_vars, d_vars


def _tf_tuple(spec, g_vars, d_vars, gs_lod=GS_LOD):
    G = w.tf_network("G", "G_paper", spec["G"]["static_kwargs"], g_vars)
    D = w.tf_network("D", "D_paper", spec["D"]["static_kwargs"], d_vars)
    Gs = w.tf_network("Gs", "G_paper", spec["G"]["static_kwargs"], {**g_vars, "lod": np.float32(gs_lod)})
    return (G, D, Gs)


def test_format_c_loads_as_records(fused):
    spec, _, g_vars, d_vars = fused
    for core in ("numpy.core", "numpy._core"):
        nets = load_nvidia_pickle(w.dumps(_tf_tuple(spec, g_vars, d_vars), protocol=4, numpy_core=core))
        assert sorted(nets) == ["D", "G", "G_ema"]
        gs = nets["G_ema"]
        assert isinstance(gs, TFNetwork) and (gs.name, gs.build_func_name, gs.kind, gs.format) == ("Gs", "G_paper", "progan", "C")
        assert gs.static_kwargs == spec["G"]["static_kwargs"] and nets["D"].build_func_name == "D_paper"
        assert list(gs.variables) == list(g_vars)  # the Network.vars order
        assert gs.variables["lod"].shape == () and float(gs.variables["lod"]) == GS_LOD
        for name, value in g_vars.items():
            if name == "lod":
                continue
            assert gs.variables[name].dtype == np.float32 and np.array_equal(gs.variables[name], value), name
        with pytest.raises(ValueError, match="read-only"):
            gs.variables["4x4/Dense/weight"][0, 0] = 1.0


def test_writer_equals_pythons_own_pickling_of_a_stand_in(fused):
    """PICKLE_FORMATS.md 7: a stand-in class ``tfutil.Network`` whose ``__getstate__`` returns the state,
    pickled by pickle itself (throw-away module in sys.modules) -- the same records as the writer's."""
    spec, _, g_vars, _ = fused
    module = types.ModuleType("tfutil")

    class Network:
        def __init__(self, state):
            self._state = state

        def __getstate__(self):
            return self._state

    Network.__module__, Network.__qualname__ = "tfutil", "Network"
    module.Network = Network
    state = lambda name, kw, v: {"version": 2, "name": name, "static_kwargs": kw, "build_module_src": "x = 1\n",
                                 "build_func_name": "G_paper", "variables": list(v.items())}
    saved = sys.modules.get("tfutil")
    sys.modules["tfutil"] = module
    try:
        blob = pickle.dumps(tuple(Network(state(n, spec["G"]["static_kwargs"], g_vars)) for n in ("G", "D", "Gs")),
                            protocol=4)
    finally:
        if saved is None:
            del sys.modules["tfutil"]
        else:
            sys.modules["tfutil"] = saved
    ours = load_nvidia_pickle(blob)
    mine = load_nvidia_pickle(w.dumps(tuple(w.tf_network(n, "G_paper", spec["G"]["static_kwargs"], g_vars, module_src="x = 1\n")
                                            for n in ("G", "D", "Gs"))))
    for key in ours:
        a, b = ours[key], mine[key]
        assert (a.name, a.format, a.static_kwargs, list(a.variables)) == (b.name, b.format, b.static_kwargs, list(b.variables))
        assert all(np.array_equal(a.variables[k], b.variables[k]) for k in a.variables)


@pytest.fixture(scope="module")
def converted(fused, tmp_path_factory):
    spec, _, g_vars, d_vars = fused
    root = tmp_path_factory.mktemp("progan_pickle")
    pkl = root / "karras2018iclr-test.pkl"
    pkl.write_bytes(w.dumps(_tf_tuple(spec, g_vars, d_vars), protocol=4, numpy_core="numpy.core"))
    out = subprocess.run([sys.executable, "-m", "gan_jax.convert", f"--source={pkl}", f"--dest={root / 'run'}"],
                         cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return root / "run"


def test_converted_pickle_samples_the_official_images(converted, fused):
    _, f, _, _ = fused
    sampler = sample.Sampler(str(converted))
    assert sampler.config.recipe == "progan" and sampler.num_ws is None
    assert_close(float(sampler.state.extra["lod"]), GS_LOD, rtol=1e-7)
    latents = load_npz(FAMILY, "progan_common.npz")["latents"]
    assert_close(nchw(sampler.images(latents)), f[f"G/images/lod{GS_LOD:g}"], atol=1e-4)
    seeds = sample.generate(str(converted), [1, 2], sampler=sampler)
    np.testing.assert_array_equal(seeds, sample.to_uint8(sampler.images(sample.seed_latents([1, 2], 24))))


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


def test_a_pickle_that_runs_code_is_refused(fused, tmp_path):
    spec, _, g_vars, d_vars = fused
    marker = tmp_path / "PWNED"
    G = w.tf_network("G", "G_paper", spec["G"]["static_kwargs"], {"lod": 0.0})
    G.state["variables"].append(("4x4/Dense/weight", Evil(str(marker))))  # code inside a network's state
    for blob in (w.dumps((G, G, G)), pickle.dumps((Evil(str(marker)),), protocol=4)):
        with pytest.raises(NvidiaPickleError, match=r"refused global (posix|nt)\.system .*nothing was executed"):
            load_nvidia_pickle(blob)
    assert not marker.exists()
    # The embedded source is data: a file whose build_module_src would do harm loads and is dropped.
    harmless = _tf_tuple(spec, g_vars, d_vars)
    harmless[0].state["build_module_src"] = f"import os\nos.system('echo pwned > {marker}')\n"
    nets = load_nvidia_pickle(w.dumps(harmless))
    assert not marker.exists() and not hasattr(nets["G"], "build_module_src")
    bad = w.tf_network("G", "G_paper", {}, {"lod": 0.0}, version=3)  # tfutil.Network asserts version 2
    with pytest.raises(NvidiaPickleError, match="state version 3; this loader reads versions \\[2\\]"):
        load_nvidia_pickle(w.dumps((bad, bad, bad)))


def test_progan_from_tf_lists_every_mismatch(fused):
    spec, _, g_vars, _ = fused
    broken = dict(g_vars)
    del broken["ToRGB_lod1/bias"]
    broken["8x8/Conv1/weight"] = np.zeros((3, 3, 16, 8), np.float32)
    broken["16x16/Extra/weight"] = np.zeros(2, np.float32)
    with pytest.raises(convert.StateDictMismatch) as err:
        convert.progan_from_tf(spec["G"]["static_kwargs"], broken)
    msg = str(err.value)
    assert "3 problem(s)" in msg
    assert "missing    ToRGB_lod1/bias: expected shape [3]" in msg
    assert "wrong shape 8x8/Conv1/weight: expected [3, 3, 16, 16], found [3, 3, 16, 8]" in msg
    assert "unexpected 16x16/Extra/weight: shape [2]" in msg
    with pytest.raises(ValueError, match=r"unknown G_paper keyword\(s\) \['fmap_bse'\]"):
        convert.progan_from_tf({**spec["G"]["static_kwargs"], "fmap_bse": 8}, g_vars)
    G, _, D, _ = convert.progan_from_tf({"resolution": 64, "fmap_base": 128, "fmap_max": 32, "label_size": 2,
                                         "num_channels": 1, "latent_size": 20}, _random_vars(64))
    assert (G.z_dim, G.c_dim, D) == (20, 2, None)


def _random_vars(resolution):
    """Variables for a held-out G (64x64, 1 channel, labels): built from the shapes gan_jax expects."""
    G = convert.progan_generator_from_kwargs({"resolution": resolution, "fmap_base": 128, "fmap_max": 32,
                                              "label_size": 2, "num_channels": 1, "latent_size": 20})
    rs = np.random.RandomState(0)
    return {k: rs.randn(*s).astype(np.float32) for k, s in convert.progan_tf_shapes(G).items()}


def test_format_b_nested_components_are_flattened():
    """StyleGAN (1) G_style: own variables, then each component's as '<component name>/<name>'."""
    synthesis = w.tf_network("G_synthesis", "G_synthesis", {"resolution": 8},
                             {"lod": 0.0, "4x4/Const/const": np.ones((1, 4, 4, 4)), "noise0": np.zeros((1, 1, 4, 4))},
                             version=3, components={}, module="dnnlib.tflib.network")
    mapping = w.tf_network("G_mapping", "G_mapping", {"dlatent_broadcast": 4}, {"Dense0/weight": np.eye(4)},
                           version=3, components={}, module="dnnlib.tflib.network")
    Gs = w.tf_network("Gs", "G_style", {"resolution": 8, "num_channels": 3}, {"lod": 0.0, "dlatent_avg": np.zeros(4)},
                      version=3, components={"synthesis": synthesis, "mapping": mapping}, module="dnnlib.tflib.network")
    D = w.tf_network("D", "D_basic", {"resolution": 8}, {"4x4/Dense1/bias": np.zeros(1)}, version=3, components={},
                     module="dnnlib.tflib.network")
    nets = load_nvidia_pickle(w.dumps((Gs, D, Gs), numpy_core="numpy.core"))
    gs = nets["G_ema"]
    assert (gs.kind, gs.format, gs.version, gs.build_func_name) == ("stylegan", "B", 3, "G_style")
    assert list(gs.variables) == ["lod", "dlatent_avg", "G_synthesis/lod", "G_synthesis/4x4/Const/const",
                                  "G_synthesis/noise0", "G_mapping/Dense0/weight"]
    assert sorted(gs.components) == ["mapping", "synthesis"] and gs.components["mapping"].static_kwargs == {"dlatent_broadcast": 4}
    np.testing.assert_array_equal(gs.variables["G_mapping/Dense0/weight"], np.eye(4))


def test_conversion_of_other_tf_formats_says_what_to_do(tmp_path):
    net = w.tf_network("Gs", "G_main", {"resolution": 8}, {"lod": 0.0}, version=4, components={},
                       module="dnnlib.tflib.network")
    pkl = tmp_path / "stylegan2-tf.pkl"
    pkl.write_bytes(w.dumps((net, net, net)))
    assert load_nvidia_pickle(str(pkl))["G_ema"].kind == "stylegan2-tf"
    with pytest.raises(ValueError, match="TensorFlow stylegan2-tf pickle.*legacy.py"):
        convert.convert_nvidia_pickle(str(pkl), str(tmp_path / "out"))
