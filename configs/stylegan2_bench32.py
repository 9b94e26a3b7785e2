"""StyleGAN2 32x32 benchmark: the ``bench32`` preset of ``../shared/peers`` (NVIDIA's official
trainer driver), for side-by-side speed measurements only.

    python benchmarks/train_throughput.py --config=configs/stylegan2_bench32.py

bench32 = train.py's ``auto`` at 32x32 on one GPU (batch 32, mbstd 4, map 2, lr 0.0025, ema 10 kimg
with ramp 0.05) with channel_base 4096 / channel_max 256, gamma 0.01 and no path length (as
``cifar``), style mixing 0.9, D resnet; fp32 and no conv clamp on CPU, as the driver there.
"""

from gan_jax.configs import common


def get_config(arg: str | None = None):
    c = common.stylegan2(resolution=32)
    c.model.G.mapping_kwargs = {"num_layers": 2}  # peers PRESETS['bench32'] map
    for kw in (c.model.G.synthesis_kwargs, c.model.D):
        kw.channel_base = 4096  # bench32 cbase
        kw.channel_max = 256  # bench32 cmax
        kw.conv_clamp = None  # driver on CPU: num_fp16_res=0, conv_clamp=None
    c.model.D.epilogue_kwargs = {"mbstd_group_size": 4}
    c.train.batch_size = 32
    c.train.g_lr = c.train.d_lr = 0.0025
    c.train.r1_gamma = 0.01
    c.train.pl_weight = 0.0
    c.train.style_mixing_prob = 0.9
    c.train.ema_kimg = 10.0
    c.train.ema_rampup = 0.05
    c.fid.every_kimg = 0.0  # the driver's run computes no metrics
    if arg:
        raise ValueError(f"configs/stylegan2_bench32.py has no variant {arg!r}")
    return c
