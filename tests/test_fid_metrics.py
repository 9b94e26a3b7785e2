"""FID, KID, IS and the in-graph feature moments against closed forms and direct NumPy/SciPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from gan_jax import parallel
from gan_jax.metrics import fid, inception
from tolerance import assert_close


def _spd(rs: np.random.RandomState, d: int) -> np.ndarray:
    a = rs.randn(d, d)
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    rs = np.random.RandomState(0)
    mu1, mu2 = rs.randn(16), rs.randn(16)
    v1, v2 = rs.uniform(0.1, 2, 16), rs.uniform(0.1, 2, 16)
    # commuting covariances: tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt(v1) - sqrt(v2))^2
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert fid.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(want, rel=1e-12)


def test_frechet_distance_equals_scipy_sqrtm_form():
    rs = np.random.RandomState(1)
    for d in (3, 64, 256):
        mu1, mu2, s1, s2 = rs.randn(d), rs.randn(d), _spd(rs, d), _spd(rs, d)
        covmean = scipy.linalg.sqrtm(s1 @ s2).real  # NVIDIA's / pytorch-fid's form
        want = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
        assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_fid_of_sampled_gaussians_and_of_a_set_with_itself():
    rs = np.random.RandomState(2)
    d, n = 8, 200_000
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    l1, l2 = np.linalg.cholesky(_spd(rs, d)), np.linalg.cholesky(_spd(rs, d))
    x = rs.randn(n, d) @ l1.T + mu1
    y = rs.randn(n, d) @ l2.T + mu2
    sx, sy = fid.FeatureStats(d), fid.FeatureStats(d)
    for i in range(0, n, 50_000):  # merged batch by batch, as during evaluation
        sx.add_batch(50_000, x[i:i + 50_000].mean(0), np.cov(x[i:i + 50_000], rowvar=False, ddof=0) * 50_000)
        sy.add_batch(50_000, y[i:i + 50_000].mean(0), np.cov(y[i:i + 50_000], rowvar=False, ddof=0) * 50_000)
    want = fid.frechet_distance(mu1, l1 @ l1.T, mu2, l2 @ l2.T)
    got = fid.frechet_distance(*sx.mean_cov(), *sy.mean_cov())
    assert got == pytest.approx(want, rel=0.02)
    assert abs(fid.frechet_distance(*sx.mean_cov(), *sx.mean_cov())) < 1e-8


def test_device_moments_of_10k_features_match_float64_numpy():
    """Offset features (mean 5, std 0.5): float32 sums about 0 would lose digits; ours do not."""
    rs = np.random.RandomState(3)
    feats = (5 + 0.5 * rs.randn(10_000, 2048) * rs.uniform(0.2, 2, 2048)).astype(np.float32)
    mesh = parallel.make_mesh()
    step = jax.jit(fid.batch_moments, in_shardings=parallel.data_sharded(mesh),
                   out_shardings=parallel.replicated(mesh))
    stats = fid.FeatureStats(2048)
    for i in range(0, 10_000, 1000):
        stats.add_batch(1000, *jax.device_get(step(jnp.asarray(feats[i:i + 1000]))))
    mu, cov = stats.mean_cov(ddof=1)
    f64 = feats.astype(np.float64)
    want_cov = np.cov(f64, rowvar=False)
    assert_close(mu, f64.mean(0), rtol=1e-6)
    assert_close(cov, want_cov, rtol=1e-5)  # float32 sums of 10k products, merged in float64


def test_kid_matches_direct_unbiased_mmd():
    rs = np.random.RandomState(4)
    real, fake = rs.randn(60, 5), rs.randn(50, 5) + 0.3
    got = fid.kernel_inception_distance(real, fake, num_subsets=1, max_subset_size=1000)
    # one subset of all 50 fakes and 50 of the reals, drawn as the implementation draws them
    rs2 = np.random.RandomState(0)
    x, y = fake[rs2.choice(50, 50, replace=False)], real[rs2.choice(60, 50, replace=False)]
    k = lambda a, b: (a @ b.T / 5 + 1) ** 3
    m = 50
    mmd = ((k(x, x).sum() - np.trace(k(x, x))) / (m * (m - 1)) + (k(y, y).sum() - np.trace(k(y, y))) / (m * (m - 1))
           - 2 * k(x, y).mean())
    assert got == pytest.approx(mmd, rel=1e-10)
    a, b = rs.randn(2000, 5), rs.randn(2000, 5)  # unbiased: about 0 for one distribution
    assert abs(fid.kernel_inception_distance(a, b, num_subsets=10)) < 0.1 * fid.kernel_inception_distance(a, b + 0.5)


def test_inception_score_matches_direct_formula():
    rs = np.random.RandomState(5)
    logits = rs.randn(100, 7) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for part in np.split(p, 10):
        py = part.mean(0)
        scores.append(np.exp(np.mean([np.sum(q * np.log(q / py)) for q in part])))
    mean, std = fid.inception_score(logits, num_splits=10)
    assert mean == pytest.approx(np.mean(scores), rel=1e-10) and std == pytest.approx(np.std(scores), rel=1e-8)
    # one-hot predictions of 7 equally used classes give IS = 7
    assert fid.inception_score(np.eye(7)[np.arange(70) % 7] * 50, num_splits=1)[0] == pytest.approx(7, rel=1e-6)


@pytest.fixture(scope="module")
def random_inception():
    return inception.InceptionV3().init(jax.random.PRNGKey(0), jnp.zeros((1, 299, 299, 3)))


def test_sharded_feature_statistics_equal_single_device(random_inception):
    images = np.random.RandomState(6).randint(0, 256, size=(13, 16, 16, 3)).astype(np.uint8)
    out = {}
    for n in (8, 1):
        mesh = parallel.make_mesh(jax.devices()[:n])
        ext = fid.FeatureExtractor(random_inception, mesh)
        stats = fid.FeatureStats(2048)
        ext.update(stats, images[:8], capture=True)
        ext.update(stats, images[8:], capture=True)  # 5 images: padded to the devices, padding left out
        out[n] = stats
    assert len(jax.devices()) == 8 and out[8].num == 13 and out[8].all_features().shape == (13, 2048)
    assert_close(out[8].all_features(), out[1].all_features(), rtol=1e-5, atol=1e-6)
    mu8, cov8 = out[8].mean_cov()
    mu1, cov1 = out[1].mean_cov()
    assert_close(mu8, mu1, rtol=1e-5, atol=1e-7)
    assert_close(cov8, cov1, rtol=1e-4, atol=1e-9)
    # the merged moments are those of the captured features
    feats = out[8].all_features().astype(np.float64)
    assert_close(cov8, np.cov(feats, rowvar=False, ddof=0), rtol=1e-4, atol=1e-5 * np.abs(cov8).max())
