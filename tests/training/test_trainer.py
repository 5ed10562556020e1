"""trainer.py: the Trainer alone writes the run folder while a run trains, from its start to its summary."""

from __future__ import annotations

import json

import torch
import yaml

from resnetlab.runs import read_metrics
from tests.builders import make_trainer


def test_a_trainer_writes_the_run_from_its_start_to_its_summary(tmp_path) -> None:
    trainer = make_trainer(tmp_path / "run", epochs=2)
    trainer.start(trainer.config.to_dict(), {"data_dir": "somewhere"})
    run = trainer.run
    assert yaml.safe_load(run.config_file.read_text())["epochs"] == 2
    assert json.loads(run.class_indices.read_text()) == {"0": "class0", "1": "class1", "2": "class2"}
    assert json.loads(run.data_record.read_text()) == {"data_dir": "somewhere"}
    trainer.fit()
    summary = trainer.finish(recipe_changes={"epochs": 2}, command="resnetlab train ...")
    trainer.log.close()
    run.close()
    assert summary["command"] == "resnetlab train ..." and summary["iterations"] == 2 * 6  # 48 images, batch 8
    assert list(summary).index("recipe_changes") == list(summary).index("recipe") + 1 and summary["recipe_changes"] == {"epochs": 2}
    assert json.loads(run.summary_file.read_text()) == json.loads(json.dumps(summary))
    assert [int(r["epoch"]) for r in read_metrics(run.metrics)] == [1, 2]
    weights = torch.load(run.weights, weights_only=True)
    assert all(torch.equal(weights[k], v) for k, v in trainer.eval_model.state_dict().items())


def test_continuing_drops_the_rows_of_epochs_the_checkpoint_has_not_completed(tmp_path) -> None:
    trainer = make_trainer(tmp_path / "run", epochs=3)
    trainer.fit()
    after_one = make_trainer(tmp_path / "other", epochs=3)
    after_one.train_one_epoch(stop=type("NoStop", (), {"requested": False})())
    after_one.end_epoch()
    checkpoint = after_one.as_checkpoint()  # epoch 1 done
    assert len(read_metrics(trainer.run.metrics)) == 3
    trainer.continue_from(checkpoint)
    assert [int(r["epoch"]) for r in read_metrics(trainer.run.metrics)] == [1]
    assert (trainer.progress.epoch, trainer.progress.iteration) == (1, 6)
    for done in (trainer, after_one):
        done.log.close()
        done.run.close()
