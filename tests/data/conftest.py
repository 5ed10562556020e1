"""Data fixtures: tiny archives in exactly the official formats, image folders, a stub server."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def own_data_cache(data_cache: Path) -> Path:
    """Every data test gets its own empty cache folder (``data_cache``; never ~/.cache/resnetlab)."""
    return data_cache


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
