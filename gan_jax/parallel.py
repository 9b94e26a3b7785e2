"""One device mesh for everything: a ``data`` axis over all devices of all processes.

Batches are global ``jax.Array``s sharded on ``data``; parameters and optimizer states are
replicated. No ``pmap``.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, auto: bool = False) -> None:
    """``jax.distributed.initialize`` when this run spans several processes.

    Explicit arguments win; ``auto`` (``--multihost``, e.g. on every worker of a TPU slice) calls it
    with JAX's own auto-detection; otherwise it is called when the environment shows a SLURM or
    explicit-coordinator launch. A single-process run does nothing.
    """
    if auto and coordinator is None:
        jax.distributed.initialize()
    elif coordinator is not None:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    elif any(k in os.environ for k in ("TPU_WORKER_HOSTNAMES", "SLURM_NTASKS", "JAX_COORDINATOR_ADDRESS")) and \
            int(os.environ.get("SLURM_NTASKS", "2")) > 1:
        jax.distributed.initialize()


def make_mesh(devices: list[Any] | None = None) -> Mesh:
    """A 1-D mesh with axis ``data`` over ``devices`` (default: every device of every process).

    The devices are ordered by process, so each process's devices hold one contiguous block of
    rows of a global batch: process ``p`` of ``P`` feeds rows ``[p*B/P, (p+1)*B/P)`` (what
    ``gan_jax.data.make_batches`` gives it), and the global batch is the 1-process batch row for row.
    """
    devices = jax.devices() if devices is None else devices
    devices = sorted(devices, key=lambda d: (d.process_index, d.id))
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over ``data``."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place every leaf of ``tree`` on every device of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's rows of the batch -> one global ``jax.Array`` per key, sharded on ``data``.

    ``local[k]`` holds rows ``[p*B/P, (p+1)*B/P)`` of the global batch for process ``p``.
    """
    sharding = data_sharded(mesh)
    n_dev = mesh.devices.size
    out = {}
    for key, value in local.items():
        global_rows = value.shape[0] * jax.process_count()
        if global_rows % n_dev:
            raise ValueError(f"global batch {global_rows} is not divisible by the {n_dev} devices of the mesh; "
                             f"use a batch size that is a multiple of {n_dev}")
        out[key] = jax.make_array_from_process_local_data(sharding, value, (global_rows, *value.shape[1:]))
    return out
