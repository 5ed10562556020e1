"""IDX files: magic numbers, parsing, mirrors, system folder, and the real Fashion-MNIST."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib

import numpy as np
import pytest
import torch

from resnetlab.data import load_dataset, mnist
from resnetlab.errors import ResnetlabError
from tests.builders import make_idx_files, write_idx


def test_official_mnist_tables_match_torchvision() -> None:
    from torchvision.datasets import MNIST, FashionMNIST

    assert mnist.MNIST.md5 == dict(MNIST.resources)
    assert mnist.FASHION_MNIST.md5 == dict(FashionMNIST.resources)
    assert sorted(mnist.MNIST.mirrors) == sorted(MNIST.mirrors)  # torchvision 0.19 tries LeCun's site first; we never do
    assert mnist.MNIST.mirrors[0].startswith("https://")
    assert list(mnist.FASHION_MNIST.classes) == FashionMNIST.classes


def test_download_tries_mirrors_and_parses(http_root, monkeypatch, data_cache) -> None:
    www, base = http_root
    expected = make_idx_files(www)
    sums = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in www.iterdir()}
    spec = dataclasses.replace(mnist.MNIST, mirrors=(base + "missing/", base), md5=sums)
    monkeypatch.setattr(mnist, "MNIST", spec)
    bundle = load_dataset("mnist")
    assert bundle.classes == [str(d) for d in range(10)]
    assert bundle.image_shape == (1, 28, 28) and len(bundle.train) == 50 and len(bundle.test) == 20
    assert torch.equal(bundle.train.images[:, 0], torch.from_numpy(expected["train"][0]))
    assert bundle.test.labels.tolist() == expected["t10k"][1].tolist()
    assert sorted(p.name for p in (data_cache / "mnist").iterdir()) == sorted(sums)


def test_checksum_mismatch_keeps_nothing(http_root, monkeypatch, data_cache) -> None:
    www, base = http_root
    make_idx_files(www)
    spec = dataclasses.replace(mnist.MNIST, mirrors=(base,), md5={name: "0" * 32 for name in mnist.MNIST.md5})
    monkeypatch.setattr(mnist, "MNIST", spec)
    with pytest.raises(ResnetlabError, match="checksum mismatch for train-images-idx3-ubyte.gz"):
        load_dataset("mnist")
    assert list((data_cache / "mnist").iterdir()) == []


def test_files_in_data_dir_are_used_without_download(tmp_path) -> None:
    make_idx_files(tmp_path / "mine")
    bundle = load_dataset("mnist", tmp_path / "mine", download=False)
    assert bundle.location == str(tmp_path / "mine") and len(bundle.train) == 50
    with pytest.raises(ResnetlabError, match="mnist files not found"):
        load_dataset("mnist", tmp_path / "empty", download=False)


@pytest.mark.parametrize("damage", ["magic", "truncated", "not-gzip", "count"])
def test_bad_idx_files(tmp_path, damage) -> None:
    folder = tmp_path / "mnist"
    make_idx_files(folder)
    images = folder / "train-images-idx3-ubyte.gz"
    if damage == "magic":
        write_idx(images, np.zeros((50, 28, 28)), 2049)
    elif damage == "truncated":
        raw = gzip.decompress(images.read_bytes())
        images.write_bytes(gzip.compress(raw[:-100]))
    elif damage == "not-gzip":
        images.write_bytes(b"<html>not found</html>")
    else:
        write_idx(images, np.zeros((49, 28, 28)), 2051)
    message = {"magic": "magic number 2051 \\(found 2049\\)", "truncated": "truncated or corrupt",
               "not-gzip": "not a readable gzip file", "count": "50 labels"}[damage]
    with pytest.raises(ResnetlabError, match=message):
        load_dataset("mnist", tmp_path, download=False)


def test_real_fashion_mnist_from_debian_package(fashion_mnist_dir, tmp_path) -> None:
    bundle = load_dataset("fashion-mnist", tmp_path / "empty-cache", download=False)
    assert bundle.location == str(fashion_mnist_dir)
    assert len(bundle.train) == 60_000 and len(bundle.test) == 10_000
    assert bundle.image_shape == (1, 28, 28)
    assert bundle.classes[0] == "T-shirt/top" and bundle.classes[9] == "Ankle boot"
    assert torch.bincount(bundle.train.labels).tolist() == [6000] * 10
    assert torch.bincount(bundle.test.labels).tolist() == [1000] * 10
    assert bundle.mean[0] == pytest.approx(0.2860, abs=1e-4) and bundle.std[0] == pytest.approx(0.3530, abs=1e-4)
    assert bundle.train.labels[:3].tolist() == [9, 0, 0]  # the official file starts with an ankle boot
