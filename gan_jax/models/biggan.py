"""BigGAN and BigGAN-deep (Brock et al. 2019, arXiv 1809.11096) as the author's BigGAN-PyTorch defines them
(ajbrock/BigGAN-PyTorch 9845943: ``BigGAN.py``, ``BigGANdeep.py``, ``layers.py``).

One class per reference class, with the reference's constructor keywords as fields and its child
names as Flax names, so that a Flax variable path is the reference ``state_dict`` name:
``params/blocks.1.0/conv1/weight`` is ``blocks.1.0.conv1.weight``, ``sn/linear/u0`` is
``linear.u0``, ``batch_stats/output_layer.0/stored_mean`` is ``output_layer.0.stored_mean``.

Collections: ``params`` (trainable), ``sn`` (spectral-norm ``u{i}`` / ``sv{i}``), ``batch_stats``
(BatchNorm ``stored_mean`` / ``stored_var``). ``__call__(..., train=False)`` is the reference's eval
mode; ``train=True`` uses batch statistics and, where ``sn`` / ``batch_stats`` are mutable, writes the
new u, sigma and running statistics (``mutable=['sn', 'batch_stats']``).

Arrays are NHWC; conv weights ``[kh, kw, in, out]``; linear weights ``[out, in]`` and embeddings
``[n, dim]`` as the reference stores them. G takes **integer** class labels ``y`` [N] and embeds
them itself (``G.shared``); ``y_embedded`` passes an already-embedded vector instead (the
reference's ``G(z, G.shared(y))`` form, for class interpolation).

Every size comes from the constructor arguments through the reference's arch tables (``G_arch`` /
``D_arch``), for resolutions 32, 64, 128, 256 and 512. The reference has no 512 entry in
``BigGAN.D_arch`` or in either BigGAN-deep table; those entries follow the paper's appendix B /
compare_gan's ``resnet_biggan{,_deep}.py`` channel multipliers (``[1, 1, 2, 4, 8, 8, 16, 16]`` for D,
``[16, 16, 8, 8, 4, 2, 1, 1]`` for G). ``G_kernel_size`` / ``D_kernel_size`` are recorded and unused,
as upstream (``which_conv`` is always 3x3). This module imports only jax, flax and numpy.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.nn.attention import Attention
from gan_jax.nn.batch_norm import BatchNorm, ConditionalBatchNorm
from gan_jax.nn.spectral_norm import INIT_STYLES, SNConv2d, SNEmbedding, SNLinear

Dtype = Any
RESOLUTIONS = (32, 64, 128, 256, 512)


def _attn(attention: str, lo: int, hi: int) -> dict[int, bool]:
    wanted = [int(item) for item in str(attention).split("_")]
    return {2**i: 2**i in wanted for i in range(lo, hi)}


def _check_res(resolution: int, table: dict, who: str) -> dict:
    if resolution not in table:
        raise ValueError(f"{who}: resolution must be one of {sorted(table)}, got {resolution}")
    return table[resolution]


def G_arch(ch: int = 64, attention: str = "64") -> dict[int, dict]:
    """``BigGAN.G_arch`` (the 512 entry is also the reference's)."""
    mults = {512: ([16, 16, 8, 8, 4, 2, 1], [16, 8, 8, 4, 2, 1, 1]), 256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1]),
             128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]), 64: ([16, 16, 8, 4], [16, 8, 4, 2]), 32: ([4, 4, 4], [4, 4, 4])}
    arch = {}
    for res, (ins, outs) in mults.items():
        n = len(ins)
        arch[res] = {"in_channels": [ch * m for m in ins], "out_channels": [ch * m for m in outs],
                     "upsample": [True] * n, "resolution": [8 * 2**i for i in range(n)],
                     "attention": _attn(attention, 3, 4 + n)}
    return arch


def D_arch(ch: int = 64, attention: str = "64") -> dict[int, dict]:
    """``BigGAN.D_arch``; 512 from compare_gan (``[1, 1, 2, 4, 8, 8, 16, 16]``, 7 downsamples)."""
    arch = {
        512: {"in_channels": [3] + [ch * m for m in [1, 1, 2, 4, 8, 8, 16]],
              "out_channels": [ch * m for m in [1, 1, 2, 4, 8, 8, 16, 16]],
              "downsample": [True] * 7 + [False], "resolution": [256, 128, 64, 32, 16, 8, 4, 4],
              "attention": _attn(attention, 2, 9)},
        256: {"in_channels": [3] + [ch * m for m in [1, 2, 4, 8, 8, 16]],
              "out_channels": [ch * m for m in [1, 2, 4, 8, 8, 16, 16]],
              "downsample": [True] * 6 + [False], "resolution": [128, 64, 32, 16, 8, 4, 4],
              "attention": _attn(attention, 2, 8)},
        128: {"in_channels": [3] + [ch * m for m in [1, 2, 4, 8, 16]],
              "out_channels": [ch * m for m in [1, 2, 4, 8, 16, 16]],
              "downsample": [True] * 5 + [False], "resolution": [64, 32, 16, 8, 4, 4],
              "attention": _attn(attention, 2, 8)},
        64: {"in_channels": [3] + [ch * m for m in [1, 2, 4, 8]],
             "out_channels": [ch * m for m in [1, 2, 4, 8, 16]],
             "downsample": [True] * 4 + [False], "resolution": [32, 16, 8, 4, 4],
             "attention": _attn(attention, 2, 7)},
        32: {"in_channels": [3] + [ch * m for m in [4, 4, 4]],
             "out_channels": [ch * m for m in [4, 4, 4, 4]],
             "downsample": [True, True, False, False], "resolution": [16, 16, 16, 16],  # sic: the reference's 32-arch
             "attention": _attn(attention, 2, 6)},
    }
    return arch


def G_arch_deep(ch: int = 64, attention: str = "64") -> dict[int, dict]:
    """``BigGANdeep.G_arch``; 512 (absent upstream) as BigGAN's G 512 (compare_gan ``resnet_biggan_deep``)."""
    arch = G_arch(ch, attention)
    return arch


def D_arch_deep(ch: int = 64, attention: str = "64") -> dict[int, dict]:
    """``BigGANdeep.D_arch``; 512 (absent upstream) from compare_gan's multipliers ``[1, 1, 2, 4, 8, 8, 16, 16]``."""
    return {
        512: {"in_channels": [ch * m for m in [1, 1, 2, 4, 8, 8, 16]], "out_channels": [ch * m for m in [1, 2, 4, 8, 8, 16, 16]],
              "downsample": [True] * 7, "resolution": [256, 128, 64, 32, 16, 8, 4], "attention": _attn(attention, 2, 9)},
        256: {"in_channels": [ch * m for m in [1, 2, 4, 8, 8, 16]], "out_channels": [ch * m for m in [2, 4, 8, 8, 16, 16]],
              "downsample": [True] * 6 + [False], "resolution": [128, 64, 32, 16, 8, 4, 4], "attention": _attn(attention, 2, 8)},
        128: {"in_channels": [ch * m for m in [1, 2, 4, 8, 16]], "out_channels": [ch * m for m in [2, 4, 8, 16, 16]],
              "downsample": [True] * 5 + [False], "resolution": [64, 32, 16, 8, 4, 4], "attention": _attn(attention, 2, 8)},
        64: {"in_channels": [ch * m for m in [1, 2, 4, 8]], "out_channels": [ch * m for m in [2, 4, 8, 16]],
             "downsample": [True] * 4 + [False], "resolution": [32, 16, 8, 4, 4], "attention": _attn(attention, 2, 7)},
        32: {"in_channels": [ch * m for m in [4, 4, 4]], "out_channels": [ch * m for m in [4, 4, 4]],
             "downsample": [True, True, False, False], "resolution": [16, 16, 16, 16], "attention": _attn(attention, 2, 6)},
    }


def upsample2(x: jax.Array) -> jax.Array:
    """``F.interpolate(x, scale_factor=2)`` (nearest) on [N, H, W, C]."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def avg_pool2(x: jax.Array) -> jax.Array:
    """``nn.AvgPool2d(2)`` on [N, H, W, C]."""
    n, h, w, c = x.shape
    return jnp.mean(x.reshape(n, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def _check_common(who: str, init: str, param: str | None, cross_replica: bool = False) -> None:
    if init not in INIT_STYLES:
        raise ValueError(f"{who}: init must be one of {INIT_STYLES}, got {init!r}")
    if cross_replica:
        raise NotImplementedError(f"{who}: cross_replica=True (SyncBatchNorm) is not needed in gan_jax: every BatchNorm "
                                  "is over the global batch inside jit; build with cross_replica=False")
    if param is not None and param not in ("SN", "none"):
        raise ValueError(f"{who}: param must be 'SN' or 'none' (the reference treats anything but 'SN' as plain layers), got {param!r}")


def _check_labels(y: jax.Array, n: int, who: str) -> jax.Array:
    y = jnp.asarray(y)
    if y.shape != (n,) or not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"{who} expects integer class labels y of shape [{n}], got {y.dtype} {tuple(y.shape)}; "
                         "convert one-hot labels with argmax")
    return y


class _SNKw:
    """The keyword set of one network's ``which_conv`` / ``which_linear``."""

    @staticmethod
    def make(use_sn: bool, num_svs: int, num_itrs: int, eps: float, init: str, dtype: Dtype) -> dict[str, Any]:
        return {"use_sn": use_sn, "num_svs": num_svs, "num_itrs": num_itrs, "eps": eps, "init_style": init, "dtype": dtype}


# ----------------------------------------------------------------------------------------------
# BigGAN.


class GBlock(nn.Module):
    """``layers.GBlock``: ``x + conv2(relu(bn2(conv1(up(relu(bn1(x, c)))), c)))`` with a 1x1 ``conv_sc``
    when ``in != out`` or upsampling. ``x`` [N, H, W, in], ``c`` [N, input_size] -> [N, 2H, 2W, out]."""

    in_channels: int
    out_channels: int
    upsample: bool
    bn_kw: dict
    conv_kw: dict

    @nn.compact
    def __call__(self, x: jax.Array, c: jax.Array, train: bool = False) -> jax.Array:
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"{self.name}: expects {self.in_channels} input channels, got x of shape {tuple(x.shape)}")
        self.sow("intermediates", "cond", c)
        h = nn.relu(ConditionalBatchNorm(self.in_channels, name="bn1", **self.bn_kw)(x, c, train))
        if self.upsample:
            h, x = upsample2(h), upsample2(x)
        h = SNConv2d(self.out_channels, 3, name="conv1", **self.conv_kw)(h, train)
        h = nn.relu(ConditionalBatchNorm(self.out_channels, name="bn2", **self.bn_kw)(h, c, train))
        h = SNConv2d(self.out_channels, 3, name="conv2", **self.conv_kw)(h, train)
        if self.in_channels != self.out_channels or self.upsample:
            x = SNConv2d(self.out_channels, 1, name="conv_sc", **self.conv_kw)(x, train)
        return h + x


class Generator(nn.Module):
    """``BigGAN.Generator``. ``(z [N, z_dim], y int [N]) -> images [N, R, R, 3]`` in [-1, 1].

    With ``hier`` the latent is split into ``num_slots = len(stages) + 1`` chunks of
    ``dim_z // num_slots``: the first feeds ``linear``, stage i gets ``c_i = [shared(y), z_{i+1}]``
    (embedding first); ``z_dim = chunk * num_slots`` (the reference truncates ``dim_z`` to it).
    """

    G_ch: int = 64
    dim_z: int = 128
    bottom_width: int = 4
    resolution: int = 128
    G_kernel_size: int = 3
    G_attn: str = "64"
    n_classes: int = 1000
    num_G_SVs: int = 1
    num_G_SV_itrs: int = 1
    G_shared: bool = True
    shared_dim: int = 0
    hier: bool = False
    cross_replica: bool = False
    mybn: bool = False
    BN_eps: float = 1e-5
    SN_eps: float = 1e-12
    G_init: str = "ortho"
    G_param: str = "SN"
    norm_style: str = "bn"
    dtype: Dtype = jnp.float32

    # -- sizes ---------------------------------------------------------------------------------

    @property
    def arch(self) -> dict:
        return _check_res(self.resolution, G_arch(self.G_ch, self.G_attn), type(self).__name__)

    @property
    def num_slots(self) -> int:
        return len(self.arch["in_channels"]) + 1 if self.hier else 1

    @property
    def z_chunk_size(self) -> int:
        return self.dim_z // self.num_slots if self.hier else 0

    @property
    def z_dim(self) -> int:
        """The latent size the network takes (``dim_z`` truncated to ``chunk * num_slots`` with hier)."""
        return self.z_chunk_size * self.num_slots if self.hier else self.dim_z

    @property
    def shared_features(self) -> int:
        return self.shared_dim if self.shared_dim > 0 else self.dim_z

    @property
    def c_dim(self) -> int:
        return self.n_classes

    def _kw(self) -> tuple[dict, dict]:
        conv_kw = _SNKw.make(self.G_param == "SN", self.num_G_SVs, self.num_G_SV_itrs, self.SN_eps, self.G_init, self.dtype)
        bn_kw = {"input_size": self.shared_features + self.z_chunk_size if self.G_shared else self.n_classes,
                 "eps": self.BN_eps, "mybn": self.mybn, "norm_style": self.norm_style, "shared": self.G_shared,
                 "use_sn": self.G_param == "SN", "num_svs": self.num_G_SVs, "num_itrs": self.num_G_SV_itrs,
                 "sn_eps": self.SN_eps, "init_style": self.G_init}
        return conv_kw, bn_kw

    def _embed(self, y, y_embedded, n: int, train: bool):
        if y_embedded is not None:
            return y_embedded
        y = _check_labels(y, n, type(self).__name__)
        if not self.G_shared:
            return y  # layers.identity: the ccbn embeddings take the class index
        return SNEmbedding(self.n_classes, self.shared_features, use_sn=False, init_style=self.G_init, name="shared")(y, train)

    def _check_z(self, z: jax.Array) -> None:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"{type(self).__name__} expects z of shape [N, {self.z_dim}], got {tuple(z.shape)}")

    def _output(self, h: jax.Array, train: bool, conv_kw: dict) -> jax.Array:
        h = BatchNorm(h.shape[-1], mybn=self.mybn, name="output_layer.0")(h, train)  # eps: layers.bn default 1e-5
        h = SNConv2d(3, 3, name="output_layer.2", **conv_kw)(nn.relu(h), train)
        return jnp.tanh(h.astype(jnp.float32))

    @nn.compact
    def __call__(self, z: jax.Array, y: jax.Array | None, train: bool = False, y_embedded: jax.Array | None = None) -> jax.Array:
        who = type(self).__name__
        _check_common(who, self.G_init, self.G_param, self.cross_replica)
        if self.hier and not self.G_shared:
            raise ValueError(f"{who}: hier=True needs G_shared=True (the reference concatenates shared(y) with the z chunks)")
        arch, (conv_kw, bn_kw) = self.arch, self._kw()
        self._check_z(z)
        n = z.shape[0]
        e = self._embed(y, y_embedded, n, train)
        if self.hier:
            zs = [z[:, i * self.z_chunk_size:(i + 1) * self.z_chunk_size] for i in range(self.num_slots)]
            z0, cs = zs[0], [jnp.concatenate([e, zi], axis=1) for zi in zs[1:]]
        else:
            z0, cs = z, [e] * len(arch["in_channels"])
        bw, c0 = self.bottom_width, arch["in_channels"][0]
        h = SNLinear(c0 * bw * bw, name="linear", **conv_kw)(z0.astype(jnp.float32), train)
        h = h.reshape(n, c0, bw, bw).transpose(0, 2, 3, 1)  # .view(B, C, bw, bw): channel-major
        for i in range(len(arch["out_channels"])):
            h = GBlock(arch["in_channels"][i], arch["out_channels"][i], arch["upsample"][i], bn_kw, conv_kw,
                       name=f"blocks.{i}.0")(h, cs[i], train)
            if arch["attention"][arch["resolution"][i]]:
                h = Attention(arch["out_channels"][i], **conv_kw, name=f"blocks.{i}.1")(h, train)
        return self._output(h, train, conv_kw)


class DBlock(nn.Module):
    """``layers.DBlock``: ``conv2(relu(conv1(act(x))))`` (then avg-pool) plus the shortcut; block 0
    (``preactivation=False``) pools then ``conv_sc``, the others ``conv_sc`` then pool.
    ``x`` [N, H, W, in] -> [N, H/2, W/2, out] (or same size without downsampling)."""

    in_channels: int
    out_channels: int
    wide: bool
    preactivation: bool
    downsample: bool
    conv_kw: dict

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"{self.name}: expects {self.in_channels} input channels, got x of shape {tuple(x.shape)}")
        hidden = self.out_channels if self.wide else self.in_channels
        h = nn.relu(x) if self.preactivation else x
        h = SNConv2d(hidden, 3, name="conv1", **self.conv_kw)(h, train)
        h = SNConv2d(self.out_channels, 3, name="conv2", **self.conv_kw)(nn.relu(h), train)
        if self.downsample:
            h = avg_pool2(h)
        learnable_sc = self.in_channels != self.out_channels or self.downsample
        if learnable_sc:
            sc = SNConv2d(self.out_channels, 1, name="conv_sc", **self.conv_kw)
        if self.preactivation:
            if learnable_sc:
                x = sc(x, train)
            if self.downsample:
                x = avg_pool2(x)
        else:
            if self.downsample:
                x = avg_pool2(x)
            if learnable_sc:
                x = sc(x, train)
        return h + x


class Discriminator(nn.Module):
    """``BigGAN.Discriminator``: ``(x [N, R, R, 3], y int [N]) -> logits [N, output_dim]``."""

    D_ch: int = 64
    D_wide: bool = True
    resolution: int = 128
    D_kernel_size: int = 3
    D_attn: str = "64"
    n_classes: int = 1000
    num_D_SVs: int = 1
    num_D_SV_itrs: int = 1
    SN_eps: float = 1e-12
    output_dim: int = 1
    D_init: str = "ortho"
    D_param: str = "SN"
    dtype: Dtype = jnp.float32

    @property
    def arch(self) -> dict:
        return _check_res(self.resolution, D_arch(self.D_ch, self.D_attn), type(self).__name__)

    @property
    def c_dim(self) -> int:
        return self.n_classes

    def _head(self, h: jax.Array, y: jax.Array, train: bool, conv_kw: dict) -> jax.Array:
        """``linear(h) + sum(embed(y) * h, 1)`` with ``h = sum_HW relu(x)`` (global SUM pooling, SN-GAN)."""
        h = jnp.sum(nn.relu(h.astype(jnp.float32)), axis=(1, 2))
        kw = {k: v for k, v in conv_kw.items() if k != "dtype"}
        out = SNLinear(self.output_dim, name="linear", **kw)(h, train)
        e = SNEmbedding(self.n_classes, h.shape[-1], name="embed", **kw)(y, train)
        return out + jnp.sum(e * h, axis=1, keepdims=True)

    def _prologue(self, x: jax.Array, y: jax.Array) -> tuple[dict, jax.Array]:
        who = type(self).__name__
        _check_common(who, self.D_init, None)
        if self.D_param != "SN":
            raise ValueError(f"{who}: D_param must be 'SN' (the reference has no option to turn off SN in D), got {self.D_param!r}")
        r = self.resolution
        if x.ndim != 4 or tuple(x.shape[1:]) != (r, r, 3):
            raise ValueError(f"{who} expects images of shape [N, {r}, {r}, 3] (NHWC), got {tuple(x.shape)}")
        y = _check_labels(y, x.shape[0], who)
        return _SNKw.make(True, self.num_D_SVs, self.num_D_SV_itrs, self.SN_eps, self.D_init, self.dtype), y

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array, train: bool = False) -> jax.Array:
        conv_kw, y = self._prologue(x, y)
        arch, h = self.arch, x
        for i in range(len(arch["out_channels"])):
            h = DBlock(arch["in_channels"][i], arch["out_channels"][i], self.D_wide, i > 0, arch["downsample"][i], conv_kw,
                       name=f"blocks.{i}.0")(h, train)
            if arch["attention"][arch["resolution"][i]]:
                h = Attention(arch["out_channels"][i], **conv_kw, name=f"blocks.{i}.1")(h, train)
        return self._head(h, y, train, conv_kw)


# ----------------------------------------------------------------------------------------------
# BigGAN-deep.


class DeepGBlock(nn.Module):
    """``BigGANdeep.GBlock`` (bottleneck, hidden = in // channel_ratio): 1x1 down, 3x3, 3x3, 1x1 up,
    each after cBN-ReLU; the skip drops channels ``x[..., :out]`` and both paths upsample after bn2.
    ``x`` [N, H, W, in], ``c`` [N, input_size] -> [N, H', W', out]."""

    in_channels: int
    out_channels: int
    upsample: bool
    channel_ratio: int
    bn_kw: dict
    conv_kw: dict

    @nn.compact
    def __call__(self, x: jax.Array, c: jax.Array, train: bool = False) -> jax.Array:
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"{self.name}: expects {self.in_channels} input channels, got x of shape {tuple(x.shape)} "
                             "(BigGAN-deep's G_arch supports G_depth <= 2 where the channels change)")
        self.sow("intermediates", "cond", c)
        hidden = self.in_channels // self.channel_ratio
        bn = lambda f, name: ConditionalBatchNorm(f, name=name, **self.bn_kw)
        h = SNConv2d(hidden, 1, name="conv1", **self.conv_kw)(nn.relu(bn(self.in_channels, "bn1")(x, c, train)), train)
        h = nn.relu(bn(hidden, "bn2")(h, c, train))
        if self.in_channels != self.out_channels:
            x = x[..., : self.out_channels]
        if self.upsample:
            h, x = upsample2(h), upsample2(x)
        h = SNConv2d(hidden, 3, name="conv2", **self.conv_kw)(h, train)
        h = SNConv2d(hidden, 3, name="conv3", **self.conv_kw)(nn.relu(bn(hidden, "bn3")(h, c, train)), train)
        h = SNConv2d(self.out_channels, 1, name="conv4", **self.conv_kw)(nn.relu(bn(hidden, "bn4")(h, c, train)), train)
        return h + x


class DeepGenerator(Generator):
    """``BigGANdeep.Generator``: ``G_depth`` bottleneck blocks per stage (only the last upsamples; the
    channel change happens in the blocks with index >= 1), z fed whole: ``zc = [shared(y), z]`` is the
    input of ``linear`` and the c of every cBN. ``blocks.{k}.0`` with ``k = stage * G_depth + index``; the
    attention is ``blocks.{k_last}.1`` of its stage. Requires ``hier=True`` and ``G_shared=True``, as the
    reference (``linear`` has ``dim_z + shared_dim`` inputs)."""

    G_depth: int = 2
    channel_ratio: int = 4  # BigGANdeep.GBlock default

    @property
    def arch(self) -> dict:
        return _check_res(self.resolution, G_arch_deep(self.G_ch, self.G_attn), type(self).__name__)

    @property
    def num_slots(self) -> int:
        return 1

    @property
    def z_chunk_size(self) -> int:
        return 0

    @property
    def z_dim(self) -> int:
        return self.dim_z

    def _kw(self) -> tuple[dict, dict]:
        conv_kw, bn_kw = super()._kw()
        bn_kw["input_size"] = self.shared_features + self.dim_z
        return conv_kw, bn_kw

    @nn.compact
    def __call__(self, z: jax.Array, y: jax.Array | None, train: bool = False, y_embedded: jax.Array | None = None) -> jax.Array:
        who = type(self).__name__
        _check_common(who, self.G_init, self.G_param, self.cross_replica)
        if not (self.hier and self.G_shared):
            raise ValueError(f"{who}: BigGAN-deep needs hier=True and G_shared=True (G.linear takes [shared(y), z])")
        arch, (conv_kw, bn_kw) = self.arch, self._kw()
        self._check_z(z)
        n = z.shape[0]
        zc = jnp.concatenate([self._embed(y, y_embedded, n, train), z.astype(jnp.float32)], axis=1)  # embedding first
        bw, c0 = self.bottom_width, arch["in_channels"][0]
        h = SNLinear(c0 * bw * bw, name="linear", **conv_kw)(zc, train)
        h = h.reshape(n, c0, bw, bw).transpose(0, 2, 3, 1)
        depth = self.G_depth
        for i in range(len(arch["out_channels"])):
            for g in range(depth):
                k = i * depth + g
                out = arch["in_channels"][i] if g == 0 else arch["out_channels"][i]
                h = DeepGBlock(arch["in_channels"][i], out, arch["upsample"][i] and g == depth - 1, self.channel_ratio, bn_kw,
                               conv_kw, name=f"blocks.{k}.0")(h, zc, train)
            if arch["attention"][arch["resolution"][i]]:
                h = Attention(arch["out_channels"][i], **conv_kw, name=f"blocks.{i * depth + depth - 1}.1")(h, train)
        return self._output(h, train, conv_kw)


class DeepDBlock(nn.Module):
    """``BigGANdeep.DBlock`` (always preactivated, hidden = out // channel_ratio): 1x1, 3x3, 3x3, ReLU,
    avg-pool, 1x1; skip ``[avgpool(x), conv_sc(avgpool(x))]`` (x first; ``conv_sc``: in -> out - in)."""

    in_channels: int
    out_channels: int
    downsample: bool
    channel_ratio: int
    conv_kw: dict

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"{self.name}: expects {self.in_channels} input channels, got x of shape {tuple(x.shape)}")
        hidden = self.out_channels // self.channel_ratio
        h = SNConv2d(hidden, 1, name="conv1", **self.conv_kw)(nn.relu(x), train)
        h = SNConv2d(hidden, 3, name="conv2", **self.conv_kw)(nn.relu(h), train)
        h = SNConv2d(hidden, 3, name="conv3", **self.conv_kw)(nn.relu(h), train)
        h = nn.relu(h)
        if self.downsample:
            h, x = avg_pool2(h), avg_pool2(x)
        h = SNConv2d(self.out_channels, 1, name="conv4", **self.conv_kw)(h, train)
        if self.in_channels != self.out_channels:
            x = jnp.concatenate([x, SNConv2d(self.out_channels - self.in_channels, 1, name="conv_sc", **self.conv_kw)(x, train)], axis=-1)
        return h + x


class DeepDiscriminator(Discriminator):
    """``BigGANdeep.Discriminator``: ``input_conv`` (3x3, no activation), ``D_depth`` DBlocks per stage
    (``blocks.{stage}.{j}``; only the first downsamples and changes channels), the attention as
    ``blocks.{stage}.{D_depth}``, then BigGAN's sum pooling and projection head."""

    D_depth: int = 2
    channel_ratio: int = 4  # BigGANdeep.DBlock default

    @property
    def arch(self) -> dict:
        return _check_res(self.resolution, D_arch_deep(self.D_ch, self.D_attn), type(self).__name__)

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array, train: bool = False) -> jax.Array:
        conv_kw, y = self._prologue(x, y)
        arch = self.arch
        h = SNConv2d(arch["in_channels"][0], 3, name="input_conv", **conv_kw)(x, train)
        for i in range(len(arch["out_channels"])):
            for j in range(self.D_depth):
                cin = arch["in_channels"][i] if j == 0 else arch["out_channels"][i]
                h = DeepDBlock(cin, arch["out_channels"][i], arch["downsample"][i] and j == 0, self.channel_ratio, conv_kw,
                               name=f"blocks.{i}.{j}")(h, train)
            if arch["attention"][arch["resolution"][i]]:
                h = Attention(arch["out_channels"][i], **conv_kw, name=f"blocks.{i}.{self.D_depth}")(h, train)
        return self._head(h, y, train, conv_kw)


NETWORKS = {"biggan": (Generator, Discriminator), "biggan_deep": (DeepGenerator, DeepDiscriminator)}
