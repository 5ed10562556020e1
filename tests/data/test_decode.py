"""Reading image files: every reader raises the one error, naming the file, for a file that is no image."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from resnetlab.data import decode
from resnetlab.data.decode import UnreadableImage
from resnetlab.data.device_decode import read_photo
from resnetlab.errors import ResnetlabError

READERS = {
    "decode_photo": lambda path: decode.decode_photo(path, 8),
    "decode_small_image": lambda path: decode.decode_small_image(path, None),
    "open_rgb": decode.open_rgb,
    "header_size": decode.header_size,
    "read_photo": lambda path: read_photo(str(path), 8),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("content", [b"not an image", b"\xff\xd8\xff truncated JPEG", b"\x89PNG\r\n\x1a\n truncated"])
def test_every_reader_raises_unreadable_image_naming_the_file(tmp_path, reader, content) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(UnreadableImage) as caught:
        READERS[reader](path)
    assert isinstance(caught.value, ResnetlabError) and caught.value.path == str(path)
    assert caught.value.named == f"{path} ({caught.value.reason})" and caught.value.reason.startswith(type(caught.value.error).__name__)
    assert str(caught.value) == f"cannot read image {path} ({caught.value.reason}): fix or remove it"


def test_a_photo_is_decoded_as_rgb_at_its_shorter_side_channels_last(tmp_path) -> None:
    Image.new("P", (40, 20), 7).save(tmp_path / "palette.png")
    pixels = decode.decode_photo(tmp_path / "palette.png", 10)
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 10, 20) and pixels.permute(1, 2, 0).is_contiguous()
    assert decode.header_size(tmp_path / "palette.png") == (40, 20)


def test_a_decompression_bomb_is_unreadable_from_its_header(tmp_path, monkeypatch) -> None:
    Image.new("RGB", (30, 30)).save(tmp_path / "big.png")
    monkeypatch.setattr(decode, "MAX_PIXELS", 899)
    with pytest.raises(UnreadableImage, match=r"big\.png \(DecompressionBombError: 30x30 pixels is over the 899-pixel limit"):
        decode.header_size(tmp_path / "big.png")
    assert decode.survey_orientation([str(tmp_path / "big.png")], "ignore")["checked"] == 0  # counted where it is decoded
