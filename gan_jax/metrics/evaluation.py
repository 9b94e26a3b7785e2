"""NVIDIA's metric names on a generator: ``fid50k_full``, ``kid50k_full``, ``is50k`` (and other counts),
and ProGAN's ``swd16k`` (sliced Wasserstein distance, :mod:`gan_jax.metrics.swd`; no weights needed).

``fid50k_full`` is FID between 50,000 generated images and the whole dataset; ``fid50k`` takes at
most 50,000 reals; ``kid50k_full`` uses up to 1,000,000 reals, as ``stylegan2-ada-pytorch``'s
``metrics/metric_main.py``. Counts may also be plain (``fid500``). Real-image statistics are
computed once per (dataset, resolution, convention, count, Inception weights) and cached under
``~/.cache/gan_jax/fid_stats/``. Generated images come from the recipe's ``sample`` (G_ema) with
``z ~ N(0, I)`` drawn on the devices and, for a conditional generator, labels drawn from the
dataset's, as NVIDIA's ``compute_feature_stats_for_generator``.

``swdNk`` compares the first N dataset images with N generated ones, rounded to uint8 as ProGAN's
``util_scripts.evaluate_metrics`` does (``round(x * 127.5 + 127.5)``, saturated), and logs the mean
over the Laplacian levels (``Metrics/swd16k``) and each level (``Metrics/swd16k/<resolution>``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.cadence import Cadence
from gan_jax.metrics import fid as fid_lib
from gan_jax.metrics import inception as inception_lib
from gan_jax.metrics import swd as swd_lib
from gan_jax.metrics import weights as weights_lib

_NAME = re.compile(r"(fid|kid|is|swd)(\d+)(k?)(_full)?")
INCEPTION_KINDS = ("fid", "kid", "is")
_STATS_VERSION = 1


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """``kind`` ('fid' | 'kid' | 'is' | 'swd'), generated count, and the most reals (None: all)."""

    name: str
    kind: str
    num_gen: int
    max_real: int | None


def parse_metric(name: str) -> MetricSpec:
    m = _NAME.fullmatch(name.strip())
    if not m:
        raise ValueError(f"unknown metric {name!r}; expected e.g. fid50k_full, fid10k, kid50k_full, is50k, fid500, "
                         f"swd16k")
    kind, count, k, full = m.groups()
    num = int(count) * (1000 if k else 1)
    if kind == "is":
        if full:
            raise ValueError(f"{name}: IS uses no real images; write is{count}{k}")
        return MetricSpec(name, kind, num, 0)
    if kind == "swd":  # ProGAN: as many reals as generated images
        if full:
            raise ValueError(f"{name}: SWD compares equal counts of reals and fakes; write swd{count}{k}")
        return MetricSpec(name, kind, num, num)
    # metric_main.py: fid50k_full / kid50k_full use the whole dataset (KID: up to 1M), fid50k 50k reals.
    max_real = (1_000_000 if kind == "kid" else None) if full else num
    return MetricSpec(name, kind, num, max_real)


def metric_key(name: str, convention: str) -> str:
    """The logged name, which names the Inception input convention: ``Metrics/fid50k_full/nvidia``
    (SWD uses no Inception: ``Metrics/swd16k``)."""
    return f"Metrics/{name}" if parse_metric(name).kind == "swd" else f"Metrics/{name}/{convention}"


def needs_inception(names: list[str]) -> bool:
    """Whether any of the metrics needs the Inception weights (FID, KID, IS; not SWD)."""
    return any(parse_metric(n).kind in INCEPTION_KINDS for n in names)


class Evaluator:
    """Metrics of a generator against a dataset, with features computed in the compiled graph.

    ``sample(state, z [N, z_dim], c [N, c_dim] | None) -> images [N, H, W, C]`` is the recipe's
    sampler; ``source`` the dataset (``gan_jax.data`` image source). ``inception_variables`` may be
    None when only SWD is computed.
    """

    def __init__(self, mesh: jax.sharding.Mesh, source: Any, sample: Callable, z_dim: int, c_dim: int,
                 inception_variables: Any | None, convention: str = "nvidia", batch_size: int = 64,
                 weights_id: str = "", cache_dir: str | None = None, seed: int = 0):
        devices = mesh.devices.size
        if batch_size % devices:
            batch_size += devices - batch_size % devices
        self.mesh, self.source, self.sample = mesh, source, sample
        self.z_dim, self.c_dim, self.batch_size = int(z_dim), int(c_dim), batch_size
        self.convention, self.weights_id, self.seed = convention, weights_id, seed
        self.cache_dir = cache_dir or os.path.join(weights_lib.cache_dir(), "fid_stats")
        if convention not in inception_lib.CONVENTIONS:
            raise ValueError(f"unknown FID convention {convention!r}; expected one of {inception_lib.CONVENTIONS}")
        self.extractor = (None if inception_variables is None
                          else fid_lib.FeatureExtractor(inception_variables, mesh, convention))
        self._real: dict[tuple[int | None, bool], fid_lib.FeatureStats] = {}
        self._real_uint8: dict[int, np.ndarray] = {}
        self._uint8_steps: dict[Any, Callable] = {}

    def _labels(self, n: int, rs: np.random.RandomState) -> np.ndarray:
        return self.source.labels(rs.randint(self.source.num_images, size=n)).astype(np.float32)

    def _cache_path(self, num: int, capture: bool) -> str:
        key = json.dumps({"source": self.source.name, "resolution": self.source.resolution, "num": num,
                          "convention": self.convention, "capture": capture, "weights": self.weights_id,
                          "version": _STATS_VERSION}, sort_keys=True)
        return os.path.join(self.cache_dir, f"{hashlib.md5(key.encode()).hexdigest()}.npz")

    def real_stats(self, max_real: int | None, capture: bool = False) -> fid_lib.FeatureStats:
        """Statistics of the first ``min(max_real, num_images)`` dataset images (cached on disk)."""
        num = self.source.num_images if max_real is None else min(int(max_real), self.source.num_images)
        for (n, cap), stats in self._real.items():
            if n == num and (cap or not capture):
                return stats
        path = self._cache_path(num, capture)
        cached = os.path.exists(path)
        if jax.process_count() > 1:  # each host has its own cache: load only if every process can
            from jax.experimental import multihost_utils

            cached = bool(np.all(multihost_utils.process_allgather(np.asarray(cached))))
        if cached:
            stats = fid_lib.FeatureStats.load(path)
        else:
            stats = fid_lib.FeatureStats(inception_lib.FEATURE_DIM)
            per, p = self.batch_size // jax.process_count(), jax.process_index()
            for start in range(0, num, self.batch_size):
                idx = np.arange(start, min(start + self.batch_size, num))
                valid = idx.size
                if jax.process_count() > 1:  # pad the global batch; each process reads its rows
                    idx = np.concatenate([idx, np.full(self.batch_size - valid, idx[-1])])[p * per:(p + 1) * per]
                self.extractor.update(stats, self.source.images(idx), capture, num_valid=valid)
            # Every process writes its copy (a local cache per host; on a shared one the last
            # atomic replace wins, all with the same statistics).
            os.makedirs(self.cache_dir, exist_ok=True)
            tmp = f"{path}.tmp{jax.process_index()}-{os.getpid()}"
            stats.save(tmp)
            os.replace(tmp, path)
        self._real[(num, capture)] = stats
        return stats

    def _label_fn(self) -> Callable[[int], np.ndarray] | None:
        rs = np.random.RandomState(self.seed)
        return (lambda n: self._labels(n, rs)) if self.c_dim else None

    def generated_uint8(self, state: Any, num: int) -> np.ndarray:
        """``num`` generated images uint8 [num, H, W, C], ``round(x * 127.5 + 127.5)`` saturated as
        ProGAN's ``Network.run(out_mul=127.5, out_add=127.5, out_dtype=np.uint8)``."""
        key = (id(self.sample), self.batch_size, self.z_dim)
        if key not in self._uint8_steps:
            produce = fid_lib.latent_sampler(self.mesh, self.sample, self.batch_size, self.z_dim)
            self._uint8_steps[key] = jax.jit(
                lambda *args: jnp.clip(jnp.round(produce(*args) * 127.5 + 127.5), 0, 255).astype(jnp.uint8))
        step = self._uint8_steps[key]
        out = [fid_lib.host_value(step(state, rng, c))
               for rng, c in fid_lib.generator_inputs(self.mesh, num, self.batch_size, self._label_fn(), self.seed)]
        return np.concatenate(out)[:num]

    def real_uint8(self, num: int) -> np.ndarray:
        """The first ``num`` dataset images uint8 [num, H, W, C] (kept for the next evaluation)."""
        if num > self.source.num_images:
            raise ValueError(f"swd: {num} real images requested but {self.source.name} has {self.source.num_images}; "
                             f"use a smaller count (e.g. swd{self.source.num_images // 1000 or 1}k)")
        if num not in self._real_uint8:
            self._real_uint8[num] = np.asarray(self.source.images(np.arange(num)), np.uint8)
        return self._real_uint8[num]

    def generator_stats(self, state: Any, num: int, capture: bool = False) -> fid_lib.FeatureStats:
        if self.extractor is None:
            raise ValueError("FID, KID and IS need the Inception weights; this evaluator was made without them")
        return self.extractor.generator_stats(self.sample, state, num, self.batch_size, self.z_dim,
                                              self._label_fn(), seed=self.seed, capture=capture)

    def compute(self, state: Any, names: list[str]) -> dict[str, float]:
        """``{logged name: value}`` for each metric in ``names`` (IS gives ``.../mean`` and ``.../std``);
        generated features are shared by metrics of the same count."""
        specs = [parse_metric(n) for n in names]
        out: dict[str, float] = {}
        gen: dict[int, fid_lib.FeatureStats] = {}
        need_capture = {s.num_gen for s in specs if s.kind in ("kid", "is")}
        ddof = 0 if self.convention == "nvidia" else 1  # NVIDIA's FeatureStats vs pytorch-fid's np.cov
        for spec in specs:
            key = metric_key(spec.name, self.convention)
            if spec.kind == "swd":
                result = swd_lib.sliced_wasserstein(self.real_uint8(spec.num_gen),
                                                    self.generated_uint8(state, spec.num_gen), seed=self.seed)
                out[key] = result.mean
                out.update({f"{key}/{r}": d for r, d in zip(result.resolutions, result.levels, strict=True)})
                continue
            if spec.num_gen not in gen:
                gen[spec.num_gen] = self.generator_stats(state, spec.num_gen, capture=spec.num_gen in need_capture)
            g = gen[spec.num_gen]
            if spec.kind == "fid":
                r = self.real_stats(spec.max_real)
                out[key] = fid_lib.frechet_distance(*r.mean_cov(ddof), *g.mean_cov(ddof))
            elif spec.kind == "kid":
                r = self.real_stats(spec.max_real, capture=True)
                out[key] = fid_lib.kernel_inception_distance(r.all_features(), g.all_features()[:spec.num_gen])
            else:
                mean, std = fid_lib.inception_score(g.all_logits()[:spec.num_gen])
                out[f"{key}/mean"], out[f"{key}/std"] = mean, std
        return out


def weights_identity(path: str) -> str:
    """Name and size of the weights file: part of the real-statistics cache key."""
    return f"{os.path.basename(path)}:{os.path.getsize(path)}"


@dataclasses.dataclass
class TrainingFID:
    """FID of G_ema every ``every`` during training (``config.fid``), or a reason it is off."""

    evaluator: Evaluator | None
    metric: str
    every: Cadence
    reason: str = ""

    @property
    def key(self) -> str:
        return metric_key(self.metric, self.evaluator.convention) if self.evaluator else ""

    def due(self, images_before: int, images_after: int, last: bool) -> bool:
        """At every multiple of ``fid.every_kimg`` images crossed, and at the end of training."""
        return self.evaluator is not None and (self.every.due(images_before, images_after) or last)

    def compute(self, state: Any) -> tuple[float, float]:
        """(value, seconds)."""
        t0 = time.perf_counter()
        value = self.evaluator.compute(state, [self.metric])[self.key]
        return value, time.perf_counter() - t0


def best_metric(config: Any) -> str | None:
    """The metric whose best checkpoint is kept, when FID is configured."""
    f = config.get("fid") if hasattr(config, "get") else None
    return f.metric if f is not None and float(f.get("every_kimg", 0) or 0) > 0 else None


def training_fid(config: Any, mesh: jax.sharding.Mesh, source: Any, sample: Callable, z_dim: int) -> TrainingFID:
    """The ``config.fid`` evaluator of a run; without weights, off with the reason why (training goes on)."""
    f = config.get("fid")
    if f is None or float(f.get("every_kimg", 0) or 0) <= 0:
        return TrainingFID(None, "", Cadence(0), "fid.every_kimg is 0")
    if not needs_inception([f.metric]):  # SWD: computed from the images alone
        evaluator = Evaluator(mesh, source, sample, z_dim, int(config.model.c_dim), None,
                              convention=f.get("convention", "nvidia"), batch_size=int(f.get("batch_size", 64)),
                              seed=int(config.seed))
        return TrainingFID(evaluator, f.metric, Cadence(float(f.every_kimg)))
    try:
        path = weights_lib.find_weights(f.get("inception") or None)
        if path is None and f.get("download", False):
            path = weights_lib.download_pytorch_fid()
        if path is None:
            raise weights_lib.InceptionWeightsMissing(weights_lib.missing_message(f.get("inception") or None))
        variables = weights_lib.read_weights_file(path)
    except (OSError, ValueError) as err:
        variables, reason = None, str(err)
    if jax.process_count() > 1:  # FID is a computation of all processes: on for all, or off for all
        from jax.experimental import multihost_utils

        found = multihost_utils.process_allgather(np.asarray(variables is not None))
        if variables is not None and not np.all(found):
            variables, reason = None, (f"the Inception weights are missing on process(es) "
                                       f"{np.flatnonzero(~np.asarray(found)).tolist()}")
    if variables is None:
        return TrainingFID(None, f.metric, Cadence(0), reason)
    evaluator = Evaluator(mesh, source, sample, z_dim, int(config.model.c_dim), variables,
                          convention=f.get("convention", "nvidia"), batch_size=int(f.get("batch_size", 64)),
                          weights_id=weights_identity(path), cache_dir=f.get("cache_dir") or None,
                          seed=int(config.seed))
    return TrainingFID(evaluator, f.metric, Cadence(float(f.every_kimg)))


__all__ = [
    "Evaluator",
    "MetricSpec",
    "TrainingFID",
    "best_metric",
    "metric_key",
    "needs_inception",
    "parse_metric",
    "training_fid",
]
