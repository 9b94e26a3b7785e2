"""The embedded demo: StyleGAN2 at 32x32 on the procedural shapes dataset, no download.

    python -m gan_jax.main --workdir=/tmp/demo

Expected time: 4 min 14 s measured on a 2-core CPU (docs/demo.md: 12 kimg at ~70 images/s, an SWD
before and after), during which the G_ema samples in ``/tmp/demo/samples`` (and TensorBoard) go from
noise to one coloured blob per image on a gradient background (SWD 224 -> 113); crisp shapes need
more (docs/demo.md, "What was tried"). Settings follow NVIDIA's ``cifar`` preset (gamma 0.01, no path
length, map 2, ema ramp-up 0.05), with channels reduced for a CPU and G's 'orig' architecture.
"""

from gan_jax.configs import common


def get_config(arg: str | None = None):
    c = common.stylegan2(resolution=32)
    c.data.source = "embedded"
    c.data.num_images = 4096
    c.data.xflip = True
    c.model.G.z_dim = 128  # smaller than train.py's 512: a CPU demo
    c.model.G.w_dim = 128
    c.model.G.mapping_kwargs = {"num_layers": 2}  # cfg_specs cifar 'map'
    c.model.G.synthesis_kwargs.channel_base = 1024  # 32 channels at 32x32, 64 at 16x16, 128 below
    c.model.G.synthesis_kwargs.channel_max = 128
    # NVIDIA's 'orig' G (StyleGAN2 Table 1, config D) rather than 'skip': early in training a skip G
    # draws mostly through its low-resolution outputs (paper Fig. 8), which at this budget stays blobs;
    # 'orig' gave more defined shapes at the same kimg here (docs/demo.md, "What was tried").
    c.model.G.synthesis_kwargs.architecture = "orig"
    c.model.D.channel_base = 1024
    c.model.D.channel_max = 128
    c.train.batch_size = 32
    c.train.total_kimg = 12.0  # about 4 minutes at ~65 img/s on 2 cores (docs/demo.md)
    c.train.max_minutes = 10.0  # a slower machine stops by time, saying so, with the same outputs
    c.train.g_lr = c.train.d_lr = 0.0025  # cfg_specs auto/cifar 'lrate'
    c.train.r1_gamma = 0.01  # cfg_specs cifar 'gamma'
    c.train.pl_weight = 0.0  # train.py: cifar has no path-length regulariser
    c.train.ema_kimg = 10.0  # cfg_specs auto: mb * 10 / 32
    c.train.ema_rampup = 0.05  # cfg_specs auto/cifar 'ramp'
    c.log.every_steps = 25
    c.log.sample_every_kimg = 2.0
    c.checkpoint.every_kimg = 4.0
    # The quality number: ProGAN's SWD of 1,000 G_ema samples against 1,000 reals (needs no weights
    # file), before the first step and at the end; lower is better.
    c.fid.metric = "swd1k"
    c.fid.every_kimg = 12.0
    c.fid.at_start = True
    if arg == "tiny":  # seconds-long smoke runs (tests)
        c.model.G.synthesis_kwargs.channel_base = 128
        c.model.G.synthesis_kwargs.channel_max = 16
        c.model.D.channel_base = 128
        c.model.D.channel_max = 16
        c.model.G.z_dim = c.model.G.w_dim = 16
        c.data.resolution = 16
        c.data.num_images = 64
        c.train.batch_size = 8
        c.train.total_kimg = 0.08
        c.log.every_steps = 2
        c.log.sample_every_kimg = 0.04
        c.log.sample_grid = (2, 2)
        c.checkpoint.every_kimg = 0.04
        c.fid.metric, c.fid.every_kimg, c.fid.batch_size, c.fid.at_start = "fid16", 0.0, 8, False  # off: tests switch it on
    elif arg:
        raise ValueError(f"unknown variant {arg!r} of configs/default.py; expected '' or 'tiny'")
    return c
