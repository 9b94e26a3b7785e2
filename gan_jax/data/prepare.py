"""Make a training dataset in NVIDIA's ``dataset_tool.py`` layout from a folder or zip of arbitrary images.

    python -m gan_jax.data.prepare --source=DIR_OR_ZIP --dest=OUT.zip --resolution=R \\
        [--labels=auto|subdirs|PATH.json|none] [--max_images=N] [--channels=3|1] [--skip_corrupt] \\
        [--transform=center-crop|center-crop-wide] [--resize-filter=box|lanczos]

Each image (found recursively, in sorted order of its relative path) is converted to RGB (or gray with
``--channels=1``), centre-cropped to a square of its shorter side exactly as ``dataset_tool.py
--transform=center-crop`` crops (the default; ``--transform=center-crop-wide`` letterboxes a 2:1
band as dataset_tool.py does, skipping images too small for it), and resized to R x R: box-filtered (``PIL.Image.BOX``) when
shrinking, as NVIDIA made the paper datasets (``dataset_tool.py --resize-filter=box``), LANCZOS when
enlarging. Output, as ``dataset_tool.py`` writes it: uncompressed PNGs ``00000/img00000000.png``
(1000 per folder) in an uncompressed zip (or a folder when ``--dest`` does not end in .zip), and
``dataset.json`` = ``{"labels": [["00000/img00000000.png", 6], ...]}`` or ``{"labels": null}``.

``--labels``: ``subdirs``: the top-level sub-folder of each image is its class (sorted folder names ->
ids 0..K-1); ``PATH.json``: a mapping {file name: label} (relative path or bare file name; a label is
an int class id or a list of floats), or NVIDIA's ``{"labels": [[name, label], ...]}``; ``none``: no
labels; ``auto`` (default): the source's own ``dataset.json`` labels if it has them, else none.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import sys
import warnings
import zipfile
from collections.abc import Callable
from typing import Any

import PIL.Image

from gan_jax.data.image_folder import IMAGE_EXTENSIONS, LABELS_FILE

IMAGES_PER_FOLDER = 1000  # dataset_tool.py: archive name f'{idx:08d}'[:5] changes every 1000 images


def archive_name(index: int) -> str:
    """``'00000/img00000000.png'``: NVIDIA's name of image ``index`` in a dataset."""
    idx = f"{index:08d}"
    return f"{idx[:5]}/img{idx}.png"


@dataclasses.dataclass
class PrepareResult:
    dest: str
    num_images: int
    resolution: int
    channels: int
    labels: str                       # 'none', 'subdirs', 'dataset.json of the source' or the JSON path
    class_names: list[str] | None     # with --labels=subdirs: class id -> folder name
    skipped: list[str]                # corrupt files skipped with --skip_corrupt


def _list_source(source: str) -> tuple[list[str], Callable[[str], bytes], Callable[[], None]]:
    """(sorted relative image names, read(name) -> bytes, close) of a folder or zip."""
    if os.path.isdir(source):
        names = sorted(os.path.relpath(os.path.join(root, f), source).replace(os.sep, "/")
                       for root, _dirs, files in os.walk(source) for f in files)

        def read(name: str) -> bytes:
            with open(os.path.join(source, name), "rb") as f:
                return f.read()

        return names, read, lambda: None
    if source.lower().endswith(".zip") and os.path.isfile(source):
        try:
            zf = zipfile.ZipFile(source)
        except zipfile.BadZipFile as e:
            raise ValueError(f"--source {source!r} is not a readable zip file ({e})") from e
        names = sorted(n for n in zf.namelist() if not n.endswith("/"))
        return names, zf.read, zf.close
    if not os.path.exists(source):
        raise FileNotFoundError(f"--source {source!r} does not exist; expected a folder or a .zip of images")
    raise ValueError(f"--source {source!r} is neither a folder nor a .zip file; expected a folder or a .zip of images")


def _load_label_table(labels: str, names: list[str], read: Callable[[str], bytes]) -> dict[str, Any] | None:
    """{relative name or bare file name: label} from a JSON file or the source's dataset.json; None = no labels."""
    if labels == "auto":
        if LABELS_FILE not in names:
            return None
        where, text = f"the source's {LABELS_FILE}", read(LABELS_FILE)
    else:
        if not os.path.isfile(labels):
            raise FileNotFoundError(f"--labels file {labels!r} does not exist; expected subdirs, none, auto or the "
                                    "path of a JSON file {\"file name\": label, ...}")
        where = labels
        with open(labels, "rb") as f:
            text = f.read()
    try:
        meta = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"labels file {where} is not valid JSON: {e}") from e
    if isinstance(meta, dict) and set(meta) == {"labels"}:  # NVIDIA's dataset.json
        meta = meta["labels"]
        if meta is None:
            return None
        try:
            meta = {str(k): v for k, v in meta}
        except (TypeError, ValueError) as e:
            raise ValueError(f'{where}: "labels" must be a list of [file name, label] pairs') from e
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: expected a JSON object {{\"file name\": label, ...}} or NVIDIA's "
                         f"{{\"labels\": [[name, label], ...]}}, found a {type(meta).__name__}")
    return {str(k).replace("\\", "/"): v for k, v in meta.items()}


def _label_of(name: str, table: dict[str, Any], where: str) -> Any:
    for key in (name, os.path.basename(name)):
        if key in table:
            value = table[key]
            ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or (
                isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value))
            if not ok:
                raise ValueError(f"label of {name!r} in {where} is {value!r}; expected a class id >= 0 or a list "
                                 "of floats")
            return value
    raise ValueError(f"image {name!r} has no label in {where} (looked up as {name!r} and {os.path.basename(name)!r}); "
                     "label every image or use --labels=none")


TRANSFORMS = ("center-crop", "center-crop-wide")  # dataset_tool.py --transform
RESIZE_FILTERS = {"box": PIL.Image.BOX, "lanczos": PIL.Image.LANCZOS}  # dataset_tool.py --resize-filter


def _transform(data: bytes, resolution: int, mode: str, transform: str = "center-crop",
               resize_filter: str | None = None, band_height: int | None = None) -> PIL.Image.Image | None:
    """Decode, convert to ``mode`` and make an [R, R] image as ``dataset_tool.py --transform`` does:

    * ``center-crop``: the centred square of the shorter side, resized to R x R with
      ``resize_filter`` (default: box when shrinking, LANCZOS when enlarging);
    * ``center-crop-wide``: the centred band of height ``w * band_height / R`` resized to
      R x ``band_height`` (LANCZOS) on a black R x R canvas (letterbox; dataset_tool.py's
      ``--width=R --height=band_height``); None (the image is skipped, as dataset_tool.py skips it)
      when the image is narrower than R or too flat for the band.
    """
    with PIL.Image.open(io.BytesIO(data)) as im:
        im.load()
        im = im.convert(mode)
    w, h = im.size
    if transform == "center-crop-wide":
        # dataset_tool.py center_crop_wide(width=R, height=band): ch = round(width * img_h / img_w) is the
        # image's height at width R; rows (img_h - ch) // 2 .. (img_h + ch) // 2 of the image are kept
        band_h = int(band_height or resolution)
        ch = int(round(resolution * h / w))
        if w < resolution or ch < band_h:
            return None
        im = im.crop((0, (h - ch) // 2, w, (h + ch) // 2)).resize((resolution, band_h), PIL.Image.LANCZOS)
        canvas = PIL.Image.new(mode, (resolution, resolution))
        canvas.paste(im, (0, (resolution - band_h) // 2))
        return canvas
    if transform != "center-crop":
        raise ValueError(f"--transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}")
    crop = min(w, h)
    # dataset_tool.py center_crop: img[(h - crop) // 2 : (h + crop) // 2, (w - crop) // 2 : (w + crop) // 2]
    im = im.crop(((w - crop) // 2, (h - crop) // 2, (w + crop) // 2, (h + crop) // 2))
    if resize_filter is not None and crop != resolution:
        im = im.resize((resolution, resolution), RESIZE_FILTERS[resize_filter])
    elif crop > resolution:
        im = im.resize((resolution, resolution), PIL.Image.BOX)
    elif crop < resolution:
        im = im.resize((resolution, resolution), PIL.Image.LANCZOS)
    return im


def prepare_dataset(source: str, dest: str, resolution: int, labels: str = "auto", max_images: int | None = None,
                    channels: int = 3, skip_corrupt: bool = False, log: Callable[[str], None] = print,
                    transform: str = "center-crop", resize_filter: str | None = None,
                    band_height: int | None = None) -> PrepareResult:
    """Write the images of ``source`` as an R x R dataset at ``dest`` (module docstring); returns what it wrote.
    ``transform`` / ``resize_filter`` / ``band_height``: ``dataset_tool.py``'s (see ``_transform``)."""
    if transform not in TRANSFORMS:
        raise ValueError(f"--transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}")
    if resize_filter is not None and resize_filter not in RESIZE_FILTERS:
        raise ValueError(f"--resize-filter must be one of {', '.join(RESIZE_FILTERS)}, got {resize_filter!r}")
    if int(resolution) != resolution or resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"--resolution must be a power of two >= 4 (the networks double resolution per block), "
                         f"got {resolution!r}")
    if channels not in (1, 3):
        raise ValueError(f"--channels must be 3 (RGB) or 1 (gray), got {channels!r}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"--max_images must be >= 1, got {max_images!r}")
    if labels not in ("auto", "subdirs", "none") and not labels.lower().endswith(".json"):
        raise ValueError(f"--labels must be auto, subdirs, none or a PATH.json, got {labels!r}")
    source, dest = os.path.expanduser(source), os.path.expanduser(dest)
    if not dest:
        raise ValueError("--dest must name an output .zip (or folder)")

    names, read, close_source = _list_source(source)
    try:
        images = [n for n in names if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS
                  and not n.startswith("__MACOSX/") and not os.path.basename(n).startswith("._")]  # macOS zip debris
        if not images:
            raise ValueError(f"no images found in --source {source!r} (searched recursively for "
                             f"{', '.join(IMAGE_EXTENSIONS)})")
        class_names, table, label_where = None, None, labels
        if labels == "subdirs":
            at_root = [n for n in images if "/" not in n]
            if at_root:
                raise ValueError(f"--labels=subdirs needs every image in a class sub-folder, but {at_root[0]!r} is at "
                                 f"the top of {source!r}; move it into a sub-folder or use --labels=none")
            class_names = sorted({n.split("/", 1)[0] for n in images})
        elif labels != "none":
            table = _load_label_table(labels, names, read)
            label_where = f"the source's {LABELS_FILE}" if labels == "auto" else labels
            if table is None:
                label_where = "none"
        else:
            label_where = "none"

        out = _Dest(dest)
        written, skipped, entries = 0, [], []
        try:
            for name in images:
                if max_images is not None and written >= max_images:
                    break
                try:
                    img = _transform(read(name), int(resolution), "RGB" if channels == 3 else "L", transform,
                                     resize_filter, band_height)
                except Exception as e:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
                    msg = f"cannot decode source image {name!r} in {source!r}: {type(e).__name__}: {e}"
                    if not skip_corrupt:
                        raise ValueError(msg + "; remove or re-encode it, or pass --skip_corrupt to skip such "
                                         "files") from e
                    warnings.warn(msg + " (skipped: --skip_corrupt)", stacklevel=2)
                    skipped.append(name)
                    continue
                if img is None:  # center-crop-wide: too small for the canvas (dataset_tool.py skips it too)
                    skipped.append(name)
                    continue
                arch = archive_name(written)
                bits = io.BytesIO()
                img.save(bits, format="png", compress_level=0, optimize=False)  # uncompressed, as dataset_tool.py
                out.write(arch, bits.getvalue())
                if class_names is not None:
                    entries.append([arch, class_names.index(name.split("/", 1)[0])])
                elif table is not None:
                    entries.append([arch, _label_of(name, table, label_where)])
                written += 1
            if not written:
                raise ValueError(f"no image of --source {source!r} could be read ({len(skipped)} skipped as corrupt)")
            has_labels = class_names is not None or table is not None
            if has_labels and table is not None:
                kinds = {type(e[1]) if isinstance(e[1], int) else len(e[1]) for e in entries}
                if len(kinds) > 1:
                    raise ValueError(f"labels in {label_where} mix class ids and float vectors (or vectors of "
                                     "different lengths); use one kind for every image")
            out.write(LABELS_FILE, json.dumps({"labels": entries if has_labels else None}).encode())
            out.commit()
        finally:
            out.abort()
    finally:
        close_source()

    result = PrepareResult(dest=dest, num_images=written, resolution=int(resolution), channels=channels,
                           labels=label_where, class_names=class_names, skipped=skipped)
    log(f"wrote {written} images {resolution}x{resolution}x{channels} to {dest}"
        + (f" ({len(skipped)} corrupt skipped)" if skipped else ""))
    if class_names is not None:
        shown = ", ".join(f"{i}={n}" for i, n in enumerate(class_names[:50]))
        log(f"labels: {len(class_names)} classes from sub-folders: {shown}" + (" ..." if len(class_names) > 50 else ""))
    elif table is not None:
        ints = sorted({e[1] for e in entries if isinstance(e[1], int)})
        kind = f"{len(ints)} distinct class ids (max {ints[-1]})" if ints else "float vectors"
        log(f"labels: {kind} from {label_where}")
    else:
        log("labels: none")
    return result


class _Dest:
    """An output .zip (written to DEST.partial, renamed on commit) or an empty folder."""

    def __init__(self, dest: str):
        self.dest = dest
        self.is_zip = dest.lower().endswith(".zip")
        parent = os.path.dirname(os.path.abspath(dest))
        os.makedirs(parent, exist_ok=True)
        if self.is_zip:
            self.tmp = dest + ".partial"
            self.zf: zipfile.ZipFile | None = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_STORED)
        else:
            if os.path.isdir(dest) and os.listdir(dest):
                raise ValueError(f"--dest folder {dest!r} is not empty; give a new folder or a .zip path")
            os.makedirs(dest, exist_ok=True)
            self.zf = None

    def write(self, name: str, data: bytes) -> None:
        if self.zf is not None:
            self.zf.writestr(name, data)
        else:
            path = os.path.join(self.dest, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)

    def commit(self) -> None:
        if self.zf is not None:
            self.zf.close()
            self.zf = None
            os.replace(self.tmp, self.dest)

    def abort(self) -> None:
        if self.zf is not None:  # not committed: drop the partial zip
            self.zf.close()
            self.zf = None
            os.remove(self.tmp)


def build_parser() -> argparse.ArgumentParser:
    """The command line; NVIDIA ``dataset_tool.py``'s spellings (``--max-images``, ``--resize-filter``,
    ``--width`` / ``--height``) are accepted beside this module's."""
    p = argparse.ArgumentParser(prog="python -m gan_jax.data.prepare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help="folder or .zip of images (searched recursively)")
    p.add_argument("--dest", required=True, help="output .zip (or folder)")
    p.add_argument("--resolution", type=int, default=None, help="output side R (a power of two); or --width and "
                   "--height, equal")
    p.add_argument("--width", type=int, default=None, help="dataset_tool.py's output width (= --resolution)")
    p.add_argument("--height", type=int, default=None, help="dataset_tool.py's output height: = --width, or with "
                   "--transform=center-crop-wide the height of the letterboxed band (e.g. 384 of 512)")
    p.add_argument("--labels", default="auto", help="auto | subdirs | none | PATH.json (default: auto)")
    p.add_argument("--max_images", "--max-images", type=int, default=None, help="write at most this many images")
    p.add_argument("--channels", type=int, default=3, choices=(1, 3), help="3 = RGB (default), 1 = gray")
    p.add_argument("--skip_corrupt", action="store_true", help="skip undecodable images with a warning")
    p.add_argument("--transform", default="center-crop", choices=TRANSFORMS,
                   help="dataset_tool.py's crop: center-crop (default: the centred square) or center-crop-wide "
                        "(a centred band of --height rows, letterboxed on a --width square)")
    p.add_argument("--resize_filter", "--resize-filter", default=None, choices=sorted(RESIZE_FILTERS),
                   help="dataset_tool.py's resize filter (default: box when shrinking, lanczos when enlarging)")
    return p


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    args.band_height = None
    if args.transform == "center-crop-wide":  # dataset_tool.py: a width x width canvas, a band of height rows
        if args.width is None or args.height is None:
            p.error("--transform=center-crop-wide needs --width and --height (dataset_tool.py's), e.g. "
                    "--width=512 --height=384")
        if args.height > args.width:
            p.error(f"--transform=center-crop-wide letterboxes a band: --height={args.height} must be <= --width={args.width}")
        args.band_height, args.height = args.height, args.width
    sides = {v for v in (args.resolution, args.width, args.height) if v is not None}
    if not sides:
        p.error("--resolution (or --width and --height) is required")
    if len(sides) > 1:
        p.error(f"the output is square: --resolution / --width / --height must agree, got {sorted(sides)}")
    args.resolution = sides.pop()
    return args


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (0 done, 1 an error explained on stderr)."""
    args = _parse(argv)
    try:
        prepare_dataset(args.source, args.dest, args.resolution, labels=args.labels, max_images=args.max_images,
                        channels=args.channels, skip_corrupt=args.skip_corrupt, transform=args.transform,
                        resize_filter=args.resize_filter, band_height=args.band_height)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
