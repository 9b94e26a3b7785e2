"""Datasets on ``gs://`` (any ``etils.epath`` file system), read through epath: tested against a fake
bucket (``etils.epath.testing.mock_epath`` mapping ``gs://fake-bucket/`` onto a local folder), since
this machine has no network."""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from unittest import mock

import numpy as np
import PIL.Image
import pytest
from etils.epath import backend, gpath, testing

import gan_jax.data as gd

BUCKET = "gs://fake-bucket"


class FakeBucket:
    """``gs://fake-bucket/...`` served from ``root``; ``opened`` lists the gs:// paths opened."""

    def __init__(self, root):
        self.root, self.opened = str(root), []

    def local(self, path) -> str:
        path = str(path)
        assert path.startswith(BUCKET), f"the fake serves {BUCKET} only, got {path}"
        return self.root + path[len(BUCKET):]

    def remote(self, path) -> str:
        return BUCKET + str(path)[len(self.root):]

    def open(self, _original, path, mode, *args, **kwargs):
        self.opened.append(str(path))
        return backend.os_backend.open(self.local(path), mode)

    def exists(self, _original, path):
        return backend.os_backend.exists(self.local(path))

    def isdir(self, _original, path):
        return backend.os_backend.isdir(self.local(path))

    def stat(self, _original, path):
        return backend.os_backend.stat(self.local(path))

    def walk(self, _original, path, **kwargs):
        for folder, dirs, files in backend.os_backend.walk(self.local(path), **kwargs):
            yield self.remote(folder), dirs, files

    @contextlib.contextmanager
    def mock(self):
        # epath picks TensorFlow's gfile for gs:// whenever TensorFlow is installed (it is, for tfds), past
        # mock_epath's backends: say it is not, so that the mocked backend serves the bucket.
        with mock.patch.object(gpath, "_is_tf_installed", lambda: False), testing.mock_epath(
                open=self.open, exists=self.exists, isdir=self.isdir, stat=self.stat, walk=self.walk):
            yield


def _write_dataset(folder, count: int = 6, size: int = 8) -> None:
    """``count`` RGB PNGs with class labels in NVIDIA's layout, in ``folder``/ds/ and ``folder``/ds.zip."""
    rng = np.random.default_rng(0)
    files = {}
    for i in range(count):
        buf = io.BytesIO()
        PIL.Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format="png")
        files[f"00000/img{i:08d}.png"] = buf.getvalue()
    files["dataset.json"] = json.dumps({"labels": [[f"00000/img{i:08d}.png", i % 2] for i in range(count)]}).encode()
    (folder / "ds" / "00000").mkdir(parents=True)
    with zipfile.ZipFile(folder / "ds.zip", "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
            (folder / "ds" / name).write_bytes(data)


@pytest.mark.parametrize("name", ["ds.zip", "ds"])
def test_a_gs_zip_or_folder_is_read_through_epath(tmp_path, name):
    _write_dataset(tmp_path)
    local = gd.open_source(str(tmp_path / name), resolution=8)
    bucket = FakeBucket(tmp_path)
    with bucket.mock():
        remote = gd.open_source(f"{BUCKET}/{name}", resolution=8)
        assert remote.remote and remote.path == f"{BUCKET}/{name}" and remote.name.startswith(f"{remote.kind}:{BUCKET}")
        assert remote.filenames == local.filenames and remote.label_dim == 2
        with gd.make_batches(remote, 4, seed=1, xflip=True, workers=0) as it:
            got = [next(it) for _ in range(3)]
        remote.close()  # the zip and the epath file under it
    assert bucket.opened and all(p.startswith(f"{BUCKET}/{name}") for p in bucket.opened), bucket.opened
    with gd.make_batches(local, 4, seed=1, xflip=True, workers=0) as it:
        for step, batch in enumerate(got):
            expected = next(it)
            np.testing.assert_array_equal(batch["image"], expected["image"], err_msg=f"step {step}")
            np.testing.assert_array_equal(batch["label"], expected["label"], err_msg=f"step {step}")


def test_a_missing_gs_path_and_a_web_url_are_explained(tmp_path):
    with FakeBucket(tmp_path).mock(), pytest.raises(
            FileNotFoundError, match=r"dataset not found: 'gs://fake-bucket/nope.zip' does not exist"):
        gd.open_source(f"{BUCKET}/nope.zip")
    with pytest.raises(ValueError, match=r"is a web URL.*gs://bucket/ffhq.zip"):
        gd.open_source("https://example.com/ffhq.zip")
