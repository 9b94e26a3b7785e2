"""Full-size official configurations, by shape only (jax.eval_shape): parameter and buffer counts
equal the official networks' (fixtures/stylegan2_ada/param_counts.json)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import load_json
from gan_jax import convert

CFGS = ["ffhq1024_stylegan2", "paper256", "cifar"]


@pytest.fixture(scope="module")
def counts():
    return load_json("stylegan2_ada", "param_counts.json")


def _split(shapes, prefix=""):
    params = sum(int(np.prod(s)) for k, s in shapes.items() if k.startswith(prefix) and not _is_buffer(k))
    buffers = sum(int(np.prod(s)) for k, s in shapes.items() if k.startswith(prefix) and _is_buffer(k))
    return params, buffers


def _is_buffer(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in ("resample_filter", "noise_const", "w_avg")


@pytest.mark.parametrize("cfg", CFGS)
def test_generator_counts(counts, cfg):
    ref = counts[cfg]
    G = convert.generator_from_kwargs(ref["G_init_kwargs"])
    shapes = convert.upstream_state_shapes(G)
    assert _split(shapes) == (ref["G"]["params"], ref["G"]["buffer_elems"])
    for child, n in ref["G"]["params_by_child"].items():
        assert _split(shapes, child + ".")[0] == n, child
    assert G.num_ws == ref["G_num_ws"]


@pytest.mark.parametrize("cfg", CFGS)
def test_discriminator_counts(counts, cfg):
    ref = counts[cfg]
    D = convert.discriminator_from_kwargs(ref["D_init_kwargs"])
    shapes = convert.upstream_state_shapes(D)
    assert _split(shapes) == (ref["D"]["params"], ref["D"]["buffer_elems"])
    for child, n in ref["D"]["params_by_child"].items():
        assert _split(shapes, child + ".")[0] == n, child
