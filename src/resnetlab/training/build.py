"""``build_trainer``: the one place a run's training parts are put together.

``train`` (run.py) resolves the run folder, reads the data and builds the model with its starting
weights; ``build_trainer`` turns them into a ready ``Trainer``, in this order: SyncBatchNorm, the
frozen backbone, the loaders, the optimizer over what trains, the schedule, the precision
(autocast and the gradient scaler), the weight average, DDP and ``torch.compile`` around the
forward, the step and its CUDA graph, the run's log. The Trainer then only trains and records.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from resnetlab.data import Augmentation, DatasetBundle, create_loader
from resnetlab.data.loader import batch_count
from resnetlab.devices import memory_format
from resnetlab.errors import ResnetlabError, option
from resnetlab.evaluation.logits import evaluation_batch_size
from resnetlab.precision import autocast, grad_scaler
from resnetlab.runs import RunFolder
from resnetlab.training import distributed
from resnetlab.training.config import TrainConfig
from resnetlab.training.ema import WeightAverage
from resnetlab.training.optim import create_optimizer, freeze_backbone
from resnetlab.training.run_log import RunLog
from resnetlab.training.schedules import create_schedule
from resnetlab.training.step import GraphedStep, StepParts, graphs_unsupported
from resnetlab.training.trainer import Loaders, Progress, Trainer, crop_epochs, size_stages, training_budget


def build_trainer(config: TrainConfig, bundle: DatasetBundle, model: nn.Module, *, run: RunFolder,
                  ctx: distributed.Distributed, device: torch.device, pretrained: dict[str, Any] | None = None,
                  on_iteration: Callable[[int], None] | None = None) -> Trainer:
    """A Trainer ready to ``fit`` ``model`` (its starting weights set, on ``device``) on ``bundle``
    into ``run`` (prepared, its log open); ``pretrained``: what ``init_from`` loaded."""
    log = RunLog(run.log, tensorboard_dir=run.tensorboard if run.writer else None,
                 shows_progress=not config.quiet and ctx.is_main)
    model = distributed.sync_batchnorm(model, ctx, device) if config.sync_bn else model
    if config.freeze_backbone:
        freeze_backbone(model)
    loaders = build_loaders(config, bundle, device, ctx)
    optimizer = create_optimizer(model, config, fused=device.type == "cuda")
    iterations = len(loaders[0])
    schedule = create_schedule(optimizer, config, training_budget(config, iterations), iterations)
    in_precision = functools.partial(autocast, device, config.precision)
    scaler = grad_scaler(device, config.precision)
    ema = WeightAverage(model, config.ema_decay) if config.ema_decay else None
    forward = distributed.wrap_model(model, ctx, device)
    if config.compile:
        forward = torch.compile(forward)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    step_parts = StepParts(forward, criterion, optimizer, in_precision, scaler)
    return Trainer(config=config, bundle=bundle, run=run, log=log, ctx=ctx, device=device, model=model, loaders=loaders,
                   optimizer=optimizer, schedule=schedule, autocast=in_precision, scaler=scaler, ema=ema, step_parts=step_parts,
                   graphed_step=graphed_step(config, step_parts, device, ctx, log), progress=Progress(pretrained=pretrained),
                   on_iteration=on_iteration)


def build_loaders(config: TrainConfig, bundle: DatasetBundle, device: torch.device, ctx: distributed.Distributed) -> Loaders:
    """Training loader (this rank's share of each global batch) and evaluation loaders."""
    common = dict(mean=bundle.mean, std=bundle.std, device=device, rank=ctx.rank, world_size=ctx.world_size,
                  channels_last=memory_format(device, config.channels_last) == torch.channels_last,
                  num_workers=config.workers, skip_bad_images=config.skip_bad_images,  # these two: streaming only
                  photo_views=config.photo_views)  # photos only
    iterations = batch_count(len(bundle.train), config.batch_size, drop_last=config.drop_last, train=True, world_size=ctx.world_size)
    augmentation = Augmentation(crop_padding=config.crop_padding, flip=config.flip, cutout=config.cutout,
                                crop_epochs=crop_epochs(config, iterations), copies=config.batch_copies, photo=config.photo_augmentation,
                                size_stages=size_stages(config, iterations), stage_mode=config.progressive_mode)
    check_progressive_sizes(config, bundle)
    train_loader = create_loader(bundle.train, config.batch_size, train=True, augmentation=augmentation, seed=config.seed,
                                 drop_last=config.drop_last, **common)
    if len(train_loader) == 0:
        raise ResnetlabError(f"batch_size {config.batch_size} is larger than the {len(bundle.train)} training images: "
                             f"lower {option('batch_size')}")
    eval_batch = evaluation_batch_size(bundle.pipeline, config.batch_size, device)
    val_loader = create_loader(bundle.val, eval_batch, **common) if bundle.val is not None and len(bundle.val) else None
    return train_loader, val_loader, create_loader(bundle.test, eval_batch, **common)


def check_progressive_sizes(config: TrainConfig, bundle: DatasetBundle) -> None:
    """Progressive resizing shrinks small images held in memory, never beyond their own size."""
    if not config.progressive_sizes:
        return
    if bundle.pipeline == "photos":
        raise ResnetlabError(f"{option('progressive_sizes')} (progressive resizing) applies to small images (CIFAR, MNIST, folders of "
                             f"thumbnails), not to photos: set the photos' training crop with {option('image_size')}")
    side = min(bundle.image_shape[1:])
    if max(config.progressive_sizes) > side:
        raise ResnetlabError(f"{option('progressive_sizes')} {config.progressive_sizes} has a side larger than the {side}-pixel images: "
                             f"give sides of at most {side}")


def graphed_step(config: TrainConfig, parts: StepParts, device: torch.device, ctx: distributed.Distributed,
                 log: RunLog) -> GraphedStep | None:
    """The CUDA-graph step where the config asks for it and the run allows it (None: eager steps)."""
    if not config.cuda_graphs:
        return None
    why_not = graphs_unsupported(device, optimizer=config.optimizer, precision=config.precision,
                                 world_size=ctx.world_size, compiled=config.compile)
    if why_not is not None:
        if device.type == "cuda":
            log.info(f"CUDA graphs off: {why_not}")
        return None
    log.info("CUDA graphs on: each training step is replayed as one graph (--no-cuda-graphs: eager steps)")
    return GraphedStep(parts, on_failure=lambda why: log.warning(
        f"CUDA graph capture failed ({why}): training goes on with eager steps (--no-cuda-graphs avoids the attempt)"))
