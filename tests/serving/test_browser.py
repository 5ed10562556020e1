"""The page in a real headless browser: a photo picked in the page's file input goes to the server,
and the top class appears on the page, the one predict gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from resnetlab.evaluation import Predictor
from tests.builders import write_photo
from tests.serving.browser import CHROMIUM, Browser

pytestmark = [pytest.mark.slow,  # a browser process: the whole suite runs it, the quick tier does not
              pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get update && apt-get install -y chromium)")]


def test_a_photo_uploaded_through_the_page_shows_predicts_top_class(served: tuple[str, Path], tmp_path: Path) -> None:
    url, checkpoint = served
    photo = write_photo(tmp_path / "flower.jpg", 120, 90, "RGB", "JPEG", seed=7)
    expected = Predictor(checkpoint, device="cpu").predict([photo], topk=4)[0]["predictions"]
    with Browser(tmp_path / "profile") as page:
        page.open(url + "/")
        page.wait_for("document.getElementById('model').textContent.includes('classes')")
        page.choose_file("#file", photo)
        top = page.wait_for("document.body.dataset.top")
        rows = page.evaluate("Array.from(document.querySelectorAll('tr.prediction')).map("
                             "r => [r.querySelector('.name').textContent, r.querySelector('.probability').textContent])")
        shot = page.screenshot(tmp_path / "page.png")
    assert top == expected[0]["class"]
    assert rows == [[p["class"], f"{p['probability']:.4f}"] for p in expected]
    assert Image.open(shot).size[0] > 0 and Image.open(shot).format == "PNG"


def test_a_bad_upload_through_the_page_shows_the_message(served: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = served
    not_a_photo = tmp_path / "notes.jpg"
    not_a_photo.write_text("these are notes, not a photo")
    with Browser(tmp_path / "profile") as page:
        page.open(url + "/")
        page.choose_file("#file", not_a_photo)
        message = page.wait_for("document.getElementById('error').textContent")
    assert "not an image Pillow can read" in message
