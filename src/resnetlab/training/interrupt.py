"""Ctrl-C and SIGTERM become a request to stop after the current step, with a checkpoint.

The first signal sets a flag the training loop checks after every optimizer step; a second
signal restores Python's default handling, so a stuck run can still be killed.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """The run stopped on a signal after saving ``checkpoint``; ``--resume`` continues it."""

    def __init__(self, checkpoint: str, epoch: int, batch: int, iteration: int) -> None:
        self.checkpoint, self.epoch, self.batch, self.iteration = checkpoint, epoch, batch, iteration
        super().__init__(
            f"interrupted at iteration {iteration} (epoch {epoch + 1}, batch {batch}); "
            f"checkpoint saved to {checkpoint}"
        )


class StopRequest:
    """Set by a signal handler, read by the training loop."""

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
    """Route SIGINT/SIGTERM to a ``StopRequest`` while training (main thread only)."""
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
