"""No host sync per training step, no host-to-device copy per batch; a non-finite loss still stops the run."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import nn

from resnetlab import devices
from resnetlab.data import Augmentation, TensorLoader
from resnetlab.errors import ResnetlabError
from resnetlab.stop_signals import StopRequest
from resnetlab.training import run as run_module
from resnetlab.training import trainer as trainer_module
from resnetlab.training.schedules import create_schedule
from resnetlab.training.step import EpochStats, NonFiniteLoss
from tests.builders import make_tiny_bundle, make_trainer, poison_loss, tiny_config

pytestmark = pytest.mark.gpu_emulated


class Reads:
    """Counts reads of tensor values to the host (each one waits for a GPU to finish its queue)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("tolist", "item", "__float__", "__bool__", "__int__"):
            real = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counted(real))

    def _counted(self, real):
        def read(tensor, *args):
            self.count += 1
            return real(tensor, *args)
        return read


def one_epoch(tmp_path, monkeypatch, check_every: int, poison_at: int | None = None,
              reads: Reads | None = None) -> tuple[EpochStats, int]:
    """One epoch of a linear model on 8 batches of 6 (48 images) through ``Trainer.train_one_epoch``,
    reading the totals every ``check_every`` steps; the loss is NaN at step ``poison_at``."""
    trainer = make_trainer(tmp_path / f"every-{check_every}", make_tiny_bundle(per_class=16), batch_size=6, epochs=1)
    trainer.step_parts.forward = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    trainer.step_parts.optimizer = torch.optim.SGD(trainer.step_parts.forward.parameters(), lr=0.1)
    trainer.schedule = create_schedule(trainer.step_parts.optimizer, trainer.config, 8, 8)
    trainer.step_parts.criterion = PoisonedAt(poison_at)
    monkeypatch.setattr(trainer_module, "host_check_interval", lambda device: check_every)
    if reads is not None:
        reads.count = 0
    try:
        trainer.train_one_epoch(StopRequest())
    finally:
        trainer.run.close()
    return trainer.progress.stats, trainer.progress.iteration


class PoisonedAt(nn.Module):
    def __init__(self, at: int | None) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = nn.functional.cross_entropy(logits, labels)
        return loss * float("nan") if self.calls == self.at else loss


def test_the_loss_is_read_to_the_host_once_every_k_steps_not_every_step(tmp_path, monkeypatch) -> None:
    reads = Reads(monkeypatch)
    stats, iterations = one_epoch(tmp_path, monkeypatch, check_every=4, reads=reads)
    assert iterations == 8 and reads.count == 2  # 8 steps, read back after steps 4 and 8


def test_the_epoch_totals_do_not_depend_on_how_often_they_are_read(tmp_path, monkeypatch) -> None:
    every, rarely = one_epoch(tmp_path, monkeypatch, check_every=1)[0], one_epoch(tmp_path, monkeypatch, check_every=5)[0]
    assert (every.loss_sum, every.correct, every.images) == (rarely.loss_sum, rarely.correct, rarely.images)
    assert every.images == 48


@pytest.mark.parametrize("check_every", [1, 4])
def test_a_non_finite_loss_is_named_by_its_iteration_whenever_it_is_read(tmp_path, monkeypatch, check_every) -> None:
    with pytest.raises(NonFiniteLoss, match="loss became nan at iteration 6"):
        one_epoch(tmp_path, monkeypatch, check_every=check_every, poison_at=6)


def test_the_cpu_reads_every_step_and_gpus_every_fifty() -> None:
    assert devices.host_check_interval(torch.device("cpu")) == 1
    assert devices.host_check_interval(torch.device("cuda", 0)) == devices.host_check_interval(torch.device("mps")) == 50


def test_reading_rarely_a_non_finite_loss_still_stops_the_run_before_it_is_saved(tmp_path, monkeypatch) -> None:
    """As on a GPU (every 4 steps here): inf at iteration 9, read at 10 (epoch 2's 4th step); last.pt stays
    epoch 1's, finite."""
    monkeypatch.setattr(trainer_module, "host_check_interval", lambda device: 4)
    calls = poison_loss(monkeypatch, at_call=9)
    out = tmp_path / "run"
    with pytest.raises(ResnetlabError, match=r"loss became (inf|nan) at iteration 9.*lower lr"):
        run_module.train(tiny_config(out), bundle=make_tiny_bundle())
    last = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert last["iteration"] == 6 and not (out / "summary.json").exists()
    assert all(t.isfinite().all() for t in last["state_dict"].values() if t.is_floating_point())
    assert calls["n"] == 10  # one more step ran before the read


def test_the_loaders_plan_goes_to_the_device_once_per_epoch_not_per_batch(monkeypatch) -> None:
    bundle = make_tiny_bundle(per_class=16)
    meta = torch.device("meta")  # stands in for a GPU: every copy from the CPU to it is counted
    loader = TensorLoader(bundle.train, 6, mean=bundle.mean, std=bundle.std, train=True, device=meta,
                          augmentation=Augmentation(cutout=2, copies=2))
    copies: Counter[str] = Counter()
    real = torch.Tensor.to

    def to(tensor, *args, **kwargs):
        moved = real(tensor, *args, **kwargs)
        if tensor.device.type == "cpu" and moved.device.type == "meta":
            copies["to the device"] += 1
        return moved

    monkeypatch.setattr(torch.Tensor, "to", to)
    batches = loader.batches(0)
    first = next(batches)
    after_first = copies["to the device"]
    rest = list(batches)
    assert len(rest) == 7 and first[0].shape == (12, 3, 8, 8) and first[0].device == meta
    assert after_first <= 1 + 2 * 3  # order, then offsets, flips and cutout centres of each copy: once
    assert copies["to the device"] == after_first  # and nothing more for the other 7 batches


def test_a_run_reading_every_4_steps_trains_and_records_exactly_what_one_reading_every_step_does(tmp_path, monkeypatch) -> None:
    from resnetlab.runs import read_metrics

    def run(interval: int) -> tuple[list[dict], dict]:
        monkeypatch.setattr(trainer_module, "host_check_interval", lambda device: interval)
        out = tmp_path / f"every-{interval}"
        run_module.train(tiny_config(out, epochs=2, ema_decay=0.9), bundle=make_tiny_bundle())
        rows = [{k: v for k, v in r.items() if "second" not in k} for r in read_metrics(out / "metrics.csv")]
        return rows, torch.load(out / "checkpoints" / "last.pt", weights_only=True)["state_dict"]

    (rows_1, weights_1), (rows_4, weights_4) = run(1), run(4)
    assert rows_1 == rows_4
    assert all(torch.equal(weights_1[k], weights_4[k]) for k in weights_1)
