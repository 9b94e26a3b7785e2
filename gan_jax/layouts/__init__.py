"""Upstream weight layouts <-> gan_jax Flax variables, one module per upstream code base.

* :mod:`gan_jax.layouts.stylegan2`: NVlabs/stylegan2-ada-pytorch ``state_dict`` (and the StyleGAN3
  repo's ``networks_stylegan2``);
* :mod:`gan_jax.layouts.stylegan`: NVlabs/stylegan TF ``Network.vars`` (G_style / D_basic);
* :mod:`gan_jax.layouts.progan`: tkarras/progressive_growing_of_gans TF ``Network.vars`` (G_paper / D_paper);
* :mod:`gan_jax.layouts.biggan`: ajbrock/BigGAN-PyTorch ``state_dict`` (BigGAN and BigGAN-deep);
* :mod:`gan_jax.layouts.permutations`: the one table of axis permutations between the upstream
  array layouts and gan_jax's, and which of them applies to which array of each upstream;
* :mod:`gan_jax.layouts.common`: name tables, the mismatch report (:class:`StateDictMismatch`)
  and the import / export loops the four share.

These modules import only jax, flax, numpy and gan_jax.models / gan_jax.nn.
"""
