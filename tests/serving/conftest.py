"""A model served on a free loopback port, on a thread of the test process: it ends with the test
(``should_exit``, joined with a bound) or, at the latest, with the process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")

STARTUP_SECONDS = 30  # bounds, not timings: a server that does not start or stop within them fails the test


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, checkpoint) of a resnet20 of 4 classes served on 127.0.0.1 and a free port."""
    from tests.builders import make_checkpoint

    checkpoint = make_checkpoint(tmp_path / "model.pt", classes=["daisy", "rose", "tulip", "iris"], seed=2)
    with running(checkpoint) as url:
        yield url, checkpoint


class running:
    """``with running(source) as url``: the server of ``source`` on 127.0.0.1, port chosen by the system."""

    def __init__(self, source: Path, **options: object) -> None:
        from resnetlab.serving.server import build_server

        self.server = build_server(source, host="127.0.0.1", port=0, device="cpu", **options)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(STARTUP_SECONDS)
        assert not self.thread.is_alive(), "the server did not stop"
