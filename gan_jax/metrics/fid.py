"""FID, KID and IS from Inception features, the features computed inside the compiled graph.

FID (Heusel et al. 2017) ``|mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2))``; KID (Binkowski et
al. 2018) and IS (Salimans et al. 2016) as NVIDIA's ``metrics/kernel_inception_distance.py`` and
``metrics/inception_score.py`` compute them.

On the devices: images -> Inception pool features -> the global batch's mean and centred sum of
outer products ``sum_n (x_n - m)(x_n - m)^T`` (XLA reduces across the mesh); only these ``[D]`` and
``[D, D]`` arrays reach the host, where batches are merged in float64 with Chan et al.'s pairwise
update. Centring within the batch keeps the float32 sums well conditioned whatever the features'
offset. Per-sample features leave the devices only when KID or IS asks for them (``capture=True``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import parallel
from gan_jax.metrics import inception as inception_lib

_HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass
class FeatureStats:
    """Running float64 mean and centred second moment of features [N, D]; optional captured rows."""

    dim: int
    num: int = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None
    features: list[np.ndarray] = dataclasses.field(default_factory=list)
    logits: list[np.ndarray] = dataclasses.field(default_factory=list)

    def add_batch(self, n: int, mean: Any, m2: Any) -> None:
        """Merge a batch of ``n`` samples with mean ``mean`` [D] and ``m2`` = sum (x - mean)(x - mean)^T."""
        mean, m2 = np.asarray(mean, np.float64), np.asarray(m2, np.float64)
        if self.num == 0:
            self.num, self.mean, self.m2 = int(n), mean, m2
            return
        total = self.num + n
        delta = mean - self.mean
        self.m2 = self.m2 + m2 + np.outer(delta, delta) * (self.num * n / total)
        self.mean = self.mean + delta * (n / total)
        self.num = total

    def mean_cov(self, ddof: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """float64 ``(mu [D], sigma [D, D])``; ``ddof=0`` as NVIDIA's FeatureStats, 1 as ``np.cov``."""
        if self.num < 2:
            raise ValueError(f"feature statistics of {self.num} samples; at least 2 are needed")
        cov = self.m2 / (self.num - ddof)
        return self.mean, (cov + cov.T) / 2

    def all_features(self) -> np.ndarray:
        return np.concatenate(self.features) if self.features else np.zeros((0, self.dim), np.float32)

    def all_logits(self) -> np.ndarray:
        return np.concatenate(self.logits) if self.logits else np.zeros((0, inception_lib.NUM_CLASSES), np.float32)

    def save(self, path: str) -> None:
        with open(path, "wb") as f:  # np.savez would append '.npz' to a name without it
            np.savez(f, num=self.num, mean=self.mean, m2=self.m2, features=self.all_features())

    @classmethod
    def load(cls, path: str) -> FeatureStats:
        with np.load(path) as f:
            stats = cls(dim=int(f["mean"].shape[0]), num=int(f["num"]), mean=f["mean"], m2=f["m2"])
            if f["features"].shape[0]:
                stats.features = [f["features"]]
        return stats


def batch_moments(x: jax.Array, valid: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """``(mean [D], sum_n (x_n - mean)(x_n - mean)^T [D, D])`` of ``x`` [N, D], float32, over the
    rows where ``valid`` [N] (bool) holds (all by default; padding rows are left out)."""
    x = x.astype(jnp.float32)
    w = jnp.ones(x.shape[:1], jnp.float32) if valid is None else valid.astype(jnp.float32)
    mean = jnp.sum(x * w[:, None], axis=0) / jnp.sum(w)
    d = (x - mean) * w[:, None]
    return mean, jnp.einsum("ni,nj->ij", d, d, precision=_HIGHEST)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^(1/2) S2 S1^(1/2))^(1/2))`` in float64.

    The symmetric form has the eigenvalues of ``S1 S2`` (which ``scipy.linalg.sqrtm(S1 @ S2)``
    takes the root of) and needs only ``eigh``; tiny negative eigenvalues from rounding are clipped.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"FID of statistics with different shapes: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {s1.shape} vs {s2.shape}")
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    tr_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)))
    return float(np.sum(np.square(mu1 - mu2)) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, num_subsets: int = 100,
                              max_subset_size: int = 1000, seed: int = 0) -> float:
    """Unbiased MMD^2 with the cubic kernel ``(x.y / D + 1)^3``, averaged over random subsets
    (NVIDIA's ``compute_kid``: 100 subsets of at most 1000; its subsets are drawn by the global
    ``np.random``, here by ``RandomState(seed)``)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    n = real.shape[1]
    m = min(real.shape[0], fake.shape[0], max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 features of each kind, got {real.shape[0]} real, {fake.shape[0]} fake")
    rs = np.random.RandomState(seed)
    t = 0.0
    for _ in range(num_subsets):
        x = fake[rs.choice(fake.shape[0], m, replace=False)]
        y = real[rs.choice(real.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / num_subsets / m)


def inception_score(logits: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """``exp(E_x KL(p(y|x) || p(y)))`` per split -> (mean, std); ``logits`` [N, 1008] without the
    output bias (NVIDIA's ``no_output_bias=True``, as the original TF code)."""
    logits = np.asarray(logits, np.float64)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    n = p.shape[0]
    scores = []
    for i in range(num_splits):
        part = p[i * n // num_splits:(i + 1) * n // num_splits]
        kl = part * (np.log(part) - np.log(np.mean(part, axis=0, keepdims=True)))
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


def host_value(x: jax.Array) -> np.ndarray:
    """``x`` as a host array on every process: the moments are replicated (read locally); the
    captured per-sample features are sharded over all processes' devices, so in a multi-process
    run they are gathered (``multihost_utils.process_allgather``) rather than read, which would fail."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def latent_sampler(mesh: jax.sharding.Mesh, sample: Callable, batch: int, z_dim: int) -> Callable:
    """``(state, rng, c) -> sample(state, z, c)`` [batch, H, W, C] with ``z ~ N(0, I)`` [batch, z_dim]
    drawn on the devices from ``rng``; ``batch`` is a multiple of the device count."""
    data = parallel.data_sharded(mesh)
    P = jax.sharding.PartitionSpec
    # Each device runs the generator on its own rows (shard_map): partitioning a generator's
    # grouped convolutions along the batch is not something to leave to the SPMD partitioner.
    local = jax.shard_map(lambda state, z, c: sample(state, z, c), mesh=mesh,
                          in_specs=(P(), P("data"), P("data")), out_specs=P("data"), check_vma=False)

    def produce(state: Any, rng: jax.Array, c: jax.Array | None) -> jax.Array:
        z = jax.lax.with_sharding_constraint(jax.random.normal(rng, (batch, z_dim), jnp.float32), data)
        return local(state, z, c)

    return produce


def generator_inputs(mesh: jax.sharding.Mesh, num: int, batch: int,
                     labels: Callable[[int], np.ndarray] | None,
                     seed: int) -> Iterator[tuple[jax.Array, jax.Array | None]]:
    """``(rng, c)`` for each of the ``ceil(num / batch)`` generator batches: the key of batch ``i`` is
    ``fold_in(PRNGKey(seed), i)``; ``c`` the global one-hot labels [batch, c_dim] (every process draws
    the same ``labels(batch)`` and feeds its rows), or None for an unconditional generator."""
    rng = jax.random.PRNGKey(seed)
    for i in range(-(-num // batch)):
        c = None
        if labels is not None:
            per, p = batch // jax.process_count(), jax.process_index()
            rows = np.asarray(labels(batch), np.float32)[p * per:(p + 1) * per]
            c = parallel.global_batch({"label": rows}, mesh)["label"]
        yield jax.random.fold_in(rng, i), c


class FeatureExtractor:
    """Inception features of global image batches on ``mesh``, each step compiled once.

    ``update(stats, images)`` adds a batch ``[N, H, W, C]`` (float [-1, 1] or uint8; N divisible
    by the device count) to ``stats``. ``generator_stats`` draws latents on the devices and runs
    the generator and the Inception in one compiled step.
    """

    def __init__(self, variables: Any, mesh: jax.sharding.Mesh, convention: str = "nvidia"):
        if convention not in inception_lib.CONVENTIONS:
            raise ValueError(f"unknown FID convention {convention!r}; expected one of {inception_lib.CONVENTIONS}")
        self.mesh = mesh
        self.convention = convention
        self.net = inception_lib.InceptionV3()
        self.variables = parallel.replicate(variables, mesh)
        self._steps: dict[Any, Callable] = {}

    def features(self, variables: Any, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(pool [N, 2048], logits without the output bias [N, 1008]) of ``images`` [N, H, W, C]."""
        pool, _ = self.net.apply(variables, inception_lib.preprocess(images, self.convention))
        return pool, jnp.dot(pool, variables["params"]["fc"]["weight"], precision=_HIGHEST)

    def _compiled(self, key: Any, produce: Callable, capture: bool) -> Callable:
        """jit of ``(inception_variables, *args) -> (mean, m2[, pool, logits])``, images = produce(*args)."""
        if key not in self._steps:
            rep, data = parallel.replicated(self.mesh), parallel.data_sharded(self.mesh)

            def step(variables, num_valid, *args):
                images = jax.lax.with_sharding_constraint(produce(*args), data)
                pool, logits = self.features(variables, images)
                out = batch_moments(pool, jnp.arange(images.shape[0]) < num_valid)
                return (*out, pool, logits) if capture else out

            self._steps[key] = jax.jit(step, out_shardings=(rep, rep, data, data) if capture else (rep, rep))
        return self._steps[key]

    def _add(self, stats: FeatureStats, out: tuple, n: int, capture: bool) -> None:
        out = [host_value(x) for x in out]
        stats.add_batch(n, out[0], out[1])
        if capture:
            stats.features.append(np.asarray(out[2][:n], np.float32))
            stats.logits.append(np.asarray(out[3][:n], np.float32))

    def update(self, stats: FeatureStats, images: np.ndarray, capture: bool = False,
               num_valid: int | None = None) -> None:
        """Add a batch to ``stats``: ``images`` [n, H, W, C] are this process's rows of the global batch
        (all of it in a single-process run). Only the first ``num_valid`` global rows count (default:
        all); a single-process batch not divisible by the devices is padded and the padding left out."""
        images = np.asarray(images)
        n = images.shape[0]
        if num_valid is None:
            num_valid = n * jax.process_count()
        pad = -n % (self.mesh.devices.size // jax.process_count())
        if pad:
            if jax.process_count() > 1:
                raise ValueError(f"{n} rows per process do not split over this process's devices; pad the global "
                                 "batch and pass num_valid")
            images = np.concatenate([images, np.repeat(images[-1:], pad, axis=0)])
        images = parallel.global_batch({"image": images}, self.mesh)["image"]
        step = self._compiled(("images", images.shape, str(images.dtype), capture), lambda x: x, capture)
        self._add(stats, step(self.variables, num_valid, images), num_valid, capture)

    def image_stats(self, batches: Iterable[Any], capture: bool = False) -> FeatureStats:
        stats = FeatureStats(inception_lib.FEATURE_DIM)
        for images in batches:
            self.update(stats, images, capture)
        return stats

    def generator_stats(self, sample: Callable, state: Any, num: int, batch: int, z_dim: int,
                        labels: Callable[[int], np.ndarray] | None = None, seed: int = 0,
                        capture: bool = False) -> FeatureStats:
        """Features of ``ceil(num / batch) * batch`` images ``sample(state, z, c)``, ``z ~ N(0, I)``
        drawn on the devices; ``labels(n)`` gives one-hot labels [n, c_dim] (e.g. drawn from the
        dataset's) for a conditional generator, else None. ``batch``: a multiple of the device count."""
        produce = latent_sampler(self.mesh, sample, batch, z_dim)
        step = self._compiled(("generator", id(sample), batch, z_dim, labels is not None, capture), produce, capture)
        stats = FeatureStats(inception_lib.FEATURE_DIM)
        for rng, c in generator_inputs(self.mesh, num, batch, labels, seed):
            self._add(stats, step(self.variables, batch, state, rng, c), batch, capture)
        return stats
