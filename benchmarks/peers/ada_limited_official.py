#!/usr/bin/env python3
"""NVIDIA's official StyleGAN2-ADA training step on a dataset zip, logging what the ADA paper plots.

An extension of ``../shared/peers/stylegan2_ada_official.py`` (our driver of the official modules,
imported from there; no official code is copied): the same loop body (``training_loop``'s phases,
G_ema, the ADA heuristic), but the reals come from a dataset zip in NVIDIA's ``dataset_tool`` layout
(``gan_jax.data.prepare`` writes one) in the official ``InfiniteSampler`` spirit (a seeded
permutation per pass, optional x-flip), and every ``--log-every-kimg`` it appends one JSON line:
``kimg``, ``p``, ``r_t`` (the last adjustment's mean sign), and D's mean raw output on the training
reals, on the held-out reals of ``--heldout`` and on G_ema's fakes (fixed latents).

    python benchmarks/peers/ada_limited_official.py --src=scratch/peers/src --data=/tmp/limited.zip \\
        --heldout=/tmp/heldout.zip --out=/tmp/nvidia_ada.jsonl --kimg=16 --aug=ada --ada-kimg=10 \\
        --cfg=bench32 --z-dim=128 --cbase=1024 --cmax=128 --g-arch=orig

Everything after the driver's own options goes to the shared driver's parser (``--cfg``, ``--cbase``,
``--aug``, ...). Mirrors ``experiments/ada/figures.py`` for gan_jax.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import io
import json
import os
import sys
import time
import warnings
import zipfile

import numpy as np

_SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "peers",
                       "stylegan2_ada_official.py")


def load_driver(path: str = _SHARED):
    spec = importlib.util.spec_from_file_location("stylegan2_ada_official", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_zip(path: str) -> np.ndarray:
    """uint8 NCHW images of a dataset_tool zip (PNG files in name order)."""
    from PIL import Image

    with zipfile.ZipFile(path) as z:
        names = sorted(n for n in z.namelist() if n.lower().endswith(".png"))
        images = [np.asarray(Image.open(io.BytesIO(z.read(n)))) for n in names]
    x = np.stack(images)
    if x.ndim == 3:
        x = x[..., None]
    return x.transpose(0, 3, 1, 2)


def main(argv=None) -> int:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--data", required=True)
    own.add_argument("--heldout", required=True)
    own.add_argument("--out", required=True)
    own.add_argument("--kimg", type=float, default=16.0)
    own.add_argument("--log-every-kimg", type=float, default=2.0)
    own.add_argument("--ada-kimg", type=float, default=500.0)
    own.add_argument("--z-dim", type=int, default=512)
    own.add_argument("--g-arch", default="skip", choices=["orig", "skip", "resnet"])
    own.add_argument("--mirror", action="store_true")
    args, rest = own.parse_known_args(argv)
    driver = load_driver()
    a = driver.parse_args(rest)

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cpu")
    mods, src = driver.import_official(a.src)
    misc, training_stats = mods.misc, mods.training_stats
    c = driver.resolve_config(a, device.type)
    c.ada_kimg = args.ada_kimg
    mods.augment = __import__("training.augment", fromlist=["AugmentPipe"])
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    mods.conv2d_gradfix.enabled = True
    mods.grid_sample_gradfix.enabled = True
    warnings.filterwarnings("ignore", message="conv2d_gradfix not supported")
    warnings.filterwarnings("ignore", message="grid_sample_gradfix not supported")

    reals = torch.from_numpy(read_zip(args.data))
    heldout = torch.from_numpy(read_zip(args.heldout)).to(torch.float32) / 127.5 - 1
    c.resolution, c.img_channels = reals.shape[2], reals.shape[1]
    common = dict(c_dim=0, img_resolution=c.resolution, img_channels=c.img_channels)
    G_kwargs = dict(z_dim=args.z_dim, w_dim=args.z_dim, mapping_kwargs=dict(num_layers=c.map),
                    synthesis_kwargs=dict(channel_base=c.channel_base, channel_max=c.channel_max,
                                          num_fp16_res=c.num_fp16_res, conv_clamp=c.conv_clamp, architecture=args.g_arch))
    D_kwargs = dict(architecture=c.d_arch, channel_base=c.channel_base, channel_max=c.channel_max,
                    num_fp16_res=c.num_fp16_res, conv_clamp=c.conv_clamp, block_kwargs={}, mapping_kwargs={},
                    epilogue_kwargs=dict(mbstd_group_size=c.mbstd))
    G = mods.networks.Generator(**G_kwargs, **common).train().requires_grad_(False).to(device)
    D = mods.networks.Discriminator(**D_kwargs, **common).train().requires_grad_(False).to(device)
    G_ema = copy.deepcopy(G).eval()

    augment_pipe, ada_stats = None, None
    if c.aug != "noaug":
        augment_pipe = mods.augment.AugmentPipe(**driver.AUGPIPE_SPECS[c.augpipe]).train().requires_grad_(False)
        augment_pipe.p.copy_(torch.as_tensor(c.augment_p))
        if c.ada_target is not None:
            ada_stats = training_stats.Collector(regex="Loss/signs/real")
    loss = mods.loss.StyleGAN2Loss(device=device, G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
                                   augment_pipe=augment_pipe, r1_gamma=c.r1_gamma, pl_weight=c.pl_weight,
                                   style_mixing_prob=c.style_mixing)
    phases = driver.build_phases(G, D, c, torch.optim.Adam)
    bs, bg = c.batch_size, c.batch_gpu
    rs = np.random.RandomState(a.seed)
    order: list[int] = []
    fixed_z = torch.from_numpy(np.random.RandomState(123).randn(len(heldout), G.z_dim).astype(np.float32))
    r_t = float("nan")

    def next_reals():
        nonlocal order
        while len(order) < bs:
            order += list(rs.permutation(len(reals)))
        idx, order = order[:bs], order[bs:]
        x = reals[idx].to(torch.float32) / 127.5 - 1
        if args.mirror:
            flip = torch.from_numpy(rs.rand(bs) < 0.5)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x

    def d_mean(images):
        with torch.no_grad():
            return float(torch.cat([D(x, torch.zeros([len(x), 0])) for x in images.split(64)]).mean())

    def log(out, cur_nimg):
        with torch.no_grad():
            fakes = torch.cat([G_ema(z, torch.zeros([len(z), 0]), noise_mode="const") for z in fixed_z.split(64)])
        train_reals = reals[: len(heldout)].to(torch.float32) / 127.5 - 1
        row = {"kimg": cur_nimg / 1000, "p": float(augment_pipe.p) if augment_pipe is not None else 0.0, "r_t": r_t,
               "D_train_reals": d_mean(train_reals), "D_heldout_reals": d_mean(heldout), "D_fakes": d_mean(fakes)}
        out.write(json.dumps(row) + "\n")
        out.flush()
        print(row, flush=True)

    batch_idx, cur_nimg, next_log = 0, 0, 0.0
    started = time.perf_counter()
    with open(args.out, "w") as out:
        while True:
            if cur_nimg >= next_log * 1000:
                log(out, cur_nimg)
                next_log += args.log_every_kimg
            if cur_nimg >= args.kimg * 1000:
                break
            phase_real_img = next_reals().split(bg)
            all_gen_z = torch.randn([len(phases) * bs, G.z_dim])
            all_gen_z = [z.split(bg) for z in all_gen_z.split(bs)]
            for phase, phase_gen_z in zip(phases, all_gen_z):
                if batch_idx % phase.interval != 0:
                    continue
                phase.opt.zero_grad(set_to_none=True)
                phase.module.requires_grad_(True)
                for round_idx, (real_img, gen_z) in enumerate(zip(phase_real_img, phase_gen_z)):
                    empty = torch.zeros([len(real_img), 0])
                    loss.accumulate_gradients(phase=phase.name, real_img=real_img, real_c=empty, gen_z=gen_z,
                                              gen_c=empty, sync=round_idx == bs // bg - 1, gain=phase.interval)
                phase.module.requires_grad_(False)
                for param in phase.module.parameters():
                    if param.grad is not None:
                        misc.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
                phase.opt.step()
            ema_nimg = c.ema_kimg * 1000
            if c.ema_rampup is not None:
                ema_nimg = min(ema_nimg, cur_nimg * c.ema_rampup)
            ema_beta = 0.5 ** (bs / max(ema_nimg, 1e-8))
            with torch.no_grad():
                for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                    p_ema.copy_(p.lerp(p_ema, ema_beta))
                for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                    b_ema.copy_(b)
            cur_nimg += bs
            batch_idx += 1
            if ada_stats is not None and batch_idx % c.ada_interval == 0:
                ada_stats.update()
                r_t = float(ada_stats["Loss/signs/real"])
                adjust = np.sign(r_t - c.ada_target) * (bs * c.ada_interval) / (c.ada_kimg * 1000)
                augment_pipe.p.copy_((augment_pipe.p + adjust).max(misc.constant(0, device=device)))
    print(f"done: {cur_nimg / 1000:.1f} kimg in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
