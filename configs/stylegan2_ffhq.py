"""StyleGAN2 on FFHQ 1024x1024 with NVIDIA's ``stylegan2`` settings (Karras et al. 2020, Table 1,
config F; stylegan2-ada-pytorch ``train.py --cfg=stylegan2``, which reaches FID 2.84 at 25M images
on 8 V100s).

    python -m gan_jax.data.prepare --source=~/downloads/ffhq --dest=~/datasets/ffhq1024.zip --resolution=1024
    python -m gan_jax.main --config=configs/stylegan2_ffhq.py --workdir=gs://BUCKET/ffhq

Variants (``--config=configs/stylegan2_ffhq.py:VARIANT``):
  (none)  1024x1024, batch 32 — NVIDIA's reference run takes about 9 days on 8 V100s (ADA README).
  256     ``--cfg=paper256`` settings at 256x256 (batch 64, gamma 1, ema 20, lr 0.0025, fmaps 0.5, mbstd 8).
  tiny    64x64 with few channels: a smoke run of the full recipe (path length, style mixing) in minutes.
"""

from gan_jax.configs import common


def get_config(arg: str | None = None):
    c = common.stylegan2(resolution=1024)
    c.data.source = "~/datasets/ffhq1024.zip"  # made by the prepare command above
    c.data.prepare_command = ("python -m gan_jax.data.prepare --source=~/downloads/ffhq-dataset/images1024x1024 "
                              "--dest=~/datasets/ffhq1024.zip --resolution=1024")
    c.data.xflip = True  # train.py --mirror=1, as NVIDIA's FFHQ runs
    c.model.G.mapping_kwargs = {"num_layers": 8}  # cfg_specs stylegan2 'map'
    c.model.D.epilogue_kwargs = {"mbstd_group_size": 4}  # cfg_specs stylegan2 'mbstd'
    c.train.batch_size = 32  # cfg_specs stylegan2 'mb'
    c.train.batch_gpu = 4  # train.py: mb // ref_gpus (8); one round per device on 8 devices, 8 rounds on 1
    c.train.total_kimg = 25000.0  # cfg_specs stylegan2 'kimg'
    c.train.g_lr = c.train.d_lr = 0.002  # cfg_specs stylegan2 'lrate'
    c.train.r1_gamma = 10.0  # cfg_specs stylegan2 'gamma'
    c.train.ema_kimg = 10.0  # cfg_specs stylegan2 'ema'
    c.train.ema_rampup = None  # cfg_specs stylegan2 'ramp'
    c.train.pl_weight = 2.0  # train.py loss_kwargs
    c.train.style_mixing_prob = 0.9
    if arg == "256":
        c.data.resolution = 256
        c.data.source = "~/datasets/ffhq256.zip"
        c.data.prepare_command = ("python -m gan_jax.data.prepare --source=~/downloads/ffhq-dataset/images1024x1024 "
                                  "--dest=~/datasets/ffhq256.zip --resolution=256")  # box filter, as the paper's FID
        for kw in (c.model.G.synthesis_kwargs, c.model.D):
            kw.channel_base = 16384  # cfg_specs paper256 fmaps 0.5
        c.model.D.epilogue_kwargs = {"mbstd_group_size": 8}
        c.train.batch_size = 64
        c.train.batch_gpu = 8  # train.py: paper256 mb // ref_gpus (8)
        c.train.g_lr = c.train.d_lr = 0.0025
        c.train.r1_gamma = 1.0
        c.train.ema_kimg = 20.0
    elif arg == "tiny":
        c.fid.every_kimg = 0.0  # FID off in smoke runs
        c.data.resolution = 64
        c.data.source = "embedded"
        for kw in (c.model.G.synthesis_kwargs, c.model.D):
            kw.channel_base = 1024
            kw.channel_max = 64
        c.model.G.z_dim = c.model.G.w_dim = 64
        c.model.G.mapping_kwargs = {"num_layers": 2}
        c.train.batch_size = 8
        c.train.batch_gpu = None  # one round: a short compile
        c.train.total_kimg = 1.0
        c.log.sample_every_kimg = 0.5
        c.checkpoint.every_kimg = 0.5
    elif arg:
        raise ValueError(f"unknown variant {arg!r} of configs/stylegan2_ffhq.py; expected '', '256' or 'tiny'")
    return c
