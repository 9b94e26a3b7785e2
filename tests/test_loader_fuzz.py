"""Issue 22, Must-show 2: random byte flips and truncations of valid NVIDIA pickles (written by
tests/nvidia_pickle_writer.py) and torch files (``torch.save``, zip and legacy) give nothing but
the loaders' own error (or load), each quickly, never a hang.

The cases run in one child process (``python tests/test_loader_fuzz.py SPEC.json``) with an
address-space cap; it prints one JSON line per failing case and a summary, so a hang fails the
test (parent timeout, naming the last case started) instead of stalling it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

CASE_LIMIT_S = 2.0  # issue 22: every file within 2 seconds
MEMORY_MB = 500  # the child's address-space allowance above its imports


def _bases(folder) -> list[dict]:
    """Valid files to mutate: three NVIDIA pickles (protocol 4 / torch 2.x containers, protocol 2 /
    torch 1.x OrderedDicts, a TF (G, D, Gs) tuple) and two torch.save state dicts (zip, legacy)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import nvidia_pickle_writer as w  # noqa: PLC0415

    rng = np.random.RandomState(0)
    sd = {"synthesis.b4.const": rng.randn(4, 2, 2).astype(np.float32),
          "synthesis.b4.resample_filter": np.full((4, 4), 1 / 16, np.float32),
          "synthesis.b4.conv1.weight": rng.randn(4, 4, 3, 3).astype(np.float16),
          "mapping.w_avg": rng.randn(4).astype(np.float32),
          "mapping.fc0.weight": rng.randn(4, 4).astype(np.float32)}
    kwargs = {"z_dim": 4, "c_dim": 0, "w_dim": 4, "img_resolution": 4, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 1}}
    G = ("Generator", kwargs, sd)
    out = []

    def add(name: str, loader: str, data: bytes) -> None:
        path = folder / name
        path.write_bytes(data)
        out.append({"name": name, "path": str(path), "loader": loader})

    add("snapshot-p4.pkl", "nvidia", w.dumps_nvidia_pickle(G=G, G_ema=G, training_set_kwargs={"resolution": 4}))
    add("snapshot-p2-torch1.pkl", "nvidia", w.dumps_nvidia_pickle(G=G, protocol=2, numpy_core="numpy.core",
                                                                   torch_style="1.x"))
    tf = w.tf_network("G", "G_paper", {"resolution": 4}, {"w": rng.randn(3, 3).astype(np.float32), "lod": 0.0})
    add("progan-tf.pkl", "nvidia", w.dumps((tf, tf, tf), protocol=2))
    import torch  # noqa: PLC0415

    state = {"conv.weight": torch.randn(4, 3, 3, 3), "conv.bias": torch.zeros(4), "bn.num_batches_tracked":
             torch.tensor(3), "half": torch.randn(5).half(), "view": torch.randn(6, 6)[1:4, ::2]}
    for legacy in (False, True):
        buf = io.BytesIO()
        torch.save(state, buf, _use_new_zipfile_serialization=not legacy)
        add(f"state-{'legacy' if legacy else 'zip'}.pth", "torch", buf.getvalue())
    return out


def _mutate(data: bytes, rng: np.random.RandomState) -> tuple[bytes, str]:
    kind = rng.randint(5)
    b = bytearray(data)
    if kind in (0, 1):  # flip 1..8 bytes (0: anywhere, 1: in the first 2 KB, where the structure is)
        span = len(b) if kind == 0 else min(len(b), 2048)
        n = rng.randint(1, 9)
        for pos in rng.randint(0, span, size=n):
            b[pos] = rng.randint(256)
        return bytes(b), f"flip {n}"
    if kind == 2:  # truncate
        cut = rng.randint(0, len(b))
        return bytes(b[:cut]), f"truncate at {cut}"
    if kind == 3:  # flip bits then truncate
        for pos in rng.randint(0, len(b), size=3):
            b[pos] ^= 1 << rng.randint(8)
        cut = rng.randint(len(b) // 2, len(b))
        return bytes(b[:cut]), f"bitflip + truncate at {cut}"
    pos = rng.randint(0, len(b))  # insert or delete a few bytes
    if rng.randint(2):
        return bytes(b[:pos] + bytes(rng.randint(0, 256, size=rng.randint(1, 5)).astype(np.uint8)) + b[pos:]), \
            f"insert at {pos}"
    return bytes(b[:pos] + b[pos + rng.randint(1, 5):]), f"delete at {pos}"


def child(spec_file: str) -> None:
    """Run the cases of ``spec_file``; print a JSON line per case that fails, then a summary."""
    import resource  # noqa: PLC0415

    spec = json.load(open(spec_file))  # noqa: SIM115
    from gan_jax import torch_file  # noqa: PLC0415
    from gan_jax.nvidia_pickle import NvidiaPickleError, load_nvidia_pickle  # noqa: PLC0415

    loaders = {"nvidia": (load_nvidia_pickle, NvidiaPickleError),
               "torch": (torch_file.load_state_dict, torch_file.TorchFileError)}
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:")) * 1024
    cap = vm + spec["mem_mb"] * (1 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    bases = [(b, open(b["path"], "rb").read()) for b in spec["bases"]]  # noqa: SIM115
    counts = {"loaded": 0, "error": 0}
    slowest = (0.0, "")
    for i in range(spec["cases"]):
        rng = np.random.RandomState(spec["seed"] + i)
        base, data = bases[i % len(bases)]
        mutated, how = _mutate(data, rng)
        name = f"case {i} ({base['name']}, {how}, seed {spec['seed'] + i})"
        print(json.dumps({"start": name}), flush=True)
        load, error = loaders[base["loader"]]
        t0 = time.perf_counter()
        try:
            load(mutated)
            counts["loaded"] += 1
        except error as e:
            counts["error"] += 1
            msg = str(e)
            if "\n" in msg or len(msg) > 300:
                print(json.dumps({"bad": name, "why": f"message not one line under 300 characters: {msg[:400]!r}"}),
                      flush=True)
        except BaseException as e:  # noqa: BLE001 (what must never happen)
            print(json.dumps({"bad": name, "why": f"raw {type(e).__name__}: {repr(e)[:300]}"}), flush=True)
        dt = time.perf_counter() - t0
        slowest = max(slowest, (dt, name))
        if dt > spec["case_limit_s"]:
            print(json.dumps({"bad": name, "why": f"took {dt:.2f} s"}), flush=True)
    print(json.dumps({"summary": counts, "slowest": slowest}), flush=True)


def _run(tmp_path, cases: int, seed: int) -> dict:
    spec = {"bases": _bases(tmp_path), "cases": cases, "seed": seed, "mem_mb": MEMORY_MB,
            "case_limit_s": CASE_LIMIT_S}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    budget = 60 + cases * 0.1  # cases take ~5 ms; the rest is start-up on a loaded machine
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, str(spec_file)], capture_output=True, text=True,
                              timeout=budget)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        started = [json.loads(line)["start"] for line in out.splitlines() if '"start"' in line]
        pytest.fail(f"fuzz child hung (over {budget:.0f} s); last case started: {started[-1] if started else None}")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    bad = [f"{x['bad']}: {x['why']}" for x in lines if "bad" in x]
    summary = next((x for x in lines if "summary" in x), None)
    assert summary is not None, f"fuzz child died (rc {proc.returncode}): {proc.stderr[-3000:]}"
    assert not bad, f"{len(bad)} bad case(s):\n" + "\n".join(bad[:30])
    counts = summary["summary"]
    assert counts["loaded"] + counts["error"] == cases
    print(f"{cases} cases: {counts} in {time.perf_counter() - t0:.1f} s; slowest {summary['slowest']}")
    return counts


def test_fuzzed_files_give_only_the_loaders_errors(tmp_path):
    counts = _run(tmp_path, cases=10000, seed=0)
    assert counts["error"] > 5000  # the mutations do reach the checks


@pytest.mark.slow
def test_fuzzed_files_give_only_the_loaders_errors_long(tmp_path):
    _run(tmp_path, cases=100_000, seed=1_000_000)


if __name__ == "__main__":
    child(sys.argv[1])
