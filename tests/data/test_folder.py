"""Image folders: layout, colour modes, resizing, bad input, the decode cache, class indices."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from resnetlab.data import decode, folder, load_dataset
from resnetlab.data.layout import read_layout
from resnetlab.errors import ResnetlabError
from tests.builders import make_image_folder


def test_loads_layout_in_sorted_class_order(tmp_path) -> None:
    root = make_image_folder(tmp_path / "flowers", classes=("tulip", "daisy", "rose"))
    bundle = load_dataset("folder", root)
    assert bundle.classes == ["daisy", "rose", "tulip"]
    assert bundle.image_shape == (3, 8, 8) and len(bundle.train) == 12 and len(bundle.test) == 12
    assert bundle.train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # daisy was written as class index 1 ("tulip", "daisy", "rose"): pixel (20 + k, 21 + k, 22 + k)
    assert bundle.train.images[1, :, 0, 0].tolist() == [21, 22, 23]
    assert "class_indices" not in bundle.extra and not list(Path(bundle.extra["cache"]).glob("*.json"))  # reading writes none
    assert bundle.location == str(root.resolve())


def test_val_folder_instead_of_test(tmp_path) -> None:
    root = make_image_folder(tmp_path / "d", splits=("train", "val"))
    assert len(load_dataset("folder", root).test) == 12


def test_grayscale_only_folder_keeps_one_channel(tmp_path) -> None:
    bundle = load_dataset("folder", make_image_folder(tmp_path / "g", mode="L"))
    assert bundle.image_shape == (1, 8, 8) and len(bundle.mean) == 1


def test_grayscale_and_rgba_become_rgb_beside_colour_images(tmp_path) -> None:
    root = make_image_folder(tmp_path / "m", mode="RGB")
    Image.new("L", (8, 8), 77).save(root / "train" / "cat" / "gray.png")
    Image.new("RGBA", (8, 8), (1, 2, 3, 0)).save(root / "train" / "dog" / "alpha.png")
    bundle = load_dataset("folder", root)
    assert bundle.image_shape == (3, 8, 8) and len(bundle.train) == 14
    by_label = bundle.train.images[bundle.train.labels == 0]
    assert any(img[:, 0, 0].tolist() == [77, 77, 77] for img in by_label)
    assert any(img[:, 0, 0].tolist() == [1, 2, 3] for img in bundle.train.images[bundle.train.labels == 1])


def test_different_sizes_make_a_photo_folder(tmp_path) -> None:
    root = make_image_folder(tmp_path / "s", size=8)
    Image.new("RGB", (12, 10)).save(root / "train" / "cat" / "big.png")
    bundle = load_dataset("folder", root)
    assert bundle.pipeline == "photos" and bundle.image_shape == (3, 224, 224)  # --image-size is then the crop side
    assert load_dataset("folder", root, image_size=16).image_shape == (3, 16, 16)
    with pytest.raises(ResnetlabError, match="one crop side"):
        load_dataset("folder", root, image_size=(6, 10))


def test_small_images_of_several_sizes_resize_when_asked(tmp_path) -> None:
    """A folder sampled as one small size that turns out mixed keeps --image-size's resize meaning."""
    root = make_image_folder(tmp_path / "s", size=8)
    Image.new("RGB", (9, 9)).save(root / "train" / "cat" / "odd.png")
    monkey_sample = folder.DETECT_SAMPLE
    folder.DETECT_SAMPLE = 2  # read two headers only: both 8x8
    try:
        assert folder.detect_pipeline(read_layout(root).train)[0] == "small"
        assert load_dataset("folder", root, image_size=(6, 10)).image_shape == (3, 6, 10)
        assert load_dataset("folder", root).pipeline == "photos"  # without --image-size the mixed sizes make it photos
    finally:
        folder.DETECT_SAMPLE = monkey_sample


@pytest.mark.parametrize("content", [b"this is not an image", b"\x89PNG\r\n\x1a\n truncated"])
def test_bad_image_is_named_and_can_be_skipped(tmp_path, content) -> None:
    root = make_image_folder(tmp_path / "b")
    bad = root / "train" / "dog" / "broken.png"
    bad.write_bytes(content)
    with pytest.raises(ResnetlabError) as caught:  # the command line's spelling of the options
        load_dataset("folder", root)
    assert re.search(f"cannot read 1 image.*{bad}.*--skip-bad-images", caught.value.for_command_line())
    bundle = load_dataset("folder", root, skip_bad_images=True)
    assert len(bundle.train) == 12
    with pytest.raises(ResnetlabError, match="broken.png"):  # the cached result still refuses without the flag
        load_dataset("folder", root)


def test_truncated_jpeg_is_a_bad_image(tmp_path) -> None:
    root = make_image_folder(tmp_path / "j", ext="jpg")
    victim = root / "test" / "fox" / "001.jpg"
    victim.write_bytes(victim.read_bytes()[:120])
    with pytest.raises(ResnetlabError, match="001.jpg"):
        load_dataset("folder", root)


def test_data_errors_raised_in_python_name_keywords_and_the_command_line_names_flags(tmp_path) -> None:
    with pytest.raises(ResnetlabError) as caught:
        load_dataset("folder", tmp_path / "nothing")
    assert str(caught.value) == (f"image folder {tmp_path / 'nothing'} does not exist: pass data_dir=DIR with DIR/train/<class>/ "
                                 "and DIR/test/<class>/ (or DIR/<class>/ and val_split=FRACTION)")
    assert "pass --data-dir DIR with" in caught.value.for_command_line() and "--val-split FRACTION)" in caught.value.for_command_line()
    root = make_image_folder(tmp_path / "two", classes=("a", "b"), per_class=1, splits=("",))
    with pytest.raises(ResnetlabError) as caught:
        load_dataset("folder", root, val_split=0.9)
    assert str(caught.value).startswith("val_split=0.9 holds out none of the 2 photos")
    assert caught.value.for_command_line().startswith("--val-split 0.9 holds out none of the 2 photos")


def test_bad_layouts(tmp_path) -> None:
    with pytest.raises(ResnetlabError, match="does not exist"):
        load_dataset("folder", tmp_path / "nothing")
    with pytest.raises(ResnetlabError) as caught:  # the command line's spelling of the options
        load_dataset("folder")
    assert re.search("needs --data-dir", caught.value.for_command_line())
    (tmp_path / "no-test" / "train" / "a").mkdir(parents=True)
    with pytest.raises(ResnetlabError, match="has no test/ \\(or val/\\)"):
        load_dataset("folder", tmp_path / "no-test")
    (tmp_path / "flat" / "train").mkdir(parents=True)
    (tmp_path / "flat" / "test").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "train" / "loose.png")
    with pytest.raises(ResnetlabError, match="has no class folders"):
        load_dataset("folder", tmp_path / "flat")


def test_empty_class_folder_is_named(tmp_path) -> None:
    root = make_image_folder(tmp_path / "e")
    (root / "train" / "emu").mkdir()
    (root / "train" / "emu" / "notes.txt").write_text("no images here")
    with pytest.raises(ResnetlabError, match="emu contain no images"):
        load_dataset("folder", root)


def test_train_and_test_classes_must_match(tmp_path) -> None:
    root = make_image_folder(tmp_path / "c")
    make_image_folder(root, classes=("owl",), splits=("test",))
    with pytest.raises(ResnetlabError, match="different classes .*only in test: \\['owl'\\]"):
        load_dataset("folder", root)


def test_second_load_hits_cache_and_changes_invalidate_it(tmp_path, monkeypatch, data_cache) -> None:
    root = make_image_folder(tmp_path / "k")
    first = load_dataset("folder", root)
    cached = sorted(p.name for p in data_cache.rglob("*.pt"))
    assert len(cached) == 2 and not [p for p in data_cache.rglob("*") if ".tmp" in p.name]

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the folder did not change")

    monkeypatch.setattr(folder, "build_imageset", no_decoding)
    assert torch.equal(load_dataset("folder", root).train.images, first.train.images)
    monkeypatch.undo()
    monkeypatch.setenv("RESNETLAB_DATA", str(data_cache))
    Image.new("RGB", (8, 8), (250, 250, 250)).save(root / "train" / "cat" / "new.png")
    changed = load_dataset("folder", root)
    assert len(changed.train) == 13
    assert len(list(data_cache.rglob("train-*.pt"))) == 1  # the stale cache file was replaced


def test_failed_decode_leaves_no_cache(tmp_path, data_cache) -> None:
    root = make_image_folder(tmp_path / "f", size=8)
    for path in (root / "train").rglob("*.png"):
        path.write_bytes(b"not a png")
    with pytest.raises(ResnetlabError, match="no readable images"):
        load_dataset("folder", root)
    assert not list(data_cache.rglob("*.pt")) and not [p for p in data_cache.rglob("*") if ".tmp" in p.name]


def test_fast_jpeg_path_matches_pil(tmp_path) -> None:
    root = make_image_folder(tmp_path / "p", ext="jpg", mode="RGB")
    Image.new("L", (8, 8), 90).save(root / "train" / "cat" / "gray.jpg")
    for path in sorted((root / "train").rglob("*.jpg")):
        fast = decode._decode_jpeg(str(path), None)
        pil = decode._decode_pil(str(path), None)
        assert fast is not None and (fast.reshape(pil.shape) == pil).all()


@pytest.fixture(scope="module")
def cifar10_jpeg(cifar10_jpeg_dir, tmp_path_factory):
    """The real CIFAR-10 JPEG copy loaded twice into one module-wide cache: (first, second, cache)."""
    cache = tmp_path_factory.mktemp("cifar-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RESNETLAB_DATA", str(cache))
        first = load_dataset("folder", cifar10_jpeg_dir)
        mp.setattr(folder, "build_imageset", lambda *a, **k: pytest.fail("second load decoded the JPEGs again"))
        second = load_dataset("folder", cifar10_jpeg_dir, val_split=5000, seed=0)
    return first, second, cache


@pytest.mark.slow  # real processes or real data: the whole suite runs it, the quick tier does not
def test_real_cifar10_jpeg_copy(cifar10_jpeg) -> None:
    bundle = cifar10_jpeg[0]
    assert bundle.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert len(bundle.train) == 50_000 and len(bundle.test) == 10_000
    assert bundle.image_shape == (3, 32, 32)
    assert torch.bincount(bundle.train.labels).tolist() == [5000] * 10
    assert torch.bincount(bundle.test.labels).tolist() == [1000] * 10
    # CIFAR-10's well-known statistics (JPEG compression moves them by well under 0.005)
    assert bundle.mean == pytest.approx((0.4914, 0.4822, 0.4465), abs=5e-3)
    assert bundle.std == pytest.approx((0.2470, 0.2435, 0.2616), abs=5e-3)


@pytest.mark.slow  # real processes or real data: the whole suite runs it, the quick tier does not
def test_real_cifar10_second_load_uses_cache_and_val_split(cifar10_jpeg) -> None:
    first, second, cache = cifar10_jpeg
    assert len(list(cache.rglob("*.pt"))) == 2
    assert len(second.train) == 45_000 and len(second.val) == 5_000 and len(second.test) == 10_000
    assert torch.equal(second.test.images, first.test.images)
    assert second.mean != first.mean  # statistics come from the 45k training images only


def test_pixels_rewritten_at_the_same_size_and_mtime_are_decoded_again(tmp_path, monkeypatch) -> None:
    """The cache key holds ctime and inode (git's index rule): a stale cache once reported top-1 0.67 for 0.33."""
    import os

    monkeypatch.setenv("RESNETLAB_DATA", str(tmp_path / "cache"))
    root = make_image_folder(tmp_path / "bmp", classes=("a", "b"), per_class=2, ext="bmp")  # BMP: the size is the shape's
    first = load_dataset("folder", root)
    photo = root / "test" / "a" / "000.bmp"
    stat = photo.stat()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(photo)
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same size and modification time as before
    assert (photo.stat().st_size, photo.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    again = load_dataset("folder", root)
    assert first.test.images[0, :, 0, 0].tolist() != [200, 10, 10]
    assert again.test.images[0, :, 0, 0].tolist() == [200, 10, 10]  # decoded again, not the stale cache


def test_the_fingerprint_survives_a_copy_and_a_move(tmp_path) -> None:
    """Resume and eval compare names and sizes: a copied folder (new mtimes, inodes) is the same data."""
    import shutil

    from resnetlab.data.fingerprint import data_changes, data_record

    root = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=3)
    record = data_record(root)
    copy = shutil.copytree(root, tmp_path / "copy", copy_function=shutil.copy)  # shutil.copy: new modification times
    moved = (tmp_path / "d").rename(tmp_path / "moved")
    assert data_changes(record, copy) == [] and data_changes(record, moved) == []
    (copy / "train" / "a" / "000.png").write_bytes(b"other" * 100)
    assert data_changes(record, copy) == ["train/a has other or changed images (same count, 3)"]
