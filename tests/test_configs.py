"""The shipped configs build NVIDIA's networks: parameter counts of the official presets
(fixtures/stylegan2_ada/param_counts.json), by shape only."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from conftest import load_json
from gan_jax.configs import default, stylegan2_bench32, stylegan2_cifar10, stylegan2_ffhq
from gan_jax import convert, train
from gan_jax.recipes import stylegan2 as recipe


def _counts(config):
    G, D = recipe.build_networks(config)
    count = lambda net: sum(int(np.prod(s)) for k, s in convert.upstream_state_shapes(net).items()
                            if not k.endswith(("resample_filter", "noise_const", "w_avg")))
    return count(G), count(D), G.num_ws


@pytest.mark.parametrize("module, variant, cfg, c_dim", [
    (stylegan2_ffhq, None, "ffhq1024_stylegan2", 0),
    (stylegan2_ffhq, "256", "paper256", 0),
    (stylegan2_cifar10, None, "cifar", 10),
])
def test_configs_build_the_official_presets(module, variant, cfg, c_dim):
    ref = load_json("stylegan2_ada", "param_counts.json")[cfg]
    config = module.get_config(variant) if variant else module.get_config()
    config.model.c_dim = c_dim  # what the dataset's labels decide at start-up
    assert _counts(config) == (ref["G"]["params"], ref["D"]["params"], ref["G_num_ws"])


@pytest.mark.parametrize("module, variant", [(default, None), (default, "tiny"), (stylegan2_ffhq, "tiny"),
                                             (stylegan2_cifar10, "tiny"), (stylegan2_bench32, None)])
def test_every_config_builds_a_state(module, variant):
    config = module.get_config(variant) if variant else module.get_config()
    config.model.c_dim = 10 if config.data.use_labels else 0
    config.train.num_shards = 1
    abstract = jax.eval_shape(lambda: recipe.StyleGAN2(config, num_shards=1).create_state(jax.random.PRNGKey(0)))
    assert abstract.params["G"] and abstract.opt_state["D"]


def test_ffhq_without_its_data_names_the_prepare_command(tmp_path):
    config = stylegan2_ffhq.get_config()
    config.data.source = str(tmp_path / "ffhq1024.zip")
    with pytest.raises(FileNotFoundError, match=r"python -m gan_jax\.data\.prepare --source=\S+ --dest=~/datasets/ffhq1024\.zip --resolution=1024"):
        train.open_dataset(config)


def test_variants_are_checked():
    with pytest.raises(ValueError, match="unknown variant 'huge'"):
        stylegan2_ffhq.get_config("huge")


_FAMILY_CONFIGS = ["progan_celebahq", "progan_cifar10", "stylegan_ffhq", "biggan_imagenet128", "biggan_imagenet256",
                   "biggan_deep_imagenet128", "biggan_deep_imagenet256", "biggan_cifar10"]


@pytest.mark.parametrize("name", _FAMILY_CONFIGS)
@pytest.mark.parametrize("variant", [None, "tiny"])
def test_family_configs_build_a_state_by_shape(name, variant):
    import importlib  # noqa: PLC0415

    from gan_jax import recipes  # noqa: PLC0415

    config = importlib.import_module(f"gan_jax.configs.{name}").get_config(variant)
    config.model.c_dim = (10 if variant else 1000 if "imagenet" in name else 10) if config.data.use_labels else 0
    recipe = recipes.build(config)
    state = jax.eval_shape(lambda: recipe.create_state(jax.random.PRNGKey(0)))
    assert state.params["G"] and state.params["D"]
    assert config.fid.every_kimg == 0 if variant else config.fid.every_kimg > 0  # FID logged in real runs only
