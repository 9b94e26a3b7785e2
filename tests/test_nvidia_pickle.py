"""gan_jax.nvidia_pickle: the safe reader of NVIDIA's StyleGAN2-ADA / StyleGAN3 network pickles.

Files are written by tests/nvidia_pickle_writer.py in NVIDIA's byte layout (PICKLE_FORMATS.md,
format A); where torch is importable, the writer's layout is checked against torch's own pickling.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct
import warnings

import numpy as np
import pytest

import nvidia_pickle_writer as w
from conftest import load_json, load_npz
from gan_jax import nvidia_pickle as nv
from gan_jax import restricted_pickle
from gan_jax.nvidia_pickle import NvidiaPickleError, UnsupportedFormatError, load_nvidia_pickle

FAMILY = "stylegan2_ada"


@pytest.fixture(scope="module")
def fixture_nets():
    nets = load_json(FAMILY, "nets.json")["nets"]
    G = ("Generator", nets["G_skip"]["init_kwargs"], load_npz(FAMILY, "G_skip_params.npz"))
    D = ("Discriminator", nets["D_skip"]["init_kwargs"], load_npz(FAMILY, "D_skip_params.npz"))
    return G, D


def small_G():
    rng = np.random.RandomState(0)
    sd = {"synthesis.b4.const": rng.randn(4, 2, 2).astype(np.float32),
          "synthesis.b4.resample_filter": np.full((4, 4), 1 / 16, np.float32),
          "synthesis.b4.conv1.weight": rng.randn(4, 4, 3, 3).astype(np.float32),
          "synthesis.b4.conv1.noise_strength": np.array(0.25, np.float32),
          "synthesis.b4.conv1.noise_const": rng.randn(2, 2).astype(np.float32),
          "mapping.w_avg": rng.randn(4).astype(np.float32),
          "mapping.fc0.weight": rng.randn(4, 4).astype(np.float32),
          "mapping.fc0.bias": rng.randn(4).astype(np.float32)}
    kwargs = {"z_dim": 4, "c_dim": 0, "w_dim": 4, "img_resolution": 4, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 1}, "synthesis_kwargs": {"channel_base": 16, "channel_max": 4}}
    return ("Generator", kwargs, sd)


def assert_same_state(got, want):
    assert list(got) == list(want)  # names and torch's state_dict order
    for k, v in want.items():
        v = np.asarray(v)
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        assert got[k].tobytes() == v.tobytes(), k


# ----------------------------------------------------------------------------------------------
# Round trips.


@pytest.mark.parametrize("numpy_core", ["numpy.core", "numpy._core"])
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_fixture_round_trip(fixture_nets, tmp_path, protocol, numpy_core):
    G, D = fixture_nets
    path = tmp_path / "network-snapshot-000000.pkl"
    tsk = {"class_name": "training.dataset.ImageFolderDataset", "path": "ffhq.zip", "use_labels": False,
           "max_size": 70000, "xflip": True, "resolution": 32}
    w.write_nvidia_pickle(path, G=G, D=D, G_ema=G, training_set_kwargs=tsk, protocol=protocol, numpy_core=numpy_core)
    data = path.read_bytes()
    assert data[:2] == bytes([0x80, protocol])
    globals_seen = {arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}
    if protocol < 4:  # the numpy names are those asked for (np.float64 weight_gain attributes)
        assert f"{numpy_core}.multiarray scalar" in globals_seen

    out = load_nvidia_pickle(path)
    assert list(out) == ["training_set_kwargs", "G", "D", "G_ema", "augment_pipe"]
    assert out["training_set_kwargs"] == tsk and out["augment_pipe"] is None
    for key, (cls, kwargs, state) in (("G", G), ("D", D), ("G_ema", G)):
        net = out[key]
        init_kwargs, state_dict = net
        assert init_kwargs == kwargs and list(init_kwargs) == list(kwargs)
        assert net.class_name == cls and net.kind == "stylegan2" and net.init_args == ()
        assert_same_state(state_dict, state)
    assert out["G"].init_kwargs["mapping_kwargs"].num_layers == 2  # EasyDict stand-in
    assert type(out["G"].init_kwargs) is dict
    fc0 = out["G"].record["state"]["_modules"]["mapping"]["state"]["_modules"]["fc0"]
    assert fc0["class_name"] == "FullyConnectedLayer" and fc0["state"]["weight_gain"] == 1 / np.sqrt(32)
    assert type(fc0["state"]["weight_gain"]) is np.float64
    assert out["G"][1] is not out["G_ema"][1]


def test_file_objects_bytes_and_torch_1x_containers(tmp_path):
    """Published snapshots were written by torch 1.7-1.9 under Python 3.7 (protocol 3): OrderedDict
    containers and fewer hook keys."""
    G = small_G()
    data = w.dumps_nvidia_pickle(G=G, protocol=3, numpy_core="numpy.core", torch_style="1.x")
    assert b"_forward_hooks_with_kwargs" not in data
    for source in (data, io.BytesIO(data)):
        out = load_nvidia_pickle(source)
        assert list(out) == ["training_set_kwargs", "G", "augment_pipe"]
        assert out["training_set_kwargs"] is None
        assert_same_state(out["G"].state_dict, G[2])
        assert out["G"].init_kwargs == G[1]


def test_records_of_other_classes_attributes_and_skipped_tensors():
    """An AugmentPipe record, StyleGAN3-style numpy array attributes, None parameters and
    non-persistent buffers (absent from torch's state_dict), unknown inner classes."""
    rng = np.random.RandomState(1)
    aug = ("AugmentPipe", {"xflip": 1, "rotate90": 1, "xint": 1},
           {"p": np.array(0.3, np.float32), "Hz_geom": rng.randn(12).astype(np.float32),
            "Hz_fbank": rng.randn(4, 12).astype(np.float32)})
    conv = w.record("SomeLayerNobodyKnows", parameters={"weight": rng.randn(2, 2).astype(np.float32), "bias": None},
                    buffers={"kept": np.arange(3, dtype=np.int64), "scratch": np.ones(2, np.float32)},
                    non_persistent=("scratch",),
                    attrs={"in_size": np.broadcast_to(np.asarray(36), [2]), "gain": np.float32(2),
                           "flags": [np.bool_(True), 1.5, "lrelu"],
                           "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3))})
    G = w.record("Generator", modules={"synthesis": w.record("SynthesisNetwork", modules={
        "input": w.record("SynthesisInput", buffers={"freqs": rng.randn(4, 2).astype(np.float32)}),
        "L0_36_512": conv, "gone": None})}, init_kwargs={"z_dim": 4, "magnitude_ema_beta": 0.999})
    for protocol, core in ((3, "numpy.core"), (4, "numpy._core"), (5, "numpy._core")):
        blob = w.dumps(w.snapshot(augment_pipe=aug, extra={"G": G}), protocol=protocol, numpy_core=core)
        assert f"{core}.multiarray".encode() in blob  # _reconstruct (and np scalars)
        assert (b"_frombuffer" in blob) == (protocol == 5)  # protocol 5: contiguous arrays via _frombuffer
        out = load_nvidia_pickle(blob)
        net = out["G"]
        assert net.kind == "stylegan3" and nv.network_kind(net.init_kwargs) == "stylegan3"
        assert list(net.state_dict) == ["synthesis.input.freqs", "synthesis.L0_36_512.weight",
                                        "synthesis.L0_36_512.kept"]
        assert net.state_dict["synthesis.L0_36_512.kept"].dtype == np.int64
        attrs = net.record["state"]["_modules"]["synthesis"]["state"]["_modules"]["L0_36_512"]["state"]
        np.testing.assert_array_equal(attrs["in_size"], [36, 36])
        assert attrs["in_size"].dtype == np.int64 and attrs["gain"] == np.float32(2)
        assert attrs["flags"] == [True, 1.5, "lrelu"]
        np.testing.assert_array_equal(attrs["fortran"], np.arange(6.0).reshape(2, 3))
        pipe = out["augment_pipe"]
        assert pipe.class_name == "AugmentPipe" and pipe.kind == "augment_pipe"
        assert_same_state(pipe.state_dict, aug[2])


def test_network_kind():
    G, D = small_G(), ("Discriminator", {"c_dim": 0, "img_resolution": 4, "img_channels": 3},
                       {"b4.out.weight": np.ones((1, 4), np.float32)})
    out = load_nvidia_pickle(w.dumps_nvidia_pickle(G=G, D=D))
    assert nv.network_kind(out["G"]) == nv.network_kind(out["G"].record) == "stylegan2"
    assert nv.network_kind(out["D"]) == "stylegan2"
    assert nv.network_kind({"z_dim": 512, "w_dim": 512, "img_resolution": 1024, "c_dim": 0,
                            "channel_base": 32768, "magnitude_ema_beta": 0.998}) == "stylegan3"
    assert nv.network_kind({"xflip": 1, "rotate90": 1}) == "augment_pipe"
    assert nv.network_kind({"foo": 1}) == "unknown"


# ----------------------------------------------------------------------------------------------
# Hostile files: nothing from them runs.


class Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvilExec(Evil):
    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


SYSTEM = f"{os.system.__module__}.system"  # posix.system on Linux


@pytest.mark.parametrize("protocol", [2, 4])
def test_code_at_the_top_level_is_refused(tmp_path, protocol):
    marker = tmp_path / "MARKER"
    cases = [(pickle.dumps({"G": Evil(marker)}, protocol=protocol), f"refused global {SYSTEM}"),
             (pickle.dumps([EvilExec(marker)], protocol=protocol), "refused global (builtins|__builtin__)\\.exec"),
             (b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R.", "refused global os.system"),
             (b"\x80\x02c__builtin__\neval\nX\x01\x00\x00\x001\x85R.", "refused global __builtin__.eval")]
    for blob, message in cases:
        path = tmp_path / "evil.pkl"
        path.write_bytes(blob)
        with pytest.raises(pickle.UnpicklingError, match=message) as info:
            load_nvidia_pickle(path)
        assert str(path) in str(info.value) and "nothing was executed" in str(info.value)
    assert not marker.exists()


def test_code_nested_in_a_state_or_a_storage_payload_is_refused(tmp_path):
    marker = tmp_path / "MARKER"
    G = small_G()
    nested = w.dumps_nvidia_pickle(G=(*G, {"mapping.fc0": {"hook": Evil(marker)}}))
    with pytest.raises(NvidiaPickleError, match=f"refused global {SYSTEM}"):
        load_nvidia_pickle(nested)

    arr = np.ones(3, np.float32)
    good = w.storage_payload(arr)
    head = b"".join(pickle.dumps(p, protocol=2) for p in (w.TORCH_LEGACY_MAGIC, 1001, w._SYS_INFO))
    tail = pickle.dumps(["0"], protocol=2) + struct.pack("<q", 3) + arr.tobytes()
    payloads = {"object pickle": head + pickle.dumps(Evil(marker), protocol=2) + tail,
                "first pickle": pickle.dumps(Evil(marker), protocol=2) + good}
    for payload in payloads.values():
        blob = w.dumps_nvidia_pickle(G=("Generator", G[1], {"mapping.w_avg": w.Tensor(arr, False, payload=payload)}))
        with pytest.raises(NvidiaPickleError, match=f"refused global in storage payload: {SYSTEM}"):
            load_nvidia_pickle(blob)

    # module_src is never executed, whatever it holds
    src = f"open({str(marker)!r}, 'w').close()\nimport os\nos.system('touch {marker}')\n"
    out = load_nvidia_pickle(w.dumps_nvidia_pickle(G=G, module_src=src))
    assert_same_state(out["G"].state_dict, G[2])
    assert "module_src" not in out["G"].record and src.encode() not in pickle.dumps(out["G"].record)
    assert not marker.exists()


def test_other_refusals():
    G = small_G()
    with pytest.raises(NvidiaPickleError, match="persistence record version 5; this loader reads version 6 only"):
        load_nvidia_pickle(w.dumps_nvidia_pickle(G=G, persistence_version=5))
    with pytest.raises(NvidiaPickleError, match="refused numpy dtype 'O8'"):
        load_nvidia_pickle(w.dumps_nvidia_pickle(G=(*G, {"": {"obj": np.array([1, "a"], dtype=object)}})))
    with pytest.raises(NvidiaPickleError, match="refused persistent id"):
        load_nvidia_pickle(b"\x80\x02X\x01\x00\x00\x00aQ.")
    bad = w.Call(w.Global("torch._utils", "_rebuild_tensor_v2"),
                 w.Call(w.Global("torch.storage", "_load_from_bytes"), w.storage_payload(np.ones(4, np.float32))),
                 2, (3,), (1,), False, w.Call(w.ODICT))
    with pytest.raises(NvidiaPickleError, match="outside its storage of 4 elements"):
        load_nvidia_pickle(w.dumps_nvidia_pickle(G=("Generator", G[1], {"mapping.w_avg": bad})))
    # BUILD on what find_class returned would set attributes on the loader's own objects
    defaults = restricted_pickle.rebuild_parameter.__defaults__
    for blob in (b"\x80\x02cnumpy\nndarray\n}X\x03\x00\x00\x00fooK\x01sb.",  # token.__dict__.update
                 b"\x80\x02ctorch._utils\n_rebuild_parameter\nN}X\x0c\x00\x00\x00__defaults__K\x01\x85s\x86b."):
        with pytest.raises(NvidiaPickleError, match="BUILD applied to <"):
            load_nvidia_pickle(blob)
    assert restricted_pickle.rebuild_parameter.__defaults__ == defaults and not hasattr(restricted_pickle.NDARRAY, "foo")
    padded = w.storage_payload(np.ones(2, np.float32)) + b"\0"
    with pytest.raises(NvidiaPickleError, match="extra bytes"):
        load_nvidia_pickle(w.dumps_nvidia_pickle(G=("Generator", G[1], {
            "mapping.w_avg": w.Tensor(np.ones(2, np.float32), payload=padded)})))


def test_files_that_would_exhaust_memory_are_refused(monkeypatch):
    """A few bytes must not make the loader allocate gigabytes: huge lengths or memo indices
    (CPython's C unpickler would allocate them before noticing), expanded (zero-stride) tensors,
    one payload referenced many times through the memo."""
    for blob, message in ((b"\x80\x02N\x8e" + struct.pack("<Q", 1 << 40) + b".", "BINBYTES8 of 1099511627776 bytes"),
                          (b"\x80\x04\x95" + struct.pack("<Q", 1 << 40) + b"N.", "FRAME of 1099511627776 bytes"),
                          (b"\x80\x02Nr" + struct.pack("<I", 660_000_000) + b".", "memo index 660000000")):
        with pytest.raises(NvidiaPickleError, match=f"truncated or corrupt pickle \\({message}"):
            load_nvidia_pickle(blob)
    payload = w.storage_payload(np.ones(4, np.float32))
    for bad, message in (((b"\x80\x02N\x8e" + struct.pack("<Q", 1 << 40) + b"."), "corrupt storage payload"),
                         (payload.replace(b"q\x01", b"r\x00\x00\x00\x70"), "memo index 1879048192")):
        blob = w.dumps_nvidia_pickle(G=("Generator", {}, {"mapping.w_avg": w.Tensor(np.ones(4, np.float32),
                                                                                       payload=bad)}))
        with pytest.raises(NvidiaPickleError, match=message):
            load_nvidia_pickle(blob)

    storage = w.Call(w.Global("torch.storage", "_load_from_bytes"), w.storage_payload(np.ones(1, np.float32)))
    expanded = w.Call(w.Global("torch._utils", "_rebuild_tensor_v2"), storage, 0, (1 << 20, 1 << 20), (0, 0),
                      False, w.Call(w.ODICT))
    with pytest.raises(NvidiaPickleError, match="larger than its storage of 1 elements"):
        load_nvidia_pickle(w.dumps_nvidia_pickle(G=("Generator", {}, {"mapping.w_avg": expanded})))

    monkeypatch.setattr(restricted_pickle, "BUDGET_SLACK", 0)
    big = w.Call(w.Global("torch.storage", "_load_from_bytes"), w.storage_payload(np.ones(1 << 14, np.float32)))
    tensors = {f"mapping.t{i}": w.Call(w.Global("torch._utils", "_rebuild_tensor_v2"), big, 0, (1 << 14,), (1,),
                                       False, w.Call(w.ODICT)) for i in range(8)}  # one memoized payload
    with pytest.raises(NvidiaPickleError, match="several times the size of the file"):
        load_nvidia_pickle(w.dumps_nvidia_pickle(G=("Generator", {}, tensors)))
    assert len(load_nvidia_pickle(w.dumps_nvidia_pickle(G=("Generator", {}, dict(list(tensors.items())[:2]))))
               ["G"].state_dict) == 2


# ----------------------------------------------------------------------------------------------
# Broken files and files of other kinds.


def test_truncated_and_random_files(tmp_path):
    data = w.dumps_nvidia_pickle(G=small_G())
    path = tmp_path / "cut.pkl"
    for cut in (len(data) // 2, len(data) - 1, 3, 100, 1500):  # inside the outer stream and inside payloads
        path.write_bytes(data[:cut])
        with pytest.raises(NvidiaPickleError, match="cut.pkl: truncated or corrupt") as info:
            load_nvidia_pickle(path)
        assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    rng = np.random.RandomState(0)
    path.write_bytes(rng.bytes(4096))
    with pytest.raises(ValueError, match="not a network pickle .* first bytes"):
        load_nvidia_pickle(path)
    for _ in range(20):  # a valid header followed by garbage
        path.write_bytes(b"\x80\x04" + rng.bytes(300))
        with pytest.raises(NvidiaPickleError, match="cut.pkl: "):
            load_nvidia_pickle(path)
    path.write_bytes(b"")
    with pytest.raises(NvidiaPickleError, match="empty file"):
        load_nvidia_pickle(path)
    with pytest.raises(FileNotFoundError, match="cannot open"):
        load_nvidia_pickle(tmp_path / "missing.pkl")


def test_flipped_bytes_give_clear_errors():
    """Random byte changes anywhere (outer stream, records, nested payloads): either a valid load
    or a NvidiaPickleError, never another exception."""
    data = w.dumps_nvidia_pickle(G=small_G(), protocol=4)
    rng = np.random.RandomState(4)
    for _ in range(150):
        d = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            d[rng.randint(len(d))] = rng.randint(256)
        try:
            load_nvidia_pickle(bytes(d))
        except NvidiaPickleError as e:
            assert str(e).startswith("<bytes>: ") and "\n" not in str(e)


def test_pickles_of_other_kinds():
    G = small_G()
    with pytest.raises(NvidiaPickleError, match=r"a pickled dict with keys \['a', 'b'\], not an NVIDIA network"):
        load_nvidia_pickle(pickle.dumps({"a": 1, "b": [1.0, "x"]}))
    with pytest.raises(NvidiaPickleError, match="a pickled list, not an NVIDIA network snapshot"):
        load_nvidia_pickle(pickle.dumps([1, 2]))
    with pytest.raises(NvidiaPickleError, match="'G' holds a 'Discriminator' network, not a StyleGAN2 Generator"):
        load_nvidia_pickle(w.dumps_nvidia_pickle(G=("Discriminator", {}, G[2])))
    with pytest.raises(NvidiaPickleError, match="'D' holds a 'MyCritic' network, not a StyleGAN2 Discriminator"):
        load_nvidia_pickle(w.dumps_nvidia_pickle(D=("MyCritic", {}, G[2])))
    with pytest.raises(NvidiaPickleError, match="a single Generator persistence record"):
        load_nvidia_pickle(w.dumps(w.snapshot(G=G)["G"]))
    with pytest.raises(NvidiaPickleError, match="'G' is a str, not an NVIDIA persistence record"):
        load_nvidia_pickle(pickle.dumps({"G": "generator"}))

    tf = {"version": 3, "name": "Gs", "static_kwargs": {"resolution": 8}, "components": {},
          "build_module_src": "import os", "build_func_name": "G_style",
          "variables": [("lod", np.float32(0)), ("dlatent_avg", np.zeros(4, np.float32))]}
    # TF (G, D, Gs) tuples load as TFNetwork records (tests/test_progan_pickle.py has the full format-C tests).
    for version, module, fmt, kind in ((3, "dnnlib.tflib.network", "B", "stylegan"), (4, "dnnlib.tflib.network", "D", "stylegan2-tf"),
                                       (5, "dnnlib.tflib.network", "D", "stylegan2-tf"), (2, "tfutil", "C", "progan")):
        state = {**tf, "version": version}
        if module == "tfutil":
            del state["components"]  # format C has none
        net = w.TFNetwork(state, module=module)
        for core in ("numpy.core", "numpy._core"):
            nets = load_nvidia_pickle(w.dumps((net, net, net), protocol=4, numpy_core=core))
            assert sorted(nets) == ["D", "G", "G_ema"] and (nets["G"].format, nets["G"].kind) == (fmt, kind)
            assert nets["G_ema"].variables["lod"].shape == ()
        with pytest.raises(UnsupportedFormatError, match="outside the \\(G, D, Gs\\) tuple"):
            load_nvidia_pickle(w.dumps(net, protocol=4))
    with pytest.raises(NvidiaPickleError, match="state version 6; this loader reads versions \\[2, 3, 4, 5\\]"):
        net = w.TFNetwork({**tf, "version": 6})
        load_nvidia_pickle(w.dumps((net, net, net)))
    with pytest.raises(NvidiaPickleError, match=r"refused global network\.Network \(a Theano-era ProGAN"):
        load_nvidia_pickle(w.dumps((w.TFNetwork({}, module="network"),)))
    with pytest.raises(NvidiaPickleError, match="a legacy torch.save file"):
        load_nvidia_pickle(w.storage_payload(np.ones(2, np.float32)))
    with pytest.raises(NvidiaPickleError, match="a zip archive"):
        load_nvidia_pickle(b"PK\x03\x04" + bytes(40))


# ----------------------------------------------------------------------------------------------
# Against torch's own pickling (skipped without torch).


def _payload_ops(payload: bytes):
    """The five pickles of a legacy torch.save payload as (opcode, arg) lists (storage keys and
    memo-free details dropped), plus the raw data after them."""
    f = io.BytesIO(payload)
    ops = []
    for _ in range(5):
        ops.append([(op.name, None if op.name in ("BINUNICODE", "SHORT_BINUNICODE") and str(arg).isdigit() else arg)
                    for op, arg, _ in pickletools.genops(f)])
    return ops, f.read()


def _outer_ops(blob: bytes):
    out = []
    for op, arg, _ in pickletools.genops(blob):
        if op.name == "FRAME":
            continue
        if op.name in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8"):
            out.append(("BYTES", _payload_ops(arg)))
        else:
            out.append((op.name, arg))
    return out


def test_writer_layout_is_torchs_own():
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(3)
    a = rng.randn(8, 5).astype(np.float32)
    b = rng.randn(70).astype(np.float32)
    c = rng.randn(3, 3).astype(np.float16)
    real = pickle.dumps({"w": torch.nn.Parameter(torch.from_numpy(a), requires_grad=False),
                         "noise_const": torch.from_numpy(b), "h": torch.from_numpy(c),
                         "s": torch.tensor(0.5)}, protocol=4)
    mine = w.dumps({"w": w.Tensor(a), "noise_const": w.Tensor(b, parameter=False), "h": w.Tensor(c, False),
                    "s": w.Tensor(np.array(0.5, np.float32), False)}, protocol=4)
    assert _outer_ops(mine) == _outer_ops(real)

    got = nv.restricted_load(real)
    for key, want in (("w", a), ("noise_const", b), ("h", c), ("s", np.array(0.5, np.float32))):
        assert got[key].dtype == want.dtype and got[key].shape == want.shape
        assert got[key].tobytes() == want.tobytes()


def test_torch_written_tensors_load(tmp_path):
    """Real torch tensors -- views with offsets and strides, 0-d, half, bfloat16, int64, bool --
    pickled by torch itself, alone and inside a format-A snapshot."""
    torch = pytest.importorskip("torch")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    tensors = {"param": torch.nn.Parameter(torch.randn(3, 4), requires_grad=False), "slice": base[1:3, 2:5],
               "transposed": base.t(), "scalar": torch.tensor(1.25), "half": torch.randn(5).half(),
               "bf16": torch.randn(6).to(torch.bfloat16), "long": torch.arange(5), "bool": torch.tensor([True, False]),
               "empty": torch.zeros(0, 3)}
    got = nv.restricted_load(pickle.dumps(tensors, protocol=4))
    for key, t in tensors.items():
        want = t.detach().float().numpy() if key == "bf16" else t.detach().numpy()
        assert got[key].dtype == want.dtype and got[key].shape == want.shape, key
        np.testing.assert_array_equal(got[key], want)

    G = small_G()
    sd = {k: (torch.nn.Parameter(torch.from_numpy(v.copy()), requires_grad=False)
              if k.rpartition(".")[2] not in w.BUFFER_NAMES else torch.from_numpy(v.copy()))
          for k, v in G[2].items()}
    for protocol in (2, 3, 4):
        path = tmp_path / f"torch-tensors-{protocol}.pkl"
        w.write_nvidia_pickle(path, G=("Generator", G[1], sd), protocol=protocol)
        assert_same_state(load_nvidia_pickle(path)["G"].state_dict, G[2])

    # a zip-format torch.save of a storage as _load_from_bytes payload (not written by NVIDIA's paths)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage is deprecated
        torch.save(torch.arange(5, dtype=torch.float32).storage(), buf)
    assert buf.getvalue()[:4] == b"PK\x03\x04"
    t = w.Call(w.Global("torch._utils", "_rebuild_tensor_v2"),
               w.Call(w.Global("torch.storage", "_load_from_bytes"), buf.getvalue()), 1, (2, 2), (1, 1), False,
               w.Call(w.ODICT))
    np.testing.assert_array_equal(nv.restricted_load(w.dumps({"t": t}))["t"], [[1, 2], [2, 3]])


def test_torch_reads_the_writers_files(fixture_nets):
    """torch's own unpickling of the writer's tensors (its _load_from_bytes and _rebuild_*) gives
    the same values: the nested storage format is the one torch reads."""
    torch = pytest.importorskip("torch")
    G, _ = fixture_nets
    blob = w.dumps_nvidia_pickle(G=G, protocol=4)

    class TrustedUnpickler(pickle.Unpickler):  # our own file: torch's globals, records as plain meta dicts
        def find_class(self, module, name):
            if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
                return lambda meta: meta
            if (module, name) == ("dnnlib.util", "EasyDict"):
                return dict
            assert module.split(".")[0] in ("torch", "collections", "numpy", "builtins"), (module, name)
            return super().find_class(module, name)

    meta = TrustedUnpickler(io.BytesIO(blob)).load()["G"]
    tensors = {}

    def walk(m, prefix):
        for kind in ("_parameters", "_buffers"):
            for k, v in m["state"][kind].items():
                assert isinstance(v, torch.nn.Parameter if kind == "_parameters" else torch.Tensor)
                tensors[prefix + k] = v.numpy()
        for k, child in m["state"]["_modules"].items():
            walk(child, f"{prefix}{k}.")

    walk(meta, "")
    assert_same_state(tensors, G[2])
