"""Shared defaults of every ProGAN config. Each constant names its source.

Sources: tkarras/progressive_growing_of_gans at 2504c3f: ``config.py`` (``G_opt``/``D_opt``, the
presets), ``train.py`` (``train_progressive_gan`` and ``TrainingSchedule`` defaults), ``loss.py``
(``D_wgangp_acgan`` defaults) and ``networks.py`` (``G_paper``/``D_paper`` defaults).
"""

from __future__ import annotations

import ml_collections

from gan_jax.configs import common


def progan(resolution: int = 1024) -> ml_collections.ConfigDict:
    """The ProGAN recipe with the official defaults; configs override what their preset changes."""
    c = common.run_config("progan", resolution, seed=1000)  # config.py random_seed
    c.data.xflip = False  # train_progressive_gan(mirror_augment=False)

    c.model.c_dim = 0  # filled in from the dataset's labels when data.use_labels (G/D label_size)
    c.model.dtype = "float32"  # the fp32 presets
    c.model.G = ml_collections.ConfigDict()  # networks.G_paper keyword arguments
    c.model.G.fmap_base = 8192
    c.model.G.fmap_decay = 1.0
    c.model.G.fmap_max = 512
    c.model.G.latent_size = ml_collections.FieldReference(None, field_type=int)  # None: nf(0) = 512
    c.model.G.normalize_latents = True
    c.model.G.use_wscale = True
    c.model.G.use_pixelnorm = True
    c.model.G.pixelnorm_epsilon = 1e-8
    c.model.G.use_leakyrelu = True
    c.model.G.fused_scale = True
    c.model.D = ml_collections.ConfigDict()  # networks.D_paper keyword arguments
    c.model.D.fmap_base = 8192
    c.model.D.fmap_decay = 1.0
    c.model.D.fmap_max = 512
    c.model.D.use_wscale = True
    c.model.D.mbstd_group_size = 4
    c.model.D.fused_scale = True

    c.train.total_kimg = 15000.0  # train_progressive_gan(total_kimg=15000)
    c.train.num_gpus = 1  # config.num_gpus: the schedule rounds minibatches to a multiple of it
    c.train.num_shards = ml_collections.FieldReference(None, field_type=int)  # mbstd shards; None = devices
    c.train.minibatch_repeats = 4  # train_progressive_gan: schedule evaluated every 4 minibatches
    c.train.D_repeats = 1  # n_critic
    c.train.reset_opt_for_new_lod = True
    c.train.G_smoothing = 0.999  # G_ema beta per step
    c.train.betas = (0.0, 0.99)  # config.py G_opt / D_opt beta1, beta2
    c.train.eps = 1e-8  # config.py G_opt / D_opt epsilon
    c.train.wgan_lambda = 10.0  # loss.D_wgangp_acgan
    c.train.wgan_epsilon = 0.001
    c.train.wgan_target = 1.0
    c.train.cond_weight = 1.0

    c.sched = ml_collections.ConfigDict()  # train.TrainingSchedule keyword arguments (dict keys: str)
    c.sched.lod_initial_resolution = 4
    c.sched.lod_training_kimg = 600.0
    c.sched.lod_transition_kimg = 600.0
    c.sched.minibatch_base = 16
    c.sched.minibatch_dict = {}
    c.sched.max_minibatch_per_gpu = {}
    c.sched.G_lrate_base = 0.001
    c.sched.G_lrate_dict = {}
    c.sched.D_lrate_base = 0.001
    c.sched.D_lrate_dict = {}
    c.sched.tick_kimg_base = 160
    c.sched.tick_kimg_dict = {"4": 160, "8": 140, "16": 120, "32": 100, "64": 80, "128": 60, "256": 40, "512": 20,
                              "1024": 10}

    c.log = common.log_config(every_steps=100, sample_every_kimg=60.0)  # roughly one official tick (tick_kimg 160..10, image_snapshot_ticks 1)
    c.checkpoint = common.checkpoint_config(every_kimg=600.0)  # network_snapshot_ticks 10 x ~60 kimg ticks
    c.fid = common.fid_config(every_kimg=600.0)  # official metrics run on the snapshots (fid50k)
    return c


def tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A minutes-long CPU run growing 4x4 -> 32x32 on the embedded dataset (tests, smoke runs)."""
    c.fid.every_kimg = 0.0  # FID off in smoke runs
    c.data.source = "embedded"
    c.data.resolution = 32
    c.data.num_images = 256
    for net in (c.model.G, c.model.D):
        net.fmap_base, net.fmap_max = 128, 16  # 16, 16, 16, 16, 8 feature maps at 4..32
    c.model.G.latent_size = 16
    c.sched.lod_training_kimg = 0.064  # 4 groups of 16 at 4x4
    c.sched.lod_transition_kimg = 0.192  # fade-ins over several groups (several lod values)
    c.sched.minibatch_base = 8
    c.sched.minibatch_dict = {"4": 16, "8": 16, "16": 8, "32": 8}
    c.train.total_kimg = 0.832  # three growths of 0.256 kimg, then 64 images at 32x32
    c.log.every_steps = 8
    c.log.sample_every_kimg = 0.256
    c.log.sample_grid = (2, 2)
    c.checkpoint.every_kimg = 0.256
    return c
