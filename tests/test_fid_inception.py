"""The Flax FID Inception against pytorch-fid's own network, with weights this test makes.

pytorch-fid (PyPI, test extra) imports torchvision, whose registry wheel does not load beside the
CPU build of torch 2.13 (its compiled ops fail to register). pytorch-fid needs only torchvision's
pure-Python Inception classes, so a bare ``torchvision`` package module whose ``__path__`` is the
installed folder is registered first (its ``__init__`` never runs), and ``fid_inception_v3`` is
handed this test's weights instead of a download.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest
from tolerance import assert_close

torch = pytest.importorskip("torch")


def _import_pytorch_fid():
    if importlib.util.find_spec("pytorch_fid") is None or importlib.util.find_spec("torchvision") is None:
        pytest.skip("pytorch-fid is not installed (pip install -e '.[test]')")
    if "torchvision" not in sys.modules:
        bare = types.ModuleType("torchvision")
        bare.__path__ = list(importlib.util.find_spec("torchvision").submodule_search_locations)
        bare.__version__ = "0.28.0"
        sys.modules["torchvision"] = bare
    import pytorch_fid.inception as pfid

    return pfid


def _tf1_resize_loops(x: np.ndarray, size: int) -> np.ndarray:
    """TF1 legacy ResizeBilinear written out per output pixel (float64): source j * in / out."""
    n, h, w, c = x.shape
    out = np.zeros((n, size, size, c))
    for i in range(size):
        sy = i * h / size
        y0 = int(np.floor(sy)); y1 = min(y0 + 1, h - 1); fy = sy - y0
        for j in range(size):
            sx = j * w / size
            x0 = int(np.floor(sx)); x1 = min(x0 + 1, w - 1); fx = sx - x0
            top = x[:, y0, x0] * (1 - fx) + x[:, y0, x1] * fx
            bot = x[:, y1, x0] * (1 - fx) + x[:, y1, x1] * fx
            out[:, i, j] = top * (1 - fy) + bot * fy
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """pytorch-fid's InceptionV3 (pool features) with calibrated random weights, and the saved .pth."""
    pfid = _import_pytorch_fid()
    torch.manual_seed(0)
    holder = {}

    def fake_download(url, progress=True):
        holder["url"] = url
        return holder["state"]

    # The weights: random convs and BN affine parameters, BN statistics calibrated on a batch so
    # that activations stay O(1) through all 94 layers (random statistics would make them vanish).
    base = pfid._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    for m in base.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    pfid.load_state_dict_from_url = lambda url, progress=True: fake_download(url, progress)
    holder["state"] = {k: v for k, v in base.state_dict().items()}
    net = pfid.fid_inception_v3()  # FID blocks; our weights where the names agree
    state = net.state_dict()
    for name, v in state.items():
        if name.endswith("conv.weight") and "Mixed" in name:
            v.copy_(torch.randn_like(v) * np.sqrt(2.0 / np.prod(v.shape[1:])))
        elif name.endswith("bn.weight"):
            v.copy_(torch.rand_like(v) + 0.5)
        elif name.endswith("bn.bias"):
            v.copy_(torch.randn_like(v) * 0.2)
        elif name.startswith("fc."):
            v.copy_(torch.randn_like(v) * 0.05)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average: one batch sets the statistics
            m.reset_running_stats()
    net.train()
    calib = torch.from_numpy(np.random.RandomState(5).randint(0, 256, (8, 3, 48, 40)).astype(np.float32) / 255)
    with torch.no_grad():  # inputs like the test's: small random images, resized
        net(2 * torch.nn.functional.interpolate(calib, size=(299, 299), mode="bilinear", align_corners=False) - 1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # no near-zero variances that would amplify rounding
            m.running_var.clamp_(min=float(m.running_var.mean()))
    net.eval()
    holder["state"] = net.state_dict()
    # pytorch-fid's model, run in float64: torch's float32 CPU convolutions round 4x more than
    # XLA's here (1.8e-4 vs 4e-5 from the float64 result), so float64 is the sharper reference.
    model = pfid.InceptionV3([pfid.InceptionV3.DEFAULT_BLOCK_INDEX]).double().eval()
    path = tmp_path_factory.mktemp("weights") / pfid.FID_WEIGHTS_URL.rsplit("/", 1)[1]
    torch.save(holder["state"], path)  # as pytorch-fid's release file: the Inception3 state dict
    return pfid, model, path


@pytest.fixture(scope="module")
def images():
    rs = np.random.RandomState(1)
    return rs.randint(0, 256, size=(4, 48, 40, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def jax_features(reference):
    import jax

    from gan_jax.metrics import inception, weights

    variables = weights.load_inception(str(reference[2]), cache=False)
    net = inception.InceptionV3()
    return variables, jax.jit(lambda v, x, conv: net.apply(v, inception.preprocess(x, conv))[0], static_argnums=2)


def test_weights_loaded_without_torch_match_every_tensor(reference):
    from gan_jax import torch_file

    state = torch_file.load_state_dict(reference[2])
    theirs = torch.load(reference[2])
    assert list(state) == list(theirs)
    for k, v in theirs.items():
        np.testing.assert_array_equal(state[k], v.numpy())


def test_pool_features_match_pytorch_fid_convention(reference, images, jax_features):
    _, model, _ = reference
    with torch.no_grad():
        want = model(torch.from_numpy(images).permute(0, 3, 1, 2).double() / 255)[0][:, :, 0, 0].numpy()
    variables, fn = jax_features
    got = np.asarray(fn(variables, images, "pytorch_fid"))
    assert 0.3 < np.abs(want).max() < 30, np.abs(want).max()  # features of about a real Inception's size, not vanishing
    assert_close(got, want, atol=1e-4)


def test_pool_features_match_nvidia_convention(reference, images, jax_features):
    pfid = reference[0]
    raw = pfid.InceptionV3([3], resize_input=False, normalize_input=False).double().eval()
    x = (_tf1_resize_loops(images.astype(np.float64), 299) - 128) / 128
    with torch.no_grad():
        want = raw(torch.from_numpy(x).permute(0, 3, 1, 2))[0][:, :, 0, 0].numpy()
    variables, fn = jax_features
    got = np.asarray(fn(variables, images, "nvidia"))
    assert_close(got, want, atol=1e-4)


def test_tf1_resize_matches_loops(images):
    from gan_jax.metrics import inception

    x = images.astype(np.float32)
    got = np.asarray(inception.preprocess(images, "nvidia")) * 128 + 128
    assert_close(got, _tf1_resize_loops(x.astype(np.float64), 299), atol=2e-3)
    # downscaling too (source j * W / 299 skips pixels, no antialiasing)
    big = np.random.RandomState(2).randint(0, 256, size=(1, 320, 310, 3)).astype(np.uint8)
    got = np.asarray(inception.preprocess(big, "nvidia")) * 128 + 128
    assert_close(got, _tf1_resize_loops(big.astype(np.float64), 299), atol=2e-3)


def test_half_pixel_resize_matches_torch(images):
    from gan_jax.metrics import inception

    want = torch.nn.functional.interpolate(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255,
                                           size=(299, 299), mode="bilinear", align_corners=False)
    got = (np.asarray(inception.preprocess(images, "pytorch_fid")) + 1) / 2
    assert_close(got, want.permute(0, 2, 3, 1).numpy(), atol=1e-5)


def test_float_images_quantised_as_nvidia(images):
    from gan_jax.metrics import inception

    x = np.random.RandomState(3).uniform(-1.2, 1.2, size=(2, 8, 8, 3)).astype(np.float32)
    want = torch.from_numpy(x * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
    np.testing.assert_array_equal(np.asarray(inception.quantize(x)), want.astype(np.float32))


def test_bad_weights_and_inputs_say_what_is_wrong(reference, tmp_path):
    from gan_jax.metrics import inception, weights

    state = torch.load(reference[2])
    state.pop("Mixed_7c.branch_pool.bn.bias")
    state["Conv2d_1a_3x3.conv.weight"] = state["Conv2d_1a_3x3.conv.weight"][:16]
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(weights.InceptionWeightsMismatch, match=r"Mixed_7c\.branch_pool\.bn\.bias[\s\S]*Conv2d_1a_3x3"
                       r"|Conv2d_1a_3x3[\s\S]*Mixed_7c\.branch_pool\.bn\.bias"):
        weights.load_inception(str(bad), cache=False)
    with pytest.raises(weights.InceptionWeightsMissing, match="absent.pth do not exist"):
        weights.load_inception(str(tmp_path / "absent.pth"))
    with pytest.raises(ValueError, match=r"\[N, H, W, 1 or 3\]"):
        inception.preprocess(np.zeros((2, 3, 32, 32), np.uint8))
