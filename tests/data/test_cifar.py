"""CIFAR archives: download, checksum, safe extraction, restricted unpickling, parsing."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from resnetlab.data import cifar, load_dataset
from resnetlab.errors import ResnetlabError
from tests.builders import CIFAR10_CLASSES, make_cifar10_tarball, make_cifar100_tarball


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def serve_cifar10(monkeypatch: pytest.MonkeyPatch, archive: Path, url: str, checksum: str | None = None) -> None:
    spec = dataclasses.replace(cifar.CIFAR10, url=url, md5=checksum or md5(archive))
    monkeypatch.setattr(cifar, "CIFAR10", spec)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_official_urls_and_checksums() -> None:
    assert cifar.CIFAR10.url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert cifar.CIFAR10.md5 == "c58f30108f718f92721af3b95e74349a"
    assert cifar.CIFAR100.url == "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    assert cifar.CIFAR100.md5 == "eb9058c3a382ffc7106e4002c42a8d85"


def test_cifar10_download_from_file_url_and_parse(tmp_path, monkeypatch, data_cache) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    expected = make_cifar10_tarball(archive)
    serve_cifar10(monkeypatch, archive, archive.as_uri())
    bundle = load_dataset("cifar10")
    assert bundle.classes == CIFAR10_CLASSES
    assert bundle.image_shape == (3, 32, 32)
    assert len(bundle.train) == 100 and len(bundle.test) == 20
    # rows are 1024 red, 1024 green, 1024 blue values in row-major order
    assert torch.equal(bundle.train.images[7, 1, 2, 5], torch.tensor(expected["train"][7, 1024 + 2 * 32 + 5]))
    assert torch.equal(bundle.train.images.reshape(100, -1), torch.from_numpy(expected["train"]))
    assert bundle.train.labels.tolist() == expected["train_labels"]
    assert bundle.test.labels.tolist() == expected["test_labels"]
    assert (data_cache / "cifar-10-python.tar.gz").is_file()
    assert bundle.location == str(data_cache / "cifar-10-batches-py")
    assert not [p for p in leftovers(data_cache) if p.endswith(".part")]
    mean = expected["train"].reshape(100, 3, -1).transpose(1, 0, 2).reshape(3, -1).mean(1) / 255
    assert bundle.mean == pytest.approx(mean.tolist(), abs=1e-9)


def test_cifar10_download_from_local_http_server(tmp_path, monkeypatch, http_root, data_cache) -> None:
    www, base = http_root
    expected = make_cifar10_tarball(www / "cifar-10-python.tar.gz")
    serve_cifar10(monkeypatch, www / "cifar-10-python.tar.gz", base + "cifar-10-python.tar.gz")
    bundle = load_dataset("cifar10", tmp_path / "explicit")
    assert bundle.location == str(tmp_path / "explicit" / "cifar-10-batches-py")
    assert bundle.test.labels.tolist() == expected["test_labels"]
    assert not data_cache.exists()  # data_dir wins over $RESNETLAB_DATA


def test_present_archive_and_folder_are_used_without_download(tmp_path, monkeypatch, data_cache) -> None:
    data_cache.mkdir()
    make_cifar10_tarball(data_cache / "cifar-10-python.tar.gz")
    serve_cifar10(monkeypatch, data_cache / "cifar-10-python.tar.gz", "http://127.0.0.1:9/unreachable")
    first = load_dataset("cifar10", download=False)
    (data_cache / "cifar-10-python.tar.gz").unlink()  # the extracted folder alone is enough
    second = load_dataset("cifar10", download=False)
    assert torch.equal(first.train.images, second.train.images)


def test_checksum_mismatch_keeps_nothing(tmp_path, monkeypatch, data_cache) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    make_cifar10_tarball(archive)
    serve_cifar10(monkeypatch, archive, archive.as_uri(), checksum="0" * 32)
    with pytest.raises(ResnetlabError, match="checksum mismatch for cifar-10-python.tar.gz"):
        load_dataset("cifar10")
    assert leftovers(data_cache) == []


def test_wrong_checksum_of_archive_already_in_cache(tmp_path, monkeypatch, data_cache) -> None:
    data_cache.mkdir()
    make_cifar10_tarball(data_cache / "cifar-10-python.tar.gz")
    serve_cifar10(monkeypatch, data_cache / "cifar-10-python.tar.gz", "file:///nowhere", checksum="1" * 32)
    with pytest.raises(ResnetlabError, match="Delete the file"):
        load_dataset("cifar10")


def test_unreachable_url_and_no_download(tmp_path, monkeypatch, data_cache) -> None:
    serve_cifar10(monkeypatch, Path(__file__), (tmp_path / "missing.tar.gz").as_uri())
    with pytest.raises(ResnetlabError, match="could not download cifar-10-python.tar.gz"):
        load_dataset("cifar10")
    with pytest.raises(ResnetlabError, match="not found in"):
        load_dataset("cifar10", download=False)
    assert not [p for p in leftovers(data_cache) if p.endswith(".part")]


def test_truncated_archive_extracts_nothing(tmp_path, monkeypatch, data_cache) -> None:
    full = tmp_path / "full.tar.gz"
    make_cifar10_tarball(full)
    data_cache.mkdir()
    truncated = data_cache / "cifar-10-python.tar.gz"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    serve_cifar10(monkeypatch, truncated, "file:///nowhere")
    with pytest.raises(ResnetlabError, match="truncated or corrupt"):
        load_dataset("cifar10")
    assert leftovers(data_cache) == ["cifar-10-python.tar.gz"]


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/evil-abs.txt", "cifar-10-batches-py/../../evil.txt"])
def test_member_outside_target_is_refused(tmp_path, monkeypatch, data_cache, member) -> None:
    data_cache.mkdir()
    archive = data_cache / "cifar-10-python.tar.gz"
    make_cifar10_tarball(tmp_path / "good.tar.gz")
    with tarfile.open(tmp_path / "good.tar.gz") as good, tarfile.open(archive, "w:gz") as bad:
        for m in good.getmembers():
            bad.addfile(m, good.extractfile(m))
        evil = tarfile.TarInfo(member)
        evil.size = 4
        bad.addfile(evil, io.BytesIO(b"evil"))
    serve_cifar10(monkeypatch, archive, "file:///nowhere")
    with pytest.raises(ResnetlabError, match="outside its folder: refusing"):
        load_dataset("cifar10")
    assert leftovers(data_cache) == ["cifar-10-python.tar.gz"]
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil-abs.txt").exists()


def test_symlink_leaving_target_is_refused(tmp_path, monkeypatch, data_cache) -> None:
    data_cache.mkdir()
    archive = data_cache / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as bad:
        link = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        bad.addfile(link)
    serve_cifar10(monkeypatch, archive, "file:///nowhere")
    with pytest.raises(ResnetlabError, match="link target"):
        load_dataset("cifar10")


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_restricted_unpickler_refuses_code(tmp_path) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Exploit(), b"labels": [0]}, protocol=2))
    with pytest.raises(ResnetlabError, match="global posix.system is not allowed"):
        cifar.read_batch(path)
    assert not (Path.cwd() / "pwned").exists()
    path.write_bytes(pickle.dumps({b"data": collections.OrderedDict()}, protocol=2))  # harmless, but not official
    with pytest.raises(ResnetlabError, match="collections.OrderedDict is not allowed"):
        cifar.read_batch(path)


def test_restricted_unpickler_admits_official_content(tmp_path) -> None:
    path = tmp_path / "batch"
    original = {b"data": np.arange(3072 * 2, dtype=np.uint8).reshape(2, 3072), b"labels": [3, 4], b"batch_label": b"x"}
    for protocol in (2, 4):
        path.write_bytes(pickle.dumps(original, protocol=protocol))
        loaded = cifar.read_batch(path)
        assert loaded[b"labels"] == [3, 4] and np.array_equal(loaded[b"data"], original[b"data"])


def test_cifar100_fine_labels(tmp_path, monkeypatch, data_cache) -> None:
    archive = tmp_path / "cifar-100-python.tar.gz"
    expected = make_cifar100_tarball(archive)
    monkeypatch.setattr(cifar, "CIFAR100", dataclasses.replace(cifar.CIFAR100, url=archive.as_uri(), md5=md5(archive)))
    bundle = load_dataset("cifar100", val_split=10, seed=1)
    assert bundle.num_classes == 100 and bundle.classes[:2] == ["fine0", "fine1"]
    assert len(bundle.train) == 20 and len(bundle.val) == 10 and len(bundle.test) == 30
    assert bundle.test.labels.tolist() == expected["test_labels"]
    assert sorted(bundle.train.labels.tolist() + bundle.val.labels.tolist()) == sorted(expected["train_labels"])
