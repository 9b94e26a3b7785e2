"""The Flax VGG16 against torchvision's, and Flax LPIPS against the ``lpips`` package, with weights
this test makes (random, seeded) saved by ``torch.save`` and read back without torch.

torchvision's registry wheel does not load beside the CPU build of torch 2.13 (its compiled ops
fail to register; see test_fid_inception.py): a bare ``torchvision`` package module whose
``__path__`` is the installed folder is registered first (its ``__init__`` never runs), which is
enough for ``torchvision.models.vgg`` and for ``lpips`` (it imports ``torchvision.models``).
The references run in float64: the tolerance is then float32's accuracy of our network alone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import types
import warnings

import numpy as np
import pytest
from tolerance import assert_close


def _import_torchvision_models():
    torch = pytest.importorskip("torch")
    if "torchvision" not in sys.modules:
        spec = importlib.util.find_spec("torchvision")
        if spec is None:
            pytest.skip("torchvision is not installed (pip install -e '.[test]')")
        bare = types.ModuleType("torchvision")
        bare.__path__ = list(spec.submodule_search_locations)
        bare.__spec__ = spec  # importlib.util.find_spec("torchvision") keeps working in later tests
        bare.__version__ = "0.28.0"
        sys.modules["torchvision"] = bare
    from torchvision.models import vgg as tv_vgg

    return torch, tv_vgg


def _nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))


def _nhwc(x) -> np.ndarray:
    return np.transpose(np.asarray(x), (0, 2, 3, 1))


# 64x96: the features are 2x3, so the 7x7 adaptive average pool has overlapping bins.
IMAGES = np.random.RandomState(1).uniform(-2, 2, size=(2, 64, 96, 3)).astype(np.float32)
TAP_INDEX = {"relu1_2": 4, "relu2_2": 9, "relu3_3": 16, "relu4_3": 23, "relu5_3": 30}  # features[:i]


@pytest.fixture(scope="module")
def vgg_reference(tmp_path_factory):
    """torchvision's vgg16(weights=None) (seeded; biases made random too, torchvision zeroes them),
    saved as the hub file name, and its float64 outputs on IMAGES: features, logits, ReLU taps."""
    torch, tv_vgg = _import_torchvision_models()
    torch.manual_seed(0)
    model = tv_vgg.vgg16(weights=None).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.05)
    path = tmp_path_factory.mktemp("vgg") / "vgg16-397923af.pth"
    torch.save(model.state_dict(), path)
    model = model.double()
    x = torch.from_numpy(_nchw(IMAGES)).double()
    want = {}
    with torch.no_grad():
        h = x
        for i, layer in enumerate(model.features):  # one pass, the ReLU taps on the way
            want.update({name: _nhwc(h) for name, at in TAP_INDEX.items() if at == i})
            h = layer(h)
        want["features"] = _nhwc(h)
        want["logits"] = model.classifier(torch.flatten(model.avgpool(h), 1)).numpy()
    del model
    yield path, want
    path.unlink()  # 528 MB; pytest keeps the last runs' temporary folders


@pytest.fixture(scope="module")
def vgg_outputs(vgg_reference):
    import jax

    from gan_jax.metrics import vgg16

    variables = vgg16.load_vgg16(str(vgg_reference[0]))
    features, logits = jax.jit(vgg16.VGG16().apply)(variables, IMAGES)
    taps = jax.jit(vgg16.relu_features)(variables, IMAGES)
    out = {"features": features, "logits": logits, **taps}
    return {k: np.asarray(v) for k, v in out.items()}


def test_features_and_logits_match_torchvision(vgg_reference, vgg_outputs):
    want = vgg_reference[1]
    assert vgg_outputs["features"].shape == (2, 2, 3, 512)
    assert vgg_outputs["logits"].shape == (2, 1000)
    assert 1e-3 < np.abs(want["logits"]).max() < 1e3  # neither vanishing nor exploding
    assert_close(vgg_outputs["features"], want["features"], rtol=1e-5, what="features")
    assert_close(vgg_outputs["logits"], want["logits"], rtol=1e-5, what="logits")


def test_relu_features_match_torchvision_slices(vgg_reference, vgg_outputs):
    from gan_jax.metrics import vgg16

    want = vgg_reference[1]
    for layer, size in zip(vgg16.LPIPS_LAYERS, (64, 32, 16, 8, 4)):
        assert vgg_outputs[layer].shape == (2, size, size * 3 // 2, want[layer].shape[-1]), layer
        assert_close(vgg_outputs[layer], want[layer], rtol=1e-5, what=layer)


def test_adaptive_average_pool_matches_torch():
    torch = pytest.importorskip("torch")
    from gan_jax.metrics import vgg16

    for size in ((3, 5), (7, 7), (14, 10), (1, 9)):
        xs = np.random.RandomState(3).randn(1, size[0], size[1], 2).astype(np.float32)
        want = _nhwc(torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(_nchw(xs)), 7))
        assert_close(vgg16.adaptive_avg_pool(xs), want, rtol=1e-6, what=str(size))
    for n in (1, 2, 7, 10, 13):
        np.testing.assert_allclose(vgg16.adaptive_pool_matrix(n).sum(axis=1), 1.0, rtol=1e-6)


@pytest.fixture(scope="module")
def lpips_reference(tmp_path_factory):
    """lpips.LPIPS(net='vgg', pnet_rand=True, version='0.1'): a random (seeded) trunk, the shipped
    v0.1 linear layers. The trunk is saved in torchvision's names (``net.slice{k}.{i}.*`` ->
    ``features.{i}.*``)."""
    torch, _ = _import_torchvision_models()
    lpips = pytest.importorskip("lpips")
    torch.manual_seed(0)
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated pretrained=False
        warnings.simplefilter("ignore", UserWarning)
        ref = lpips.LPIPS(net="vgg", pnet_rand=True, version="0.1", verbose=False).eval()
    trunk = {"features." + k.split(".", 2)[2]: v for k, v in ref.state_dict().items() if k.startswith("net.")}
    assert len(trunk) == 26
    path = tmp_path_factory.mktemp("lpips") / "vgg16-397923af.pth"
    torch.save(trunk, path)
    lin_file = os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "vgg.pth")
    return ref.double(), path, lin_file


def test_lpips_matches_package(lpips_reference):
    import jax

    torch = pytest.importorskip("torch")
    from gan_jax.metrics import lpips as glp

    ref, trunk_path, lin_file = lpips_reference
    rs = np.random.RandomState(4)
    x0 = rs.uniform(-1, 1, (3, 32, 48, 3)).astype(np.float32)
    x1 = np.clip(x0 + 0.3 * rs.randn(*x0.shape), -1, 1).astype(np.float32)
    with torch.no_grad():
        want, layers = ref(torch.from_numpy(_nchw(x0)).double(), torch.from_numpy(_nchw(x1)).double(), retPerLayer=True)
    variables = glp.load_lpips(str(trunk_path), lin_file)
    fn = jax.jit(lambda v, a, b: glp.LPIPS().apply(v, a, b, per_layer=True))
    got, terms = fn(variables, x0, x1)
    assert got.shape == (3,)
    assert 1e-3 < float(np.max(want.numpy())) < 10
    assert_close(got, want.numpy().reshape(3), rtol=1e-5, what="LPIPS")
    for k, (term, layer) in enumerate(zip(terms, layers)):
        assert_close(term, layer.numpy().reshape(3), rtol=1e-5, what=f"layer {k}")
    same, _ = fn(variables, x0, x0)
    # Zero up to the batch's float32 rounding (x0 rides in both halves of one trunk batch).
    assert_close(same, np.zeros(3), atol=1e-6 * float(np.max(want.numpy())), what="LPIPS(x, x)")
    assert_close(glp.lpips_distance(variables, x1, x0), want.numpy().reshape(3), rtol=1e-5, what="symmetric")


def test_lin_weights_found_in_installed_package(monkeypatch):
    pytest.importorskip("lpips")
    from gan_jax.metrics import lpips as glp

    monkeypatch.delenv("GAN_JAX_LPIPS", raising=False)
    found = glp.find_lin_weights()
    assert found is not None and found.endswith(os.path.join("lpips", "weights", "v0.1", "vgg.pth")), found
    lins = glp.read_lin_file(found)
    assert [lins[f"lin{k}"]["weight"].shape for k in range(5)] == [(64,), (128,), (256,), (512,), (512,)]
    assert all(np.all(lins[f"lin{k}"]["weight"] >= 0) for k in range(5))  # LPIPS clamps them non-negative


def test_missing_weights_say_what_and_where(tmp_path, monkeypatch):
    from gan_jax.metrics import lpips as glp
    from gan_jax.metrics import vgg16

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("GAN_JAX_VGG16", raising=False)
    monkeypatch.delenv("GAN_JAX_LPIPS", raising=False)
    with pytest.raises(vgg16.VGG16WeightsMissing) as err:
        vgg16.load_vgg16()
    text = str(err.value)
    assert "vgg16-397923af.pth" in text and "https://download.pytorch.org/models/vgg16-397923af.pth" in text
    assert os.path.join(str(tmp_path), "torch", "hub", "checkpoints", "vgg16-397923af.pth") in text
    assert os.path.join(str(tmp_path), "cache", "gan_jax", "vgg16-397923af.pth") in text
    assert "GAN_JAX_VGG16" in text
    with pytest.raises(vgg16.VGG16WeightsMissing, match="absent.pth do not exist.*vgg16-397923af.pth"):
        vgg16.load_vgg16(str(tmp_path / "absent.pth"))

    monkeypatch.setattr(glp, "_package_file", lambda: None)  # as without the lpips package
    with pytest.raises(glp.LPIPSWeightsMissing) as err:
        glp.load_lpips()
    text = str(err.value)
    assert "vgg.pth" in text and "pip install lpips==0.1.4" in text and "GAN_JAX_LPIPS" in text
    assert os.path.join(str(tmp_path), "cache", "gan_jax", "lpips", "v0.1", "vgg.pth") in text
    with pytest.raises(glp.LPIPSWeightsMissing, match="nolin.pth do not exist"):
        glp.load_lpips(lin_path=str(tmp_path / "nolin.pth"))


def test_wrong_files_say_what_is_wrong(tmp_path):
    torch = pytest.importorskip("torch")
    from gan_jax.metrics import lpips as glp
    from gan_jax.metrics import vgg16

    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 5, 5), "features.2.bias": torch.zeros(64),
                "extra.weight": torch.zeros(2)}, bad)
    with pytest.raises(vgg16.VGG16WeightsMismatch) as err:
        vgg16.read_weights_file(str(bad), classifier=False)
    text = str(err.value)
    assert text.startswith(str(bad)) and "features.0.weight: expected (64, 3, 3, 3), found (64, 3, 5, 5)" in text
    assert "unexpected extra.weight" in text and "problem(s)" in text
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(vgg16.VGG16WeightsError, match="junk.pth"):
        vgg16.read_weights_file(str(junk))
    lin = tmp_path / "lin.pth"
    torch.save({f"lin{k}.model.1.weight": torch.zeros(1, c, 1, 1) for k, c in enumerate((64, 128, 256, 512))}, lin)
    with pytest.raises(glp.LPIPSWeightsError, match="missing lin4"):
        glp.read_lin_file(str(lin))


def test_download_keeps_only_a_file_with_the_named_hash(tmp_path):
    from gan_jax.metrics import vgg16

    src = tmp_path / "src" / "vgg16-397923af.pth"
    src.parent.mkdir()
    src.write_bytes(b"pretend weights")
    url = src.as_uri()
    with pytest.raises(vgg16.VGG16WeightsMismatch, match="sha256"):
        vgg16.download(url, str(tmp_path / "dest"))
    assert os.listdir(tmp_path / "dest") == []
    prefix = hashlib.sha256(b"pretend weights").hexdigest()[:8]
    got = vgg16.download(url, str(tmp_path / "dest"), sha256_prefix=prefix)
    assert got == str(tmp_path / "dest" / "vgg16-397923af.pth")
    assert (tmp_path / "dest" / "vgg16-397923af.pth").read_bytes() == b"pretend weights"


def test_nvidia_torchscript_vgg16_is_refused_naming_the_file_that_works(tmp_path):
    """NVIDIA's metrics vgg16.pt is a TorchScript archive (torch.jit.save): refused, with torchvision's
    file and where to put it (issue 20: one error saying which files work)."""
    import zipfile

    from gan_jax.metrics import vgg16

    path = tmp_path / "vgg16.pt"
    with zipfile.ZipFile(path, "w") as z:  # the layout torch.jit.save writes
        z.writestr("vgg16/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("vgg16/constants.pkl", b"\x80\x02).")
        z.writestr("vgg16/code/__torch__/vgg16.py", "class VGG16Module: ...")
        z.writestr("vgg16/version", "3")
    with pytest.raises(vgg16.VGG16WeightsError,
                       match=r"TorchScript.*vgg16.pt is not read.*vgg16-397923af.pth.*hub/checkpoints.*--vgg16"):
        vgg16.load_vgg16(str(path))


def test_bad_inputs_say_what_is_wrong():
    import jax
    import jax.numpy as jnp

    from gan_jax.metrics import lpips as glp
    from gan_jax.metrics import vgg16

    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        vgg16.VGG16Features().init(jax.random.PRNGKey(0), jnp.zeros((1, 3, 32, 32)))
    with pytest.raises(ValueError, match="one shape"):
        glp.LPIPS().init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 16, 16, 3)))
