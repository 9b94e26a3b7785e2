"""Test helper: a corpus of hostile files for gan_jax's loaders (issue 22), generated at test time.

``generate(folder, marker)`` writes every file into ``folder`` and returns the :class:`Case` list:
for each class of input that once broke the loaders' promise "one clear line, never a hang" (and
each way a file could ask to run code) one or more files, plus a few valid files that must load.
A file whose payload would run code writes ``marker`` (a path) if it ran; nothing may create it.

``python tests/hostile_files.py RUN.json`` is the child process of tests/test_hostile_files.py: it
caps its address space (``RLIMIT_AS``), optionally registers a ``copyreg`` extension whose
callable writes the marker (so that EXT opcodes could reach it), then loads each case in turn
and prints one JSON line per file: outcome, exception class, message, seconds, peak RSS.

Nothing here is committed as a binary: the files are made from the opcode helpers below,
``tests/nvidia_pickle_writer.py`` and ``torch.save``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import struct
import sys
import zipfile
import zlib

import numpy as np

EXT_CODE = 0xF0  # the copyreg extension code the EXT cases use (any unused code would do)


@dataclasses.dataclass
class Case:
    name: str  # what the file is, e.g. 'repr-shared-list-dtype-state'
    path: str
    loader: str  # 'nvidia' | 'torch' | 'weights'
    valid: bool = False  # a valid file: it must load
    ext: bool = False  # load in a process that registered the copyreg extension first


def make_marker(path: str) -> None:
    """What the hostile payloads try to call: it writes the marker (a harmless stand-in for code)."""
    with open(path, "w") as f:
        f.write("code from a loaded file ran\n")


# ----------------------------------------------------------------------------------------------
# Opcode helpers (protocol-2 byte strings).

PROTO2 = b"\x80\x02"


def uni(s: str) -> bytes:
    data = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def put(i: int) -> bytes:
    return b"r" + struct.pack("<I", i)


def get(i: int) -> bytes:
    return b"j" + struct.pack("<I", i)


def binint(i: int) -> bytes:
    return b"J" + struct.pack("<i", i)


def shared_list(k: int, first_memo: int = 0) -> bytes:
    """``L(0) = []``, ``L(i+1) = [L(i), L(i)]`` through the memo: 2^k leaves in ~10k bytes."""
    out = b"]" + put(first_memo)
    for i in range(1, k + 1):
        out += b"0](" + get(first_memo + i - 1) * 2 + b"e" + put(first_memo + i)  # POP the previous one
    return out


def shared_tuple(k: int, first_memo: int = 0) -> bytes:
    """``T(0) = ()``, ``T(i+1) = (T(i), T(i))``: hashing T(k) visits 2^k tuples."""
    out = b")" + put(first_memo)
    for i in range(1, k + 1):
        out += b"0" + get(first_memo + i - 1) * 2 + b"\x86" + put(first_memo + i)
    return out


def reduce_call(module: str, name: str, args: bytes) -> bytes:
    """``module.name(*args)``; ``args``: opcodes pushing the argument tuple."""
    return glob(module, name) + args + b"R"


def torch_zip(data_pkl: bytes, members: dict[str, bytes] | None = None, compression: int = zipfile.ZIP_STORED,
              member_compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(zipfile.ZipInfo("archive/data.pkl"), data_pkl, compress_type=compression)
        for name, data in (members or {}).items():
            z.writestr(zipfile.ZipInfo(f"archive/{name}"), data, compress_type=member_compression)
    return out.getvalue()


def legacy_torch(obj_pickle: bytes, keys: list[str], storages: bytes = b"") -> bytes:
    """A legacy ``torch.save`` stream around ``obj_pickle`` (magic, protocol, sys info, object, keys, data)."""
    import pickle  # noqa: PLC0415

    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    sys_info = pickle.dumps({"protocol_version": 1001, "little_endian": True,
                             "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
    return magic + pickle.dumps(1001, protocol=2) + sys_info + obj_pickle + pickle.dumps(keys, protocol=2) + storages


def storage_pid(key: str, numel: int, dtype: str = "FloatStorage") -> bytes:
    """torch's persistent id ``('storage', torch.FloatStorage, key, 'cpu', numel)`` + BINPERSID."""
    return b"(" + uni("storage") + glob("torch", dtype) + uni(key) + uni("cpu") + binint(numel) + b"tQ"


def tensor(pid: bytes, shape: tuple[int, ...], stride: tuple[int, ...]) -> bytes:
    """``_rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())``."""
    tup = lambda xs: b"(" + b"".join(binint(x) for x in xs) + b"t"  # noqa: E731
    return (glob("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + binint(0) + tup(shape) + tup(stride)
            + b"\x89" + glob("collections", "OrderedDict") + b")R" + b"tR")


def npz(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return out.getvalue()


def deflate_member_zip(name: str, raw_size: int, prefix: bytes = b"") -> bytes:
    """A zip whose member ``name`` is ``raw_size`` bytes (``prefix`` + zeros), deflated (~1000:1)."""
    out = io.BytesIO()
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = comp.compress(prefix)
    crc = zlib.crc32(prefix)
    chunk = b"\0" * (1 << 22)
    left = raw_size - len(prefix)
    while left > 0:
        piece = chunk[: min(left, len(chunk))]
        body += comp.compress(piece)
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
    body += comp.flush()
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    # A local header + data + central directory written by hand: zipfile would deflate the data itself.
    lfh = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(body), raw_size, len(name), 0)
    cdh = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(body), raw_size, len(name), 0, 0,
                      0, 0, 0, 0)
    out.write(lfh + name.encode() + body)
    cd_start = out.tell()
    out.write(cdh + name.encode())
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, out.tell() - cd_start, cd_start, 0))
    return out.getvalue()


# ----------------------------------------------------------------------------------------------
# The corpus.


def generate(folder: str, marker: str) -> list[Case]:
    """Write the hostile (and a few valid) files into ``folder``; returns the cases."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import nvidia_pickle_writer as w  # noqa: PLC0415

    cases: list[Case] = []

    def add(name: str, loader: str, data: bytes, **kw) -> None:
        path = os.path.join(folder, name + {"nvidia": ".pkl", "torch": ".pth", "weights": ".npz"}[loader])
        with open(path, "wb") as f:
            f.write(data)
        cases.append(Case(name, path, loader, **kw))

    run = lambda: uni(marker) + b"\x85R"  # noqa: E731 (the marker path as the only argument, then REDUCE)

    # -- valid files
    rng = np.random.RandomState(0)
    sd = {"mapping.fc0.weight": rng.randn(4, 4).astype(np.float32), "mapping.fc0.bias": np.zeros(4, np.float32),
          "synthesis.b4.const": rng.randn(4, 2, 2).astype(np.float32)}
    kwargs = {"z_dim": 4, "c_dim": 0, "w_dim": 4, "img_resolution": 4, "img_channels": 3}
    add("valid-nvidia-snapshot", "nvidia", w.dumps_nvidia_pickle(G=("Generator", kwargs, sd),
                                                                 G_ema=("Generator", kwargs, sd)), valid=True)
    try:
        import torch  # noqa: PLC0415

        state = {"a.weight": torch.randn(3, 4), "a.bias": torch.zeros(3), "n": torch.tensor(7)}
        for legacy in (False, True):
            buf = io.BytesIO()
            torch.save(state, buf, _use_new_zipfile_serialization=not legacy)
            add(f"valid-torch-{'legacy' if legacy else 'zip'}", "torch", buf.getvalue(), valid=True)
    except ImportError:
        pass

    # -- files that ask to run code (the marker shows whether anything ran)
    for loader in ("nvidia", "torch"):
        add(f"code-os-system-{loader}", loader, PROTO2 + glob("os", "system") + run() + b".")
        add(f"code-hostile-files-global-{loader}", loader, PROTO2 + glob("hostile_files", "make_marker") + run() + b".")
        add(f"code-inst-{loader}", loader, PROTO2 + b"(" + uni(marker) + b"ihostile_files\nmake_marker\n.")
        add(f"code-stack-global-{loader}", loader,
            PROTO2 + uni("hostile_files") + uni("make_marker") + b"\x93" + run() + b".")
        add(f"code-obj-{loader}", loader, PROTO2 + b"(" + glob("hostile_files", "make_marker") + uni(marker) + b"o.")
        for op, arg in ((b"\x82", bytes([EXT_CODE])), (b"\x83", struct.pack("<H", EXT_CODE)),
                        (b"\x84", struct.pack("<i", EXT_CODE))):
            add(f"code-ext{ {0x82: 1, 0x83: 2, 0x84: 4}[op[0]]}-{loader}", loader,
                PROTO2 + op + arg + run() + b".", ext=True)
    payload = w.storage_payload(np.zeros(4, np.float32)).replace(b"ctorch\nFloatStorage\n",
                                                                 b"chostile_files\nmake_marker\n")
    add("code-in-storage-payload", "nvidia", PROTO2 + reduce_call("torch.storage", "_load_from_bytes",
                                                                  b"C" + bytes([len(payload)]) + payload + b"\x85"
                                                                  if len(payload) < 256 else
                                                                  b"B" + struct.pack("<I", len(payload)) + payload
                                                                  + b"\x85") + b".")
    add("code-torch-zip-data-pkl", "torch", torch_zip(PROTO2 + glob("os", "system") + run() + b"."))
    add("code-npy-object-array", "weights",
        npz({"x.npy": _npy_header("|O", (1,)) + PROTO2 + glob("hostile_files", "make_marker") + run() + b"."}))

    # -- exponential work in error messages: L(k+1) = [L(k), L(k)] where a message shows it
    add("repr-shared-list-dtype-state", "nvidia",
        PROTO2 + reduce_call("numpy", "dtype", uni("f4") + b"\x89\x88\x87") + shared_list(60, 10) + b"b.")
    add("repr-shared-list-persistence-meta", "nvidia",
        PROTO2 + reduce_call("torch_utils.persistence", "_reconstruct_persistent_obj",
                             b"}(" + uni("type") + uni("class") + uni("version") + binint(6) + uni("class_name")
                             + shared_list(60, 10) + b"u\x85") + b".")
    add("repr-shared-list-snapshot-key", "nvidia", PROTO2 + b"}(" + uni("G") + shared_list(60, 10) + b"u.")
    add("repr-shared-list-tf-version", "nvidia",
        PROTO2 + glob("dnnlib.tflib.network", "Network") + b")\x81}(" + uni("version") + shared_list(60, 10)
        + b"ub" + get(10) + get(10) + b"\x87" + b".")
    add("repr-long-key", "nvidia", PROTO2 + b"}(" + uni("k" * 1_000_000) + binint(1) + b"u.")
    add("repr-huge-int-version", "nvidia",
        PROTO2 + reduce_call("torch_utils.persistence", "_reconstruct_persistent_obj",
                             b"}(" + uni("type") + uni("class") + uni("version") + b"\x8b" + struct.pack("<i", 100_000)
                             + b"\x01" * 100_000 + b"u\x85") + b".")
    add("repr-shared-list-persistent-id", "torch",
        torch_zip(PROTO2 + b"}(" + uni("w") + shared_list(60, 10) + b"Qu."))
    add("repr-shared-list-legacy-protocol", "torch", _legacy_prefix() + PROTO2 + shared_list(60, 10) + b".")

    # -- memo indices the digit check missed
    for name, index in (("plus", b"+100000000"), ("underscore", b"1_000_000_000"), ("space", b" 100000000"),
                        ("huge", b"99999999999999")):
        add(f"memo-put-{name}", "nvidia", PROTO2 + b"N" + b"p" + index + b"\n.")
        add(f"memo-put-{name}-torch", "torch", PROTO2 + b"N" + b"p" + index + b"\n.")
    add("memo-binput-huge", "nvidia", PROTO2 + b"N" + b"r" + struct.pack("<I", 2**31 - 1) + b".")
    add("memo-get-plus", "nvidia", PROTO2 + b"Np0\n0g+0\n.")

    # -- decompression before budget
    bomb = 100 << 20  # 100 MB of zeros: 100 KB deflated, more than 16x its file + 64 MB
    add("zip-deflate-bomb-data-pkl", "torch", deflate_member_zip("archive/data.pkl", bomb, PROTO2 + b"N."))
    add("zip-bzip2-data-pkl", "torch", torch_zip(PROTO2 + b"N." + b"\0" * (8 << 20), compression=zipfile.ZIP_BZIP2))
    add("zip-lzma-data-pkl", "torch", torch_zip(PROTO2 + b"N." + b"\0" * (8 << 20), compression=zipfile.ZIP_LZMA))
    add("zip-bzip2-byteorder", "torch", torch_zip(PROTO2 + b"}.", {"byteorder": b"little" + b"\0" * (8 << 20)},
                                                  member_compression=zipfile.ZIP_BZIP2))
    numel = bomb // 4
    storage_bomb = deflate_member_zip("archive/data/0", bomb)
    pkl = PROTO2 + b"}(" + uni("w") + tensor(storage_pid("0", numel), (numel,), (1,)) + b"u."
    add("zip-deflate-bomb-storage", "torch", _zip_add(storage_bomb, "archive/data.pkl", pkl))
    add("zip-bzip2-storage", "torch", torch_zip(PROTO2 + b"}(" + uni("w") + tensor(storage_pid("0", 1 << 21),
                                                                                   (1 << 21,), (1,)) + b"u.",
                                                {"data/0": b"\0" * (8 << 20)}, member_compression=zipfile.ZIP_BZIP2))
    zpayload = torch_zip(PROTO2 + storage_pid("0", 1 << 21) + b".", {"data/0": b"\0" * (8 << 20)},
                         member_compression=zipfile.ZIP_BZIP2)
    add("zip-bzip2-nvidia-storage-payload", "nvidia", PROTO2 + reduce_call(
        "torch.storage", "_load_from_bytes", b"B" + struct.pack("<I", len(zpayload)) + zpayload + b"\x85") + b".")
    add("npz-deflate-bomb", "weights", deflate_member_zip("x.npy", bomb, _npy_header("<f4", (bomb // 4 - 32,))))
    add("npz-bzip2", "weights", npz({"x.npy": _npy_header("<f4", (1 << 21,)) + b"\0" * (8 << 20)},
                                    compression=zipfile.ZIP_BZIP2))
    add("npz-header-lies", "weights", npz({"x.npy": _npy_header("<f4", (1 << 40,)) + b"\0" * 16}))

    # -- shared sub-structures visited many times
    for variables in ({}, {"v": np.zeros(2, np.float32)}):
        tf0 = w.tf_network("n", "f", {}, variables, version=4, components={}, module="dnnlib.tflib.network")
        for _ in range(8):  # 6 components per level, 8 levels: 6^8 visits without a memo
            tf0 = w.tf_network("n", "f", {}, {}, version=4, components={f"c{j}": tf0 for j in range(6)},
                               module="dnnlib.tflib.network")
        # Without variables the file is a valid (if odd) TF pickle and loads; with one, the shared
        # component's variable appears six times under one name.
        add(f"shared-tf-components{'-variables' if variables else ''}", "nvidia", w.dumps((tf0, tf0, tf0), protocol=2),
            valid=not variables)
    child = w.record("Leaf", parameters={f"p{i}": np.zeros(1, np.float32) for i in range(50)})
    for _ in range(24):
        child = w.record("Mid", modules={"a": child, "b": child})
    add("shared-submodules", "nvidia", w.dumps({"G": _rename(w, child, "Generator")}, protocol=2))
    flat = np.zeros(1 << 14, np.float32)  # 64 KB payload, referenced 5000 times
    shared_payload = w.storage_payload(flat)
    tensors = {f"p{i}": w.Tensor(flat.reshape(128, 128), True, payload=shared_payload) for i in range(5000)}
    add("shared-storage-payload", "nvidia",
        w.dumps({"G": _rename(w, w.record("X", parameters=tensors), "Generator")}, protocol=2))
    add("shared-legacy-resolver", "torch", legacy_torch(PROTO2 + b"}(" + uni("w") + shared_list(60, 10) + b"u.", []))
    add("deep-legacy-nesting", "torch", legacy_torch(PROTO2 + b"]" * 100_000 + b"a" * 99_999 + b".", []))
    add("deep-nesting-nvidia", "nvidia", PROTO2 + b"]" * 100_000 + b"a" * 99_999 + b".")
    add("deep-tuples-nvidia", "nvidia", PROTO2 + b")" + b"\x85" * 100_000 + b".")

    # -- dict keys / set items from memo-shared tuples
    add("hash-dict-key", "nvidia", PROTO2 + b"}" + shared_tuple(60, 10) + binint(1) + b"s.")
    add("hash-dict-opcode", "torch", torch_zip(PROTO2 + b"(" + shared_tuple(60, 10) + binint(1) + b"d."))
    add("hash-frozenset-call", "nvidia", PROTO2 + reduce_call("builtins", "frozenset",
                                                              b"(" + shared_tuple(60, 10) + b"l\x85") + b".")
    add("hash-set-additems", "nvidia", PROTO2 + b"\x8f(" + shared_tuple(60, 10) + b"\x90.")

    # -- raw exceptions from zipfile, numpy, struct and the unpickler (each once escaped torch_file)
    add("torch-not-a-zip-truncated", "torch", torch_zip(PROTO2 + b"}.")[:40])
    good = torch_zip(PROTO2 + b"}(" + uni("w") + tensor(storage_pid("0", 4), (4,), (1,)) + b"u.",
                     {"data/0": b"\0" * 16})
    add("torch-bad-crc", "torch", good.replace(b"\0" * 16, b"\1" * 16))
    add("torch-huge-numel", "torch", torch_zip(PROTO2 + b"}(" + uni("w") + b"(" + uni("storage")
                                               + glob("torch", "FloatStorage") + uni("0") + uni("cpu")
                                               + b"\x8a\x09" + b"\xff" * 8 + b"\x01" + b"tQu."))
    add("torch-shape-overflow", "torch", torch_zip(PROTO2 + b"}(" + uni("w") + tensor(storage_pid("0", 4),
                                                                                      (2**31 - 1,) * 8, (1,) * 8)
                                                   + b"u.", {"data/0": b"\0" * 16}))
    add("torch-storage-key-path", "torch", torch_zip(PROTO2 + b"}(" + uni("w") + storage_pid("../../etc/passwd", 4)
                                                     + b"u."))
    add("torch-long-overflow", "torch", legacy_torch(PROTO2 + b"}(" + uni("w") + b"(" + uni("storage")
                                                     + glob("torch", "FloatStorage") + uni("0") + uni("cpu")
                                                     + b"L" + b"9" * 40 + b"\ntQu.", ["0"]))
    add("torch-legacy-bad-keys", "torch", legacy_torch(PROTO2 + b"}.", [("x",)]))  # type: ignore[list-item]
    add("torch-legacy-unicode", "torch", legacy_torch(PROTO2 + b"X\x02\0\0\0\xff\xfe.", []))
    add("torch-legacy-float-text", "torch", legacy_torch(PROTO2 + b"Fnan-x\n.", []))
    add("torch-legacy-eof", "torch", legacy_torch(b"", [])[:30])
    add("torch-empty", "torch", b"")
    add("torch-zip-of-folder-names", "torch", npz({"archive/data.pkl/": b"", "archive/data.pkl": PROTO2 + b"N."}))
    add("torch-zip-bytes-keyed", "torch", torch_zip(PROTO2 + b"}(C\x01wK\x01u."))
    add("nvidia-stack-underflow", "nvidia", PROTO2 + b"R.")
    add("nvidia-pop-mark-empty", "nvidia", PROTO2 + b"1.")
    add("nvidia-get-unset", "nvidia", PROTO2 + get(5) + b".")
    add("nvidia-bad-float", "nvidia", PROTO2 + b"F1e99999\n.")
    add("nvidia-string-escape", "nvidia", PROTO2 + b"S'\\x'\n.")
    add("weights-not-a-zip", "weights", b"PK\x03\x04" + b"\0" * 50)
    add("weights-npy-bad-header", "weights", npz({"x.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}   \n"}))
    return cases


def _legacy_prefix() -> bytes:
    import pickle  # noqa: PLC0415

    return pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)


def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def _zip_add(zip_bytes: bytes, name: str, data: bytes) -> bytes:
    out = io.BytesIO(zip_bytes)
    with zipfile.ZipFile(out, "a") as z:
        z.writestr(zipfile.ZipInfo(name), data)
    return out.getvalue()


def _rename(w, rec, class_name: str):
    rec.meta["class_name"] = class_name
    return rec


# ----------------------------------------------------------------------------------------------
# The child process.


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass


def child(run_file: str) -> None:
    """Load every case of ``run_file`` (``{'cases': [...], 'marker': path, 'ext': bool, 'mem_mb': N}``)
    and print one JSON line per case."""
    import copyreg  # noqa: PLC0415
    import pickle  # noqa: PLC0415
    import resource  # noqa: PLC0415
    import time  # noqa: PLC0415

    spec = json.load(open(run_file))  # noqa: SIM115
    from gan_jax import restricted_pickle, torch_file  # noqa: PLC0415
    from gan_jax.metrics import weights  # noqa: PLC0415
    from gan_jax.nvidia_pickle import load_nvidia_pickle  # noqa: PLC0415

    if spec["ext"]:
        sys.modules.setdefault("hostile_files", sys.modules[__name__])
        copyreg.add_extension("hostile_files", "make_marker", EXT_CODE)
        # An ordinary unpickle of the extension code fills copyreg's cache, as a host process that
        # used the extension once would have: from then on EXT resolves without find_class.
        assert pickle.loads(PROTO2 + b"\x82" + bytes([EXT_CODE]) + b".") is make_marker
    loaders = {"nvidia": load_nvidia_pickle, "torch": torch_file.load_state_dict,
               "weights": weights.read_weights_file}
    # Address-space cap: what the imports already mapped plus the allowance.
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:")) * 1024
    cap = vm + spec["mem_mb"] * (1 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    for case in spec["cases"]:
        _reset_peak()
        before = _peak_rss_mb()
        t0 = time.perf_counter()
        try:
            loaders[case["loader"]](case["path"])
            outcome, cls, msg = "loaded", "", ""
        except restricted_pickle.RestrictedPickleError as e:
            outcome, cls, msg = "error", type(e).__name__, str(e)
        except BaseException as e:  # noqa: BLE001 (what the test must never see)
            outcome, cls, msg = "raw", type(e).__name__, repr(e)[:300]
        seconds = time.perf_counter() - t0
        print(json.dumps({"name": case["name"], "outcome": outcome, "cls": cls, "message": msg[:2000],
                          "seconds": seconds, "peak_mb": _peak_rss_mb() - before,
                          "marker": os.path.exists(spec["marker"])}), flush=True)


if __name__ == "__main__":
    child(sys.argv[1])
