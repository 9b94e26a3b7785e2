"""glibc's allocator set to keep and reuse a CPU step's scratch memory (``GAN_JAX_HOST_MALLOC``).

XLA:CPU allocates each execution's intermediates as one block (614 MB for a bench32 StyleGAN2
step at batch 32) and frees it when the step ends. glibc serves a block that large with ``mmap`` and
returns it with ``munmap``, so every step faults in and zero-fills ~150,000 fresh pages: 6 % of
the machine's CPU time in the kernel on the 2-core machines of docs/performance.md. (PyTorch's
per-operation tensors stay under glibc's 32 MB mmap threshold and are reused from the heap.) One
arena and no ``mmap`` make glibc keep the freed block in its heap and hand it to the next step.

The settings must be made before XLA starts its threads: a thread keeps the arena it first
allocated from. ``import jax`` allocates from no other arena, so ``configure(config)`` may run
after the imports and before the first jax computation (``gan_jax.main`` does), and checks that
no second arena exists yet. ``GAN_JAX_HOST_MALLOC``:

* ``auto`` (the default): on where jax will compute on the CPU (no accelerator plugin installed,
  or ``JAX_PLATFORMS=cpu``) and the config's step is large: a StyleGAN2 round's activation at the
  output resolution of ``LARGE_ACTIVATION_BYTES`` or more (bench32: 16.8 MB; the demo: 0.5 MB).
  On bench32 it made training 4-12 % faster (medians of interleaved runs, docs/performance.md).
* ``1``: on for any config; ``0``: off.

Small networks are why it is not on everywhere: one arena serialises every thread's allocations,
and on the demo's network (many short steps) a step took 40 % longer; compiling takes 20-50 %
longer (bench32: 74 s against 48-52 s); and the process keeps its peak memory. glibc (Linux) only.
Imports only the standard library (``config`` is read as a mapping).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
import os
import tempfile
from typing import Any

__all__ = ["LARGE_ACTIVATION_BYTES", "configure", "output_activation_bytes", "runs_on_cpu"]

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

# Half of bench32's 16.8 MB; a step's scratch block is tens of such activations (614 MB there),
# far above glibc's 32 MB mmap ceiling. The demo's network (0.5 MB) stays below.
LARGE_ACTIVATION_BYTES = 8 * 2**20

_SETTINGS = ("auto", "0", "1")
_applied = False


def _setting() -> str:
    value = os.environ.get("GAN_JAX_HOST_MALLOC", "auto").strip()
    if value not in _SETTINGS:
        raise ValueError(f"GAN_JAX_HOST_MALLOC={value!r}: expected 'auto' (the default: on for large "
                         "networks on a CPU), '1' (on) or '0' (off)")
    return value


def runs_on_cpu() -> bool:
    """Whether jax will compute on the CPU, judged without starting it: ``JAX_PLATFORMS`` names only
    ``cpu``, or no accelerator plugin (``jax_plugins``, libtpu) is installed."""
    platforms = [p.strip() for p in os.environ.get("JAX_PLATFORMS", "").split(",") if p.strip()]
    if platforms:
        return platforms == ["cpu"]
    if importlib.metadata.entry_points(group="jax_plugins") or importlib.util.find_spec("libtpu") is not None:
        return False
    spec = importlib.util.find_spec("jax_plugins")
    paths = [p for p in (spec.submodule_search_locations or ()) if os.path.isdir(p)] if spec else []
    return not any(entry.name != "__pycache__" for path in paths for entry in os.scandir(path))


def output_activation_bytes(config: Any) -> int | None:
    """Bytes of one round's activation at the output resolution, ``[batch_gpu, R, R, C]`` in float32:
    for StyleGAN2 configs ``C = min(channel_base // R, channel_max)`` of G's synthesis network, as
    NVIDIA's ``channels_dict``; None for the other recipes."""
    if config.get("recipe") != "stylegan2":
        return None
    res = int(config["data"]["resolution"])
    syn = config["model"]["G"]["synthesis_kwargs"]
    channels = min(int(syn["channel_base"]) // res, int(syn["channel_max"]))
    batch = int(config["train"].get("batch_gpu") or config["train"]["batch_size"])
    return batch * res * res * channels * 4


def _arenas(libc: ctypes.CDLL) -> int:
    """The number of glibc arenas, read from ``malloc_info``'s XML."""
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    with tempfile.NamedTemporaryFile("r", suffix=".xml") as out:
        stream = libc.fopen(out.name.encode(), b"w")
        if not stream:
            return 0
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        return out.read().count("<heap nr=")


def configure(config: Any = None) -> bool:
    """Keep freed scratch memory for reuse (one arena, no mmap, no trimming) where
    ``GAN_JAX_HOST_MALLOC`` asks for it (``auto``: judged from ``config``); True where applied.

    Call it before the first jax computation. Without ``config``, ``auto`` leaves it off (a later
    call with the config decides). Where a second arena exists already, it is too late: off.
    """
    global _applied
    setting = _setting()
    if _applied or setting == "0":
        return _applied
    if setting == "auto":
        size = None if config is None else output_activation_bytes(config)
        if size is None or size < LARGE_ACTIVATION_BYTES or not runs_on_cpu():
            return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: musl has no mallopt parameters like these)
    except (OSError, AttributeError):
        return False
    if _arenas(libc) > 1:  # some thread allocated already: it would keep mapping its blocks
        return False
    _applied = bool(libc.mallopt(_M_ARENA_MAX, 1) and libc.mallopt(_M_MMAP_MAX, 0)
                    and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied
