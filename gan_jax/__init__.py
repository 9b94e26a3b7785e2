"""gan_jax: ProGAN, StyleGAN, StyleGAN2 and BigGAN as pure-functional Flax modules."""

__version__ = "0.1.0"
