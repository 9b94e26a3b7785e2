"""Image-quality metrics: the FID Inception-v3, FID / KID / IS, real-statistics cache."""
