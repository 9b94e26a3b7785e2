"""Spectral normalisation (Miyato et al. 2018, arXiv 1802.05957) as BigGAN-PyTorch's ``layers.SN`` does it,
and the SN / plain Conv2d, Linear and Embedding layers of that code base.

Semantics (``layers.power_iteration`` and ``SN.W_``, ajbrock/BigGAN-PyTorch 9845943):

* the weight is viewed as the matrix ``W = weight.view(weight.shape[0], -1)``: ``[O, I*kh*kw]`` for a
  conv, ``[out, in]`` for a linear, ``[num_embeddings, dim]`` for an embedding;
* every forward, in train **and** eval mode, runs ``num_itrs`` power-iteration steps from the stored
  ``u`` (``v = normalize(u W)``, ``u = normalize(v W^T)``, ``sigma = v W^T u^T``, with
  ``normalize(x) = x / max(||x||, eps)`` and Gram-Schmidt deflation for ``num_svs > 1``); the weight
  used is ``weight / sigma_0``;
* in train mode the new ``u`` and ``sigma`` are written to ``u{i}`` / ``sv{i}`` (only when the ``sn``
  collection is mutable); in eval mode nothing is written, so each call repeats the same single step;
* ``u`` and ``v`` carry no gradient, ``sigma`` does (``d sigma / dW = u^T v``).

Variables: ``params/weight`` (conv ``[kh, kw, I, O]``; linear ``[out, in]`` and embedding
``[num_embeddings, dim]`` in the reference's layout, so the SN matrix is the weight itself),
``params/bias`` ``[O]``, and in the ``sn`` collection ``u{i}`` ``[1, O]`` and ``sv{i}`` ``[1]``.
Arrays are NHWC. This module imports only jax, flax and numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any
SN_COLLECTION = "sn"
INIT_STYLES = ("ortho", "N02", "glorot", "xavier")


def _normalize(x: jax.Array, eps: float) -> jax.Array:
    """``F.normalize(x, eps=eps)`` for a row vector ``[1, n]``."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def _gram_schmidt(x: jax.Array, ys: list[jax.Array]) -> jax.Array:
    for y in ys:  # layers.proj: (y x^T) y / (y y^T)
        x = x - (y @ x.T) * y / (y @ y.T)
    return x


def power_iteration(w_mat: jax.Array, us: list[jax.Array], eps: float) -> tuple[list[jax.Array], list[jax.Array], list[jax.Array]]:
    """One step of ``layers.power_iteration``: ``(svs [], new us [1, O], vs [1, K])`` for ``W [O, K]``.

    ``u`` and ``v`` are computed without gradient; each ``sigma = v W^T u^T`` keeps its gradient in W.
    """
    w_ng = jax.lax.stop_gradient(w_mat)
    new_us, vs, svs = [], [], []
    for u in us:
        v = _normalize(_gram_schmidt(u @ w_ng, vs), eps)
        vs.append(v)
        u = _normalize(_gram_schmidt(v @ w_ng.T, new_us), eps)
        new_us.append(u)
    new_us = [jax.lax.stop_gradient(u) for u in new_us]
    vs = [jax.lax.stop_gradient(v) for v in vs]
    for u, v in zip(new_us, vs):
        svs.append(jnp.squeeze((v @ w_mat.T) @ u.T))
    return svs, new_us, vs


def sn_matrix(weight: jax.Array) -> jax.Array:
    """The reference's ``weight.view(weight.shape[0], -1)`` up to a column permutation: a conv kernel
    ``[kh, kw, I, O]`` -> ``[O, kh*kw*I]``; 2-D weights (``[out, in]``, embeddings) as they are.

    Power iteration, ``sigma`` and ``W W^T`` do not depend on the order of the columns."""
    if weight.ndim == 4:
        return weight.reshape(-1, weight.shape[-1]).T
    if weight.ndim == 2:
        return weight
    raise ValueError(f"spectral norm expects a 2-D or 4-D weight, got shape {weight.shape}")


def spectral_normalize(module: nn.Module, weight: jax.Array, num_svs: int, num_itrs: int, eps: float,
                       train: bool) -> jax.Array:
    """``weight / sigma_0`` with the ``u{i}`` / ``sv{i}`` variables of ``module`` (collection ``sn``).

    Train mode writes the new u and sigma when the ``sn`` collection is mutable."""
    w_mat = sn_matrix(weight)
    num_outputs = w_mat.shape[0]
    u_vars = [module.variable(SN_COLLECTION, f"u{i}", lambda: jax.random.normal(module.make_rng("params"), (1, num_outputs), jnp.float32))
              for i in range(num_svs)]
    sv_vars = [module.variable(SN_COLLECTION, f"sv{i}", lambda: jnp.ones((1,), jnp.float32)) for i in range(num_svs)]
    w32 = w_mat.astype(jnp.float32)
    us = [u.value for u in u_vars]
    if tuple(us[0].shape) != (1, num_outputs):
        raise ValueError(f"{module.name}: u0 has shape {tuple(us[0].shape)}, the weight needs [1, {num_outputs}]")
    # Eval mode restarts every step from the stored u, so more than one step gives the first one again.
    for _ in range(num_itrs if train else 1):
        svs, us, _ = power_iteration(w32, us, eps)
    if train and module.is_mutable_collection(SN_COLLECTION) and not module.is_initializing():
        for var, u in zip(u_vars, us):
            var.value = u
        for var, sv in zip(sv_vars, svs):
            var.value = jnp.reshape(jax.lax.stop_gradient(sv), (1,))
    return weight / svs[0].astype(weight.dtype)


# ----------------------------------------------------------------------------------------------
# Initialisers (BigGAN-PyTorch ``init_weights``; PyTorch's default bias init).


def weight_init(style: str, kind: str) -> Callable[[jax.Array, tuple[int, ...]], jax.Array]:
    """``init_weights`` of BigGAN.py: ``'ortho'`` (``torch.nn.init.orthogonal_`` on ``[O, -1]``),
    ``'N02'`` (N(0, 0.02)), ``'glorot'`` / ``'xavier'`` (xavier_uniform). ``kind`` is ``'conv'``
    (``[kh, kw, I, O]``) or ``'matrix'`` (``[out, in]`` / ``[num_embeddings, dim]``)."""
    if style not in INIT_STYLES:
        raise ValueError(f"init style must be one of {INIT_STYLES}, got {style!r}")

    def init(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        if style == "N02":
            return 0.02 * jax.random.normal(key, shape, jnp.float32)
        if kind == "conv":
            kh, kw, i, o = shape
            fan_in, fan_out, rows, cols = i * kh * kw, o * kh * kw, o, i * kh * kw
        else:
            o, i = shape
            fan_in, fan_out, rows, cols = i, o, o, i
        if style == "ortho":  # an orthogonal [rows, cols] matrix, laid out as the layer stores it
            m = jax.nn.initializers.orthogonal()(key, (rows, cols), jnp.float32)
            return m.T.reshape(shape) if kind == "conv" else m
        bound = float(np.sqrt(6.0 / (fan_in + fan_out)))
        return jax.random.uniform(key, shape, jnp.float32, -bound, bound)

    return init


def torch_bias_init(fan_in: int) -> Callable[[jax.Array, tuple[int, ...]], jax.Array]:
    """PyTorch's default bias init for Conv2d / Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / float(np.sqrt(fan_in))
    return lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound)


# ----------------------------------------------------------------------------------------------
# Layers.


class SNConv2d(nn.Module):
    """``layers.SNConv2d`` (or ``nn.Conv2d`` with ``use_sn=False``): stride 1, 'same' padding
    ``kernel_size // 2``. ``x`` [N, H, W, I] -> [N, H, W, features]."""

    features: int
    kernel_size: int = 3
    use_bias: bool = True
    use_sn: bool = True
    num_svs: int = 1
    num_itrs: int = 1
    eps: float = 1e-12
    init_style: str = "ortho"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"{self.name}: expects x of shape [N, H, W, C], got {tuple(x.shape)}")
        k, cin = self.kernel_size, x.shape[-1]
        weight = self.param("weight", weight_init(self.init_style, "conv"), (k, k, cin, self.features))
        if self.use_sn:
            weight = spectral_normalize(self, weight, self.num_svs, self.num_itrs, self.eps, train)
        pad = k // 2
        y = jax.lax.conv_general_dilated(x.astype(self.dtype), weight.astype(self.dtype), (1, 1), [(pad, pad), (pad, pad)],
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        if self.use_bias:
            bias = self.param("bias", torch_bias_init(cin * k * k), (self.features,))
            y = y + bias.astype(self.dtype)
        return y


class SNLinear(nn.Module):
    """``layers.SNLinear`` (or ``nn.Linear``): ``x W^T + b`` with ``weight`` [out, in]. ``x`` [N, in] -> [N, features]."""

    features: int
    use_bias: bool = True
    use_sn: bool = True
    num_svs: int = 1
    num_itrs: int = 1
    eps: float = 1e-12
    init_style: str = "ortho"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if x.ndim != 2:
            raise ValueError(f"{self.name}: expects x of shape [N, in_features], got {tuple(x.shape)}")
        weight = self.param("weight", weight_init(self.init_style, "matrix"), (self.features, x.shape[-1]))
        if self.use_sn:
            weight = spectral_normalize(self, weight, self.num_svs, self.num_itrs, self.eps, train)
        y = x.astype(self.dtype) @ weight.astype(self.dtype).T
        if self.use_bias:
            y = y + self.param("bias", torch_bias_init(x.shape[-1]), (self.features,)).astype(self.dtype)
        return y


class SNEmbedding(nn.Module):
    """``layers.SNEmbedding`` (or ``nn.Embedding`` with ``use_sn=False``): ``weight[y]``.

    ``y`` int [N] -> [N, features]; ``weight`` [num_embeddings, features], so ``u0`` is ``[1, num_embeddings]``."""

    num_embeddings: int
    features: int
    use_sn: bool = True
    num_svs: int = 1
    num_itrs: int = 1
    eps: float = 1e-12
    init_style: str = "ortho"

    @nn.compact
    def __call__(self, y: jax.Array, train: bool = False) -> jax.Array:
        if y.ndim != 1 or not jnp.issubdtype(y.dtype, jnp.integer):
            raise ValueError(f"{self.name}: expects integer class labels of shape [N], got {y.dtype} {tuple(y.shape)}")
        weight = self.param("weight", weight_init(self.init_style, "matrix"), (self.num_embeddings, self.features))
        if self.use_sn:
            weight = spectral_normalize(self, weight, self.num_svs, self.num_itrs, self.eps, train)
        return jnp.take(weight, y, axis=0)
