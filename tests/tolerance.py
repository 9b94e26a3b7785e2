"""One rule for every float comparison in the tests: a tolerance at the output's scale.

Float32 kernels (XLA:CPU's matmul, convolution and reduction emitters) sum in an order that depends
on the CPU's vector width, the thread count and the XLA version. An element that is the small
difference of large terms (a cancellation) then changes by a few ulps *of the terms*, not of itself:
0.0028 = 1.2 - 1.1972 can move by 4e-8, which is 1.4e-5 of the element but 3e-8 of the output's
largest magnitude. A per-element relative tolerance (``rtol`` with ``atol=0``) therefore fails on
another machine while the numbers are as right as float32 makes them.

The rule here: ``|actual - expected| <= rtol * scale + atol`` for every element, where ``scale`` is
``max|expected|`` over the whole output (or a scale the caller states, e.g. the largest term of a
sum). ``rtol`` is the relative accuracy the computation has at that scale (float32's epsilon is
1.19e-7; a chain of a few hundred float32 operations keeps about 1e-5 of the scale); ``atol`` is an
absolute bound the caller can justify on its own (e.g. images in [-1, 1] compared to 1e-4, or an
error bound derived from the computation); ``floor`` keeps an all-zero ``expected`` from demanding
exact zeros. See docs/testing.md.
"""

from __future__ import annotations

import numpy as np

# Smallest absolute tolerance ever used: far below any float32 output these tests compare at a
# scale of ~1e-3 or more, and it lets an all-zero ``expected`` accept float32 round-off (1e-30).
FLOOR = 1e-30


def scale_of(x) -> float:
    """The output's scale: its largest magnitude (0.0 for an empty array)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.max(np.abs(x))) if x.size else 0.0


def assert_close(actual, expected, *, rtol: float = 0.0, atol: float = 0.0, scale: float | None = None,
                 floor: float = FLOOR, what: str = "") -> None:
    """Assert ``|actual - expected| <= rtol * scale + atol + floor`` element-wise.

    ``scale`` defaults to ``max|expected|``: ``rtol`` is relative to the output's largest magnitude,
    not to each element, so an element that cancels is held to the accuracy of the terms it came
    from. Pass ``scale=`` where the computation has a larger natural scale (the largest term of a
    sum), ``atol=`` for an absolute bound. Shapes must broadcast; NaN/inf must match exactly.
    On failure the message names the worst element, its index, both values, the scale and the bound.
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    a, e = np.broadcast_arrays(a, e)
    s = scale_of(e[np.isfinite(e)]) if scale is None else float(scale)
    bound = rtol * s + atol + floor
    label = f"{what}: " if what else ""
    mismatch = (~np.isfinite(a) | ~np.isfinite(e)) & ~((a == e) | (np.isnan(a) & np.isnan(e)))
    if np.any(mismatch):
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(mismatch)), a.shape)) if a.ndim else ()
        raise AssertionError(f"{label}non-finite mismatch at {idx}: actual {a[idx]!r}, expected {e[idx]!r}")
    finite = np.isfinite(a) & np.isfinite(e)
    with np.errstate(invalid="ignore"):
        err = np.where(finite, np.abs(a - e), 0.0)
    if err.size == 0:
        return
    worst = np.unravel_index(int(np.argmax(err)), err.shape) if err.ndim else ()
    if err[worst] > bound:
        n_bad = int(np.sum(err > bound))
        raise AssertionError(
            f"{label}{n_bad} of {err.size} elements differ by more than {bound:.3g} "
            f"(= rtol {rtol:g} * scale {s:.4g} + atol {atol:g}); worst at index {tuple(int(i) for i in worst)}: "
            f"actual {a[worst]:.9g}, expected {e[worst]:.9g}, |diff| {err[worst]:.3g} "
            f"({err[worst] / s if s else float('inf'):.3g} of the scale)")


def assert_scalar_close(actual, expected, *, rtol: float = 0.0, atol: float = 0.0, scale: float | None = None,
                        what: str = "") -> None:
    """``assert_close`` for one number: the scale is ``|expected|`` unless the caller states a larger
    one (the magnitude of the terms the scalar was summed from, when they can cancel)."""
    assert np.ndim(actual) == 0 or np.size(actual) == 1, np.shape(actual)
    assert_close(np.reshape(np.asarray(actual, dtype=np.float64), ()), float(np.asarray(expected).reshape(())),
                 rtol=rtol, atol=atol, scale=scale, what=what)


def assert_trees_close(actual: dict, expected: dict, *, rtol: float, atol: float = 0.0, what: str = "") -> None:
    """``assert_close`` leaf by leaf of two flat dicts, each leaf at its own scale."""
    assert set(actual) == set(expected), sorted(set(actual) ^ set(expected))
    for k in expected:
        assert_close(actual[k], expected[k], rtol=rtol, atol=atol, what=f"{what} {k}".strip())
