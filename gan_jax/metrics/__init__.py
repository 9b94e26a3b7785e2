"""Image-quality metrics: the FID Inception-v3, FID / KID / IS, real-statistics cache, and ProGAN's
sliced Wasserstein distance (``gan_jax.metrics.swd.sliced_wasserstein``) and MS-SSIM
(``gan_jax.metrics.ms_ssim.ms_ssim``), which need no weights file (docs/metrics.md).

Submodules are imported by name (``from gan_jax.metrics import swd``); this package imports none of
them, so importing it stays free of JAX.
"""
