"""Loss functions shared by the recipes. Logits are [N, 1]; per-sample values are [N]."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def g_logistic_nonsaturating(fake_logits: jax.Array) -> jax.Array:
    """G's non-saturating logistic loss ``softplus(-D(G(z)))`` (Goodfellow et al. 2014), per sample."""
    return jax.nn.softplus(-fake_logits)


def d_logistic(real_logits: jax.Array, fake_logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """D's logistic loss terms ``softplus(D(G(z)))`` and ``softplus(-D(x))``, per sample."""
    return jax.nn.softplus(fake_logits), jax.nn.softplus(-real_logits)


def r1_penalty(d_fn: Callable[[jax.Array], jax.Array], real: jax.Array) -> tuple[jax.Array, jax.Array]:
    """R1 (Mescheder et al. 2018, eq. 9): ``||grad_x D(x)||^2`` per sample, summed over H, W, C.

    ``d_fn`` maps images [N, H, W, C] to logits [N, 1]. Returns ``(penalty [N], logits [N, 1])``.
    """
    logits, vjp = jax.vjp(d_fn, real)
    (grads,) = vjp(jnp.ones_like(logits))
    return jnp.sum(jnp.square(grads), axis=(1, 2, 3)), logits


def path_length(
    synthesis_fn: Callable[[jax.Array], jax.Array], ws: jax.Array, pl_noise: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Path length (Karras et al. 2020, eq. 4): ``||J_w^T y||`` with ``y = pl_noise``, per sample.

    ``pl_lengths = sqrt(mean_over_ws(sum_over_wdim(grad_ws sum(img * y))^2))`` for ws
    [N, num_ws, w_dim] (NVIDIA's StyleGAN2Loss). Returns ``(pl_lengths [N], images)``.
    """
    img, vjp = jax.vjp(synthesis_fn, ws)
    (grads,) = vjp(pl_noise.astype(img.dtype))
    return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1)), img


def hinge_d(real_logits: jax.Array, fake_logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """D's hinge loss (Lim & Ye 2017; BigGAN-PyTorch ``losses.loss_hinge_dis``):
    ``(mean(relu(1 - D(x))), mean(relu(1 + D(G(z)))))``, scalars."""
    return jnp.mean(jax.nn.relu(1.0 - real_logits)), jnp.mean(jax.nn.relu(1.0 + fake_logits))


def hinge_g(fake_logits: jax.Array) -> jax.Array:
    """G's hinge loss ``-mean(D(G(z)))`` (BigGAN-PyTorch ``losses.loss_hinge_gen``), scalar."""
    return -jnp.mean(fake_logits)


# -- WGAN-GP with drift and AC-GAN terms (ProGAN, official loss.py: G_wgan_acgan / D_wgangp_acgan) --------


def g_wgan(fake_scores: jax.Array) -> jax.Array:
    """G's WGAN loss ``-D(G(z))``, per sample [N, 1]."""
    return -fake_scores


def d_wgan(real_scores: jax.Array, fake_scores: jax.Array) -> jax.Array:
    """D's WGAN loss ``D(G(z)) - D(x)``, per sample [N, 1]."""
    return fake_scores - real_scores


def wgan_gradient_penalty(
    d_fn: Callable[[jax.Array], jax.Array], reals: jax.Array, fakes: jax.Array, mixing_factors: jax.Array,
    target: float = 1.0,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """WGAN-GP (Gulrajani et al. 2017; ProGAN's ``GradientPenalty``): ``(||grad D(mixed)||_2 - target)^2``.

    ``mixed = reals + (fakes - reals) * mixing_factors`` ([N, 1, 1, 1], uniform in [0, 1)); the gradient
    is of ``sum(D(mixed))`` with respect to the mixed images [N, H, W, C], its L2 norm over H, W, C.
    Returns ``(penalty [N], mixed_norms [N], mixed_scores [N, 1])``; the official loss weighs the
    penalty by ``wgan_lambda / target**2`` (lambda 10, target 1).
    """
    mixed = reals + (fakes - reals) * mixing_factors
    scores, vjp = jax.vjp(d_fn, mixed)
    (grads,) = vjp(jnp.ones_like(scores))
    norms = jnp.sqrt(jnp.sum(jnp.square(grads.astype(jnp.promote_types(grads.dtype, jnp.float32))), axis=(1, 2, 3)))
    return jnp.square(norms - target), norms, scores


def drift_penalty(real_scores: jax.Array) -> jax.Array:
    """ProGAN's epsilon (drift) term ``D(x)^2`` [N, 1], weighted by ``wgan_epsilon`` (0.001; paper sec. A.1)."""
    return jnp.square(real_scores)


def acgan_label_penalty(labels: jax.Array, logits: jax.Array) -> jax.Array:
    """AC-GAN term (Odena et al. 2017): ``softmax_cross_entropy_with_logits(labels, logits)``, per sample [N]."""
    return -jnp.sum(labels * jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), axis=-1)
