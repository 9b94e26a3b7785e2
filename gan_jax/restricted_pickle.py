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
import reprlib
import struct
import threading
import types
import zipfile
from typing import Any, BinaryIO, Callable, Iterator, Mapping

import numpy as np

__all__ = [
    "BUDGET_SLACK",
    "DECOMPRESS_RATIO",
    "MAX_ELEMENTS",
    "MAX_HASH_WORK",
    "MAX_MESSAGE",
    "MAX_OPCODES",
    "MAX_ZIP_MEMBERS",
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
    "check_zip",
    "count_elements",
    "failure",
    "reason",
    "read_member",
    "short",
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
# Opcodes of one pickle: a StyleGAN2 1024x1024 snapshot (G, D, G_ema, ~1500 tensors, each ~30
# opcodes plus its nested payload pickles, scanned separately) has ~10^5; 20x slack.
MAX_OPCODES = 2_000_000
# Units of hashing work one pickle may cause (one unit per tuple element hashed as a dict key or
# set item, counted through memo-shared tuples): real files hash a few str keys per entry.
MAX_HASH_WORK = 5_000_000
# State-dict entries / TF variables one load may emit: real networks have < 2000 tensors; 50x
# slack, and a hostile file stays well under a second on a slow CPU.
MAX_ELEMENTS = 100_000
# Bytes a load may decompress from zip members: ``DECOMPRESS_RATIO * file_size + BUDGET_SLACK``
# (torch stores members uncompressed; np.savez_compressed float weights shrink < 2x, 16 leaves
# room for zero-filled buffers).
DECOMPRESS_RATIO = 16
MAX_ZIP_MEMBERS = 100_000  # a torch.save archive has one member per storage (< 2000 in these networks)
MAX_MESSAGE = 300  # characters of a loader's one-line error message
_BUDGET = threading.local()  # what the current load may still use (per thread): see array_budget


class RestrictedPickleError(pickle.UnpicklingError, ValueError):
    """A pickle that a restricted unpickler will not or cannot read (the message says which and why)."""


def clean(x: Any, limit: int = 120) -> str:
    """File-given text made safe for a one-line message (``x`` a str, or anything else through :func:`short`)."""
    s = x if isinstance(x, str) else short(x, limit)
    s = s[: 4 * limit]
    return s if s.isprintable() and len(s) <= limit else ascii(s)[1:-1][:limit]


class _ShortRepr(reprlib.Repr):
    """``reprlib`` limits applied to dict / list / tuple subclasses too (reprlib dispatches on the
    exact type name, and would format a whole ``OrderedDict`` through its own ``repr``); objects
    other than plain data are shown by type only, so no file-made structure is ever formatted whole."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxdict, self.maxlist, self.maxtuple, self.maxset, self.maxfrozenset = 3, 4, 6, 6, 4, 4
        self.maxstring, self.maxother, self.maxlong = 40, 40, 40

    def repr1(self, x: Any, level: int) -> str:
        for base, method in ((dict, self.repr_dict), (list, self.repr_list), (tuple, self.repr_tuple),
                             (frozenset, self.repr_frozenset), (set, self.repr_set)):
            if isinstance(x, base):
                return method(x, level)
        if isinstance(x, bool) or x is None or isinstance(x, float):
            return repr(x)
        if isinstance(x, int):
            return repr(x) if x.bit_length() <= 128 else f"<int of {x.bit_length()} bits>"
        if isinstance(x, (str, bytes, bytearray)):
            return self.repr_str(x, level) if isinstance(x, str) else repr(bytes(x[: self.maxstring]))
        if isinstance(x, np.ndarray):
            return f"<array {x.dtype} {x.shape}>"
        if isinstance(x, (Token, StandIn)):
            return repr(x)
        return f"<{type(x).__name__}>"


_SHORT = _ShortRepr()


def short(x: Any, limit: int = 80) -> str:
    """A bounded repr of file data for messages: ``reprlib`` limits on every level, cut to ``limit``
    characters (never the whole object formatted first)."""
    try:
        text = _SHORT.repr(x)
    except Exception:  # noqa: BLE001 (a stand-in whose state is broken)
        text = f"<{type(x).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def reason(e: BaseException) -> str:
    """``'TypeName: message'`` of an exception, bounded (arguments through :func:`short`)."""
    args = e.args
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else short(args, 160) if args else ""
    return f"{type(e).__name__}: {clean(text, 160)}" if text else type(e).__name__


def failure(error: type[RestrictedPickleError], label: str, e: BaseException, what: str) -> RestrictedPickleError:
    """The one-line ``error`` a loader raises for any exception ``e`` while reading ``label``:
    restricted-pickle errors keep their text, others become ``what (TypeName: ...)``; the message
    starts with the file name and is cut to :data:`MAX_MESSAGE` characters."""
    if isinstance(e, RestrictedPickleError):
        text = str(e)
        cls = type(e) if isinstance(e, error) else error
    elif isinstance(e, RecursionError):
        text, cls = "objects nested too deeply; corrupt or hostile file", error
    elif isinstance(e, MemoryError):
        text, cls = "the file asks for more memory than is available; corrupt or hostile file", error
    else:
        text, cls = f"{what} ({reason(e)})", error
    label = clean(label, 120)
    if not text.startswith(label):
        text = f"{label}: {text}"
    text = " ".join(text.split())
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    return cls(text)


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


class _LoadState:
    """What one load (:func:`array_budget` block) may still use, and the storages it already parsed."""

    __slots__ = ("array_left", "array_limit", "unzip_left", "unzip_limit", "elements", "payloads")

    def __init__(self, file_size: int):
        self.array_limit = self.array_left = 6 * file_size + BUDGET_SLACK
        self.unzip_limit = self.unzip_left = DECOMPRESS_RATIO * file_size + BUDGET_SLACK
        self.elements = 0
        self.payloads: dict[int, tuple[Any, Storage]] = {}  # id(payload bytes) -> (payload, its storage)


@contextlib.contextmanager
def array_budget(file_size: int) -> Iterator[None]:
    """The limits of one load (this thread): arrays created by the stand-ins may take at most
    ``6 * file_size + BUDGET_SLACK`` bytes (real files need ~2x: storage + tensor copy; bfloat16
    5x), zip members may decompress to ``DECOMPRESS_RATIO * file_size + BUDGET_SLACK`` bytes, at
    most :data:`MAX_ELEMENTS` entries may be emitted, and a storage payload referenced several
    times is parsed once."""
    _BUDGET.state = _LoadState(file_size)
    try:
        yield
    finally:
        _BUDGET.state = None


def _state() -> _LoadState | None:
    return getattr(_BUDGET, "state", None)


def charge(nbytes: int, what: str) -> None:
    """Arrays made while loading may not exceed a few times the file's size: a file that reuses
    one payload or one storage many times (memo references) must not exhaust memory."""
    budget = _state()
    if budget is None:
        return
    if nbytes > budget.array_left:
        raise RestrictedPickleError(f"{what}: the file's arrays would take more than {budget.array_limit} bytes, "
                                    "several times the size of the file itself; corrupt or hostile file")
    budget.array_left -= nbytes


def count_elements(n: int, what: str) -> None:
    """Entries (state-dict tensors, TF variables) emitted by this load: at most :data:`MAX_ELEMENTS`
    (shared submodules would otherwise multiply a small file into millions of entries)."""
    budget = _state()
    if budget is None:
        return
    budget.elements += n
    if budget.elements > MAX_ELEMENTS:
        raise RestrictedPickleError(f"{what}: more than {MAX_ELEMENTS} entries (shared submodules?); "
                                    "real networks have a few thousand; corrupt or hostile file")


def read_member(z: zipfile.ZipFile, name: str, what: str, limit: int | None = None) -> bytes:
    """Member ``name`` of ``z``, decompressed under the load's budget: refused before reading if
    its declared size exceeds ``limit`` or what the load may still decompress, or if it is neither
    stored nor deflated (bzip2 and lzma decompress whole blocks before any size check can act);
    the bytes actually produced are counted while reading and may not exceed the declared size."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise RestrictedPickleError(f"{what}: zip member {clean(name, 60)} missing") from None
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise RestrictedPickleError(f"{what}: zip member {clean(name, 60)} uses compression method "
                                    f"{info.compress_type}; only stored or deflated members are read")
    size = info.file_size
    budget = _state()
    left = budget.unzip_left if budget is not None else DECOMPRESS_RATIO * (1 << 30)
    if (limit is not None and size > limit) or size > left:
        raise RestrictedPickleError(f"{what}: zip member {clean(name, 60)} declares {size} bytes, more than "
                                    f"{min(left, limit if limit is not None else left)} allowed (zip bomb?)")
    if budget is not None:
        budget.unzip_left -= size
    out = bytearray()
    with z.open(info) as m:
        while True:
            chunk = m.read(min(1 << 20, size + 1 - len(out)))
            if not chunk:
                break
            out += chunk
            if len(out) > size:
                raise RestrictedPickleError(f"{what}: zip member {clean(name, 60)} holds more than its declared "
                                            f"{size} bytes")
    if len(out) != size:
        raise RestrictedPickleError(f"{what}: zip member {clean(name, 60)} holds {len(out)} bytes, declared {size}")
    return bytes(out)


def check_zip(z: zipfile.ZipFile, what: str) -> None:
    """At most :data:`MAX_ZIP_MEMBERS` members."""
    if len(z.infolist()) > MAX_ZIP_MEMBERS:
        raise RestrictedPickleError(f"{what}: a zip of {len(z.infolist())} members, more than {MAX_ZIP_MEMBERS}")


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
            raise RestrictedPickleError(f"unsupported numpy dtype state {short(state, 80)}")
        _, byteorder, subarray, names, fields, elsize, alignment, flags = state
        if (subarray, names, fields) != (None, None, None) or flags != 0:
            raise RestrictedPickleError(f"refused numpy dtype state {short(state, 80)} (structured or object dtype)")
        if byteorder in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(byteorder)
        elif byteorder not in ("|", "="):
            raise RestrictedPickleError(f"numpy dtype byte order {short(byteorder)}")


def _np_dtype(code: Any = None, align: Any = False, copy: Any = True) -> _DtypeStub:
    if not isinstance(code, str) or not _DTYPE_CODE.fullmatch(code) or not isinstance(align, bool):
        raise RestrictedPickleError(f"refused numpy dtype {short(code)} (only bool, integer, float and complex numbers)")
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
        raise RestrictedPickleError(f"{what}: bad shape {short(shape, 80)}")
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
        raise RestrictedPickleError(f"numpy _reconstruct of {short(subtype, 60)}; only numpy.ndarray is allowed")
    return _ArrayStub()


def _np_frombuffer(buf: Any = None, dtype: Any = None, shape: Any = None, order: Any = "C") -> np.ndarray:
    """``numpy._core.numeric._frombuffer`` (protocol 5)."""
    if order not in ("C", "F"):
        raise RestrictedPickleError(f"numpy _frombuffer order {short(order)}")
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
        raise RestrictedPickleError(f"refused _codecs.encode of {type(obj).__name__} with {short(encoding, 20)}")
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
            raise RestrictedPickleError(f"refused persistent id in storage payload: {short(pid, 100)}")
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
        raise RestrictedPickleError(f"corrupt storage payload ({reason(e)})") from None


def load_from_bytes(payload: Any = None) -> Storage:
    """``torch.storage._load_from_bytes(b)``: a complete ``torch.save`` of one storage."""
    if not isinstance(payload, (bytes, bytearray)):
        raise RestrictedPickleError(f"storage payload is a {type(payload).__name__}, expected bytes")
    budget = _state()
    if budget is not None and id(payload) in budget.payloads:  # one payload referenced again (memo)
        return budget.payloads[id(payload)][1]
    storage = _load_from_bytes(bytes(payload))
    if budget is not None:
        budget.payloads[id(payload)] = (payload, storage)  # the payload is kept alive, so its id stays unique
    return storage


def _load_from_bytes(payload: bytes) -> Storage:
    if payload[:4] == b"PK\x03\x04":
        return _load_zip_payload(payload)
    f = io.BytesIO(payload)
    magic, _ = load_payload_pickle(f)
    if magic != TORCH_LEGACY_MAGIC:
        raise RestrictedPickleError("storage payload without torch.save's magic number")
    version, _ = load_payload_pickle(f)
    if version != TORCH_LEGACY_PROTOCOL:
        raise RestrictedPickleError(f"storage payload of torch.save protocol {short(version)}, expected 1001")
    sys_info, _ = load_payload_pickle(f)
    if not isinstance(sys_info, dict):
        raise RestrictedPickleError("storage payload: bad sys_info record")
    obj, u = load_payload_pickle(f, storage_ids=6)
    pending = u.pending
    if pending is None or obj is not pending:
        raise RestrictedPickleError("storage payload does not hold exactly one storage")
    keys, _ = load_payload_pickle(f)
    if keys != [pending.key]:
        raise RestrictedPickleError(f"storage payload key list {short(keys, 60)} does not match {short(pending.key)}")
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
    order = read_member(z, name, what, limit=16).strip() if name in z.NameToInfo else b"little"
    if order not in (b"little", b"big"):
        raise RestrictedPickleError(f"{what}: byteorder {short(order, 20)}")
    return order == b"big"


def read_zip_storage(z: zipfile.ZipFile, prefix: str, token: Token, key: str, numel: int, big_endian: bool) -> np.ndarray:
    """Storage ``key`` of a zip ``torch.save`` archive (member ``prefix/data/key``): ``numel``
    elements of ``token``'s dtype, in native order."""
    member = prefix + "data/" + key
    if (not STORAGE_KEY.fullmatch(key) or member not in z.NameToInfo
            or z.getinfo(member).file_size != numel * token.itemsize):
        raise RestrictedPickleError(f"storage {clean(key, 40)} missing or of the wrong size")
    array = storage_array(token, numel, read_member(z, member, f"storage {clean(key, 40)}"), f"storage {clean(key, 40)}")
    if big_endian and array.dtype.itemsize > 1:
        array = array.view(array.dtype.newbyteorder(">")).astype(array.dtype)
    return array


def _load_zip_payload(payload: bytes) -> Storage:
    """The zip (``_use_new_zipfile_serialization=True``) form of ``torch.save(storage)``; NVIDIA's
    files do not use it, newer torch versions might."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as z:
            check_zip(z, "zip storage payload")
            pkls = [n for n in z.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if len(pkls) != 1:
                raise RestrictedPickleError("zip storage payload without exactly one data.pkl")
            prefix = pkls[0][: -len("data.pkl")]
            info = z.getinfo(pkls[0])
            if info.file_size > 1 << 20:
                raise RestrictedPickleError("zip storage payload: data.pkl too large")
            obj, u = load_payload_pickle(io.BytesIO(read_member(z, pkls[0], "zip storage payload", 1 << 20)),
                                         storage_ids=5)
            pending = u.pending
            if pending is None or obj is not pending:
                raise RestrictedPickleError("zip storage payload does not hold exactly one storage")
            big = zip_byteorder(z, prefix, "zip storage payload")
            array = read_zip_storage(z, prefix, pending.token, pending.key, pending.numel, big)
    except RestrictedPickleError:
        raise
    except Exception as e:  # noqa: BLE001
        raise RestrictedPickleError(f"corrupt zip storage payload ({reason(e)})") from None
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
        raise RestrictedPickleError(f"tensor with size {size}, stride {stride}, offset {short(storage_offset, 20)}")
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
        raise self.error(f"refused persistent id {short(pid, 60)} ({self._reader} has none at the top level)")


_CODE2OP = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_COUNTED = {pickletools.TAKEN_FROM_ARGUMENT1: "<B", pickletools.TAKEN_FROM_ARGUMENT4: "<i",
            pickletools.TAKEN_FROM_ARGUMENT4U: "<I", pickletools.TAKEN_FROM_ARGUMENT8U: "<Q"}
# Picklers number memo entries 0, 1, 2, ..., one PUT opcode each, so an index never exceeds the
# opcode count; 1024 is slack for hand-made files, far below what would allocate much.
_MEMO_SLACK = 1024
# EXT1/2/4 name a global through copyreg's extension registry without find_class: in a process
# that registered an extension they would call it. No writer of these files uses them.
_REFUSED_OPS = {"EXT1", "EXT2", "EXT4"}
_DIGITS = re.compile(rb"[0-9]+\n")
_MEMO_OPS = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}


class _Cell:
    """What :func:`scan` knows of one stack value: the work of hashing it (tuples count their
    elements, through shared sub-tuples), the hashing work of its elements (for a list or set
    whose items a call may hash), and its nesting depth."""

    __slots__ = ("hash", "items", "depth", "mutable")

    def __init__(self, hash_work: int = 1, items: int = 0, depth: int = 0, mutable: bool = False):
        self.hash, self.items, self.depth, self.mutable = hash_work, items, depth, mutable


_OTHER = _Cell()  # any value that is not a container the scan tracks (shared: never mutated)
_SIMPLE_PUSH = {"NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4",
                "STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "UNICODE",
                "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "FLOAT", "BINFLOAT", "BYTEARRAY8", "NEXT_BUFFER",
                "GLOBAL", "PERSID"}


def scan(f: BinaryIO, what: str = "pickle") -> None:
    """Walk one pickle's opcodes (to its STOP) without building anything, keeping a shadow of the
    unpickler's stack and memo, and reject what would make the C unpickler (or anything after it)
    use far more time or memory than the file's size: more than :data:`MAX_OPCODES` opcodes;
    lengths (FRAME, BINBYTES8, ...) beyond the end of the data; memo indices that are not plain
    decimal digits or lie far beyond the number of opcodes (the memo table is an array sized by
    the largest index); EXT1/2/4; containers nested deeper than :data:`MAX_DEPTH`; more than
    :data:`MAX_HASH_WORK` units of hashing (dict keys and set items built from memo-shared
    tuples hash exponentially many elements). Leaves ``f`` where it was."""
    start = f.tell()
    end = f.seek(0, io.SEEK_END)
    f.seek(start)
    count = 0
    stack: list[_Cell] = []
    marks: list[int] = []
    memo: dict[int, _Cell] = {}
    hash_work = 0

    def bad(why: str) -> RestrictedPickleError:
        return RestrictedPickleError(f"truncated or corrupt {what} ({why})")

    def pop(n: int) -> list[_Cell]:
        if n > len(stack) - (marks[-1] if marks else 0):
            raise bad(f"stack underflow at opcode {count}")
        if n == 0:
            return []
        out = stack[-n:]
        del stack[-n:]
        return out

    def pop_mark() -> list[_Cell]:
        if not marks:
            raise bad(f"no MARK for opcode {count}")
        m = marks.pop()
        out = stack[m:]
        del stack[m:]
        return out

    def hashed(cells: list[_Cell]) -> None:
        nonlocal hash_work
        hash_work += sum(c.hash for c in cells)
        if hash_work > MAX_HASH_WORK:
            raise bad(f"dict keys or set items that take more than {MAX_HASH_WORK} steps to hash "
                      "(memo-shared tuples); hostile file")

    def container(children: list[_Cell], is_tuple: bool) -> _Cell:
        depth = 1 + max((c.depth for c in children), default=0)
        if depth > MAX_DEPTH:
            raise bad(f"containers nested more than {MAX_DEPTH} deep")
        if is_tuple:
            work = 1 + sum(c.hash for c in children)
            return _Cell(min(work, MAX_HASH_WORK + 1), min(sum(c.items for c in children), MAX_HASH_WORK + 1), depth)
        return _Cell(1, min(sum(c.hash for c in children), MAX_HASH_WORK + 1), depth, mutable=True)

    def add(target: _Cell, children: list[_Cell]) -> None:
        if not target.mutable:
            return  # the unpickler itself refuses appending to a non-container
        target.items = min(target.items + sum(c.hash for c in children), MAX_HASH_WORK + 1)
        depth = 1 + max((c.depth for c in children), default=0)
        if depth > target.depth:
            if depth > MAX_DEPTH:
                raise bad(f"containers nested more than {MAX_DEPTH} deep")
            target.depth = depth

    try:
        while True:
            code = f.read(1)
            op = _CODE2OP.get(code)
            if op is None:
                raise bad("pickle data was truncated" if not code else
                          f"invalid pickle opcode {code!r} at byte {f.tell() - 1}")
            name = op.name
            if name in _REFUSED_OPS:
                raise bad(f"{name} opcode at byte {f.tell() - 1}: copyreg extension codes are refused "
                          "(they name a global without the allow-list); nothing was executed")
            count += 1
            if count > MAX_OPCODES:
                raise bad(f"more than {MAX_OPCODES} opcodes; real network pickles have far fewer")
            arg, value = op.arg, None
            if arg is None:
                pass
            elif arg.n >= 0:
                data = f.read(arg.n)
                if len(data) != arg.n:
                    raise bad("pickle data was truncated")
                if name in ("FRAME", "BINPUT", "LONG_BINPUT", "BINGET", "LONG_BINGET"):
                    value = int.from_bytes(data, "little")
            elif arg.n == pickletools.UP_TO_NEWLINE:
                for _ in range(2 if name in ("GLOBAL", "INST") else 1):
                    line = f.readline(1 << 20)
                    if not line.endswith(b"\n"):
                        raise bad("pickle data was truncated, or a text argument is too long")
                if name in ("PUT", "GET"):
                    # CPython parses these with int(), which also takes '+N', ' N', '1_000': only
                    # plain digits are accepted, so that the index checked is the index used.
                    if not _DIGITS.fullmatch(line) or len(line) > 12:
                        raise bad(f"{name} with memo index {clean(line[:20].decode('latin-1'), 20)} "
                                  "(not plain decimal digits)")
                    value = int(line)
            else:
                fmt = _COUNTED[arg.n]
                head = f.read(struct.calcsize(fmt))
                if len(head) != struct.calcsize(fmt):
                    raise bad("pickle data was truncated")
                length = struct.unpack(fmt, head)[0]
                if length < 0 or length > end - f.tell():
                    raise bad(f"{name} of {length} bytes at byte {f.tell()} runs past the end of the data")
                f.seek(length, io.SEEK_CUR)
            if name == "FRAME" and value > end - f.tell():
                raise bad(f"FRAME of {value} bytes runs past the end of the data")
            if name in ("PUT", "BINPUT", "LONG_BINPUT") and value > count + _MEMO_SLACK:
                raise bad(f"memo index {value} at opcode {count}")
            # The shadow stack.
            if name in _SIMPLE_PUSH:
                stack.append(_OTHER)
            elif name == "MARK":
                marks.append(len(stack))
            elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
                stack.append(_Cell(1, 0, 1, mutable=True))
            elif name == "EMPTY_TUPLE":
                stack.append(_Cell(1, 0, 1))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                stack.append(container(pop(int(name[-1])), True))
            elif name == "TUPLE":
                stack.append(container(pop_mark(), True))
            elif name == "LIST":
                stack.append(container(pop_mark(), False))
            elif name == "DICT":
                items = pop_mark()
                hashed(items[0::2])
                stack.append(container(items, False))
            elif name == "FROZENSET":
                items = pop_mark()
                hashed(items)
                stack.append(container(items, True))
            elif name == "APPEND":
                item = pop(1)
                if not stack:
                    raise bad(f"stack underflow at opcode {count}")
                add(stack[-1], item)
            elif name in ("APPENDS", "SETITEMS", "ADDITEMS"):
                items = pop_mark()
                if not stack:
                    raise bad(f"stack underflow at opcode {count}")
                if name != "APPENDS":
                    hashed(items[0::2] if name == "SETITEMS" else items)
                add(stack[-1], items[1::2] if name == "SETITEMS" else items)
            elif name == "SETITEM":
                key, val = pop(2)
                hashed([key])
                if not stack:
                    raise bad(f"stack underflow at opcode {count}")
                add(stack[-1], [val])
            elif name in ("REDUCE", "NEWOBJ", "BUILD"):
                _, args = pop(2)
                hashed([_Cell(args.hash + args.items)])  # a call may hash its arguments (set(), OrderedDict())
                stack.append(_OTHER)
            elif name == "NEWOBJ_EX":
                _, args, kwargs = pop(3)
                hashed([_Cell(args.items + kwargs.items)])
                stack.append(_OTHER)
            elif name in ("OBJ", "INST"):
                items = pop_mark()
                hashed([_Cell(sum(c.items for c in items))])
                stack.append(_OTHER)
            elif name == "STACK_GLOBAL":
                pop(2)
                stack.append(_OTHER)
            elif name in ("BINPERSID",):
                pop(1)
                stack.append(_OTHER)
            elif name == "POP":
                if stack and (not marks or len(stack) > marks[-1]):
                    stack.pop()
                elif marks:
                    marks.pop()  # the C unpickler's POP of a MARK
                else:
                    raise bad(f"stack underflow at opcode {count}")
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                if not stack:
                    raise bad(f"stack underflow at opcode {count}")
                stack.append(stack[-1])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                if not stack:
                    raise bad(f"PUT on an empty stack at opcode {count}")
                memo[value] = stack[-1]
            elif name == "MEMOIZE":
                if not stack:
                    raise bad(f"MEMOIZE on an empty stack at opcode {count}")
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                cell = memo.get(value)
                if cell is None:
                    raise bad(f"memo index {value} read before it was written")
                stack.append(cell)
            elif name == "READONLY_BUFFER":
                pass
            if name == "STOP":
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
