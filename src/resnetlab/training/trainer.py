"""``Trainer``: one training run's state in one object, and its epoch loop read top to bottom.

``build.build_trainer`` assembles it; it holds the config, the data, the model parts, the progress,
the run folder and the run's log, and it alone writes the run folder while the run trains (its
start, each epoch's row and checkpoints, the final weights and summary). ``fit`` runs epochs until
the budget is spent: ``train_one_epoch`` (one ``train_step`` per batch), then ``end_epoch``
(evaluate, log, save). Resume is exact on the CPU because nothing hides state: the
loader's order and augmentation come from (seed, epoch), and the checkpoint holds model,
optimizer, schedule (with the error warm-up), EMA, RNG, the position (epoch, batch) and the
running totals of the current epoch.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NoReturn

import torch
from torch import nn

from resnetlab.checkpoint import TrainingState, build_checkpoint, rng_state, set_rng_state, weights_sidecar
from resnetlab.data import DatasetBundle
from resnetlab.data.photos import eval_resize
from resnetlab.devices import host_check_interval
from resnetlab.errors import ResnetlabError, option
from resnetlab.evaluation.logits import EvaluationStopped, loader_logits
from resnetlab.evaluation.metrics import classification_totals
from resnetlab.evaluation.view_averaging import TestViews
from resnetlab.models.registry import in_classifier
from resnetlab.runs import RunFolder
from resnetlab.stop_signals import StopRequest, stop_on_signals
from resnetlab.training import distributed
from resnetlab.training.config import TrainConfig, with_recipe_changes
from resnetlab.training.ema import WeightAverage
from resnetlab.training.interrupt import TrainingInterrupted
from resnetlab.training.optim import use_fused_update
from resnetlab.training.run_log import RunLog, epoch_line
from resnetlab.training.step import EpochStats, GraphedStep, NonFiniteLoss, StepParts, train_step

Loaders = tuple[Any, Any, Any]  # training, validation (None without a split) and test loaders


@dataclass
class Progress:
    """Where the run is; saved in every checkpoint."""

    epoch: int = 0  # completed epochs
    batch: int = 0  # batches done in the current epoch
    iteration: int = 0  # optimizer steps done
    stats: EpochStats = field(default_factory=EpochStats)  # current epoch's running totals
    train_seconds: float = 0.0  # completed epochs' training time (evaluation excluded)
    train_images: int = 0
    best: dict[str, Any] | None = None  # metrics row of the best epoch by validation accuracy
    last: dict[str, Any] | None = None  # last metrics row
    pretrained: dict[str, Any] | None = None  # what init_from loaded
    process_changes: list[str] = field(default_factory=list)  # "iteration 6: 2 -> 1 processes", one per resume that changed it


class Trainer:
    """A run's config, data, model parts, progress, run folder and processes, and what trains them."""

    def __init__(self, *, config: TrainConfig, bundle: DatasetBundle, run: RunFolder, log: RunLog,
                 ctx: distributed.Distributed, device: torch.device, model: nn.Module, loaders: Loaders,
                 optimizer: torch.optim.Optimizer, schedule: Any, autocast: Callable[[], Any], scaler: Any,
                 ema: WeightAverage | None, step_parts: StepParts, graphed_step: GraphedStep | None, progress: Progress,
                 on_iteration: Callable[[int], None] | None = None) -> None:
        self.config, self.bundle, self.run, self.log, self.ctx, self.device = config, bundle, run, log, ctx, device
        self.model = model
        self.train_loader, self.val_loader, self.test_loader = loaders
        self.optimizer, self.schedule, self.autocast, self.scaler, self.ema = optimizer, schedule, autocast, scaler, ema
        self.step_parts, self.graphed_step = step_parts, graphed_step
        self.progress = progress
        self.on_iteration = on_iteration  # called after every step (tests send signals there)

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @property
    def epochs(self) -> int:
        return budget_epochs(self.schedule.total_iters, len(self.train_loader))

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One optimizer step: replayed as a graph where one was captured, else eager (the same code).
        The error warm-up reads every step's error, so it runs eagerly while it lasts."""
        warming = self.schedule.error_warmup is not None and self.schedule.error_warmup.active
        if self.graphed_step is not None and not warming:
            return self.graphed_step(images, labels)
        return train_step(self.step_parts, images, labels)

    # The loop ------------------------------------------------------------------------------------

    def fit(self) -> None:
        """Epochs until the budget is spent; a signal saves a checkpoint and raises TrainingInterrupted.

        A signal during an epoch's evaluation abandons it: the checkpoint is the epoch's training
        part, and the resumed run evaluates the epoch again (``progress.batch`` > 0 with the budget
        spent is such an epoch: its training is done, its evaluation is not)."""
        with stop_on_signals() as stop:
            while self.progress.iteration < self.schedule.total_iters or self.progress.batch:
                if self.train_one_epoch(stop) or not self.end_epoch(stop):
                    self.save()
                    self.end_on_signal()
                if self.progress.iteration < self.schedule.total_iters and self.agree(stop.requested):
                    self.end_on_signal()  # the signal came as the epoch ended: it is saved whole, the next one not begun

    def end_on_signal(self) -> NoReturn:
        """End the run on a signal, once its checkpoint is saved."""
        distributed.barrier()  # under torchrun no process exits (and gets rank 0 signalled again) before the save ends
        raise TrainingInterrupted(str(self.run.last), self.progress.epoch, self.progress.batch, self.progress.iteration)

    def train_one_epoch(self, stop: StopRequest) -> bool:
        """Continue the current epoch from ``progress.batch`` until its end, the budget or a signal
        (then True: every process saw the stop request at the same step).

        Each step's totals stay on the device; every ``host_check_interval`` steps (every step
        while the error warm-up lasts) they are read to the host in one go, checked for a
        non-finite loss and added to the epoch's totals in step order, so the sums do not depend
        on how often they are read."""
        progress, schedule = self.progress, self.schedule
        remaining = schedule.total_iters - progress.iteration
        batches = itertools.islice(self.train_loader.batches(progress.epoch, start=progress.batch), remaining)
        pending: list[torch.Tensor] = []  # totals of the steps not yet read back, in order
        stopped = False
        set_train_mode(self.model, self.config.freeze_backbone)
        bar = self.log.bar(total=len(self.train_loader), initial=progress.batch, desc=f"epoch {progress.epoch + 1}/{self.epochs}")
        try:
            mark = time.perf_counter()
            for images, labels in batches:
                progress.stats.stepped_at(schedule.lr)  # the rate this step trains at
                totals = self.step(images, labels)
                pending.append(distributed.sum_over_processes(totals) if self.ctx.enabled else totals)
                schedule.step()
                progress.iteration += 1
                progress.batch += 1
                read_back = len(pending) >= self.check_interval()
                if read_back:
                    progress.stats.add(pending, progress.iteration - len(pending) + 1)
                    self.observe_warmup(totals)
                progress.stats.seconds += time.perf_counter() - mark
                if self.ema is not None:
                    self.ema.update(self.model)
                self.show(bar)
                if self.on_iteration is not None:
                    self.on_iteration(progress.iteration)
                if read_back or not self.ctx.enabled:  # processes agree where they sync anyway: all stop at one step
                    stopped = self.agree(stop.requested)
                mark = time.perf_counter()
                if stopped:
                    break
            progress.stats.add(pending, progress.iteration - len(pending) + 1)
        except NonFiniteLoss as exc:
            raise NonFiniteLoss(f"{exc} (epoch {progress.epoch + 1}, lr {schedule.lr:g}): training stopped; "
                                f"try a lower {option('lr')}. {self.last_good_checkpoint()}") from None
        finally:
            bar.close()
        return stopped

    def check_interval(self) -> int:
        """Steps between reads of the totals: every step while the error warm-up reads the error."""
        warmup = self.schedule.error_warmup
        return 1 if warmup is not None and warmup.active else host_check_interval(self.device)

    def observe_warmup(self, totals: torch.Tensor) -> None:
        """Feed the latest step's training error to the error warm-up while it lasts."""
        warmup = self.schedule.error_warmup
        if warmup is None or not warmup.active:
            return
        _, correct, n = totals.tolist()
        if warmup.observe(1 - correct / n):
            self.log.info(f"error warm-up over at iteration {self.progress.iteration} "
                          f"(training error {warmup.error:.3f}): lr back to {self.config.lr}")

    def agree(self, flag: bool) -> bool:
        """All processes stop together when any one of them got the signal."""
        if not self.ctx.enabled:
            return flag
        return bool(distributed.reduce_across_processes([float(flag)], self.device).item())

    def show(self, bar: Any) -> None:
        stats = self.progress.stats
        bar.set_postfix(loss=f"{stats.loss:.3f}", acc=f"{stats.acc:.3f}", img_s=f"{stats.images_per_second:.0f}", refresh=False)
        bar.update()

    # Evaluation and the end of an epoch -------------------------------------------------------------

    def evaluate_loader(self, loader: Any, views: TestViews, stop: StopRequest | None = None) -> dict[str, float]:
        """Loss and accuracy over a whole split through the test-time ``views``, summed over the
        processes' shards. ``stop`` requested abandons the pass (``EvaluationStopped``) in a single
        process; processes of one run finish it, as they meet in its sums."""
        if loader is None:
            return {"loss": math.nan, "acc": math.nan}
        stop = None if self.ctx.enabled else stop
        logits, labels = loader_logits(self.eval_model, loader, views, progress=self.log.evaluation_progress, stop=stop)
        loss_sum, correct, n = classification_sums(logits, labels)
        if self.ctx.enabled:
            loss_sum, correct, n = distributed.reduce_across_processes([loss_sum, correct, n], loader.device).tolist()
        return {"loss": loss_sum / n, "acc": correct / n}

    def end_epoch(self, stop: StopRequest | None = None) -> bool:
        """Evaluate, write the metrics row and the epoch line, save last.pt (and best.pt). False,
        with nothing written, when ``stop`` abandoned the evaluation."""
        progress = self.progress
        if self.ctx.enabled:
            distributed.broadcast_buffers(self.eval_model)
        views = epoch_views(self.config, final=progress.iteration >= self.schedule.total_iters)
        started = time.perf_counter()
        try:
            with self.autocast():  # the run's precision, as eval and predict use it later
                val = self.evaluate_loader(self.val_loader, views, stop)
                test = self.evaluate_loader(self.test_loader, views, stop)
        except EvaluationStopped as exc:
            self.log.info(f"{exc} at epoch {progress.epoch + 1}: the resumed run evaluates this epoch again")
            return False
        stats = progress.stats
        row = {"epoch": progress.epoch + 1, "iteration": progress.iteration, "lr": self.schedule.lr,
               "train_loss": stats.loss, "train_acc": stats.acc, "val_loss": val["loss"], "val_acc": val["acc"],
               "test_loss": test["loss"], "test_acc": test["acc"], "epoch_seconds": stats.seconds,
               "images_per_second": stats.images_per_second, "eval_seconds": time.perf_counter() - started,
               "test_views": views.count, "epoch_lr": [stats.first_lr, stats.last_lr]}
        self.check_finite_outputs(row)
        self.run.append_metrics(row)
        self.log.epoch(row, self.epochs)
        progress.epoch, progress.batch, progress.last = progress.epoch + 1, 0, row
        progress.train_seconds += stats.seconds
        progress.train_images += stats.images
        progress.stats = EpochStats()
        improved = self.val_loader is not None and (progress.best is None or row["val_acc"] > progress.best["val_acc"])
        if improved:
            progress.best = row
        self.save()
        if improved:  # without a validation split there is no best epoch: last.pt is the run's model
            self.save(best=True)
        return True

    def check_finite_outputs(self, row: dict[str, Any]) -> None:
        """Stop before this epoch is saved when its weights, or its evaluation losses, are no longer finite
        (weights can stay finite yet so large that the logits overflow: the loss is then NaN). The
        training loss is checked step by step."""
        self.check_finite_weights()
        for split, loader in (("val", self.val_loader), ("test", self.test_loader)):
            if loader is not None and len(loader) and not math.isfinite(row[f"{split}_loss"]):
                self.log.info(epoch_line(row, self.epochs))  # the row is shown, not recorded
                raise NonFiniteLoss(f"the model's {split} loss became {row[f'{split}_loss']} at epoch {row['epoch']} "
                                    f"(iteration {row['iteration']}, lr {row['lr']:g}): its outputs overflowed; training stopped, "
                                    f"epoch not saved; try a lower {option('lr')}. {self.last_good_checkpoint()}")

    def check_finite_weights(self) -> None:
        """Stop the run, keeping the last good checkpoint, when a weight or buffer became NaN or infinite
        (a finite loss does not prove it: with a huge lr the weights overflow after the last step's loss)."""
        models = [self.model] + ([self.eval_model] if self.ema is not None else [])
        tensors = [(name, t) for m in models for name, t in m.state_dict().items() if t.is_floating_point()]
        if bool(torch.stack([torch.isfinite(t).all() for _, t in tensors]).all()):  # one host sync
            return
        name = next(name for name, t in tensors if not bool(torch.isfinite(t).all()))
        raise NonFiniteLoss(f"weights became non-finite ({name}) by iteration {self.progress.iteration} "
                            f"(lr {self.schedule.lr:g}): training stopped, checkpoint not written; try a lower {option('lr')}. "
                            f"{self.last_good_checkpoint()}")

    def last_good_checkpoint(self) -> str:
        return f"The last good checkpoint, if any, is in {self.run.checkpoints}"

    # Checkpoints and the summary ----------------------------------------------------------------------

    def save(self, *, best: bool = False) -> None:
        """A self-describing checkpoint; only the main process writes, and never weights that are no
        longer finite (every process checks: their weights are the same)."""
        self.check_finite_weights()
        if self.run.writer:
            self.run.write_checkpoint(self.as_checkpoint(), best=best)

    def as_checkpoint(self) -> dict[str, Any]:
        """The run as a checkpoint: how to rebuild and feed the model, its weights, and where training is."""
        progress = self.progress
        metrics = {"epoch_stats": asdict(progress.stats), "train_seconds": progress.train_seconds,
                   "train_images": progress.train_images, "best": progress.best, "last": progress.last,
                   "pretrained": progress.pretrained, "world_size": self.ctx.world_size,
                   "process_changes": progress.process_changes}
        state = TrainingState(
            epoch=progress.epoch, batch=progress.batch, iteration=progress.iteration,
            optimizer=self.optimizer.state_dict(), scheduler=self.schedule.state_dict(), scaler=self.scaler.state_dict(),
            rng=rng_state(self.device), metrics=metrics,
            train_state_dict=self.model.state_dict() if self.ema is not None else None,
            ema=self.ema.state_dict() if self.ema is not None else None)
        return build_checkpoint(**run_description(self.config, self.bundle), state_dict=self.eval_model.state_dict(), training=state)

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Put the run back exactly where ``ckpt`` left it."""
        self.model.load_state_dict(ckpt.get("train_state_dict", ckpt["state_dict"]))
        if self.ema is not None:
            self.ema.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        use_fused_update(self.optimizer, self.device.type == "cuda")  # the saved groups name the device they ran on
        self.schedule.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"], self.device)
        m, progress = ckpt["metrics"], self.progress
        progress.epoch, progress.batch, progress.iteration = ckpt["epoch"], ckpt["batch"], ckpt["iteration"]
        progress.stats = EpochStats(**m["epoch_stats"])
        progress.train_seconds, progress.train_images = m["train_seconds"], m["train_images"]
        progress.best, progress.last, progress.pretrained = m["best"], m["last"], m["pretrained"]
        progress.process_changes = list(m.get("process_changes", []))
        self.refuse_spent_budget()
        self.note_process_count(m.get("world_size"))

    def note_process_count(self, saved: int | None) -> None:
        """A run resumed with another number of processes (torchrun's 2 -> 1) goes on with the same
        global batch, but each step's batch-norm statistics and the split of the data over processes
        change: its numbers will differ from an uninterrupted run's, so the log and summary.json say so."""
        if saved is None or saved == self.ctx.world_size:
            return
        change = f"iteration {self.progress.iteration}: {saved} -> {self.ctx.world_size} processes"
        self.progress.process_changes.append(change)
        self.log.warning(f"resuming a run of {saved} processes with {self.ctx.world_size} ({change}): the global batch is "
                         "the same, but batch-norm statistics per process differ, so the numbers will differ from an "
                         "uninterrupted run's (recorded in summary.json's process_changes)")

    def refuse_spent_budget(self) -> None:
        """A resume under a budget the run has already passed (``--epochs 1`` after a stop in epoch 2)
        has no step to take and no epoch boundary to stop at: refused, naming a budget that works.
        A budget that ends exactly where the run stopped finishes that epoch (its evaluation)."""
        done, total = self.progress.iteration, self.schedule.total_iters
        if done <= total:
            return
        per_epoch = max(1, len(self.train_loader))
        raise ResnetlabError(
            f"cannot resume {self.run.path}: it has trained {done} iterations, more than the budget now given "
            f"({total} iterations: epochs {self.config.epochs}, max_iters {self.config.max_iters}): give at least "
            f"{option('epochs', math.ceil(done / per_epoch))} or {option('max_iters', done)}, or resume with the run's own budget")

    # The run folder's start and end ----------------------------------------------------------------

    def start(self, config_record: dict[str, Any], data_record: dict[str, Any]) -> None:
        """A fresh run: its config.yaml and classes (the run it replaces is then deleted), and data.json."""
        self.run.write_start(config_record, self.bundle.classes)
        self.run.write_data_record(data_record)

    def continue_from(self, ckpt: dict[str, Any]) -> None:
        """A resumed run: its state from ``ckpt``, and metrics.csv without the epochs ``ckpt`` has not completed."""
        self.restore(ckpt)
        progress = self.progress
        self.run.truncate_metrics(progress.epoch)
        self.log.info(f"resuming {self.run.path} at iteration {progress.iteration} "
                      f"(epoch {progress.epoch + 1}, batch {progress.batch})")

    def finish(self, *, recipe_changes: dict[str, Any] | None, command: str) -> dict[str, Any]:
        """The trained run's weights.pth (and preprocess.json beside it) and summary.json, returned: with
        what the run changed of its recipe and the ``command`` that repeats it."""
        summary = {**with_recipe_changes(self.summary(), recipe_changes), "command": command}
        self.run.write_weights(self.eval_model.state_dict(), weights_sidecar(self.as_checkpoint()))
        self.run.write_summary(summary)
        return summary

    def summary(self) -> dict[str, Any]:
        """The summary.json content (the run folder's contract in ARCHITECTURE.md)."""
        config, progress = self.config, self.progress
        last = progress.last or {}
        final = {k: last.get(k) for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
        summary: dict[str, Any] = {
            "model": config.model, "dataset": config.dataset, "recipe": config.recipe,
            "epochs": progress.epoch, "iterations": progress.iteration,
            "params": sum(p.numel() for p in self.model.parameters()),
            "world_size": self.ctx.world_size, "device": str(next(self.model.parameters()).device), "precision": config.precision,
            "train_seconds": progress.train_seconds,
            "images_per_second": progress.train_images / progress.train_seconds if progress.train_seconds else 0.0,
            "final": final, "classes": list(self.bundle.classes), "command": " ".join(sys.argv),
        }
        if progress.process_changes:
            summary["process_changes"] = list(progress.process_changes)
        if self.val_loader is not None:
            final.update(val_loss=last.get("val_loss"), val_acc=last.get("val_acc"))
            summary["best"] = {k: progress.best[k] for k in ("epoch", "iteration", "val_loss", "val_acc", "test_loss", "test_acc")}
        if progress.pretrained is not None:
            summary["pretrained"] = progress.pretrained
        return summary


def classification_sums(logits: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """(loss sum, correct, images) of collected logits as numbers (zeros for an empty shard)."""
    return classification_totals(logits, labels).tolist() if len(labels) else [0.0, 0.0, 0.0]


def crop_epochs(config: TrainConfig, iters_per_epoch: int) -> int | None:
    """The epochs that take random crops: all but the last ``uncropped_epochs`` of the budget (None: all)."""
    if not config.uncropped_epochs:
        return None
    return max(0, budget_epochs(training_budget(config, iters_per_epoch), iters_per_epoch) - config.uncropped_epochs)


def size_stages(config: TrainConfig, iters_per_epoch: int) -> tuple[tuple[int, int], ...]:
    """Progressive resizing as (image side, first epoch after the stage) pairs: ``progressive_ends``
    below 1 are fractions of the budget's epochs (rounded), others epoch counts."""
    if not config.progressive_sizes:
        return ()
    epochs = budget_epochs(training_budget(config, iters_per_epoch), iters_per_epoch)
    ends = [round(e * epochs) if e < 1 else int(e) for e in config.progressive_ends]
    if any(b <= a for a, b in zip(ends, ends[1:])):
        raise ResnetlabError(f"{option('progressive_ends')} {config.progressive_ends} end the stages at epochs {ends} of {epochs}: "
                             f"each stage needs at least one epoch of its own")
    return tuple(zip(config.progressive_sizes, ends))


def budget_epochs(total_iters: int, iters_per_epoch: int) -> int:
    """Epochs the budget touches, the last one possibly partial (what progress lines count to)."""
    return math.ceil(total_iters / max(1, iters_per_epoch))


def training_budget(config: TrainConfig, iters_per_epoch: int) -> int:
    """Optimizer steps of the whole run: min(epochs * iterations per epoch, max_iters)."""
    limits = [config.epochs * iters_per_epoch if config.epochs is not None else math.inf, config.max_iters or math.inf]
    return int(min(limits))


def set_train_mode(model: nn.Module, freeze_backbone: bool) -> None:
    """Training mode, except the frozen backbone's BatchNorm, which keeps its running statistics."""
    model.train()
    if freeze_backbone:
        for name, module in model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not in_classifier(name):
                module.eval()


def epoch_views(config: TrainConfig, final: bool) -> TestViews:
    """The run's test-time views; translations and ten crops (a pass per view) only in the final
    evaluation, so that watching the curve stays cheap."""
    views = TestViews.from_config(config.to_dict())
    return views if final else replace(views, shift=0, ten_crop=False)


def run_description(config: TrainConfig, bundle: DatasetBundle) -> dict[str, Any]:
    """What every checkpoint of this run says about it besides the weights (``build_checkpoint``'s
    arguments): enough to rebuild the model and feed it images as training did."""
    preprocess: dict[str, Any] = ({"pipeline": "photos", "resize": eval_resize(bundle.image_shape[1])}
                                  if bundle.pipeline == "photos" else {"pipeline": "small"})
    preprocess["exif_orientation"] = config.exif_orientation  # how predict reads a tagged photo, as training did
    return {
        "model": {"name": config.model, "num_classes": bundle.num_classes, "in_channels": bundle.image_shape[0],
                  "options": dict(config.model_options)},
        "classes": list(bundle.classes), "mean": bundle.mean, "std": bundle.std, "input_size": list(bundle.image_shape),
        "preprocess": preprocess, "dataset": {"name": config.dataset, "data_dir": config.data_dir},
        "config": config.to_dict(), "test_views": epoch_views(config, final=True).as_dict(),
    }
