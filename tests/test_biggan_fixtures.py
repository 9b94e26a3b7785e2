"""BigGAN and BigGAN-deep against the author's BigGAN-PyTorch (fixtures/biggan, README there).

Each network is built by ``convert.biggan_from_torch`` from the reference constructor kwargs and the
perturbed state S0, and run under ``jax.jit``:
* eval mode: images, logits and every recorded module output (forward hooks) and G block c vector;
* train mode, the D step of ``train_fns``: G's images, D on ``[fakes, reals]``, the hinge losses, every
  D gradient and every SN / BN buffer after the step; the G step: D's logits, G's loss and every G
  gradient (``shared.weight`` included);
* the orthogonal regulariser: the paper's per-weight values and its gradient, 2x ``utils.ortho``'s;
* layers.npz: BigGAN-deep blocks with channel drop / concat skip, ccbn with ``mybn`` False / True;
* the full-size 128x128 parameter counts (``jax.eval_shape`` only).

Tolerances: float32 against float32 (torch CPU), relative to each array's scale ``max(1, max|ref|)``:
``ATOL`` on activations, images, buffers and losses, ``GRAD_RTOL`` of the largest entry on gradients.
"""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_json, load_npz, nchw, nhwc

from gan_jax import convert, losses
from gan_jax.models import biggan
from gan_jax.nn import ConditionalBatchNorm
from gan_jax.recipes import biggan as recipe

FAMILY = "biggan"
FAMILIES = ["biggan", "biggan_deep"]
ATOL = 2e-5  # measured max errors are <= 4e-6 relative to scale (numpy_check.json: float64 vs torch ~1e-6)
GRAD_RTOL = 1e-4  # of max|grad| per tensor
GRAD_FLOOR = 1e-6  # of the largest gradient of the network


def compiled(fn, *args):
    """``jax.jit(fn)`` compiled for ``args`` without LLVM's expensive passes: faster to compile on a CPU, and
    bit-identical here to the default compilation (checked on the G-step gradients of both families;
    ``xla_backend_optimization_level=0`` is not: it moved them by 1e-3)."""
    return jax.jit(fn).lower(*args).compile(compiler_options={"xla_llvm_disable_expensive_passes": True})


def _close(got, ref, what, atol=ATOL):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != reference {ref.shape}"
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
    err = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    assert err <= atol * scale, f"{what}: max abs error {err:.3g} > {atol * scale:.3g} (scale {scale:.3g})"
    return err / scale


def _grads_close(got: dict, want: dict, what: str) -> None:
    """Every tensor to ``GRAD_RTOL`` of its own largest entry, plus ``GRAD_FLOOR`` of the network's largest
    gradient (tensors whose true gradient is 0, e.g. a conv bias right before a BatchNorm, hold rounding)."""
    assert sorted(got) == sorted(want), f"{what}: gradient names differ"
    top = max(float(np.max(np.abs(v))) for v in want.values())
    for name, ref in want.items():
        g, r = np.asarray(got[name], np.float64), np.asarray(ref, np.float64)
        assert g.shape == r.shape, f"{what}/{name}: shape {g.shape} != {r.shape}"
        err, scale = float(np.max(np.abs(g - r))), float(np.max(np.abs(r)))
        assert err <= GRAD_RTOL * scale + GRAD_FLOOR * top, f"{what}/{name}: max abs error {err:.3g} vs max|grad| {scale:.3g}"


def _lookup(tree, dotted_module: str):
    """Captured ``__call__`` output of the Flax module at a reference module path (``blocks.1.1.theta``)."""
    parts = dotted_module.split(".")
    node = tree
    for i in range(len(parts)):  # Flax names: 'blocks.1.1' then 'theta'
        if ".".join(parts[: i + 1]) in node:
            rest = parts[i + 1:]
            node = node[".".join(parts[: i + 1])]
            for p in rest:
                node = node[p]
            return node["__call__"][0]
    raise KeyError(dotted_module)


@pytest.fixture(scope="module")
def meta():
    return load_json(FAMILY, "meta.json")


@pytest.fixture(scope="module", params=FAMILIES)
def run(request, meta):
    fam = request.param
    ref = load_npz(FAMILY, f"{fam}.npz")
    m = meta["families"][fam]
    g_state = {k[len("G_state/"):]: v for k, v in ref.items() if k.startswith("G_state/")}
    d_state = {k[len("D_state/"):]: v for k, v in ref.items() if k.startswith("D_state/")}
    G, G_vars, D, D_vars = convert.biggan_from_torch(m["G_kwargs"], g_state, m["D_kwargs"], d_state)
    z, y = ref["in/z"], ref["in/y"].astype(np.int32)
    x_real, y_real = nhwc(ref["in/x_real"]), ref["in/y_real"].astype(np.int32)

    def evaluate(gv, dv):
        img, gi = G.apply(gv, z, y, capture_intermediates=True, mutable=["intermediates"])
        d_fake, di = D.apply(dv, img, y, capture_intermediates=True, mutable=["intermediates"])
        d_real = D.apply(dv, x_real, y_real)
        return img, d_fake, d_real, gi["intermediates"], di["intermediates"]

    def d_step(gv, dv):
        """train_fns' D step: G (train mode, no grad) then D once on [fakes, reals] and the hinge loss."""
        img, g_new = G.apply(gv, z, y, train=True, capture_intermediates=True, mutable=["sn", "batch_stats", "intermediates"])
        g_new = dict(g_new)
        hooks = g_new.pop("intermediates")
        d_cols = {k: v for k, v in dv.items() if k != "params"}

        def loss_fn(d_params):
            logits, d_new = recipe.discriminate(D, d_params, d_cols, jnp.concatenate([img, x_real]), jnp.concatenate([y, y_real]))
            loss_real, loss_fake = losses.hinge_d(logits[8:], logits[:8])
            return loss_real + loss_fake, (logits, d_new, loss_real, loss_fake)

        grads, aux = jax.grad(loss_fn, has_aux=True)(dv["params"])
        return img, aux, grads, g_new, hooks

    def g_step(gv, dv):
        """train_fns' G step: D (train mode) on the 8 fakes, -mean(D(G(z)))."""
        g_cols = {k: v for k, v in gv.items() if k != "params"}
        d_cols = {k: v for k, v in dv.items() if k != "params"}

        def loss_fn(g_params):
            fake, g_new = recipe.generate(G, g_params, g_cols, z, y)
            logits, d_new = recipe.discriminate(D, dv["params"], d_cols, fake, y)
            return losses.hinge_g(logits), (logits, g_new, d_new)

        (loss, (d_fake, g_new, d_new)), grads = jax.value_and_grad(loss_fn, has_aux=True)(gv["params"])
        return loss, d_fake, grads, g_new, d_new

    out = {name: compiled(fn, G_vars, D_vars)(G_vars, D_vars) for name, fn in
           (("eval", evaluate), ("d_step", d_step), ("g_step", g_step))}
    return fam, ref, m, G, G_vars, D, D_vars, out


def test_eval_images_and_logits(run):
    fam, ref, _, _, _, _, _, out = run
    img, d_fake, d_real, _, _ = out["eval"]
    _close(nchw(img), ref["eval/G_out"], f"{fam} eval/G_out")
    _close(d_fake, ref["eval/D_fake"], f"{fam} eval/D_fake")
    _close(d_real, ref["eval/D_real"], f"{fam} eval/D_real")


def test_eval_every_intermediate(run):
    fam, ref, _, _, G_vars, _, _, out = run
    _, _, _, gi, di = out["eval"]
    hooks = [k for k in ref if k.startswith(("eval/G_hook/", "eval/D_hook/"))]
    assert len(hooks) >= 19
    for key in hooks:
        net, module = key.split("/")[1], key.split("/", 2)[2]
        got = np.asarray(_lookup(gi if net == "G_hook" else di, module))[:2]
        _close(got.reshape(got.shape[0], -1) if got.ndim == 2 else nchw(got), ref[key], f"{fam} {key}")
    for key in [k for k in ref if k.startswith("eval/G_cond/")]:
        block = key.split("/", 2)[2]
        _close(gi[block]["cond"][0], ref[key], f"{fam} {key}")
    shared = np.asarray(G_vars["params"]["shared"]["weight"])[ref["in/y"]]  # G.shared: a plain nn.Embedding
    _close(shared, ref["eval/G_shared_y"], f"{fam} eval/G_shared_y")


def test_eval_leaves_every_buffer_unchanged(run):
    _, ref, _, G, G_vars, D, D_vars, _ = run
    y = ref["in/y"].astype(np.int32)

    def evaluate(gv, dv):
        img, g_cols = G.apply(gv, ref["in/z"], y, mutable=["sn", "batch_stats"])
        return g_cols, D.apply(dv, img, y, mutable=["sn"])[1]

    for before, after in zip((G_vars, D_vars), compiled(evaluate, G_vars, D_vars)(G_vars, D_vars)):
        for path, leaf in jax.tree_util.tree_leaves_with_path(after):
            node = before
            for k in path:
                node = node[k.key]
            np.testing.assert_array_equal(np.asarray(leaf), np.asarray(node), err_msg=jax.tree_util.keystr(path))


def test_train_mode_d_step(run):
    fam, ref, m, _, _, _, _, out = run
    img, (logits, _, loss_real, loss_fake), grads, _, _ = out["d_step"]
    _close(nchw(img), ref["train/G_out"], f"{fam} train/G_out")
    _close(logits[:8], ref["train/D_fake"], f"{fam} train/D_fake")
    _close(logits[8:], ref["train/D_real"], f"{fam} train/D_real")
    _close(loss_real, ref["train/D_loss_real"], f"{fam} D_loss_real")
    _close(loss_fake, ref["train/D_loss_fake"], f"{fam} D_loss_fake")
    assert float(loss_real) == pytest.approx(m["hinge"]["D_loss_real"], abs=ATOL * float(np.max(np.abs(ref["train/D_real"]))))
    _grads_close(convert.biggan_state_dict_from_variables({"params": grads}), _sub(ref, "train/D_grad/"), f"{fam} D_grad")


def test_train_mode_buffers_after_the_step(run):
    fam, ref, _, _, _, _, _, out = run
    _, (_, d_new, _, _), _, g_new, _ = out["d_step"]
    _, _, _, g_after_gstep, d_after_gstep = out["g_step"]
    for net, new, after_g in (("G", g_new, g_after_gstep), ("D", d_new, d_after_gstep)):
        got = convert.biggan_state_dict_from_variables(new)
        want = {k[len(f"train/{net}_buf_after/"):]: v for k, v in ref.items() if k.startswith(f"train/{net}_buf_after/")}
        assert sorted(got) == sorted(want), f"{fam} {net}: buffer names differ"
        for name, value in want.items():
            _close(got[name], value, f"{fam} {net}_buf_after/{name}")
        # the reference asserts the G step leaves the same buffers (same start, data-independent SN update)
        for name, value in convert.biggan_state_dict_from_variables(after_g).items():
            _close(value, want[name], f"{fam} {net} buffers after the G step: {name}")


def test_train_mode_hooks(run):
    fam, ref, _, _, _, _, _, out = run
    hooks = out["d_step"][4]
    for key in [k for k in ref if k.startswith("train/G_hook/")]:
        module = key.split("/", 2)[2]
        got = np.asarray(_lookup(hooks, module))
        _close(got if got.ndim == 2 else nchw(got), ref[key], f"{fam} {key}")
    for key in [k for k in ref if k.startswith("train/G_cond/")]:
        _close(hooks[key.split("/", 2)[2]]["cond"][0], ref[key], f"{fam} {key}")


def test_train_mode_g_step(run):
    fam, ref, m, _, _, _, _, out = run
    loss, d_fake, grads, _, _ = out["g_step"]
    _close(loss, ref["train/G_loss"], f"{fam} G_loss")
    assert float(loss) == pytest.approx(m["hinge"]["G_loss"], abs=ATOL * float(np.max(np.abs(ref["train/D_fake_Gstep"]))))
    _close(d_fake, ref["train/D_fake_Gstep"], f"{fam} D_fake_Gstep")
    _grads_close(convert.biggan_state_dict_from_variables({"params": grads}), _sub(ref, "train/G_grad/"), f"{fam} G_grad")


@pytest.mark.parametrize("net", ["G", "D"])
def test_orthogonal_regularisation(run, net):
    """Paper form R = beta ||W W^T (.) (1 - I)||^2 per weight; its gradient is twice ``utils.ortho``'s."""
    fam, ref, m, _, G_vars, _, D_vars, _ = run
    params = (G_vars if net == "G" else D_vars)["params"]
    info = m["ortho"][net]
    blacklist = tuple(n[: -len(".weight")] for n in info["blacklist"])
    beta = info["beta"]

    def penalties(p):
        per = {".".join(k): recipe.ortho_penalty({"w": w}, beta) for k, w in flax.traverse_util.flatten_dict(p).items()}
        total, grads = jax.value_and_grad(lambda q: recipe.ortho_penalty(q, beta, blacklist))(p)
        return per, total, grads

    per, total, grads = compiled(penalties, params)(params)
    for name, r_ref in info["paper_R_per_param"].items():
        assert float(per[name]) == pytest.approx(r_ref, rel=2e-4, abs=1e-12), f"{fam} {net} R({name})"
    assert float(total) == pytest.approx(info["paper_R_total"], rel=1e-4)
    got = convert.biggan_state_dict_from_variables({"params": grads})
    want = _sub(ref, f"ortho/{net}_grad/")
    _grads_close({k: 0.5 * got[k] for k in want}, want, f"{fam} ortho/{net}_grad (half the paper-form gradient)")
    for name in sorted(set(got) - set(want)):  # 1-D / 0-D parameters and the blacklist get no gradient
        assert not np.any(got[name]), f"{fam} {net}: {name} should get no orthogonal-regularisation gradient"


# ----------------------------------------------------------------------------------------------
# layers.npz: blocks and the two ccbn numerics.


@pytest.fixture(scope="module")
def layers():
    return load_npz(FAMILY, "layers.npz")


def _sub(ref, prefix):
    return {k[len(prefix):]: v for k, v in ref.items() if k.startswith(prefix)}


def _load_layer(module, state, *example):
    abstract = jax.eval_shape(lambda: module.init({"params": jax.random.key(0)}, *example))
    return convert.biggan_variables_from_state_dict(module, state, abstract=abstract)


CONV_KW = {"use_sn": True, "num_svs": 1, "num_itrs": 1, "eps": 1e-6, "init_style": "ortho", "dtype": jnp.float32}


def _run_layer(module, variables, args):
    f = lambda v, *a: (module.apply(v, *a, train=False), module.apply(v, *a, train=True, mutable=["sn", "batch_stats"]))
    return compiled(f, variables, *args)(variables, *args)


@pytest.mark.parametrize("block", ["deep_gblock", "deep_dblock"])
def test_deep_blocks_channel_drop_and_concat_skip(layers, block):
    if block == "deep_gblock":
        bn_kw = {"input_size": 24, "eps": 1e-5, "mybn": False, "norm_style": "bn", "shared": True, "use_sn": True,
                 "num_svs": 1, "num_itrs": 1, "sn_eps": 1e-6, "init_style": "ortho"}
        module = biggan.DeepGBlock(16, 8, True, 4, bn_kw, CONV_KW)
        args = (nhwc(layers["deep_gblock/in_x"]), layers["deep_gblock/in_y"])
    else:
        module = biggan.DeepDBlock(8, 16, True, 4, CONV_KW)
        args = (nhwc(layers["deep_dblock/in_x"]),)
    variables = _load_layer(module, _sub(layers, f"{block}/state/"), *args)
    eval_out, (train_out, after) = _run_layer(module, variables, args)
    _close(nchw(eval_out), layers[f"{block}/eval_out"], f"{block} eval_out")
    _close(nchw(train_out), layers[f"{block}/train_out"], f"{block} train_out")
    got = convert.biggan_state_dict_from_variables(after)
    want = _sub(layers, f"{block}/train_buf_after/")
    assert sorted(got) == sorted(want)
    for name in want:
        _close(got[name], want[name], f"{block} train_buf_after/{name}")


@pytest.mark.parametrize("variant", ["plain", "mybn"])
def test_ccbn_plain_and_mybn(layers, variant):
    """mybn=False: F.batch_norm (biased var to normalise, unbiased running var); mybn=True: myBN (biased both)."""
    module = ConditionalBatchNorm(6, 5, eps=1e-5, mybn=variant == "mybn", sn_eps=1e-6)
    x, c = nhwc(layers["bn_variants/in_x"]), layers["bn_variants/in_y"]
    variables = _load_layer(module, _sub(layers, f"bn_variants/{variant}/state/"), x, c)
    _, (train_out, after) = _run_layer(module, variables, (x, c))
    _close(nchw(train_out), layers[f"bn_variants/{variant}/train_out"], f"{variant} train_out")
    got = convert.biggan_state_dict_from_variables(after)
    want = _sub(layers, f"bn_variants/{variant}/train_buf_after/")
    assert sorted(got) == sorted(want)
    for name in want:
        _close(got[name], want[name], f"{variant} train_buf_after/{name}")
    updated = {**variables, **after}
    eval_out = compiled(lambda v: module.apply(v, x, c), updated)(updated)
    _close(nchw(eval_out), layers[f"bn_variants/{variant}/eval_out_after_train"], f"{variant} eval_out_after_train")


# ----------------------------------------------------------------------------------------------
# Full-size parameter counts, by shape only.


@pytest.mark.parametrize("name, deep", [("BigGAN_128", False), ("BigGAN-deep_128", True), ("BigGAN-deep_256", True)])
def test_full_size_parameter_counts(meta, name, deep):
    from gan_jax.configs import biggan_common

    ref = meta["param_counts_full_size"][name]
    config = biggan_common.biggan(resolution=int(name.rsplit("_", 1)[1]), deep=deep)
    config.model.c_dim = 1000
    if name == "BigGAN_256":
        config.model.G.z_dim = 120  # the launch setting the counts use (hier silently uses 119)
    counts = recipe.param_counts(config)
    assert counts == {"G": ref["G"], "D": ref["D"]}
    G, D = recipe.build_networks(config)
    buffers = lambda net: sum(int(np.prod(s)) for n, s in convert.biggan_state_shapes(net).items()
                              if n.rsplit(".", 1)[-1] in ("u0", "sv0", "stored_mean", "stored_var"))
    assert (buffers(G), buffers(D)) == (ref["G_buffers_numel"], ref["D_buffers_numel"])
