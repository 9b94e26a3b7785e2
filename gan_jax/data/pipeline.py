"""Deterministic, resumable, per-process batches of an ``ImageSource``.

The order is a pure function of ``(num_images, global_batch, seed, xflip)``: epoch ``e`` visits the
index space in the order ``np.random.default_rng([seed, e]).permutation(space)``, the epochs are laid
end to end, and the global batch of step ``s`` is positions ``[s * B, (s + 1) * B)`` of that sequence
(a batch may straddle epochs, or span several when B exceeds the index space). Process ``p`` of ``P``
takes rows ``[p * B/P, (p + 1) * B/P)`` of it. So the batch of step s is the same however often the
run was interrupted and resumed, and the processes' slices together are exactly the 1-process batch.

``xflip`` doubles the index space with mirrored copies, as NVIDIA's ``Dataset(xflip=True)``:
index ``num_images + i`` is image ``i`` flipped left-right.

Loading (``make_batches``): with ``workers=0`` one daemon thread of this process calls ``load_batch``
for steps ``start_step, start_step + 1, ...``. With ``workers=W >= 1`` grain does the loading: a
``grain.MapDataset.range(start_step, ...)`` of step numbers, mapped by ``load_batch`` (read, decode,
x-flip: the whole batch of one step in one worker), ``mp_prefetch`` over W spawned worker processes
(worker w computes steps ``start_step + w, + w + W, ...``; grain interleaves them back in step order).
We keep our order function rather than grain's index sampler and iterator checkpoints because
(1) exact resume needs nothing saved but the step: the batch of step s is recomputed from
(dataset, seed, global batch, s), so old checkpoints, a changed ``data.workers`` or a changed number of
hosts resume onto the same images, where grain's iterator state is tied to its worker count and
pipeline; (2) process p of P loads exactly rows ``[p * B/P, (p + 1) * B/P)`` of the one global order,
so the processes' slices together are the 1-process batch (tests/test_data.py, test_multiprocess.py),
where grain's ``ShardByJaxProcess`` shards the record space per process (another order per host
count); (3) the same function serves ``workers=0``, so 0, 1 and 2 workers give identical batches
(tests/test_data_workers.py). Grain then does what it is good at: processes, buffers, error and
dead-worker propagation.

``default_workers``: the host's cores (at most 16) for sources that decode files (folders, zips), 0
for the in-memory ones (embedded, tfds), where a worker would only copy arrays.

This module imports numpy (and the standard library's threading); grain (which imports jax) only
when ``workers >= 1``.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from collections.abc import Iterator
from typing import Any, Self

import numpy as np

from gan_jax.data.base import ImageSource


def _check_batch_args(num_images: int, global_batch: int, step: int, seed: int, process_index: int,
                      process_count: int) -> None:
    if int(num_images) != num_images or num_images < 1:
        raise ValueError(f"num_images must be a positive integer, got {num_images!r}")
    if int(global_batch) != global_batch or global_batch < 1:
        raise ValueError(f"global_batch must be a positive integer, got {global_batch!r}")
    if int(step) != step or step < 0:
        raise ValueError(f"step must be an integer >= 0, got {step!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"the data seed must be an integer >= 0, got {seed!r}")
    if int(process_count) != process_count or process_count < 1:
        raise ValueError(f"process_count must be a positive integer, got {process_count!r}")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index must be in [0, {process_count}) for {process_count} process(es), "
                         f"got {process_index!r}")
    if global_batch % process_count:
        raise ValueError(f"global_batch {global_batch} is not divisible by the {process_count} processes; each process "
                         f"loads global_batch / process_count images. Use a multiple of {process_count}, e.g. "
                         f"{(global_batch // process_count + 1) * process_count}")


@functools.lru_cache(maxsize=8)  # a batch touches one or two epochs; keeps the current ones (read-only)
def _epoch_permutation(seed: int, epoch: int, space: int) -> np.ndarray:
    perm = np.random.default_rng([seed, epoch]).permutation(space)
    perm.setflags(write=False)
    return perm


def batch_indices(num_images: int, global_batch: int, step: int, seed: int, xflip: bool,
                  process_index: int = 0, process_count: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """This process's slice of the global batch of ``step``: (image indices int64 [B/P], flip flags bool [B/P]).

    Image indices are in [0, num_images); ``flip[k]`` says row k is that image mirrored left-right
    (only with ``xflip``). Pure: the same arguments give the same batch.
    """
    _check_batch_args(num_images, global_batch, step, seed, process_index, process_count)
    space = int(num_images) * (2 if xflip else 1)
    local = int(global_batch) // int(process_count)
    first = int(step) * int(global_batch) + int(process_index) * local
    positions = np.arange(first, first + local, dtype=np.int64)
    epochs, offsets = np.divmod(positions, space)
    picked = np.empty(local, np.int64)
    for epoch in np.unique(epochs):
        rows = epochs == epoch
        picked[rows] = _epoch_permutation(int(seed), int(epoch), space)[offsets[rows]]
    flips = picked >= num_images
    return picked - np.where(flips, num_images, 0), flips


def _mirror_rows(images: np.ndarray, rows: np.ndarray) -> None:
    """Flip ``images[rows]`` (uint8 [n, H, W, C], C-contiguous) left-right in place.

    Viewed as one C-byte element per pixel, so the reversed copy moves whole pixels: 3.0-3.6 ms per
    1024x1024x3 image against 5.0-5.4 ms for ``images[k, :, ::-1]`` and 2.3 ms plus 3-6 ms of page
    faults through PIL (measured on this 2-core machine, benchmarks/input_pipeline.py's images).
    """
    pixels = images.view(np.dtype((np.void, images.shape[3])))  # [n, H, W, 1]
    for k in rows:
        pixels[k] = pixels[k, :, ::-1]  # numpy copies through a buffer when source and target overlap


def load_batch(source: ImageSource, global_batch: int, step: int, seed: int, xflip: bool,
               process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
    """``{'image': uint8 [B/P, R, R, C], 'label': float32 [B/P, label_dim]}`` of ``step``, flips applied."""
    indices, flips = batch_indices(source.num_images, global_batch, step, seed, xflip, process_index, process_count)
    images = np.asarray(source.images(indices))
    r, c = source.resolution, source.channels
    if images.shape != (len(indices), r, r, c) or images.dtype != np.uint8:
        raise ValueError(f"source {source.name!r} returned images {images.dtype} {images.shape}, expected uint8 "
                         f"{(len(indices), r, r, c)} ([n, R, R, C]); the source is broken")
    if flips.any():
        if not (images.flags.writeable and images.flags.c_contiguous):
            images = np.ascontiguousarray(images).copy()
        _mirror_rows(images, np.flatnonzero(flips))  # NHWC: axis 2 is the width
    labels = np.asarray(source.labels(indices), np.float32)
    if labels.shape != (len(indices), source.label_dim):
        raise ValueError(f"source {source.name!r} returned labels {labels.shape}, expected "
                         f"{(len(indices), source.label_dim)} ([n, label_dim]); the source is broken")
    return {"image": images, "label": labels}


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def _put(q: queue.Queue, stop: threading.Event, item: object) -> bool:
    """Put ``item`` unless ``stop`` is set first; True when it was put."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _produce(q: queue.Queue, stop: threading.Event, args: tuple, step: int) -> None:
    source, global_batch, seed, xflip, process_index, process_count = args
    try:
        while not stop.is_set():
            batch = load_batch(source, global_batch, step, seed, xflip, process_index, process_count)
            if not _put(q, stop, batch):
                return
            step += 1
    except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
        e.add_note(f"(raised in the gan_jax.data prefetch thread while loading the batch of step {step})")
        _put(q, stop, _Failure(e))


class _Batches(Iterator[dict[str, np.ndarray]]):
    """What both loaders share: an iterator of batches that ``close()`` stops, also as a context
    manager and when collected."""

    def close(self) -> None:
        raise NotImplementedError

    def __iter__(self) -> Self:
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown
            pass


class BatchIterator(_Batches):
    """Batches of steps ``start_step, start_step + 1, ...`` loaded ahead by one daemon thread.

    At most ``prefetch`` batches wait in the queue. An exception in the thread is raised by the next
    ``next()``; ``close()`` (or leaving a ``with`` block) stops the thread. ``step`` is the step of the
    batch the next ``next()`` returns.
    """

    def __init__(self, source: ImageSource, global_batch: int, seed: int, xflip: bool, start_step: int = 0,
                 process_index: int = 0, process_count: int = 1, prefetch: int = 2):
        if int(prefetch) != prefetch or prefetch < 1:
            raise ValueError(f"prefetch must be a positive integer (batches loaded ahead), got {prefetch!r}")
        # Check the arguments here, in the caller's thread, rather than at the first next().
        _check_batch_args(source.num_images, global_batch, start_step, seed, process_index, process_count)
        self._args = (source, global_batch, seed, xflip, process_index, process_count)
        self.step = int(start_step)
        self._queue: queue.Queue = queue.Queue(maxsize=int(prefetch))
        self._stop = threading.Event()
        self._closed = False
        # The thread holds no reference to self, so an iterator that is dropped is collected and closed.
        self._thread = threading.Thread(target=_produce, args=(self._queue, self._stop, self._args, int(start_step)),
                                        daemon=True, name=f"gan_jax.data batches of {source.name}")
        self._thread.start()

    def __next__(self) -> dict[str, np.ndarray]:
        if self._closed:
            raise StopIteration
        while True:
            try:
                item = self._queue.get(timeout=1.0)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self.close()
                    raise RuntimeError("the gan_jax.data prefetch thread stopped without a batch or an error") from None
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        self.step += 1
        return item

    def close(self) -> None:
        """Stop the loading thread and drop the batches it loaded ahead."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10.0)


# The most workers ``-1`` starts. Each is a Python process with grain (and so jax) imported and its own
# batch buffers; 16 decode ~900 images/s at 1024x1024 (58 per core, docs/performance.md "Input
# pipeline"), several times what a 4-chip host needs there, while a TPU VM reports 240 cores.
MAX_DEFAULT_WORKERS = 16


def _host_cores() -> int:
    """The cores this process may run on (its affinity mask, which container limits set), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return int(os.cpu_count() or 1)


def default_workers(source: ImageSource, workers: int = -1) -> int:
    """The worker processes to load ``source`` with: ``workers`` when >= 0, else (``-1``, the config's
    default) one per host core, at most ``MAX_DEFAULT_WORKERS``, for sources that decode files (folders,
    zips) and 0 (a thread) for in-memory ones (embedded, tfds)."""
    if int(workers) != workers or workers < -1:
        raise ValueError(f"data.workers must be -1 (one per host core for image files), 0 (load in the "
                         f"training process) or a positive number of worker processes, got {workers!r}")
    if workers >= 0:
        return int(workers)
    if getattr(source, "kind", None) not in ("folder", "zip"):
        return 0
    return min(_host_cores(), MAX_DEFAULT_WORKERS)


class _LoadStep:
    """``step -> {'step', 'image', 'label'}``: ``load_batch`` of one step, run inside a grain worker.

    An error names the step (``load_batch`` names the file). Picklable: grain sends it to each
    (spawned) worker process.
    """

    def __init__(self, source: ImageSource, global_batch: int, seed: int, xflip: bool, process_index: int,
                 process_count: int):
        self.args = (source, global_batch, seed, xflip, process_index, process_count)

    def __call__(self, step: int) -> dict[str, Any]:
        source, global_batch, seed, xflip, process_index, process_count = self.args
        try:
            batch = load_batch(source, global_batch, int(step), seed, xflip, process_index, process_count)
        except Exception as e:
            e.add_note(f"(raised in a gan_jax.data worker process while loading the batch of step {step})")
            raise
        return {"step": np.int64(step), **batch}


def _worker_init(worker_index: int, worker_count: int) -> None:
    """In each grain worker: keep freed batch buffers in the heap for the next batch (glibc only).

    A batch at 1024x1024 (100 MB at 32 images) is above glibc's largest mmap threshold (32 MiB), so
    every batch was a fresh mmap whose pages the kernel faulted in and zeroed: 1 ms of system time per
    image of 3-4 ms in all (benchmarks/input_pipeline.py at 1024; 58 -> 63 images per CPU-second with
    this). ``M_MMAP_MAX = 0`` serves large blocks from the heap and a high ``M_TRIM_THRESHOLD`` keeps them.
    """
    del worker_index, worker_count
    try:
        import ctypes  # noqa: PLC0415

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
        libc.mallopt(m_mmap_max, 0)
        libc.mallopt(m_trim_threshold, 2**31 - 1)
    except (OSError, AttributeError):  # not glibc: the default allocator, somewhat slower
        pass


_END_STEP = 1 << 50  # "no end": a stage stops asking long before (2^50 steps of even 1 image is 10^15 images)


class GrainBatchIterator(_Batches):
    """Batches of steps ``start_step, start_step + 1, ...`` loaded by ``workers`` grain worker processes.

    Same interface and batches as ``BatchIterator``: ``step`` is the step of the batch the next
    ``next()`` returns; an error of a worker (a corrupt file: it names the file and the step) or a
    worker that died is raised by ``next()`` and closes the iterator; ``close()`` stops the workers.
    Each worker keeps up to ``prefetch`` batches ready.
    """

    def __init__(self, source: ImageSource, global_batch: int, seed: int, xflip: bool, start_step: int,
                 process_index: int, process_count: int, workers: int, prefetch: int = 2):
        import grain  # noqa: PLC0415 - imports jax; only the multi-process path needs it
        from absl import flags  # noqa: PLC0415

        if not flags.FLAGS.is_parsed():  # grain reads its absl flags; a library caller (tests, tools) parsed none
            flags.FLAGS.mark_as_parsed()

        if int(workers) != workers or workers < 1:
            raise ValueError(f"GrainBatchIterator needs workers >= 1 (data.workers), got {workers!r}")
        _check_batch_args(source.num_images, global_batch, start_step, seed, process_index, process_count)
        self.step, self.workers, self._source_name = int(start_step), int(workers), source.name
        dataset = (grain.MapDataset.range(int(start_step), _END_STEP)
                   .map(_LoadStep(source, global_batch, seed, xflip, process_index, process_count))
                   # A worker reads its steps one after another (the batch is the unit of work); no threads.
                   .to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
                   .mp_prefetch(grain.MultiprocessingOptions(num_workers=int(workers),
                                                             per_worker_buffer_size=int(prefetch)),
                                worker_init_fn=_worker_init))
        self._iterator: Any = iter(dataset)
        self._closed = False

    def __next__(self) -> dict[str, np.ndarray]:
        if self._closed:
            raise StopIteration
        try:
            element = next(self._iterator)
        except Exception as e:
            self.close()
            if isinstance(e, RuntimeError) and "terminated unexpectedly" in str(e):
                raise RuntimeError(
                    f"a gan_jax.data worker process died while loading the batch of step {self.step} of "
                    f"{self._source_name} ({e}); a worker killed by the system is often out of memory: lower "
                    f"data.workers (now {self.workers}) or data.prefetch, or set data.workers=0 to load in "
                    "the training process") from e
            raise
        step = int(element.pop("step"))
        if step != self.step:  # the interleaving of the workers' steps is grain's; check it
            self.close()
            raise RuntimeError(f"grain returned the batch of step {step} where step {self.step} was due; "
                               "the worker interleaving is broken")
        self.step += 1
        return {"image": np.asarray(element["image"]), "label": np.asarray(element["label"])}

    def close(self) -> None:
        """Stop the worker processes and drop the batches they loaded ahead."""
        if self._closed:
            return
        self._closed = True
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()


def make_batches(source: ImageSource, global_batch: int, seed: int, xflip: bool, start_step: int = 0,
                 process_index: int = 0, process_count: int = 1, prefetch: int = 2,
                 workers: int = 0) -> BatchIterator | GrainBatchIterator:
    """Batches ``{'image': uint8 [B/P, R, R, C], 'label': float32 [B/P, label_dim]}`` for steps start_step, ...

    The batch of step s is ``load_batch(source, global_batch, s, ...)`` whatever ``start_step`` and
    ``workers`` are, so a resumed run continues with exactly the batches it would have seen.
    ``workers=0``: loaded ahead by a daemon thread of this process (``prefetch`` batches);
    ``workers >= 1``: by that many grain worker processes (``prefetch`` batches each); ``-1``: see
    ``default_workers``. ``close()`` the iterator to stop its thread or workers.
    """
    workers = default_workers(source, workers)
    if workers == 0:
        return BatchIterator(source, global_batch, seed, xflip, start_step, process_index, process_count, prefetch)
    if int(prefetch) != prefetch or prefetch < 1:
        raise ValueError(f"prefetch must be a positive integer (batches loaded ahead), got {prefetch!r}")
    return GrainBatchIterator(source, global_batch, seed, xflip, start_step, process_index, process_count,
                              workers, prefetch)
