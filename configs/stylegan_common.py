"""Shared defaults of every StyleGAN (1) config. Each constant names its source.

Sources: NVlabs/stylegan at 1e0d5c7: ``train.py`` (the ``sgan`` block: optimizers, losses, FFHQ
schedule), ``training/training_loop.py`` (``training_loop`` and ``training_schedule`` defaults),
``training/networks_stylegan.py`` (``G_style`` / ``G_mapping`` / ``G_synthesis`` / ``D_basic``
defaults) and ``training/loss.py`` (``D_logistic_simplegp``).
"""

from __future__ import annotations

import ml_collections

from gan_jax.configs import common


def stylegan(resolution: int = 1024) -> ml_collections.ConfigDict:
    """The StyleGAN recipe with the official defaults; configs override what their setup changes."""
    c = common.run_config("stylegan", resolution, seed=1000)  # train.py tf_config 'rnd.np_random_seed': 1000
    c.data.xflip = False  # training_loop(mirror_augment=False)

    c.model.c_dim = 0  # filled in from the dataset's labels when data.use_labels (G/D label_size)
    c.model.dtype = "float32"  # the official configs train in float32
    c.model.G = ml_collections.ConfigDict()  # G_style / G_mapping / G_synthesis keyword arguments
    c.model.G.latent_size = 512  # G_mapping default
    c.model.G.dlatent_size = 512  # G_mapping / G_synthesis default
    c.model.G.mapping_layers = 8  # G_mapping default (paper sec. 2: 8-layer MLP)
    c.model.G.mapping_fmaps = 512
    c.model.G.mapping_lrmul = 0.01  # paper appendix C: 100x lower learning rate in the mapping network
    c.model.G.fmap_base = 8192  # G_synthesis default
    c.model.G.fmap_max = 512
    c.model.G.truncation_psi = 0.7  # G_style default (evaluation only)
    c.model.G.truncation_cutoff = 8
    c.model.G.dlatent_avg_beta = 0.995  # G_style default
    c.model.G.style_mixing_prob = 0.9  # G_style default; paper Table 2 "mixing 90%"
    c.model.G.fused_scale = "auto"  # G_synthesis default: fused up-conv from 128x128 on
    c.model.G.blur_filter = (1, 2, 1)  # G_synthesis default
    c.model.D = ml_collections.ConfigDict()  # D_basic keyword arguments
    c.model.D.fmap_base = 8192  # D_basic default
    c.model.D.fmap_max = 512
    c.model.D.mbstd_group_size = 4  # D_basic default
    c.model.D.mbstd_num_features = 1
    c.model.D.fused_scale = "auto"
    c.model.D.blur_filter = (1, 2, 1)

    c.train.total_kimg = 25000.0  # train.py: train.total_kimg = 25000
    c.train.num_gpus = 8  # train.py '-8gpu' (all paper runs): the schedule rounds minibatches to a multiple
    c.train.num_shards = ml_collections.FieldReference(None, field_type=int)  # mbstd/mixing shards; None = devices
    c.train.minibatch_repeats = 4  # training_loop default
    c.train.D_repeats = 1  # training_loop default
    c.train.reset_opt_for_new_lod = True  # training_loop default
    c.train.G_smoothing_kimg = 10.0  # training_loop default: Gs_beta = 0.5 ** (minibatch / 10000)
    c.train.betas = (0.0, 0.99)  # train.py G_opt / D_opt beta1, beta2
    c.train.eps = 1e-8  # train.py G_opt / D_opt epsilon
    c.train.r1_gamma = 10.0  # train.py D_loss = D_logistic_simplegp(r1_gamma=10.0)

    c.sched = ml_collections.ConfigDict()  # training_schedule keyword arguments (dict keys: str)
    c.sched.lod_initial_resolution = 8  # train.py: sched.lod_initial_resolution = 8
    c.sched.lod_training_kimg = 600.0  # training_schedule default
    c.sched.lod_transition_kimg = 600.0
    c.sched.minibatch_base = 32  # train.py '-8gpu'
    c.sched.minibatch_dict = {"4": 512, "8": 256, "16": 128, "32": 64, "64": 32}  # train.py '-8gpu'
    c.sched.max_minibatch_per_gpu = {}
    c.sched.G_lrate_base = 0.001  # training_schedule default
    c.sched.G_lrate_dict = {"128": 0.0015, "256": 0.002, "512": 0.003, "1024": 0.003}  # train.py
    c.sched.D_lrate_base = 0.001
    c.sched.D_lrate_dict = {"128": 0.0015, "256": 0.002, "512": 0.003, "1024": 0.003}  # EasyDict(G_lrate_dict)
    c.sched.tick_kimg_base = 160  # training_schedule default (StyleGAN's tick dict; logging only)
    c.sched.tick_kimg_dict = {"4": 160, "8": 140, "16": 120, "32": 100, "64": 80, "128": 60, "256": 40, "512": 30,
                              "1024": 20}

    c.log = common.log_config(every_steps=100, sample_every_kimg=60.0)  # about one official tick (image_snapshot_ticks 1)
    c.checkpoint = common.checkpoint_config(every_kimg=600.0)  # network_snapshot_ticks 10 x ~60 kimg ticks
    c.fid = common.fid_config(every_kimg=600.0)  # official metrics run on the snapshots (fid50k)
    return c


def tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A CPU-minutes run growing 4x4 -> 16x16 on the embedded dataset (tests, smoke runs)."""
    c.fid.every_kimg = 0.0  # FID off in smoke runs
    c.data.source = "embedded"
    c.data.resolution = 16
    c.data.num_images = 256
    c.data.prepare_command = ""
    g, d = c.model.G, c.model.D
    g.latent_size = g.dlatent_size = g.mapping_fmaps = 16
    g.mapping_layers = 2
    for net in (g, d):
        net.fmap_base, net.fmap_max = 64, 16  # 16 feature maps at 4..8, 8 at 16
    c.train.num_gpus = 1
    c.sched.lod_initial_resolution = 4
    c.sched.lod_training_kimg = 0.064  # 2 groups of 4 minibatches of 8 per stable level
    c.sched.lod_transition_kimg = 0.096  # fade-ins over 2 groups of 32 images (lod x.667, x.333)
    c.sched.minibatch_base = 8
    c.sched.minibatch_dict = {}
    c.sched.G_lrate_dict = {}
    c.sched.D_lrate_dict = {}
    c.train.total_kimg = 0.384  # 4x4, fade to 8, 8x8, fade to 16, 64 images at 16x16: 48 steps
    c.log.every_steps = 8
    c.log.sample_every_kimg = 0.128
    c.log.sample_grid = (2, 2)
    c.checkpoint.every_kimg = 0.128
    return c
