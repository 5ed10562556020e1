"""CIFAR-10 and CIFAR-100 from the official python archives.

The archive is downloaded (or found) in the cache folder, verified against its published MD5,
extracted safely, and each batch is read with an unpickler that admits only what the official
files contain: dicts, lists, bytes/str, ints and numpy uint8 arrays. A pickle can run any code
it names, so a tampered batch must not be able to name anything else.
"""

from __future__ import annotations

import codecs
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from resnetlab.data.archive import extract_tar
from resnetlab.data.download import cache_root, download, verify_md5
from resnetlab.data.labels import checked_labels
from resnetlab.data.sources import RawDataset, SourceOptions, register_source
from resnetlab.data.types import ImageSet
from resnetlab.errors import ResnetlabError

try:  # numpy >= 2 moved the internals that pickled arrays name
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

# The only globals an official batch names. numpy arrays pickle as _reconstruct(ndarray, ...)
# plus a dtype; Python 3 writers of protocol-2 pickles encode bytes through _codecs.encode.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ``ALLOWED_GLOBALS``; anything else is refused."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch") from None


def read_batch(path: Path) -> dict:
    """One official batch file as a dict with bytes keys (``b"data"``, ``b"labels"``, ...)."""
    try:
        with open(path, "rb") as f:
            batch = RestrictedUnpickler(io.BufferedReader(f), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise ResnetlabError(f"{path} is not an official CIFAR batch ({exc}): delete the folder and run again") from None
    except OSError as exc:
        raise ResnetlabError(f"cannot read {path} ({exc})") from None
    if not isinstance(batch, dict):
        raise ResnetlabError(f"{path} is not an official CIFAR batch (a {type(batch).__name__}, not a dict)")
    return batch


@dataclass(frozen=True)
class CifarArchive:
    """One official archive: address, published MD5, member names and pickle keys."""

    url: str
    filename: str
    md5: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: bytes
    names_key: bytes


CIFAR10 = CifarArchive(
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    filename="cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    label_key=b"labels",
    names_key=b"label_names",
)
CIFAR100 = CifarArchive(
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    filename="cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    label_key=b"fine_labels",  # the 100 classes; b"coarse_labels" holds the 20 superclasses
    names_key=b"fine_label_names",
)


def read_split(folder: Path, files: tuple[str, ...], label_key: bytes, num_classes: int) -> ImageSet:
    images, labels = [], []
    for name in files:
        batch = read_batch(folder / name)
        data, batch_labels = batch.get(b"data"), batch.get(label_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 \
                or batch_labels is None:
            raise ResnetlabError(f"{folder / name} lacks uint8 b'data' (N, 3072) with matching {label_key!r}: "
                                  "delete the folder and run again")
        images.append(data.reshape(-1, 3, 32, 32))  # rows are R (1024), G (1024), B (1024) planes
        labels.append(checked_labels(batch_labels, num_classes, folder / name, len(data)))
    if not sum(len(batch) for batch in images):
        raise ResnetlabError(f"{folder / files[0]} holds no images: delete the folder and run again")
    return ImageSet(torch.from_numpy(np.concatenate(images)), torch.cat(labels))


def prepare(spec: CifarArchive, data_dir: Path | None, options: SourceOptions) -> Path:
    """The extracted folder: used as is if present, else extracted from a verified archive."""
    root = cache_root(data_dir)
    folder, archive = root / spec.folder, root / spec.filename
    if folder.is_dir():
        return folder
    if archive.is_file():
        verify_md5(archive, spec.md5)
    elif options.download:
        download([spec.url], archive, spec.md5)
    else:
        raise ResnetlabError(f"{spec.filename} not found in {root}: allow downloading or copy the official archive there")
    return extract_tar(archive, root, spec.folder)


def load_cifar(spec: CifarArchive, data_dir: Path | None, options: SourceOptions) -> RawDataset:
    folder = prepare(spec, data_dir, options)
    meta = read_batch(folder / spec.meta_file)
    names = meta.get(spec.names_key)
    if not isinstance(names, list):
        raise ResnetlabError(f"{folder / spec.meta_file} has no {spec.names_key!r} list: delete the folder and run again")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    train = read_split(folder, spec.train_files, spec.label_key, len(classes))
    test = read_split(folder, spec.test_files, spec.label_key, len(classes))
    return RawDataset(classes, train, test, str(folder))


# The spec is read when a load starts, so a test can point it at a local archive.
register_source("cifar10", "CIFAR-10, 32x32 RGB, 10 classes, official python archive")(
    lambda data_dir, options: load_cifar(CIFAR10, data_dir, options))
register_source("cifar100", "CIFAR-100, 32x32 RGB, 100 classes, official python archive")(
    lambda data_dir, options: load_cifar(CIFAR100, data_dir, options))
