"""Training: the paper's recipes, resumable runs, and multi-process training (see run.py)."""

from resnetlab.training.api import train
from resnetlab.training.config import TrainConfig, list_recipes, resolve_config
from resnetlab.training.interrupt import TrainingInterrupted

__all__ = ["TrainConfig", "TrainingInterrupted", "list_recipes", "resolve_config", "train"]
