"""The sections every run has (``run_config``: data, log, checkpoint, FID) and the StyleGAN2 defaults.
Each constant names its source. A config file of your own (also outside this repository, e.g. for a
recipe of your own, ``docs/recipes.md``) builds on them: ``from gan_jax.configs import common``.

Sources: NVIDIA stylegan2-ada-pytorch ``train.py`` (``cfg_specs``, ``setup_training_loop_kwargs``)
and ``training/training_loop.py`` / ``training/loss.py`` defaults, commit d72cc7d.
"""

from __future__ import annotations

import ml_collections


def fid_config(metric: str = "fid50k_full", every_kimg: float = 200.0) -> ml_collections.ConfigDict:
    """Metrics of G_ema during training (NVIDIA's train.py --metrics=fid50k_full at every snapshot,
    network_snapshot_ticks 50 x 4 kimg). A metric without its weights file is off, with a message."""
    f = ml_collections.ConfigDict()
    # One name or a comma-separated list, as train.py --metrics (gan_jax/metrics/evaluation.py): metric_main.py
    # names fid50k_full, kid50k_full, is50k, pr50k3_full, ppl_zfull, ppl_wfull, ppl_zend, ppl_wend, ppl2_wend,
    # legacy fid50k / kid50k / pr50k3, other counts (fid500, pr1k3, ppl_wend1k); ProGAN's swd16k.
    f.metric = metric
    f.best = ""  # the metric that ranks checkpoints (lower is better); '' = the first of f.metric
    f.every_kimg = every_kimg  # 0 = off
    f.at_start = False  # also before the first step (NVIDIA's train.py evaluates its tick-0 snapshot)
    f.convention = "nvidia"  # Inception input: 'nvidia' (TF1 resize) or 'pytorch_fid'
    f.inception = ""  # weights file; '' = search (gan_jax/metrics/weights.py)
    f.download = False  # fetch pytorch-fid's weights file (sha256-checked) when none is found
    f.vgg16 = ""  # torchvision's vgg16-397923af.pth (pr*, ppl*); '' = search (gan_jax/metrics/vgg16.py)
    f.lpips_lin = ""  # the lpips package's v0.1 vgg.pth (ppl*); '' = search (gan_jax/metrics/lpips.py)
    f.batch_size = 64  # images per Inception step, over all devices
    f.cache_dir = ""  # real statistics; '' = ~/.cache/gan_jax/fid_stats
    return f


def log_config(every_steps: int, sample_every_kimg: float) -> ml_collections.ConfigDict:
    """Console progress / TensorBoard scalars every ``every_steps``, a G_ema grid every ``sample_every_kimg``."""
    log = ml_collections.ConfigDict()
    log.every_steps = every_steps
    log.sample_every_kimg = sample_every_kimg
    log.sample_grid = (4, 4)  # rows, cols
    log.tensorboard = True
    return log


def checkpoint_config(every_kimg: float, keep: int = 3) -> ml_collections.ConfigDict:
    """A checkpoint every ``every_kimg`` (async); the newest ``keep`` (and the best-FID one) are kept."""
    ckpt = ml_collections.ConfigDict()
    ckpt.every_kimg = every_kimg
    ckpt.keep = keep
    ckpt.async_save = True
    return ckpt


def data_config(resolution: int) -> ml_collections.ConfigDict:
    """Where the images come from (``gan_jax.data.open_source``) and how they are read."""
    d = ml_collections.ConfigDict()
    d.source = "embedded"  # embedded procedural dataset; a folder, a .zip or 'tfds:NAME' otherwise
    d.resolution = resolution
    d.channels = 3  # filled in from the dataset at start-up
    d.xflip = False  # NVIDIA's --mirror
    d.use_labels = False  # NVIDIA's --cond
    d.num_images = 4096  # embedded dataset only
    d.num_classes = 0  # embedded dataset only: > 0 gives it class labels
    d.max_shapes = 2  # embedded dataset only: shapes per image, 1 or 2 (one or two, even odds)
    d.radius = (0.12, 0.28)  # embedded dataset only: the shapes' radius range, in image widths
    d.palette = 0  # embedded dataset only: N > 0 = one of N saturated hues; 0 = any bright colour
    d.prefetch = 2  # batches loaded ahead (per worker process when data.workers > 0)
    # Processes that read, decode and x-flip images (grain workers): -1 = one per host core (at most 16)
    # for a folder or zip, 0 for the in-memory sources (embedded, tfds); 0 = a thread of the training process.
    d.workers = -1
    d.tfds_data_dir = ""  # tfds sources: the folder `tfds build` wrote ('' = tfds's default)
    d.prepare_command = ""  # the exact `gan_jax.data.prepare` command a config's dataset needs
    return d


def run_config(recipe: str, resolution: int, seed: int = 0) -> ml_collections.ConfigDict:
    """A run of ``recipe`` (a family or your own module, ``docs/recipes.md``): ``recipe``, ``seed``,
    ``data``, ``log``, ``checkpoint`` and ``fid`` as the training loop reads them, and empty ``model``
    and ``train`` sections for the recipe's own fields (``train.total_kimg`` ends the run)."""
    c = ml_collections.ConfigDict()
    c.recipe = recipe
    c.seed = seed
    c.data = data_config(resolution)
    c.model = ml_collections.ConfigDict()
    c.model.c_dim = 0  # filled in from the dataset's labels when data.use_labels
    c.train = ml_collections.ConfigDict()
    c.train.max_minutes = 0.0  # stop (saving, sampling and evaluating as at the end) after this wall time; 0 = none
    c.log = log_config(every_steps=50, sample_every_kimg=4.0)
    c.fid = fid_config()
    c.checkpoint = checkpoint_config(every_kimg=200.0)
    return c


def augment_config(mode: str = "ada") -> ml_collections.ConfigDict:
    """What D sees (NVIDIA's train.py --aug, --p, --target, --augpipe; gan_jax/augment.py): by default
    adaptive augmentation (ADA) with the 'bgc' pipeline, p from 0 towards E[sign(D(real))] = 0.6."""
    a = ml_collections.ConfigDict()
    a.mode = mode  # 'ada' (train.py default) | 'fixed' | 'noaug'
    a.p = ml_collections.FieldReference(None, field_type=float)  # 'fixed' only (required there), in [0, 1]
    a.target = ml_collections.FieldReference(None, field_type=float)  # 'ada' only; None = 0.6
    a.pipe = ml_collections.FieldReference(None, field_type=str)  # --augpipe preset; None = 'bgc'
    a.kwargs = ml_collections.ConfigDict()  # further AugmentPipe keywords (multipliers, magnitudes)
    a.ada_interval = 4  # training_loop ada_interval
    a.ada_kimg = ml_collections.FieldReference(None, field_type=float)  # None = 500 (100 when resuming)
    return a


def stylegan2(resolution: int = 32) -> ml_collections.ConfigDict:
    """The StyleGAN2 recipe with NVIDIA's defaults; configs override what their preset changes."""
    c = run_config("stylegan2", resolution, seed=0)  # train.py --seed default

    c.model.dtype = "float32"  # compute dtype of the conv blocks; parameters stay float32
    c.model.fused_modconv = False  # the official training mode runs the per-sample (unfused) form
    c.model.G = ml_collections.ConfigDict()
    c.model.G.z_dim = 512  # train.py hard-codes z_dim = w_dim = 512
    c.model.G.w_dim = 512
    c.model.G.mapping_kwargs = ml_collections.ConfigDict({"num_layers": 8})  # cfg_specs 'map'
    c.model.G.synthesis_kwargs = ml_collections.ConfigDict({
        "channel_base": 32768,  # fmaps * 32768
        "channel_max": 512,
        "num_fp16_res": 0,  # gan_jax chooses reduced precision with model.dtype
        "conv_clamp": 256,  # train.py: conv_clamp 256 with mixed precision
        "architecture": "skip",  # Generator default
    })
    c.model.D = ml_collections.ConfigDict()
    c.model.D.architecture = "resnet"  # Discriminator default
    c.model.D.channel_base = 32768
    c.model.D.channel_max = 512
    c.model.D.num_fp16_res = 0
    c.model.D.conv_clamp = 256
    c.model.D.epilogue_kwargs = ml_collections.ConfigDict({"mbstd_group_size": 4})  # cfg_specs 'mbstd'
    c.model.D.block_kwargs = ml_collections.ConfigDict({"freeze_layers": 0})  # train.py --freezed (Freeze-D)

    c.train.batch_size = 32  # global batch over all devices; cfg_specs 'mb'
    c.train.num_shards = ml_collections.FieldReference(None, field_type=int)  # mbstd/mixing shards; None = one per device
    # NVIDIA's --batch-gpu: each device runs its share of the batch in rounds of batch_gpu images (mbstd
    # groups and style-mixing draws within a round), summing the rounds' gradients; None = one round.
    c.train.batch_gpu = ml_collections.FieldReference(None, field_type=int)
    c.train.total_kimg = 25000.0  # train.py --kimg default
    c.train.g_lr = 0.002  # cfg_specs 'lrate'
    c.train.d_lr = 0.002
    c.train.betas = (0.0, 0.99)  # train.py G_opt_kwargs / D_opt_kwargs
    c.train.eps = 1e-8
    c.train.g_reg_interval = 4  # training_loop default G_reg_interval
    c.train.d_reg_interval = 16  # training_loop default D_reg_interval
    c.train.r1_gamma = 10.0  # cfg_specs 'gamma'
    c.train.pl_weight = 2.0  # StyleGAN2Loss as train.py builds it
    c.train.pl_batch_shrink = 2
    c.train.pl_decay = 0.01
    c.train.style_mixing_prob = 0.9
    c.train.ema_kimg = 10.0  # cfg_specs 'ema'
    c.train.ema_rampup = ml_collections.FieldReference(None, field_type=float)  # cfg_specs 'ramp'

    c.augment = augment_config()
    # Transfer learning (NVIDIA's --resume): networks from an NVIDIA pickle or a gan_jax run folder,
    # fresh optimizers, step 0; ADA then adapts faster (ada_kimg 100) and the EMA ramp-up is off.
    c.resume = ""

    # run_config's log / checkpoint cadence: training_loop kimg_per_tick 4 (a grid each tick),
    # network_snapshot_ticks 50 (a checkpoint every 200 kimg); FID at each snapshot.
    return c
