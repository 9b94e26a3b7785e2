"""The training configs, installed as the package ``gan_jax.configs`` (setup.py maps this folder).

Each file is an ml_collections config file: ``python -m gan_jax.main --config=configs/NAME.py[:VARIANT]``.
A path that does not exist relative to the current folder is looked up here, so the README's
commands work after ``pip install .`` from any folder. The shared defaults are imported as
``from gan_jax.configs import common`` (``progan_common``, ``stylegan_common``, ``biggan_common``),
which works in a config file anywhere: copy one, edit it, pass its path to ``--config``.
"""
