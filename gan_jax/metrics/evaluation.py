"""One metrics list for training (``config.fid.metric``) and ``gan_jax.evaluate --metrics``, with NVIDIA's
names (``metrics/metric_main.py`` of stylegan2-ada-pytorch): ``fid50k_full``, ``kid50k_full``, ``is50k``,
``pr50k3_full``, ``ppl_zfull``, ``ppl_wfull``, ``ppl_zend``, ``ppl_wend``, ``ppl2_wend``, their legacy
forms (``fid50k``, ``kid50k``, ``pr50k3``) and other counts (``fid500``, ``pr1k3``, ``ppl_wend1k``), and
ProGAN's ``swd16k`` (sliced Wasserstein distance, :mod:`gan_jax.metrics.swd`; no weights needed).

**Reals and x-flips.** As ``metric_main.py``: the ``_full`` metrics read the dataset without x-flips
(``dataset_kwargs.update(max_size=None, xflip=False)``); the legacy ones (``fid50k``, ``kid50k``,
``pr50k3``) read it as training does: with ``data.xflip`` (NVIDIA's ``--mirror``) the dataset is
doubled, all images then all their mirror images (``training/dataset.py``), and the first
``max_real`` of those are taken. SWD reads the first N images without flips (ProGAN's
``util_scripts.evaluate_metrics``).

**Precision/recall** (``prNkK``, K the neighbourhood size, default 3; ``_full``: up to 200,000 reals,
else as many reals as fakes): :func:`gan_jax.metrics.vgg16.pr_features` of real and generated
images (fakes ``clip(x * 127.5 + 128, 0, 255)`` truncated to uint8 as NVIDIA's
``compute_feature_stats_for_generator``), then :func:`gan_jax.metrics.precision_recall.precision_recall`
with NVIDIA's 10000-row blocks. Needs torchvision's VGG16 weights.

**PPL** (``ppl_zfull`` ... ``ppl2_wend``, optional count suffix ``ppl_wend1k``; default 50,000
samples): :func:`gan_jax.metrics.ppl.compute_ppl` with the LPIPS distance network; StyleGAN2
generators only. Needs torchvision's VGG16 and the lpips package's ``vgg.pth``.

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
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import parallel
from gan_jax.cadence import Cadence
from gan_jax.metrics import fid as fid_lib
from gan_jax.metrics import inception as inception_lib
from gan_jax.metrics import ppl as ppl_lib
from gan_jax.metrics import precision_recall as pr_lib
from gan_jax.metrics import swd as swd_lib
from gan_jax.metrics import vgg16 as vgg16_lib
from gan_jax.metrics import weights as weights_lib

_NAME = re.compile(r"(fid|kid|is|swd)(\d+)(k?)(_full)?")
_PR_NAME = re.compile(r"pr(\d+)(k?)(\d*)(_full)?")  # pr50k3_full: 50k fakes, k = 3; pr64: 64, k = 3
_PPL_NAME = re.compile(r"(ppl2?_[zw](?:full|end))(?:(\d+)(k?))?")  # ppl_wend, ppl_wend1k
INCEPTION_KINDS = ("fid", "kid", "is")
KINDS = ("fid", "kid", "is", "swd", "pr", "ppl")
PR_FULL_MAX_REAL = 200_000  # metric_main.pr50k3_full: compute_pr(max_real=200000, ...)
_STATS_VERSION = 1
_EXAMPLES = ("fid50k_full, fid10k, fid500, kid50k_full, is50k, swd16k, pr50k3_full, pr1k3, ppl_zfull, ppl_wfull, "
             "ppl_zend, ppl_wend, ppl2_wend, ppl_wend1k")


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """``kind`` ('fid' | 'kid' | 'is' | 'swd' | 'pr' | 'ppl'), generated count (PPL: samples), the most
    reals (None: all; 0: none), whether the reals include the x-flips of ``data.xflip`` (``mirror``:
    the legacy, non-``_full`` names, as ``metric_main.py``), the neighbourhood size (pr) and the
    official PPL name (ppl)."""

    name: str
    kind: str
    num_gen: int
    max_real: int | None
    mirror: bool = False
    nhood: int = pr_lib.NHOOD_SIZE
    ppl: str = ""


def parse_metric(name: str) -> MetricSpec:
    """A metric name -> :class:`MetricSpec`; an unknown name is a ``ValueError`` listing examples."""
    name = name.strip()
    if (m := _PPL_NAME.fullmatch(name)) is not None:
        base, count, k = m.groups()
        if base not in ppl_lib.PPL_METRICS:
            raise ValueError(f"unknown PPL metric {name!r}; expected one of {sorted(ppl_lib.PPL_METRICS)}, "
                             f"optionally with a sample count ({base}1k, {base}500)")
        num = ppl_lib.PPL_METRICS[base].num_samples if count is None else int(count) * (1000 if k else 1)
        return MetricSpec(name, "ppl", num, 0, ppl=base)
    if (m := _PR_NAME.fullmatch(name)) is not None:
        count, k, nhood, full = m.groups()
        num = int(count) * (1000 if k else 1)
        nhood = int(nhood) if nhood else pr_lib.NHOOD_SIZE
        # metric_main.py: pr50k3_full up to 200k reals without flips; pr50k3 (legacy) 50k reals, flips kept.
        return MetricSpec(name, "pr", num, PR_FULL_MAX_REAL if full else num, mirror=not full, nhood=nhood)
    m = _NAME.fullmatch(name)
    if not m:
        raise ValueError(f"unknown metric {name!r}; expected e.g. {_EXAMPLES}")
    kind, count, k, full = m.groups()
    num = int(count) * (1000 if k else 1)
    if kind == "is":
        if full:
            raise ValueError(f"{name}: IS uses no real images; write is{count}{k}")
        return MetricSpec(name, kind, num, 0)
    if kind == "swd":  # ProGAN: as many reals as generated images, no flips
        if full:
            raise ValueError(f"{name}: SWD compares equal counts of reals and fakes; write swd{count}{k}")
        return MetricSpec(name, kind, num, num)
    # metric_main.py: fid50k_full / kid50k_full use the whole dataset (KID: up to 1M) without flips,
    # fid50k / kid50k (legacy) 50k reals of the dataset as training reads it (flips kept).
    max_real = (1_000_000 if kind == "kid" else None) if full else num
    return MetricSpec(name, kind, num, max_real, mirror=not full)


def parse_metrics(names: str | list[str] | tuple[str, ...]) -> list[str]:
    """A metrics list: ``'fid50k_full,pr50k3_full'`` or a list of names -> the checked names, in order,
    without repeats (a bad name is a ``ValueError``; an empty list too)."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for item in (str(n).strip() for n in items):
        if item and item not in out:
            parse_metric(item)
            out.append(item)
    if not out:
        raise ValueError(f"no metric named in {names!r}; expected e.g. fid50k_full or fid50k_full,pr50k3_full")
    return out


def metric_key(name: str, convention: str) -> str:
    """The logged name, which names the Inception input convention: ``Metrics/fid50k_full/nvidia``
    (metrics without Inception: ``Metrics/swd16k``, ``Metrics/pr50k3_full``, ``Metrics/ppl_wend``)."""
    return f"Metrics/{name}/{convention}" if parse_metric(name).kind in INCEPTION_KINDS else f"Metrics/{name}"


def needs_inception(names: list[str]) -> bool:
    """Whether any of the metrics needs the Inception weights (FID, KID, IS)."""
    return any(parse_metric(n).kind in INCEPTION_KINDS for n in names)


def needs_vgg16(names: list[str]) -> bool:
    """Whether any of the metrics needs torchvision's VGG16 (precision/recall; PPL through LPIPS)."""
    return any(parse_metric(n).kind in ("pr", "ppl") for n in names)


def needs_lpips(names: list[str]) -> bool:
    """Whether any of the metrics needs the LPIPS distance network (PPL)."""
    return any(parse_metric(n).kind == "ppl" for n in names)


def lower_is_better(name: str) -> bool:
    """Whether a smaller value of the metric is better (FID, KID, SWD, PPL; not IS, precision, recall)."""
    return parse_metric(name).kind in ("fid", "kid", "swd", "ppl")


def stylegan2_generator(recipe: Any) -> Callable[[Any], tuple[Any, dict[str, Any]]] | None:
    """``state -> (G, G_ema variables {'params', 'buffers'})`` for PPL when ``recipe`` has a StyleGAN2
    generator (``recipe.G``, G_ema in ``state.ema_params['G']`` and ``state.extra['G_ema_buffers']``),
    else None."""
    from gan_jax.models import stylegan2  # noqa: PLC0415

    G = getattr(recipe, "G", None)
    if not isinstance(G, stylegan2.Generator):
        return None
    return lambda state: (G, {"params": state.ema_params["G"], "buffers": state.extra["G_ema_buffers"]})


class Evaluator:
    """Metrics of a generator against a dataset, with features computed in the compiled graph.

    ``sample(state, z [N, z_dim], c [N, c_dim] | None) -> images [N, H, W, C]`` is the recipe's
    sampler; ``source`` the dataset (``gan_jax.data`` image source). ``inception_variables`` may be
    None when no FID/KID/IS is computed; ``vgg16_variables`` (the full torchvision VGG16) are needed
    by precision/recall, ``lpips_variables`` (:func:`gan_jax.metrics.lpips.load_lpips`) and
    ``generator`` (:func:`stylegan2_generator`) by PPL. ``xflip``: the run's ``data.xflip`` (NVIDIA's
    ``--mirror``), honoured by the legacy metrics' reals (module docstring). ``pr_size``: the VGG16
    input side of precision/recall (default ``vgg16.PR_SIZE``, NVIDIA's 224). ``vgg16_id`` (the VGG16
    file's :func:`weights_identity`): when given, the reals' precision/recall embeddings are cached on
    disk in ``cache_dir`` as the FID statistics are (float16, as NVIDIA keeps them).
    """

    def __init__(self, mesh: jax.sharding.Mesh, source: Any, sample: Callable, z_dim: int, c_dim: int,
                 inception_variables: Any | None, convention: str = "nvidia", batch_size: int = 64,
                 weights_id: str = "", cache_dir: str | None = None, seed: int = 0, xflip: bool = False,
                 vgg16_variables: Any | None = None, lpips_variables: Any | None = None,
                 generator: Callable[[Any], tuple[Any, Any]] | None = None, pr_size: int | None = None,
                 vgg16_id: str = ""):
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
        self.xflip, self.generator, self.vgg16_id = bool(xflip), generator, vgg16_id
        self.pr_size = int(vgg16_lib.PR_SIZE if pr_size is None else pr_size)
        self.vgg16_variables = None if vgg16_variables is None else parallel.replicate(vgg16_variables, mesh)
        self.lpips_variables = None if lpips_variables is None else parallel.replicate(lpips_variables, mesh)
        self._real: dict[tuple[int | None, bool, bool], fid_lib.FeatureStats] = {}
        self._real_pr: dict[tuple[int, bool], np.ndarray] = {}
        self._uint8_steps: dict[Any, Callable] = {}
        self._pr_steps: dict[Any, Callable] = {}

    def _labels(self, n: int, rs: np.random.RandomState) -> np.ndarray:
        return self.source.labels(rs.randint(self.source.num_images, size=n)).astype(np.float32)

    def _cache_path(self, num: int, capture: bool, flips: bool = False) -> str:
        fields = {"source": self.source.name, "resolution": self.source.resolution, "num": num,
                  "convention": self.convention, "capture": capture, "weights": self.weights_id,
                  "version": _STATS_VERSION}
        if flips:  # the key of statistics without flips is the one older versions wrote
            fields["xflip"] = True
        key = json.dumps(fields, sort_keys=True)
        return os.path.join(self.cache_dir, f"{hashlib.md5(key.encode()).hexdigest()}.npz")

    def real_count(self, max_real: int | None, mirror: bool = False) -> tuple[int, bool]:
        """(number of reals a metric reads, whether x-flipped images are among the candidates): the
        dataset has ``2 * num_images`` items when ``mirror`` and ``xflip`` (NVIDIA's ``--mirror``)."""
        flips = bool(mirror and self.xflip)
        total = self.source.num_images * (2 if flips else 1)
        num = total if max_real is None else min(int(max_real), total)
        return num, flips and num > self.source.num_images

    def real_images(self, indices: np.ndarray) -> np.ndarray:
        """Dataset items uint8 [n, H, W, C]; item ``i >= num_images`` is image ``i - num_images``
        mirrored left-right (NVIDIA's ``Dataset.__getitem__`` with ``xflip``: ``image[:, :, ::-1]``)."""
        indices = np.asarray(indices, np.int64)
        n = self.source.num_images
        images = np.array(self.source.images(indices % n))
        flip = indices >= n
        if flip.any():
            images[flip] = images[flip][:, :, ::-1]
        return images

    def real_stats(self, max_real: int | None, capture: bool = False, mirror: bool = False) -> fid_lib.FeatureStats:
        """Statistics of the first ``min(max_real, items)`` dataset items (cached on disk); ``mirror``:
        the items include the x-flips when ``xflip`` (:meth:`real_count`)."""
        num, flips = self.real_count(max_real, mirror)
        for (n, cap, fl), stats in self._real.items():
            if n == num and fl == flips and (cap or not capture):
                return stats
        path = self._cache_path(num, capture, flips)
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
                self.extractor.update(stats, self.real_images(idx), capture, num_valid=valid)
            # Every process writes its copy (a local cache per host; on a shared one the last
            # atomic replace wins, all with the same statistics).
            os.makedirs(self.cache_dir, exist_ok=True)
            tmp = f"{path}.tmp{jax.process_index()}-{os.getpid()}"
            stats.save(tmp)
            os.replace(tmp, path)
        self._real[(num, capture, flips)] = stats
        return stats

    def _label_fn(self) -> Callable[[int], np.ndarray] | None:
        rs = np.random.RandomState(self.seed)
        return (lambda n: self._labels(n, rs)) if self.c_dim else None

    def generated_uint8_chunks(self, state: Any, num: int) -> Iterator[np.ndarray]:
        """``num`` generated images uint8, one batch ``[<= batch_size, H, W, C]`` at a time,
        ``round(x * 127.5 + 127.5)`` saturated as ProGAN's ``Network.run(out_mul=127.5, out_add=127.5,
        out_dtype=np.uint8)``; batch i from ``fold_in(PRNGKey(seed), i)``."""
        key = (id(self.sample), self.batch_size, self.z_dim)
        if key not in self._uint8_steps:
            produce = fid_lib.latent_sampler(self.mesh, self.sample, self.batch_size, self.z_dim)
            self._uint8_steps[key] = jax.jit(
                lambda *args: jnp.clip(jnp.round(produce(*args) * 127.5 + 127.5), 0, 255).astype(jnp.uint8))
        step = self._uint8_steps[key]
        done = 0
        for rng, c in fid_lib.generator_inputs(self.mesh, num, self.batch_size, self._label_fn(), self.seed):
            out = fid_lib.host_value(step(state, rng, c))[:num - done]
            done += out.shape[0]
            yield out

    def generated_uint8(self, state: Any, num: int) -> np.ndarray:
        """``num`` generated images uint8 [num, H, W, C] (:meth:`generated_uint8_chunks` concatenated)."""
        return np.concatenate(list(self.generated_uint8_chunks(state, num)))

    def _check_swd_count(self, num: int) -> int:
        if num > self.source.num_images:
            raise ValueError(f"swd: {num} real images requested but {self.source.name} has {self.source.num_images}; "
                             f"use a smaller count (e.g. swd{self.source.num_images // 1000 or 1}k)")
        return num

    def real_uint8_chunks(self, num: int) -> Iterator[np.ndarray]:
        """The first ``num`` dataset images uint8, ``batch_size`` at a time (no flips: ProGAN's SWD)."""
        self._check_swd_count(num)
        for start in range(0, num, self.batch_size):
            yield np.asarray(self.source.images(np.arange(start, min(start + self.batch_size, num))), np.uint8)

    def real_uint8(self, num: int) -> np.ndarray:
        """The first ``num`` dataset images uint8 [num, H, W, C] (all in memory; SWD reads them in chunks)."""
        return np.concatenate(list(self.real_uint8_chunks(num)))

    def _pr_step(self, key: Any, produce: Callable) -> Callable:
        """jit of ``(vgg16_variables, *args) -> features [batch, 4096]`` (split over the mesh) of the
        uint8 images ``produce(*args)``."""
        if key not in self._pr_steps:
            data = parallel.data_sharded(self.mesh)
            P = jax.sharding.PartitionSpec
            size = self.pr_size
            local = jax.shard_map(lambda v, x: vgg16_lib.pr_features(v, x, size), mesh=self.mesh,
                                  in_specs=(P(), P(parallel.DATA_AXIS)), out_specs=P(parallel.DATA_AXIS),
                                  check_vma=False)

            def step(variables, *args):
                return local(variables, jax.lax.with_sharding_constraint(produce(*args), data))

            self._pr_steps[key] = jax.jit(step, out_shardings=data)
        return self._pr_steps[key]

    def _need(self, what: Any, name: str, kind: str) -> Any:
        if what is None:
            raise ValueError(f"{name}: {kind}; this evaluator was made without them")
        return what

    def _all_processes_have(self, path: str) -> bool:
        found = os.path.exists(path)
        if jax.process_count() > 1:  # each host has its own cache: load only if every process can
            from jax.experimental import multihost_utils

            found = bool(np.all(multihost_utils.process_allgather(np.asarray(found))))
        return found

    def real_pr_features(self, max_real: int | None, mirror: bool) -> np.ndarray:
        """VGG16 embeddings [num, 4096] of the first ``max_real`` dataset items, rounded to float16 as
        NVIDIA's ``compute_pr`` keeps them (``.to(torch.float16)``; ``precision_recall(half=True)``
        rounds so too); kept in memory, and on disk when ``vgg16_id`` names the weights file."""
        variables = self._need(self.vgg16_variables, "precision/recall", "needs the VGG16 weights")
        num, flips = self.real_count(max_real, mirror)
        if (num, flips) in self._real_pr:
            return self._real_pr[(num, flips)]
        path = None
        if self.vgg16_id:
            key = json.dumps({"source": self.source.name, "resolution": self.source.resolution, "num": num,
                              "xflip": flips, "weights": self.vgg16_id, "size": self.pr_size, "kind": "pr_features",
                              "version": _STATS_VERSION}, sort_keys=True)
            path = os.path.join(self.cache_dir, f"pr-{hashlib.md5(key.encode()).hexdigest()}.npy")
        if path and self._all_processes_have(path):
            feats = np.load(path).astype(np.float32)
        else:
            step = self._pr_step(("reals", self.batch_size), lambda x: x)
            per, p = self.batch_size // jax.process_count(), jax.process_index()
            out = []
            for start in range(0, num, self.batch_size):
                idx = np.arange(start, min(start + self.batch_size, num))
                valid = idx.size
                idx = np.concatenate([idx, np.full(self.batch_size - valid, idx[-1])])[p * per:(p + 1) * per]
                images = parallel.global_batch({"image": self.real_images(idx)}, self.mesh)["image"]
                out.append(fid_lib.host_value(step(variables, images))[:valid])
            feats = np.concatenate(out).astype(np.float16).astype(np.float32)
            if path:  # every process writes its copy, atomically (as real_stats)
                os.makedirs(self.cache_dir, exist_ok=True)
                tmp = f"{path}.tmp{jax.process_index()}-{os.getpid()}"
                with open(tmp, "wb") as f:
                    np.save(f, feats.astype(np.float16))
                os.replace(tmp, path)
        self._real_pr[(num, flips)] = feats
        return feats

    def generated_pr_features(self, state: Any, num: int) -> np.ndarray:
        """VGG16 embeddings [num, 4096] of ``num`` generated images, ``clip(x * 127.5 + 128, 0, 255)``
        truncated to uint8 as NVIDIA's ``compute_feature_stats_for_generator``."""
        variables = self._need(self.vgg16_variables, "precision/recall", "needs the VGG16 weights")
        produce = fid_lib.latent_sampler(self.mesh, self.sample, self.batch_size, self.z_dim)
        to_uint8 = lambda *args: jnp.clip(produce(*args) * 127.5 + 128, 0, 255).astype(jnp.uint8)  # noqa: E731
        step = self._pr_step(("generator", id(self.sample), self.batch_size, self.z_dim, self.c_dim > 0), to_uint8)
        out = [fid_lib.host_value(step(variables, state, rng, c))
               for rng, c in fid_lib.generator_inputs(self.mesh, num, self.batch_size, self._label_fn(), self.seed)]
        return np.concatenate(out)[:num]

    def ppl(self, state: Any, spec: MetricSpec) -> float:
        """:func:`gan_jax.metrics.ppl.compute_ppl` with the official settings of ``spec.ppl``, ``spec.num_gen``
        samples, the LPIPS distance network, batches of ``batch_size`` split over the mesh."""
        variables = self._need(self.lpips_variables, spec.name, "PPL needs the LPIPS (VGG16 + vgg.pth) weights")
        if self.generator is None:
            raise ValueError(f"{spec.name}: PPL needs a StyleGAN2 generator (mapping, synthesis and noise_const "
                             "buffers, as NVIDIA's PPLSampler); this run's recipe has none")
        G, G_vars = self.generator(state)
        labels = (self.source.labels(np.arange(self.source.num_images)).astype(np.float32) if self.c_dim else None)
        setting = ppl_lib.PPL_METRICS[spec.ppl]
        return float(ppl_lib.compute_ppl(
            G, G_vars, ppl_lib.lpips_features, variables, space=setting.space, sampling=setting.sampling,
            crop=setting.crop, num_samples=spec.num_gen, epsilon=setting.epsilon, batch_size=self.batch_size,
            noise_group=setting.batch_size, labels=labels, seed=self.seed, devices=list(self.mesh.devices.flat)))

    def generator_stats(self, state: Any, num: int, capture: bool = False) -> fid_lib.FeatureStats:
        if self.extractor is None:
            raise ValueError("FID, KID and IS need the Inception weights; this evaluator was made without them")
        return self.extractor.generator_stats(self.sample, state, num, self.batch_size, self.z_dim,
                                              self._label_fn(), seed=self.seed, capture=capture)

    def compute(self, state: Any, names: list[str]) -> dict[str, float]:
        """``{logged name: value}`` for each metric in ``names`` (IS gives ``.../mean`` and ``.../std``,
        precision/recall ``.../precision`` and ``.../recall``, SWD also each level ``.../<resolution>``);
        generated features are shared by metrics of the same count."""
        specs = [parse_metric(n) for n in names]
        out: dict[str, float] = {}
        gen: dict[int, fid_lib.FeatureStats] = {}
        need_capture = {s.num_gen for s in specs if s.kind in ("kid", "is")}
        ddof = 0 if self.convention == "nvidia" else 1  # NVIDIA's FeatureStats vs pytorch-fid's np.cov
        gen_pr: dict[int, np.ndarray] = {}
        for spec in specs:
            key = metric_key(spec.name, self.convention)
            if spec.kind == "pr":
                if spec.num_gen not in gen_pr:
                    gen_pr[spec.num_gen] = self.generated_pr_features(state, spec.num_gen)
                real = self.real_pr_features(spec.max_real, spec.mirror)
                result = pr_lib.precision_recall(real, gen_pr[spec.num_gen], nhood_size=spec.nhood,
                                                 devices=list(self.mesh.devices.flat))
                out[f"{key}/precision"], out[f"{key}/recall"] = result.precision, result.recall
                continue
            if spec.kind == "ppl":
                out[key] = self.ppl(state, spec)
                continue
            if spec.kind == "swd":
                # Images chunk by chunk (one batch of reals or fakes in memory at a time; each level's
                # descriptors are held, as ProGAN's API holds them): the numbers of sliced_wasserstein.
                n = self._check_swd_count(spec.num_gen)
                shape = (n, self.source.resolution, self.source.resolution, self.source.channels)
                result = swd_lib.sliced_wasserstein_chunks(self.real_uint8_chunks(n),
                                                           self.generated_uint8_chunks(state, n), shape,
                                                           seed=self.seed)
                out[key] = result.mean
                out.update({f"{key}/{r}": d for r, d in zip(result.resolutions, result.levels, strict=True)})
                continue
            if spec.num_gen not in gen:
                gen[spec.num_gen] = self.generator_stats(state, spec.num_gen, capture=spec.num_gen in need_capture)
            g = gen[spec.num_gen]
            if spec.kind == "fid":
                r = self.real_stats(spec.max_real, mirror=spec.mirror)
                out[key] = fid_lib.frechet_distance(*r.mean_cov(ddof), *g.mean_cov(ddof))
            elif spec.kind == "kid":
                r = self.real_stats(spec.max_real, capture=True, mirror=spec.mirror)
                out[key] = fid_lib.kernel_inception_distance(r.all_features(), g.all_features()[:spec.num_gen])
            else:
                mean, std = fid_lib.inception_score(g.all_logits()[:spec.num_gen])
                out[f"{key}/mean"], out[f"{key}/std"] = mean, std
        return out


def weights_identity(path: str) -> str:
    """Name and size of the weights file: part of the real-statistics cache key."""
    return f"{os.path.basename(path)}:{os.path.getsize(path)}"


def vgg16_identity(path: str | None = None) -> str:
    """:func:`weights_identity` of the VGG16 file the search order finds ('' when none is found)."""
    try:
        found = vgg16_lib.find_weights(path)
    except OSError:
        return ""
    return weights_identity(found) if found else ""


@dataclasses.dataclass
class TrainingFID:
    """The metrics of G_ema every ``every`` during training (``config.fid``; NVIDIA's ``train.py
    --metrics``): ``metrics`` those that could be set up, ``metric`` the one that ranks checkpoints
    (``fid.best``, default the first of the list), ``off`` ``{name: why}`` for those that could not
    (a missing weights file: training goes on without them), ``reason`` why all are off."""

    evaluator: Evaluator | None
    metric: str
    every: Cadence
    reason: str = ""
    metrics: tuple[str, ...] = ()
    off: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> str:
        """The logged name of the ranking metric ('' when it is off)."""
        return metric_key(self.metric, self.evaluator.convention) if self.evaluator and self.metric in self.metrics \
            else ""

    def due(self, images_before: int, images_after: int, last: bool) -> bool:
        """At every multiple of ``fid.every_kimg`` images crossed, and at the end of training."""
        return self.evaluator is not None and (self.every.due(images_before, images_after) or last)

    def compute_all(self, state: Any) -> tuple[dict[str, float], float | None, float]:
        """(``{logged name: value}`` of every metric on, the ranking metric's value or None when it is
        off, seconds)."""
        t0 = time.perf_counter()
        values = self.evaluator.compute(state, list(self.metrics))
        # SWD's per-level values go to gan_jax.evaluate's JSON lines; training logs the mean over levels.
        swd = {metric_key(n, "") for n in self.metrics if parse_metric(n).kind == "swd"}
        values = {k: v for k, v in values.items() if k.rsplit("/", 1)[0] not in swd}
        return values, values.get(self.key) if self.key else None, time.perf_counter() - t0

    def compute(self, state: Any) -> tuple[float, float]:
        """(the ranking metric's value, seconds)."""
        _, best, seconds = self.compute_all(state)
        return (best if best is not None else float("nan")), seconds

    def messages(self) -> list[str]:
        """One line per group of metrics that is off (the Inception ones as 'FID is off (...)')."""
        groups: dict[str, list[str]] = {}
        for name, why in self.off.items():
            groups.setdefault(why, []).append(name)
        out = []
        for why, names in groups.items():
            inception = all(parse_metric(n).kind in INCEPTION_KINDS for n in names)
            label = "FID" if inception else ", ".join(names)
            verb = "are" if not inception and len(names) > 1 else "is"
            out.append(f"{label} {verb} off ({why}); training goes on without it")
        return out


def _metric_list(f: Any) -> list[str]:
    """``fid.metric``: one name or a comma-separated list (``'fid50k_full,pr50k3_full'``)."""
    return parse_metrics(f.metric)


def best_metric(config: Any) -> str | None:
    """The metric whose best checkpoint is kept (``fid.best``, default the first of ``fid.metric``),
    when metrics are configured; a metric where larger is better is refused (``ValueError``)."""
    f = config.get("fid") if hasattr(config, "get") else None
    if f is None or float(f.get("every_kimg", 0) or 0) <= 0:
        return None
    names = _metric_list(f)
    best = str(f.get("best", "") or "").strip() or names[0]
    if best not in names:
        raise ValueError(f"fid.best={best!r} is not one of fid.metric's metrics {names}")
    if not lower_is_better(best):
        if f.get("best", ""):
            raise ValueError(f"fid.best={best!r}: checkpoints are ranked by a metric where lower is better "
                             f"(FID, KID, SWD, PPL); IS, precision and recall are not")
        return None  # fid.metric starting with is50k / pr50k3_full: no best checkpoint, unless fid.best names one
    return best


def _find_or_off(load: Callable[[], Any], multihost_what: str) -> tuple[Any, str]:
    """(``load()``, '') or (None, the reason it failed: a missing or unreadable file), agreed by all
    processes (a metric is a computation of all processes: on for all, or off for all)."""
    try:
        value, reason = load(), ""
    except (OSError, ValueError) as err:  # *WeightsMissing are FileNotFoundError, *WeightsError ValueError
        value, reason = None, str(err)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        found = multihost_utils.process_allgather(np.asarray(value is not None))
        if value is not None and not np.all(found):
            value, reason = None, (f"the {multihost_what} weights are missing on process(es) "
                                   f"{np.flatnonzero(~np.asarray(found)).tolist()}")
    return value, reason


def training_fid(config: Any, mesh: jax.sharding.Mesh, source: Any, sample: Callable, z_dim: int,
                 recipe: Any = None) -> TrainingFID:
    """The ``config.fid`` evaluator of a run; a metric whose weights are missing is off, with the reason
    why (training goes on without it). ``recipe``: the run's recipe (PPL needs its StyleGAN2 G)."""
    f = config.get("fid")
    if f is None or float(f.get("every_kimg", 0) or 0) <= 0:
        return TrainingFID(None, "", Cadence(0), "fid.every_kimg is 0")
    names = _metric_list(f)
    best = best_metric(config) or ""
    inception_path, vgg16_path, lin_path = f.get("inception") or None, f.get("vgg16") or None, f.get("lpips_lin") or None
    download = bool(f.get("download", False))
    off: dict[str, str] = {}
    variables, path = None, None
    if needs_inception(names):
        def load_inception() -> Any:
            nonlocal path
            path = weights_lib.find_weights(inception_path)
            if path is None and download:
                path = weights_lib.download_pytorch_fid()
            if path is None:
                raise weights_lib.InceptionWeightsMissing(weights_lib.missing_message(inception_path))
            return weights_lib.read_weights_file(path)

        variables, reason = _find_or_off(load_inception, "Inception")
        if variables is None:
            off.update({n: reason for n in names if parse_metric(n).kind in INCEPTION_KINDS})
    vgg_vars = lpips_vars = None
    vgg_id = ""
    if any(parse_metric(n).kind == "pr" for n in names):
        vgg_vars, reason = _find_or_off(lambda: vgg16_lib.load_vgg16(vgg16_path), "VGG16")
        if vgg_vars is None:
            off.update({n: reason for n in names if parse_metric(n).kind == "pr"})
        else:
            vgg_id = vgg16_identity(vgg16_path)
    if needs_lpips(names):
        from gan_jax.metrics import lpips as lpips_lib  # noqa: PLC0415

        generator = stylegan2_generator(recipe) if recipe is not None else None
        if generator is None:
            lpips_vars, reason = None, ("PPL needs a StyleGAN2 generator (NVIDIA's PPLSampler), this run's recipe is "
                                        f"{config.get('recipe')!r}")
        else:
            lpips_vars, reason = _find_or_off(lambda: lpips_lib.load_lpips(vgg16_path, lin_path), "LPIPS")
        if lpips_vars is None:
            off.update({n: reason for n in names if parse_metric(n).kind == "ppl"})
    on = tuple(n for n in names if n not in off)
    if not on:
        return TrainingFID(None, best, Cadence(0), next(iter(off.values())), (), off)
    evaluator = Evaluator(mesh, source, sample, z_dim, int(config.model.c_dim), variables,
                          convention=f.get("convention", "nvidia"), batch_size=int(f.get("batch_size", 64)),
                          weights_id=weights_identity(path) if path else "", cache_dir=f.get("cache_dir") or None,
                          seed=int(config.seed), xflip=bool(config.data.get("xflip", False)), vgg16_variables=vgg_vars,
                          lpips_variables=lpips_vars,
                          generator=stylegan2_generator(recipe) if recipe is not None else None, vgg16_id=vgg_id)
    return TrainingFID(evaluator, best, Cadence(float(f.every_kimg)), "", on, off)


__all__ = [
    "Evaluator",
    "MetricSpec",
    "TrainingFID",
    "best_metric",
    "lower_is_better",
    "metric_key",
    "needs_inception",
    "needs_lpips",
    "needs_vgg16",
    "parse_metric",
    "parse_metrics",
    "stylegan2_generator",
    "training_fid",
    "vgg16_identity",
]
