"""Photo folders: detection, the cache at the evaluation resize, every mode, bad files."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from resnetlab.cli import main
from resnetlab.data import decode, load_dataset
from resnetlab.data.decode import rgb_image
from resnetlab.data.photos import PhotoSet, eval_resize
from resnetlab.errors import ResnetlabError
from tests.builders import make_photo_folder, write_photo


def test_mixed_photos_are_a_photo_folder_cached_at_the_evaluation_resize(photo_folder) -> None:
    bundle = load_dataset("folder", photo_folder, image_size=64)
    assert bundle.pipeline == "photos" and isinstance(bundle.train, PhotoSet)
    assert bundle.image_shape == (3, 64, 64) and len(bundle.train) == 16 and len(bundle.test) == 16
    assert eval_resize(224) == 256 and eval_resize(64) == 73
    # every photo kept its aspect ratio, its shorter side resized to 73 (as torchvision's Resize(73) computes the longer one)
    for i in range(len(bundle.train)):
        c, h, w = bundle.train.shapes[i].tolist()
        assert c == 3 and min(h, w) == 73
    first = bundle.train.shapes[0].tolist()  # 000.jpg of "ant": 120x90
    assert first == [3, 73, int(73 * 120 / 90)]


def test_default_crop_is_224_and_info_says_why(photo_folder, capsys) -> None:
    assert main(["data", "info", "--dataset", "folder", "--data-dir", str(photo_folder), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["pipeline"] == "photos" and info["image_shape"] == [3, 224, 224]
    assert "sizes" in info["pipeline_reason"]


def test_small_images_of_one_size_keep_the_small_path(tmp_path) -> None:
    root = tmp_path / "thumbs"
    for split in ("train", "test"):
        for c in ("a", "b"):
            for k in range(3):
                write_photo(root / split / c / f"{k}.png", 32, 32, "RGB", "PNG", seed=k)
    bundle = load_dataset("folder", root)
    assert bundle.pipeline == "small" and bundle.image_shape == (3, 32, 32)
    assert bundle.train.images.shape == (6, 3, 32, 32)


def test_cache_holds_the_pixels_predict_computes(photo_folder) -> None:
    """The cached photo equals PIL's Resize(73) of the converted file: what predict's transform does."""
    from torchvision import transforms

    bundle = load_dataset("folder", photo_folder, image_size=64)
    path = sorted((photo_folder / "train" / "ant").iterdir())[0]
    with Image.open(path) as image:
        expected = np.asarray(transforms.Resize(73)(image.convert("RGB")))
    assert torch.equal(bundle.train.image(0).permute(1, 2, 0), torch.from_numpy(expected.copy()))


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path) -> None:
    path = tmp_path / "deep.png"
    wide = np.array([[1000, 60000, 65535, 0]], dtype=np.uint16)
    Image.fromarray(wide).save(path)
    assert Image.open(path).mode.startswith("I")
    with Image.open(path) as image:
        pixels = np.asarray(rgb_image(image))
    assert pixels[0, :, 0].tolist() == [4, 233, 255, 0]  # round(v * 255 / 65535); clipping gave 255 for both
    assert decode.decode_small_image(str(path), None)[0, :, 0].tolist() == [4, 233, 255, 0]  # the small-image path too


def jpeg_claiming(path, width: int, height: int) -> None:
    """A small real JPEG whose header claims another size: a decompression bomb's header."""
    Image.new("RGB", (16, 16), (10, 20, 30)).save(path, "JPEG")
    raw = bytearray(path.read_bytes())
    sof = raw.index(b"\xff\xc0")
    raw[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path.write_bytes(bytes(raw))


def test_decompression_bombs_are_refused_jpeg_and_png(photo_folder, monkeypatch) -> None:
    jpeg_claiming(photo_folder / "train" / "ant" / "bomb.jpg", 20000, 20000)  # 2.1 GB if decoded; the file is tiny
    with pytest.raises(ResnetlabError, match=r"bomb\.jpg.*(pixel limit|decompression bomb)"):
        load_dataset("folder", photo_folder, image_size=32)
    (photo_folder / "train" / "ant" / "bomb.jpg").unlink()
    monkeypatch.setattr(decode, "MAX_PIXELS", 11_000)  # a PNG just over a (lowered) limit; the others are under
    write_photo(photo_folder / "train" / "bee" / "big.png", 120, 100, "RGB", "PNG", seed=3)
    with pytest.raises(ResnetlabError, match=r"big\.png.*pixel limit"):
        load_dataset("folder", photo_folder, image_size=32)
    bundle = load_dataset("folder", photo_folder, image_size=32, skip_bad_images=True)
    assert len(bundle.train) == 16  # the bomb named and left out, nothing else lost


def test_unreadable_photo_is_named_and_skipped_on_request(photo_folder) -> None:
    (photo_folder / "train" / "bee" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(ResnetlabError) as caught:  # the command line's spelling of the options
        load_dataset("folder", photo_folder, image_size=32)
    assert re.search(r"broken\.jpg.*--skip-bad-images", caught.value.for_command_line())
    assert len(load_dataset("folder", photo_folder, image_size=32, skip_bad_images=True).train) == 16


def test_train_and_val_classes_must_agree(photo_folder) -> None:
    write_photo(photo_folder / "train" / "wasp" / "0.jpg", 80, 60, "RGB", "JPEG", seed=1)
    with pytest.raises(ResnetlabError, match=r"different classes.*only in train: \['wasp'\]"):
        load_dataset("folder", photo_folder, image_size=32)


def test_links_in_loops_dangling_links_and_fifos_are_passed_over(photo_folder) -> None:
    ant = photo_folder / "train" / "ant"
    os.symlink(photo_folder / "train", ant / "loop")  # a folder link back to a parent: read once, not forever
    os.symlink(photo_folder / "nowhere.jpg", ant / "dangling.jpg")
    os.mkfifo(ant / "pipe.jpg")  # would hang a decoder
    bundle = load_dataset("folder", photo_folder, image_size=32)
    assert len(bundle.train) == 16 and bundle.train.labels.tolist() == [0] * 8 + [1] * 8  # the link back to train/ not entered
    assert [entry.split(" (")[0] for entry in bundle.extra["passed_over"]] == [str(ant / n) for n in ("loop", "dangling.jpg", "pipe.jpg")]


def test_a_damaged_cache_is_rebuilt(photo_folder, data_cache) -> None:
    first = load_dataset("folder", photo_folder, image_size=32)
    caches = list(data_cache.rglob("train-*.pt"))
    assert len(caches) == 1
    caches[0].write_bytes(caches[0].read_bytes()[:100])  # cut off
    again = load_dataset("folder", photo_folder, image_size=32)
    assert torch.equal(again.train.pixels, first.train.pixels)


def test_memory_budget_without_streaming_refuses_before_decoding(photo_folder, data_cache) -> None:
    with pytest.raises(ResnetlabError) as caught:  # the command line's spelling of the options
        load_dataset("folder", photo_folder, image_size=224, memory_budget=1000, stream=False)
    assert re.search(r"GiB decoded at a shorter side of 256 px, budget 0\.0 GiB.*--memory-budget-gb.*--stream",
                     caught.value.for_command_line())
    assert not list(data_cache.rglob("*.pt"))  # nothing was decoded


def test_validation_split_and_subset_of_photos(tmp_path) -> None:
    root = make_photo_folder(tmp_path / "p", per_class=10)
    bundle = load_dataset("folder", root, image_size=32, val_split=4, subset=10)
    assert len(bundle.val) == 4 and len(bundle.train) == 10
    c, h, w = bundle.val.shapes[0].tolist()
    assert bundle.val.image(0).shape == (c, h, w) and min(h, w) == eval_resize(32)
