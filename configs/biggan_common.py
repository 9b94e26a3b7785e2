"""Shared defaults of every BigGAN / BigGAN-deep config. Each constant names its source.

Sources: the paper (Brock et al. 2019, arXiv 1809.11096, sec. 3-4 and appendix B/C, Table 2) and
BigGAN-PyTorch (ajbrock/BigGAN-PyTorch 9845943): ``scripts/launch_BigGAN_bs256x8.sh``,
``scripts/launch_BigGAN_deep.sh``, ``utils.prepare_parser`` defaults, ``train_fns.py``.

``model.G`` / ``model.D`` hold the reference's constructor keywords (``G_ch``, ``shared_dim``, ``hier``,
``G_attn``, ...) except that the latent size is ``model.G.z_dim`` (BigGAN.py's ``dim_z``); the
resolution comes from ``data.resolution`` and ``n_classes`` from the dataset's labels.
``train.batch_size`` is the real images one iteration consumes: ``num_D_steps`` D steps of
``train.D_batch_size`` (the paper's batch) each.
"""

from __future__ import annotations

import ml_collections

from gan_jax.configs import common


def biggan(resolution: int = 128, deep: bool = False) -> ml_collections.ConfigDict:
    """BigGAN (or BigGAN-deep) with the paper's training settings at ``resolution``."""
    c = common.run_config("biggan", resolution, seed=0)  # prepare_parser --seed default
    # ImageNet through tensorflow-datasets instead of a zip: --config.data.source=tfds:imagenet2012:train
    # --config.data.tfds_data_dir=DIR (prepared with `tfds build imagenet2012 --file_format=array_record`)
    c.data.xflip = False  # the reference loader applies no flips (utils.get_data_loaders)
    c.data.use_labels = True  # class-conditional

    c.model.c_dim = 0  # filled in from the dataset's labels: the number of classes
    c.model.dtype = "float32"  # compute dtype of the convs; parameters, BN and SN stay float32
    G = c.model.G = ml_collections.ConfigDict()
    D = c.model.D = ml_collections.ConfigDict()
    if deep:  # launch_BigGAN_deep.sh; paper appendix B, Table 8 / 9
        G.G_ch = D.D_ch = 128
        G.z_dim = 128  # --dim_z 128: z fed whole (no chunks)
        G.G_depth = D.D_depth = 2
    else:  # launch_BigGAN_bs256x8.sh; paper appendix B, Table 4 / 5
        G.G_ch = D.D_ch = 96
        G.z_dim = 120  # --dim_z 120: 6 chunks of 20 at 128x128 (hier)
    G.bottom_width = 4  # BigGAN.Generator default
    G.G_attn = D.D_attn = "64"  # --G_attn 64 --D_attn 64: one self-attention block at 64x64
    G.shared_dim = 128  # --shared_dim 128
    G.hier = True  # --hier
    G.G_shared = True  # --G_shared
    G.num_G_SVs = D.num_D_SVs = 1  # prepare_parser defaults
    G.num_G_SV_itrs = D.num_D_SV_itrs = 1
    G.BN_eps = 1e-5  # --BN_eps 1e-5
    G.SN_eps = D.SN_eps = 1e-6  # --SN_eps 1e-6
    G.G_init = D.D_init = "ortho"  # --G_init ortho --D_init ortho (paper sec. 3: orthogonal init)
    G.G_param = "SN"
    D.D_param = "SN"
    G.norm_style = "bn"
    G.mybn = False  # prepare_parser default (F.batch_norm path)
    D.D_wide = True
    D.output_dim = 1

    t = c.train
    t.D_batch_size = 2048  # paper sec. 4 / Table 1: batch 2048 (256 x 8 accumulations in the launch script)
    t.num_D_steps = 2  # paper appendix B: "2 D steps per G step"
    t.batch_size = t.get_ref("D_batch_size") * t.get_ref("num_D_steps")  # real images per iteration
    t.G_batch_size = ml_collections.FieldReference(None, field_type=int)  # None: the D-step batch
    t.num_D_accumulations = 1  # micro-batches per D step (launch script: 8 of 256)
    t.num_G_accumulations = 1
    t.num_shards = ml_collections.FieldReference(None, field_type=int)  # None: one per device
    t.G_lr = 5e-5  # paper appendix B: 5e-5 in G
    t.D_lr = 2e-4  # and 2e-4 in D
    t.G_B1 = t.D_B1 = 0.0  # paper: Adam beta1 = 0
    t.G_B2 = t.D_B2 = 0.999  # paper: beta2 = 0.999
    t.adam_eps = 1e-6  # launch scripts --adam_eps 1e-6
    t.G_ortho = 0.0  # paper sec. 3.1 uses beta = 1e-4; the launch scripts pass --G_ortho 0.0 (off)
    t.D_ortho = 0.0  # prepare_parser default
    t.ema_decay = 0.9999  # prepare_parser --ema_decay default
    t.ema_start = 20000  # launch scripts --ema_start 20000 (iterations)
    t.total_kimg = 150_000 * 2 * 2048 / 1000  # README: 150k iterations; 2 D steps x 2048 real images each

    c.sample = ml_collections.ConfigDict()
    c.sample.truncation = 0.0  # 0 = plain N(0, 1); paper sec. 4.1 truncation threshold otherwise
    c.sample.G_eval_mode = True  # launch scripts --G_eval_mode: sample with stored BN statistics
    c.sample.num_standing_accumulations = 0  # utils.accumulate_standing_stats (--num_standing_accumulations 16)

    c.log = common.log_config(every_steps=50, sample_every_kimg=2000.0)
    c.checkpoint = common.checkpoint_config(every_kimg=4096.0)  # save_every 1000 iterations x 4096 images
    c.fid = common.fid_config(metric="fid50k", every_kimg=8192.0)  # test_every 2000 iterations x 4096 images
    return c


def tiny(c: ml_collections.ConfigDict, num_classes: int = 10) -> ml_collections.ConfigDict:
    """Shrink ``c`` to a seconds-long CPU run on the embedded dataset (tests, smoke runs): 32x32,
    16 channels, attention at 16x16, 2 D-step micro-batches of 8."""
    c.fid.every_kimg = 0.0  # FID off in smoke runs
    c.data.source = "embedded"
    c.data.resolution = 32
    c.data.num_classes = num_classes
    c.data.num_images = 64
    G, D = c.model.G, c.model.D
    G.G_ch = D.D_ch = 4  # 16 channels everywhere in the 32-arch (the fixtures' size)
    G.z_dim = 32  # hier at 32x32: 4 chunks of 8
    G.shared_dim = 16
    G.G_attn = D.D_attn = "16"
    c.train.D_batch_size = 16  # 2 micro-batches of 8: one row per device on 8 devices
    c.train.num_D_accumulations = 2  # exercise the accumulation scan
    c.train.total_kimg = 4 * 32 / 1000  # 4 iterations of 2 D steps x 16
    c.train.ema_start = 2
    c.log.every_steps = 2
    c.log.sample_every_kimg = 1000.0
    c.log.sample_grid = (2, 2)
    c.log.tensorboard = False
    c.checkpoint.every_kimg = 1000.0
    return c


def imagenet(resolution: int, deep: bool, arg: str | None, config_file: str) -> ml_collections.ConfigDict:
    """ImageNet at ``resolution`` from a zip made by ``gan_jax.data.prepare`` (labels from the class
    folders, centre crop); ``arg`` '' or 'tiny' (a seconds-long CPU run on the embedded dataset)."""
    if arg not in (None, "", "tiny"):
        raise ValueError(f"unknown variant {arg!r} of {config_file}; expected '' or 'tiny'")
    c = biggan(resolution=resolution, deep=deep)
    c.data.source = f"~/datasets/imagenet{resolution}.zip"
    c.data.prepare_command = (f"python -m gan_jax.data.prepare --source=~/downloads/imagenet/train "
                              f"--dest=~/datasets/imagenet{resolution}.zip --resolution={resolution} "
                              "--labels=subdirs --transform=center-crop")
    if arg == "tiny":
        tiny(c)
        if deep:
            c.model.G.z_dim = 32  # BigGAN-deep feeds z whole
    return c
