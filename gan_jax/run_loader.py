"""A run's generator state from its folder or from an NVIDIA pickle converted in memory: what the tools
(``gan_jax.sample``, ``gan_jax.evaluate``) load. No command-line flags here: both commands import it."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["load_run"]


def load_run(workdir: str | None = None, step: int | None = None, network: str | None = None) -> tuple[Any, Any, Any]:
    """``(config, recipe, state)`` on this process's mesh: the checkpoint of run ``workdir`` (its latest,
    or ``step``), or an NVIDIA pickle ``network`` converted in memory (``gan_jax.convert.nvidia_pickle_run``,
    as NVIDIA's ``generate.py --network=FILE.pkl``). Exactly one of ``workdir`` and ``network``."""
    import ml_collections  # noqa: PLC0415

    from gan_jax import checkpoint, parallel, recipes  # noqa: PLC0415
    from gan_jax.compiled import initial_state  # noqa: PLC0415

    if (workdir is None) == (network is None):
        raise ValueError(f"expected one of a run directory (--workdir) and a network pickle (--network); "
                         f"got workdir={workdir!r}, network={network!r}")
    mesh = parallel.make_mesh()
    if network is not None:
        from gan_jax import convert  # noqa: PLC0415

        if step is not None:
            raise ValueError(f"--step={step} names a checkpoint of a run; --network={network} is one network")
        config, state = convert.nvidia_pickle_run(network)
        return config, recipes.build(config, mesh), parallel.replicate(state, mesh)
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), async_save=False)
    if ckpt.latest_step() is None:
        raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, 'checkpoints')}; train with "
                                f"`python -m gan_jax.main --workdir={workdir}` or convert a pickle with "
                                f"`python -m gan_jax.convert --source=PKL --dest={workdir}` first")
    config = ml_collections.ConfigDict(ckpt.saved_config(step))
    recipe = recipes.build(config, mesh)
    state = ckpt.restore(initial_state(recipe, mesh), config.to_dict(), step)
    ckpt.close()
    return config, recipe, state
