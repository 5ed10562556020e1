"""MNIST and Fashion-MNIST from the official gzipped IDX files.

IDX layout (big-endian): a 4-byte magic number (2051 for images, 2049 for labels: type byte
0x08 = uint8 and the number of dimensions), one 4-byte size per dimension, then raw uint8 data.
Files are looked for in the data folder, then in system folders (the Debian package
``dataset-fashion-mnist``), and downloaded only if found nowhere.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from resnetlab.data.download import cache_root, download
from resnetlab.data.labels import checked_labels
from resnetlab.data.sources import RawDataset, SourceOptions, register_source
from resnetlab.data.types import ImageSet
from resnetlab.errors import ResnetlabError

IMAGES_MAGIC = 2051  # 0x00000803: uint8, 3 dimensions (N, rows, cols)
LABELS_MAGIC = 2049  # 0x00000801: uint8, 1 dimension (N,)
FILES = {  # split -> (images file, labels file)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class IdxDataset:
    """Where one IDX data set comes from: mirrors, published MD5 per file, class names."""

    name: str
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # file name -> MD5 of the .gz, as torchvision publishes them
    classes: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()


MNIST = IdxDataset(
    name="mnist",
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    classes=tuple(str(d) for d in range(10)),
)
FASHION_MNIST = IdxDataset(
    name="fashion-mnist",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
)


def read_idx(path: Path, magic: int) -> torch.Tensor:
    """A gzipped IDX file as a uint8 tensor, after checking its magic number and length."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise ResnetlabError(f"{path} is not a readable gzip file ({exc}): delete it and run again") from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header or struct.unpack(">I", raw[:4])[0] != magic:
        found = struct.unpack(">I", raw[:4])[0] if len(raw) >= 4 else None
        raise ResnetlabError(f"{path} is not an IDX file with magic number {magic} (found {found}): delete it and run again")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(torch.tensor(shape).prod())
    if len(raw) != expected:
        raise ResnetlabError(
            f"{path} holds {len(raw)} bytes but its header {list(shape)} needs {expected}: "
            f"the file is truncated or corrupt; delete it and run again"
        )
    if expected == header:  # a dimension of size 0: torch.frombuffer refuses an empty buffer
        return torch.zeros(shape, dtype=torch.uint8)
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(shape)


def read_split(images_path: Path, labels_path: Path, num_classes: int) -> ImageSet:
    images = read_idx(images_path, IMAGES_MAGIC)  # (N, H, W)
    if images.shape[0] == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise ResnetlabError(f"{images_path} holds no images (header {list(images.shape)}): delete it and run again")
    labels = read_idx(labels_path, LABELS_MAGIC)  # (N,)
    if len(images) != len(labels):
        raise ResnetlabError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    labels = checked_labels(labels.numpy(), num_classes, labels_path, len(images))
    return ImageSet(images.unsqueeze(1).contiguous(), labels)  # (N, 1, H, W)


def find_or_download(spec: IdxDataset, data_dir: Path | None, options: SourceOptions) -> Path:
    """The folder holding all four files: the cache, a system folder, or a fresh download."""
    cache = cache_root(data_dir) / spec.name
    candidates = [cache] + ([Path(data_dir)] if data_dir else []) + [Path(d) for d in spec.system_dirs]
    for folder in candidates:
        if all((folder / name).is_file() for name in spec.md5):
            return folder
    if not options.download:
        raise ResnetlabError(
            f"{spec.name} files not found in {', '.join(map(str, candidates))}: "
            f"allow downloading or copy {', '.join(spec.md5)} into {cache}"
        )
    for name, md5 in spec.md5.items():
        if not (cache / name).is_file():
            download([mirror + name for mirror in spec.mirrors], cache / name, md5)
    return cache


def load_idx_dataset(spec: IdxDataset, data_dir: Path | None, options: SourceOptions) -> RawDataset:
    folder = find_or_download(spec, data_dir, options)
    splits = {split: read_split(folder / images, folder / labels, len(spec.classes)) for split, (images, labels) in FILES.items()}
    return RawDataset(list(spec.classes), splits["train"], splits["test"], str(folder))


# The spec is read when a load starts, so a test can point it at a local archive.
register_source("mnist", "handwritten digits, 28x28 grayscale, official gzipped IDX files")(
    lambda data_dir, options: load_idx_dataset(MNIST, data_dir, options))
register_source("fashion-mnist", "Zalando clothing, 28x28 grayscale, official gzipped IDX files")(
    lambda data_dir, options: load_idx_dataset(FASHION_MNIST, data_dir, options))
