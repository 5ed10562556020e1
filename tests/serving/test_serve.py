"""POST /predict answers with predict's numbers, and bad uploads are refused without harm."""

from __future__ import annotations

import base64
import io
import json
import struct
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pytest
from PIL import Image

from resnetlab.cli import main
from resnetlab.evaluation import Predictor
from resnetlab.serving.app import MAX_UPLOAD_BYTES
from tests.builders import make_checkpoint, write_photo
from tests.serving.conftest import running


def multipart(fields: dict[str, tuple[str | None, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body: name -> (file name, or None for a text field; content)."""
    boundary = "resnetlab-test-boundary"
    parts = []
    for name, (filename, content) in fields.items():
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        kind = "Content-Type: application/octet-stream\r\n" if filename else ""
        parts.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n{kind}\r\n".encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(url: str, body: bytes, content_type: str = "", query: str = "") -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/predict{query}", data=body, method="POST",
                                     headers={"Content-Type": content_type} if content_type else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def upload(url: str, path: Path, query: str = "") -> tuple[int, dict]:
    return post(url, *multipart({"image": (path.name, path.read_bytes())}), query=query)


def bomb_png() -> bytes:
    """A valid 1x1 PNG whose header claims 100000x100000 pixels (a decompression bomb's header)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = struct.pack(">II", 100_000, 100_000) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def assert_same_as_predict(answer: dict, expected: list[dict]) -> None:
    assert [p["index"] for p in answer["predictions"]] == [p["index"] for p in expected]
    for got, want in zip(answer["predictions"], expected):
        assert got["class"] == want["class"] and abs(got["probability"] - want["probability"]) <= 1e-6


def test_predict_endpoint_gives_predicts_numbers(served: tuple[str, Path], tmp_path: Path) -> None:
    url, checkpoint = served
    photo = write_photo(tmp_path / "flower.jpg", 70, 50, "RGB", "JPEG", seed=4)
    status, answer = upload(url, photo)
    assert status == 200 and len(answer["predictions"]) == 4  # every class, as predict lists up to 10
    assert_same_as_predict(answer, Predictor(checkpoint, device="cpu").predict([photo], topk=4)[0]["predictions"])
    status, answer = upload(url, photo, query="?topk=2")
    assert status == 200 and len(answer["predictions"]) == 2


def test_a_photo_model_from_a_model_folder_gives_predicts_numbers(tmp_path: Path) -> None:
    from resnetlab.evaluation import export

    checkpoint = make_checkpoint(tmp_path / "r34.pt", model="resnet34", classes=["a", "b", "c"], input_size=(3, 64, 64),
                                 preprocess={"pipeline": "photos", "resize": 73, "exif_orientation": "apply"}, seed=5)
    export(checkpoint, tmp_path / "hub", format="folder")
    photo = write_photo(tmp_path / "p.png", 100, 80, "RGBA", "PNG", seed=6)
    with running(tmp_path / "hub") as url:
        status, answer = upload(url, photo)
    assert status == 200
    assert_same_as_predict(answer, Predictor(tmp_path / "hub", device="cpu").predict([photo])[0]["predictions"])


def test_the_activation_map_comes_with_the_answer_when_asked(served: tuple[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("pytorch_grad_cam")
    url, _ = served
    photo = write_photo(tmp_path / "flower.jpg", 70, 50, "RGB", "JPEG", seed=4)
    status, answer = upload(url, photo, query="?explain=1")
    assert status == 200 and answer["activation_map"].startswith("data:image/png;base64,")
    picture = Image.open(io.BytesIO(base64.b64decode(answer["activation_map"].split(",", 1)[1])))
    assert picture.size == (16, 16)  # the model's input, the map over it


BAD_UPLOADS = [  # (body, content type, status, words of the message)
    (*multipart({"image": ("notes.txt", b"just some text, not a photo")}), 400, "not an image Pillow can read"),
    (*multipart({"image": ("bomb.png", bomb_png())}), 400, "decompression bomb"),
    (*multipart({"photo": ("flower.jpg", b"\xff\xd8\xff")}), 400, "no field 'image'"),
    (*multipart({"image": (None, b"flower.jpg")}), 400, "holds text, not a file"),
    (*multipart({"image": ("empty.jpg", b"")}), 400, "is empty"),
    (b'{"image": "flower.jpg"}', "application/json", 415, "multipart/form-data"),
    (b"--x\r\nbroken", "multipart/form-data; boundary=y", 400, ""),
    (*multipart({"image": ("big.jpg", b"\0" * (MAX_UPLOAD_BYTES + 1))}), 413, "limit"),
]


def test_fifty_bad_uploads_in_a_row_then_a_good_one(served: tuple[str, Path], tmp_path: Path) -> None:
    url, checkpoint = served
    status, answer = post(url, *multipart({"image": ("huge.jpg", b"\0" * 100 * 1024 * 1024)}))  # a 100 MB body
    assert status == 413 and "limit" in answer["error"]
    for i in range(49):
        body, kind, expected_status, words = BAD_UPLOADS[i % len(BAD_UPLOADS)]
        status, answer = post(url, body, kind)
        assert status == expected_status and words in answer["error"], (i, status, answer)
        assert "\n" not in answer["error"]
    photo = write_photo(tmp_path / "flower.jpg", 70, 50, "RGB", "JPEG", seed=4)
    status, answer = upload(url, photo)
    assert status == 200
    assert_same_as_predict(answer, Predictor(checkpoint, device="cpu").predict([photo], topk=4)[0]["predictions"])


def test_the_page_and_the_models_description_are_served(served: tuple[str, Path]) -> None:
    url, _ = served
    with urllib.request.urlopen(f"{url}/", timeout=30) as response:
        assert 'id="drop"' in response.read().decode()
    with urllib.request.urlopen(f"{url}/info", timeout=30) as response:
        assert json.loads(response.read())["classes"] == ["daisy", "rose", "tulip", "iris"]


def test_serve_refuses_a_taken_port_and_a_bad_source_in_one_line(served: tuple[str, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    url, checkpoint = served
    port = url.rsplit(":", 1)[1]
    assert main(["serve", str(checkpoint), "--port", port]) == 2
    assert "cannot serve on 127.0.0.1" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "nothing"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1
