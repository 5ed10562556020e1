"""``train(config)``: plain functions (data, model, optimizer, schedule, epochs, evaluation,
checkpoints) tied together in one short loop that survives interruption bit-exactly.

Resume is exact on the CPU because nothing hides state: the loader's order and augmentation
come from (seed, epoch), and the checkpoint holds model, optimizer, schedule (with the error
warm-up), EMA, RNG, the position (epoch, batch) and the running totals of the current epoch.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from resnetlab.checkpoint import atomic_save, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from resnetlab.data import Augmentation, DatasetBundle, TensorLoader, create_loader
from resnetlab.data.factory import with_usable_std
from resnetlab.data.photo_loader import PhotoLoader
from resnetlab.data.photos import IMAGENET_MEAN, IMAGENET_STD, eval_resize
from resnetlab.data.streaming import StreamingLoader
from resnetlab.devices import host_check_interval, memory_format, mixed_precision, resolve_device, tune_for_fixed_sizes
from resnetlab.errors import ResnetlabError
from resnetlab.evaluation.logits import loader_logits
from resnetlab.evaluation.test_views import TestViews
from resnetlab.memory import check_image_size
from resnetlab.models import create_model
from resnetlab.precision import resolve_precision
from resnetlab.training import distributed
from resnetlab.training.config import DECIDED_AT_START, RESUME_MUTABLE, TrainConfig, config_from_dict, differing_fields, read_run_config
from resnetlab.training.engine import EpochStats, NonFiniteLoss, StepResult, train_one_epoch
from resnetlab.training.interrupt import StopRequest, TrainingInterrupted, stop_on_signals
from resnetlab.training.optim import create_optimizer
from resnetlab.training.run_folder import RunFolder
from resnetlab.training.schedules import Schedule, create_schedule

WEIGHTS_FILE = "weights.pth"  # the final model's state_dict(), beside class_indices.json


@dataclass
class Parts:
    """Everything built from the config and the data before the first step."""

    model: nn.Module  # the plain model: its state_dict is what checkpoints hold
    forward: nn.Module  # what runs training batches: model, wrapped in DDP and/or torch.compile
    ema: torch.optim.swa_utils.AveragedModel | None
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler
    autocast: Callable[[], Any]
    criterion: nn.Module
    train_loader: TensorLoader | PhotoLoader | StreamingLoader
    val_loader: TensorLoader | PhotoLoader | StreamingLoader | None
    test_loader: TensorLoader | PhotoLoader | StreamingLoader
    device: torch.device  # this process's training device

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model


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


def train(
    config: TrainConfig | None = None,
    *,
    resume: bool | str | Path = False,
    overwrite: bool = False,
    bundle: DatasetBundle | None = None,
    on_iteration: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train ``config`` into the run folder ``config.out`` and return its summary.json content.

    ``resume=True`` continues the run in ``config.out`` from its last checkpoint; ``resume=DIR``
    continues the run in DIR, with its own config.yaml when ``config`` is None (a given config may
    change only what a resume may: ``RESUME_MUTABLE``). ``bundle`` replaces ``load_dataset`` (tests,
    notebooks with their own data); ``on_iteration(i)`` is called after every step (tests use it to
    send a signal mid-epoch). Raises ``TrainingInterrupted`` after saving a checkpoint on SIGINT/SIGTERM.
    """
    config = config_to_resume(config, resume) if resume else config
    if config is None:
        raise ResnetlabError("train() needs a config, or resume=DIR to continue the run in DIR")
    check_batch_fits(config)
    ctx = distributed.from_environment()
    device = distributed.process_device(ctx, resolve_device(config.device))
    distributed.init_process_group(ctx, device)
    tune_for_fixed_sizes(device)
    run = RunFolder(config.out, writer=ctx.is_main)
    try:
        run.prepare(resume=resume, overwrite=overwrite)
        checkpoint = load_checkpoint(run.last, for_resume=True) if resume else None
        if checkpoint is not None:
            config = resume_config(config, checkpoint["config"])
        elif config.normalization == "auto":
            config = replace(config, normalization=normalization_for(run.readable(config.init_from)))  # recorded as decided
        asked = config.precision  # resolved once, then recorded: config.yaml, checkpoints, summary.json
        config = replace(config, precision=resolve_precision(asked, device, cpu_bf16=False if checkpoint is not None else None))
        log = run.open_log(config.quiet)
        log.info(f"precision {config.precision}" + (f" (auto on {device.type})" if asked == "auto" else ""))
        bundle = normalized(bundle if bundle is not None else load_data(config), config)
        bundle = with_usable_std(bundle, note=log.warning)  # std 0 (a constant channel) would make step 1 NaN
        if checkpoint is not None:
            check_same_classes(checkpoint["classes"], bundle.classes, run.path)
        if config.stream is None and bundle.pipeline == "photos":  # recorded as decided
            config = replace(config, stream=bundle.extra.get("storage") == "stream")
        model = build_model(config, bundle, device)
        # Fresh runs set their starting weights before DDP wraps the model and broadcasts rank 0's.
        pretrained = load_initial_weights(model, config.init_from, log, run.readable(config.init_from)) if checkpoint is None else None
        parts = build_parts(config, bundle, model, device, ctx)
        progress = Progress(pretrained=pretrained)
        if checkpoint is not None:
            restore(checkpoint, parts, progress)
            run.truncate_metrics(progress.epoch)
            log.info(f"resuming {run.path} at iteration {progress.iteration} (epoch {progress.epoch + 1}, batch {progress.batch})")
        else:
            run.write_start(config, bundle.classes)
        train_loop(config, bundle, parts, progress, run, ctx, on_iteration)
        summary = make_summary(config, bundle, parts, progress, ctx)
        if run.writer:  # the final weights as a plain state_dict(), for tools that know nothing of checkpoints
            atomic_save(parts.eval_model.state_dict(), run.path / WEIGHTS_FILE)
        run.write_summary(summary)
        return summary
    except RuntimeError as exc:
        if ctx.enabled and distributed.peer_failed(exc):
            raise ResnetlabError(f"another process of this {ctx.world_size}-process run stopped (its own message says why), "
                                 f"so rank {ctx.rank} stops too: {str(exc).splitlines()[0][:200]}") from None
        raise
    finally:
        run.close()
        distributed.shutdown()


def config_to_resume(config: TrainConfig | None, resume: bool | str | Path) -> TrainConfig:
    """The config of the run ``resume`` names (True: ``config.out``), refusing a folder no run started."""
    if resume is True and config is None:
        raise ResnetlabError("train(resume=True) needs the config of the run to continue, or resume=DIR")
    folder = Path(config.out) if resume is True else Path(resume)
    saved = folder / "config.yaml"
    if not saved.is_file():
        raise ResnetlabError(f"cannot resume {folder}: it is not a run folder (no config.yaml); "
                             "pass the --out folder of a run that 'resnetlab train' started")
    return replace(config, out=str(folder)) if config is not None else replace(read_run_config(saved), out=str(folder))


def load_data(config: TrainConfig) -> DatasetBundle:
    """The one place training reads data (``train(..., bundle=)`` bypasses it)."""
    from resnetlab.data import load_dataset

    val_split = int(config.val_split) if config.val_split >= 1 else config.val_split
    budget = int(config.memory_budget_gb * 2**30) if config.memory_budget_gb else None
    return load_dataset(config.dataset, config.data_dir, val_split=val_split, seed=config.seed, subset=config.subset,
                        image_size=config.image_size, skip_bad_images=config.skip_bad_images, memory_budget=budget,
                        stream=config.stream)


def normalization_for(init_from: str | None) -> str:
    """``auto`` decided: ImageNet's mean/std for torchvision (ImageNet) weights, the data's own otherwise."""
    if not init_from:
        return "dataset"
    from resnetlab.pretrained import read_state_dict

    _, ours = read_state_dict(init_from)
    return "dataset" if ours is not None else "imagenet"


def normalized(bundle: DatasetBundle, config: TrainConfig) -> DatasetBundle:
    """The bundle with the normalisation the config asks for (the checkpoint records it)."""
    if config.normalization == "imagenet":
        channels = bundle.image_shape[0]
        if channels != 3:
            raise ResnetlabError(f"ImageNet normalisation is for RGB images; these have {channels} channel(s): use --normalization dataset")
        return replace(bundle, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return bundle


def check_batch_fits(config: TrainConfig) -> None:
    """Refuse an ``image_size`` whose batches alone exceed the machine's memory, before any folder or data."""
    if config.image_size:
        check_image_size((3, config.image_size, config.image_size), config.batch_size,
                         f"a batch of --image-size {config.image_size}", "lower --image-size or --batch-size")


def resume_config(given: TrainConfig, saved_values: dict[str, Any]) -> TrainConfig:
    """The checkpoint's config, with only the fields that may change on resume taken from ``given``."""
    saved = config_from_dict(dict(saved_values), "the checkpoint's config")
    undecided = {k: getattr(saved, k) for k, value in DECIDED_AT_START.items() if getattr(given, k) == value}
    given = replace(given, **undecided)  # decided when the run started: keep that decision
    changed = set(differing_fields(saved, given))
    fixed = sorted(changed - set(RESUME_MUTABLE) - {"recipe"})
    if fixed:
        detail = ", ".join(f"{k} ({getattr(saved, k)!r} -> {getattr(given, k)!r})" for k in fixed)
        raise ResnetlabError(f"cannot change {detail} when resuming: resume with the run's own config.yaml")
    return replace(saved, **{k: getattr(given, k) for k in changed & set(RESUME_MUTABLE)})


def check_same_classes(saved: list[str], found: list[str], path: Any) -> None:
    """A resumed run must see the classes it started with, in the same order (class_indices.json)."""
    if list(saved) == list(found):
        return
    differ = next((i for i, (a, b) in enumerate(zip(saved, found)) if a != b), min(len(saved), len(found)))
    detail = (f"class {differ} is {saved[differ]!r} in the run but {found[differ]!r} in the data"[:160]
              if differ < min(len(saved), len(found)) else "")
    raise ResnetlabError(f"cannot resume {path}: the run was trained on {len(saved)} classes and the data has "
                         f"{len(found)}{'; ' + detail if detail else ''}: resume with the run's own data "
                         "(--data-dir), or start a new run (or 'resnetlab finetune --from' this one)")


def build_model(config: TrainConfig, bundle: DatasetBundle, device: torch.device) -> nn.Module:
    torch.manual_seed(config.seed)
    model = create_model(config.model, num_classes=bundle.num_classes, in_channels=bundle.image_shape[0], **config.model_options)
    return model.to(device, memory_format=memory_format(device, config.channels_last))


def build_loaders(config: TrainConfig, bundle: DatasetBundle, device: torch.device, ctx: distributed.Distributed):
    """Training loader (this rank's share of each global batch) and evaluation loaders."""
    common = dict(mean=bundle.mean, std=bundle.std, device=device, rank=ctx.rank, world_size=ctx.world_size,
                  channels_last=memory_format(device, config.channels_last) == torch.channels_last,
                  num_workers=config.workers, skip_bad_images=config.skip_bad_images)  # the last two: streaming only
    augmentation = Augmentation(crop_padding=config.crop_padding, flip=config.flip, cutout=config.cutout,
                                crop_epochs=crop_epochs(config, len(bundle.train) // config.batch_size),
                                copies=config.batch_copies, photo=config.photo_augmentation)
    train_loader = create_loader(bundle.train, config.batch_size, train=True, augmentation=augmentation, seed=config.seed, **common)
    if len(train_loader) == 0:
        raise ResnetlabError(f"batch_size {config.batch_size} is larger than the {len(bundle.train)} training images: lower --batch-size")
    # Photos are evaluated in training's batch size (ten crops make each ten forward passes).
    eval_batch = max(256, config.batch_size) if bundle.pipeline == "small" else config.batch_size
    val_loader = create_loader(bundle.val, eval_batch, **common) if bundle.val is not None and len(bundle.val) else None
    return train_loader, val_loader, create_loader(bundle.test, eval_batch, **common)


def build_parts(config: TrainConfig, bundle: DatasetBundle, model: nn.Module, device: torch.device,
                ctx: distributed.Distributed) -> Parts:
    if config.sync_bn:
        model = distributed.sync_batchnorm(model, ctx, device)
    train_loader, val_loader, test_loader = build_loaders(config, bundle, device, ctx)
    optimizer = create_optimizer(model, config)
    schedule = create_schedule(optimizer, config, training_budget(config, len(train_loader)), len(train_loader))
    autocast, scaler = mixed_precision(device, config.precision)
    ema = None
    if config.ema_decay:
        ema_fn = torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema_decay)
        ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=ema_fn, use_buffers=True)
    forward = distributed.wrap_model(model, ctx, device)
    if config.compile:
        forward = torch.compile(forward)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    return Parts(model, forward, ema, optimizer, schedule, scaler, autocast, criterion, train_loader, val_loader, test_loader, device)


def crop_epochs(config: TrainConfig, iters_per_epoch: int) -> int | None:
    """The epochs that take random crops: all but the last ``uncropped_epochs`` of the budget (None: all)."""
    if not config.uncropped_epochs:
        return None
    return max(0, budget_epochs(training_budget(config, iters_per_epoch), iters_per_epoch) - config.uncropped_epochs)


def budget_epochs(total_iters: int, iters_per_epoch: int) -> int:
    """Epochs the budget touches, the last one possibly partial (what progress lines count to)."""
    return math.ceil(total_iters / max(1, iters_per_epoch))


def training_budget(config: TrainConfig, iters_per_epoch: int) -> int:
    """Optimizer steps of the whole run: min(epochs * iterations per epoch, max_iters)."""
    limits = [config.epochs * iters_per_epoch if config.epochs is not None else math.inf, config.max_iters or math.inf]
    return int(min(limits))


def load_initial_weights(model: nn.Module, init_from: str | None, log: Any, read_from: str | None = None) -> dict[str, Any] | None:
    """Fresh runs only: weights from a checkpoint or a torchvision file (``init_from``, read from
    ``read_from`` when ``--overwrite`` has set the run it belongs to aside)."""
    if not init_from:
        return None
    from resnetlab.pretrained import load_pretrained  # fine-tuning module, loaded on demand

    report = load_pretrained(model, read_from or init_from)
    log.info(f"initialised from {init_from}: {_short(report)}")
    return report


def set_train_mode(model: nn.Module, freeze_backbone: bool) -> None:
    """Training mode, except the frozen backbone's BatchNorm, which keeps its running statistics."""
    model.train()
    if freeze_backbone:
        for name, module in model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not name.startswith("fc"):
                module.eval()


def train_loop(config: TrainConfig, bundle: DatasetBundle, parts: Parts, progress: Progress, run: RunFolder,
               ctx: distributed.Distributed, on_iteration: Callable[[int], None] | None) -> None:
    """Epochs until the budget is spent; a signal saves a checkpoint and raises TrainingInterrupted."""
    total = parts.schedule.total_iters
    epochs = budget_epochs(total, len(parts.train_loader))
    log = run.log
    with stop_on_signals() as stop:
        while progress.iteration < total:
            if train_epoch(config, parts, progress, stop, ctx, epochs, on_iteration, log):
                save(run.last, config, bundle, parts, progress, run)
                distributed.barrier()  # under torchrun no process exits (and gets rank 0 signalled again) before the save ends
                raise TrainingInterrupted(str(run.last), progress.epoch, progress.batch, progress.iteration)
            end_epoch(config, bundle, parts, progress, run, ctx, epochs)


def train_epoch(config: TrainConfig, parts: Parts, progress: Progress, stop: StopRequest, ctx: distributed.Distributed,
                epochs: int, on_iteration: Callable[[int], None] | None, log: Any) -> bool:
    """Continue the current epoch from ``progress.batch`` until its end, the budget or a signal
    (then True: every process saw the stop request at the same step)."""
    loader = parts.train_loader
    remaining = parts.schedule.total_iters - progress.iteration
    batches = itertools.islice(loader.batches(progress.epoch, start=progress.batch), remaining)
    bar = tqdm(total=len(loader), initial=progress.batch, desc=f"epoch {progress.epoch + 1}/{epochs}", unit="batch",
               leave=False, dynamic_ncols=True,
               disable=True if config.quiet or not ctx.is_main else None)  # None: no bar when not a terminal

    def after_step(step: StepResult) -> bool:
        progress.batch += 1
        warmup = parts.schedule.error_warmup
        if warmup is not None and warmup.active and warmup.observe(step.error):
            log.info(f"error warm-up over at iteration {step.iteration} (training error {warmup.error:.3f}): lr back to {config.lr}")
        if parts.ema is not None:
            parts.ema.update_parameters(parts.model)
        stats = progress.stats
        bar.set_postfix(loss=f"{stats.loss:.3f}", acc=f"{stats.acc:.3f}", img_s=f"{stats.images_per_second:.0f}", refresh=False)
        bar.update()
        if on_iteration is not None:
            on_iteration(step.iteration)
        if step.read_back or not ctx.enabled:  # processes agree where they sync anyway: all stop at one step
            stopped[0] = _agree(stop.requested, ctx, parts.device)
        return stopped[0]

    def check_every() -> int:  # the error warm-up reads every step's error while it lasts
        warmup = parts.schedule.error_warmup
        return 1 if warmup is not None and warmup.active else host_check_interval(parts.device)

    stopped = [False]
    set_train_mode(parts.model, config.freeze_backbone)
    try:
        progress.iteration = train_one_epoch(
            parts.forward, batches, parts.optimizer, parts.schedule, criterion=parts.criterion, stats=progress.stats,
            iteration=progress.iteration, autocast=parts.autocast, scaler=parts.scaler,
            reduce=distributed.sum_over_processes if ctx.enabled else None, after_step=after_step, check_every=check_every)
    except NonFiniteLoss as exc:
        raise NonFiniteLoss(f"{exc} (epoch {progress.epoch + 1}, lr {parts.schedule.lr:g}): training stopped; "
                            f"try a lower --lr. The last good checkpoint, if any, is in {config.out}/checkpoints") from None
    finally:
        bar.close()
    return stopped[0]


def _agree(flag: bool, ctx: distributed.Distributed, device: torch.device) -> bool:
    """All processes stop together when any one of them got the signal."""
    if not ctx.enabled:
        return flag
    return bool(distributed.reduce_across_processes([float(flag)], device).item())


def evaluate(model: nn.Module, loader: TensorLoader | PhotoLoader | StreamingLoader | None, config: TrainConfig,
             ctx: distributed.Distributed, views: TestViews) -> dict[str, float]:
    """Loss and accuracy over a whole split through the test-time ``views``, summed over the
    processes' shards."""
    if loader is None:
        return {"loss": math.nan, "acc": math.nan}
    bar = None if config.quiet or not ctx.is_main else "evaluating"
    logits, labels = loader_logits(model, loader, views, progress=bar)
    n = float(len(labels))
    loss_sum = nn.functional.cross_entropy(logits, labels, reduction="sum").item() if n else 0.0
    correct = (logits.argmax(1) == labels).sum().item() if n else 0.0
    if ctx.enabled:
        loss_sum, correct, n = distributed.reduce_across_processes([loss_sum, float(correct), n], loader.device).tolist()
    return {"loss": loss_sum / n, "acc": correct / n}


def end_epoch(config: TrainConfig, bundle: DatasetBundle, parts: Parts, progress: Progress, run: RunFolder,
              ctx: distributed.Distributed, epochs: int) -> None:
    """Evaluate, write the metrics row and the epoch line, save last.pt (and best.pt)."""
    if ctx.enabled:
        distributed.broadcast_buffers(parts.eval_model)
    views = epoch_views(config, final=progress.iteration >= parts.schedule.total_iters)
    started = time.perf_counter()
    with parts.autocast():  # the run's precision, as eval and predict use it later
        val = evaluate(parts.eval_model, parts.val_loader, config, ctx, views)
        test = evaluate(parts.eval_model, parts.test_loader, config, ctx, views)
    stats = progress.stats
    row = {"epoch": progress.epoch + 1, "iteration": progress.iteration, "lr": parts.schedule.lr,
           "train_loss": stats.loss, "train_acc": stats.acc, "val_loss": val["loss"], "val_acc": val["acc"],
           "test_loss": test["loss"], "test_acc": test["acc"], "epoch_seconds": stats.seconds,
           "images_per_second": stats.images_per_second, "eval_seconds": time.perf_counter() - started,
           "test_views": views.count}
    check_finite_outputs(row, parts, config, epochs, run)
    run.append_metrics(row)
    run.log.info(epoch_line(row, epochs))
    progress.epoch, progress.batch, progress.last = progress.epoch + 1, 0, row
    progress.train_seconds += stats.seconds
    progress.train_images += stats.images
    progress.stats = EpochStats()
    improved = parts.val_loader is not None and (progress.best is None or row["val_acc"] > progress.best["val_acc"])
    if improved:
        progress.best = row
    save(run.last, config, bundle, parts, progress, run)
    if improved or parts.val_loader is None:
        save(run.best, config, bundle, parts, progress, run)


def epoch_views(config: TrainConfig, final: bool) -> TestViews:
    """The run's test-time views; translations and ten crops (a pass per view) only in the final
    evaluation, so that watching the curve stays cheap."""
    views = TestViews.from_config(config.to_dict())
    return views if final else replace(views, shift=0, ten_crop=False)


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    views = f" ({row['test_views']} views)" if row.get("test_views", 1) > 1 else ""
    val = f"  val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}" if not math.isnan(row["val_acc"]) else ""
    return (f"epoch {row['epoch']}/{epochs}  iter {row['iteration']}  lr {row['lr']:.4g}  "
            f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}{val}  "
            f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f}{views}  "
            f"{row['epoch_seconds']:.1f}s  {row['images_per_second']:.0f} img/s")


def save(path: Any, config: TrainConfig, bundle: DatasetBundle, parts: Parts, progress: Progress, run: RunFolder) -> None:
    """A self-describing checkpoint (see checkpoint.py); only the main process writes, and never
    weights that are no longer finite (every process checks: their weights are the same)."""
    check_finite_weights(parts, progress.iteration, config)
    if run.writer:
        save_checkpoint(checkpoint_payload(config, bundle, parts, progress), path)


def check_finite_outputs(row: dict[str, Any], parts: Parts, config: TrainConfig, epochs: int, run: RunFolder) -> None:
    """Stop before this epoch is saved when its weights, or its evaluation losses, are no longer finite
    (weights can stay finite yet so large that the logits overflow: the loss is then NaN). The
    training loss is the engine's to check, step by step."""
    check_finite_weights(parts, row["iteration"], config)
    for split, loader in (("val", parts.val_loader), ("test", parts.test_loader)):
        if loader is not None and len(loader) and not math.isfinite(row[f"{split}_loss"]):
            run.log.info(epoch_line(row, epochs))
            raise NonFiniteLoss(f"the model's {split} loss became {row[f'{split}_loss']} at epoch {row['epoch']} "
                                f"(iteration {row['iteration']}, lr {row['lr']:g}): its outputs overflowed; training stopped, "
                                f"epoch not saved; try a lower --lr. The last good checkpoint, if any, is in {config.out}/checkpoints")


def check_finite_weights(parts: Parts, iteration: int, config: TrainConfig) -> None:
    """Stop the run, keeping the last good checkpoint, when a weight or buffer became NaN or infinite
    (a finite loss does not prove it: with a huge lr the weights overflow after the last step's loss)."""
    models = [parts.model] + ([parts.eval_model] if parts.ema is not None else [])
    tensors = [(name, t) for m in models for name, t in m.state_dict().items() if t.is_floating_point()]
    if bool(torch.stack([torch.isfinite(t).all() for _, t in tensors]).all()):  # one host sync
        return
    name = next(name for name, t in tensors if not bool(torch.isfinite(t).all()))
    raise NonFiniteLoss(f"weights became non-finite ({name}) by iteration {iteration} (lr {parts.schedule.lr:g}): "
                        f"training stopped, checkpoint not written; try a lower --lr. The last good checkpoint, if any, "
                        f"is in {config.out}/checkpoints")


def run_record(config: TrainConfig, bundle: DatasetBundle) -> dict[str, Any]:
    """What every checkpoint of this run says about it (the weights aside): enough to rebuild the
    model and feed it images as training did (``checkpoint.REQUIRED`` with a state_dict)."""
    return {
        "model": {"name": config.model, "num_classes": bundle.num_classes, "in_channels": bundle.image_shape[0],
                  "options": dict(config.model_options)},
        "classes": list(bundle.classes),
        "normalization": {"mean": [float(m) for m in bundle.mean], "std": [float(s) for s in bundle.std]},
        "input_size": list(bundle.image_shape),
        "preprocess": preprocess_record(bundle),
        "dataset": {"name": config.dataset, "data_dir": config.data_dir},
        "config": config.to_dict(),
        "test_views": epoch_views(config, final=True).as_dict(),  # what eval and predict use by default
    }


def checkpoint_payload(config: TrainConfig, bundle: DatasetBundle, parts: Parts, progress: Progress) -> dict[str, Any]:
    payload = {
        **run_record(config, bundle),
        "epoch": progress.epoch, "batch": progress.batch, "iteration": progress.iteration,
        "state_dict": parts.eval_model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.schedule.state_dict(),
        "scaler": parts.scaler.state_dict(),
        "rng": rng_state(parts.device),
        "metrics": {"epoch_stats": asdict(progress.stats), "train_seconds": progress.train_seconds,
                    "train_images": progress.train_images, "best": progress.best, "last": progress.last,
                    "pretrained": progress.pretrained},
    }
    if parts.ema is not None:
        payload["train_state_dict"] = parts.model.state_dict()
        payload["ema"] = parts.ema.state_dict()
    return payload


def preprocess_record(bundle: DatasetBundle) -> dict[str, Any]:
    """How a file becomes the model's input, for ``predict``: a photo is resized (shorter side) and
    centre-cropped to ``input_size``; small images are resized to it whole."""
    if bundle.pipeline == "photos":
        return {"pipeline": "photos", "resize": eval_resize(bundle.image_shape[1])}
    return {"pipeline": "small"}


def restore(ckpt: dict[str, Any], parts: Parts, progress: Progress) -> None:
    """Put a run back exactly where ``ckpt`` left it."""
    parts.model.load_state_dict(ckpt.get("train_state_dict", ckpt["state_dict"]))
    if parts.ema is not None:
        parts.ema.load_state_dict(ckpt["ema"])
    parts.optimizer.load_state_dict(ckpt["optimizer"])
    parts.schedule.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler"):
        parts.scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"], parts.device)
    m = ckpt["metrics"]
    progress.epoch, progress.batch, progress.iteration = ckpt["epoch"], ckpt["batch"], ckpt["iteration"]
    progress.stats = EpochStats(**m["epoch_stats"])
    progress.train_seconds, progress.train_images = m["train_seconds"], m["train_images"]
    progress.best, progress.last, progress.pretrained = m["best"], m["last"], m["pretrained"]


def make_summary(config: TrainConfig, bundle: DatasetBundle, parts: Parts, progress: Progress,
                 ctx: distributed.Distributed) -> dict[str, Any]:
    """The summary.json content (the run folder's contract in ARCHITECTURE.md)."""
    last = progress.last or {}
    final = {k: last.get(k) for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    summary: dict[str, Any] = {
        "model": config.model, "dataset": config.dataset, "recipe": config.recipe,
        "epochs": progress.epoch, "iterations": progress.iteration,
        "params": sum(p.numel() for p in parts.model.parameters()),
        "world_size": ctx.world_size, "device": str(next(parts.model.parameters()).device), "precision": config.precision,
        "train_seconds": progress.train_seconds,
        "images_per_second": progress.train_images / progress.train_seconds if progress.train_seconds else 0.0,
        "final": final, "classes": list(bundle.classes), "command": " ".join(sys.argv),
    }
    if parts.val_loader is not None:
        final.update(val_loss=last.get("val_loss"), val_acc=last.get("val_acc"))
        summary["best"] = {k: progress.best[k] for k in ("epoch", "iteration", "val_loss", "val_acc", "test_loss", "test_acc")}
    if progress.pretrained is not None:
        summary["pretrained"] = progress.pretrained
    return summary


def _short(report: Any) -> str:
    if isinstance(report, dict):
        return ", ".join(f"{k}: {len(v) if isinstance(v, (list, tuple)) else v}" for k, v in report.items())
    return str(report)
