"""Data fixtures: tiny archives in exactly the official formats, image folders, a stub server."""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import pickle
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def own_data_cache(data_cache: Path) -> Path:
    """Every data test gets its own empty cache folder (``data_cache``; never ~/.cache/resnetlab)."""
    return data_cache


def cifar_pixels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def _pickle_member(tar: tarfile.TarFile, name: str, obj: object) -> None:
    data = pickle.dumps(obj, protocol=2)  # the official batches are protocol-2 pickles
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_cifar10_tarball(path: Path, per_batch: int = 20) -> dict:
    """``cifar-10-python.tar.gz`` layout: cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}."""
    expected = {"train": [], "train_labels": [], "test": None, "test_labels": None}
    with tarfile.open(path, "w:gz") as tar:
        _pickle_member(tar, "cifar-10-batches-py/batches.meta", {
            b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_cases_per_batch": per_batch, b"num_vis": 3072})
        for i in range(1, 7):
            name = f"data_batch_{i}" if i < 6 else "test_batch"
            data = cifar_pixels(per_batch, seed=i)
            labels = [int(v) for v in np.random.default_rng(100 + i).integers(0, 10, per_batch)]
            _pickle_member(tar, f"cifar-10-batches-py/{name}", {
                b"batch_label": f"{name} of 6".encode(), b"labels": labels, b"data": data,
                b"filenames": [f"img_{i}_{k}.png".encode() for k in range(per_batch)]})
            if i < 6:
                expected["train"].append(data)
                expected["train_labels"] += labels
            else:
                expected["test"], expected["test_labels"] = data, labels
    expected["train"] = np.concatenate(expected["train"])
    return expected


def make_cifar100_tarball(path: Path, n: int = 30) -> dict:
    """``cifar-100-python.tar.gz`` layout: cifar-100-python/{train, test, meta} with fine/coarse labels."""
    rng = np.random.default_rng(7)
    out = {}
    with tarfile.open(path, "w:gz") as tar:
        _pickle_member(tar, "cifar-100-python/meta", {
            b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
        for split in ("train", "test"):
            data, fine = cifar_pixels(n, seed=len(split)), [int(v) for v in rng.integers(0, 100, n)]
            _pickle_member(tar, f"cifar-100-python/{split}", {
                b"filenames": [b"x.png"] * n, b"batch_label": b"training batch 1 of 1", b"fine_labels": fine,
                b"coarse_labels": [f // 5 for f in fine], b"data": data})
            out[split], out[f"{split}_labels"] = data, fine
    return out


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_idx_files(folder: Path, n_train: int = 50, n_test: int = 20) -> dict:
    """The four official gzipped IDX files (magic 2051 images, 2049 labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
        out[prefix] = (images, labels)
    return out


@pytest.fixture
def http_root(tmp_path: Path):
    """A stub HTTP server on 127.0.0.1 serving ``tmp_path/www``; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass
