"""Deterministic, resumable, per-process batches of an ``ImageSource``.

The order is a pure function of ``(num_images, global_batch, seed, xflip)``: epoch ``e`` visits the
index space in the order ``np.random.default_rng([seed, e]).permutation(space)``, the epochs are laid
end to end, and the global batch of step ``s`` is positions ``[s * B, (s + 1) * B)`` of that sequence
(a batch may straddle epochs, or span several when B exceeds the index space). Process ``p`` of ``P``
takes rows ``[p * B/P, (p + 1) * B/P)`` of it. So the batch of step s is the same however often the
run was interrupted and resumed, and the processes' slices together are exactly the 1-process batch.

``xflip`` doubles the index space with mirrored copies, as NVIDIA's ``Dataset(xflip=True)``:
index ``num_images + i`` is image ``i`` flipped left-right.

This module imports only numpy (and the standard library's threading).
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Iterator
from typing import Self

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
        if not images.flags.writeable:
            images = images.copy()
        images[flips] = images[flips][:, :, ::-1]  # NHWC: axis 2 is the width
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


class BatchIterator(Iterator[dict[str, np.ndarray]]):
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

    def __iter__(self) -> BatchIterator:
        return self

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown
            pass


def make_batches(source: ImageSource, global_batch: int, seed: int, xflip: bool, start_step: int = 0,
                 process_index: int = 0, process_count: int = 1, prefetch: int = 2) -> BatchIterator:
    """Batches ``{'image': uint8 [B/P, R, R, C], 'label': float32 [B/P, label_dim]}`` for steps start_step, ...

    The batch of step s is ``load_batch(source, global_batch, s, ...)`` whatever ``start_step`` is, so a
    resumed run continues with exactly the batches it would have seen. Loaded ahead by a daemon thread
    (``prefetch`` batches); ``close()`` the iterator to stop it.
    """
    return BatchIterator(source, global_batch, seed, xflip, start_step, process_index, process_count, prefetch)
