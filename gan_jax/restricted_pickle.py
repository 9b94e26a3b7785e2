"""Restricted unpickling: read pickles (and the torch tensors inside them) without running their code.

The core that :mod:`gan_jax.nvidia_pickle` (NVIDIA network pickles) and :mod:`gan_jax.torch_file`
(``torch.save`` state dicts) share:

* :class:`RestrictedUnpickler`: ``find_class`` is a lookup in the caller's allow-table (module,
  name) -> stand-in, never an import; anything else raises ``refused global posix.system (...)``
  (:func:`refusal` words it) and nothing from the file runs;
* :func:`scan` walks one pickle's opcodes before it is unpickled and refuses lengths beyond the
  end of the data and absurd memo indices, which would make CPython's C unpickler allocate
  gigabytes from a few corrupt bytes;
* :func:`array_budget`: the arrays a load creates are capped at a few times the file size (memo
  references cannot multiply one payload);
* stand-ins that build plain data only: numpy arrays, dtypes and scalars (:func:`numpy_globals`),
  the protocol-2 spellings of ``set`` / ``frozenset`` / ``bytes`` (:data:`BUILTIN_GLOBALS`), torch
  tensors and parameters (:func:`rebuild_tensor_v2`, :func:`rebuild_parameter`) on storages that
  are either nested ``torch.save`` payloads (:func:`load_from_bytes`, parsed with their own
  unpickler that allows no globals but the ``torch.<X>Storage`` dtype tokens of
  :data:`STORAGE_TOKENS`) or the members of a zip archive (:func:`read_zip_storage`). Tensor views
  larger than their storage (zero strides) are refused; BUILD on anything the file reached through
  ``find_class`` is refused (:class:`Frozen`);
* :func:`finalize` replaces the numpy stand-ins by the arrays and dtypes once the whole pickle is
  read.

Errors are :class:`RestrictedPickleError` (a subclass of both ``pickle.UnpicklingError`` and
``ValueError``) with a one-line message; the callers' own error classes derive from it.
Stdlib + numpy only: neither torch, TensorFlow nor jax is imported.
"""

from __future__ import annotations

import contextlib
import io
import math
import pickle
import pickletools
import re
import struct
import threading
import types
import zipfile
from typing import Any, BinaryIO, Callable, Iterator, Mapping

import numpy as np

__all__ = [
    "BUDGET_SLACK",
    "BUILTIN_GLOBALS",
    "CODE_MODULES",
    "MAX_DEPTH",
    "NDARRAY",
    "STORAGE_KEY",
    "STORAGE_TOKENS",
    "TORCH_LEGACY_MAGIC",
    "TORCH_LEGACY_PROTOCOL",
    "Container",
    "Frozen",
    "RestrictedPickleError",
    "RestrictedUnpickler",
    "StandIn",
    "Storage",
    "Token",
    "array_budget",
    "charge",
    "clean",
    "finalize",
    "is_storage_id",
    "load_from_bytes",
    "load_payload_pickle",
    "numpy_globals",
    "read_zip_storage",
    "rebuild_parameter",
    "rebuild_parameter_with_state",
    "rebuild_tensor_v2",
    "refusal",
    "scan",
    "stand_ins",
    "storage_array",
    "zip_byteorder",
]

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of a legacy (non-zip) torch.save
TORCH_LEGACY_PROTOCOL = 1001  # its second pickle (torch/serialization.py PROTOCOL_VERSION)
MAX_DEPTH = 200  # nesting of modules in a snapshot is < 10
BUDGET_SLACK = 64 << 20  # bytes of arrays a load may create on top of 6x the file size
STORAGE_KEY = re.compile(r"[0-9A-Za-z_.-]+")  # torch names storages by decimal counters
_BUDGET = threading.local()  # bytes of arrays the current load may still create (per thread)


class RestrictedPickleError(pickle.UnpicklingError, ValueError):
    """A pickle that a restricted unpickler will not or cannot read (the message says which and why)."""


def clean(x: Any, limit: int = 120) -> str:
    """File-given text made safe for a one-line message."""
    s = str(x)
    return s if s.isprintable() and len(s) <= limit else ascii(s)[1:-1][:limit]


# ----------------------------------------------------------------------------------------------
# What find_class may return.


class Frozen:
    """Objects the file can reach but must not modify: BUILD on them is refused (it would otherwise
    set attributes on the reader's singletons)."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise RestrictedPickleError(f"BUILD applied to {self!r}; refused")


class Token(Frozen):
    """A global that is only ever an argument (``numpy.ndarray``, ``torch.FloatStorage``)."""

    __slots__ = ("qualname", "dtype")

    def __init__(self, qualname: str, dtype: Any = None):
        self.qualname, self.dtype = qualname, dtype

    @property
    def itemsize(self) -> int:
        """Bytes per element of a storage token's data."""
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize

    def __repr__(self) -> str:
        return f"<{self.qualname}>"


class StandIn(Frozen):
    """What ``find_class`` returns for a function: calls it with positional arguments only."""

    __slots__ = ("_func", "_qualname")

    def __init__(self, func: Any, qualname: str):
        self._func, self._qualname = func, qualname

    def __call__(self, *args: Any) -> Any:
        return self._func(*args)

    def __repr__(self) -> str:
        return f"<stand-in for {self._qualname}>"


def stand_ins(table: Mapping[tuple[str, str], Any]) -> dict[tuple[str, str], Any]:
    """An allow-table with its plain functions wrapped in :class:`StandIn` (so that BUILD cannot
    reach them and keyword arguments cannot be passed); classes and tokens stay as they are."""
    return {key: StandIn(value, ".".join(key)) if isinstance(value, types.FunctionType) else value
            for key, value in table.items()}


class Container:
    """Mixin of a caller's stand-in class whose objects hold file data that :func:`finalize` must
    reach: it calls ``resolve_contents`` (after the items, for a dict subclass)."""

    __slots__ = ()

    def resolve_contents(self, resolve: Callable[[Any], Any]) -> None:
        """Replace what the object holds by ``resolve(value)``."""


# ----------------------------------------------------------------------------------------------
# Array budget.


@contextlib.contextmanager
def array_budget(file_size: int) -> Iterator[None]:
    """Arrays created by the stand-ins in this block (this thread) may take at most
    ``6 * file_size + BUDGET_SLACK`` bytes: real files need ~2x (storage + tensor copy), bfloat16 5x."""
    limit = 6 * file_size + BUDGET_SLACK
    _BUDGET.state = [limit, limit]
    try:
        yield
    finally:
        _BUDGET.state = None


def charge(nbytes: int, what: str) -> None:
    """Arrays made while loading may not exceed a few times the file's size: a file that reuses
    one payload or one storage many times (memo references) must not exhaust memory."""
    budget = getattr(_BUDGET, "state", None)
    if budget is None:
        return
    if nbytes > budget[0]:
        raise RestrictedPickleError(f"{what}: the file's arrays would take more than {budget[1]} bytes, several "
                                    "times the size of the file itself; corrupt or hostile file")
    budget[0] -= nbytes


# ----------------------------------------------------------------------------------------------
# numpy and builtins stand-ins.

NDARRAY = Token("numpy.ndarray")

# numpy dtypes that may appear: bool and fixed-size numbers. No object, void, string or datetime.
_DTYPE_CODE = re.compile(r"(b1|[iu][1248]|f[248]|c8|c16)")


class _DtypeStub:
    """``numpy.dtype(code, align, copy)`` + BUILD ``(3, byteorder, None, None, None, -1, -1, 0)``."""

    __slots__ = ("dtype",)

    def __init__(self, code: str):
        self.dtype = np.dtype(code)

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3):
            raise RestrictedPickleError(f"unsupported numpy dtype state {state!r:.80}")
        _, byteorder, subarray, names, fields, elsize, alignment, flags = state
        if (subarray, names, fields) != (None, None, None) or flags != 0:
            raise RestrictedPickleError(f"refused numpy dtype state {state!r:.80} (structured or object dtype)")
        if byteorder in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(byteorder)
        elif byteorder not in ("|", "="):
            raise RestrictedPickleError(f"numpy dtype byte order {byteorder!r}")


def _np_dtype(code: Any = None, align: Any = False, copy: Any = True) -> _DtypeStub:
    if not isinstance(code, str) or not _DTYPE_CODE.fullmatch(code) or not isinstance(align, bool):
        raise RestrictedPickleError(f"refused numpy dtype {code!r} (only bool, integer, float and complex numbers)")
    return _DtypeStub(code)


def _as_dtype(x: Any) -> np.dtype:
    if not isinstance(x, _DtypeStub):
        raise RestrictedPickleError(f"expected a numpy dtype, found {type(x).__name__}")
    return x.dtype


def _np_scalar(dtype: Any = None, data: Any = None) -> np.generic:
    """``numpy.core.multiarray.scalar(dtype, raw_bytes)``."""
    dt = _as_dtype(dtype)
    if not isinstance(data, (bytes, bytearray)) or len(data) != dt.itemsize:
        raise RestrictedPickleError(f"numpy scalar of {dt} with {type(data).__name__} data")
    return np.frombuffer(bytes(data), dtype=dt)[0]


def _shape_tuple(shape: Any, what: str) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or len(shape) > 64 or not all(type(n) is int and n >= 0 for n in shape):
        raise RestrictedPickleError(f"{what}: bad shape {shape!r:.80}")
    return tuple(shape)


def _array_from_bytes(raw: Any, dt: np.dtype, shape: tuple[int, ...], order: str, what: str) -> np.ndarray:
    numel = math.prod(shape)
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != numel * dt.itemsize:
        size = len(raw) if isinstance(raw, (bytes, bytearray)) else type(raw).__name__
        raise RestrictedPickleError(f"{what}: {numel} x {dt} needs {numel * dt.itemsize} bytes, found {size}")
    if numel == 0:
        return np.zeros(shape, dtype=dt)
    charge(numel * dt.itemsize, what)
    return np.frombuffer(raw, dtype=dt, count=numel).reshape(shape, order=order).copy()


class _ArrayStub:
    """``numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')``; BUILD gives the data.
    Replaced by the array itself once the whole file is read (:func:`finalize`)."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if not (isinstance(state, tuple) and len(state) == 4):
            raise RestrictedPickleError("unsupported numpy array state")
        shape, dtype, is_fortran, raw = state
        dt = _as_dtype(dtype)
        if not isinstance(is_fortran, bool):
            raise RestrictedPickleError("numpy array state: is_fortran is not a bool")
        self.array = _array_from_bytes(raw, dt, _shape_tuple(shape, "numpy array"), "F" if is_fortran else "C",
                                       "numpy array")


def _np_reconstruct(subtype: Any = None, shape: Any = None, typecode: Any = None) -> _ArrayStub:
    if subtype is not NDARRAY:
        raise RestrictedPickleError(f"numpy _reconstruct of {subtype!r:.60}; only numpy.ndarray is allowed")
    return _ArrayStub()


def _np_frombuffer(buf: Any = None, dtype: Any = None, shape: Any = None, order: Any = "C") -> np.ndarray:
    """``numpy._core.numeric._frombuffer`` (protocol 5)."""
    if order not in ("C", "F"):
        raise RestrictedPickleError(f"numpy _frombuffer order {order!r}")
    return _array_from_bytes(buf, _as_dtype(dtype), _shape_tuple(shape, "numpy array"), order, "numpy array")


def numpy_globals() -> dict[tuple[str, str], Any]:
    """``numpy.dtype``, ``numpy.ndarray`` and the array / scalar rebuild functions, in the
    spellings of numpy 1.x (``numpy.core``) and numpy >= 2 (``numpy._core``)."""
    table: dict[tuple[str, str], Any] = {("numpy", "dtype"): _np_dtype, ("numpy", "ndarray"): NDARRAY}
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "scalar")] = _np_scalar
        table[(f"{core}.multiarray", "_reconstruct")] = _np_reconstruct
        table[(f"{core}.numeric", "_frombuffer")] = _np_frombuffer
    return table


def _codecs_encode(obj: Any = None, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode(str, 'latin1')``: how protocol 2 writes ``bytes``."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise RestrictedPickleError(f"refused _codecs.encode of {type(obj).__name__} with {encoding!r:.20}")
    return obj.encode("latin1")


def _bytes(*args: Any) -> bytes:
    """``__builtin__.bytes()`` (protocol 2 writes an empty bytes object so)."""
    if not args:
        return b""
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytes(args[0])
    raise RestrictedPickleError("refused bytes() call with non-bytes arguments")


# The protocol-2/3 spellings of builtins that plain data needs.
BUILTIN_GLOBALS: dict[tuple[str, str], Any] = {
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "bytes"): _bytes,
    ("__builtin__", "set"): set, ("__builtin__", "frozenset"): frozenset, ("__builtin__", "bytes"): _bytes,
    ("_codecs", "encode"): _codecs_encode,
}


# ----------------------------------------------------------------------------------------------
# torch storages and tensors.

# torch storage class -> little-endian numpy dtype ('bfloat16' is widened to float32).
_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "bfloat16",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}
STORAGE_TOKENS: dict[str, Token] = {name: Token(f"torch.{name}", dtype) for name, dtype in _STORAGE_DTYPES.items()}


class Storage(Frozen):
    """A torch storage: a flat array (set later where the storage's bytes follow the pickle)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array


class _PendingStorage(Frozen):
    __slots__ = ("token", "key", "numel")

    def __init__(self, token: Token, key: str, numel: int):
        self.token, self.key, self.numel = token, key, numel


def is_storage_id(pid: Any, lengths: tuple[int, ...]) -> bool:
    """Whether ``pid`` is torch's persistent id of a storage, ``('storage', <torch.XStorage token>,
    key, location, numel[, view_metadata])``, of one of the tuple ``lengths``."""
    return (isinstance(pid, tuple) and len(pid) in lengths and pid[0] == "storage" and isinstance(pid[1], Token)
            and pid[1].qualname.startswith("torch.") and isinstance(pid[2], str) and isinstance(pid[3], str)
            and type(pid[4]) is int and pid[4] >= 0)


class _PayloadUnpickler(pickle.Unpickler):
    """One pickle of a nested ``torch.save`` payload: no globals but ``torch.<X>Storage`` (when
    ``storage_ids`` is the persistent-id length to accept), nothing else."""

    def __init__(self, file: BinaryIO, storage_ids: int | None = None):
        super().__init__(file, fix_imports=False)
        self._storage_ids = storage_ids
        self.pending: _PendingStorage | None = None

    def find_class(self, module: str, name: str) -> Any:
        if self._storage_ids is not None and module == "torch" and name in STORAGE_TOKENS:
            return STORAGE_TOKENS[name]
        raise RestrictedPickleError(f"refused global in storage payload: {clean(module)}.{clean(name)}")

    def persistent_load(self, pid: Any) -> Any:
        n = self._storage_ids
        ok = (n is not None and self.pending is None and is_storage_id(pid, (n,)) and (n == 5 or pid[5] is None))
        if not ok:
            raise RestrictedPickleError(f"refused persistent id in storage payload: {pid!r:.100}")
        self.pending = _PendingStorage(pid[1], pid[2], pid[4])
        return self.pending


def storage_array(token: Token, numel: int, raw: bytes, what: str) -> np.ndarray:
    """The ``numel`` little-endian elements of a storage of type ``token`` (bfloat16 widened to float32)."""
    if token.dtype == "bfloat16":  # no numpy dtype: widen exactly to float32
        bits = _array_from_bytes(raw, np.dtype("<u2"), (numel,), "C", what)
        charge(4 * numel, what)
        return (bits.astype(np.uint32) << 16).view(np.float32)
    return _array_from_bytes(raw, np.dtype(token.dtype), (numel,), "C", what)


def load_payload_pickle(f: BinaryIO, storage_ids: int | None = None) -> tuple[Any, Any]:
    """One pickle of a ``torch.save`` stream (magic number, protocol, sys info, storage keys: no
    globals at all; with ``storage_ids``, one storage by persistent id of that length, returned as
    the unpickler's ``pending``). Returns ``(object, unpickler)``."""
    scan(f, "storage payload")
    u = _PayloadUnpickler(f, storage_ids)
    try:
        return u.load(), u
    except RestrictedPickleError:
        raise
    except Exception as e:  # noqa: BLE001 (any parse failure is a corrupt payload)
        raise RestrictedPickleError(f"corrupt storage payload ({type(e).__name__}: {clean(e, 200)})") from None


def load_from_bytes(payload: Any = None) -> Storage:
    """``torch.storage._load_from_bytes(b)``: a complete ``torch.save`` of one storage."""
    if not isinstance(payload, (bytes, bytearray)):
        raise RestrictedPickleError(f"storage payload is a {type(payload).__name__}, expected bytes")
    payload = bytes(payload)
    if payload[:4] == b"PK\x03\x04":
        return _load_zip_payload(payload)
    f = io.BytesIO(payload)
    magic, _ = load_payload_pickle(f)
    if magic != TORCH_LEGACY_MAGIC:
        raise RestrictedPickleError("storage payload without torch.save's magic number")
    version, _ = load_payload_pickle(f)
    if version != TORCH_LEGACY_PROTOCOL:
        raise RestrictedPickleError(f"storage payload of torch.save protocol {version!r}, expected 1001")
    sys_info, _ = load_payload_pickle(f)
    if not isinstance(sys_info, dict):
        raise RestrictedPickleError("storage payload: bad sys_info record")
    obj, u = load_payload_pickle(f, storage_ids=6)
    pending = u.pending
    if pending is None or obj is not pending:
        raise RestrictedPickleError("storage payload does not hold exactly one storage")
    keys, _ = load_payload_pickle(f)
    if keys != [pending.key]:
        raise RestrictedPickleError(f"storage payload key list {keys!r:.60} does not match {pending.key!r}")
    head = f.read(8)
    if len(head) != 8 or struct.unpack("<q", head)[0] != pending.numel:
        raise RestrictedPickleError("storage payload: element count missing or different from the storage's")
    raw = f.read(pending.numel * pending.token.itemsize)  # storages are little-endian whatever the writer's machine
    array = storage_array(pending.token, pending.numel, raw, f"storage {pending.token.qualname}")
    if f.read(1):
        raise RestrictedPickleError("storage payload: extra bytes after the storage data")
    return Storage(array)


def zip_byteorder(z: zipfile.ZipFile, prefix: str, what: str) -> bool:
    """Whether the storages of a zip ``torch.save`` archive (``prefix`` + ``byteorder``) are big-endian."""
    name = prefix + "byteorder"
    order = z.read(name).strip() if name in z.namelist() else b"little"
    if order not in (b"little", b"big"):
        raise RestrictedPickleError(f"{what}: byteorder {order!r:.20}")
    return order == b"big"


def read_zip_storage(z: zipfile.ZipFile, prefix: str, token: Token, key: str, numel: int, big_endian: bool) -> np.ndarray:
    """Storage ``key`` of a zip ``torch.save`` archive (member ``prefix/data/key``): ``numel``
    elements of ``token``'s dtype, in native order."""
    member = prefix + "data/" + key
    if (not STORAGE_KEY.fullmatch(key) or member not in z.namelist()
            or z.getinfo(member).file_size != numel * token.itemsize):
        raise RestrictedPickleError(f"storage {key!r:.40} missing or of the wrong size")
    array = storage_array(token, numel, z.read(member), f"storage {key}")
    if big_endian and array.dtype.itemsize > 1:
        array = array.view(array.dtype.newbyteorder(">")).astype(array.dtype)
    return array


def _load_zip_payload(payload: bytes) -> Storage:
    """The zip (``_use_new_zipfile_serialization=True``) form of ``torch.save(storage)``; NVIDIA's
    files do not use it, newer torch versions might."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as z:
            pkls = [n for n in z.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if len(pkls) != 1:
                raise RestrictedPickleError("zip storage payload without exactly one data.pkl")
            prefix = pkls[0][: -len("data.pkl")]
            info = z.getinfo(pkls[0])
            if info.file_size > 1 << 20:
                raise RestrictedPickleError("zip storage payload: data.pkl too large")
            obj, u = load_payload_pickle(io.BytesIO(z.read(info)), storage_ids=5)
            pending = u.pending
            if pending is None or obj is not pending:
                raise RestrictedPickleError("zip storage payload does not hold exactly one storage")
            big = zip_byteorder(z, prefix, "zip storage payload")
            array = read_zip_storage(z, prefix, pending.token, pending.key, pending.numel, big)
    except RestrictedPickleError:
        raise
    except Exception as e:  # noqa: BLE001
        raise RestrictedPickleError(f"corrupt zip storage payload ({type(e).__name__}: {clean(e, 200)})") from None
    return Storage(array)


def _empty_hooks(hooks: Any, what: str) -> None:
    if hooks is not None and not (isinstance(hooks, dict) and not hooks):
        raise RestrictedPickleError(f"{what} with backward hooks; refused")


def rebuild_tensor_v2(storage: Any = None, storage_offset: Any = None, size: Any = None, stride: Any = None,
                      requires_grad: Any = False, backward_hooks: Any = None, metadata: Any = None,
                      *extra: Any) -> np.ndarray:
    """``torch._utils._rebuild_tensor_v2`` -> a C-contiguous numpy copy of the strided view."""
    if extra or not isinstance(storage, Storage):
        raise RestrictedPickleError("tensor whose storage is not a torch.storage._load_from_bytes payload")
    size = _shape_tuple(size, "tensor")
    stride = _shape_tuple(stride, "tensor stride")
    if len(stride) != len(size) or type(storage_offset) is not int or storage_offset < 0:
        raise RestrictedPickleError(f"tensor with size {size}, stride {stride}, offset {storage_offset!r:.20}")
    if not isinstance(requires_grad, bool):
        raise RestrictedPickleError("tensor requires_grad is not a bool")
    _empty_hooks(backward_hooks, "tensor")
    if metadata is not None and not (isinstance(metadata, dict) and not metadata):
        raise RestrictedPickleError("tensor with metadata (conj/neg bits...); refused")
    flat = storage.array
    if math.prod(size) == 0:
        return np.zeros(size, dtype=flat.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= flat.size:
        raise RestrictedPickleError(f"tensor view (offset {storage_offset}, size {size}, stride {stride}) "
                                    f"outside its storage of {flat.size} elements")
    if math.prod(size) > flat.size:  # zero or overlapping strides (expand()): never in these networks
        raise RestrictedPickleError(f"tensor view of size {size} (stride {stride}) larger than its storage of "
                                    f"{flat.size} elements; refused")
    charge(math.prod(size) * flat.itemsize, "tensor")
    view = np.lib.stride_tricks.as_strided(flat[storage_offset:], shape=size,
                                           strides=tuple(s * flat.itemsize for s in stride), writeable=False)
    return np.array(view, order="C", copy=True)


def rebuild_parameter(data: Any = None, requires_grad: Any = False, backward_hooks: Any = None,
                      *extra: Any) -> np.ndarray:
    """``torch._utils._rebuild_parameter`` -> the array itself."""
    if extra or not isinstance(data, np.ndarray) or not isinstance(requires_grad, bool):
        raise RestrictedPickleError("parameter whose data is not a tensor")
    _empty_hooks(backward_hooks, "parameter")
    return data


def rebuild_parameter_with_state(data: Any = None, requires_grad: Any = False, backward_hooks: Any = None,
                                 state: Any = None) -> np.ndarray:
    """``torch._utils._rebuild_parameter_with_state`` (newer torch, Python attributes on a
    parameter): the attributes are plain data and are dropped."""
    return rebuild_parameter(data, requires_grad, backward_hooks)


# ----------------------------------------------------------------------------------------------
# The unpickler.

# Modules whose globals a pickle names only to run code while loading.
CODE_MODULES = frozenset({"os", "posix", "nt", "subprocess", "sys", "builtins", "__builtin__", "importlib", "runpy",
                          "shutil", "socket", "pty", "code", "codeop", "marshal", "types", "functools", "operator",
                          "copyreg", "copy_reg", "pickle", "_pickle", "io", "ctypes", "webbrowser"})


def refusal(module: str, name: str, reader: str, hints: Mapping[Any, str] | None = None) -> str:
    """The message for a refused global ``module.name``. ``hints``: ``(module, name)`` or a root
    module name -> what the global tells about the file; ``reader``: what the allowed globals are
    those of (``'an NVIDIA network pickle'``)."""
    hints = hints or {}
    msg = f"refused global {clean(module)}.{clean(name)}"
    root = module.split(".")[0]
    if (module, name) in hints:
        return f"{msg} ({hints[(module, name)]})"
    if root in CODE_MODULES:
        return f"{msg} (the file asks to call it while loading, i.e. to run code; nothing was executed)"
    if root in hints:
        return f"{msg} ({hints[root]})"
    return f"{msg} (not one of the classes and functions {reader} uses; nothing was executed)"


class RestrictedUnpickler(pickle.Unpickler):
    """``find_class`` is a lookup in ``table``, never an import; no persistent ids. Refusals raise
    ``error`` with :func:`refusal`'s message (``reader`` and ``hints`` as there)."""

    def __init__(self, file: BinaryIO, table: Mapping[tuple[str, str], Any], *, reader: str,
                 hints: Mapping[Any, str] | None = None, error: type[RestrictedPickleError] = RestrictedPickleError):
        super().__init__(file, fix_imports=False)
        self._table, self._reader, self._hints, self.error = table, reader, hints, error

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._table[(module, name)]
        except (KeyError, TypeError):
            raise self.error(refusal(str(module), str(name), self._reader, self._hints)) from None

    def persistent_load(self, pid: Any) -> Any:
        raise self.error(f"refused persistent id {pid!r:.60} ({self._reader} has none at the top level)")


_CODE2OP = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_COUNTED = {pickletools.TAKEN_FROM_ARGUMENT1: "<B", pickletools.TAKEN_FROM_ARGUMENT4: "<i",
            pickletools.TAKEN_FROM_ARGUMENT4U: "<I", pickletools.TAKEN_FROM_ARGUMENT8U: "<Q"}
# Picklers number memo entries 0, 1, 2, ..., one PUT opcode each, so an index never exceeds the
# opcode count; 1024 is slack for hand-made files, far below what would allocate much.
_MEMO_SLACK = 1024


def scan(f: BinaryIO, what: str = "pickle") -> None:
    """Walk one pickle's opcodes (to its STOP) without building anything and reject what would make
    the C unpickler allocate far more than the file holds: lengths (FRAME, BINBYTES8, ...) beyond
    the end of the data, and memo indices far beyond the number of opcodes (the memo table is an
    array sized by the largest index). Leaves ``f`` where it was."""
    start = f.tell()
    end = f.seek(0, io.SEEK_END)
    f.seek(start)
    count = 0

    def bad(reason: str) -> RestrictedPickleError:
        return RestrictedPickleError(f"truncated or corrupt {what} ({reason})")

    try:
        while True:
            code = f.read(1)
            op = _CODE2OP.get(code)
            if op is None:
                raise bad("pickle data was truncated" if not code else
                          f"invalid pickle opcode {code!r} at byte {f.tell() - 1}")
            arg, value = op.arg, None
            if arg is None:
                pass
            elif arg.n >= 0:
                data = f.read(arg.n)
                if len(data) != arg.n:
                    raise bad("pickle data was truncated")
                value = int.from_bytes(data, "little") if op.name in ("FRAME", "BINPUT", "LONG_BINPUT") else None
            elif arg.n == pickletools.UP_TO_NEWLINE:
                for _ in range(2 if op.name in ("GLOBAL", "INST") else 1):
                    line = f.readline(1 << 20)
                    if not line.endswith(b"\n"):
                        raise bad("pickle data was truncated, or a text argument is too long")
                value = int(line) if op.name == "PUT" and line.strip().isdigit() else None
            else:
                fmt = _COUNTED[arg.n]
                head = f.read(struct.calcsize(fmt))
                if len(head) != struct.calcsize(fmt):
                    raise bad("pickle data was truncated")
                length = struct.unpack(fmt, head)[0]
                if length < 0 or length > end - f.tell():
                    raise bad(f"{op.name} of {length} bytes at byte {f.tell()} runs past the end of the data")
                f.seek(length, io.SEEK_CUR)
            if op.name == "FRAME" and value > end - f.tell():
                raise bad(f"FRAME of {value} bytes runs past the end of the data")
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and value is not None and value > count + _MEMO_SLACK:
                raise bad(f"memo index {value} at opcode {count}")
            count += 1
            if op.name == "STOP":
                return
    finally:
        f.seek(start)


def finalize(obj: Any, memo: dict[int, Any] | None = None, depth: int = 0) -> Any:
    """Replace the numpy stand-ins of an unpickled graph by what they stand for, in place where
    containers allow (tuples are rebuilt); :class:`Container` objects resolve their own contents."""
    memo = {} if memo is None else memo
    if depth > MAX_DEPTH:
        raise RestrictedPickleError("objects nested too deeply")
    key = id(obj)
    if key in memo:
        return memo[key]

    def resolve(value: Any) -> Any:
        return finalize(value, memo, depth + 1)

    if isinstance(obj, _ArrayStub):
        if obj.array is None:
            raise RestrictedPickleError("numpy array without data (no BUILD)")
        memo[key] = obj.array
        return obj.array
    if isinstance(obj, _DtypeStub):
        memo[key] = obj.dtype
        return obj.dtype
    if isinstance(obj, dict):  # dict, OrderedDict and the callers' dict subclasses
        memo[key] = obj
        for k in list(obj):
            obj[k] = resolve(obj[k])
        if isinstance(obj, Container):
            obj.resolve_contents(resolve)
        return obj
    if isinstance(obj, list):
        memo[key] = obj
        obj[:] = [resolve(v) for v in obj]
        return obj
    if isinstance(obj, tuple):
        memo[key] = obj  # provisional, for a cycle through a list/dict
        out = tuple(resolve(v) for v in obj)
        memo[key] = out
        return out
    if isinstance(obj, Container):
        memo[key] = obj
        obj.resolve_contents(resolve)
        return obj
    return obj
