"""Test helper: writes NVIDIA StyleGAN2-ADA / StyleGAN3 network pickles ("format A" of
``../shared/fixtures/PICKLE_FORMATS.md``) without NVIDIA's source and without torch.

The byte stream is the one NVIDIA's ``training_loop.py`` produces with ``pickle.dump(snapshot, f)``:
a dict ``{'training_set_kwargs', 'G', 'D', 'G_ema', 'augment_pipe'}`` whose networks are
persistence records ``torch_utils.persistence._reconstruct_persistent_obj(meta)``, each module's
``state`` being its torch ``__dict__``; tensors are ``torch._utils._rebuild_parameter(
_rebuild_tensor_v2(torch.storage._load_from_bytes(<legacy torch.save of the storage>), ...))``.

How: the pure-Python ``pickle._Pickler`` with a dispatch entry for :class:`Global` markers (written
as GLOBAL / STACK_GLOBAL exactly as ``save_global`` would, memoized, so every global is written once
and then BINGET like in the real files), :class:`Call` objects that reduce to REDUCE calls, and a
``reducer_override`` that writes numpy arrays / scalars / dtypes with either the numpy-1
(``numpy.core``) or numpy-2 (``numpy._core``) module names. Nothing is registered in
``sys.modules``. Values that are not numpy arrays (e.g. real ``torch`` tensors) are pickled by
their own ``__reduce_ex__``, which lets a test put torch-written tensors into a snapshot.

Main entry point::

    write_nvidia_pickle(path, G=(class_name, init_kwargs, state_dict[, attributes]), D=..., G_ema=...,
                        training_set_kwargs=None, protocol=4, *, augment_pipe=None,
                        numpy_core='numpy._core', torch_style='2.x', module_src=..., persistence_version=6,
                        extra=None)

``state_dict`` maps torch names (``mapping.fc0.weight``, ``synthesis.b4.conv1.noise_const``) to
arrays; the module tree is rebuilt from the dotted names (``noise_const``, ``w_avg``,
``resample_filter``, ... become buffers, everything else parameters; class names of the inner
modules are guessed from NVIDIA's naming). ``attributes`` maps a module path (``''`` for the
top) to extra attributes; ``'__class__'`` in it overrides the class name.
"""

from __future__ import annotations

import _compat_pickle
import io
import math
import pickle
import re
import struct
from typing import Any, Mapping

import numpy as np

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
DEFAULT_MODULE_SRC = "# stand-in for the source of training/networks.py (not executable here)\n"
BUFFER_NAMES = {"noise_const", "w_avg", "resample_filter", "magnitude_ema", "up_filter", "down_filter",
                "transform", "freqs", "phases", "p", "Hz_geom", "Hz_fbank"}


class Global:
    """A ``module.name`` reference, written as GLOBAL / STACK_GLOBAL. Interned: one object per name."""

    _interned: dict[tuple[str, str], "Global"] = {}

    def __new__(cls, module: str, name: str):
        obj = cls._interned.get((module, name))
        if obj is None:
            obj = super().__new__(cls)
            obj.module, obj.name = module, name
            cls._interned[(module, name)] = obj
        return obj

    def __call__(self, *args, **kwargs):  # save_reduce wants a callable; this is a marker only
        raise TypeError("Global is a pickling marker")

    def __repr__(self) -> str:
        return f"Global({self.module}.{self.name})"


class Call:
    """``func(*args)`` (REDUCE), optionally followed by BUILD ``state`` and SETITEMS ``dictitems``."""

    def __init__(self, func: Any, *args: Any, state: Any = None, dictitems: Mapping | None = None):
        self.func, self.args, self.state, self.dictitems = func, args, state, dictitems

    def __reduce__(self):
        items = None if self.dictitems is None else iter(list(self.dictitems.items()))
        return (self.func, self.args, self.state, None, items)


class NewObj:
    """``cls.__new__(cls)`` (NEWOBJ) + BUILD ``state`` + SETITEMS ``dictitems``: how
    ``dnnlib.util.EasyDict`` (items) and the TF ``Network`` classes (state) are written."""

    def __init__(self, cls: Global, state: Any = None, dictitems: Mapping | None = None):
        self.cls, self.state, self.dictitems = cls, state, dictitems


def EasyDict(items: Mapping | None = None) -> NewObj:  # noqa: N802 (named after NVIDIA's class)
    return NewObj(Global("dnnlib.util", "EasyDict"), dictitems=dict(items or {}))


def TFNetwork(state: Mapping, module: str = "dnnlib.tflib.network") -> NewObj:  # noqa: N802
    """A TF network object (formats B/C/D), e.g. ``TFNetwork({'version': 4, ...})``."""
    return NewObj(Global(module, "Network"), state=dict(state))


ODICT = Global("collections", "OrderedDict")

_STORAGE = {np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage",
            np.dtype("float16"): "HalfStorage", np.dtype("int64"): "LongStorage", np.dtype("int32"): "IntStorage",
            np.dtype("int16"): "ShortStorage", np.dtype("int8"): "CharStorage", np.dtype("uint8"): "ByteStorage",
            np.dtype("bool"): "BoolStorage"}


class Writer(pickle._Pickler):  # noqa: SLF001 (the pure-Python pickler lets us add dispatch entries)
    """Pickler for format A. ``numpy_core``: ``'numpy.core'`` (numpy 1) or ``'numpy._core'``."""

    dispatch = dict(pickle._Pickler.dispatch)  # noqa: SLF001

    def __init__(self, file, protocol: int = 4, numpy_core: str = "numpy._core", storage: Any = None):
        super().__init__(file, protocol=protocol)
        self.numpy_core = numpy_core
        self.storage = storage  # the one object to emit as a persistent id (storage payloads only)
        self.storage_id = None

    def persistent_id(self, obj):
        if self.storage is not None and obj is self.storage:
            return self.storage_id
        return None

    def _save_global_marker(self, obj: Global) -> None:
        module, name = obj.module, obj.name
        if self.proto >= 4:
            self.save(module)
            self.save(name)
            self.write(pickle.STACK_GLOBAL)
        elif self.proto >= 3:
            self.write(pickle.GLOBAL + module.encode("utf-8") + b"\n" + name.encode("utf-8") + b"\n")
        else:
            if (module, name) in _compat_pickle.REVERSE_NAME_MAPPING:
                module, name = _compat_pickle.REVERSE_NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.REVERSE_IMPORT_MAPPING:
                module = _compat_pickle.REVERSE_IMPORT_MAPPING[module]
            self.write(pickle.GLOBAL + module.encode("ascii") + b"\n" + name.encode("ascii") + b"\n")
        self.memoize(obj)

    dispatch[Global] = _save_global_marker

    def _save_newobj(self, obj: NewObj) -> None:
        self.save(obj.cls)
        self.save(())
        self.write(pickle.NEWOBJ)
        self.memoize(obj)
        items = list((obj.dictitems or {}).items())
        for i in range(0, len(items), 1000):
            chunk = items[i:i + 1000]
            if len(chunk) == 1:
                self.save(chunk[0][0])
                self.save(chunk[0][1])
                self.write(pickle.SETITEM)
            else:
                self.write(pickle.MARK)
                for k, v in chunk:
                    self.save(k)
                    self.save(v)
                self.write(pickle.SETITEMS)
        if obj.state is not None:
            self.save(obj.state)
            self.write(pickle.BUILD)

    dispatch[NewObj] = _save_newobj

    def reducer_override(self, obj):
        core = self.numpy_core
        if isinstance(obj, np.dtype):
            _, args, state = obj.__reduce__()
            return (Global("numpy", "dtype"), args, state)
        if isinstance(obj, np.generic):
            _, (dtype, raw) = obj.__reduce__()
            return (Global(f"{core}.multiarray", "scalar"), (dtype, raw))
        if type(obj) is np.ndarray:
            if self.proto >= 5 and (obj.flags.c_contiguous or obj.flags.f_contiguous):
                order = "C" if obj.flags.c_contiguous else "F"
                raw = obj.tobytes(order="A" if order == "F" else "C")
                shape = obj.shape
                return (Global(f"{core}.numeric", "_frombuffer"), (bytearray(raw), obj.dtype, shape, order))
            _, (_, shape0, typecode), state = obj.__reduce__()
            return (Global(f"{core}.multiarray", "_reconstruct"), (Global("numpy", "ndarray"), shape0, typecode),
                    state)
        return NotImplemented


def dumps(obj: Any, protocol: int = 4, numpy_core: str = "numpy._core") -> bytes:
    Tensor.counter[0] = 0  # storage keys '1', '2', ... in each file: the same bytes for the same input
    out = io.BytesIO()
    Writer(out, protocol=protocol, numpy_core=numpy_core).dump(obj)
    return out.getvalue()


# ----------------------------------------------------------------------------------------------
# Tensors: a legacy (non-zip) torch.save of each storage inside torch.storage._load_from_bytes.

_SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}


def storage_payload(flat: np.ndarray, key: str = "0", location: str = "cpu") -> bytes:
    """What ``torch.save(storage, f, _use_new_zipfile_serialization=False)`` writes (PICKLE_FORMATS 1.4)."""
    flat = np.ascontiguousarray(flat).reshape(-1)
    storage_cls = _STORAGE[flat.dtype]
    out = io.BytesIO()
    for part in (TORCH_LEGACY_MAGIC, 1001, _SYS_INFO):
        pickle.dump(part, out, protocol=2)
    w = Writer(out, protocol=2)
    w.storage = marker = object()
    w.storage_id = ("storage", Global("torch", storage_cls), key, location, int(flat.size), None)
    w.dump(marker)
    pickle.dump([key], out, protocol=2)
    return out.getvalue() + struct.pack("<q", flat.size) + flat.astype(flat.dtype.newbyteorder("<")).tobytes()


class Tensor:
    """A torch tensor (``parameter=False``: a buffer) holding ``array``, pickled as torch pickles it.
    ``payload`` replaces the nested torch.save bytes (for hostile-file tests)."""

    counter = [0]

    def __init__(self, array: np.ndarray, parameter: bool = True, payload: bytes | None = None):
        self.array, self.parameter, self.payload = np.asarray(array), parameter, payload

    def __reduce__(self):
        arr = self.array
        if self.payload is None:
            Tensor.counter[0] += 1
            payload = storage_payload(arr, key=str(Tensor.counter[0]))
        else:
            payload = self.payload
        stride = tuple(math.prod(arr.shape[i + 1:]) for i in range(arr.ndim))  # C order, in elements
        tensor = Call(Global("torch._utils", "_rebuild_tensor_v2"),
                      Call(Global("torch.storage", "_load_from_bytes"), payload),
                      0, tuple(arr.shape), stride, False, Call(ODICT))
        if not self.parameter:
            return tensor.__reduce__()
        return (Global("torch._utils", "_rebuild_parameter"), (tensor, False, Call(ODICT)))


# ----------------------------------------------------------------------------------------------
# Persistence records.

_HOOKS_2X = ["_backward_pre_hooks", "_backward_hooks", "_is_full_backward_hook", "_forward_hooks",
             "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
             "_forward_pre_hooks_with_kwargs", "_state_dict_hooks", "_state_dict_pre_hooks",
             "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks"]  # torch 2.13 Module.__dict__ order
_HOOKS_1X = ["_backward_hooks", "_forward_hooks", "_forward_pre_hooks", "_state_dict_hooks",
             "_load_state_dict_pre_hooks"]  # torch 1.7-1.9, which wrote the published snapshots


class Record:
    """A ``persistent_class`` object: reduces to ``_reconstruct_persistent_obj(meta)``."""

    def __init__(self, class_name: str, state: dict, module_src: str = DEFAULT_MODULE_SRC,
                 version: Any = 6, meta_type: str = "class"):
        self.meta = {"type": meta_type, "version": version, "module_src": module_src, "class_name": class_name,
                     "state": state}

    def __reduce__(self):
        return (Global("torch_utils.persistence", "_reconstruct_persistent_obj"), (self.meta,))


def _container(items: Mapping, torch_style: str):
    return dict(items) if torch_style == "2.x" else Call(ODICT, dictitems=dict(items))


def record(class_name: str, parameters: Mapping | None = None, buffers: Mapping | None = None,
           modules: Mapping | None = None, attrs: Mapping | None = None, init_args: tuple = (),
           init_kwargs: Mapping | None = None, non_persistent: tuple = (), torch_style: str = "2.x",
           module_src: str = DEFAULT_MODULE_SRC, version: Any = 6) -> Record:
    """One module record; ``parameters``/``buffers`` values are arrays (wrapped as tensors) or
    ready-made objects (``Tensor``, real torch tensors, None)."""
    def wrap(values, parameter):
        return {k: Tensor(v, parameter) if isinstance(v, np.ndarray) else v for k, v in (values or {}).items()}

    state: dict[str, Any] = {"training": False,
                             "_parameters": _container(wrap(parameters, True), torch_style),
                             "_buffers": _container(wrap(buffers, False), torch_style),
                             "_non_persistent_buffers_set": set(non_persistent)}
    for hook in (_HOOKS_2X if torch_style == "2.x" else _HOOKS_1X):
        state[hook] = None if hook == "_is_full_backward_hook" else Call(ODICT)
    state["_modules"] = _container(modules or {}, torch_style)
    state.update(attrs or {})
    state["_init_args"] = tuple(init_args)
    state["_init_kwargs"] = _easydicts(dict(init_kwargs or {}), top=True)
    return Record(class_name, state, module_src=module_src, version=version)


def _easydicts(value: Any, top: bool = False) -> Any:
    """Nested kwarg dicts are dnnlib.EasyDicts in NVIDIA's files; the top-level one is a dict."""
    if isinstance(value, Mapping) and not isinstance(value, NewObj):
        items = {k: _easydicts(v) for k, v in value.items()}
        return items if top else EasyDict(items)
    return value


def guess_class(net_class: str, path: str) -> str:
    """NVIDIA's class of the submodule at ``path`` (``mapping.fc0``) of a ``net_class``."""
    parts = path.split(".")
    last = parts[-1]
    if net_class == "Generator":
        if path == "mapping":
            return "MappingNetwork"
        if path == "synthesis":
            return "SynthesisNetwork"
        if len(parts) == 2 and parts[0] == "synthesis" and re.fullmatch(r"b\d+", last):
            return "SynthesisBlock"
        return {"conv0": "SynthesisLayer", "conv1": "SynthesisLayer", "torgb": "ToRGBLayer",
                "skip": "Conv2dLayer"}.get(last, "FullyConnectedLayer")
    if net_class == "Discriminator":
        if path == "b4":
            return "DiscriminatorEpilogue"
        if path == "mapping":
            return "MappingNetwork"
        if len(parts) == 1 and re.fullmatch(r"b\d+", last):
            return "DiscriminatorBlock"
        if last == "mbstd":
            return "MinibatchStdLayer"
        return "FullyConnectedLayer" if re.fullmatch(r"fc\d*|out|embed", last) else "Conv2dLayer"
    return "Module"


def network_record(class_name: str, init_kwargs: Mapping, state_dict: Mapping[str, Any],
                   attributes: Mapping[str, Mapping] | None = None, torch_style: str = "2.x",
                   module_src: str = DEFAULT_MODULE_SRC, version: Any = 6) -> Record:
    """The record tree of a whole network, built from its torch ``state_dict`` names (in order)."""
    attributes = dict(attributes or {})
    tree: dict[str, dict] = {"": {"params": {}, "buffers": {}, "children": []}}
    for name, value in state_dict.items():
        path, _, leaf = name.rpartition(".")
        parts = path.split(".") if path else []
        for i in range(len(parts)):
            p, parent = ".".join(parts[:i + 1]), ".".join(parts[:i])
            if p not in tree:
                tree[p] = {"params": {}, "buffers": {}, "children": []}
                tree[parent]["children"].append(p)
        kind = "buffers" if leaf in BUFFER_NAMES else "params"
        tree[path][kind][leaf] = value
    for p in attributes:  # modules with attributes only (e.g. mbstd)
        parts = p.split(".") if p else []
        for i in range(len(parts)):
            q, parent = ".".join(parts[:i + 1]), ".".join(parts[:i])
            if q not in tree:
                tree[q] = {"params": {}, "buffers": {}, "children": []}
                tree[parent]["children"].append(q)

    def build(path: str) -> Record:
        node, extra = tree[path], dict(attributes.get(path, {}))
        cls = extra.pop("__class__", None) or (class_name if not path else guess_class(class_name, path))
        attrs: dict[str, Any] = {}
        if not path:
            attrs.update({k: v for k, v in init_kwargs.items() if not isinstance(v, Mapping)})
        weight = node["params"].get("weight")
        if isinstance(weight, np.ndarray) and weight.ndim >= 2:  # as FullyConnectedLayer / Conv2dLayer keep it
            attrs["weight_gain"] = np.float64(1 / math.sqrt(math.prod(weight.shape[1:])))
        attrs.update(extra)
        modules = {c.rpartition(".")[2]: build(c) for c in node["children"]}
        return record(cls, node["params"], node["buffers"], modules, attrs,
                      init_kwargs=init_kwargs if not path else {}, torch_style=torch_style,
                      module_src=module_src, version=version)

    return build("")


def snapshot(G=None, D=None, G_ema=None, training_set_kwargs=None, *, augment_pipe=None, torch_style: str = "2.x",
             module_src: str = DEFAULT_MODULE_SRC, persistence_version: Any = 6, extra: Mapping | None = None) -> dict:
    """The dict NVIDIA's training loop pickles (keys in its order)."""
    data: dict[str, Any] = {"training_set_kwargs": training_set_kwargs}
    for key, net in (("G", G), ("D", D), ("G_ema", G_ema)):
        if net is not None:
            class_name, init_kwargs, state_dict, *rest = net
            data[key] = network_record(class_name, init_kwargs, state_dict, rest[0] if rest else None,
                                       torch_style=torch_style, module_src=module_src, version=persistence_version)
    if augment_pipe is not None and not isinstance(augment_pipe, Record):
        class_name, init_kwargs, state_dict, *rest = augment_pipe
        augment_pipe = network_record(class_name, init_kwargs, state_dict, rest[0] if rest else None,
                                      torch_style=torch_style, module_src=module_src, version=persistence_version)
    data["augment_pipe"] = augment_pipe
    data.update(extra or {})
    return data


def dumps_nvidia_pickle(G=None, D=None, G_ema=None, training_set_kwargs=None, protocol: int = 4, *,
                        numpy_core: str = "numpy._core", **kwargs) -> bytes:
    return dumps(snapshot(G, D, G_ema, training_set_kwargs, **kwargs), protocol=protocol, numpy_core=numpy_core)


def write_nvidia_pickle(path, G=None, D=None, G_ema=None, training_set_kwargs=None, protocol: int = 4, *,
                        numpy_core: str = "numpy._core", **kwargs) -> None:
    """Write an NVIDIA format-A network snapshot. ``G``/``D``/``G_ema``/``augment_pipe``:
    ``(class_name, init_kwargs, state_dict[, attributes])`` or None (key left out; augment_pipe is
    written as None like the training loop does). See the module docstring."""
    data = dumps_nvidia_pickle(G, D, G_ema, training_set_kwargs, protocol, numpy_core=numpy_core, **kwargs)
    with open(path, "wb") as f:
        f.write(data)


__all__ = ["Call", "EasyDict", "Global", "NewObj", "ODICT", "Record", "TFNetwork", "Tensor", "Writer", "dumps",
           "dumps_nvidia_pickle", "guess_class", "network_record", "record", "snapshot", "storage_payload",
           "write_nvidia_pickle"]


# ----------------------------------------------------------------------------------------------
# TensorFlow networks (formats B, C, D of PICKLE_FORMATS.md): what ``Network.__getstate__`` returns.


def tf_network(name: str, build_func_name: str, static_kwargs: Mapping, variables: Mapping[str, Any], *,
               version: int = 2, components: Mapping | None = None, module: str = "tfutil",
               module_src: str = "# stand-in for the source of networks.py (not executable here)\n") -> NewObj:
    """A ``tfutil.Network`` (format C: ``version`` 2, no components) or, with ``module=
    'dnnlib.tflib.network'``, a format B/D network; keys in NVIDIA's ``__getstate__`` order.
    ``variables``: local name -> array; scalars (``lod``) are written as numpy float32 scalars, as
    ``session.run`` returns them."""
    state: dict[str, Any] = {"version": version, "name": name, "static_kwargs": dict(static_kwargs)}
    if components is not None:
        state["components"] = dict(components)
    state["build_module_src"] = module_src
    state["build_func_name"] = build_func_name
    state["variables"] = [(k, np.float32(v) if np.ndim(v) == 0 else np.ascontiguousarray(v, np.float32))
                          for k, v in variables.items()]
    return TFNetwork(state, module=module)
