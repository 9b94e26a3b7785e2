"""Fused bias + activation + gain + clamp, as NVIDIA's `torch_utils/ops/bias_act.py` computes it.

Order (official `_bias_act_ref`): ``x + b`` -> activation -> ``* gain`` -> ``clamp(-clamp, clamp)``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Activation:
    func: Callable[[jax.Array, float], jax.Array]
    def_alpha: float
    def_gain: float


# Default alphas and gains: official `activation_funcs` table (bias_act.py).
ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0),
    "relu": Activation(lambda x, a: jax.nn.relu(x), 0.0, float(np.sqrt(2))),
    "lrelu": Activation(lambda x, a: jnp.where(x >= 0, x, x * a), 0.2, float(np.sqrt(2))),
    "tanh": Activation(lambda x, a: jnp.tanh(x), 0.0, 1.0),
    "sigmoid": Activation(lambda x, a: jax.nn.sigmoid(x), 0.0, 1.0),
    "elu": Activation(lambda x, a: jax.nn.elu(x), 0.0, 1.0),
    "selu": Activation(lambda x, a: jax.nn.selu(x), 0.0, 1.0),
    "softplus": Activation(lambda x, a: jax.nn.softplus(x), 0.0, 1.0),
    "swish": Activation(lambda x, a: jax.nn.sigmoid(x) * x, 0.0, float(np.sqrt(2))),
}


def activation_spec(act: str) -> Activation:
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[act]


def bias_act(
    x: jax.Array,
    b: jax.Array | None = None,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    axis: int = -1,
) -> jax.Array:
    """``clamp(act(x + b) * gain)``.

    Args:
      x: any shape; for NHWC activations the channel axis is the last one (``axis=-1``).
      b: ``[x.shape[axis]]`` bias, or None.
      act: one of ``ACTIVATIONS``; ``alpha`` and ``gain`` default to its table entry.
      clamp: clamp the result to ``[-clamp, clamp]`` after the gain; None = no clamp.
    """
    spec = activation_spec(act)
    alpha = float(spec.def_alpha if alpha is None else alpha)
    gain = float(spec.def_gain if gain is None else gain)
    if clamp is not None and clamp < 0:
        raise ValueError(f"clamp must be >= 0 or None, got {clamp}")
    if b is not None:
        axis = axis % x.ndim
        if b.ndim != 1 or b.shape[0] != x.shape[axis]:
            raise ValueError(f"bias shape {tuple(b.shape)} does not match x axis {axis} of {tuple(x.shape)}")
        shape = [1] * x.ndim
        shape[axis] = -1
        x = x + b.reshape(shape).astype(x.dtype)
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * jnp.asarray(gain, x.dtype)
    if clamp is not None:
        x = jnp.clip(x, -clamp, clamp)
    return x
