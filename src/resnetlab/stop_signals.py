"""Ctrl-C and SIGTERM become a request to stop at the next safe point.

The first signal sets a flag that training checks after every optimizer step and an evaluation
pass before every batch (training then saves a checkpoint; ``eval`` writes nothing); a second
signal restores Python's default handling, so a stuck process can still be killed. Shared by
training and evaluation, so it sits below both.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by a signal handler, read by the training loop and by evaluation passes."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def request(self, signum: int, frame: Any = None) -> None:
        if self.requested:  # second signal: give up waiting for the step to end
            signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self.requested = True
        self.signal_name = signal.Signals(signum).name


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Route SIGINT/SIGTERM to a ``StopRequest`` inside the block (main thread only)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, stop.request)
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
