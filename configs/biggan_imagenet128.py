"""Class-conditional BigGAN / BigGAN-deep on ImageNet 128x128 (Brock et al. 2019, Table 2, 128x128 rows:
BigGAN IS 166.5 / FID 7.4 at its best truncation, abstract; BigGAN-deep in the same table).

    python -m gan_jax.data.prepare --source=~/downloads/imagenet/train --dest=~/datasets/imagenet128.zip \\
        --resolution=128 --labels=subdirs --transform=center-crop
    python -m gan_jax.main --config=configs/biggan_imagenet128.py --workdir=DIR          # BigGAN
    python -m gan_jax.main --config=configs/biggan_imagenet128.py:deep --workdir=DIR     # BigGAN-deep

The paper's batch is 2048 (``train.D_batch_size``) with 2 D steps per G step, so an iteration reads
4096 real images. The reference run (BigGAN-PyTorch README) is 150k iterations of batch 2048 on
8 V100s in 15 days (1 D step); expect about as long per 8 A100/H100-class GPUs with this config
(not measured here: no accelerator in this task). Use ``train.num_D_accumulations`` to fit the
batch into memory (the launch script's 8 x 256).

Variants: ``''`` (BigGAN), ``deep`` (BigGAN-deep, launch_BigGAN_deep.sh), ``sagan`` (the SA-GAN /
launch-script optimiser: G 1e-4, D 4e-4, 1 D step), ``tiny`` / ``deep_tiny`` (seconds-long CPU runs
on the embedded dataset with 10 classes, for tests).
"""

from gan_jax.configs import biggan_common

VARIANTS = ("", "deep", "sagan", "tiny", "deep_tiny")


def get_config(arg: str | None = None):
    arg = arg or ""
    if arg not in VARIANTS:
        raise ValueError(f"unknown variant {arg!r} of configs/biggan_imagenet128.py; expected one of {VARIANTS}")
    deep = arg.startswith("deep")
    c = biggan_common.biggan(resolution=128, deep=deep)
    c.data.source = "~/datasets/imagenet128.zip"  # made by the prepare command above
    c.data.prepare_command = ("python -m gan_jax.data.prepare --source=~/downloads/imagenet/train "
                              "--dest=~/datasets/imagenet128.zip --resolution=128 --labels=subdirs --transform=center-crop")
    if arg == "sagan":  # launch_BigGAN_bs256x8.sh / SA-GAN (Zhang et al. 2019): TTUR, 1 D step
        c.train.G_lr, c.train.D_lr = 1e-4, 4e-4
        c.train.num_D_steps = 1
    if arg.endswith("tiny"):
        biggan_common.tiny(c)
        if deep:
            c.model.G.z_dim = 32  # z fed whole
    return c
