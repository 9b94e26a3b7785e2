"""Safe reader of ``torch.save`` state dicts (``*.pth``, ``*.pt``), without torch.

A ``torch.save`` file is either a zip archive (``archive/data.pkl`` + one file per storage under
``archive/data/``, torch >= 1.6) or the legacy stream (magic number, protocol 1001, sys info, the
object pickle, the storage keys, then each storage's raw bytes). Both hold a pickle whose tensors
are ``torch._utils._rebuild_tensor_v2`` calls on persistent-id storages. This module reads them
with :mod:`gan_jax.nvidia_pickle`'s restricted machinery: the only globals allowed are
``collections.OrderedDict``, the tensor/parameter rebuild functions and the ``torch.<X>Storage``
dtype tokens; anything else (``os.system``, a module class) is refused and nothing from the file
runs. The result is ``{name: np.ndarray}`` in the file's order.

    state = load_state_dict("pt_inception-2015-12-05-6726825d.pth")   # pytorch-fid's weights
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
import struct
import zipfile
from typing import Any, BinaryIO

import numpy as np

from gan_jax import nvidia_pickle as _np_pickle

__all__ = ["TorchFileError", "load_state_dict"]


class TorchFileError(_np_pickle.NvidiaPickleError):
    """The file is not a plain ``torch.save`` state dict, or asks to run code."""


_TABLE: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _np_pickle._StandIn(_np_pickle._rebuild_tensor_v2, "torch._utils._rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"): _np_pickle._StandIn(_np_pickle._rebuild_parameter, "torch._utils._rebuild_parameter"),
    **{("torch", name): token for name, token in _np_pickle._STORAGE_TOKENS.items()},
}


class _Deferred:
    """A tensor rebuild call recorded while a legacy file's storages are still unread."""

    def __init__(self, fn: Any, args: tuple):
        self.fn, self.args = fn, args


class _StateUnpickler(pickle.Unpickler):
    """Globals from ``_TABLE`` only; persistent ids ``('storage', token, key, location, numel)``.
    ``deferred``: the rebuild calls are recorded (legacy files pickle tensors before their bytes)."""

    def __init__(self, file: BinaryIO, read_storage, deferred: bool = False):
        super().__init__(file, fix_imports=False)
        self._read_storage = read_storage
        self._deferred = deferred

    def find_class(self, module: str, name: str) -> Any:
        try:
            found = _TABLE[(module, name)]
        except (KeyError, TypeError):
            raise TorchFileError(_np_pickle._refusal(str(module), str(name)).replace(
                "an NVIDIA network pickle uses", "a torch state dict uses")) from None
        if self._deferred and isinstance(found, _np_pickle._StandIn):
            return _np_pickle._StandIn(lambda *args, _fn=found: _Deferred(_fn, args), f"{module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        ok = (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
              and isinstance(pid[1], _np_pickle._Token) and pid[1].qualname.startswith("torch.")
              and isinstance(pid[2], str) and re.fullmatch(r"[0-9A-Za-z_.-]+", pid[2]) is not None
              and type(pid[4]) is int and pid[4] >= 0)
        if not ok:
            raise TorchFileError(f"refused persistent id {pid!r:.100}")
        return self._read_storage(pid[1], pid[2], pid[4])


def _resolve(obj: Any) -> Any:
    if isinstance(obj, _Deferred):
        return obj.fn(*[_resolve(a) for a in obj.args])
    if isinstance(obj, dict):
        return type(obj)((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def _itemsize(token: Any) -> int:
    return 2 if token.dtype == "bfloat16" else np.dtype(token.dtype).itemsize


def _check_state(obj: Any, label: str) -> dict[str, np.ndarray]:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()):
        raise TorchFileError(f"{label}: not a state dict (expected a dict of names to tensors, found "
                             f"{type(obj).__name__})")
    return dict(obj)


def _load_zip(data: bytes, label: str) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = set(z.namelist())
        pkls = [n for n in names if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
        if len(pkls) != 1:
            raise TorchFileError(f"{label}: a zip without exactly one data.pkl (a TorchScript archive or a dataset?)")
        prefix = pkls[0][: -len("data.pkl")]
        if prefix + "constants.pkl" in names or prefix + "code/" in {n[: len(prefix) + 5] for n in names}:
            raise TorchFileError(f"{label}: a TorchScript archive (torch.jit.save), not a torch.save state dict")
        order = z.read(prefix + "byteorder").strip() if prefix + "byteorder" in names else b"little"
        if order not in (b"little", b"big"):
            raise TorchFileError(f"{label}: byteorder {order!r:.20}")
        cache: dict[str, _np_pickle._Storage] = {}

        def read_storage(token, key, numel):
            if key not in cache:
                member = prefix + "data/" + key
                if member not in names or z.getinfo(member).file_size != numel * _itemsize(token):
                    raise TorchFileError(f"storage {key!r} missing or of the wrong size")
                array = _np_pickle._storage_array(token, numel, z.read(member), f"storage {key}")
                if order == b"big" and array.dtype.itemsize > 1:
                    array = array.view(array.dtype.newbyteorder(">")).astype(array.dtype)
                cache[key] = _np_pickle._Storage(array)
            return cache[key]

        f = io.BytesIO(z.read(pkls[0]))
        _np_pickle._scan(f, "data.pkl")
        return _check_state(_StateUnpickler(f, read_storage).load(), label)


def _load_legacy(f: BinaryIO, label: str) -> dict[str, np.ndarray]:
    magic, _ = _np_pickle._load_payload_pickle(f)
    if magic != _np_pickle._TORCH_LEGACY_MAGIC:
        raise TorchFileError(f"{label}: a pickle, but not a torch.save file (no magic number)")
    version, _ = _np_pickle._load_payload_pickle(f)
    if version != _np_pickle._TORCH_LEGACY_PROTOCOL:
        raise TorchFileError(f"{label}: torch.save protocol {version!r}, expected 1001")
    _np_pickle._load_payload_pickle(f)  # sys_info: endianness and type sizes
    pending: dict[str, tuple[Any, int, _np_pickle._Storage]] = {}

    def read_storage(token, key, numel):
        if key not in pending:
            pending[key] = (token, numel, _np_pickle._Storage(np.zeros(0, np.float32)))
        return pending[key][2]

    _np_pickle._scan(f, "object pickle")
    obj = _StateUnpickler(f, read_storage, deferred=True).load()
    keys, _ = _np_pickle._load_payload_pickle(f)
    if not isinstance(keys, list) or sorted(keys) != sorted(pending):
        raise TorchFileError(f"{label}: storage key list does not match the tensors")
    for key in keys:
        token, numel, holder = pending[key]
        head = f.read(8)
        if len(head) != 8 or struct.unpack("<q", head)[0] != numel:
            raise TorchFileError(f"{label}: storage {key} element count missing or wrong")
        holder.array = _np_pickle._storage_array(token, numel, f.read(numel * _itemsize(token)), f"storage {key}")
    return _check_state(_resolve(obj), label)


def load_state_dict(path_or_bytes: Any) -> dict[str, np.ndarray]:
    """``{name: float/int np.ndarray}`` of a ``torch.save``'d state dict (zip or legacy format).

    Raises :class:`TorchFileError` naming the file for anything else (a TorchScript archive, a
    pickle that names other globals, a truncated file)."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        label, data = "<bytes>", bytes(path_or_bytes)
    else:
        label = os.fspath(path_or_bytes)
        with open(label, "rb") as f:
            data = f.read()
    size = len(data)
    _np_pickle._BUDGET.state = [6 * size + _np_pickle._BUDGET_SLACK] * 2
    try:
        if data[:4] == b"PK\x03\x04":
            return _load_zip(data, label)
        if data[:1] != b"\x80":
            raise TorchFileError(f"{label}: neither a zip nor a pickle; not a torch.save file (first bytes "
                                 f"{data[:8].hex(' ')})")
        return _load_legacy(io.BytesIO(data), label)
    except _np_pickle.NvidiaPickleError as e:
        if str(e).startswith(label):
            raise

        raise TorchFileError(f"{label}: {e}") from None
    except (EOFError, pickle.UnpicklingError, zipfile.BadZipFile, KeyError, ValueError, TypeError) as e:
        raise TorchFileError(f"{label}: truncated or corrupt torch.save file ({type(e).__name__}: "
                             f"{_np_pickle._clean(e, 200)})") from None
    finally:
        _np_pickle._BUDGET.state = None
