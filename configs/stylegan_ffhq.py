"""StyleGAN on FFHQ 1024x1024 with the official settings (NVlabs/stylegan ``train.py``, the default
``sgan-ffhq-8gpu`` block: configuration F of the paper's Table 1, arXiv 1812.04948; FID 4.40 in
Table 1 / the README's pre-trained ``karras2019stylegan-ffhq-1024x1024.pkl``: fid50k 4.4159).

    python -m gan_jax.data.prepare --source=~/ffhq/images1024x1024 --dest=~/datasets/ffhq1024.zip --resolution=1024
    python -m gan_jax.main --config=configs/stylegan_ffhq.py --workdir=DIR

Expected time: the official README gives 6 days 14 hours on 8x Tesla V100 (41 days 4 hours on one)
for these 25M images, growing 8x8 -> 1024x1024 with 600 kimg per stable and per fade-in phase.
``:1gpu`` is the official '-1gpu' minibatch schedule (the README warns that fewer GPUs may not give
identical results). ``:tiny`` is a CPU-minutes run on the embedded dataset growing 4x4 -> 16x16
through two fade-ins (about a minute of training on 2 CPU cores plus compilation).
"""

from gan_jax.configs import stylegan_common


def get_config(arg: str | None = None):
    c = stylegan_common.stylegan(resolution=1024)
    c.data.source = "~/datasets/ffhq1024.zip"
    c.data.prepare_command = ("python -m gan_jax.data.prepare --source=~/ffhq/images1024x1024 "
                              "--dest=~/datasets/ffhq1024.zip --resolution=1024")
    c.data.xflip = True  # train.py: ffhq sets train.mirror_augment = True
    if arg == "1gpu":
        c.train.num_gpus = 1  # train.py '-1gpu'
        c.sched.minibatch_base = 4
        c.sched.minibatch_dict = {"4": 128, "8": 128, "16": 128, "32": 64, "64": 32, "128": 16, "256": 8, "512": 4}
    elif arg == "tiny":
        c = stylegan_common.tiny(c)
    elif arg:
        raise ValueError(f"unknown variant {arg!r} of configs/stylegan_ffhq.py; expected '', '1gpu' or 'tiny'")
    return c
