"""Class-conditional StyleGAN2-ADA on CIFAR-10 32x32 with NVIDIA's tuned ``cifar`` settings
(stylegan2-ada-pytorch ``train.py --cfg=cifar --cond=1``, whose default ``--aug=ada`` with the 'bgc'
pipeline and target 0.6 this config keeps: the ADA paper's CIFAR-10 setting).

    python -m gan_jax.main --config=configs/stylegan2_cifar10.py --workdir=DIR        # tfds cifar10
    python -m gan_jax.main --config=configs/stylegan2_cifar10.py --config.data.source=~/datasets/cifar10.zip ...

NVIDIA's reference run is 100M images on 2 V100s (about 2 weeks). ``:tiny`` is a seconds-long smoke
run on the embedded dataset with 10 classes.
"""

from gan_jax.configs import common


def get_config(arg: str | None = None):
    c = common.stylegan2(resolution=32)
    c.data.source = "tfds:cifar10"  # or NVIDIA's dataset_tool zip of cifar-10-python.tar.gz
    c.data.use_labels = True  # train.py --cond=1
    c.data.xflip = False  # train.py --mirror default
    c.model.G.mapping_kwargs = {"num_layers": 2}  # cfg_specs cifar 'map'
    c.model.D.architecture = "orig"  # train.py: cifar uses D architecture 'orig'
    c.model.D.epilogue_kwargs = {"mbstd_group_size": 32}  # cfg_specs cifar 'mbstd'
    c.train.batch_size = 64  # cfg_specs cifar 'mb'
    c.train.batch_gpu = 32  # train.py: cifar mb // ref_gpus (2)
    c.train.total_kimg = 100000.0  # cfg_specs cifar 'kimg'
    c.train.g_lr = c.train.d_lr = 0.0025  # cfg_specs cifar 'lrate'
    c.train.r1_gamma = 0.01  # cfg_specs cifar 'gamma'
    c.train.ema_kimg = 500.0  # cfg_specs cifar 'ema'
    c.train.ema_rampup = 0.05  # cfg_specs cifar 'ramp'
    c.train.pl_weight = 0.0  # train.py: cifar disables path length
    c.train.style_mixing_prob = 0.0  # train.py: cifar disables style mixing
    if arg == "tiny":
        c.fid.every_kimg = 0.0  # FID off in smoke runs
        c.data.source = "embedded"
        c.data.num_classes = 10
        c.data.num_images = 256
        for kw in (c.model.G.synthesis_kwargs, c.model.D):
            kw.channel_base = 256
            kw.channel_max = 32
        c.model.G.z_dim = c.model.G.w_dim = 32
        c.model.D.epilogue_kwargs = {"mbstd_group_size": 4}
        c.train.batch_size = 8
        c.train.batch_gpu = None  # one round: a short compile
        c.train.total_kimg = 0.08
        c.log.sample_every_kimg = 0.04
        c.checkpoint.every_kimg = 0.04
    elif arg:
        raise ValueError(f"unknown variant {arg!r} of configs/stylegan2_cifar10.py; expected '' or 'tiny'")
    return c
