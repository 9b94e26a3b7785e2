"""One full iteration of NVIDIA's StyleGAN2 training loop (fixtures/stylegan2_ada/sg2_32_train*):
every phase's losses, R1 and path-length values, pl_mean, w_avg, gradients for every parameter,
the lazy-regularisation Adam hyper-parameters, and G, D and G_ema after the iteration.

Tolerances: losses and regularisers 1e-5 relative; gradients 1e-4 of each tensor's largest
magnitude (float32 sums of up to 10^4 terms taken in another order); parameters after Adam 1e-6
of each tensor's scale (the fixture README: float32 Adam/EMA differ by ~1 ulp between kernels),
except that with beta1 = 0 Adam's step is ``lr * g / (|g| + eps)``: where |g| is within float32
noise of eps the step itself is uncertain, so up to 0.1% of the elements may differ by at most
the learning rate per step taken. A sign or gain error moves every element by ~lr and fails.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_json, load_npz, nhwc, stylegan2_train_config
from gan_jax import convert
from gan_jax.recipes import stylegan2 as recipe_lib
from tolerance import assert_close, assert_scalar_close, scale_of

FAMILY = "stylegan2_ada"
PHASES = ["Gmain", "Greg", "Dmain", "Dreg"]


@pytest.fixture(scope="module")
def fx():
    meta = load_json(FAMILY, "sg2_32_train.json")
    return meta, load_npz(FAMILY, "sg2_32_train_nets.npz"), load_npz(FAMILY, "sg2_32_train_iter.npz")


@pytest.fixture(scope="module")
def recipe(fx):
    return recipe_lib.StyleGAN2(stylegan2_train_config(fx[0]), num_shards=1)


def _state_dict(nets, prefix):
    return {k[len(prefix) + 1:]: v for k, v in nets.items() if k.startswith(prefix + "/")}


def _initial_state(recipe, nets):
    G, D = recipe.G, recipe.D
    g = convert.variables_from_state_dict(G, _state_dict(nets, "G_init"))
    d = convert.variables_from_state_dict(D.clone(mbstd_num_shards=1), _state_dict(nets, "D_init"))
    g_ema = convert.variables_from_state_dict(G, _state_dict(nets, "G_ema_init"))
    return recipe.create_state(jax.random.PRNGKey(0), g, d, g_ema)


def _noise_tree(arrays, prefix):
    """Recorded per-layer noise ``<prefix>synthesis.b8.conv0`` [N, 1, R, R] -> the 'noise_inputs' collection."""
    tree = {}
    for key, value in arrays.items():
        if key.startswith(prefix):
            _, blk, layer = key[len(prefix):].split(".")
            tree.setdefault("synthesis", {}).setdefault(blk, {})[layer] = {"noise": jnp.asarray(nhwc(value))}
    return tree


def _inputs_fn(it, fixed_z=None):
    def inputs(phase, key, batch):
        z = it[f"gen_z/{phase}"] if fixed_z is None else fixed_z
        n = it[f"ws/{phase}"].shape[0] if f"ws/{phase}" in it else z.shape[0]
        out = {"z": jnp.asarray(z[:n]), "c": None, "noise": _noise_tree(it, f"noise/{phase}/")}
        if phase == "Greg":
            out["pl_noise"] = jnp.asarray(nhwc(it["pl_noise/Greg"]))
        return out
    return inputs


def _batch(it):
    u8 = np.rint((it["real_img"].astype(np.float64) + 1) * 127.5).astype(np.uint8)
    np.testing.assert_array_equal(u8.astype(np.float32) / 127.5 - 1, it["real_img"])  # exact inverse
    return {"image": jnp.asarray(nhwc(u8))}


def _assert_params_close(got: dict, want: dict, what: str, lr_steps: float):
    bad_total = n_total = 0
    for name, ref in want.items():
        diff = np.abs(np.asarray(got[name], np.float64) - ref)
        tol = 1e-6 * max(float(np.abs(ref).max()), 1e-12)
        bad = diff > tol
        assert np.all(diff[bad] <= lr_steps * 1.01), f"{what}: {name} off by {diff.max():.3g} > {lr_steps:.3g}"
        bad_total += int(bad.sum())
        n_total += diff.size
    assert bad_total <= 1e-3 * n_total, f"{what}: {bad_total} of {n_total} elements outside 1e-6 of scale"


def _upstream(net, params):
    return convert.state_dict_from_variables(net, {"params": params})


def _assert_close_scaled(got: dict, want: dict, rel: float, what: str):
    for name, ref in want.items():
        scale = max(float(np.abs(ref).max()), 1e-12)
        assert_close(got[name], ref, atol=rel * scale, what=f"{what}: {name}")


def test_lazy_regularisation_adam_hyperparameters(fx, recipe):
    meta = fx[0]
    for phase, net in (("Gmain", "G"), ("Greg", "G"), ("Dmain", "D"), ("Dreg", "D")):
        ref = meta["phase_info"][phase]["opt"]
        hp = recipe.opt[net].hyperparams
        assert hp["lr"] == pytest.approx(ref["lr"], rel=1e-12)
        assert (hp["b1"], hp["b2"]) == pytest.approx(tuple(ref["betas"]), rel=1e-12)
        assert hp["eps"] == ref["eps"]
        assert meta["phase_info"][phase]["gain"] == {"Gmain": 1, "Greg": 4, "Dmain": 1, "Dreg": 16}[phase]


def test_ema_beta_is_the_half_life_of_the_global_batch(fx, recipe):
    cfg = fx[0]["config"]
    beta = float(recipe.ema_beta(jnp.asarray(0)))
    assert beta == pytest.approx(0.5 ** (cfg["batch_size"] / (cfg["ema_kimg"] * 1000)), rel=1e-6)
    ramped = recipe_lib.StyleGAN2(stylegan2_train_config(fx[0], ema_rampup=0.05), num_shards=1)
    for nimg in (0, 80, 800):  # ema_nimg = min(ema_kimg * 1000, cur_nimg * rampup)
        want = 0.5 ** (8 / max(min(80.0, nimg * 0.05), 1e-8))
        assert float(ramped.ema_beta(jnp.asarray(nimg))) == pytest.approx(want, rel=1e-5, abs=1e-30)


@pytest.fixture(scope="module")
def iteration(fx, recipe):
    """Run the four phases step by step, recording what each produced."""
    _, nets, it = fx
    state = _initial_state(recipe, nets)
    batch = _batch(it)
    inputs = _inputs_fn(it)
    rec = {}

    g, buffers, m = jax.jit(recipe.gmain_grads)(state, batch, inputs("Gmain", None, batch))
    rec["Gmain"] = (g, buffers, m)
    state = recipe.apply_grads(state, "G", recipe.opt["G"], g).replace(extra={**state.extra, "G_buffers": buffers})
    rec["after_Gmain"] = state.params["G"]

    g, buffers, pl_mean, m = jax.jit(recipe.greg_grads)(state, batch, inputs("Greg", None, batch))
    rec["Greg"] = (g, buffers, m, pl_mean)
    state = recipe.apply_grads(state, "G", recipe.opt["G"], g).replace(extra={**state.extra, "G_buffers": buffers, "pl_mean": pl_mean})

    g, buffers, m, _ = jax.jit(recipe.dmain_grads)(state, batch, inputs("Dmain", None, batch))
    rec["Dmain"] = (g, buffers, m)
    state = recipe.apply_grads(state, "D", recipe.opt["D"], g).replace(extra={**state.extra, "G_buffers": buffers})
    rec["after_Dmain"] = state.params["D"]

    g, m, _ = jax.jit(recipe.dreg_grads)(state, batch)
    rec["Dreg"] = (g, m)
    state = recipe.ema_update(recipe.apply_grads(state, "D", recipe.opt["D"], g))
    rec["final"] = state
    return rec


def test_phase_losses_and_regularisers(fx, iteration):
    it = fx[2]
    checks = {
        "Gmain": {"Loss/G/loss": "Loss/G/loss", "Loss/scores/fake": "Loss/scores/fake", "Loss/signs/fake": "Loss/signs/fake"},
        "Greg": {"Loss/pl_penalty": "Loss/pl_penalty", "Loss/G/reg": "Loss/G/reg"},
        "Dmain": {"Loss/D/loss": "Loss/D/loss", "Loss/scores/fake": "Loss/scores/fake", "Loss/scores/real": "Loss/scores/real",
                  "Loss/signs/fake": "Loss/signs/fake", "Loss/signs/real": "Loss/signs/real"},
        "Dreg": {"Loss/r1_penalty": "Loss/r1_penalty", "Loss/D/reg": "Loss/D/reg", "Loss/scores/real": "Loss/scores/real",
                 "Loss/signs/real": "Loss/signs/real"},
    }
    for phase, names in checks.items():
        metrics = iteration[phase][-1] if phase in ("Dreg",) else iteration[phase][2]
        for ours, theirs in names.items():
            # a mean of per-sample values (signed scores can cancel): rel at the scale of those values
            reported = it[f"report/{phase}/{theirs}"]
            assert_scalar_close(metrics[ours], np.mean(reported), rtol=1e-5, atol=1e-7, scale=scale_of(reported),
                                what=f"{phase} {ours}")


def test_pl_mean_and_w_avg(fx, recipe, iteration):
    it = fx[2]
    assert float(iteration["Greg"][3]) == pytest.approx(float(it["pl_mean_after/Greg"]), rel=1e-6)
    for phase in ("Gmain", "Greg", "Dmain"):
        assert_close(iteration[phase][1]["mapping"]["w_avg"], it[f"w_avg_after/{phase}"], atol=1e-6, what=phase)
    final = iteration["final"]
    assert_close(final.extra["G_buffers"]["mapping"]["w_avg"], it["w_avg_after/Dreg"], atol=1e-6)


@pytest.mark.parametrize("phase", PHASES)
def test_gradients_of_every_parameter(fx, recipe, iteration, phase):
    it = fx[2]
    net = recipe.G if phase.startswith("G") else recipe.D
    grads = _upstream(net, iteration[phase][0])
    want = {k.split("/", 2)[2]: v for k, v in it.items() if k.startswith(f"grad/{phase}/")}
    n_params = sum(1 for _ in jax.tree.leaves(iteration[phase][0]))
    assert len(want) == n_params
    for name, ref in want.items():
        if not np.any(ref):  # exact zero tensors upstream (README): ours must be zero too
            np.testing.assert_array_equal(grads[name], 0, err_msg=f"{phase}: {name}")
    _assert_close_scaled(grads, want, 1e-4, f"grad {phase}")


def test_params_after_each_adam_step_and_iteration(fx, recipe, iteration):
    _, nets, it = fx
    lr_g, lr_d = recipe.opt["G"].hyperparams["lr"], recipe.opt["D"].hyperparams["lr"]
    g_after = _upstream(recipe.G, iteration["after_Gmain"])
    _assert_params_close(g_after, {k.split("/", 1)[1]: v for k, v in it.items() if k.startswith("G_params_after_Gmain/")}, "G after Gmain", lr_g)
    d_after = _upstream(recipe.D, iteration["after_Dmain"])
    _assert_params_close(d_after, {k.split("/", 1)[1]: v for k, v in it.items() if k.startswith("D_params_after_Dmain/")}, "D after Dmain", lr_d)
    final = iteration["final"]
    _check_final(recipe, nets, final)


def _check_final(recipe, nets, state):
    g = convert.state_dict_from_variables(recipe.G, {"params": state.params["G"], "buffers": state.extra["G_buffers"]})
    d = convert.state_dict_from_variables(recipe.D, {"params": state.params["D"]})
    g_ema = convert.state_dict_from_variables(recipe.G, {"params": state.ema_params["G"], "buffers": state.extra["G_ema_buffers"]})
    lr_g, lr_d = recipe.opt["G"].hyperparams["lr"], recipe.opt["D"].hyperparams["lr"]
    for got, prefix, bound in ((g, "G_final", 2 * lr_g), (d, "D_final", 2 * lr_d), (g_ema, "G_ema_final", 2 * lr_g)):
        want = _state_dict(nets, prefix)
        assert sorted(got) == sorted(want), prefix
        _assert_params_close(got, want, prefix, bound)


def test_full_iteration_through_the_phase_table(fx, recipe):
    """The same iteration through ``phases()`` — the functions the trainer compiles — under one jit."""
    _, nets, it = fx
    table = recipe.phases(inputs_fn=_inputs_fn(it))
    assert [p.name for p in table] == ["Gmain", "Greg", "Dmain", "Dreg", "Gema"]
    assert [p.interval for p in table] == [1, 4, 1, 16, 1]

    @jax.jit
    def step(state, batch):
        for phase in table:
            state, _ = phase.fn(state, batch, None)
        return state

    _check_final(recipe, nets, step(_initial_state(recipe, nets), _batch(it)))


def test_r1_against_finite_differences(fx, recipe):
    """R1's gradient wrt the reals vs central differences of D, and its penalty vs the fixture's extra batch."""
    _, nets, _ = fx
    extra = load_npz(FAMILY, "sg2_32_train_extra.npz")
    state = _initial_state(recipe, nets)
    real = jnp.asarray(nhwc(extra["r1_real_img"]))
    d = lambda x: recipe.discriminate(state.params["D"], x, None)
    from gan_jax import losses
    penalty, _ = jax.jit(lambda x: losses.r1_penalty(d, x))(real)
    assert_close(penalty, extra["r1_penalty"], rtol=1e-4)
    # Along each sample's unit gradient direction, the directional derivative of sum(D) is
    # |grad_x_i D| = sqrt(R1_i): central differences must reproduce the penalty.
    grads = np.asarray(jax.grad(lambda x: jnp.sum(d(x)))(real), np.float64)
    total = jax.jit(lambda x: jnp.sum(d(x)))
    eps = 1e-2
    for i in range(real.shape[0]):
        direction = np.zeros_like(grads)
        direction[i] = grads[i] / np.linalg.norm(grads[i])
        fd = (float(total(jnp.asarray(real + eps * direction, jnp.float32))) -
              float(total(jnp.asarray(real - eps * direction, jnp.float32)))) / (2 * eps)
        assert fd**2 == pytest.approx(float(penalty[i]), rel=2e-2), i


def test_path_length_on_the_second_batch(fx, recipe):
    _, nets, _ = fx
    extra = load_npz(FAMILY, "sg2_32_train_extra.npz")
    state = _initial_state(recipe, nets)
    noise = _noise_tree(extra, "pl_noise_synth/")
    n = extra["pl_ws"].shape[0]
    inputs = {"z": jnp.asarray(extra["pl_gen_z"][:n]), "c": None, "noise": noise, "pl_noise": jnp.asarray(nhwc(extra["pl_noise"]))}
    from gan_jax import losses

    @jax.jit
    def run(state, inputs):
        ws, buffers = recipe.mapping(state.params["G"], state.extra["G_buffers"], inputs)
        lengths, img = losses.path_length(lambda w: recipe.synthesis(state.params["G"], buffers, w, inputs), ws, inputs["pl_noise"])
        return ws, lengths, img, recipe.greg_grads(state, {}, inputs)[2]

    ws, lengths, img, pl_mean = run(state, inputs)
    assert_close(ws, extra["pl_ws"], atol=1e-5)
    assert_close(np.transpose(np.asarray(img), (0, 3, 1, 2)), extra["pl_gen_img"], atol=1e-4)
    assert_close(lengths, extra["pl_lengths"], rtol=1e-4)
    assert float(pl_mean) == pytest.approx(float(extra["pl_mean_after"]), rel=1e-5)


def test_style_mixing_record(fx, recipe):
    """Gmain with style mixing 0.9: the fixture's cutoff (3) and z2 reproduce its mixed ws, image and loss."""
    _, nets, _ = fx
    extra = load_npz(FAMILY, "sg2_32_train_extra.npz")
    sm = recipe_lib.StyleGAN2(stylegan2_train_config(fx[0], style_mixing_prob=0.9), num_shards=1)
    state = _initial_state(sm, nets)
    noise = _noise_tree(extra, "sm_noise/")
    n = extra["sm_gen_z"].shape[0]
    cutoff = int(extra["sm_cutoff_drawn"])
    assert float(extra["sm_rand"]) < 0.9
    inputs = {"z": jnp.asarray(extra["sm_gen_z"]), "c": None, "noise": noise,
              "mix_z": jnp.asarray(extra["sm_z2"]), "mix_cutoff": jnp.full((n,), cutoff)}
    ws, buffers = jax.jit(sm.mapping)(state.params["G"], state.extra["G_buffers"], inputs)
    assert_close(ws, extra["sm_ws_mixed"], atol=1e-5)
    assert_close(buffers["mapping"]["w_avg"], extra["sm_w_avg_after"], atol=1e-6)
    grads, _, metrics = jax.jit(sm.gmain_grads)(state, {}, inputs)
    assert float(metrics["Loss/G/loss"]) == pytest.approx(float(np.mean(extra["sm_loss_Gmain"])), rel=1e-5)
    mapping_grads = {k: v for k, v in _upstream(sm.G, grads).items() if k.startswith("mapping.") and not k.endswith("w_avg")}
    _assert_close_scaled(mapping_grads, {k.split("/", 1)[1]: v for k, v in extra.items() if k.startswith("sm_grad/")}, 1e-4, "sm grads")
