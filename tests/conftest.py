"""Shared test helpers: where the reference fixtures live, and NCHW <-> NHWC."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"


def fixture_dir(family: str) -> pathlib.Path:
    """The fixture folder of ``family``, or skip the test saying why."""
    path = (FIXTURES / family).resolve()
    if not path.is_dir():
        pytest.skip(f"reference fixtures not found at {path} (expected ../shared/fixtures/{family} beside the repo)")
    return path


def load_npz(family: str, name: str) -> dict[str, np.ndarray]:
    with np.load(fixture_dir(family) / name) as f:
        return {k: f[k] for k in f.files}


def load_json(family: str, name: str):
    return json.loads((fixture_dir(family) / name).read_text())


def nhwc(x: np.ndarray) -> np.ndarray:
    """[N, C, H, W] -> [N, H, W, C]."""
    return np.transpose(x, (0, 2, 3, 1))


def nchw(x) -> np.ndarray:
    """[N, H, W, C] -> [N, C, H, W]."""
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def oihw_to_hwio(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 1, 0))
