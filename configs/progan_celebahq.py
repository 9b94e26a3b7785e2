"""ProGAN on CelebA-HQ 1024x1024 with the official ``preset-v2-1gpu`` / ``fp32`` settings
(tkarras/progressive_growing_of_gans ``config.py``: ``celebahq1024_preset_v2_1gpu_fp32``), the run
behind the paper's CelebA-HQ results (arXiv 1710.10196, Fig. 5 and Table 2's SWD; the v2 preset is
the repo's faster-converging replacement of the paper's v1 schedule).

    python -m gan_jax.data.prepare --source=~/celeba-hq-1024 --dest=~/datasets/celebahq1024.zip --resolution=1024
    python -m gan_jax.main --config=configs/progan_celebahq.py --workdir=DIR

Expected time: the official README gives "about 2 weeks on 1xV100" for this preset (12M images,
growing 4x4 -> 1024x1024 with 600 kimg per training and per fade-in phase). ``:tiny`` is a
CPU-minutes run on the embedded dataset growing 4x4 -> 32x32 through three fade-ins.
"""

from gan_jax.configs import progan_common


def get_config(arg: str | None = None):
    c = progan_common.progan(resolution=1024)
    c.data.source = "~/datasets/celebahq1024.zip"
    c.data.prepare_command = ("python -m gan_jax.data.prepare --source=~/celeba-hq-1024 "
                              "--dest=~/datasets/celebahq1024.zip --resolution=1024")
    c.data.xflip = True  # config.py: celebahq sets train.mirror_augment = True
    c.train.num_gpus = 1  # preset-v2-1gpu
    c.train.total_kimg = 12000.0  # preset-v2-1gpu train.total_kimg
    c.sched.minibatch_base = 4  # preset-v2-1gpu
    c.sched.minibatch_dict = {"4": 128, "8": 128, "16": 128, "32": 64, "64": 32, "128": 16, "256": 8, "512": 4}
    c.sched.G_lrate_dict = {"1024": 0.0015}  # preset-v2-1gpu
    c.sched.D_lrate_dict = {"1024": 0.0015}  # EasyDict(sched.G_lrate_dict)
    c.sched.max_minibatch_per_gpu = {"256": 16, "512": 8, "1024": 4}  # -fp32
    if arg == "tiny":
        c = progan_common.tiny(c)
        c.data.prepare_command = ""
    elif arg:
        raise ValueError(f"unknown variant {arg!r} of configs/progan_celebahq.py; expected '' or 'tiny'")
    return c
