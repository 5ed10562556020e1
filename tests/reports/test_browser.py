"""The report page in a real headless browser (Debian's chromium): every image loads from disk.

A test-only copy of index.html, saved beside it so relative paths resolve the same way, gets a
script that writes each image's load state and natural size into the page once it has loaded;
``chromium --dump-dom`` prints that DOM and the test reads it back.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from resnetlab.reports import report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = """
<script>
window.addEventListener("load", () => {
  const rows = Array.from(document.images).map(img => ({
    src: img.getAttribute("src"), complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
    shown: img.getBoundingClientRect().width}));
  const out = document.createElement("pre");
  out.id = "image-probe";
  out.textContent = JSON.stringify(rows);
  document.body.appendChild(out);
});
</script>
"""

pytestmark = [pytest.mark.slow,  # a browser process: the whole suite runs it, the quick tier does not
              pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get update && apt-get install -y chromium)")]


def images_as_loaded(index: Path, profile: Path) -> list[dict]:
    """Each <img> of ``index`` as chromium saw it: src, complete, natural width/height, shown width."""
    probe_page = index.with_name("index.browser-test.html")
    probe_page.write_text(index.read_text().replace("</body>", PROBE + "</body>"))
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--window-size=1280,2000",
         "--dump-dom", probe_page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    probe_page.unlink()
    match = re.search(r'<pre id="image-probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"chromium did not run the probe (exit {result.returncode}): {result.stderr[-2000:]}"
    return json.loads(html.unescape(match.group(1)))


def assert_every_image_loaded(index: Path, profile: Path) -> None:
    images = images_as_loaded(index, profile)
    expected = re.findall(r'<img src="([^"]+)"', index.read_text())
    assert [i["src"] for i in images] == [html.unescape(s) for s in expected] and images
    for image in images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, f"{image['src']} did not load: {image}"
        assert image["shown"] > 0, f"{image['src']} is not displayed: {image}"


def test_every_image_loads_in_a_headless_browser(two_fake_runs: list[Path], tmp_path: Path) -> None:
    index = report(two_fake_runs, tmp_path / "report", checkpoints=False)
    assert_every_image_loaded(index, tmp_path / "profile")


def test_confusion_matrix_and_predictions_load_in_a_headless_browser(tiny_trained_runs: list[Path], tmp_path: Path) -> None:
    index = report(tiny_trained_runs, tmp_path / "report", samples=8)
    assert "confusion.png" in index.read_text() and "predictions.png" in index.read_text()
    assert_every_image_loaded(index, tmp_path / "profile")
