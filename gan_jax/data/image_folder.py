"""Image folders and zips in NVIDIA's ``dataset_tool.py`` layout, read as NVIDIA's ``ImageFolderDataset`` reads them.

Layout (``python -m gan_jax.data.prepare`` writes it; so does NVIDIA's ``dataset_tool.py``)::

    00000/img00000000.png ... 00000/img00000999.png   1000 images per folder
    00001/img00001000.png ...
    dataset.json      optional: {"labels": [["00000/img00000000.png", 6], ...]} or {"labels": null}

Behaviour mirrored from stylegan2-ada-pytorch ``training/dataset.py``: every file under the root
(recursively) whose extension is an image's is an image, in sorted order of its path relative to the
root (``/``-separated); the first image fixes resolution and channels; integer labels become one-hot
of size ``max + 1``, float vectors stay as they are; ``max_images`` keeps a random subset drawn with
``np.random.RandomState(random_seed)`` and then sorted, as ``max_size`` does there. Unlike there,
every image is checked when decoded (size, channels, decodability) and a bad one is named.

PNGs are decoded with ``pyspng`` (libspng, what NVIDIA's trainer uses; 1.3-1.4x PIL's images per
CPU-second on this project's 2-core machine, docs/performance.md "Input pipeline")
when it is installed and the file is plain 8-bit gray / RGB / RGBA, with PIL otherwise (palette,
16-bit, a file pyspng refuses: PIL then names the file if it is corrupt). JPEG and the rest go
through PIL. Grayscale images have C = 1.

A path with a scheme (``gs://bucket/ffhq.zip``, ``s3://...``) is read through ``etils.epath``, by
every process and every data worker (each opens its own handle). This module imports numpy, PIL
and pyspng where installed; etils only for a remote path.
"""

from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from typing import Any

import numpy as np
import PIL.Image

try:  # optional: the fast PNG decoder NVIDIA's trainer uses
    import pyspng
except ImportError:  # pragma: no cover - PIL decodes everything pyspng would
    pyspng = None

from gan_jax.data.base import check_indices

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
LABELS_FILE = "dataset.json"


def _prepare_cmd(source: str, resolution: int | str = "R") -> str:
    return f"python -m gan_jax.data.prepare --source={source} --dest=DATASET.zip --resolution={resolution}"


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type (IHDR byte 25) -> channels pyspng returns for it at bit depth 8: gray, RGB, RGBA.
# Palette (3) and gray+alpha (4) go through PIL, which maps them as NVIDIA's reader sees them.
_SPNG_CHANNELS = {0: 1, 2: 3, 6: 4}


def is_remote(path: str) -> bool:
    """True for a path with a scheme (``gs://...``), read through ``etils.epath``."""
    return "://" in str(path)


def _decode_png_fast(data: bytes) -> np.ndarray | None:
    """uint8 [H, W, C] through pyspng for a plain 8-bit gray/RGB/RGBA PNG; None to fall back to PIL."""
    if pyspng is None or len(data) < 33 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    bit_depth, colour_type = data[24], data[25]
    channels = _SPNG_CHANNELS.get(colour_type)
    if bit_depth != 8 or channels is None:
        return None
    idat = data.find(b"IDAT")
    if data.find(b"tRNS", 0, idat if idat > 0 else len(data)) >= 0:
        return None  # a transparent colour: PIL's reading of it (kept as L / RGB) decides
    try:
        image = pyspng.load(data)
    except Exception:  # noqa: BLE001 - a corrupt file: PIL decodes it again and names it
        return None
    if image.ndim == 2:
        image = image[:, :, None]
    if image.dtype != np.uint8 or image.shape[2] != channels:
        return None
    return image


def decode_image(data: bytes, fname: str, where: str) -> np.ndarray:
    """uint8 [H, W, C] from encoded bytes; a ValueError naming ``fname`` inside ``where`` if they do not decode.

    Grayscale ('L') -> C = 1, 'RGB' -> 3, 'RGBA' -> 4 kept as stored (as NVIDIA's reader does);
    palette and other modes are converted to RGB (RGBA when the palette has transparency), 1-bit to L.
    Plain 8-bit PNGs go through pyspng when it is installed (same pixels, faster), the rest through PIL.
    """
    fast = _decode_png_fast(data)
    if fast is not None:
        return fast
    try:
        with PIL.Image.open(io.BytesIO(data)) as im:
            if im.mode == "1":
                im = im.convert("L")
            elif im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode not in ("L", "RGB", "RGBA"):
                im = im.convert("RGB")
            image = np.asarray(im)
    except Exception as e:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ... for bad bytes
        raise ValueError(f"cannot decode image {fname!r} in {where}: {type(e).__name__}: {e}. "
                         "Re-encode or remove that file (or rebuild the dataset with "
                         "`python -m gan_jax.data.prepare ... --skip_corrupt`).") from e
    if image.ndim == 2:
        image = image[:, :, None]  # HW -> HWC
    return image


class ImageFolderSource:
    """The images of a folder or .zip (uint8 [n, R, R, C]) and its ``dataset.json`` labels (float32 [n, D])."""

    def __init__(self, path: str, resolution: int | None = None, use_labels: bool = True,
                 max_images: int | None = None, random_seed: int = 0):
        path = os.fspath(path)
        self.remote = is_remote(path)
        self.path = path if self.remote else os.path.abspath(path)
        if not _exists(path):
            raise FileNotFoundError(
                f"dataset not found: {path!r} does not exist. Expected a folder of images or a .zip in NVIDIA's "
                f"dataset_tool layout; make one from your images with `{_prepare_cmd('YOUR_IMAGES')}` "
                "(or use the embedded dataset, spec 'embedded').")
        self._zip: zipfile.ZipFile | None = None
        self._lock = threading.Lock()
        if _isdir(path):
            self.kind = "folder"
            all_names = _walk_files(path)
        elif path.lower().endswith(".zip"):
            self.kind = "zip"
            try:
                all_names = {n for n in self._zipfile().namelist() if not n.endswith("/")}
            except zipfile.BadZipFile as e:
                raise ValueError(f"{path!r} is not a readable zip file ({e}); rebuild it with "
                                 f"`{_prepare_cmd('YOUR_IMAGES')}`") from e
        else:
            raise ValueError(f"dataset path {path!r} is neither a folder nor a .zip file; expected a folder or .zip "
                             f"in NVIDIA's dataset_tool layout, which `{_prepare_cmd('YOUR_IMAGES')}` makes")
        self._all_names = all_names
        fnames = sorted(n for n in all_names if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS)
        if not fnames:
            raise ValueError(f"no images found in {self.kind} {path!r} (searched recursively for "
                             f"{', '.join(IMAGE_EXTENSIONS)}); put images there or make a dataset with "
                             f"`{_prepare_cmd('YOUR_IMAGES')}`")
        self._raw_count = len(fnames)

        # The first image fixes the shape, as in NVIDIA's reader.
        first = self._load(fnames[0])
        h, w, c = first.shape
        if h != w:
            raise ValueError(f"image {fnames[0]!r} in {self.path} is {w}x{h} (width x height), not square; "
                             f"training needs square images of one resolution. Centre-crop and resize them with "
                             f"`{_prepare_cmd(path, resolution or _pow2_at_most(min(h, w)))}`")
        if resolution is not None and h != resolution:
            raise ValueError(f"image {fnames[0]!r} in {self.path} is {w}x{h}, expected {resolution}x{resolution} "
                             f"(the requested resolution); images are never resized when read. Make a dataset at "
                             f"that resolution with `{_prepare_cmd(path, resolution)}`, or ask for resolution {h}")
        self.resolution = int(h)
        self.channels = int(c)

        # max_images: a random subset, as NVIDIA's Dataset(max_size=..., random_seed=...).
        raw_idx = np.arange(len(fnames), dtype=np.int64)
        if max_images is not None and raw_idx.size > max_images:
            np.random.RandomState(random_seed).shuffle(raw_idx)
            raw_idx = np.sort(raw_idx[:max_images])
        self._fnames = [fnames[i] for i in raw_idx]
        self.num_images = len(self._fnames)
        raw_labels = self._load_labels(fnames) if use_labels else None
        if raw_labels is None:
            self._labels = np.zeros((self.num_images, 0), np.float32)
        else:
            self._labels = raw_labels[raw_idx]
        self.label_dim = int(self._labels.shape[1])

        self.name = f"{self.kind}:{self.path}:{self.resolution}x{self.channels}:{self.num_images}"
        if self.label_dim:
            self.name += f":labels{self.label_dim}"

    def __repr__(self) -> str:
        return f"ImageFolderSource({self.path!r}, {self.num_images} images {self.resolution}x{self.resolution}x{self.channels})"

    @property
    def filenames(self) -> list[str]:
        """The image names in index order, relative to the root, ``/``-separated."""
        return list(self._fnames)

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 [n, R, R, C] for the indices [n]; a ValueError naming any image of another size or channels."""
        idx = check_indices(indices, self.num_images, self.name)
        r, c = self.resolution, self.channels
        out = np.empty((len(idx), r, r, c), np.uint8)
        for row, i in enumerate(idx):
            fname = self._fnames[i]
            image = self._load(fname)
            if image.shape != (r, r, c):
                h, w, found_c = image.shape
                what = (f"is {w}x{h}, expected {r}x{r}" if (h, w) != (r, r)
                        else f"has {found_c} channel(s), expected {c} (like the first image)")
                raise ValueError(f"image {fname!r} in {self.path} {what}; every image of a dataset must have the "
                                 f"same size and channels. Rebuild the dataset with `{_prepare_cmd(self.path, r)}`")
            out[row] = image
        return out

    def labels(self, indices: np.ndarray) -> np.ndarray:
        """float32 [n, label_dim]: one-hot for integer labels, as stored for float vectors, [n, 0] without labels."""
        idx = check_indices(indices, self.num_images, self.name)
        return self._labels[idx].copy()

    def close(self) -> None:
        if self._zip is not None:
            handle = self._zip.fp if self.remote else None  # a ZipFile leaves a file object it was given open
            self._zip.close()
            if handle is not None:
                handle.close()
            self._zip = None

    def __getstate__(self) -> dict:
        return dict(self.__dict__, _zip=None, _lock=None)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    # -- reading -------------------------------------------------------------------------------
    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None:
            # A remote zip is read through a seekable epath file (ranged reads of the members it needs).
            self._zip = zipfile.ZipFile(_epath(self.path).open("rb") if self.remote else self.path)  # noqa: SIM115
        return self._zip

    def _read(self, fname: str) -> bytes:
        if self.kind == "folder":
            if self.remote:
                return (_epath(self.path) / fname).read_bytes()
            with open(os.path.join(self.path, fname), "rb") as f:
                return f.read()
        with self._lock:  # one ZipFile handle shared by threads: read the bytes under a lock, decode outside
            return self._zipfile().read(fname)

    def _load(self, fname: str) -> np.ndarray:
        return decode_image(self._read(fname), fname, f"{self.kind} {self.path}")

    def _load_labels(self, fnames: list[str]) -> np.ndarray | None:
        """float32 [raw n, D] from dataset.json (one-hot for integer labels), or None without labels."""
        if LABELS_FILE not in self._all_names:
            return None
        where = f"{LABELS_FILE} of {self.path}"
        try:
            meta = json.loads(self._read(LABELS_FILE))
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{where} is not valid JSON ({e}); expected "
                             '{"labels": [["00000/img00000000.png", 6], ...]} or {"labels": null}') from e
        if not isinstance(meta, dict) or "labels" not in meta:
            raise ValueError(f'{where} has no "labels" key; expected {{"labels": [[file name, label], ...]}} '
                             'or {"labels": null}')
        if meta["labels"] is None:
            return None
        try:
            table = {str(k).replace("\\", "/"): v for k, v in meta["labels"]}
        except (TypeError, ValueError) as e:
            raise ValueError(f'{where}: "labels" must be a list of [file name, label] pairs, '
                             f"e.g. [[\"00000/img00000000.png\", 6]]; got {str(meta['labels'])[:80]}") from e
        missing = [f for f in fnames if f not in table]
        if missing:
            raise ValueError(f"{where} has no label for image {missing[0]!r} ({len(missing)} of {len(fnames)} images "
                             f"unlabeled); label every image, set \"labels\": null, or open the source with "
                             "use_labels=False")
        values = [table[f] for f in fnames]
        try:
            labels = np.array(values)
        except ValueError:
            labels = np.array(values, dtype=object)
        if labels.ndim == 1 and labels.dtype != object and np.issubdtype(labels.dtype, np.number):
            # NVIDIA casts 1-D labels to int64 class ids; a non-integral one would be silently truncated there.
            if not np.all(labels == np.round(labels)):
                bad = fnames[int(np.argmax(labels != np.round(labels)))]
                raise ValueError(f"{where}: a scalar label must be an integer class id, found "
                                 f"{table[bad]!r} for {bad!r}; use integers or [float, ...] vectors")
            labels = labels.astype(np.int64)
            if labels.min() < 0:
                bad = fnames[int(np.argmin(labels))]
                raise ValueError(f"{where}: class labels must be >= 0, found {int(labels.min())} for {bad!r}")
            num_classes = int(labels.max()) + 1  # one-hot of size max + 1, as NVIDIA's label_shape
            onehot = np.zeros((len(labels), num_classes), np.float32)
            onehot[np.arange(len(labels)), labels] = 1.0
            return onehot
        if labels.ndim == 2 and labels.dtype != object and np.issubdtype(labels.dtype, np.number):
            return labels.astype(np.float32)
        raise ValueError(f"{where}: expected every label to be an integer class id or a float vector of one length, "
                         f"found e.g. {values[0]!r} (array shape {labels.shape}, dtype {labels.dtype})")


def _epath(path: str) -> Any:
    from etils import epath  # noqa: PLC0415 - only remote datasets need it (and it may pull in a cloud client)

    return epath.Path(path)


def _exists(path: str) -> bool:
    return _epath(path).exists() if is_remote(path) else os.path.exists(path)


def _isdir(path: str) -> bool:
    return _epath(path).is_dir() if is_remote(path) else os.path.isdir(path)


def _walk_files(path: str) -> set[str]:
    """Every file under the folder ``path`` (recursively), relative to it and ``/``-separated."""
    if not is_remote(path):
        return {os.path.relpath(os.path.join(root, f), path).replace(os.sep, "/")
                for root, _dirs, files in os.walk(path) for f in files}
    root = _epath(path)
    out = set()
    for folder, _dirs, files in root.walk():
        rel = str(folder)[len(str(root)):].strip("/")
        out.update(f"{rel}/{f}" if rel else f for f in files)
    return out


def _pow2_at_most(n: int) -> int:
    return 1 << (max(int(n), 1).bit_length() - 1)
