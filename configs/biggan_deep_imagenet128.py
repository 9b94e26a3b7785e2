"""BigGAN-deep on ImageNet 128x128, class-conditional (Brock et al. 2019, Table 5, BigGAN-deep at 128x128).

    python -m gan_jax.main --config=configs/biggan_deep_imagenet128.py --workdir=DIR   # ``:tiny`` for a CPU smoke run

The data is ``data.prepare_command``'s zip; the paper's settings come from ``configs/biggan_common.py``.
The paper trained on 128-512 TPU v3 cores for 24-48 h; nothing was measured here (no accelerator).
"""

from gan_jax.configs import biggan_common


def get_config(arg: str | None = None):
    return biggan_common.imagenet(resolution=128, deep=True, arg=arg, config_file="configs/biggan_deep_imagenet128.py")
