"""Safe reader of ``torch.save`` state dicts (``*.pth``, ``*.pt``), without torch.

A ``torch.save`` file is either a zip archive (``archive/data.pkl`` + one file per storage under
``archive/data/``, torch >= 1.6) or the legacy stream (magic number, protocol 1001, sys info, the
object pickle, the storage keys, then each storage's raw bytes). Both hold a pickle whose tensors
are ``torch._utils._rebuild_tensor_v2`` calls on persistent-id storages. This module reads them
with :mod:`gan_jax.restricted_pickle`'s restricted unpickler: the only globals allowed are
``collections.OrderedDict``, the tensor/parameter rebuild functions and the ``torch.<X>Storage``
dtype tokens; anything else (``os.system``, a module class) is refused and nothing from the file
runs. The result is ``{name: np.ndarray}`` in the file's order.

    state = load_state_dict("pt_inception-2015-12-05-6726825d.pth")   # pytorch-fid's weights
"""

from __future__ import annotations

import collections
import io
import os
import struct
import zipfile
from typing import Any, BinaryIO, Callable

import numpy as np

from gan_jax import restricted_pickle as rp

__all__ = ["TorchFileError", "load_state_dict"]


class TorchFileError(rp.RestrictedPickleError):
    """The file is not a plain ``torch.save`` state dict, or asks to run code."""


_TABLE: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    **rp.stand_ins({("torch._utils", "_rebuild_tensor_v2"): rp.rebuild_tensor_v2,
                    ("torch._utils", "_rebuild_parameter"): rp.rebuild_parameter}),
    **{("torch", name): token for name, token in rp.STORAGE_TOKENS.items()},
}
_HINTS = {
    ("torch._utils", "_rebuild_tensor"): "a tensor pickled by a very old torch (< 1.0)",
    "torch": "a torch object other than a tensor, a parameter or a storage type: not a plain state dict",
}
_ReadStorage = Callable[[rp.Token, str, int], rp.Storage]  # (dtype token, storage key, numel) -> storage


class _Deferred:
    """A tensor rebuild call recorded while a legacy file's storages are still unread."""

    def __init__(self, fn: Any, args: tuple):
        self.fn, self.args = fn, args


class _StateUnpickler(rp.RestrictedUnpickler):
    """Globals from ``_TABLE`` only; persistent ids ``('storage', token, key, location, numel)``.
    ``deferred``: the rebuild calls are recorded (legacy files pickle tensors before their bytes)."""

    def __init__(self, file: BinaryIO, read_storage: _ReadStorage, deferred: bool = False):
        super().__init__(file, _TABLE, reader="a torch state dict", hints=_HINTS, error=TorchFileError)
        self._read_storage = read_storage
        self._deferred = deferred

    def find_class(self, module: str, name: str) -> Any:
        found = super().find_class(module, name)
        if self._deferred and isinstance(found, rp.StandIn):
            return rp.StandIn(lambda *args, _fn=found: _Deferred(_fn, args), f"{module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        if not (rp.is_storage_id(pid, (5, 6)) and rp.STORAGE_KEY.fullmatch(pid[2])):
            raise TorchFileError(f"refused persistent id {rp.short(pid, 100)}")
        return self._read_storage(pid[1], pid[2], pid[4])


def _resolve(obj: Any, memo: dict[int, Any] | None = None, depth: int = 0) -> Any:
    """The legacy object graph with its recorded rebuild calls made; each shared object once
    (``memo`` by id: a memo-shared graph would otherwise be rebuilt exponentially many times)."""
    memo = {} if memo is None else memo
    if depth > rp.MAX_DEPTH:
        raise TorchFileError(f"objects nested more than {rp.MAX_DEPTH} deep")
    if id(obj) in memo:
        return memo[id(obj)][1]
    if isinstance(obj, _Deferred):
        out = obj.fn(*[_resolve(a, memo, depth + 1) for a in obj.args])
    elif isinstance(obj, dict):
        out = type(obj)((k, _resolve(v, memo, depth + 1)) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        out = type(obj)(_resolve(v, memo, depth + 1) for v in obj)
    else:
        return obj
    memo[id(obj)] = (obj, out)  # obj kept alive so that its id is not reused
    return out


def _check_state(obj: Any, label: str) -> dict[str, np.ndarray]:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()):
        raise TorchFileError(f"{label}: not a state dict (expected a dict of names to tensors, found "
                             f"{type(obj).__name__})")
    return dict(obj)


def _load_zip(data: bytes, label: str) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        rp.check_zip(z, label)
        names = set(z.namelist())
        pkls = [n for n in names if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
        if len(pkls) != 1:
            raise TorchFileError(f"{label}: a zip without exactly one data.pkl (a TorchScript archive or a dataset?)")
        prefix = pkls[0][: -len("data.pkl")]
        if prefix + "constants.pkl" in names or prefix + "code/" in {n[: len(prefix) + 5] for n in names}:
            raise TorchFileError(f"{label}: a TorchScript archive (torch.jit.save), not a torch.save state dict")
        big_endian = rp.zip_byteorder(z, prefix, label)
        cache: dict[str, rp.Storage] = {}

        def read_storage(token: rp.Token, key: str, numel: int) -> rp.Storage:
            if key not in cache:
                cache[key] = rp.Storage(rp.read_zip_storage(z, prefix, token, key, numel, big_endian))
            return cache[key]

        f = io.BytesIO(rp.read_member(z, pkls[0], "data.pkl"))
        rp.scan(f, "data.pkl")
        return _check_state(_StateUnpickler(f, read_storage).load(), label)


def _load_legacy(f: BinaryIO, label: str) -> dict[str, np.ndarray]:
    magic, _ = rp.load_payload_pickle(f)
    if magic != rp.TORCH_LEGACY_MAGIC:
        raise TorchFileError(f"{label}: a pickle, but not a torch.save file (no magic number)")
    version, _ = rp.load_payload_pickle(f)
    if version != rp.TORCH_LEGACY_PROTOCOL:
        raise TorchFileError(f"{label}: torch.save protocol {rp.short(version)}, expected {rp.TORCH_LEGACY_PROTOCOL}")
    rp.load_payload_pickle(f)  # sys_info: endianness and type sizes
    pending: dict[str, tuple[rp.Token, int, rp.Storage]] = {}

    def read_storage(token: rp.Token, key: str, numel: int) -> rp.Storage:
        if key not in pending:
            pending[key] = (token, numel, rp.Storage(np.zeros(0, np.float32)))
        return pending[key][2]

    rp.scan(f, "object pickle")
    obj = _StateUnpickler(f, read_storage, deferred=True).load()
    keys, _ = rp.load_payload_pickle(f)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or sorted(keys) != sorted(pending):
        raise TorchFileError(f"{label}: storage key list does not match the tensors")
    for key in keys:
        token, numel, holder = pending[key]
        head = f.read(8)
        if len(head) != 8 or struct.unpack("<q", head)[0] != numel:
            raise TorchFileError(f"{label}: storage {key} element count missing or wrong")
        holder.array = rp.storage_array(token, numel, f.read(numel * token.itemsize), f"storage {key}")
    return _check_state(_resolve(obj), label)


def load_state_dict(path_or_bytes: Any) -> dict[str, np.ndarray]:
    """``{name: float/int np.ndarray}`` of a ``torch.save``'d state dict (zip or legacy format).

    Raises :class:`TorchFileError` naming the file for anything else (a TorchScript archive, a
    pickle that names other globals, a truncated file)."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        label, data = "<bytes>", bytes(path_or_bytes)
    else:
        label = os.fspath(path_or_bytes)
        try:
            with open(label, "rb") as f:
                data = f.read()
        except OSError as e:
            raise TorchFileError(f"{rp.clean(label, 200)}: cannot read the file ({e.strerror or rp.reason(e)})") from None
    try:
        with rp.array_budget(len(data)):
            if data[:4] == b"PK\x03\x04":
                return _load_zip(data, label)
            if data[:1] != b"\x80":
                raise TorchFileError(f"{label}: neither a zip nor a pickle; not a torch.save file (first bytes "
                                     f"{data[:8].hex(' ')})")
            return _load_legacy(io.BytesIO(data), label)
    except Exception as e:  # noqa: BLE001 (zipfile, numpy, struct and the unpickler raise many kinds)
        raise rp.failure(TorchFileError, label, e, "truncated or corrupt torch.save file") from None
