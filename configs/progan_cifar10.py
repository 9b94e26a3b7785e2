"""ProGAN on CIFAR-10 32x32 as the official ``config.py`` trains it when its cifar10 dataset line is
selected (``desc += '-cifar10'``, no mirroring) with the default ``preset-v2-1gpu`` / ``fp32``; the
paper's unsupervised CIFAR-10 inception score (arXiv 1710.10196, Table 3: 8.80) is the target.

    python -m gan_jax.main --config=configs/progan_cifar10.py --workdir=DIR      # tfds cifar10

Growing 4x4 -> 32x32 is 3 growths of 1200 kimg then the rest at 32x32: 12M images in total, about
a day on one V100-class GPU for these small networks (estimate; the official README times only
CelebA-HQ). ``:tiny``: a CPU-minutes run on the embedded dataset with 10 classes (AC-GAN head).
"""

from gan_jax.configs import progan_common


def get_config(arg: str | None = None):
    c = progan_common.progan(resolution=32)
    c.data.source = "tfds:cifar10"
    c.train.num_gpus = 1  # preset-v2-1gpu
    c.train.total_kimg = 12000.0  # preset-v2-1gpu train.total_kimg
    c.sched.minibatch_base = 4  # preset-v2-1gpu
    c.sched.minibatch_dict = {"4": 128, "8": 128, "16": 128, "32": 64, "64": 32, "128": 16, "256": 8, "512": 4}
    c.sched.G_lrate_dict = {"1024": 0.0015}
    c.sched.D_lrate_dict = {"1024": 0.0015}
    c.sched.max_minibatch_per_gpu = {"256": 16, "512": 8, "1024": 4}  # -fp32
    if arg == "tiny":
        c = progan_common.tiny(c)
        c.data.use_labels = True  # exercises the AC-GAN terms
        c.data.num_classes = 10
    elif arg:
        raise ValueError(f"unknown variant {arg!r} of configs/progan_cifar10.py; expected '' or 'tiny'")
    return c
