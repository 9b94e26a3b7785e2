"""Blocked precision/recall against NVIDIA's ``compute_pr`` arithmetic written out directly.

The references split the manifold and the probes into ``row_batch_size`` rows as ``compute_pr``
does, take all distances of a row block at once (``torch.cdist`` / numpy), the
``(nhood_size + 1)``-th smallest per row (``kthvalue``), then ``(dist <= kth).any(dim=1)``. The
sizes (103 real, 91 fake) are not multiples of the blocks (17 rows, 13 columns), so the last row
and column blocks are padded and the padding must not count.
"""

from __future__ import annotations

import numpy as np
import pytest
from tolerance import assert_close

ROWS, COLS = 17, 13


def _features():
    rs = np.random.RandomState(0)
    real = rs.randn(103, 16).astype(np.float32)
    fake = (rs.randn(91, 16) * 1.3 + 0.3).astype(np.float32)
    return real, fake


def _reference_numpy(real, fake, nhood_size=3, row_batch_size=ROWS, half=True):
    """compute_pr in float64 numpy; ``half``: features and distances rounded to float16 as NVIDIA keeps them."""
    def prep(x):
        return (x.astype(np.float16) if half else x).astype(np.float64)

    def dist(a, b):
        d = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0.0))
        return d.astype(np.float16).astype(np.float64) if half else d

    out = {}
    for name, manifold, probes in (("precision", prep(real), prep(fake)), ("recall", prep(fake), prep(real))):
        kth = np.concatenate([np.sort(dist(manifold[i:i + row_batch_size], manifold), axis=1)[:, nhood_size]
                              for i in range(0, len(manifold), row_batch_size)])
        pred = np.concatenate([(dist(probes[i:i + row_batch_size], manifold) <= kth[None, :]).any(axis=1)
                               for i in range(0, len(probes), row_batch_size)])
        out[name] = (kth, pred)
    return out


@pytest.mark.parametrize("half", [False, True], ids=["float32", "float16"])
def test_matches_compute_pr_arithmetic_in_blocks(half):
    from gan_jax.metrics import precision_recall as pr

    real, fake = _features()
    want = _reference_numpy(real, fake, half=half)
    for name, manifold, probes in (("precision", real, fake), ("recall", fake, real)):
        kth, pred = want[name]
        radii = pr.kth_radii(manifold, 3, ROWS, COLS, half=half)
        # float32 distances against float64 ones: 1e-6 of the scale; float16-rounded ones may land one
        # float16 step (2^-11 relative) apart where the float64 value sits on a rounding boundary.
        assert_close(radii, kth, rtol=2 ** -10 if half else 1e-6, what=f"{name} radii")
        got = pr.covered(probes, manifold, kth.astype(np.float32), ROWS, COLS, half=half)
        np.testing.assert_array_equal(got, pred, err_msg=name)
        assert 0.1 < pred.mean() < 1.0, (name, pred.mean())  # neither all nor none covered: the test can tell
    result = pr.precision_recall(real, fake, 3, ROWS, COLS, half=half)
    assert result.precision == pytest.approx(want["precision"][1].mean(), abs=1e-12)
    assert result.recall == pytest.approx(want["recall"][1].mean(), abs=1e-12)


def test_matches_torch_cdist_kthvalue():
    """NVIDIA's calls themselves (torch.cdist, kthvalue, <=, any), float32 on the CPU."""
    torch = pytest.importorskip("torch")
    from gan_jax.metrics import precision_recall as pr

    real, fake = _features()
    want = {}
    for name, manifold, probes in (("precision", real, fake), ("recall", fake, real)):
        manifold, probes = torch.from_numpy(manifold), torch.from_numpy(probes)
        kth = torch.cat([torch.cdist(b.unsqueeze(0), manifold.unsqueeze(0))[0].kthvalue(4).values
                         for b in manifold.split(ROWS)])
        pred = torch.cat([(torch.cdist(b.unsqueeze(0), manifold.unsqueeze(0))[0] <= kth).any(dim=1)
                          for b in probes.split(ROWS)])
        want[name] = float(pred.to(torch.float64).mean())
    result = pr.precision_recall(real, fake, 3, ROWS, COLS, half=False)
    assert (result.precision, result.recall) == pytest.approx((want["precision"], want["recall"]), abs=1e-12)
    assert result.as_dict("@3") == {"precision@3": result.precision, "recall@3": result.recall}


def test_blocks_and_devices_do_not_change_the_result():
    import jax

    from gan_jax.metrics import precision_recall as pr

    real, fake = _features()
    one = pr.precision_recall(real, fake, 3, 1000, 1000, half=False, devices=jax.devices()[:1])
    split = pr.precision_recall(real, fake, 3, ROWS, COLS, half=False)  # every device (8 on the test CPU)
    assert one == split
    np.testing.assert_array_equal(pr.kth_radii(real, 3, 5, 200, half=False, devices=jax.devices()[:1]),
                                  pr.kth_radii(real, 3, ROWS, COLS, half=False))


def test_compute_distances_are_euclidean():
    from gan_jax.metrics import precision_recall as pr

    real, fake = _features()
    want = np.sqrt(((real[:, None, :].astype(np.float64) - fake[None, :, :]) ** 2).sum(-1))
    got = pr.compute_distances(real, fake, col_batch_size=COLS, half=False)
    assert got.shape == (103, 91)
    # The expansion |r|^2 + |c|^2 - 2 r.c loses accuracy relative to the squared norms (about 16 here).
    assert_close(got, want, rtol=1e-5, what="distances")


def test_closed_forms():
    from gan_jax.metrics import precision_recall as pr

    # Points 0, 1, ..., 9 on a line: the 4th smallest of {0, 1, 1, 2, 2, ...} is 2 inside, 3 at the ends.
    line = np.arange(10, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(pr.kth_radii(line, 3, 4, 3), [3, 2, 2, 2, 2, 2, 2, 2, 2, 3])
    np.testing.assert_array_equal(pr.kth_radii(line, 0, 4, 3), np.zeros(10))  # only itself
    real, fake = _features()
    for half in (False, True):
        # Identical sets: every point lies within its own radius.
        assert pr.precision_recall(real, real, 3, ROWS, COLS, half=half) == pr.PrecisionRecall(1.0, 1.0)
        # Sets far apart: no point of one lies in the other's balls.
        assert pr.precision_recall(real, fake + 100.0, 3, ROWS, COLS, half=half) == pr.PrecisionRecall(0.0, 0.0)
    # Half the fakes copy reals, half are far away: precision exactly one half.
    mixed = np.concatenate([real[:40], real[:40] + 100.0])
    assert pr.precision_recall(real, mixed, 3, ROWS, COLS).precision == 0.5


def test_bad_inputs_say_what_is_wrong():
    from gan_jax.metrics import precision_recall as pr

    real, fake = _features()
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        pr.precision_recall(real[0], fake)
    with pytest.raises(ValueError, match=r"real \[N, D\] and fake \[M, D\]"):
        pr.precision_recall(real, fake[:, :8])
    with pytest.raises(ValueError, match="more than 3 points"):
        pr.kth_radii(real[:3])
    with pytest.raises(ValueError, match="batch_size"):
        pr.precision_recall(real, fake, row_batch_size=0)
