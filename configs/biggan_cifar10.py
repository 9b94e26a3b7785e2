"""Class-conditional BigGAN on CIFAR-10 32x32 with BigGAN-PyTorch's ``scripts/launch_cifar_ema.sh``
settings (the reference's 32-arch: 4*G_ch = 256 channels, no attention, N(0, 0.02) init, 4 D steps
of batch 50, lr 2e-4 both, EMA from iteration 1000).

    python -m gan_jax.main --config=configs/biggan_cifar10.py --workdir=DIR     # tfds cifar10

The reference script runs 500 epochs of the 50k training images (125k iterations of 4 D steps x 50
images) on 2 GPUs; this config has no measured time (no accelerator in this task). ``:tiny`` is a seconds-long
CPU smoke run on the embedded dataset with 10 classes.
"""

from gan_jax.configs import biggan_common


def get_config(arg: str | None = None):
    c = biggan_common.biggan(resolution=32)
    c.data.source = "tfds:cifar10"
    G, D, t = c.model.G, c.model.D, c.train
    G.G_ch = D.D_ch = 64  # prepare_parser default G_ch / D_ch 64
    G.z_dim = 128  # prepare_parser default dim_z
    G.shared_dim = 0  # prepare_parser default (0: dim_z)
    G.hier = False  # not passed by launch_cifar_ema.sh
    G.G_attn = D.D_attn = "0"  # --G_attn 0 --D_attn 0
    G.G_init = D.D_init = "N02"  # --G_init N02 --D_init N02
    G.SN_eps = D.SN_eps = 1e-8  # prepare_parser default
    t.D_batch_size = 50  # --batch_size 50
    t.num_D_steps = 4  # --num_D_steps 4
    t.G_lr = t.D_lr = 2e-4  # --G_lr 2e-4 --D_lr 2e-4
    t.adam_eps = 1e-8  # prepare_parser default
    t.ema_start = 1000  # --ema_start 1000
    t.total_kimg = 500 * 50_000 / 1000  # --num_epochs 500 over the 50k training images
    c.log.sample_every_kimg = 200.0
    c.checkpoint.every_kimg = 400.0  # --save_every 2000 iterations x 200 images
    if arg == "tiny":
        biggan_common.tiny(c)
        c.model.G.hier = True
        c.model.G.G_init = c.model.D.D_init = "N02"
        c.train.num_D_steps = 2
    elif arg:
        raise ValueError(f"unknown variant {arg!r} of configs/biggan_cifar10.py; expected '' or 'tiny'")
    return c
