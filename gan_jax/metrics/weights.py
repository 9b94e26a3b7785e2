"""The FID Inception's weights, from the files users have; no torch at run time.

Looked for, in order: the path given (``--config.fid.inception``), ``$GAN_JAX_INCEPTION``, the
converted cache ``~/.cache/gan_jax/inception-2015-12-05.npz``, pytorch-fid's file where torch hub
keeps it (``~/.cache/torch/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth``) or in the
gan_jax cache folder. Without any, :func:`load_inception` downloads pytorch-fid's release file
(checked against the sha256 prefix in its name, as torch hub does) when ``download=True``, or
raises :class:`InceptionWeightsMissing` saying where to put the file.

pytorch-fid's ``.pth`` is a ``torch.save`` state dict read by :mod:`gan_jax.torch_file` (restricted
unpickler, never executes the file). NVIDIA's ``inception-2015-12-05.pt`` is a TorchScript
archive (``torch.jit.save``): its parameters are the same TF graph's, but reading TorchScript needs
its module layout, which this loader does not know yet; it says so and names the pytorch-fid file.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from gan_jax import restricted_pickle as rp
from gan_jax.layouts import permutations
from gan_jax.metrics.inception import InceptionV3

PYTORCH_FID_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_FILE = os.path.basename(PYTORCH_FID_URL)
_SHA256_PREFIX = "6726825d"  # torch hub convention: the file name carries its sha256's first hex digits
CONVERTED = "inception-2015-12-05.npz"


def cache_dir() -> str:
    """``$XDG_CACHE_HOME/gan_jax`` (default ``~/.cache/gan_jax``): converted weights, real statistics."""
    return os.path.join(os.path.expanduser(os.environ.get("XDG_CACHE_HOME") or "~/.cache"), "gan_jax")


class InceptionWeightsMissing(FileNotFoundError):
    """No Inception weights file was found (and none could be downloaded)."""


class InceptionWeightsError(rp.RestrictedPickleError):
    """A weights file that cannot be read (corrupt, hostile, or not a weights file); one line naming it."""


class InceptionWeightsMismatch(InceptionWeightsError):
    """A weights file whose names or shapes are not those of the FID Inception."""


def abstract_variables() -> dict[str, Any]:
    """The Inception's variables as shapes only (no compute)."""
    return jax.eval_shape(lambda: InceptionV3().init(jax.random.PRNGKey(0), jnp.zeros((1, 299, 299, 3))))


def _torch_to_flax(name: str, value: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """conv ``[out, in, kh, kw]`` -> ``[kh, kw, in, out]``, fc ``[out, in]`` -> ``[in, out]``."""
    path = tuple(name.split("."))
    return path, permutations.PYTORCH_FID.from_upstream(path[-1], value)


def variables_from_pytorch_fid(state: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """pytorch-fid's ``FIDInceptionV3`` state dict -> ``{'params': ...}`` for :class:`InceptionV3`.

    Every name and shape is checked against the network; ``num_batches_tracked`` counters are
    dropped. Raises :class:`InceptionWeightsMismatch` listing each missing, unexpected or
    wrong-shaped tensor.
    """
    want = traverse_util.flatten_dict(abstract_variables()["params"])
    got: dict[tuple[str, ...], np.ndarray] = {}
    problems: list[str] = []
    for name, value in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        path, value = _torch_to_flax(name, np.asarray(value))
        if path not in want:
            problems.append(f"  unexpected {name} {tuple(value.shape)}")
        elif tuple(want[path].shape) != value.shape:
            problems.append(f"  {name}: expected {tuple(want[path].shape)} (Flax layout), found {value.shape}")
        else:
            got[path] = value.astype(np.float32)
    problems += [f"  missing {'.'.join(p)} {tuple(want[p].shape)}" for p in want if p not in got and
                 not any(line.startswith(f"  {'.'.join(p)}:") for line in problems)]
    if problems:
        listed = "; ".join(p.strip() for p in problems[:4]) + ("; ..." if len(problems) > 4 else "")
        raise InceptionWeightsMismatch("not the FID Inception-v3 (pytorch-fid's pt_inception-2015-12-05): "
                                       f"{len(problems)} problem(s): {listed}")
    return {"params": traverse_util.unflatten_dict(got)}


def _candidates(path: str | None) -> list[str]:
    out = [path] if path else []
    if os.environ.get("GAN_JAX_INCEPTION"):
        out.append(os.environ["GAN_JAX_INCEPTION"])
    hub = os.path.join(os.path.expanduser(os.environ.get("TORCH_HOME", "~/.cache/torch")), "hub", "checkpoints")
    out += [os.path.join(cache_dir(), CONVERTED), os.path.join(hub, PYTORCH_FID_FILE), os.path.join(cache_dir(), PYTORCH_FID_FILE)]
    return out


def _npy_array(raw: bytes, what: str) -> np.ndarray:
    """One ``.npy`` member; its header's shape must match the bytes that follow (numpy would
    otherwise allocate the declared shape first)."""
    f = io.BytesIO(raw)
    version = np.lib.format.read_magic(f)
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = header(f, max_header_size=10_000)
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise InceptionWeightsError(f"{what} is a {rp.clean(str(dtype), 40)} array, not a numeric one")
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need != len(raw) - f.tell():
        raise InceptionWeightsError(f"{what}: header says {need} bytes of data, the member holds {len(raw) - f.tell()}")
    rp.charge(need, what)
    return np.frombuffer(raw, dtype=dtype, offset=f.tell()).reshape(shape, order="F" if fortran else "C").copy()


def _read_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays of a converted ``.npz`` (a zip of ``.npy`` members), each member decompressed
    under restricted_pickle's budget and parsed without pickles."""
    with open(path, "rb") as f:
        data = f.read()
    with rp.array_budget(len(data)), zipfile.ZipFile(io.BytesIO(data)) as z:
        rp.check_zip(z, path)
        state = {}
        for name in z.namelist():
            if not name.endswith(".npy"):
                raise InceptionWeightsError(f"{path}: member {rp.clean(name, 60)} is not a .npy array")
            raw = rp.read_member(z, name, "weights .npz")
            array = _npy_array(raw, f"{path}: member {rp.clean(name, 60)}")
            if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
                raise InceptionWeightsError(f"{path}: member {rp.clean(name, 60)} is not a numeric array")
            state[name[: -len(".npy")]] = array
    return state


def read_weights_file(path: str) -> dict[str, Any]:
    """Inception variables from ``path``: a converted ``.npz`` or pytorch-fid's ``.pth``.

    Any failure to read the file is one :class:`InceptionWeightsError` (a
    ``restricted_pickle.RestrictedPickleError``) with a one-line message naming the file;
    :class:`InceptionWeightsMismatch` (a subclass) when it is readable but not the FID Inception."""
    try:
        return _read_weights_file(path)
    except Exception as e:  # noqa: BLE001 (zipfile, numpy and the unpickler raise many kinds)
        raise rp.failure(InceptionWeightsError, path, e, "corrupt or not an FID Inception weights file") from None


def _read_weights_file(path: str) -> dict[str, Any]:
    if path.endswith(".npz"):
        state = _read_npz(path)
        want = traverse_util.flatten_dict(abstract_variables()["params"])
        flat = {tuple(k.split("/")): v for k, v in state.items()}
        bad = sorted({"/".join(p) for p in want} ^ set(state)) + [
            f"{'/'.join(p)} {flat[p].shape} != {tuple(s.shape)}" for p, s in want.items()
            if p in flat and flat[p].shape != tuple(s.shape)]
        if bad:
            raise InceptionWeightsMismatch(f"{path}: not a converted FID Inception ({rp.clean(', '.join(bad[:10]), 200)})")
        return {"params": traverse_util.unflatten_dict(flat)}
    from gan_jax import torch_file

    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        with zipfile.ZipFile(path) as z:
            scripted = any(n == "constants.pkl" or n.endswith("/constants.pkl") for n in z.namelist())
        if scripted:
            raise InceptionWeightsMismatch(
                f"{path} is a TorchScript archive (NVIDIA's inception-2015-12-05.pt?); gan_jax reads pytorch-fid's "
                f"{PYTORCH_FID_FILE} (the same TF graph's weights): download it from {PYTORCH_FID_URL}")
    return variables_from_pytorch_fid(torch_file.load_state_dict(path))


def _save_converted(variables: Mapping[str, Any], dest: str) -> None:
    flat = traverse_util.flatten_dict(variables["params"])
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=os.path.dirname(dest))
    os.close(fd)
    np.savez(tmp, **{"/".join(k): np.asarray(v) for k, v in flat.items()})
    os.replace(tmp, dest)


def download_pytorch_fid(dest_dir: str | None = None) -> str:
    """pytorch-fid's release file into ``dest_dir`` (default: the cache), sha256-checked; returns its path."""
    dest_dir = dest_dir or cache_dir()
    os.makedirs(dest_dir, exist_ok=True)
    dest = os.path.join(dest_dir, PYTORCH_FID_FILE)
    fd, tmp = tempfile.mkstemp(dir=dest_dir)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(PYTORCH_FID_URL, timeout=60) as src:
            shutil.copyfileobj(src, out)
        digest = hashlib.sha256(open(tmp, "rb").read()).hexdigest()  # noqa: SIM115
        if not digest.startswith(_SHA256_PREFIX):
            raise InceptionWeightsMismatch(f"downloaded {PYTORCH_FID_URL} has sha256 {digest}, expected {_SHA256_PREFIX}...")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def missing_message(path: str | None = None) -> str:
    where = "\n".join(f"  {p}" for p in _candidates(path))
    return (f"no FID Inception weights found; looked at:\n{where}\n"
            f"Put pytorch-fid's {PYTORCH_FID_FILE} (from {PYTORCH_FID_URL}) at one of these paths, "
            "or pass --config.fid.inception=PATH")


def find_weights(path: str | None = None) -> str | None:
    """The first existing weights file of the search order, or None."""
    if path and not os.path.exists(path):
        raise InceptionWeightsMissing(f"FID Inception weights {path} do not exist")
    return next((p for p in _candidates(path) if os.path.exists(p)), None)


def load_inception(path: str | None = None, download: bool = False, cache: bool = True) -> dict[str, Any]:
    """The FID Inception's variables (see the module docstring for where they come from).

    A ``.pth`` read once is cached converted as ``~/.cache/gan_jax/inception-2015-12-05.npz``.
    """
    found = find_weights(path)
    if found is None:
        if not download:
            raise InceptionWeightsMissing(missing_message(path))
        try:
            found = download_pytorch_fid()
        except OSError as err:
            raise InceptionWeightsMissing(f"{missing_message(path)}\n(download failed: {err})") from None
    variables = read_weights_file(found)
    if cache and not found.endswith(".npz") and path is None:
        try:
            _save_converted(variables, os.path.join(cache_dir(), CONVERTED))
        except OSError:
            pass  # a read-only home: convert again next time
    return variables
