"""Using a trained model: evaluate it, predict images, fine-tune it on new classes, export it.

Each command of the CLI (eval, predict, finetune, export) is one of these functions.
"""

from resnetlab.evaluation.evaluate import evaluate
from resnetlab.evaluation.export import export
from resnetlab.evaluation.finetune import finetune
from resnetlab.evaluation.predict import Predictor

__all__ = ["Predictor", "evaluate", "export", "finetune"]
