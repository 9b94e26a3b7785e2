"""Opt-in (``GAN_JAX_HOST_MALLOC=1``): glibc's allocator set to keep and reuse a CPU step's scratch memory.

XLA:CPU allocates each execution's intermediates as one block (614 MB for a bench32 StyleGAN2
step at batch 32) and frees it when the step ends. glibc serves a block that large with ``mmap`` and
returns it with ``munmap``, so every step faults in and zero-fills ~150,000 fresh pages: 6 % of
the machine's CPU time in the kernel on the 2-core machines of docs/performance.md. (PyTorch's
per-operation tensors stay under glibc's 32 MB mmap threshold and are reused from the heap.) One
arena and no ``mmap`` make glibc keep the freed block in its heap and hand it to the next step.

``configure()`` must run before anything starts threads (before ``import jax``): a thread keeps
the arena it first allocated from. **Off unless ``GAN_JAX_HOST_MALLOC=1``**, because one arena
serialises every thread's allocations: on the small demo network (many small steps) it made a step
40 % slower, and compiling takes ~20 % longer. On bench32 it was 4 % faster (medians of 3
interleaved runs) and 5-8 % side by side (docs/performance.md). glibc (Linux) only; the process keeps its peak memory.
Imports only the standard library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["configure"]

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_applied: bool | None = None


def configure() -> bool:
    """Keep freed scratch memory for reuse (one arena, no mmap, no trimming); True where applied."""
    global _applied
    if _applied is not None:
        return _applied
    wanted = os.environ.get("GAN_JAX_HOST_MALLOC", "0").strip()
    if wanted not in ("0", "1"):
        raise ValueError(f"GAN_JAX_HOST_MALLOC={wanted!r}: expected '0' (off, the default) or '1' (on)")
    _applied = False
    if wanted == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: musl has no mallopt parameters like these)
    except (OSError, AttributeError):
        return False
    _applied = bool(libc.mallopt(_M_ARENA_MAX, 1) and libc.mallopt(_M_MMAP_MAX, 0)
                    and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied
