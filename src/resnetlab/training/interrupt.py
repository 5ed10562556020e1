"""``TrainingInterrupted``: a run stopped on a signal (``resnetlab.stop_signals``) after saving a checkpoint."""

from __future__ import annotations


class TrainingInterrupted(Exception):
    """The run stopped on a signal after saving ``checkpoint``; ``--resume`` continues it."""

    def __init__(self, checkpoint: str, epoch: int, batch: int, iteration: int) -> None:
        self.checkpoint, self.epoch, self.batch, self.iteration = checkpoint, epoch, batch, iteration
        super().__init__(
            f"interrupted at iteration {iteration} (epoch {epoch + 1}, batch {batch}); "
            f"checkpoint saved to {checkpoint}"
        )
