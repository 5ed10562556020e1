"""An interrupted run, resumed, ends bit-identical to one that never stopped (on the CPU)."""

from __future__ import annotations

import os
import signal

import pytest
import torch
import yaml

from resnetlab.runs import read_metrics
from resnetlab.training import TrainingInterrupted, resolve_config, train
from tests.builders import tiny_config

RESULT_COLUMNS = ("epoch", "iteration", "lr", "train_loss", "train_acc", "test_loss", "test_acc")
# EMA and the error warm-up add state that must survive the interrupt too.
EXTRAS = {"ema_decay": 0.9, "error_warmup_lr": 0.01, "error_warmup_threshold": 0.5, "label_smoothing": 0.1}
FAST_LOADER = {"flip": "alternate", "batch_copies": 2, "uncropped_epochs": 1}  # the loader's per-epoch plans
PROGRESSIVE = {"progressive_sizes": [4, 6], "progressive_ends": [1, 2], "batch_copies": 2}  # crops of 4, then 6, then 8 pixels


def interrupt_at(iteration: int, sig: int = signal.SIGINT):
    """An on_iteration hook sending a real signal to this process after ``iteration`` steps."""
    def hook(i: int) -> None:
        if i == iteration:
            os.kill(os.getpid(), sig)
    return hook


def final_weights(out):
    return torch.load(out / "checkpoints" / "last.pt", weights_only=True)["state_dict"]


@pytest.mark.parametrize(("stop", "extras"), [(8, {}), (6, {}), (10, EXTRAS), (9, FAST_LOADER), (8, {"precision": "bf16"}),
                                            (9, PROGRESSIVE)],
                         ids=["mid-epoch", "epoch-end", "mid-epoch-ema-warmup", "mid-epoch-copies-alternate-uncropped",
                              "mid-epoch-bf16", "mid-epoch-progressive-resizing"])
def test_resume_is_bit_identical(tmp_path, bundle, stop, extras):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    expected = train(tiny_config(straight, **extras), bundle=bundle)
    with pytest.raises(TrainingInterrupted) as info:
        train(tiny_config(broken, **extras), bundle=bundle, on_iteration=interrupt_at(stop, signal.SIGTERM))
    assert info.value.iteration == stop and info.value.batch == (stop - 1) % 6 + 1
    saved = torch.load(broken / "checkpoints" / "last.pt", weights_only=True)
    assert (saved["iteration"], saved["batch"]) == (stop, info.value.batch)
    resumed = train(tiny_config(broken, **extras), bundle=bundle, resume=True)

    want, got = final_weights(straight), final_weights(broken)
    assert want.keys() == got.keys()
    for key in want:  # weights and BatchNorm running statistics
        assert torch.equal(want[key], got[key]), key
    rows = lambda out: [[r[c] for c in RESULT_COLUMNS] for r in read_metrics(out / "metrics.csv")]  # noqa: E731
    assert rows(broken) == rows(straight)
    assert resumed["final"] == expected["final"] and resumed["iterations"] == expected["iterations"]


FAST_OPTIMIZER = {"schedule": "linear", "warmup": 0.2, "milestones": [], "weight_decay": 5e-4, "norm_weight_decay": 0.0,
                  "bias_weight_decay": 0.0, "nesterov": True}  # two parameter groups, as the fast recipe


def in_older_spellings(values: dict) -> dict:
    """A config as resnetlab wrote it before schedule: linear, norm/bias_weight_decay and whiten_first_conv's move."""
    kept = {k: v for k, v in values.items() if k not in ("norm_weight_decay", "bias_weight_decay")}
    return {**kept, "schedule": "onecycle", "no_weight_decay_on_bn_and_bias": True, "whiten_first_conv": False}


def test_a_run_written_in_older_spellings_resumes_bit_identical(tmp_path, bundle):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    expected = train(tiny_config(straight, **FAST_OPTIMIZER), bundle=bundle)
    with pytest.raises(TrainingInterrupted):
        train(tiny_config(broken, **FAST_OPTIMIZER), bundle=bundle, on_iteration=interrupt_at(8, signal.SIGTERM))
    run_config, last = broken / "config.yaml", broken / "checkpoints" / "last.pt"
    run_config.write_text(yaml.safe_dump(in_older_spellings(yaml.safe_load(run_config.read_text())), sort_keys=False))
    checkpoint = torch.load(last, weights_only=True)
    torch.save({**checkpoint, "config": in_older_spellings(checkpoint["config"])}, last)

    resumed = train(resolve_config(config_file=run_config), bundle=bundle, resume=True)  # as 'train --resume' reads the run
    want, got = final_weights(straight), final_weights(broken)
    assert all(torch.equal(want[key], got[key]) for key in want)
    assert resumed["final"] == expected["final"]


def test_resume_needs_a_checkpoint(tmp_path, bundle):
    from resnetlab.errors import ResnetlabError

    with pytest.raises(ResnetlabError, match="cannot resume"):
        train(tiny_config(tmp_path / "none"), bundle=bundle, resume=True)


def test_resume_of_a_folder_that_is_no_run_is_one_line(tmp_path, capsys):
    from resnetlab.cli import main

    assert main(["train", "--resume", str(tmp_path / "typo")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot resume {tmp_path / 'typo'}: it is not a run folder" in err


def test_the_python_api_resumes_a_run_folder_from_its_own_config(tmp_path, bundle):
    """train(resume=DIR) with no config reads DIR/config.yaml: the same run as the command line's --resume DIR."""
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    train(tiny_config(straight), bundle=bundle)
    with pytest.raises(TrainingInterrupted):
        train(tiny_config(broken), bundle=bundle, on_iteration=interrupt_at(8, signal.SIGTERM))
    summary = train(resume=broken, bundle=bundle)
    assert summary["iterations"] == 18
    want, got = final_weights(straight), final_weights(broken)
    assert all(torch.equal(want[k], got[k]) for k in want)


def test_the_python_api_refuses_to_resume_a_folder_no_run_started(tmp_path):
    from resnetlab.errors import ResnetlabError

    with pytest.raises(ResnetlabError, match="it is not a run folder"):
        train(resume=tmp_path / "typo")
    with pytest.raises(ResnetlabError, match="needs a config"):
        train()


def interrupt_evaluation_at(monkeypatch, call: int | None, sig: int = signal.SIGINT) -> dict[str, int]:
    """Every evaluation pass in batches of 8 (the 24 test images: 3 batches an epoch), and a real
    signal sent to this process during the ``call``-th evaluation batch of the run (None: never).
    Returns the count of evaluation batches run ({"n": ...})."""
    import resnetlab.evaluation.logits as logits_module

    real, calls = logits_module.view_averaged_logits, {"n": 0}

    def counted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            os.kill(os.getpid(), sig)
        return real(*args, **kwargs)

    monkeypatch.setattr(logits_module, "view_averaged_logits", counted)
    monkeypatch.setattr("resnetlab.training.build.evaluation_batch_size", lambda *args: 8)
    return calls


@pytest.mark.parametrize(("call", "sig"), [(5, signal.SIGINT), (8, signal.SIGTERM)], ids=["epoch-2", "last-epoch"])
def test_a_signal_during_an_epochs_evaluation_stops_it_and_resume_evaluates_it_again(tmp_path, bundle, monkeypatch, call, sig):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    interrupt_evaluation_at(monkeypatch, None)
    expected = train(tiny_config(straight), bundle=bundle)
    calls = interrupt_evaluation_at(monkeypatch, call, sig)
    with pytest.raises(TrainingInterrupted) as info:
        train(tiny_config(broken), bundle=bundle)
    assert calls["n"] == call  # the pass stopped at the next batch, not at its end
    epoch = (call - 1) // 3  # epochs completed: the interrupted one's training is kept, its evaluation is not
    assert (info.value.epoch, info.value.batch, info.value.iteration) == (epoch, 6, 6 * (epoch + 1))
    saved = torch.load(broken / "checkpoints" / "last.pt", weights_only=True)
    assert (saved["epoch"], saved["batch"], saved["iteration"]) == (epoch, 6, 6 * (epoch + 1))
    assert len(read_metrics(broken / "metrics.csv")) == epoch

    interrupt_evaluation_at(monkeypatch, None)
    resumed = train(tiny_config(broken), bundle=bundle, resume=True)
    rows = lambda out: [[r[c] for c in RESULT_COLUMNS] for r in read_metrics(out / "metrics.csv")]  # noqa: E731
    assert rows(broken) == rows(straight) and len(rows(broken)) == 3
    want, got = final_weights(straight), final_weights(broken)
    assert all(torch.equal(want[key], got[key]) for key in want)
    assert resumed["final"] == expected["final"] and resumed["iterations"] == expected["iterations"] == 18


def test_a_graph_ready_run_interrupted_and_resumed_ends_as_an_eager_run_that_never_stopped(tmp_path, bundle, monkeypatch):
    """The Trainer with the CUDA-graph step's plumbing (static buffers, device learning rates, the
    smaller last batch eager; capture off on the CPU) through epochs, an interrupt and a resume:
    the same weights and metrics as plain eager steps without a stop."""
    from resnetlab.training import build
    from resnetlab.training.step import GraphedStep

    extras = {"batch_size": 10, "drop_last": False, **FAST_OPTIMIZER}  # 48 images: four batches of 10 and one of 8 an epoch
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    expected = train(tiny_config(straight, **extras), bundle=bundle)
    built: list[GraphedStep] = []

    def graph_ready(config, parts, device, ctx, log):
        built.append(GraphedStep(parts, warmup=2, capture=False))
        return built[-1]

    monkeypatch.setattr(build, "graphed_step", graph_ready)
    with pytest.raises(TrainingInterrupted):
        train(tiny_config(broken, **extras), bundle=bundle, on_iteration=interrupt_at(7, signal.SIGTERM))
    resumed = train(tiny_config(broken, **extras), bundle=bundle, resume=True)
    assert len(built) == 2 and all(step.images.shape[0] == 10 for step in built)  # recorded after the warm-up, each run
    want, got = final_weights(straight), final_weights(broken)
    assert all(torch.equal(want[key], got[key]) for key in want)
    rows = lambda out: [[r[c] for c in RESULT_COLUMNS] for r in read_metrics(out / "metrics.csv")]  # noqa: E731
    assert rows(broken) == rows(straight)
    assert resumed["final"] == expected["final"] and resumed["iterations"] == expected["iterations"] == 15


def test_a_resume_under_a_budget_the_run_has_passed_is_refused_naming_one_that_works(tmp_path, bundle):
    """--epochs 1 after a stop in epoch 2 used to end in itertools.islice's ValueError."""
    out = tmp_path / "r"
    with pytest.raises(TrainingInterrupted):
        train(tiny_config(out), bundle=bundle, on_iteration=interrupt_at(8))  # 6 iterations per epoch: epoch 2, batch 2
    from resnetlab.errors import ResnetlabError

    with pytest.raises(ResnetlabError, match=r"it has trained 8 iterations, more than the budget now given \(6 iterations: epochs 1.*"
                                             r"give at least epochs=2 or max_iters=8"):
        train(tiny_config(out, epochs=1), resume=True, bundle=bundle)
    summary = train(tiny_config(out, epochs=2), resume=True, bundle=bundle)  # the budget that works finishes at its boundary
    assert (summary["epochs"], summary["iterations"]) == (2, 12)


def test_a_resume_with_another_process_count_is_logged_and_recorded(tmp_path, bundle):
    """Resuming a 2-process torchrun run with one process goes on, and says so in train.log and summary.json."""
    out = tmp_path / "r"
    with pytest.raises(TrainingInterrupted):
        train(tiny_config(out), bundle=bundle, on_iteration=interrupt_at(8))
    last = out / "checkpoints" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["metrics"]["world_size"] == 1
    ckpt["metrics"]["world_size"] = 2  # as a 2-process run writes it
    torch.save(ckpt, last)
    summary = train(tiny_config(out), resume=True, bundle=bundle)
    assert summary["process_changes"] == ["iteration 8: 2 -> 1 processes"]
    log = (out / "train.log").read_text()
    assert "resuming a run of 2 processes with 1 (iteration 8: 2 -> 1 processes)" in log
