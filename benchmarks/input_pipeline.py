"""Images per second of gan_jax's input pipeline alone, beside a single-threaded PIL decode of the same files.

    python benchmarks/input_pipeline.py --source=/tmp/photo256.zip --resolution=256 --make=1000
    python benchmarks/input_pipeline.py --source=/tmp/photo256.zip --resolution=256 --workers=2

``--make=N`` first writes N photo-like PNGs (``--resolution`` square, RGB) to ``--source`` in NVIDIA's
``dataset_tool.py`` layout (``00000/img00000000.png``, PIL's default PNG compression, as dataset_tool
saves), unless that zip already exists. Photo-like: smooth multi-octave value noise per channel
(large shapes and gradients) plus fine texture noise, so zlib compresses it about as much as a photo
(about 2-3 bytes per pixel), not as much as flat colours (see ``make_photo``).

Two figures, measured interleaved ``--repeats`` times (median reported), each for ``--seconds``:

* ``pipeline``: ``gan_jax.data.make_batches`` (the order function, read + decode + x-flip, in
  ``--workers`` grain worker processes; ``-1``: the host's cores) drained by the caller, no device;
* ``pil_single_thread``: the same files read from the zip and decoded with PIL in one thread (what
  the pipeline did before grain and pyspng).

Output: one line per measurement, then ``images_per_sec=...`` lines for both and their ratio.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import zipfile

import numpy as np
import PIL.Image


def make_photo(rng: np.random.Generator, resolution: int) -> np.ndarray:
    """uint8 [R, R, 3]: value noise at octaves 4, 8, ... R/4 px (amplitude halving) plus +-6 grey levels of texture."""
    image = np.zeros((resolution, resolution, 3), np.float32)
    amplitude, cells = 1.0, 4
    while cells <= resolution // 4:
        grid = rng.random((cells, cells, 3), dtype=np.float32)
        layer = PIL.Image.fromarray((grid * 255).astype(np.uint8)).resize((resolution, resolution),
                                                                          PIL.Image.Resampling.BICUBIC)
        image += amplitude * np.asarray(layer, np.float32)
        amplitude, cells = amplitude / 2, cells * 2
    image /= image.max() / 255.0
    image += rng.normal(0.0, 6.0, image.shape).astype(np.float32)  # sensor-like grain: what keeps photos big
    return np.clip(image, 0, 255).astype(np.uint8)


def make_zip(path: str, count: int, resolution: int, seed: int = 0) -> None:
    """``count`` photo-like RGB PNGs at ``resolution`` in NVIDIA's dataset_tool layout, with ``{"labels": null}``."""
    rng = np.random.default_rng(seed)
    tmp = path + ".partial"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
        for i in range(count):
            buf = io.BytesIO()
            PIL.Image.fromarray(make_photo(rng, resolution)).save(buf, format="png")  # dataset_tool: default level
            z.writestr(f"{i // 1000:05d}/img{i:08d}.png", buf.getvalue())
        z.writestr("dataset.json", '{"labels": null}')
    os.replace(tmp, path)


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by the processes ``pids`` (Linux /proc; 0 elsewhere)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14, 15 of proc(5)
        except (OSError, IndexError, ValueError):
            pass
    return total / _TICKS


def pil_single_thread(path: str, seconds: float, batch: int, seed: int) -> tuple[float, float]:
    """(images/s, images per CPU-second) of one thread reading the zip's PNGs (in the pipeline's order)
    and decoding them with PIL."""
    from gan_jax.data import batch_indices  # noqa: PLC0415

    with zipfile.ZipFile(path) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".png"))
        done, step, start, cpu = 0, 0, time.perf_counter(), time.thread_time()
        while time.perf_counter() - start < seconds:
            indices, _ = batch_indices(len(names), batch, step, seed, False)
            for i in indices:
                with PIL.Image.open(io.BytesIO(z.read(names[i]))) as im:
                    np.asarray(im)
            done, step = done + len(indices), step + 1
        return done / (time.perf_counter() - start), done / max(time.thread_time() - cpu, 1e-9)


def pipeline(path: str, resolution: int, seconds: float, batch: int, seed: int, workers: int) -> tuple[float, float]:
    """(images/s, images per CPU-second of this process and its workers) of ``make_batches`` over the zip
    (x-flip on), after its first batch (worker start-up left out)."""
    import multiprocessing  # noqa: PLC0415

    from gan_jax.data import make_batches, open_source  # noqa: PLC0415

    source = open_source(path, resolution=resolution)
    with make_batches(source, batch, seed=seed, xflip=True, workers=workers) as batches:
        next(batches)  # start-up: spawning and importing in the workers
        pids = [os.getpid()] + [p.pid for p in multiprocessing.active_children()]
        done, start, cpu = 0, time.perf_counter(), _cpu_seconds(pids)
        while time.perf_counter() - start < seconds:
            done += len(next(batches)["image"])
        wall, used = time.perf_counter() - start, _cpu_seconds(pids) - cpu
        return done / wall, done / max(used, 1e-9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="a .zip in NVIDIA's dataset_tool layout")
    parser.add_argument("--resolution", type=int, required=True)
    parser.add_argument("--workers", type=int, default=-1, help="grain worker processes; -1: the host's cores")
    parser.add_argument("--make", type=int, default=0, help="first write this many photo-like PNGs to --source")
    parser.add_argument("--batch", type=int, default=32, help="images per batch (StyleGAN2's 256/1024 configs: 32)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measurement")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements of each; the median is reported")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.make and not os.path.exists(args.source):
        t = time.perf_counter()
        make_zip(args.source, args.make, args.resolution, args.seed)
        size = os.path.getsize(args.source)
        print(f"made {args.source}: {args.make} photo-like PNGs {args.resolution}x{args.resolution}, "
              f"{size / 2**20:.1f} MiB ({size / args.make / args.resolution**2:.2f} bytes/pixel) "
              f"in {time.perf_counter() - t:.0f} s", flush=True)
    from gan_jax.data import default_workers, open_source  # noqa: PLC0415

    workers = default_workers(open_source(args.source, resolution=args.resolution), args.workers)
    pil, pipe = [], []
    for r in range(args.repeats):
        pil.append(pil_single_thread(args.source, args.seconds, args.batch, args.seed))
        print(f"repeat {r}: pil_single_thread {pil[-1][0]:.1f} img/s, {pil[-1][1]:.1f} img per CPU-s", flush=True)
        pipe.append(pipeline(args.source, args.resolution, args.seconds, args.batch, args.seed, workers))
        print(f"repeat {r}: pipeline (workers={workers}) {pipe[-1][0]:.1f} img/s, {pipe[-1][1]:.1f} img per CPU-s "
              f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    p, s = (statistics.median(x[0] for x in pipe), statistics.median(x[0] for x in pil))
    p_core, s_core = (statistics.median(x[1] for x in pipe), statistics.median(x[1] for x in pil))
    print(f"resolution={args.resolution} batch={args.batch} workers={workers} cores={os.cpu_count()} "
          f"pyspng={'yes' if _has_pyspng() else 'no'} load_average={os.getloadavg()[0]:.1f}")
    print(f"pipeline images_per_sec={p:.1f} images_per_cpu_sec={p_core:.1f}")
    print(f"pil_single_thread images_per_sec={s:.1f} images_per_cpu_sec={s_core:.1f}")
    # The pipeline's CPU time includes this process (unpickling the batches) and the workers: the
    # per-core rate is what one host core adds when the host's cores are free.
    print(f"speedup={p / s:.2f}x per_core_speedup={p_core / s_core:.2f}x")
    return 0


def _has_pyspng() -> bool:
    try:
        import pyspng  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
