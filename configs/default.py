"""The embedded demo: StyleGAN2 at 32x32 on the procedural shapes dataset, no download.

    python -m gan_jax.main --workdir=/tmp/demo

Expected time: about 9 minutes on a 2-core CPU (8 min 53 s measured: 200 kimg at 420-470 images/s,
compiles and an SWD before and after included; docs/demo.md); ``train.max_minutes = 9.5`` stops a
slower machine by time, and the same command goes on.
The G_ema samples in ``/tmp/demo/samples`` (and TensorBoard) go from noise to bounded, one-coloured
shapes on muted two-tone gradients close to the reals (SWD 200 -> 31): squares, triangles and discs,
some images with two, most recognisable, several corners still rounded and a few shapes malformed
(docs/demo.md, "What was tried").
Settings follow NVIDIA's ``cifar`` preset (no path length, map 2, ema ramp-up 0.05) with a network
small enough to train 200 kimg on a CPU: batch 16 at 8x its learning rate (G 0.02), half G's
learning rate for D, and gamma 0.1 (10x cifar's).
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
    # A small, fast network (8 channels at 32x32, 16 at 16x16, 32 at 8x8, 64 at 4x4): the time at
    # 32x32 dominates a CPU step, and this one trains ~4x the images of a 32-channel one in the same
    # minutes (docs/demo.md, "What was tried").
    c.model.G.synthesis_kwargs.channel_base = 256
    c.model.G.synthesis_kwargs.channel_max = 128
    # NVIDIA's 'orig' G (StyleGAN2 Table 1, config D) rather than 'skip': early in training a skip G
    # draws mostly through its low-resolution outputs (paper Fig. 8), which at this budget stays blobs.
    c.model.G.synthesis_kwargs.architecture = "orig"
    c.model.D.channel_base = 256
    c.model.D.channel_max = 128
    c.train.batch_size = 32
    c.train.total_kimg = 150.0  # the demo itself: 200 (below)
    c.train.max_minutes = 9.5  # a slower machine stops by time, saying so, with the same outputs
    c.train.g_lr = 0.0025  # cfg_specs auto/cifar 'lrate' (the demo itself takes 8x both, below)
    c.train.d_lr = 0.00125  # half of G's: with equal rates D wins within 20 kimg and G collapses
    c.train.r1_gamma = 1.0  # 100x cifar's 0.01: keeps D from winning over 150 kimg (docs/demo.md)
    c.train.pl_weight = 0.0  # train.py: cifar has no path-length regulariser
    c.train.ema_kimg = 10.0  # cfg_specs auto: mb * 10 / 32
    c.train.ema_rampup = 0.05  # cfg_specs auto/cifar 'ramp'
    c.log.every_steps = 100
    c.log.sample_every_kimg = 10.0
    c.checkpoint.every_kimg = 50.0
    # The quality number: ProGAN's SWD of 1,000 G_ema samples against 1,000 reals (needs no weights
    # file), before the first step and at the end; lower is better.
    c.fid.metric = "swd1k"
    c.fid.every_kimg = 150.0
    c.fid.at_start = True
    if arg == "tiny":  # seconds-long smoke runs (tests); keeps NVIDIA's noise inputs and style mixing
        c.model.G.synthesis_kwargs.channel_base = 128
        c.model.G.synthesis_kwargs.channel_max = 16
        c.model.D.channel_base = 128
        c.model.D.channel_max = 16
        c.model.G.z_dim = c.model.G.w_dim = 16
        c.data.resolution = 16
        c.data.num_images = 64
        c.train.batch_size = 8
        c.train.total_kimg = 0.08
        c.train.max_minutes = 10.0
        c.augment.mode = "noaug"  # the networks' numerics alone; tests/test_ada.py switches ADA on
        c.log.every_steps = 2
        c.log.sample_every_kimg = 0.04
        c.log.sample_grid = (2, 2)
        c.checkpoint.every_kimg = 0.04
        c.fid.metric, c.fid.every_kimg, c.fid.batch_size, c.fid.at_start = "fid16", 0.0, 8, False  # off: tests switch it on
    elif arg not in (None, "", "ada"):
        raise ValueError(f"unknown variant {arg!r} of configs/default.py; expected '', 'ada' or 'tiny'")
    else:
        # Flat shapes need no per-pixel noise, and no style mixing regulariser at this budget.
        c.model.G.synthesis_kwargs.use_noise = False
        c.train.style_mixing_prob = 0.0
        # No augmentation: 150-200 kimg of 4,096 images do not overfit D, ADA's p would move by at
        # most 0.4 (ada_kimg 500), and the pipe costs CPU time.
        c.augment.mode = "noaug"
    if not arg:  # the demo itself (:ada keeps the rates its docs/ada.md curves were made with)
        # Batch 16 at 8x cifar's learning rate (D still at half G's) and a light R1 (gamma 0.1), for
        # 200 kimg: twice the steps per image at about the same images/s; SWD at 200 kimg 25.5 on 1
        # core, against 36 for batch 32, 4x the rate and gamma 0.3 at 150 kimg (docs/demo.md).
        c.train.batch_size = 16
        c.train.g_lr = 0.02
        c.train.d_lr = 0.01
        c.train.r1_gamma = 0.1
        c.train.total_kimg = 200.0
        c.fid.every_kimg = 200.0
    if arg == "ada":
        # Limited data (docs/ada.md): 256 images, NVIDIA's default ADA ('bgc', target 0.6) with p able
        # to move by 1 in 10 kimg (500 upstream) so that it reacts within a CPU run.
        #   python -m gan_jax.main --config=configs/default.py:ada --workdir=/tmp/demo_ada
        c.data.num_images = 256
        c.augment.mode = "ada"
        c.augment.ada_kimg = 10.0
        c.fid.metric = "swd256"  # against the 256 training images
    return c
