"""The projector (gan_jax.project) against NVIDIA's ``projector.py`` (stylegan2-ada-pytorch).

The official ``projector.py`` and ``training/networks.py`` are exported from the bare snapshot into a
temporary folder (never into gan_jax) and run on CPU; ``click``, ``imageio`` and ``legacy`` (only its
command line needs them) are stand-ins while it is imported, and the modules it imported are removed
from ``sys.modules`` afterwards (tests/test_ppl.py imports the same packages and refuses clashes;
here, packages already imported from another export of the same snapshot are reused).
A tiny official Generator (32x32, z/w dim 32, 2 mapping layers, every parameter randomised) is
loaded into gan_jax by ``convert.stylegan2_from_torch`` (tests/test_ppl.py's helpers). The distance
network is one on both sides: ``lpips.LPIPS(net='vgg', pnet_rand=True)`` (a seeded random VGG16
trunk, the shipped linear layers) behind ``vgg16.pt``'s call signature for ``project()`` (its
``dnnlib.util.open_url`` and ``torch.jit.load`` patched to hand it over), and the same weights in
``ppl.lpips_features`` for JAX. ``project()``'s ``torch.randn_like`` draws (the initial noise maps,
then one w perturbation per step) are recorded and replayed into ``projection_step``; the loss of
each step is read at ``loss.backward()``, the parameters before and after each step at the Adam
optimiser's ``step()``.

Tolerance. Everything is float32 on both sides except NVIDIA's mapping of the 10k w_avg latents
(float64, as it passes numpy's float64 z). The first step has lr 0 and moves nothing; each later
Adam step moves every parameter by about lr * sign(gradient) (0.1 here), whatever the gradient's
size, so the parameters agree to the float32 rounding of the forward and backward passes (~1e-6
relative) carried through a few steps and through the noise re-normalisation, not amplified
(a gradient element within its rounding of 0 would flip its step; the fixed seeds here have none,
and the measured error shows it). Measured: 2e-6 (w_avg) to 2.5e-5 (w_opt after 5 steps) of the
values' scale; the bounds (the RTOL constants) are about 10x the measured errors.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import tarfile
import types

import numpy as np
import pytest
from tolerance import assert_close

SNAPSHOT = os.environ.get("GAN_JAX_SG2ADA_SNAPSHOT", "/work/.mirror/NVlabs+stylegan2-ada-pytorch/repo")
NUM_STEPS = 5
W_AVG_SAMPLES = 10000  # NVIDIA's default: cheap for a 2-layer, 32-wide mapping


def _stand_in(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(module, k, v)
    return module


def _identity_decorator(*args, **kwargs):
    return lambda fn: fn


def _same_package(module: types.ModuleType, exported) -> bool:
    """Whether an imported package's folder holds the same .py files as ``exported`` (another export of
    the same snapshot, e.g. tests/test_ppl.py's)."""
    folder = os.path.dirname(getattr(module, "__file__", None) or "")
    if not folder:
        return False
    for path in exported.rglob("*.py"):
        other = os.path.join(folder, path.relative_to(exported))
        if not os.path.isfile(other) or open(other, "rb").read() != path.read_bytes():
            return False
    return True


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """``(torch, training.networks, projector)`` from the official snapshot (stand-ins for the CLI's imports)."""
    torch = pytest.importorskip("torch")
    if not os.path.isdir(SNAPSHOT):
        pytest.skip(f"no stylegan2-ada-pytorch snapshot at {SNAPSHOT} (set GAN_JAX_SG2ADA_SNAPSHOT to a bare clone)")
    dest = tmp_path_factory.mktemp("sg2ada_projector")
    archive = subprocess.run(["git", f"--git-dir={SNAPSHOT}", "archive", "HEAD", "training", "torch_utils", "dnnlib",
                              "projector.py"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    packages = ("training", "torch_utils", "dnnlib")
    clashes = [m for m in packages if m in sys.modules and not _same_package(sys.modules[m], dest / m)]
    if clashes:  # tests/test_ppl.py's export of this snapshot is the same package: reused
        pytest.skip(f"modules {clashes} already imported from elsewhere")
    before = set(sys.modules)
    sys.path.insert(0, str(dest))
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setitem(sys.modules, "click", _stand_in("click", command=_identity_decorator, option=_identity_decorator))
            mp.setitem(sys.modules, "imageio", _stand_in("imageio"))
            mp.setitem(sys.modules, "legacy", _stand_in("legacy"))
            from training import networks

            spec = importlib.util.spec_from_file_location("sg2ada_projector", dest / "projector.py")
            projector = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(projector)
    finally:
        sys.path.remove(str(dest))
    yield torch, networks, projector
    for name in set(sys.modules) - before:  # the official packages and what they imported lazily
        if name.split(".")[0] in packages:
            del sys.modules[name]


@pytest.fixture(scope="module")
def distance_nets(upstream):
    """(torch module with vgg16.pt's call signature, JAX variables for ppl.lpips_features, the torch
    VGG16 trunk's state dict in torchvision's names): tests/test_ppl.py's distance network."""
    from test_ppl import lpips_distance_nets

    wrapper, _, variables, trunk_state = lpips_distance_nets(upstream[0])
    return wrapper, variables, trunk_state


@pytest.fixture(scope="module")
def generator(upstream):
    """(official G, gan_jax G, gan_jax variables): tests/test_ppl.py's tiny randomised G, RGB, unconditional."""
    from test_ppl import _jax_generator, _official_generator

    G, kwargs = _official_generator(upstream, seed=2)
    return (G, *_jax_generator(G, kwargs))


@pytest.fixture(scope="module")
def official_run(upstream, distance_nets, generator):
    """NVIDIA's ``project()`` for NUM_STEPS steps on a target, with everything it drew and did recorded."""
    torch, _, projector = upstream
    vgg = distance_nets[0]
    G = generator[0]
    rs = np.random.RandomState(9)
    target = rs.randint(0, 256, (32, 32, 3)).astype(np.uint8)
    draws, losses, before, after, grads, adam_params, feats = [], [], [], [], [], [], []

    class RecordingAdam(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            params = list(params)
            adam_params.extend(params)
            super().__init__(params, **kwargs)

        def step(self, closure=None):
            before.append([p.detach().clone().numpy() for p in adam_params])
            grads.append([p.grad.detach().clone().numpy() for p in adam_params])
            out = super().step(closure)
            after.append([p.detach().clone().numpy() for p in adam_params])
            return out

    class RecordingVGG(torch.nn.Module):
        def forward(self, img, resize_images=False, return_lpips=False):
            out = vgg(img, resize_images=resize_images, return_lpips=return_lpips)
            feats.append(out.detach().clone().numpy())
            return out

    randn_like, backward = torch.randn_like, torch.Tensor.backward

    def record_randn_like(*args, **kwargs):
        out = randn_like(*args, **kwargs)
        draws.append(out.detach().clone().numpy())
        return out

    def record_backward(self, *args, **kwargs):
        losses.append(float(self.detach()))
        return backward(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(projector.dnnlib.util, "open_url", lambda url, *a, **k: contextlib.nullcontext(None))
        mp.setattr(torch.jit, "load", lambda f, *a, **k: RecordingVGG())
        mp.setattr(torch.optim, "Adam", RecordingAdam)
        mp.setattr(torch, "randn_like", record_randn_like)
        mp.setattr(torch.Tensor, "backward", record_backward)
        w_out = projector.project(G, torch.from_numpy(target.transpose(2, 0, 1).copy()), num_steps=NUM_STEPS,
                                  w_avg_samples=W_AVG_SAMPLES, device=torch.device("cpu"))
    names = [name for name, _ in G.synthesis.named_buffers() if "noise_const" in name]
    final = [p.detach().clone().numpy() for p in adam_params]  # re-normalised after the last step
    target_feats, synth_feats = feats[0], np.concatenate(feats[1:])
    dists = np.sum(np.square(target_feats.astype(np.float64) - synth_feats), axis=1)
    return {"target": target, "w_out": w_out.numpy(), "draws": draws, "names": ["synthesis." + n for n in names],
            "losses": np.array(losses), "dists": dists, "before": before, "after": after, "final": final,
            "target_feats": target_feats}


def _jax_run(generator, distance_nets, official, num_steps=NUM_STEPS):
    """gan_jax's projection_step on the official draws -> (w_avg, w_std, losses, dists, regs, states)."""
    import jax.numpy as jnp

    from gan_jax import project
    from gan_jax.metrics import ppl

    _, G_jax, G_vars = generator
    variables = distance_nets[1]
    settings = project.ProjectionSettings(num_steps=num_steps, w_avg_samples=W_AVG_SAMPLES)
    w_avg, w_std = project.w_stats(G_jax, G_vars, W_AVG_SAMPLES)
    names = official["names"]
    assert names == ppl.noise_const_names(G_vars)
    state = project.initial_state(w_avg, dict(zip(names, official["draws"][:len(names)])))
    target_feats = project.target_features(ppl.lpips_features, variables, official["target"])
    step = project.make_step(G_jax, ppl.lpips_features, settings.regularize_noise_weight)
    losses, dists, regs, states = [], [], [], []
    for i in range(num_steps):
        lr, scale = project.schedule(i, settings, w_std)
        w_noise = jnp.asarray(official["draws"][len(names) + i], jnp.float32) * scale
        state, loss, dist, reg = step(state, G_vars, variables, target_feats, w_noise, jnp.float32(lr))
        losses.append(float(loss))
        dists.append(float(dist))
        regs.append(float(reg))
        states.append(state)
    return w_avg, w_std, np.array(losses), np.array(dists), np.array(regs), states, np.asarray(target_feats)


# Relative to max|official value| (assert_close); measured on CPU with these seeds, bounds ~10x:
RTOL_W_AVG = 2e-5  # measured 2.0e-6 (NVIDIA maps the 10k latents in float64, gan_jax in float32)
RTOL_FEATURES = 1e-5  # the target's features: measured 1.1e-6
RTOL_LOSS = 1e-5  # measured 7.4e-7 (loss ~5e3-1.5e4, mostly the 1e5-weighted noise regularisation)
RTOL_DIST = 5e-6  # measured 5.3e-7
RTOL_W = 2e-4  # w_opt after steps 0-4: measured 2.0e-6, 2.5e-6, 1.9e-5, 2.4e-5, 2.5e-5 (Adam's m / sqrt(v)
# of gradients that change between steps passes their rounding on, and the w noise adds w_avg's error)
RTOL_NOISE = 4e-5  # noise maps after steps 0-4: measured 1.6e-7 to 3.7e-6, growing with the steps


def test_steps_match_official_project(upstream, distance_nets, generator, official_run):
    """w_avg, w_std, the target's features and the first NUM_STEPS steps' loss, dist, w_opt and noise
    maps (after the re-normalisation) equal NVIDIA's project()."""
    torch, _, _ = upstream
    G = generator[0]
    off = official_run
    names = off["names"]
    assert len(off["draws"]) == len(names) + NUM_STEPS  # the initial maps, then one w perturbation per step
    w_avg, w_std, losses, dists, regs, states, target_feats = _jax_run(generator, distance_nets, off)
    # w_avg: project()'s initial w_opt; w_std: its formula on the float64 mapping of the same latents.
    assert_close(w_avg, off["before"][0][0], rtol=RTOL_W_AVG, what="w_avg")
    with torch.no_grad():
        z = np.random.RandomState(123).randn(W_AVG_SAMPLES, G.z_dim)
        w = G.mapping(torch.from_numpy(z), None)[:, :1].numpy().astype(np.float64)
    want_std = float(np.sqrt(np.sum((w - w.mean(0, keepdims=True)) ** 2) / W_AVG_SAMPLES))
    assert w_std == pytest.approx(want_std, rel=1e-5)
    assert_close(target_feats, off["target_feats"], rtol=RTOL_FEATURES, what="target features")
    # The step's scalars: the loss read at backward() (mostly the 1e5-weighted noise regularisation)
    # and dist from the features the official distance network returned.
    assert losses.shape == off["losses"].shape == (NUM_STEPS,)
    assert_close(losses, off["losses"], rtol=RTOL_LOSS, what="loss")
    assert_close(dists, off["dists"], rtol=RTOL_DIST, what="dist")
    assert np.all(regs > 0) and np.all(dists > 1e-3)
    # Parameters after each step: w_opt (project()'s w_out[step]) and the re-normalised noise maps
    # (the official ones read before the next step, or at the end).
    for i, state in enumerate(states):
        assert_close(np.asarray(state.w_opt)[0, 0], off["w_out"][i], rtol=RTOL_W, what=f"w_opt step {i}")
        want = off["before"][i + 1][1:] if i + 1 < NUM_STEPS else off["final"][1:]
        for name, buf in zip(names, want):
            got = np.asarray(state.noise[name])
            assert_close(got, buf, rtol=RTOL_NOISE, what=f"{name} step {i}")
    assert np.array_equal(off["after"][0][0], off["before"][0][0])  # lr 0 at step 0: w_opt does not move
    assert not np.allclose(off["w_out"][-1], off["w_out"][0])  # later steps do


def test_schedule_is_projectors():
    """lr ramps and the w noise ramp at a few points of a 1000-step run (projector.py's formulas)."""
    from gan_jax import project

    s = project.ProjectionSettings()
    assert project.schedule(0, s, 2.0) == (0.0, pytest.approx(2.0 * 0.05))
    lr, noise = project.schedule(25, s, 2.0)  # halfway up the 50-step linear ramp
    assert lr == pytest.approx(0.05) and noise == pytest.approx(0.1 * (1 - 0.025 / 0.75) ** 2)
    assert project.schedule(500, s, 2.0)[0] == pytest.approx(0.1)
    assert project.schedule(875, s, 2.0)[0] == pytest.approx(0.1 * (0.5 - 0.5 * np.cos(0.5 * np.pi)))
    assert project.schedule(800, s, 2.0)[1] == 0.0  # past noise_ramp_length


@pytest.mark.parametrize("size", [512, 300])
def test_area_resize_is_interpolate_area(upstream, size):
    """``F.interpolate(mode='area')`` to 256: a block mean (512) and adaptive pooling windows (300)."""
    torch = upstream[0]
    from gan_jax import project

    x = np.random.RandomState(size).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    want = torch.nn.functional.interpolate(torch.from_numpy(x.transpose(0, 3, 1, 2)), size=(256, 256),
                                           mode="area").numpy().transpose(0, 2, 3, 1)
    got = np.asarray(project.area_resize(x, 256))
    assert got.shape == (2, 256, 256, 3)
    assert_close(got, want, rtol=1e-6, what=f"area {size}")
    grey = np.asarray(project.distance_input(x[:1, :, :, :1]))  # the distance network's input: 256x256 RGB
    assert_close(grey, np.repeat(want[:1, :, :, :1], 3, axis=-1), rtol=1e-6, what=f"grey {size}")


def test_load_target_crops_and_converts(tmp_path):
    """A 48x40 RGBA target: centre square 40x40, LANCZOS to the resolution, RGB or L; 2 channels refused."""
    from PIL import Image

    from gan_jax import project

    rgba = np.random.RandomState(4).randint(0, 256, (40, 48, 4)).astype(np.uint8)
    path = tmp_path / "t.png"
    Image.fromarray(rgba, "RGBA").save(path)
    for channels, mode in ((3, "RGB"), (1, "L")):
        got = project.load_target(str(path), 32, channels)
        want = Image.fromarray(rgba, "RGBA").convert(mode).crop((4, 0, 44, 40)).resize((32, 32), Image.LANCZOS)
        assert got.shape == (32, 32, channels) and got.dtype == np.uint8
        assert np.array_equal(got.reshape(np.asarray(want).shape), np.asarray(want))
    with pytest.raises(ValueError, match="RGB"):
        project.load_target(str(path), 32, 2)


KWARGS = {"z_dim": 32, "c_dim": 0, "w_dim": 32, "img_resolution": 32, "img_channels": 3,
          "mapping_kwargs": {"num_layers": 2}, "synthesis_kwargs": {"channel_base": 512, "channel_max": 32}}
SMOKE = {"num_steps": 3, "w_avg_samples": 200}


@pytest.fixture(scope="module")
def files(upstream, distance_nets, generator, tmp_path_factory):
    """The tiny G as an NVIDIA pickle, the stand-in VGG16 trunk as a torchvision-named .pth, a 48x40 target."""
    import nvidia_pickle_writer
    from PIL import Image

    torch = upstream[0]
    root = tmp_path_factory.mktemp("project_files")
    state = {k: v.detach().numpy() for k, v in generator[0].state_dict().items()}
    pkl = root / "network-snapshot-000000.pkl"
    nvidia_pickle_writer.write_nvidia_pickle(str(pkl), G=("Generator", KWARGS, state),
                                             G_ema=("Generator", KWARGS, state), training_set_kwargs={"path": "x"})
    vgg_file = root / "vgg16_random.pth"
    torch.save({k: torch.from_numpy(v) for k, v in distance_nets[2].items()}, vgg_file)
    target = root / "target_in.png"
    Image.fromarray(np.random.RandomState(3).randint(0, 256, (40, 48, 3)).astype(np.uint8)).save(target)
    return pkl, vgg_file, target


@pytest.fixture(scope="module")
def in_process(distance_nets, generator, files, tmp_path_factory):
    """run_projection of the target on the tiny G (3 steps, GIF every step): (outdir, ws of every step)."""
    from gan_jax import project
    from gan_jax.metrics import ppl

    _, G_jax, G_vars = generator
    out = tmp_path_factory.mktemp("project_out")
    ws = project.run_projection(G_jax, G_vars, str(files[2]), str(out), features=ppl.lpips_features,
                                feature_variables=distance_nets[1], settings=project.ProjectionSettings(**SMOKE),
                                seed=303, save_video=True, video_every=1, verbose=False)
    return out, ws


def test_run_projection_outputs_and_projected_w(generator, files, in_process, tmp_path):
    """projected_w.npz [1, num_ws, w_dim] (the last step's w, repeated over the ws), target.png (the
    centre crop, resized), proj.png, proj.gif (target | projection per step); render_projected_w
    (``gan_jax.sample --projected_w``) through a Sampler of the pickle gives proj.png again
    (generate.py's rounding vs projector.py's truncation: one level apart at most)."""
    from PIL import Image

    from gan_jax import project, sample

    out, ws = in_process
    G_jax = generator[1]
    assert ws.shape == (SMOKE["num_steps"], G_jax.num_ws, 32)
    w = np.load(out / "projected_w.npz")["w"]
    assert w.shape == (1, G_jax.num_ws, 32) and w.dtype == np.float32
    assert np.array_equal(w[0], ws[-1]) and np.all(w == w[:, :1])
    assert not np.allclose(ws[-1], ws[0])
    target = project.load_target(str(files[2]), 32, 3)
    assert np.array_equal(np.asarray(Image.open(out / "target.png")), target)
    proj = np.asarray(Image.open(out / "proj.png"))
    gif = Image.open(out / "proj.gif")
    assert proj.shape == (32, 32, 3) and gif.n_frames == SMOKE["num_steps"] and gif.size == (64, 32)
    gif.seek(SMOKE["num_steps"] - 1)
    last = np.asarray(gif.convert("RGB"))
    corr = lambda a, b: np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1]
    assert corr(last[:, :32], target) > 0.9 and corr(last[:, 32:], proj) > 0.9  # a GIF's 256-colour palette
    sampler = sample.Sampler(network=str(files[0]), batch_size=1)
    paths = project.render_projected_w(sampler, str(out / "projected_w.npz"), str(tmp_path))
    assert paths == [str(tmp_path / "proj00.png")]
    gen = np.asarray(Image.open(paths[0]))
    assert gen.shape == proj.shape and np.abs(gen.astype(int) - proj.astype(int)).max() <= 1
    np.savez(tmp_path / "bad.npz", w=w[:, :3])
    with pytest.raises(ValueError, match="num_ws"):
        project.render_projected_w(sampler, str(tmp_path / "bad.npz"), str(tmp_path))


@pytest.mark.slow  # ~80 s on 2 shared CPU cores: two subprocesses, each importing jax and compiling
def test_command_line(files, in_process, tmp_path):
    """``python -m gan_jax.project --network=PKL --vgg16=...`` writes what run_projection wrote in this
    process (the same w), and ``python -m gan_jax.sample --projected_w`` renders it."""
    from PIL import Image

    pkl, vgg_file, target = files
    out = tmp_path / "out"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    cmd = [sys.executable, "-m", "gan_jax.project", f"--network={pkl}", f"--target={target}", f"--outdir={out}",
           f"--num_steps={SMOKE['num_steps']}", f"--w_avg_samples={SMOKE['w_avg_samples']}", f"--vgg16={vgg_file}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=repo)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "step    3/3: dist" in res.stdout
    w = np.load(out / "projected_w.npz")["w"]
    want = np.load(in_process[0] / "projected_w.npz")["w"]
    assert_close(w, want, rtol=1e-5, what="CLI w vs run_projection")
    assert sorted(os.listdir(out)) == ["proj.png", "projected_w.npz", "target.png"]  # no --save_video
    res = subprocess.run([sys.executable, "-m", "gan_jax.sample", f"--network={pkl}",
                          f"--projected_w={out / 'projected_w.npz'}", f"--outdir={tmp_path / 'gen'}"],
                         capture_output=True, text=True, timeout=600, env=env, cwd=repo)
    assert res.returncode == 0, res.stderr[-3000:]
    gen = np.asarray(Image.open(tmp_path / "gen" / "proj00.png"))
    proj = np.asarray(Image.open(out / "proj.png"))
    assert gen.shape == proj.shape and np.abs(gen.astype(int) - proj.astype(int)).max() <= 1
    res = subprocess.run([sys.executable, "-m", "gan_jax.project", f"--network={pkl}", f"--outdir={out}"],
                         capture_output=True, text=True, timeout=600, env=env, cwd=repo)
    assert res.returncode != 0 and "--target" in res.stderr
