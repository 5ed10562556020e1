"""Using a trained model: evaluate it, predict images, export it (fine-tuning is training:
``resnetlab.training.finetune``).

Each command of the CLI (eval, predict, export) is one of these functions.
"""

from resnetlab.evaluation.evaluate import evaluate
from resnetlab.evaluation.export import export
from resnetlab.evaluation.logits import EvaluationStopped
from resnetlab.evaluation.predict import Predictor
from resnetlab.evaluation.view_averaging import TestViews

__all__ = ["EvaluationStopped", "Predictor", "TestViews", "evaluate", "export"]
