"""One metrics list for training (``config.fid.metric``) and ``gan_jax.evaluate`` (issue 20): NVIDIA's
``pr50k3_full`` / ``ppl_*`` names next to FID/KID/IS/SWD, with small counts for a CPU; a metric whose
weights file is missing is off with a message while the others go on; the reals honour ``data.xflip``
as NVIDIA's ``--mirror`` (``metric_main.py``: legacy names only); and the logged numbers equal the
metric functions run on images made by an independent path (the recipe's sampler under a plain
``jax.jit``) on one device, while the Evaluator runs over the 8 fake devices of conftest.py.

The VGG16 here is random and its classifier narrow (64 wide instead of 4096; ``pr_features`` reads
any width) and the VGG16 input 32x32 instead of 224, so the tests run in seconds; the weights files
themselves are tested in test_vgg16_lpips.py.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json

import jax
import numpy as np
import pytest
from conftest import tiny_config
from tolerance import assert_close, assert_scalar_close

from gan_jax import evaluate, parallel, train
from gan_jax.metrics import evaluation, ppl, precision_recall, vgg16
from gan_jax.run_config import open_dataset
from gan_jax.run_loader import load_run

NUM = 64  # the tiny dataset's size (configs/default.py:tiny)
PR_NUM = 16  # images per set for precision/recall (VGG16 is the slow part on a CPU)
PR_SIZE = 32  # the smallest VGG16 input with a 1x1 map after the fifth pool
METRICS = f"swd{NUM},pr{PR_NUM},ppl2_wend8"  # tiny G is 16x16: the PPL crop would leave VGG16 too little


def _narrow_vgg16(seed: int = 0, width: int = 64) -> dict:
    """Random VGG16 variables, the classifier ``width`` wide (shapes as torchvision's otherwise)."""
    rs = np.random.RandomState(seed)
    shapes = vgg16.abstract_variables(classifier=False)["params"]["features"]  # He-scaled, as a trained trunk's
    trunk = jax.tree_util.tree_map_with_path(
        lambda path, s: np.asarray(rs.randn(*s.shape) * (np.sqrt(2 / np.prod(s.shape[:3])) if len(s.shape) == 4
                                                          else 0.05), np.float32), shapes)
    dense = lambda i, o: {"weight": np.asarray(rs.randn(i, o) / np.sqrt(i), np.float32),  # noqa: E731
                          "bias": np.asarray(rs.randn(o) * 0.1, np.float32)}
    return {"params": {"features": trunk, "classifier": {"0": dense(512 * 49, width), "3": dense(width, width)}}}


def _lpips_variables(vgg: dict) -> dict:
    rs = np.random.RandomState(5)
    lins = {f"lin{k}": {"weight": np.asarray(rs.rand(c), np.float32)} for k, c in enumerate(vgg16.LPIPS_CHANNELS)}
    return {"params": {"net": vgg["params"]["features"], **lins}}


@pytest.fixture(scope="module")
def weights():
    vgg = _narrow_vgg16()
    return vgg, _lpips_variables(vgg)


@pytest.fixture(scope="module")
def stand_in_weights(weights):
    """load_vgg16 / load_lpips give the module's random variables; a path naming no file is missing."""
    from gan_jax.metrics import lpips

    vgg, lp = weights
    mp = pytest.MonkeyPatch()

    def load_vgg(path=None, classifier=True, download_missing=False):
        vgg16.find_weights(path)  # a given path that does not exist: VGG16WeightsMissing, as the real loader
        return vgg

    def load_lp(vgg_path=None, lin_path=None, download_missing=False):
        vgg16.find_weights(vgg_path)
        return lp

    mp.setattr(vgg16, "load_vgg16", load_vgg)
    mp.setattr(lpips, "load_lpips", load_lp)
    mp.setattr(vgg16, "PR_SIZE", PR_SIZE)
    yield vgg, lp
    mp.undo()


@pytest.fixture(scope="module")
def trained(stand_in_weights, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("metrics_run")
    cfg = tiny_config(total_kimg=6 * 8 / 1000)  # 6 steps of 8
    cfg.fid.metric, cfg.fid.every_kimg, cfg.fid.batch_size = METRICS, 3 * 8 / 1000, 8
    cfg.fid.best = f"swd{NUM}"
    cfg.checkpoint.keep = 1
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        train.train(cfg, str(workdir))
    return workdir, out.getvalue()


def _on_one_device(fn, *args):
    """``jax.jit(fn)(*args)`` with every input on the first device only (so the program runs there)."""
    args = jax.device_put(args, jax.devices()[0])
    return jax.tree.map(np.asarray, jax.jit(fn)(*args))


def _logged(console: str, key: str) -> list[float]:
    return [float(line.split()[1]) for line in console.splitlines() if line.startswith(f"{key} ")]


def test_names_of_metric_main_and_small_counts():
    spec = evaluation.parse_metric
    # metric_main.py: pr50k3_full = compute_pr(max_real=200000, num_gen=50000, nhood_size=3), no x-flips;
    # pr50k3 (legacy): max_real=50000 with the dataset's x-flips.
    assert (spec("pr50k3_full").num_gen, spec("pr50k3_full").max_real, spec("pr50k3_full").mirror) == (50000, 200000, False)
    assert (spec("pr50k3").max_real, spec("pr50k3").mirror, spec("pr1k5").nhood, spec("pr64").nhood) == (50000, True, 5, 3)
    assert (spec("fid50k_full").mirror, spec("fid50k").mirror, spec("kid50k_full").mirror, spec("swd1k").mirror) == \
        (False, True, False, False)
    for name in ppl.PPL_METRICS:  # every PPL metric of metric_main.py draws 50k samples
        assert (spec(name).kind, spec(name).ppl, spec(name).num_gen) == ("ppl", name, 50000)
        assert spec(f"{name}1k").num_gen == 1000 and spec(f"{name}500").ppl == name
    assert evaluation.metric_key("pr50k3_full", "nvidia") == "Metrics/pr50k3_full"
    assert evaluation.metric_key("fid50k_full", "nvidia") == "Metrics/fid50k_full/nvidia"
    assert evaluation.parse_metrics(" fid16, pr64 ,fid16,") == ["fid16", "pr64"]
    with pytest.raises(ValueError, match="unknown PPL metric 'ppl2_zfull'"):
        spec("ppl2_zfull")
    with pytest.raises(ValueError, match="unknown metric 'pr_x'; expected e.g. .*pr50k3_full"):
        evaluation.parse_metrics("fid16,pr_x")
    with pytest.raises(ValueError, match="no metric named"):
        evaluation.parse_metrics(" , ")


def test_best_metric_is_one_chosen_metric_where_lower_is_better():
    cfg = tiny_config()
    cfg.fid.every_kimg = 1.0
    cfg.fid.metric = "pr64,swd64,ppl_wend1k"
    assert evaluation.best_metric(cfg) is None  # the first is precision/recall: no ranking unless asked
    cfg.fid.best = "ppl_wend1k"
    assert evaluation.best_metric(cfg) == "ppl_wend1k"
    cfg.fid.best = "pr64"
    with pytest.raises(ValueError, match="lower is better"):
        evaluation.best_metric(cfg)
    cfg.fid.best = "fid16"
    with pytest.raises(ValueError, match="not one of fid.metric's metrics"):
        evaluation.best_metric(cfg)
    cfg.fid.metric, cfg.fid.best = "fid16", ""
    assert evaluation.best_metric(cfg) == "fid16"  # one name, as before


def test_missing_weights_turn_that_metric_off_and_the_others_go_on(stand_in_weights, tmp_path, monkeypatch):
    cfg = tiny_config()
    cfg.fid.every_kimg = 1.0
    cfg.fid.metric = "fid16,swd64,pr64,ppl2_wend16"
    cfg.fid.inception = str(tmp_path / "no_inception.pth")
    cfg.fid.vgg16 = str(tmp_path / "no_vgg16.pth")
    source = open_dataset(cfg)
    fid = evaluation.training_fid(cfg, parallel.make_mesh(), source, None, 16, recipe=None)
    assert fid.metrics == ("swd64",) and fid.evaluator is not None and fid.metric == "fid16" and fid.key == ""
    assert set(fid.off) == {"fid16", "pr64", "ppl2_wend16"}
    messages = fid.messages()
    assert any(m.startswith("FID is off (FID Inception weights ") and "no_inception.pth" in m for m in messages)
    assert any(m.startswith("pr64 is off (VGG16 weights ") and "no_vgg16.pth" in m and "vgg16-397923af.pth" in m
               and m.endswith("training goes on without it") for m in messages), messages
    assert any(m.startswith("ppl2_wend16 is off (PPL needs a StyleGAN2 generator") for m in messages), messages
    # The search order finds nothing: the message lists the paths looked at, as FID's does.
    monkeypatch.setattr(vgg16, "load_vgg16", lambda path=None, **kw: (_ for _ in ()).throw(
        vgg16.VGG16WeightsMissing(vgg16.missing_message(path))))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cfg.fid.vgg16, cfg.fid.metric = "", "pr64"
    fid = evaluation.training_fid(cfg, parallel.make_mesh(), source, None, 16)
    assert fid.evaluator is None and "no VGG16 weights found; looked at:" in fid.reason
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth") in fid.reason


def test_training_logs_every_metric_and_ranks_by_the_chosen_one(trained):
    from gan_jax import checkpoint

    workdir, console = trained
    swd, prec, rec = (_logged(console, k) for k in (f"Metrics/swd{NUM}", f"Metrics/pr{PR_NUM}/precision",
                                                    f"Metrics/pr{PR_NUM}/recall"))
    ppl_values = _logged(console, "Metrics/ppl2_wend8")
    assert len(swd) == len(prec) == len(rec) == len(ppl_values) == 2, console  # steps 3 and 6
    assert all(0 <= v <= 1 for v in prec + rec) and all(np.isfinite(ppl_values)) and min(ppl_values) > 0
    assert " is off " not in console
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if f"Metrics/pr{PR_NUM}/precision" in r]
    assert [r["step"] for r in logged] == [3, 6]
    assert all(f"Metrics/swd{NUM}" in r and "Metrics/ppl2_wend8" in r for r in logged)
    ckpt = checkpoint.Checkpointer(str(workdir / "checkpoints"), keep=1, async_save=False, best_metric=f"swd{NUM}")
    assert ckpt.best_step() == (3 if swd[0] < swd[1] else 6)
    ckpt.close()


def _independent_fakes_uint8(recipe, state, seed: int, num: int, batch: int) -> np.ndarray:
    """G_ema images by a plain jax.jit of the recipe's sampler, batch i from fold_in(PRNGKey(seed), i),
    converted as NVIDIA's compute_feature_stats_for_generator: (x * 127.5 + 128).clamp(0, 255).to(uint8)."""
    sample = jax.jit(recipe.sample)
    out = []
    for i in range(-(-num // batch)):
        z = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(seed), i), (batch, recipe.sampling().z_dim))
        x = np.asarray(sample(state, z, None), np.float32)
        out.append(np.clip(x * 127.5 + 128, 0, 255).astype(np.uint8))
    return np.concatenate(out)[:num]


def test_evaluate_equals_the_metric_functions_on_one_device(trained, stand_in_weights):
    """evaluate (8 fake devices) = precision_recall / compute_ppl on one device, and the JSON lines."""
    workdir, console = trained
    vgg, lp = stand_in_weights
    out = evaluate.evaluate(str(workdir), METRICS.split(","), batch_size=8)
    assert set(out[f"pr{PR_NUM}"]) == {f"pr{PR_NUM}_precision", f"pr{PR_NUM}_recall"}  # metric_main.py's result names
    record = json.loads((workdir / f"metric-pr{PR_NUM}.jsonl").read_text().splitlines()[-1])
    assert record["metric"] == f"pr{PR_NUM}" and record["results"] == out[f"pr{PR_NUM}"] and record["num_devices"] == 8
    assert out[f"pr{PR_NUM}"][f"pr{PR_NUM}_precision"] == pytest.approx(_logged(console, f"Metrics/pr{PR_NUM}/precision")[-1])
    assert out["ppl2_wend8"]["ppl2_wend8"] == pytest.approx(_logged(console, "Metrics/ppl2_wend8")[-1], rel=1e-5)

    config, recipe, state = load_run(str(workdir), None, None)
    one = jax.devices()[:1]
    features = lambda x: _on_one_device(lambda v, a: vgg16.pr_features(v, a, PR_SIZE), vgg, x)  # noqa: E731
    reals = open_dataset(config).images(np.arange(PR_NUM))
    fakes = _independent_fakes_uint8(recipe, state, int(config.seed), PR_NUM, 8)
    want = precision_recall.precision_recall(features(reals), features(fakes), devices=one)
    got = out[f"pr{PR_NUM}"]
    # Another compilation may round a pixel the other way, or move a float16 distance past a radius:
    # a covered flag of 16 may change.
    assert abs(got[f"pr{PR_NUM}_precision"] - want.precision) <= 1 / PR_NUM + 1e-9
    assert abs(got[f"pr{PR_NUM}_recall"] - want.recall) <= 1 / PR_NUM + 1e-9

    G = recipe.G
    G_vars = jax.device_get({"params": state.ema_params["G"], "buffers": state.extra["G_ema_buffers"]})
    value, dist = ppl.compute_ppl(G, G_vars, ppl.lpips_features, lp, space="w", sampling="end", crop=False,
                                  num_samples=8, batch_size=8, noise_group=2, seed=int(config.seed),
                                  return_distances=True, devices=one)
    # Per-sample distances are differences at epsilon 1e-4 amplified by 1/epsilon^2 (test_ppl.py: 2e-2 of
    # the scale between implementations); the same code on 1 and 8 devices differs by fusion rounding only.
    assert_scalar_close(out["ppl2_wend8"]["ppl2_wend8"], value, rtol=2e-2, scale=float(np.max(dist)),
                        what="ppl2_wend8, 8 devices vs 1")


def test_mirror_reals_as_nvidia_dataset(stand_in_weights):
    """data.xflip doubles the dataset as NVIDIA's ImageFolderDataset(xflip=True): all images, then all
    mirrored; legacy names take the first max_real items, _full names read no flips."""
    vgg, _ = stand_in_weights
    cfg = tiny_config()
    cfg.data.num_images = N = 12  # 24 items with the flips: 3 batches of 8
    source = open_dataset(cfg)
    reals = source.images(np.arange(N))
    mirrored = np.concatenate([reals, reals[:, :, ::-1]])
    ev = evaluation.Evaluator(parallel.make_mesh(), source, None, 16, 0, None, batch_size=8, xflip=True,
                              vgg16_variables=vgg, pr_size=PR_SIZE)
    assert ev.real_count(None, mirror=True) == (2 * N, True) and ev.real_count(None, mirror=False) == (N, False)
    assert ev.real_count(N, mirror=True) == (N, False) and ev.real_count(N + 5, mirror=True) == (N + 5, True)
    np.testing.assert_array_equal(ev.real_images(np.arange(2 * N)), mirrored)
    # The features of pr{2N} (legacy: flips) and pr{2N}_full (no flips) against an independent path.
    want = _on_one_device(lambda v, a: vgg16.pr_features(v, a, PR_SIZE), vgg, mirrored)
    got = ev.real_pr_features(evaluation.parse_metric(f"pr{2 * N}").max_real, mirror=True)
    assert got.shape == (2 * N, 64)
    # The reals' embeddings are kept in float16 (NVIDIA's compute_pr: .to(torch.float16)): 8 devices vs 1
    # within float16's rounding, half an ulp = 2^-11 of each value, plus float32 noise.
    half = want.astype(np.float16).astype(np.float32)
    assert_close(got, half, rtol=2 ** -11 + 1e-5, what="VGG16 features over 8 devices vs 1")
    full = evaluation.parse_metric(f"pr{2 * N}_full")
    assert_close(ev.real_pr_features(full.max_real, full.mirror), half[:N], rtol=2 ** -11 + 1e-5)
    # FID's real statistics read the same items (a recording stand-in for the Inception).
    seen = []

    class Recorder:
        def update(self, stats, images, capture, num_valid=None):
            seen.append(np.asarray(images)[:num_valid])
            stats.add_batch(num_valid, np.zeros(2), np.zeros((2, 2)))

    ev.extractor = Recorder()
    ev.cache_dir = "/nonexistent-never-written"
    ev._cache_path = lambda *a: "/nonexistent-never-written/x.npz"  # noqa: SLF001
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation.os, "makedirs", lambda *a, **k: None)
        mp.setattr(evaluation.os, "replace", lambda *a, **k: None)
        mp.setattr(evaluation.fid_lib.FeatureStats, "save", lambda self, path: None)
        ev.real_stats(evaluation.parse_metric(f"fid{2 * N}").max_real, mirror=True)
        np.testing.assert_array_equal(np.concatenate(seen), mirrored)
        seen.clear()
        ev.real_stats(None, mirror=False)  # fid50k_full: the dataset as it is
        np.testing.assert_array_equal(np.concatenate(seen), reals)


def test_vgg16_features_and_lpips_sharded_over_8_devices_equal_1(stand_in_weights):
    """relu taps, LPIPS features and precision/recall embeddings of a batch split over 8 devices
    (shard_map) equal one device's."""
    vgg, lp = stand_in_weights
    x = np.random.RandomState(3).rand(16, 24, 24, 3).astype(np.float32) * 255
    mesh = parallel.make_mesh()
    P = jax.sharding.PartitionSpec
    for fn, variables in ((lambda v, a: vgg16.relu_features(v, a / 127.5 - 1), vgg), (ppl.lpips_features, lp),
                          (lambda v, a: vgg16.pr_features(v, a, PR_SIZE), vgg)):
        single = _on_one_device(fn, variables, x)
        split = jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=(P(), P("data")), out_specs=P("data"),
                                      check_vma=False))
        sharded = jax.tree.map(np.asarray, split(variables, x))
        for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(single), strict=True):
            assert_close(a, b, rtol=1e-5, what="8 devices vs 1")


def test_swd_from_chunks_equals_swd_of_the_arrays():
    """The Evaluator's SWD reads reals and fakes one batch at a time (swd16k at 1024x1024 would hold 51 GB
    of images): the same draws and descriptors, so the same numbers as sliced_wasserstein on the arrays."""
    from gan_jax.metrics import swd

    rs = np.random.RandomState(4)
    reals = rs.randint(0, 256, (40, 32, 32, 3)).astype(np.uint8)
    fakes = np.clip(reals.astype(int) + rs.randint(-60, 60, reals.shape), 0, 255).astype(np.uint8)
    want = swd.sliced_wasserstein(reals, fakes, seed=3)
    cuts = [0, 7, 20, 33, 40]
    chunks = lambda x: (x[a:b] for a, b in itertools.pairwise(cuts))
    got = swd.sliced_wasserstein_chunks(chunks(reals), chunks(fakes), reals.shape, seed=3)
    assert got.resolutions == want.resolutions == [32, 16]
    assert got.levels == want.levels and got.mean == want.mean  # bit for bit
    with pytest.raises(ValueError, match="chunks hold 33 images, 40 were announced"):
        swd.sliced_wasserstein_chunks(iter([reals[:33]]), chunks(fakes), reals.shape, seed=3)
    with pytest.raises(ValueError, match=r"fakes chunks must be \[n, 32, 32, 3\]; found \(40, 32, 32, 1\)"):
        swd.sliced_wasserstein_chunks(chunks(reals), iter([fakes[..., :1]]), reals.shape, seed=3)


def test_compute_ppl_over_8_devices_equals_1():
    """compute_ppl with each batch split over the 8 fake devices (shard_map) = on one device, per sample,
    at epsilon 1e-2 (test_ppl.py's driver settings: 1e-4 would amplify the rounding 100x more)."""
    from test_ppl import _driver_case, _flat_features

    G, G_vars, labels, scale, settings = _driver_case()
    kw = dict(num_samples=16, batch_size=8, labels=labels, seed=3, return_distances=True, **settings)
    value8, dist8 = ppl.compute_ppl(G, G_vars, _flat_features, scale, devices=jax.devices(), **kw)
    value1, dist1 = ppl.compute_ppl(G, G_vars, _flat_features, scale, devices=jax.devices()[:1], **kw)
    assert len(jax.devices()) == 8 and dist8.shape == (16,)
    # The images' float32 rounding depends on the rows per program (1 per device vs 8 on one device);
    # the distance is a difference of images epsilon apart, so that rounding is amplified by 1/epsilon
    # (measured 7e-4 of the scale; test_ppl.py's 2-device test allows 1e-3 per element).
    assert_close(dist8, dist1, rtol=2e-3, what="PPL distances, 8 devices vs 1")
    assert_scalar_close(value8, value1, rtol=2e-3, scale=float(np.max(dist1)))


def test_real_pr_features_are_cached_on_disk_per_weights_file(stand_in_weights, tmp_path):
    """With vgg16_id (the VGG16 file's name and size) the reals' embeddings are written once (float16, as
    NVIDIA's compute_pr keeps them) and read back by a later Evaluator; another file recomputes them."""
    vgg, _ = stand_in_weights
    cfg = tiny_config()
    cfg.data.num_images = 12
    source = open_dataset(cfg)
    make = lambda variables, vid: evaluation.Evaluator(  # noqa: E731
        parallel.make_mesh(), source, None, 16, 0, None, batch_size=8, cache_dir=str(tmp_path),
        vgg16_variables=variables, pr_size=PR_SIZE, vgg16_id=vid)
    first = make(vgg, "vgg16-397923af.pth:1").real_pr_features(12, mirror=False)
    assert len(list(tmp_path.glob("pr-*.npy"))) == 1
    np.testing.assert_array_equal(first, first.astype(np.float16).astype(np.float32))
    zero = jax.tree.map(np.zeros_like, vgg)  # a network that would give other features
    np.testing.assert_array_equal(make(zero, "vgg16-397923af.pth:1").real_pr_features(12, False), first)
    other = make(zero, "vgg16-397923af.pth:2").real_pr_features(12, False)
    assert not np.array_equal(other, first) and len(list(tmp_path.glob("pr-*.npy"))) == 2
    assert make(vgg, "").vgg16_id == ""  # no identity (weights not from a file): memory only


def test_json_lines_are_appended_on_gs(tmp_path):
    """gan_jax.evaluate's metric-<name>.jsonl lines on gs:// (object stores have no append: read, extend,
    rewrite through etils.epath), against test_epath_data.py's fake bucket."""
    from test_epath_data import BUCKET, FakeBucket

    (tmp_path / "run").mkdir()
    bucket = FakeBucket(tmp_path)
    with bucket.mock():
        for i in range(2):
            evaluate.append_line(f"{BUCKET}/run/metric-pr1k3.jsonl", json.dumps({"results": {"pr1k3_precision": i}}))
    assert (tmp_path / "run" / "metric-pr1k3.jsonl").read_text().splitlines() == [
        '{"results": {"pr1k3_precision": 0}}', '{"results": {"pr1k3_precision": 1}}']
    assert bucket.opened and all(p == f"{BUCKET}/run/metric-pr1k3.jsonl" for p in bucket.opened)
