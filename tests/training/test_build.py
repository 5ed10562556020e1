"""build.py: the one assembly of a run's parts, each decided by the config."""

from __future__ import annotations

import torch

from resnetlab.models.registry import in_classifier
from tests.builders import make_trainer


def test_a_frozen_backbone_trains_the_classifier_alone(tmp_path) -> None:
    trainer = make_trainer(tmp_path / "run", freeze_backbone=True)
    trains = [name for name, p in trainer.model.named_parameters() if p.requires_grad]
    assert trains == ["fc.weight", "fc.bias"] and all(in_classifier(name) for name in trains)
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(trainer.model.fc.weight), id(trainer.model.fc.bias)}
    trainer.run.close()


def test_the_parts_follow_the_config(tmp_path) -> None:
    plain = make_trainer(tmp_path / "plain")
    averaged = make_trainer(tmp_path / "averaged", ema_decay=0.9, cuda_graphs=True, val_split=0.25)
    assert plain.ema is None and averaged.ema is not None and averaged.eval_model is averaged.ema.module
    assert plain.graphed_step is None and averaged.graphed_step is None  # graphs are for CUDA alone
    assert len(plain.train_loader) == 48 // 8 and plain.schedule.total_iters == 3 * 6
    assert plain.step_parts.optimizer is plain.optimizer and isinstance(plain.step_parts.criterion, torch.nn.CrossEntropyLoss)
    for trainer in (plain, averaged):
        trainer.run.close()
