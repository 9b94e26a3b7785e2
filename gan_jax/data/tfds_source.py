"""tensorflow-datasets datasets as image sources.

- ``TfdsSource``: a dataset of fixed-size square images (CIFAR-10, MNIST, ...) read once into
  memory as uint8 NHWC; it never resizes.
- ``TfdsCroppedSource``: a dataset of images of any size (ImageNet: ``tfds:imagenet2012``), read
  by index from tfds' random-access data source (ArrayRecord files) and centre-cropped to the
  short side and resized to ``resolution`` as BigGAN-PyTorch's ``CenterCropLongEdge`` +
  ``transforms.Resize`` (PIL bilinear) do, one image at a time: nothing is held in memory.

``tensorflow_datasets`` is imported by the constructors only, so that ``gan_jax.data`` imports
without TensorFlow.
"""

from __future__ import annotations

import numpy as np

from gan_jax.data.base import check_indices, one_hot

READ_BATCH = 1024  # examples per tf.data batch while copying the split into memory


class TfdsSource:
    """The images uint8 [n, R, R, C] of ``split`` of tfds dataset ``name``, labels one-hot [n, num_classes].

    ``label_key``: a ``ClassLabel`` feature (one-hot of its ``num_classes``); None, or the default
    ``'label'`` when the dataset has no such feature, means unlabeled (``label_dim`` 0).
    ``download``: let tfds download and prepare the dataset when ``data_dir`` lacks it.
    """

    def __init__(self, name: str, split: str = "train", data_dir: str | None = None, image_key: str = "image",
                 label_key: str | None = "label", resolution: int | None = None, download: bool = True):
        import tensorflow_datasets as tfds

        _hide_gpus_from_tensorflow()
        self.name = f"tfds:{name}:{split}"
        builder = tfds.builder(name, data_dir=data_dir)
        features = builder.info.features
        if image_key not in features:
            raise ValueError(f"{self.name}: no image feature {image_key!r}; the dataset's features are "
                             f"{sorted(features.keys())}; pass image_key=one of them")
        shape = tuple(features[image_key].shape)
        if len(shape) == 3 and None in shape[:2] and resolution is not None:
            raise _VariableSize()
        if len(shape) != 3 or None in shape:
            raise ValueError(f"{self.name}: feature {image_key!r} has shape {shape}; TfdsSource reads images of one "
                             "fixed size [H, W, C] only and never resizes. Write the images to a folder and make a "
                             "dataset with `python -m gan_jax.data.prepare --source=FOLDER --dest=DATASET.zip "
                             "--resolution=R`")
        h, w, c = shape
        if h != w or (resolution is not None and h != resolution):
            expected = f"{resolution}x{resolution}" if resolution is not None else "square images"
            raise ValueError(f"{self.name}: images are {w}x{h} (width x height), expected {expected}; TfdsSource "
                             "never resizes. Write the images to a folder and make a dataset with "
                             f"`python -m gan_jax.data.prepare --source=FOLDER --dest=DATASET.zip "
                             f"--resolution={resolution or 'R'}`" + ("" if h != w else f", or ask for resolution {h}"))

        num_classes = 0
        if label_key is not None:
            if label_key in features and isinstance(features[label_key], tfds.features.ClassLabel):
                num_classes = int(features[label_key].num_classes)
            elif label_key in features:
                raise ValueError(f"{self.name}: feature {label_key!r} is a {type(features[label_key]).__name__}, "
                                 "expected a ClassLabel; pass label_key=None for an unlabeled source")
            elif label_key != "label":
                raise ValueError(f"{self.name}: no label feature {label_key!r}; the dataset's features are "
                                 f"{sorted(features.keys())}; pass label_key=None for an unlabeled source")
        if download:
            builder.download_and_prepare()
        ds = builder.as_dataset(split=split, shuffle_files=False)  # stable order: index i is always one example
        keys = [image_key] + ([label_key] if num_classes else [])
        ds = ds.map(lambda ex: {k: ex[k] for k in keys}).batch(READ_BATCH)
        images, classes = [], []
        for batch in tfds.as_numpy(ds):
            images.append(np.asarray(batch[image_key], np.uint8))
            if num_classes:
                classes.append(np.asarray(batch[label_key], np.int64))
        if not images:
            raise ValueError(f"{self.name}: split {split!r} has no examples")
        self._images = np.concatenate(images)  # [n, R, R, C]
        self._classes = np.concatenate(classes) if num_classes else None
        self.resolution, self.channels = int(h), int(c)
        self.num_images = int(self._images.shape[0])
        self.label_dim = num_classes

    def __repr__(self) -> str:
        return f"TfdsSource({self.name!r}, {self.num_images} images {self.resolution}x{self.resolution}x{self.channels})"

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 [n, R, R, C] for the indices [n]."""
        return self._images[check_indices(indices, self.num_images, self.name)]

    def labels(self, indices: np.ndarray) -> np.ndarray:
        """float32 [n, num_classes] one-hot, or [n, 0] when unlabeled."""
        idx = check_indices(indices, self.num_images, self.name)
        if self._classes is None:
            return np.zeros((len(idx), 0), np.float32)
        return one_hot(self._classes[idx], self.label_dim)


class _VariableSize(Exception):
    """The dataset's images have no fixed size: ``open_tfds`` uses ``TfdsCroppedSource``."""


def open_tfds(name: str, split: str = "train", resolution: int | None = None, **kwargs) -> "TfdsSource | TfdsCroppedSource":
    """``TfdsSource`` for fixed-size images, ``TfdsCroppedSource`` for images of any size (ImageNet)."""
    try:
        return TfdsSource(name, split, resolution=resolution, **kwargs)
    except _VariableSize:
        kwargs.pop("download", None)
        return TfdsCroppedSource(name, split, resolution=int(resolution), **kwargs)


def center_crop_resize(image: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 [H, W, C] -> [R, R, C]: the central square of side min(H, W) (BigGAN-PyTorch's
    ``CenterCropLongEdge``: offset ``round((H - s) / 2)`` as torchvision's ``center_crop``), then PIL
    bilinear resize to R x R (``transforms.Resize(R)`` on the square)."""
    from PIL import Image

    h, w = image.shape[:2]
    side = min(h, w)
    top, left = int(round((h - side) / 2.0)), int(round((w - side) / 2.0))
    square = np.ascontiguousarray(image[top:top + side, left:left + side])
    if side == resolution:
        return square
    pil = Image.fromarray(square[..., 0] if square.shape[2] == 1 else square)
    out = np.asarray(pil.resize((resolution, resolution), Image.BILINEAR))
    return out[..., None] if out.ndim == 2 else out


_MANUAL = {"imagenet2012": "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from https://image-net.org"}


class TfdsCroppedSource:
    """Images of ``split`` of tfds ``name`` centre-cropped and resized to ``resolution`` (uint8
    [n, R, R, C]) on access, labels one-hot; the dataset must be prepared in ``data_dir`` in tfds'
    ArrayRecord format (random access), e.g. ``tfds build imagenet2012 --file_format=array_record``."""

    def __init__(self, name: str, split: str = "train", data_dir: str | None = None, image_key: str = "image",
                 label_key: str | None = "label", resolution: int = 128):
        import tensorflow_datasets as tfds

        _hide_gpus_from_tensorflow()
        self.name = f"tfds:{name}:{split}:crop{resolution}"
        builder = tfds.builder(name, data_dir=data_dir)
        where = data_dir or "~/tensorflow_datasets"
        manual = _MANUAL.get(name.split(":")[0].split("/")[0])
        steps = (f"put {manual} in {where}/downloads/manual/, then " if manual else "") + \
            f"run `tfds build {name} --data_dir={where} --file_format=array_record`"
        try:
            self._data = builder.as_data_source(split=split)
        except Exception as err:  # noqa: BLE001 - tfds raises several kinds for "not prepared"
            raise FileNotFoundError(f"{self.name}: the tfds dataset {name} is not prepared for random access in "
                                    f"{where} ({type(err).__name__}); {steps}. Or make a zip with "
                                    "`python -m gan_jax.data.prepare --transform=center-crop`") from None
        features = builder.info.features
        self.resolution = int(resolution)
        self.channels = int(features[image_key].shape[-1] or 3)
        self.num_images = len(self._data)
        self._image_key = image_key
        self._label_key = label_key if label_key in features and isinstance(
            features[label_key], tfds.features.ClassLabel) else None
        self.label_dim = int(features[self._label_key].num_classes) if self._label_key else 0

    def images(self, indices: np.ndarray) -> np.ndarray:
        idx = check_indices(indices, self.num_images, self.name)
        out = np.empty((len(idx), self.resolution, self.resolution, self.channels), np.uint8)
        for row, i in enumerate(idx):
            out[row] = center_crop_resize(np.asarray(self._data[int(i)][self._image_key], np.uint8), self.resolution)
        return out

    def labels(self, indices: np.ndarray) -> np.ndarray:
        idx = check_indices(indices, self.num_images, self.name)
        if not self.label_dim:
            return np.zeros((len(idx), 0), np.float32)
        return one_hot(np.array([int(self._data[int(i)][self._label_key]) for i in idx]), self.label_dim)


def _hide_gpus_from_tensorflow() -> None:
    """Keep TensorFlow (used only to read data) from taking accelerator memory that JAX needs."""
    try:
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
    except Exception:  # noqa: BLE001 - no TF GPU support, or devices already initialised: nothing to hide
        pass
