"""gan_jax.data: sources (embedded, folders/zips, tfds), the prepare tool and the batch pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import PIL.Image
import pytest

import gan_jax.data as gd
from gan_jax.data import prepare

# ---------------------------------------------------------------------------------------- helpers


def _save(path, array: np.ndarray) -> None:
    """Save [H, W, C] uint8 in the format the extension names (PNG, JPEG, BMP)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PIL.Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(path)


def _random_images(n: int, size: int, channels: int = 3, seed: int = 0, height: int | None = None) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (n, height or size, size, channels)).astype(np.uint8)


def _nvidia_folder(root, images: np.ndarray, labels=None) -> list[str]:
    """Write images in dataset_tool layout (+ dataset.json when labels is given); returns the names."""
    names = [prepare.archive_name(i) for i in range(len(images))]
    for name, img in zip(names, images):
        _save(os.path.join(root, name), img)
    if labels is not None:
        with open(os.path.join(root, "dataset.json"), "w") as f:
            json.dump({"labels": None if labels == "null" else [[n, l] for n, l in zip(names, labels)]}, f)
    return names


def _zip_folder(root, zip_path) -> str:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                full = os.path.join(dirpath, f)
                zf.write(full, os.path.relpath(full, root).replace(os.sep, "/"))
    return str(zip_path)


# --------------------------------------------------------------------------------------- embedded


def test_import_pulls_in_neither_jax_nor_tensorflow():
    code = ("import sys, gan_jax.data, gan_jax.data.prepare; "
            "print(sorted(m for m in ('jax', 'tensorflow', 'tensorflow_datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_names_and_the_base_module():
    """``gan_jax.data`` exports the same names as before the split into ``base`` (interface and
    helpers, at the bottom) and ``source`` (``open_source``, above the concrete sources)."""
    from gan_jax.data import base, source

    for name in ("BatchIterator", "EmbeddedShapes", "ImageFolderSource", "ImageSource", "TfdsSource",
                 "batch_indices", "load_batch", "make_batches", "open_source"):
        assert hasattr(gd, name), name
    assert gd.ImageSource is base.ImageSource is source.ImageSource
    assert source.check_indices is base.check_indices and source.one_hot is base.one_hot
    assert isinstance(gd.open_source("embedded", resolution=8, num_images=4), gd.ImageSource)
    np.testing.assert_array_equal(base.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="index 4 is out of range"):
        base.check_indices([4], 4, "x")


def test_embedded_is_deterministic_per_index_and_seed():
    a = gd.EmbeddedShapes(32, num_images=64, seed=3)
    b = gd.EmbeddedShapes(32, num_images=64, seed=3)
    idx = np.array([5, 0, 63, 5])
    np.testing.assert_array_equal(a.images(idx), b.images(idx[::-1])[::-1])
    np.testing.assert_array_equal(a.images(np.arange(10))[7], b.images([7])[0])  # order/subset independent
    assert not np.array_equal(a.images([0]), gd.EmbeddedShapes(32, num_images=64, seed=4).images([0]))
    assert not np.array_equal(a.images([0]), a.images([1]))
    assert a.name == "embedded:shapes-32-64-3"
    assert gd.open_source("embedded").name == "embedded:shapes-32-4096-0"


@pytest.mark.parametrize("resolution", [4, 5, 32, 33, 256])
def test_embedded_any_resolution_dtype_range(resolution):
    src = gd.open_source("embedded:shapes", resolution=resolution, num_images=8)
    img = src.images(np.arange(8))
    assert img.shape == (8, resolution, resolution, 3) and img.dtype == np.uint8
    assert src.resolution == resolution and src.channels == 3 and src.num_images == 8 and src.label_dim == 0
    assert img.std() > 10 and img.max() > 150  # bright shapes over a muted background, not a constant
    assert src.labels(np.arange(8)).shape == (8, 0)


def test_embedded_gray_and_classes():
    src = gd.open_source("embedded", resolution=16, num_images=20, channels=1, num_classes=5)
    assert src.images(np.arange(3)).shape == (3, 16, 16, 1)
    labels = src.labels(np.arange(20))
    assert labels.dtype == np.float32 and labels.shape == (20, 5)
    np.testing.assert_array_equal(labels.sum(1), 1)
    np.testing.assert_array_equal(labels.argmax(1), np.arange(20) % 5)
    assert src.name == "embedded:shapes-16-20-0-c1-k5"


def test_embedded_default_images_are_unchanged():
    # The images the embedded dataset has always drawn (docs/ada.md and the demo's figures rely on
    # them): a digest of 64 images per form, recorded before the easier-data options were added.
    import hashlib  # noqa: PLC0415

    for kwargs, digest in (({}, "cb5329a43df7c47a"), ({"num_classes": 3}, "969d6016b8c3557e"),
                           ({"channels": 1}, "12cad10604faf9f5")):
        src = gd.EmbeddedShapes(32, num_images=64, **kwargs)
        assert hashlib.sha256(src.images(np.arange(64)).tobytes()).hexdigest()[:16] == digest, kwargs
        explicit = gd.EmbeddedShapes(32, num_images=64, max_shapes=2, radius=(0.12, 0.28), palette=0, **kwargs)
        assert explicit.name == src.name
        np.testing.assert_array_equal(explicit.images(np.arange(8)), src.images(np.arange(8)))


def test_embedded_easier_data_options(monkeypatch):
    import gan_jax.data.embedded as embedded  # noqa: PLC0415

    painted = []
    paint = embedded._paint
    monkeypatch.setattr(embedded, "_paint", lambda img, kind, cx, cy, r, colour: (painted.append((kind, r, colour)),
                                                                                 paint(img, kind, cx, cy, r, colour)))

    def shapes_per_image(src, n=64):
        counts = []
        for i in range(n):
            painted.clear()
            src._image(i)  # not cached yet: drawn now
            counts.append(list(painted))
        return counts

    # The default: one or two shapes, radius 0.12-0.28, any bright colour.
    per_image = shapes_per_image(gd.EmbeddedShapes(32, num_images=64))
    assert {len(p) for p in per_image} == {1, 2}
    # max_shapes=1, larger shapes, a palette of 6 saturated hues: one shape of each image, its radius in
    # the range, its colour one of the 6 (pure RGB primaries and secondaries), all three kinds drawn.
    src = gd.open_source("embedded", resolution=32, num_images=64, max_shapes=1, radius=(0.2, 0.32), palette=6)
    assert src.name == "embedded:shapes-32-64-0-s1-r0.2-0.32-p6"
    per_image = shapes_per_image(src)
    assert all(len(p) == 1 for p in per_image)
    kinds = {p[0][0] for p in per_image}
    assert kinds == {"disc", "square", "triangle"}
    assert all(0.2 <= p[0][1] <= 0.32 for p in per_image)
    colours = {tuple(np.round(p[0][2] * 255).astype(int)) for p in per_image}
    assert colours <= {(255, 0, 0), (255, 255, 0), (0, 255, 0), (0, 255, 255), (0, 0, 255), (255, 0, 255)}
    assert len(colours) == 6
    img = src.images(np.arange(64))
    # The shape's colour is in the image: its inner pixels are exactly the palette colour.
    for i in range(8):
        colour = np.round(per_image[i][0][2] * 255).astype(np.uint8)
        assert (img[i] == colour).all(-1).sum() >= 20  # a radius of >= 6.4 pixels covers many whole pixels
    # With classes, the class still fixes the kind (and colour family).
    per_image = shapes_per_image(gd.EmbeddedShapes(32, num_images=30, num_classes=3, max_shapes=1), 30)
    assert [p[0][0] for p in per_image] == [embedded.KINDS[i % 3] for i in range(30)]
    with pytest.raises(ValueError, match="max_shapes must be 1 or 2"):
        gd.EmbeddedShapes(8, max_shapes=3)
    with pytest.raises(ValueError, match="radius must be"):
        gd.EmbeddedShapes(8, radius=(0.3, 0.2))
    with pytest.raises(ValueError, match="palette must be"):
        gd.EmbeddedShapes(8, palette=-1)


def test_embedded_bad_arguments():
    with pytest.raises(ValueError, match="resolution must be an integer >= 4"):
        gd.EmbeddedShapes(2)
    with pytest.raises(ValueError, match="channels must be 1 .* or 3"):
        gd.EmbeddedShapes(8, channels=4)
    with pytest.raises(ValueError, match="index 10 is out of range; the source has 10 images"):
        gd.EmbeddedShapes(8, num_images=10).images([10])
    with pytest.raises(ValueError, match="unknown option.*'colour'.*num_classes"):
        gd.open_source("embedded", colour=1)


# ----------------------------------------------------------------------------------- folders, zips


def test_folder_and_zip_read_byte_exact_pixels_and_onehot_labels(tmp_path):
    images = _random_images(5, 8, seed=1)
    names = _nvidia_folder(tmp_path / "ds", images, labels=[2, 0, 1, 2, 0])
    zpath = _zip_folder(tmp_path / "ds", tmp_path / "ds.zip")
    for spec in (str(tmp_path / "ds"), zpath):
        src = gd.open_source(spec, resolution=8)
        assert (src.num_images, src.resolution, src.channels, src.label_dim) == (5, 8, 3, 3)
        assert src.filenames == names
        np.testing.assert_array_equal(src.images(np.arange(5)), images)
        np.testing.assert_array_equal(src.images([3, 3, 0]), images[[3, 3, 0]])
        labels = src.labels(np.arange(5))
        assert labels.dtype == np.float32
        np.testing.assert_array_equal(labels, np.eye(3, dtype=np.float32)[[2, 0, 1, 2, 0]])
    assert gd.open_source(zpath).name.startswith("zip:")


def test_folder_recursive_sorted_gray_float_and_null_labels(tmp_path):
    gray = _random_images(3, 4, channels=1, seed=2)
    for name, img in zip(["b/z.png", "a.png", "b/a.bmp"], gray):
        _save(tmp_path / "g" / name, img)
    (tmp_path / "g" / "notes.txt").write_text("not an image")
    src = gd.ImageFolderSource(str(tmp_path / "g"))
    assert src.filenames == ["a.png", "b/a.bmp", "b/z.png"] and src.channels == 1 and src.label_dim == 0
    np.testing.assert_array_equal(src.images(np.arange(3)), gray[[1, 2, 0]])

    vectors = [[0.5, -1.0], [2.0, 0.0], [1.0, 1.0]]
    _nvidia_folder(tmp_path / "f", _random_images(3, 4), labels=vectors)
    np.testing.assert_array_equal(gd.open_source(str(tmp_path / "f")).labels(np.arange(3)), np.float32(vectors))
    _nvidia_folder(tmp_path / "n", _random_images(3, 4), labels="null")
    assert gd.open_source(str(tmp_path / "n")).label_dim == 0
    assert gd.open_source(str(tmp_path / "f"), use_labels=False).label_dim == 0


def test_folder_max_images_is_nvidias_random_subset(tmp_path):
    images = _random_images(10, 4)
    _nvidia_folder(tmp_path / "ds", images, labels=list(range(10)))
    src = gd.open_source(str(tmp_path / "ds"), max_images=4, random_seed=7)
    keep = np.arange(10)
    np.random.RandomState(7).shuffle(keep)
    keep = np.sort(keep[:4])  # NVIDIA Dataset(max_size=4, random_seed=7)
    np.testing.assert_array_equal(src.images(np.arange(4)), images[keep])
    assert src.label_dim == 10 and list(src.labels(np.arange(4)).argmax(1)) == list(keep)


def test_missing_path_says_how_to_make_a_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.zip.*does not exist.*python -m gan_jax\.data\.prepare"):
        gd.open_source(str(tmp_path / "nope.zip"))


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"no images found in folder .*empty.*png"):
        gd.open_source(str(tmp_path / "empty"))


@pytest.mark.parametrize("as_zip", [False, True])
def test_corrupt_image_is_named(tmp_path, as_zip):
    _nvidia_folder(tmp_path / "ds", _random_images(2, 8))
    (tmp_path / "ds" / "00000" / "img00000002.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    spec = _zip_folder(tmp_path / "ds", tmp_path / "ds.zip") if as_zip else str(tmp_path / "ds")
    src = gd.open_source(spec)
    assert src.num_images == 3
    with pytest.raises(ValueError, match=r"cannot decode image '00000/img00000002\.png' in (zip|folder) .*ds"):
        src.images(np.array([0, 2]))


def test_wrong_size_and_not_square_are_named_with_the_prepare_command(tmp_path):
    _nvidia_folder(tmp_path / "ds", _random_images(2, 8))
    _save(tmp_path / "ds" / "00000" / "img00000002.png", _random_images(1, 16)[0])
    src = gd.open_source(str(tmp_path / "ds"))
    with pytest.raises(ValueError, match=r"'00000/img00000002\.png' .* is 16x16, expected 8x8.*"
                                         r"gan_jax\.data\.prepare .*--resolution=8"):
        src.images(np.arange(3))
    with pytest.raises(ValueError, match=r"'00000/img00000000\.png' .* is 8x8, expected 16x16 .*--resolution=16"):
        gd.open_source(str(tmp_path / "ds"), resolution=16)

    _save(tmp_path / "wide" / "a.png", _random_images(1, 12, height=8)[0])
    with pytest.raises(ValueError, match=r"'a\.png' .* is 12x8 .*not square.*gan_jax\.data\.prepare.*--resolution=8"):
        gd.open_source(str(tmp_path / "wide"))

    _save(tmp_path / "mixed" / "a.png", _random_images(1, 4)[0])
    _save(tmp_path / "mixed" / "b.png", _random_images(1, 4, channels=1)[0])
    with pytest.raises(ValueError, match=r"'b\.png' .* has 1 channel\(s\), expected 3"):
        gd.open_source(str(tmp_path / "mixed")).images(np.arange(2))


def test_bad_dataset_json_is_explained(tmp_path):
    names = _nvidia_folder(tmp_path / "ds", _random_images(2, 4))
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps({"labels": [[names[0], 1]]}))
    with pytest.raises(ValueError, match=r"dataset\.json .* no label for image '00000/img00000001\.png'"):
        gd.open_source(str(tmp_path / "ds"))


# ------------------------------------------------------------------------------------------ prepare


def _crop_resize(img: np.ndarray, r: int, resample) -> np.ndarray:
    """Direct PIL computation: dataset_tool.py center-crop, then resize with ``resample``."""
    h, w = img.shape[:2]
    c = min(h, w)
    crop = img[(h - c) // 2:(h + c) // 2, (w - c) // 2:(w + c) // 2]
    return np.asarray(PIL.Image.fromarray(crop).resize((r, r), resample))


def test_prepare_end_to_end_subdir_labels_box_downsample(tmp_path, capsys):
    src_dir = tmp_path / "raw"
    wide = _random_images(1, 48, height=40, seed=5)[0]   # 48 wide, 40 high: crop columns 4..44
    tall = _random_images(1, 37, height=50, seed=6)[0]   # odd margins
    small = _random_images(1, 10, height=12, seed=7)[0]  # upsampled with LANCZOS
    _save(src_dir / "dog" / "1.png", wide)
    _save(src_dir / "cat" / "x" / "2.jpg", tall)          # recursive; class = top-level folder
    _save(src_dir / "dog" / "0.png", small)
    dest = tmp_path / "out" / "ds.zip"
    assert prepare.main([f"--source={src_dir}", f"--dest={dest}", "--resolution=16", "--labels=subdirs"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 3 images 16x16x3" in printed and "2 classes from sub-folders: 0=cat, 1=dog" in printed

    with zipfile.ZipFile(dest) as zf:
        assert sorted(zf.namelist()) == ["00000/img00000000.png", "00000/img00000001.png", "00000/img00000002.png",
                                         "dataset.json"]
        assert json.loads(zf.read("dataset.json")) == {"labels": [["00000/img00000000.png", 0],
                                                                  ["00000/img00000001.png", 1],
                                                                  ["00000/img00000002.png", 1]]}
    jpg = np.asarray(PIL.Image.open(src_dir / "cat" / "x" / "2.jpg").convert("RGB"))
    expected = np.stack([_crop_resize(jpg, 16, PIL.Image.BOX),              # sorted: cat/x/2.jpg, dog/0, dog/1
                         _crop_resize(small, 16, PIL.Image.LANCZOS),
                         _crop_resize(wide, 16, PIL.Image.BOX)])
    src = gd.open_source(str(dest), resolution=16)
    np.testing.assert_array_equal(src.images(np.arange(3)), expected)
    np.testing.assert_array_equal(src.labels(np.arange(3)), np.eye(2, dtype=np.float32)[[0, 1, 1]])


def test_prepare_json_labels_gray_max_images_and_zip_source(tmp_path, capsys):
    raw = tmp_path / "raw"
    for i in range(4):
        _save(raw / f"im{i}.png", _random_images(1, 8, seed=i)[0])
    zsrc = _zip_folder(raw, tmp_path / "raw.zip")
    (tmp_path / "labels.json").write_text(json.dumps({f"im{i}.png": 3 - i for i in range(4)}))
    dest = tmp_path / "ds.zip"
    result = prepare.prepare_dataset(zsrc, str(dest), 4, labels=str(tmp_path / "labels.json"), max_images=3,
                                     channels=1)
    assert (result.num_images, result.channels) == (3, 1)
    src = gd.open_source(str(dest))
    assert (src.num_images, src.resolution, src.channels, src.label_dim) == (3, 4, 1, 4)
    np.testing.assert_array_equal(src.labels(np.arange(3)).argmax(1), [3, 2, 1])
    gray = np.asarray(PIL.Image.open(raw / "im1.png").convert("L").resize((4, 4), PIL.Image.BOX))
    np.testing.assert_array_equal(src.images([1])[0, ..., 0], gray)
    assert "labels: 3 distinct class ids" in capsys.readouterr().out


def test_prepare_corrupt_source_named_or_skipped(tmp_path):
    raw = tmp_path / "raw"
    _save(raw / "good.png", _random_images(1, 8)[0])
    (raw / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ValueError, match=r"cannot decode source image 'broken\.jpg'.*--skip_corrupt"):
        prepare.prepare_dataset(str(raw), str(tmp_path / "a.zip"), 8, log=lambda s: None)
    assert not (tmp_path / "a.zip").exists() and not (tmp_path / "a.zip.partial").exists()
    with pytest.warns(UserWarning, match=r"broken\.jpg.*skipped"):
        result = prepare.prepare_dataset(str(raw), str(tmp_path / "b.zip"), 8, log=lambda s: None, skip_corrupt=True)
    assert result.skipped == ["broken.jpg"] and gd.open_source(str(tmp_path / "b.zip")).num_images == 1


def test_prepare_cli_errors_and_archive_names(tmp_path, capsys):
    assert prepare.main([f"--source={tmp_path / 'missing'}", f"--dest={tmp_path / 'o.zip'}", "--resolution=8"]) == 1
    assert "missing" in capsys.readouterr().err
    (tmp_path / "raw").mkdir()
    assert prepare.main([f"--source={tmp_path / 'raw'}", f"--dest={tmp_path / 'o.zip'}", "--resolution=12"]) == 1
    assert "power of two" in capsys.readouterr().err
    assert [prepare.archive_name(i) for i in (0, 999, 1000, 12345)] == [
        "00000/img00000000.png", "00000/img00000999.png", "00001/img00001000.png", "00012/img00012345.png"]


# ----------------------------------------------------------------------------------------- pipeline


def _global_order(num_images, batch, steps, seed, xflip):
    idx, flip = zip(*(gd.batch_indices(num_images, batch, s, seed, xflip) for s in range(steps)))
    return np.concatenate(idx), np.concatenate(flip)


@pytest.mark.parametrize("batch", [3, 4, 10, 25])  # straddling epochs, exact, one epoch, several epochs per batch
def test_batch_indices_visit_every_index_once_per_epoch(batch):
    n = 10
    idx, flip = _global_order(n, batch, steps=6, seed=1, xflip=False)
    assert not flip.any()
    for e in range(len(idx) // n):
        assert sorted(idx[e * n:(e + 1) * n]) == list(range(n))
    assert not np.array_equal(idx[:n], idx[n:2 * n])  # a fresh permutation per epoch


def test_batch_indices_xflip_doubles_the_index_space():
    n = 7
    idx, flip = _global_order(n, 5, steps=9, seed=2, xflip=True)
    for e in range(len(idx) // (2 * n)):
        pairs = sorted(zip(idx[e * 2 * n:(e + 1) * 2 * n], flip[e * 2 * n:(e + 1) * 2 * n]))
        assert pairs == sorted((i, f) for i in range(n) for f in (False, True))


def test_batch_indices_are_pure_and_processes_split_the_global_batch():
    a = gd.batch_indices(100, 8, 37, seed=5, xflip=True)
    b = gd.batch_indices(100, 8, 37, seed=5, xflip=True)
    np.testing.assert_array_equal(a[0], b[0]); np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], gd.batch_indices(100, 8, 37, seed=6, xflip=True)[0])
    for step in (0, 12, 13):  # 8 * 12 = 96: step 12 straddles the first epoch boundary (without xflip)
        whole = gd.batch_indices(100, 8, step, 5, False)
        parts = [gd.batch_indices(100, 8, step, 5, False, process_index=p, process_count=2) for p in range(2)]
        assert all(len(p[0]) == 4 for p in parts)
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), whole[0])
        assert not set(parts[0][0]) & set(parts[1][0])
    with pytest.raises(ValueError, match="global_batch 6 is not divisible by the 4 processes.*e.g. 8"):
        gd.batch_indices(100, 6, 0, 0, False, process_index=0, process_count=4)
    with pytest.raises(ValueError, match=r"process_index must be in \[0, 2\)"):
        gd.batch_indices(100, 6, 0, 0, False, process_index=2, process_count=2)


def test_make_batches_resume_gives_the_same_batches_with_flips_applied():
    src = gd.EmbeddedShapes(8, num_images=6, num_classes=3)
    with gd.make_batches(src, 4, seed=9, xflip=True, start_step=0) as it:
        first = [next(it) for _ in range(6)]
    with gd.make_batches(src, 4, seed=9, xflip=True, start_step=3, prefetch=1) as it:
        resumed = [next(it) for _ in range(3)]
        assert it.step == 6
    for a, b in zip(first[3:], resumed):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    for step, batch in enumerate(first):
        idx, flip = gd.batch_indices(6, 4, step, 9, True)
        expected = src.images(idx)
        expected[flip] = expected[flip, :, ::-1]
        np.testing.assert_array_equal(batch["image"], expected)
        assert batch["image"].dtype == np.uint8 and batch["label"].dtype == np.float32
        np.testing.assert_array_equal(batch["label"], src.labels(idx))
    assert any(gd.batch_indices(6, 4, s, 9, True)[1].any() for s in range(6))
    with gd.make_batches(src, 4, seed=9, xflip=False, process_index=1, process_count=2) as it:
        assert next(it)["image"].shape == (2, 8, 8, 3)


class _FailingSource(gd.EmbeddedShapes):
    def __init__(self):
        super().__init__(4, num_images=8)
        self.calls = 0

    def images(self, indices):
        self.calls += 1
        if self.calls == 2:
            raise OSError("disk went away")
        return super().images(indices)


def test_make_batches_reraises_errors_of_the_prefetch_thread_and_close_stops_it():
    it = gd.make_batches(_FailingSource(), 2, seed=0, xflip=False)
    next(it)
    with pytest.raises(OSError, match="disk went away") as info:
        next(it)
    assert "prefetch thread" in "".join(getattr(info.value, "__notes__", []))
    with pytest.raises(StopIteration):
        next(it)

    it = gd.make_batches(gd.EmbeddedShapes(4, num_images=8), 2, seed=0, xflip=False, prefetch=1)
    next(it)
    it.close()
    assert not it._thread.is_alive()
    with pytest.raises(StopIteration):
        next(it)


# --------------------------------------------------------------------------------------------- tfds


def test_tfds_source_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
        src = gd.open_source("tfds:cifar10:train", resolution=32)
        assert (src.num_images, src.resolution, src.channels, src.label_dim) == (6, 32, 3, 10)
        assert src.name == "tfds:cifar10:train"
        img = src.images(np.arange(6))
        assert img.shape == (6, 32, 32, 3) and img.dtype == np.uint8
        labels = src.labels(np.arange(6))
        assert labels.shape == (6, 10) and labels.dtype == np.float32
        np.testing.assert_array_equal(labels.sum(1), 1)
        np.testing.assert_array_equal(src.images([2]), img[[2]])  # stable order
        with gd.make_batches(src, 4, seed=0, xflip=True) as it:
            assert next(it)["image"].shape == (4, 32, 32, 3)
        with pytest.raises(ValueError, match=r"tfds:cifar10:train: images are 32x32 .*expected 64x64.*--resolution=64"):
            gd.open_source("tfds:cifar10", resolution=64)
        with pytest.raises(ValueError, match=r"tfds:mnist:test: images are 28x28.*expected 32x32"):
            gd.TfdsSource("mnist", "test", resolution=32)


def test_tfds_spec_parsing():
    from gan_jax.data.source import parse_tfds_spec

    assert parse_tfds_spec("tfds:cifar10") == ("cifar10", "train")
    assert parse_tfds_spec("tfds:cifar10:test") == ("cifar10", "test")
    assert parse_tfds_spec("tfds:cifar10:3.0.2:train[:90%]") == ("cifar10:3.0.2", "train[:90%]")
    assert parse_tfds_spec("tfds:lsun/church_outdoor") == ("lsun/church_outdoor", "train")


def test_tfds_images_of_any_size_are_center_cropped_and_resized_on_access():
    tfds = pytest.importorskip("tensorflow_datasets")
    from PIL import Image

    from gan_jax.data.tfds_source import TfdsCroppedSource, center_crop_resize

    with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.AUTO):
        src = gd.open_source("tfds:imagenet2012:train", resolution=16)
        assert isinstance(src, TfdsCroppedSource) and src.label_dim == 1000
        raw = tfds.data_source("imagenet2012", split="train")
        imgs = src.images(np.array([0, 3]))
        assert imgs.shape == (2, 16, 16, 3) and imgs.dtype == np.uint8
        for row, i in enumerate((0, 3)):
            x = np.asarray(raw[i]["image"])
            h, w = x.shape[:2]
            s = min(h, w)
            top, left = round((h - s) / 2), round((w - s) / 2)  # torchvision center_crop offsets
            want = np.asarray(Image.fromarray(x).crop((left, top, left + s, top + s)).resize((16, 16), Image.BILINEAR))
            np.testing.assert_array_equal(imgs[row], want)
            np.testing.assert_array_equal(src.labels(np.array([i]))[0].argmax(), int(raw[i]["label"]))
    odd = np.arange(5 * 8 * 3, dtype=np.uint8).reshape(5, 8, 3)
    np.testing.assert_array_equal(center_crop_resize(odd, 5), odd[:, 2:7])  # (8 - 5) / 2 = 1.5 rounds to 2


def test_tfds_imagenet_not_prepared_names_the_manual_download(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FileNotFoundError, match=r"ILSVRC2012_img_train\.tar.*downloads/manual.*tfds build imagenet2012"):
        gd.open_source("tfds:imagenet2012:train", resolution=128, data_dir=str(tmp_path))
