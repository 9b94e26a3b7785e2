"""Safe reader of NVIDIA's StyleGAN2-ADA-PyTorch / StyleGAN3 network pickles (``network-snapshot-*.pkl``).

NVIDIA's snapshots are plain pickles whose networks are "persistence records": a call of
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` where ``meta`` carries the whole
Python source of the defining module (``module_src``), the class name and the module's
``__dict__``. Loading them with ``pickle.load`` executes that source. This module reads them
with the restricted unpickler of :mod:`gan_jax.restricted_pickle` instead:

* every global the file names (GLOBAL, STACK_GLOBAL, INST, OBJ) goes through ``find_class``,
  a lookup in a fixed allow-table (:data:`FORMAT_A_GLOBALS`, :data:`TF_NETWORK_GLOBALS`) that maps
  it to a stand-in (a plain-data record builder, a numpy array builder, ...). Anything else raises
  ``pickle.UnpicklingError("refused global posix.system")`` and nothing from the file runs;
* ``module_src`` is checked to be a string and dropped: it is never compiled or executed;
* tensors are rebuilt as numpy arrays from the nested ``torch.save`` payload of their storage,
  which is parsed with its own restricted unpicklers (no globals at all, except the
  ``torch.<X>Storage`` dtype tokens, and only the documented persistent-id tuple);
* BUILD on anything the file reached through ``find_class`` is refused (it would set attributes
  on this module's own objects); stand-ins check the types of their arguments;
* before unpickling, each pickle's opcodes are walked once (``restricted_pickle.scan``) to refuse lengths
  beyond the end of the data and absurd memo indices, which would make CPython's C unpickler
  allocate gigabytes from a few corrupt bytes; the arrays a load creates are capped at a few
  times the file size (memo references cannot multiply one payload); tensor views larger than
  their storage (zero strides) are refused;
* neither torch, TensorFlow, jax nor NVIDIA's code is needed or imported: stdlib + numpy.

The byte layouts are documented in ``../shared/fixtures/PICKLE_FORMATS.md`` (format A: sections
0, 1, 3, 6, 8; the TensorFlow formats B, C, D: sections 2, 4, 5).

Public API
----------
``load_nvidia_pickle(path_or_file) -> dict`` with, for the keys present in the file,

* ``'G'``, ``'D'``, ``'G_ema'``: a :class:`LoadedNetwork`, which *is* the 2-tuple
  ``(init_kwargs, state_dict)`` -- ``init_kwargs`` exactly the constructor keywords NVIDIA
  recorded (``Generator(**init_kwargs)`` rebuilds it; nested ``dnnlib.EasyDict`` become
  :class:`EasyDict`, a dict subclass), ``state_dict`` a ``dict[str, np.ndarray]`` with exactly
  torch's ``module.state_dict()`` names and order -- and also carries ``.class_name``
  (``'Generator'``/``'Discriminator'``), ``.kind`` (see :func:`network_kind`), ``.init_args``
  and ``.record`` (the raw :class:`PersistentRecord` tree, attributes included).
  ``G``/``G_ema`` must be ``Generator`` records and ``D`` a ``Discriminator`` record.
* ``'training_set_kwargs'``: a dict, or None (files made by ADA's ``legacy.py``).
* ``'augment_pipe'``: a :class:`LoadedNetwork` of the ``AugmentPipe`` record (buffers ``p``,
  ``Hz_geom``, ``Hz_fbank``), or None. Returned as well, since it is cheap.

A TensorFlow pickle -- the ``(G, D, Gs)`` tuple of ProGAN (``tfutil.Network``, state version 2,
format C), StyleGAN (``dnnlib.tflib.network.Network`` version 2/3 with nested ``components``,
format B) or StyleGAN2-TF (version 4/5, format D) -- gives ``{'G', 'D', 'G_ema'}`` (``G_ema`` is
``Gs``) as :class:`TFNetwork` records: ``.name``, ``.build_func_name``, ``.static_kwargs``,
``.variables`` (own and components', ``<component name>/<local name>``), ``.kind``
(``'progan'`` | ``'stylegan'`` | ``'stylegan2-tf'``), ``.format``, ``.version``, ``.components``.
The embedded ``build_module_src`` is checked to be a string and dropped, never executed.

The class name is *not* put into ``init_kwargs`` (that would break ``Generator(**init_kwargs)``):
use ``result['G'].class_name`` / ``.kind``. Other top-level entries are ignored. Errors are
:class:`NvidiaPickleError` (a subclass of both ``pickle.UnpicklingError`` and ``ValueError``)
with a one-line message that starts with the file name: refused globals, truncated/corrupt
files, pickles that are not snapshots (naming what they look like: a ``torch.save`` file, another
dict), persistence versions other than 6, TF state versions outside those above.

``network_kind(obj)`` tells ``'stylegan2'`` (ADA's ``training/networks.py``, also the StyleGAN3
repo's ``networks_stylegan2``), ``'stylegan3'`` (``networks_stylegan3``), ``'augment_pipe'`` or
``'unknown'``, so callers can refuse another network type with a clear message.
``restricted_load(path_or_file)`` returns the whole object graph read with the same restrictions
(records as :class:`PersistentRecord`, TF networks as their raw state), for tools.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os
import pickle
import re
from typing import Any, BinaryIO, Callable, Mapping

import numpy as np

from gan_jax import restricted_pickle as rp

__all__ = [
    "EasyDict",
    "LoadedNetwork",
    "TFNetwork",
    "NvidiaPickleError",
    "PersistentRecord",
    "UnsupportedFormatError",
    "load_nvidia_pickle",
    "network_kind",
    "restricted_load",
]

PERSISTENCE_VERSION = 6  # torch_utils/persistence.py `_version` (ADA and StyleGAN3 alike)
_MAX_MODULE_VISITS = 100_000  # a real network has a few hundred modules
_MAX_PATH = 1000  # characters of a dotted module path: real ones are < 100 ('synthesis.b1024.conv1.affine.')


class NvidiaPickleError(rp.RestrictedPickleError):
    """A file that this safe loader will not or cannot read (the message says which and why)."""


class UnsupportedFormatError(NvidiaPickleError):
    """A known network pickle format that this loader does not read (yet), e.g. TensorFlow."""


# ----------------------------------------------------------------------------------------------
# Stand-ins for the globals a format-A file names. None of them runs file data as code.


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a dict with attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        del self[name]

    def __setstate__(self, state: Any) -> None:  # BUILD (not written by NVIDIA's EasyDict)
        if state is None:
            return
        if not isinstance(state, dict):
            raise NvidiaPickleError(f"EasyDict state is a {type(state).__name__}, expected a dict")
        self.update(state)

    def __reduce__(self):
        return (EasyDict, (dict(self),))


class PersistentRecord(dict, rp.Container):
    """One ``persistent_class`` object: ``{'class_name', 'init_args', 'init_kwargs', 'state'}``.

    ``state`` is the torch module's ``__dict__`` as plain data (``_parameters``, ``_buffers``,
    ``_modules``, the class's own attributes, ...). The module source is not kept.
    """

    def __setstate__(self, state: Any) -> None:
        raise NvidiaPickleError("BUILD applied to a persistence record (NVIDIA's records have no BUILD)")

    def resolve_contents(self, resolve: Callable[[Any], Any]) -> None:
        """Once the state is read: ``init_args`` / ``init_kwargs`` are its ``_init_args`` / ``_init_kwargs``."""
        state = self["state"]
        self["init_args"] = state.get("_init_args", ())
        self["init_kwargs"] = state.get("_init_kwargs", {})

    @property
    def class_name(self) -> str:
        return self["class_name"]

    @property
    def state(self) -> dict:
        return self["state"]

    def __repr__(self) -> str:
        return f"PersistentRecord({self['class_name']!r})"


def _reconstruct_persistent_obj(meta: Any = None, *extra: Any) -> PersistentRecord:
    """``torch_utils.persistence._reconstruct_persistent_obj(meta)`` -> a plain record."""
    if extra or not isinstance(meta, dict):
        raise NvidiaPickleError("persistence record: expected one meta dict argument")
    if meta.get("type") != "class":
        raise NvidiaPickleError(f"persistence record of type {rp.short(meta.get('type'))}; NVIDIA writes only 'class'")
    version = meta.get("version")
    if type(version) is not int or version != PERSISTENCE_VERSION:
        raise NvidiaPickleError(
            f"persistence record version {rp.short(version)}; this loader reads version {PERSISTENCE_VERSION} only "
            f"(the only one NVIDIA's torch_utils/persistence.py writes and accepts)")
    class_name = meta.get("class_name")
    if not isinstance(class_name, str) or not class_name.isidentifier():
        raise NvidiaPickleError(f"persistence record with class_name {rp.short(class_name)}")
    if not isinstance(meta.get("module_src"), str):
        raise NvidiaPickleError(f"persistence record {class_name}: module_src is not a string")
    state = meta.get("state")
    if not isinstance(state, dict):
        raise NvidiaPickleError(f"persistence record {class_name}: state is a {type(state).__name__}, not a dict")
    # module_src is dropped here: it is never compiled, let alone executed.
    return PersistentRecord(class_name=class_name, init_args=(), init_kwargs={}, state=state)


class _TFNetworkStub(rp.Container):
    """``dnnlib.tflib.network.Network`` / ``tfutil.Network`` (TF formats B, C, D): keeps the state
    dict (BUILD); :func:`_tf_network` turns it into a :class:`TFNetwork` record."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise NvidiaPickleError(f"TF network state is a {type(state).__name__}, expected a dict")
        self.state = state

    def resolve_contents(self, resolve: Callable[[Any], Any]) -> None:
        if hasattr(self, "state"):
            self.state = resolve(self.state)

    def describe(self) -> str:
        raise NotImplementedError


class _DnnlibTFNetwork(_TFNetworkStub):
    def describe(self) -> str:
        version = getattr(self, "state", {}).get("version")
        what = {2: "StyleGAN (1) TensorFlow pickle (format B of PICKLE_FORMATS.md)",
                3: "StyleGAN (1) TensorFlow pickle (format B of PICKLE_FORMATS.md)",
                4: "StyleGAN2 TensorFlow pickle (format D of PICKLE_FORMATS.md)",
                5: "StyleGAN2-ADA TensorFlow pickle (format D of PICKLE_FORMATS.md)"}
        known = what.get(version) if type(version) is int else None
        return known or f"TensorFlow dnnlib network pickle of unknown version {rp.short(version, 20)}"


class _TfutilNetwork(_TFNetworkStub):
    def describe(self) -> str:
        return "ProGAN TensorFlow pickle (tfutil.Network, format C of PICKLE_FORMATS.md)"


# (module, name) -> stand-in. Format A (PICKLE_FORMATS.md 1.6 / 6) + numpy (3) + the protocol-2/3
# spellings of builtins, and the TF network classes (B/C/D) only so that they can be recognised.
FORMAT_A_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("torch._utils", "_rebuild_tensor_v2"): rp.rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): rp.rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): rp.rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): rp.load_from_bytes,
    **rp.numpy_globals(),
    **rp.BUILTIN_GLOBALS,
}
TF_NETWORK_GLOBALS: dict[tuple[str, str], Any] = {
    ("dnnlib.tflib.network", "Network"): _DnnlibTFNetwork,
    ("tfutil", "Network"): _TfutilNetwork,
}
_ALLOWED = rp.stand_ins({**FORMAT_A_GLOBALS, **TF_NETWORK_GLOBALS})

# What a refused global tells about the file (by (module, name), or by root module).
_HINTS = {
    ("network", "Network"): "a Theano-era ProGAN pickle, which this loader does not read",
    ("torch._utils", "_rebuild_tensor"): "a tensor pickled by a very old torch (< 1.0)",
    "torch": "a torch object other than a tensor or parameter: not an NVIDIA persistence record",
}


# ----------------------------------------------------------------------------------------------
# Reading a file.


def _open(path_or_file: Any) -> tuple[str, BinaryIO, bool]:
    if isinstance(path_or_file, (bytes, bytearray, memoryview)):
        return "<bytes>", io.BytesIO(bytes(path_or_file)), True
    if hasattr(path_or_file, "read"):
        return str(getattr(path_or_file, "name", "<file object>")), path_or_file, False
    path = os.fspath(path_or_file)
    try:
        return str(path), open(path, "rb"), True  # noqa: SIM115
    except OSError as e:  # same subclass (FileNotFoundError, PermissionError...), one clear line
        raise OSError(e.errno, f"cannot open the network pickle: {e.strerror}", str(path)) from None


def _sniff(f: BinaryIO, label: str) -> tuple[BinaryIO, int]:
    """Check the first bytes; returns the file, positioned at the start, and its size."""
    if hasattr(f, "seekable") and f.seekable():
        pos = f.tell()
        size = f.seek(0, io.SEEK_END) - pos
        f.seek(pos)
        head = f.read(8)
        f.seek(pos)
    else:
        f = io.BytesIO(f.read())
        size, head = len(f.getvalue()), f.getvalue()[:8]
    if not isinstance(head, bytes):
        raise TypeError(f"{label}: open the network pickle in binary mode ('rb')")
    if not head:
        raise NvidiaPickleError(f"{label}: empty file, not a network pickle")
    if head[:4] == b"PK\x03\x04":
        raise NvidiaPickleError(f"{label}: a zip archive (a torch.save checkpoint or a dataset?), "
                                "not an NVIDIA network pickle")
    if head[:1] != b"\x80" or len(head) < 2:
        raise NvidiaPickleError(f"{label}: not a network pickle (it does not start with a pickle protocol header "
                                f"0x80 0x02..0x05; first bytes {head.hex(' ')})")
    if not 2 <= head[1] <= 5:
        raise NvidiaPickleError(f"{label}: pickle protocol {head[1]} (first bytes {head.hex(' ')}); "
                                "network pickles use protocols 2 to 5")
    return f, size




def _restricted_load(path_or_file: Any) -> tuple[str, Any]:
    label, f, close = _open(path_or_file)
    label = rp.clean(label, 500)
    try:
        f, size = _sniff(f, label)
        with rp.array_budget(size):
            try:
                rp.scan(f)
                obj = rp.RestrictedUnpickler(f, _ALLOWED, reader="an NVIDIA network pickle", hints=_HINTS,
                                             error=NvidiaPickleError).load()
                obj = rp.finalize(obj)
            except (EOFError, pickle.UnpicklingError) as e:
                raise rp.failure(NvidiaPickleError, label, e, "truncated or corrupt pickle") from None
            except Exception as e:  # noqa: BLE001 (a stand-in called with the wrong arguments, a bad opcode...)
                raise rp.failure(NvidiaPickleError, label, e, "corrupt or not a network pickle") from None
    finally:
        if close:
            f.close()
    return label, obj

def restricted_load(path_or_file: Any) -> Any:
    """The object graph of a pickle, read with this module's restrictions (no code runs):
    persistence records become :class:`PersistentRecord`, tensors numpy arrays."""
    return _restricted_load(path_or_file)[1]


# ----------------------------------------------------------------------------------------------
# Records -> (init_kwargs, state_dict).


class LoadedNetwork(tuple):
    """``(init_kwargs, state_dict)`` of one network, with ``class_name``, ``kind``, ``init_args``
    and ``record`` (the raw :class:`PersistentRecord`) as attributes."""

    def __new__(cls, init_kwargs: dict, state_dict: dict, class_name: str, init_args: tuple = (),
                kind: str = "unknown", record: PersistentRecord | None = None):
        self = super().__new__(cls, (init_kwargs, state_dict))
        self.class_name, self.init_args, self.kind, self.record = class_name, tuple(init_args), kind, record
        return self

    @property
    def init_kwargs(self) -> dict:
        return self[0]

    @property
    def state_dict(self) -> dict[str, np.ndarray]:
        return self[1]

    def __reduce__(self):
        return (LoadedNetwork, (self[0], self[1], self.class_name, self.init_args, self.kind, self.record))

    def __repr__(self) -> str:
        return f"LoadedNetwork({self.class_name}, kind={self.kind!r}, {len(self[1])} tensors)"


def _children(record: PersistentRecord, where: str) -> dict:
    modules = record["state"].get("_modules", {})
    if not isinstance(modules, dict):
        raise NvidiaPickleError(f"{where}: _modules is a {type(modules).__name__}, not a dict")
    return modules


def _state_dict(record: PersistentRecord, where: str) -> dict[str, np.ndarray]:
    """torch's ``Module.state_dict()``: own parameters, own persistent buffers, then children."""
    out: dict[str, np.ndarray] = {}
    active: set[int] = set()
    visits = [0]

    def visit(rec: PersistentRecord, prefix: str, depth: int) -> None:
        visits[0] += 1
        if visits[0] > _MAX_MODULE_VISITS:
            raise NvidiaPickleError(f"{where}: more than {_MAX_MODULE_VISITS} modules (shared submodules?); refused")
        if len(prefix) > _MAX_PATH:
            raise NvidiaPickleError(f"{where}: a module path longer than {_MAX_PATH} characters "
                                    f"({rp.clean(prefix, 60)}...); refused")
        if id(rec) in active or depth > rp.MAX_DEPTH:
            raise NvidiaPickleError(f"{where}: module {rp.clean(prefix.rstrip('.')) or '<top>'} contains itself")
        active.add(id(rec))
        state = rec["state"]
        non_persistent = state.get("_non_persistent_buffers_set", set())
        if not isinstance(non_persistent, (set, frozenset, list, tuple)):
            raise NvidiaPickleError(f"{where}: _non_persistent_buffers_set is a {type(non_persistent).__name__}")
        for kind in ("_parameters", "_buffers"):
            tensors = state.get(kind, {})
            if not isinstance(tensors, dict):
                raise NvidiaPickleError(f"{where}: {rp.clean(prefix)}{kind} is a {type(tensors).__name__}, not a dict")
            for name, value in tensors.items():
                if value is None or (kind == "_buffers" and name in non_persistent):
                    continue
                if not isinstance(value, np.ndarray):
                    raise NvidiaPickleError(f"{where}: {rp.clean(prefix + str(name))} is a {type(value).__name__}, "
                                            "not a tensor")
                out[f"{prefix}{name}"] = value
                rp.count_elements(1, where)
        for name, child in _children(rec, where).items():
            if child is None:
                continue
            if not isinstance(child, PersistentRecord):
                raise NvidiaPickleError(f"{where}: submodule {rp.clean(prefix + str(name))} is a {type(child).__name__}, "
                                        "not an NVIDIA persistence record")
            visit(child, f"{prefix}{name}.", depth + 1)
        active.discard(id(rec))

    visit(record, "", 0)
    return out


def _descendant_classes(record: PersistentRecord) -> set[str]:
    seen, names, todo = set(), set(), [record]
    while todo:
        rec = todo.pop()
        if id(rec) in seen:
            continue
        seen.add(id(rec))
        names.add(rec["class_name"])
        modules = rec["state"].get("_modules", {})
        if isinstance(modules, dict):
            todo.extend(c for c in modules.values() if isinstance(c, PersistentRecord))
    return names


_SG3_KWARGS = {"magnitude_ema_beta", "conv_kernel", "use_radial_filters", "num_critical", "first_cutoff",
               "first_stopband", "last_stopband_rel", "margin_size", "output_scale", "filter_size",
               "lrelu_upsampling"}
_AUGMENT_KWARGS = {"xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast",
                   "lumaflip", "hue", "saturation", "imgfilter", "noise", "cutout"}


def network_kind(obj: Any) -> str:
    """Which network family a record / :class:`LoadedNetwork` / ``init_kwargs`` dict is.

    ``'stylegan3'``: ``networks_stylegan3`` (a ``SynthesisInput`` module, ``L{i}_{size}_{ch}``
    layers, ``magnitude_ema_beta`` among the kwargs); ``'stylegan2'``: ADA's ``networks.py`` (and
    the StyleGAN3 repo's ``networks_stylegan2``, same tree) Generator or Discriminator;
    ``'augment_pipe'``; ``'unknown'`` otherwise.
    """
    if isinstance(obj, LoadedNetwork):
        obj = obj.record if obj.record is not None else obj.init_kwargs
    if isinstance(obj, PersistentRecord):
        state = obj["state"]
        kwargs = state.get("_init_kwargs", {})
        kwargs = kwargs if isinstance(kwargs, dict) else {}
        classes = _descendant_classes(obj)
        cls = obj["class_name"]
        if cls == "AugmentPipe":
            return "augment_pipe"
        if cls == "Generator":
            synthesis = _children(obj, cls).get("synthesis")
            layer_names = set(_children(synthesis, cls)) if isinstance(synthesis, PersistentRecord) else set()
            if "SynthesisInput" in classes or any(re.fullmatch(r"L\d+_\d+_\d+", n) for n in layer_names):
                return "stylegan3"
            if "SynthesisBlock" in classes or any(re.fullmatch(r"b\d+", n) for n in layer_names):
                return "stylegan2"
            return _kind_from_kwargs(kwargs, cls)
        if cls == "Discriminator":
            if classes & {"DiscriminatorBlock", "DiscriminatorEpilogue"}:
                return "stylegan2"
            return _kind_from_kwargs(kwargs, cls)
        return "unknown"
    if isinstance(obj, Mapping):
        return _kind_from_kwargs(obj, None)
    return "unknown"


def _kind_from_kwargs(kwargs: Mapping[str, Any], cls: str | None) -> str:
    keys = set(kwargs)
    synthesis = kwargs.get("synthesis_kwargs")
    if isinstance(synthesis, Mapping):
        keys |= set(synthesis)
    if keys & _SG3_KWARGS:
        return "stylegan3" if cls in (None, "Generator") else "unknown"
    if {"z_dim", "w_dim", "img_resolution"} <= keys and cls in (None, "Generator"):
        return "stylegan2"
    if "img_resolution" in keys and "z_dim" not in keys and cls in (None, "Discriminator"):
        return "stylegan2"
    if keys and keys <= _AUGMENT_KWARGS | {"p", "xint_max", "scale_std", "rotate_max", "aniso_std", "xfrac_std",
                                           "brightness_std", "contrast_std", "hue_max", "saturation_std",
                                           "imgfilter_bands", "imgfilter_std", "noise_std", "cutout_size"}:
        return "augment_pipe" if cls in (None, "AugmentPipe") else "unknown"
    return "unknown"


def _network(record: Any, where: str) -> LoadedNetwork:
    if not isinstance(record, PersistentRecord):
        raise NvidiaPickleError(f"{where} is a {type(record).__name__}, not an NVIDIA persistence record")
    init_kwargs, init_args = record["init_kwargs"], record["init_args"]
    if not isinstance(init_kwargs, dict) or not isinstance(init_args, (tuple, list)):
        raise NvidiaPickleError(f"{where}: _init_kwargs/_init_args are not a dict and a tuple")
    return LoadedNetwork(init_kwargs, _state_dict(record, where), record["class_name"], tuple(init_args),
                         network_kind(record), record)


_NETWORK_CLASSES = {"G": "Generator", "G_ema": "Generator", "D": "Discriminator"}


def _not_a_snapshot(obj: Any, label: str) -> NvidiaPickleError:
    stubs = [x for x in (obj if isinstance(obj, (tuple, list)) else [obj]) if isinstance(x, _TFNetworkStub)]
    if stubs:
        return UnsupportedFormatError(
            f"{label}: a {stubs[0].describe()} outside the (G, D, Gs) tuple NVIDIA's TF trainers write; "
            "load_nvidia_pickle reads PyTorch snapshots (format A) and TF (G, D, Gs) tuples (B, C, D)")
    if isinstance(obj, PersistentRecord):
        return NvidiaPickleError(f"{label}: a single {obj['class_name']} persistence record, not a network snapshot "
                                 "(a dict with 'G', 'D', 'G_ema', as NVIDIA's training loop writes)")
    if type(obj) is int and obj == rp.TORCH_LEGACY_MAGIC:
        return NvidiaPickleError(f"{label}: a legacy torch.save file, not an NVIDIA network pickle")
    if isinstance(obj, dict):
        keys = ", ".join(rp.short(k, 40) for k in list(obj)[:8]) + (", ..." if len(obj) > 8 else "")
        return NvidiaPickleError(f"{label}: a pickled dict with keys [{keys}], not an NVIDIA network snapshot "
                                 "(expected 'G', 'D' and/or 'G_ema' persistence records)")
    return NvidiaPickleError(f"{label}: a pickled {type(obj).__name__}, not an NVIDIA network snapshot "
                             "(a dict with 'G', 'D', 'G_ema')")


# ----------------------------------------------------------------------------------------------
# TensorFlow pickles: (G, D, Gs) tuples of tfutil.Network (format C, ProGAN) or
# dnnlib.tflib.network.Network (formats B, StyleGAN 1, and D, StyleGAN2) states.

# (stand-in class, state version) -> (format, kind). PICKLE_FORMATS.md sections 2, 4, 5 and 6.
_TF_FORMATS = {(_TfutilNetwork, 2): ("C", "progan"),
               (_DnnlibTFNetwork, 2): ("B", "stylegan"), (_DnnlibTFNetwork, 3): ("B", "stylegan"),
               (_DnnlibTFNetwork, 4): ("D", "stylegan2-tf"), (_DnnlibTFNetwork, 5): ("D", "stylegan2-tf")}
_TF_STATE_KEYS = {"version", "name", "static_kwargs", "build_module_src", "build_func_name", "variables", "components",
                  "input_shapes", "output_shapes", "input_names", "output_names"}


@dataclasses.dataclass(frozen=True)
class TFNetwork:
    """One TF network of a ``(G, D, Gs)`` pickle, as plain read-only data (its source is dropped).

    ``variables``: name -> read-only ``np.ndarray`` (scalars such as ``lod`` as 0-d arrays): the
    network's own variables, then each component's, recursively, as ``<component's name>/<name>``
    (``G_synthesis/4x4/Const/const``, ``G_mapping/Dense0/weight``). ``components``: the components
    as :class:`TFNetwork` records by their key (``'synthesis'``, ``'mapping'``). ``kind``:
    ``'progan'`` (format C), ``'stylegan'`` (B) or ``'stylegan2-tf'`` (D).
    """

    name: str
    build_func_name: str
    static_kwargs: dict
    variables: dict
    kind: str
    format: str
    version: int
    components: dict = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"TFNetwork({self.name!r}, {self.build_func_name}, kind={self.kind!r}, format {self.format}, "
                f"{len(self.variables)} variables)")


def _tf_value(value: Any, where: str) -> np.ndarray:
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise NvidiaPickleError(f"{where} is a {type(value).__name__}, not a numpy array")
    value.setflags(write=False)
    return value


def _tf_network(stub: Any, where: str, depth: int = 0, done: dict[int, TFNetwork] | None = None) -> TFNetwork:
    done = {} if done is None else done
    if id(stub) in done:  # a component shared K times per level would otherwise be read K^depth times
        return done[id(stub)]
    if not isinstance(stub, _TFNetworkStub):
        raise NvidiaPickleError(f"{where} is a {type(stub).__name__}, not a TF Network object")
    if depth > 8:
        raise NvidiaPickleError(f"{where}: components nested too deeply")
    state = getattr(stub, "state", None)
    if not isinstance(state, dict):
        raise NvidiaPickleError(f"{where}: a Network without state (no BUILD)")
    version = state.get("version")
    fmt = _TF_FORMATS.get((type(stub), version)) if type(version) is int else None
    if fmt is None:
        known = sorted(v for c, v in _TF_FORMATS if c is type(stub))
        raise NvidiaPickleError(f"{where}: {stub.describe()}, state version {rp.clean(version, 20)}; this loader reads "
                                f"versions {known} of this class")
    unknown = sorted(str(k) for k in set(state) - _TF_STATE_KEYS)
    if unknown:
        raise NvidiaPickleError(f"{where}: unknown Network state keys {rp.clean(unknown)}")
    name, func, kwargs = state.get("name"), state.get("build_func_name"), state.get("static_kwargs")
    if not isinstance(name, str) or not isinstance(func, str) or not isinstance(kwargs, dict):
        raise NvidiaPickleError(f"{where}: name, build_func_name and static_kwargs must be str, str and dict")
    if not isinstance(state.get("build_module_src", ""), str):
        raise NvidiaPickleError(f"{where}: build_module_src is not a string")  # dropped, never executed
    where = f"{where} ({rp.clean(name, 60)})"
    pairs = state.get("variables")
    if not isinstance(pairs, (list, tuple)):
        raise NvidiaPickleError(f"{where}: variables is a {type(pairs).__name__}, expected a list of (name, value)")
    variables: dict[str, np.ndarray] = {}
    for item in pairs:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
            raise NvidiaPickleError(f"{where}: a variables entry is not a (name, value) pair")
        if item[0] in variables:
            raise NvidiaPickleError(f"{where}: variable {rp.clean(item[0])} appears twice")
        variables[item[0]] = _tf_value(item[1], f"{where}: variable {rp.clean(item[0])}")
        rp.count_elements(1, where)
    components = state.get("components", {})
    if fmt[0] == "C" and components:
        raise NvidiaPickleError(f"{where}: a tfutil.Network (ProGAN) with components; format C has none")
    if not isinstance(components, dict):
        raise NvidiaPickleError(f"{where}: components is a {type(components).__name__}, not a dict")
    records = {}
    for key, sub in components.items():
        rec = _tf_network(sub, f"{where}: component {rp.clean(key, 40)}", depth + 1, done)
        if rec.format != fmt[0]:
            raise NvidiaPickleError(f"{where}: component {rp.clean(key, 40)} is format {rec.format}, not {fmt[0]}")
        for local, value in rec.variables.items():
            full = f"{rec.name}/{local}"
            if full in variables:
                raise NvidiaPickleError(f"{where}: variable {rp.clean(full)} appears twice")
            variables[full] = value
            rp.count_elements(1, where)
        records[str(key)] = rec
    done[id(stub)] = TFNetwork(name=name, build_func_name=func, static_kwargs=dict(kwargs), variables=variables,
                               kind=fmt[1], format=fmt[0], version=version, components=records)
    return done[id(stub)]


def _tf_networks(obj: tuple, label: str) -> dict[str, TFNetwork]:
    if len(obj) != 3:
        raise NvidiaPickleError(f"{label}: a tuple of {len(obj)} TF networks; NVIDIA's TF trainers write (G, D, Gs)")
    out = {key: _tf_network(net, f"{label}: {key}") for key, net in zip(("G", "D", "G_ema"), obj)}
    formats = {net.format for net in out.values()}
    if len(formats) != 1:
        raise NvidiaPickleError(f"{label}: networks of different formats {sorted(formats)}")
    return out


def load_nvidia_pickle(path_or_file: Any) -> dict[str, Any]:
    """Read a StyleGAN2-ADA / StyleGAN3 ``network-snapshot-*.pkl`` safely (see the module docstring).

    ``path_or_file``: a path, a binary file object or the bytes. Returns, for the keys present in
    the file, ``{'G' | 'D' | 'G_ema': LoadedNetwork (init_kwargs, state_dict),
    'training_set_kwargs': dict | None, 'augment_pipe': LoadedNetwork | None}``. A TensorFlow
    ``(G, D, Gs)`` pickle (formats B, C, D) gives ``{'G', 'D', 'G_ema': TFNetwork}``.
    """
    label, obj = _restricted_load(path_or_file)
    try:
        with rp.array_budget(0):  # counts the entries emitted (arrays were charged while reading)
            if isinstance(obj, tuple) and obj and all(isinstance(x, _TFNetworkStub) for x in obj):
                return _tf_networks(obj, label)
            return _snapshot(obj, label)
    except Exception as e:  # noqa: BLE001 (odd structures in a file that unpickled fine)
        raise rp.failure(NvidiaPickleError, label, e, "not a valid network snapshot") from None


def _snapshot(obj: Any, label: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or isinstance(obj, PersistentRecord) or not any(k in obj for k in _NETWORK_CLASSES):
        raise _not_a_snapshot(obj, label)
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key in _NETWORK_CLASSES:
            if not isinstance(value, PersistentRecord):
                raise NvidiaPickleError(f"{label}: {rp.short(key)} is a {type(value).__name__}, "
                                        "not an NVIDIA persistence record")
            want = _NETWORK_CLASSES[key]
            if value["class_name"] != want:
                raise NvidiaPickleError(f"{label}: {rp.short(key)} holds a {rp.short(value['class_name'])} network, not a StyleGAN2 "
                                        f"{want} (class {want!r} of NVIDIA's networks)")
            out[key] = _network(value, f"{label}: {key}")
        elif key == "training_set_kwargs":
            if value is not None and not isinstance(value, dict):
                raise NvidiaPickleError(f"{label}: training_set_kwargs is a {type(value).__name__}, not a dict")
            out[key] = value
        elif key == "augment_pipe":
            out[key] = None if value is None else _network(value, f"{label}: augment_pipe")
    return out
