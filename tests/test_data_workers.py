"""The grain worker path of gan_jax.data: the same batches with 0, 1 and 2 workers, errors that name the
file and the step, a dead worker that raises instead of hanging, pyspng decoding PIL's pixels, and
the data wait in the run's metrics."""

from __future__ import annotations

import collections
import io
import json
import os
import signal
import time
import zipfile

import numpy as np
import PIL.Image
import pytest

import gan_jax.data as gd
from gan_jax.data import image_folder

STEPS = 5  # steps 0..4: with batch 6 over 10 images x2 (flip) they straddle an epoch boundary


def _photo(rng: np.random.Generator, size: int, channels: int = 3) -> np.ndarray:
    """uint8 [size, size, channels]: smooth gradient plus noise, so PNG compresses it like a photo."""
    ramp = np.linspace(0, 200, size, dtype=np.float32)
    image = ramp[None, :, None] + ramp[:, None, None] / 4 + rng.normal(0, 20, (size, size, channels))
    return np.clip(image, 0, 255).astype(np.uint8)


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(buf, format="png")
    return buf.getvalue()


def _make_zip(path, count: int = 10, size: int = 16, corrupt: int | None = None, labels: bool = True) -> list:
    """A dataset_tool-layout zip of ``count`` PNGs (image ``corrupt`` truncated); returns the pixels [count]."""
    rng = np.random.default_rng(0)
    images = [_photo(rng, size) for _ in range(count)]
    with zipfile.ZipFile(path, "w") as z:
        for i, image in enumerate(images):
            data = _png(image)
            z.writestr(f"00000/img{i:08d}.png", data[:60] if i == corrupt else data)
        z.writestr("dataset.json", json.dumps({"labels": [[f"00000/img{i:08d}.png", i % 3] for i in range(count)]
                                               if labels else None}))
    return images


def _batches(source, workers: int, start: int = 0, steps: int = STEPS) -> list[dict]:
    with gd.make_batches(source, 6, seed=3, xflip=True, start_step=start, workers=workers) as it:
        out = [next(it) for _ in range(steps)]
        assert it.step == start + steps
    return out


def test_zero_one_and_two_workers_give_identical_batches(tmp_path):
    zip_path = tmp_path / "tiny.zip"
    pixels = _make_zip(zip_path)
    for source in (gd.EmbeddedShapes(8, num_images=10, num_classes=3), gd.open_source(str(zip_path), resolution=16)):
        ref = _batches(source, workers=0)
        # The reference is the order function, flips applied: what the workers must reproduce.
        for step, batch in enumerate(ref):
            idx, flip = gd.batch_indices(10, 6, step, 3, True)
            expected = source.images(idx)
            expected[flip] = expected[flip, :, ::-1]
            np.testing.assert_array_equal(batch["image"], expected)
        assert any(gd.batch_indices(10, 6, s, 3, True)[1].any() for s in range(STEPS))
        for workers in (1, 2):
            got = _batches(source, workers)
            for step, (a, b) in enumerate(zip(ref, got)):
                assert b["image"].dtype == np.uint8 and b["label"].dtype == np.float32, step
                np.testing.assert_array_equal(a["image"], b["image"], err_msg=f"{source.name} step {step} workers {workers}")
                np.testing.assert_array_equal(a["label"], b["label"], err_msg=f"{source.name} step {step} workers {workers}")
        # Resume at step 2 with 2 workers: the batches of steps 2.. of the 0-worker run.
        for a, b in zip(ref[2:], _batches(source, 2, start=2, steps=STEPS - 2)):
            np.testing.assert_array_equal(a["image"], b["image"])
    # The zip's pixels are the PNGs' pixels (pyspng or PIL, byte-exact).
    src = gd.open_source(str(zip_path), resolution=16)
    np.testing.assert_array_equal(src.images(np.arange(10)), np.stack(pixels))


def test_process_slices_with_workers_are_the_one_process_batch(tmp_path):
    src = gd.EmbeddedShapes(8, num_images=10)
    whole = _batches(src, workers=0, steps=3)
    parts = []
    for p in range(2):
        with gd.make_batches(src, 6, seed=3, xflip=True, process_index=p, process_count=2, workers=1) as it:
            parts.append([next(it)["image"] for _ in range(3)])
    for step in range(3):
        np.testing.assert_array_equal(np.concatenate([parts[0][step], parts[1][step]]), whole[step]["image"])


def test_corrupt_image_in_a_worker_names_the_file_and_the_step(tmp_path):
    zip_path = tmp_path / "corrupt.zip"
    _make_zip(zip_path, corrupt=7)
    src = gd.open_source(str(zip_path), resolution=16)
    bad_step = next(s for s in range(20) if 7 in gd.batch_indices(10, 6, s, 3, True)[0])
    with gd.make_batches(src, 6, seed=3, xflip=True, workers=2) as it:
        for _ in range(bad_step):
            next(it)
        with pytest.raises(ValueError, match=r"cannot decode image '00000/img00000007.png'") as info:
            next(it)
        assert f"batch of step {bad_step}" in "".join(getattr(info.value, "__notes__", [])), info.value.__notes__
        with pytest.raises(StopIteration):  # closed: the workers are stopped
            next(it)


class _DyingSource(gd.EmbeddedShapes):
    """Kills the worker process that loads image 0 (as the kernel's OOM killer would)."""

    def images(self, indices):
        if 0 in np.asarray(indices) and os.environ.get("GAN_JAX_TEST_PARENT") != str(os.getpid()):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().images(indices)


def test_a_dead_worker_is_a_clear_error_not_a_hang(monkeypatch):
    monkeypatch.setenv("GAN_JAX_TEST_PARENT", str(os.getpid()))  # the test process itself never dies
    src = _DyingSource(8, num_images=10)
    dying_step = next(s for s in range(5) if 0 in gd.batch_indices(10, 6, s, 3, False)[0])
    start = time.monotonic()
    with gd.make_batches(src, 6, seed=3, xflip=False, workers=1) as it:
        for _ in range(dying_step):  # the batches before it were loaded before the worker died
            next(it)
        with pytest.raises(RuntimeError, match=rf"worker process died while loading the batch of step {dying_step} "
                                               r".*data\.workers"):
            next(it)
    assert time.monotonic() - start < 60, "a dead worker must be noticed within seconds"


def test_default_workers_and_bad_values(tmp_path):
    zip_path = tmp_path / "tiny.zip"
    _make_zip(zip_path, count=2)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert gd.default_workers(gd.open_source(str(zip_path)), -1) == min(cores, 16)
    assert gd.default_workers(gd.EmbeddedShapes(8), -1) == 0  # in memory: a thread is enough
    assert gd.default_workers(gd.EmbeddedShapes(8), 3) == 3
    with pytest.raises(ValueError, match=r"data.workers must be -1 .* got -2"):
        gd.default_workers(gd.EmbeddedShapes(8), -2)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA"])
def test_pyspng_and_pil_decode_the_same_pixels(mode):
    rng = np.random.default_rng(1)
    image = PIL.Image.fromarray(_photo(rng, 12, 4), "RGBA").convert(mode)
    buf = io.BytesIO()
    image.save(buf, format="png")
    fast = image_folder.decode_image(buf.getvalue(), "x.png", "test")
    with PIL.Image.open(io.BytesIO(buf.getvalue())) as im:  # the PIL path: what decode_image returned before pyspng
        if mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif mode == "LA":
            im = im.convert("RGB")
        ref = np.asarray(im)
    ref = ref[:, :, None] if ref.ndim == 2 else ref
    assert fast.dtype == np.uint8 and fast.shape == ref.shape, (mode, fast.shape, ref.shape)
    np.testing.assert_array_equal(fast, ref)
    if mode in ("L", "RGB", "RGBA") and image_folder.pyspng is not None:
        assert image_folder._decode_png_fast(buf.getvalue()) is not None  # the fast path was taken


def test_the_run_logs_its_data_wait(tmp_path, capsys):
    """metrics.jsonl and the console line carry the data wait; a slow pipeline warns once, naming data.workers."""
    import jax.numpy as jnp
    from conftest import tiny_config

    from gan_jax import console

    config = tiny_config()
    logger = console.Logger(config, str(tmp_path), images_at=lambda s: 4 * s)
    progress = console.Progress(logger, lambda s: 4 * s, 10, lambda means: "loss", 0)
    for step in range(4):
        time.sleep(0.02)  # the "step"
        progress.step_done(step, {"loss": jnp.float32(1.0)}, jnp.int32(step + 1), None, data_wait=0.02)
    progress.report(4, 4)
    progress.step_done(4, {"loss": jnp.float32(1.0)}, jnp.int32(5), None, data_wait=0.02)
    progress.step_done(5, {"loss": jnp.float32(1.0)}, jnp.int32(6), None, data_wait=0.05)
    progress.report(6, 4)
    logger.close()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2
    first = records[0]
    # 3 timed steps (the first starts the clock) each waited 0.02 s: the mean is 0.02 s, the share ~ half.
    assert first["Timing/data_wait_sec"] == pytest.approx(0.02)
    assert 0.2 < first["Timing/data_wait_frac"] <= 1.0, first
    out = capsys.readouterr().out
    assert " data " in out.splitlines()[0] and "%" in out.splitlines()[0], out
    assert out.count("data.workers") == 1, out  # one warning, not one per report


class _Busy:
    """Stands for the output of a step still being computed (``jax.Array.is_ready`` is False)."""

    def __init__(self, ready: bool):
        self.ready = ready

    def is_ready(self) -> bool:
        return self.ready


def test_a_wait_while_the_devices_still_compute_is_not_counted_as_data_wait():
    """The loop fetches the next batch while the last dispatched step runs: a wait that ends before that
    step does cost the devices nothing and is not counted (so the data warning does not fire for it)."""
    from gan_jax import parallel, train

    class SlowBatches:
        def __next__(self):
            time.sleep(0.05)
            return {"image": np.zeros((8, 4, 4, 3), np.uint8)}  # 8: divisible by the test devices

    inputs = train._StageInput.__new__(train._StageInput)
    inputs.mesh = parallel.make_mesh()
    waits = {}
    for ready in (False, True):
        inputs.ahead, inputs.batches, inputs.next_load, inputs.end = collections.deque(), SlowBatches(), 0, 10
        batch = inputs.next_batch(in_flight=_Busy(ready))
        assert batch["image"].shape == (8, 4, 4, 3)
        waits[ready] = inputs.data_wait
    assert waits[False] == 0.0
    assert waits[True] >= 0.09  # two batches loaded (this step's and the next's), 0.05 s each
