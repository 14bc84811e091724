"""Real data with no download: scikit-learn's digits, and MNIST / Fashion-MNIST IDX files.

Both loaders return a :class:`Dataset` of NumPy arrays: standardized float64
features (mean 0 and standard deviation 1 per feature, with the statistics of the
training split) and int64 class labels. The demo casts them to the requested dtype
and converts them to the chosen backend once.

The IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic
number ``0x00 0x00 <type code> <number of dimensions>``, then each dimension as a
big-endian uint32, then the data, big-endian, in C order. MNIST and Fashion-MNIST use
type ``0x08`` (unsigned byte), 3 dimensions for the images and 1 for the labels.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIGITS_TEST_FRACTION = 0.2
"""Share of the 1797 digits held out for testing."""

DIGITS_SPLIT_SEED = 0
"""Seed of the digits train/test split: fixed, so that every run tests on the same images."""

# IDX type code -> big-endian NumPy dtype
_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# the four files of an MNIST-style directory: (split, kind) -> base name
IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class Dataset:
    """A classification data set, split and standardized.

    Attributes
    ----------
    name : str
        What it is, for the report.
    x_train, x_test : numpy.ndarray
        Float64 features, shape ``(n, d)``, standardized with the training statistics.
    y_train, y_test : numpy.ndarray
        Int64 class labels in ``[0, n_classes)``, shape ``(n,)``.
    n_classes : int
        Number of classes.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def n_features(self) -> int:
        """Number of features per sample."""
        return int(self.x_train.shape[1])

    def describe(self) -> str:
        """One line: name, sizes, features and classes."""
        return (
            f"{self.name}: {self.x_train.shape[0]} train, {self.x_test.shape[0]} test, "
            f"{self.n_features} features, {self.n_classes} classes"
        )


def standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale each feature to mean 0 and standard deviation 1 on the training split.

    Features that are constant on the training split (the always-blank border
    pixels) are only centred, never divided by zero.
    """
    x_train = np.asarray(x_train, dtype=np.float64)
    x_test = np.asarray(x_test, dtype=np.float64)
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def load_digits() -> Dataset:
    """scikit-learn's 8x8 handwritten digits, shipped inside its package.

    1797 images of 64 pixels, 10 classes, split 80/20 by a fixed seeded permutation
    (:data:`DIGITS_SPLIT_SEED`), so the test set is the same on every run.

    Raises
    ------
    ImportError
        If scikit-learn is not installed; the message names the ``demo`` extra.
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as exc:
        msg = (
            f"the built-in digits data set needs scikit-learn ({exc}). Install it with: "
            "pip install 'xsoftmax[demo]', or give IDX files with --data DIR"
        )
        raise ImportError(msg) from exc
    x, y = sk_load_digits(return_X_y=True)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(y))
    n_test = math.ceil(len(y) * DIGITS_TEST_FRACTION)  # as scikit-learn rounds a test share
    test, train = order[:n_test], order[n_test:]
    x_train, x_test = standardize(x[train], x[test])
    return Dataset(
        "scikit-learn digits (8x8)",
        x_train,
        y[train].astype(np.int64),
        x_test,
        y[test].astype(np.int64),
        n_classes=10,
    )


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":  # not gzip: a raw IDX file (whatever its name)
        if path.suffix == ".gz":
            msg = f"{path}: named .gz but is not a gzip file"
            raise ValueError(msg)
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        msg = f"{path}: corrupt gzip file ({exc})"
        raise ValueError(msg) from exc


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file, raw or gzip-compressed.

    Parameters
    ----------
    path : str or pathlib.Path
        The file. Compression is recognised by its content, not its name.

    Returns
    -------
    numpy.ndarray
        The array, with the shape the header gives, in native byte order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a valid IDX file: bad magic number, unknown type code,
        or data shorter or longer than the header promises. The message names the
        file and what is wrong.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        msg = f"{path}: not an IDX file: {len(data)} bytes, shorter than the 4-byte magic number"
        raise ValueError(msg)
    zero, code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00" or code not in _IDX_TYPES:
        msg = (
            f"{path}: not an IDX file: bad magic number 0x{data[:4].hex()} "
            "(expected 0x0000TTNN: two zero bytes, a type code in "
            f"{{{', '.join(f'0x{c:02x}' for c in _IDX_TYPES)}}}, the number of dimensions)"
        )
        raise ValueError(msg)
    if ndim == 0:
        msg = f"{path}: bad IDX header: 0 dimensions"
        raise ValueError(msg)
    header = 4 + 4 * ndim
    if len(data) < header:
        msg = (
            f"{path}: truncated IDX header: {ndim} dimensions need {header} bytes, got {len(data)}"
        )
        raise ValueError(msg)
    shape = tuple(int(n) for n in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        msg = (
            f"{path}: IDX data {what}: shape {shape} of {dtype.newbyteorder('=')} needs "
            f"{expected} bytes after the header, got {got}"
        )
        raise ValueError(msg)
    out = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return out.astype(dtype.newbyteorder("="))


def find_idx_file(directory: Path, base: str) -> Path:
    """The file for ``base`` in ``directory``: raw or ``.gz``, ``-idx`` or ``.idx`` spelling.

    Raises
    ------
    FileNotFoundError
        If none of the spellings exists; the message lists what was looked for.
    """
    dotted = base.replace("-idx", ".idx")  # the spelling of some unpacked downloads
    candidates = [directory / f"{name}{ext}" for name in (base, dotted) for ext in ("", ".gz")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    msg = f"{directory}: missing {base} (looked for {', '.join(c.name for c in candidates)})"
    raise FileNotFoundError(msg)


def _load_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = find_idx_file(directory, IDX_FILES[(split, "images")])
    labels_path = find_idx_file(directory, IDX_FILES[(split, "labels")])
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim < 2:
        msg = f"{images_path}: images must have at least 2 dimensions, got shape {images.shape}"
        raise ValueError(msg)
    if labels.ndim != 1:
        msg = f"{labels_path}: labels must have 1 dimension, got shape {labels.shape}"
        raise ValueError(msg)
    if images.shape[0] != labels.shape[0]:
        msg = (
            f"{directory}: {images_path.name} holds {images.shape[0]} images but "
            f"{labels_path.name} holds {labels.shape[0]} labels"
        )
        raise ValueError(msg)
    if images.shape[0] == 0:
        msg = f"{images_path}: no images"
        raise ValueError(msg)
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        msg = f"{labels_path}: labels must be non-negative integers"
        raise ValueError(msg)
    return images.reshape(images.shape[0], -1), labels.astype(np.int64)


def load_idx_dir(directory: str | Path) -> Dataset:
    """MNIST or Fashion-MNIST from the four IDX files in ``directory``.

    The files are ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or with
    ``.gz``. Pixels are flattened and standardized with the training statistics.

    Raises
    ------
    FileNotFoundError
        If the directory or one of the files is missing.
    ValueError
        If a file is corrupt, the image and label counts differ, or the training and
        test images have different sizes.
    """
    directory = Path(directory)
    if not directory.is_dir():
        msg = f"--data: {directory} is not a directory"
        raise FileNotFoundError(msg)
    x_train, y_train = _load_split(directory, "train")
    x_test, y_test = _load_split(directory, "test")
    if x_train.shape[1] != x_test.shape[1]:
        msg = (
            f"{directory}: training images have {x_train.shape[1]} pixels but test images "
            f"have {x_test.shape[1]}"
        )
        raise ValueError(msg)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    x_train, x_test = standardize(x_train, x_test)
    return Dataset(f"IDX files in {directory}", x_train, y_train, x_test, y_test, n_classes)
