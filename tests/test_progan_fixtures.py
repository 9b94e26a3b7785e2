"""ProGAN against the official TF code's numbers (../shared/fixtures/progan): G images and D scores at
every stored lod through ``progan_from_tf`` under jit, intermediates, the real-image fade, the
schedule, the WGAN-GP losses and their gradients."""

from __future__ import annotations

import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_json, load_npz, nchw, nhwc

from gan_jax import convert, losses
from gan_jax.recipes import growing
from tolerance import assert_close, assert_scalar_close, scale_of

FAMILY = "progan"
PAIRS = ("fused", "nofuse", "cond")


def _vars(fixture: dict, prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in fixture.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def nets():
    """Per pair: the converted networks and one jitted G / D each, ``lod`` traced (one program for all lods)."""
    spec = load_json(FAMILY, "nets.json")
    out = {}
    for pair in PAIRS:
        f = load_npz(FAMILY, f"progan_{pair}.npz")
        kw = spec["pairs"][pair]
        G, g_vars, D, d_vars = convert.progan_from_tf(kw["G"]["static_kwargs"], _vars(f, "G/param/"),
                                                      kw["D"]["static_kwargs"], _vars(f, "D/param/"))
        g = jax.jit(lambda v, z, c, lod, G=G: G.apply(v, z, c, lod=lod))
        d = jax.jit(lambda v, x, lod, D=D: D.apply(v, x, lod=lod, return_label_logits=True))
        out[pair] = {"G": G, "D": D, "g_vars": g_vars, "d_vars": d_vars, "g": g, "d": d, "f": f}
    return out


@pytest.fixture(scope="module")
def common():
    return load_npz(FAMILY, "progan_common.npz")


def _lods():
    return load_json(FAMILY, "nets.json")["lods"]


def _labels(pair, common):
    return common["labels"] if pair == "cond" else None


@pytest.mark.parametrize("pair", PAIRS)
def test_generator_images_at_every_lod(nets, common, pair):
    n = nets[pair]
    worst = 0.0
    for lod in _lods():
        img = n["g"](n["g_vars"], common["latents"], _labels(pair, common), jnp.float32(lod))
        ref = n["f"][f"G/images/lod{lod:g}"]
        assert img.shape == (8, 32, 32, 3)
        assert_close(nchw(img), ref, atol=1e-4, what=f"{pair} lod {lod}")
        worst = max(worst, float(np.abs(nchw(img) - ref).max()))
    assert worst < 1e-4  # measured 4.7e-5 (fused, lod 0)


@pytest.mark.parametrize("pair", PAIRS)
def test_discriminator_scores_at_every_lod(nets, common, pair):
    n = nets[pair]
    for lod in _lods():
        for which, images in (("real", common["reals_net"]), ("fake", n["f"][f"G/images/lod{lod:g}"])):
            scores, logits = n["d"](n["d_vars"], nhwc(images), jnp.float32(lod))
            assert_close(scores, n["f"][f"D/scores_{which}/lod{lod:g}"], atol=1e-5, what=f"{pair} {which} lod {lod}")
            if pair == "cond":
                assert_close(logits, n["f"][f"D/labels_{which}/lod{lod:g}"], atol=1e-5)
            else:
                assert logits.shape == (8, 0)


def test_levels_above_max_resolution_are_skipped_and_equal(nets, common):
    """One program per resolution: ``max_resolution`` drops the higher levels, same numbers."""
    n = nets["fused"]
    G, D = n["G"], n["D"]
    for lod, res in ((1.25, 16), (2.7, 8), (3.0, 4)):
        img = G.apply(n["g_vars"], common["latents"], None, lod=lod, max_resolution=res)
        assert_close(nchw(img), n["f"][f"G/images/lod{lod:g}"], atol=1e-4)
        scores = D.apply(n["d_vars"], nhwc(common["reals_net"]), lod=lod, max_resolution=res)
        assert_close(scores, n["f"][f"D/scores_real/lod{lod:g}"], atol=1e-5)
    with pytest.raises(ValueError, match="max_resolution=64 exceeds the network's resolution 32"):
        G.apply(n["g_vars"], common["latents"], None, lod=0.0, max_resolution=64)


def test_intermediates_of_the_fused_pair(nets, common):
    """Block outputs, per-level ToRGB / FromRGB and the 4x4 layers against the recorded tensors."""
    n = nets["fused"]
    G, D = n["G"], n["D"]
    g_inter = jax.jit(lambda v, z, lod: G.apply(v, z, None, lod=lod, capture_intermediates=True)[1])
    d_inter = jax.jit(lambda v, x, lod: D.apply(v, x, lod=lod, capture_intermediates=True)[1])
    checked = 0
    for lod in load_json(FAMILY, "nets.json")["intermediate_lods"]["fused"]:
        g = flax.traverse_util.flatten_dict(g_inter(n["g_vars"], common["latents"], jnp.float32(lod))["intermediates"])
        d = flax.traverse_util.flatten_dict(d_inter(n["d_vars"], nhwc(common["reals_net"]), jnp.float32(lod))["intermediates"])
        for key, ref in n["f"].items():
            if not key.startswith((f"G/inter/lod{lod:g}/", f"D/inter_real/lod{lod:g}/")):
                continue
            gen = key.startswith("G/")
            scope, op = key.split("/", 3)[3].rsplit("/", 1) if key.count("/") > 3 else ("", key.rsplit("/", 1)[1])
            path = tuple(scope.split("/"))
            ours = None
            if gen and op == "pixel_norm" and path[-1] in ("Conv1", "Conv") and len(path) == 2:
                ours = g.get((path[0], "__call__"))  # block output
            elif gen and op == "apply_bias" and path[0].startswith("ToRGB") or gen and op == "apply_bias" and path[0] == "4x4":
                ours = g.get((*path, "__call__"))
            elif not gen and op == "leaky_relu" and path[0].startswith("FromRGB"):
                ours = tuple(np.maximum(0.2 * np.asarray(x), np.asarray(x)) for x in d[(*path, "__call__")])
            elif not gen and op == "leaky_relu" and path[-1] == "Conv1_down":
                ours = d.get((path[0], "__call__"))
            elif not gen and path == ("4x4", "Dense1") and op == "apply_bias":
                ours = d.get((*path, "__call__"))
            if ours is None:
                continue
            x = np.asarray(ours[0])
            x = nchw(x) if x.ndim == 4 else x
            assert_close(x[: len(ref)], ref, atol=1e-4, what=key)
            checked += 1
    assert checked >= 30, checked


def test_process_reals_and_the_dataset_pyramid(common):
    reals = nhwc(common["reals_uint8"]).astype(np.uint8)
    for level in range(4):
        np.testing.assert_array_equal(nchw(growing.dataset_level(jnp.asarray(reals), level)),
                                      common[f"dataset_lod{level}_uint8"])
    fn = jax.jit(growing.process_reals, static_argnums=2)
    for lod in (0, 0.5, 1, 1.25, 2.7):
        got = fn(jnp.asarray(reals), jnp.float32(lod), math.floor(lod))
        assert_close(nchw(got), common[f"process_reals/lod{lod:g}"], atol=1e-6, what=str(lod))


# -- schedule ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["celebahq1024_preset_v2_1gpu_fp32", "small32_a", "small32_b_initres8_3gpus"])
def test_schedule_equals_the_official_table(table):
    t = load_json(FAMILY, "schedule.json")[table]
    rows = t["rows"]
    for row in rows:  # every phase boundary +-1 image, 25 % / 50 % into each transition
        s = growing.training_schedule(row["cur_nimg"], t["resolution_log2"], t["num_gpus"], t["sched_kwargs"])
        got = {"cur_nimg": row["cur_nimg"], "kimg": s.kimg, "lod": s.lod, "resolution": s.resolution,
               "minibatch": s.minibatch, "G_lrate": s.G_lrate, "D_lrate": s.D_lrate, "tick_kimg": s.tick_kimg}
        assert got == row
    # The in-graph lod (a traced int32 images seen, one scalar per step as in training) is float32 of
    # the official float64 value, exactly.
    graph = jax.jit(lambda n: growing.graph_lod(n, t["resolution_log2"], t["sched_kwargs"]))
    got = np.asarray([graph(jnp.int32(r["cur_nimg"])) for r in rows])
    np.testing.assert_array_equal(got, np.asarray([r["lod"] for r in rows], np.float32))


def _official_loop(resolution_log2, total_kimg, num_gpus, sched, repeats=4):
    """The official train loop's schedule evaluations: (cur_nimg, minibatch, lod, reset?) per group."""
    out, cur, prev = [], 0, -1.0
    while cur < total_kimg * 1000:
        s = growing.training_schedule(cur, resolution_log2, num_gpus, sched)
        reset = np.floor(s.lod) != np.floor(prev) or np.ceil(s.lod) != np.ceil(prev)
        out.append((cur, s.minibatch, s.lod, reset))
        prev = s.lod
        cur += repeats * s.minibatch
    return out


@pytest.mark.parametrize("table, total_kimg", [("small32_a", 23.5), ("small32_b_initres8_3gpus", 20.0)])
def test_stages_are_where_the_official_loop_resets(table, total_kimg):
    t = load_json(FAMILY, "schedule.json")[table]
    groups = _official_loop(t["resolution_log2"], total_kimg, t["num_gpus"], t["sched_kwargs"])
    stages = growing.growing_stages(t["resolution_log2"], total_kimg, t["num_gpus"], t["sched_kwargs"])
    assert [s.start_images for s in stages] == [g[0] for g in groups if g[3]]
    for stage in stages:
        group = next(g for g in groups if g[0] == stage.start_images)
        assert stage.batch_size == group[1]
        assert stage.name.endswith("-fade") == (group[2] != int(group[2]))
    celeb = load_json(FAMILY, "schedule.json")["celebahq1024_preset_v2_1gpu_fp32"]
    stages = growing.growing_stages(10, celeb["total_kimg"], 1, celeb["sched_kwargs"])
    assert [s.name for s in stages][:3] == ["4x4", "8x8-fade", "8x8"] and stages[-1].name == "1024x1024"
    assert len(stages) == 17 and stages[1].start_images == 600064  # first group start past 600 kimg


# -- losses ------------------------------------------------------------------------------------------


def test_gradient_penalty_closed_forms():
    rs = np.random.RandomState(0)
    reals, fakes = rs.randn(4, 3, 3, 2).astype(np.float32), rs.randn(4, 3, 3, 2).astype(np.float32)
    u = rs.rand(4, 1, 1, 1).astype(np.float32)
    w = rs.randn(3, 3, 2).astype(np.float32)
    linear = lambda x: jnp.sum(x * w, axis=(1, 2, 3))[:, None]
    penalty, norms, scores = losses.wgan_gradient_penalty(linear, reals, fakes, u, target=1.0)
    assert_close(norms, np.full(4, np.linalg.norm(w)), rtol=1e-6)
    assert_close(penalty, (np.linalg.norm(w) - 1) ** 2, rtol=1e-5)
    mixed = reals + (fakes - reals) * u
    assert_close(scores[:, 0], np.sum(mixed * w, axis=(1, 2, 3)), rtol=1e-5)
    quad = lambda x: 0.5 * jnp.sum(x * x, axis=(1, 2, 3))[:, None]
    penalty, norms, _ = losses.wgan_gradient_penalty(quad, reals, fakes, u, target=2.0)
    want = np.sqrt(np.sum(mixed.astype(np.float64) ** 2, axis=(1, 2, 3)))
    assert_close(norms, want, rtol=1e-5)
    assert_close(penalty, (want - 2.0) ** 2, rtol=1e-4)
    s = np.array([[1.5], [-2.0]], np.float32)
    np.testing.assert_array_equal(losses.drift_penalty(s), s ** 2)
    np.testing.assert_array_equal(losses.d_wgan(s, 2 * s), s)
    logits = rs.randn(2, 3).astype(np.float32)
    onehot = np.eye(3, dtype=np.float32)[[2, 0]]
    want = -np.log(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))[[0, 1], [2, 0]]
    assert_close(losses.acgan_label_penalty(onehot, logits), want, rtol=1e-5)


def test_gradient_penalty_against_finite_differences(nets, common):
    """<grad_mixed sum D, v> and d(mean penalty)/d(theta) . v (double backprop) against central
    differences, in float64 on the fixture's D (mbstd off: it computes its statistic in float32)."""
    n = nets["fused"]
    rs = np.random.RandomState(1)
    with jax.enable_x64(True):
        D = n["D"].clone(dtype=jnp.float64, mbstd_group_size=0)
        theta = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), n["d_vars"]["params"])
        conv = theta["4x4"]["Conv"]
        theta["4x4"]["Conv"] = {**conv, "weight": conv["weight"][:, :, :-1]}  # without the mbstd channel
        reals = jnp.asarray(nhwc(common["reals_net"]), jnp.float64)
        fakes = jnp.asarray(nhwc(n["f"]["G/images/lod2.7"]), jnp.float64)
        u = jnp.asarray(rs.rand(8, 1, 1, 1))
        lod, res = 2.7, 8  # the 8x8 program: a fade-in, small graphs
        apply = lambda p, x: D.apply({"params": p}, x, lod=lod, max_resolution=res)
        total = jax.jit(lambda x: jnp.sum(apply(theta, x)))
        mixed = reals + (fakes - reals) * u
        grads = jax.grad(total)(mixed)
        penalty, norms, _ = losses.wgan_gradient_penalty(lambda x: apply(theta, x), reals, fakes, u)
        assert_close(norms, np.sqrt(np.sum(np.square(grads), axis=(1, 2, 3))), rtol=1e-12)
        assert_close(penalty, np.square(norms - 1.0), rtol=1e-12)
        v = jnp.asarray(rs.randn(*mixed.shape))
        h = 1e-6
        fd = (float(total(mixed + h * v)) - float(total(mixed - h * v))) / (2 * h)
        assert float(jnp.sum(grads * v)) == pytest.approx(fd, rel=1e-6)

        def mean_penalty(params):
            p, _, _ = losses.wgan_gradient_penalty(lambda x: apply(params, x), reals, fakes, u)
            return jnp.mean(p)

        direction = jax.tree.map(lambda x: jnp.asarray(rs.randn(*x.shape)), theta)
        value, grad = jax.jit(jax.value_and_grad(mean_penalty))(theta)
        assert float(value) == pytest.approx(float(jnp.mean(penalty)), rel=1e-12)
        analytic = sum(float(jnp.sum(g * d)) for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(direction)))
        shifted = lambda s: jax.tree.map(lambda x, d: x + s * d, theta, direction)
        penalty_fn = jax.jit(mean_penalty)
        fd = (float(penalty_fn(shifted(h))) - float(penalty_fn(shifted(-h)))) / (2 * h)
        assert analytic == pytest.approx(fd, rel=1e-5)


@pytest.fixture(scope="module")
def loss_recipe():
    """A ProGAN recipe per fixture pair, its networks built from the official kwargs."""
    from gan_jax.configs import progan_common
    from gan_jax.recipes import progan as recipe_lib

    spec = load_json(FAMILY, "nets.json")["pairs"]
    out = {}
    for pair in ("cond", "fused"):
        cfg = progan_common.progan(resolution=32)
        kw = spec[pair]
        data = ("num_channels", "resolution", "label_size")
        cfg.model.G = {k: v for k, v in kw["G"]["static_kwargs"].items() if k not in data}
        cfg.model.D = {k: v for k, v in kw["D"]["static_kwargs"].items() if k not in data}
        cfg.model.c_dim = kw["G"]["static_kwargs"]["label_size"]
        cfg.train.num_shards = 1
        out[pair] = recipe_lib.ProGAN(cfg, num_shards=1)
    return out


@pytest.mark.parametrize("prefix, pair, lod", [("loss_cond_lod1.25/", "cond", 1.25), ("loss_fused_lod0/", "fused", 0.0)])
def test_losses_terms_and_gradients_equal_the_official(nets, loss_recipe, prefix, pair, lod):
    ref = {k[len(prefix):]: v for k, v in load_npz(FAMILY, "progan_loss.npz").items() if k.startswith(prefix)}
    r, n = loss_recipe[pair], nets[pair]
    g_params, d_params = n["g_vars"]["params"], n["d_vars"]["params"]
    labels = ref["labels"] if ref["labels"].shape[1] else None
    reals = nhwc(ref["reals"])
    fakes = r.generate(g_params, ref["D_latents"], labels, lod)

    (d_loss, terms), d_grads = jax.jit(jax.value_and_grad(r.d_loss, has_aux=True), static_argnums=6)(
        d_params, reals, fakes, labels, nhwc(ref["mixing_factors"]), jnp.float32(lod), None)
    # The mean of an [N, N] loss of signed score differences: rel at the scale of its terms.
    assert_scalar_close(d_loss, ref["D_loss_mean"], rtol=1e-5, atol=1e-5, scale=scale_of(ref["D_loss"]), what="D loss")
    for name in ("real_scores", "fake_scores", "mixed_scores", "mixed_norms", "epsilon_penalty",
                 "label_penalty_reals", "label_penalty_fakes"):
        if f"terms/{name}" in ref:
            assert_close(terms[name], ref[f"terms/{name}"], rtol=1e-5, atol=2e-5, what=name)
    # The official loss tensor is [N, N] (score terms of i + GP / label terms of j); its mean is ours.
    per_i = (terms["fake_scores"] - terms["real_scores"] + 0.001 * terms["epsilon_penalty"])[:, 0]
    per_j = 10.0 * np.square(terms["mixed_norms"] - 1.0)
    if labels is not None:
        per_j = per_j + terms["label_penalty_reals"] + terms["label_penalty_fakes"]
    assert_close(np.asarray(per_i)[:, None] + np.asarray(per_j)[None, :], ref["D_loss"], rtol=1e-5, atol=1e-4)

    (g_loss, _), g_grads = jax.jit(jax.value_and_grad(r.g_loss, has_aux=True), static_argnums=5)(
        g_params, d_params, ref["G_latents"], labels, jnp.float32(lod), None)
    assert_scalar_close(g_loss, ref["G_loss_mean"], rtol=1e-5, atol=1e-5, scale=scale_of(ref["G_loss"]), what="G loss")

    for net, grads in (("D", d_grads), ("G", g_grads)):
        flat = {"/".join(k): np.asarray(v) for k, v in flax.traverse_util.flatten_dict(grads).items()}
        want = {k[len(f"{net}_grad/"):]: v for k, v in ref.items() if k.startswith(f"{net}_grad/")}
        assert set(flat) == set(want)  # every trainable
        for name, value in want.items():
            scale = max(float(np.abs(value).max()), 1e-3)
            assert_close(flat[name], value, atol=2e-4 * scale, what=f"{net} {name}")
