"""``train(config)``: resolve the run (fresh or resumed), read its data, build its model with its
starting weights, then hand them to ``build_trainer``, whose Trainer trains and writes the run.

The parts a Trainer trains with are ``build.py``'s; the loop, and every file it writes while the run
trains, ``trainer.py``'s; the step ``step.py``'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetlab.checkpoint import load_checkpoint
from resnetlab.data import DatasetBundle, fingerprint, load_dataset
from resnetlab.data.layout import NAME_HASH
from resnetlab.data.photos import IMAGENET_MEAN, IMAGENET_STD
from resnetlab.devices import device_name, memory_format, resolve_device, tune_for_fixed_sizes
from resnetlab.errors import ResnetlabError, option
from resnetlab.files import writing
from resnetlab.models import create_model
from resnetlab.models.complexity import check_activation_memory, check_min_image_size, min_image_size
from resnetlab.models.layers import WEIGHT_INITS
from resnetlab.precision import resolve_precision
from resnetlab.pretrained import load_pretrained, read_state_dict
from resnetlab.run_lock import RunLock
from resnetlab.runs import CONFIG, RunFolder
from resnetlab.training import distributed
from resnetlab.training.build import build_trainer
from resnetlab.training.command import config_call
from resnetlab.training.config import (
    DECIDED_AT_START,
    RESUME_MUTABLE,
    TrainConfig,
    config_from_dict,
    describe_recipe,
    differing_fields,
    read_run_config,
    recipe_changes,
    with_recipe_changes,
)


def train(
    config: TrainConfig | None = None,
    *,
    resume: bool | str | Path = False,
    overwrite: bool = False,
    bundle: DatasetBundle | None = None,
    on_iteration: Callable[[int], None] | None = None,
    accept_changed_data: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Train ``config`` into the run folder ``config.out`` and return its summary.json content.

    ``resume=True`` continues the run in ``config.out`` from its last checkpoint; ``resume=DIR``
    continues the run in DIR, with its own config.yaml when ``config`` is None (a given config may
    change only what a resume may: ``RESUME_MUTABLE``). ``bundle`` replaces ``load_dataset`` (tests,
    notebooks with their own data); ``on_iteration(i)`` is called after every step (tests use it to
    send a signal mid-epoch). A resume refuses an image folder whose images changed since the run
    started, naming what changed, unless ``accept_changed_data`` (then the log says so). ``command``
    is what summary.json records as repeating the run (None: the ``resnetlab.train`` call that
    resolves to ``config``). Raises ``TrainingInterrupted`` after saving a checkpoint on SIGINT/SIGTERM.
    """
    config = config_to_resume(config, resume) if resume else config
    if config is None:
        raise ResnetlabError("train() needs a config, or resume=DIR to continue the run in DIR")
    config = with_absolute_data_dir(config)
    if not resume:
        refuse_out_in_data(config)
    ctx = distributed.from_environment()
    device = distributed.process_device(ctx, resolve_device(config.device))
    check_batch_fits(config, device, ctx.world_size)
    distributed.init_process_group(ctx, device, timeout=config.collective_timeout)
    tune_for_fixed_sizes(device)
    run = RunFolder(config.out, writer=ctx.is_main)
    lock = RunLock(run.path)  # the main process's: one process at a time writes a run folder
    try:
        run.make(resume=resume)
        if run.writer and run.path.is_dir():
            with writing(lock.path):
                lock.acquire()
        run.prepare(resume=resume, overwrite=overwrite)
        checkpoint = load_checkpoint(run.last, for_resume=True) if resume else None
        # as asked, before auto values are decided; a resume keeps what its run recorded (absent: unknown)
        changes = recipe_changes(config) if checkpoint is None else run.read_config().get("recipe_changes")
        command = command or config_call(config)
        if checkpoint is not None:
            config = resume_config(config, checkpoint["config"])
            if config.max_iters is not None and checkpoint["iteration"] > config.max_iters:  # before the log: nothing written
                raise ResnetlabError(f"cannot resume {run.path}: it has trained {checkpoint['iteration']} iterations, more than the "
                                     f"budget now given (max_iters {config.max_iters}): give at least "
                                     f"{option('max_iters', checkpoint['iteration'])}, or resume with the run's own budget")
        elif config.normalization == "auto":
            config = replace(config, normalization=normalization_for(run.readable(config.init_from)))  # recorded as decided
        asked = config.precision  # resolved once, then recorded: config.yaml, checkpoints, summary.json
        config = replace(config, precision=resolve_precision(asked, device, cpu_bf16=False if checkpoint is not None else None))
        log = run.open_log(config.quiet)
        log.info(describe_recipe(config.recipe, changes))
        log.info(f"device {device_name(device)}, precision {config.precision}" + (f" (auto on {device.type})" if asked == "auto" else ""))
        record = run.read_data_record() if checkpoint is not None else {}
        bundle = normalized(bundle if bundle is not None else load_data(config, fingerprint.split_rule(record)), config)
        log.info(describe_data(config, bundle))
        check_native_size_fits(config, bundle, device, ctx.world_size)
        if checkpoint is not None:
            check_same_classes(checkpoint["classes"], bundle.classes, run.path)
            check_same_data(run, record, config, accept_changed_data)
        if config.stream is None and bundle.pipeline == "photos":  # recorded as decided
            config = replace(config, stream=bundle.extra.get("storage") == "stream")
        torch.manual_seed(config.seed)  # the run's random start: the model's weights and every global draw after
        model = build_model(config, bundle, device)
        # Fresh runs set their starting weights before DDP wraps the model and broadcasts rank 0's.
        pretrained = load_init_from(model, config.init_from, log, run.readable(config.init_from)) if checkpoint is None else None
        trainer = build_trainer(config, bundle, model, run=run, ctx=ctx, device=device, pretrained=pretrained,
                                on_iteration=on_iteration)
        try:
            if checkpoint is not None:
                trainer.continue_from(checkpoint)
            else:
                trainer.start(with_recipe_changes(config.to_dict(), changes), data_record(config, bundle))
            trainer.fit()
            return trainer.finish(recipe_changes=changes, command=command)
        finally:
            trainer.log.close()  # its TensorBoard events; the log lines close with the run folder
    except RuntimeError as exc:
        error = distributed.peer_error(exc, ctx, config.collective_timeout)
        if error is not None:
            raise error from None
        raise
    finally:
        try:
            run.close()
        finally:
            lock.release()
            distributed.shutdown()


def with_absolute_data_dir(config: TrainConfig) -> TrainConfig:
    """``data_dir`` as an absolute path, resolved once as the run starts: the run folder, copied or
    read from another directory (eval, report, resume), still finds its data where it was."""
    if not config.data_dir:
        return config
    return replace(config, data_dir=os.path.abspath(os.path.expanduser(config.data_dir)))


def config_to_resume(config: TrainConfig | None, resume: bool | str | Path) -> TrainConfig:
    """The config of the run ``resume`` names (True: ``config.out``), refusing a folder no run started."""
    if resume is True and config is None:
        raise ResnetlabError("train(resume=True) needs the config of the run to continue, or resume=DIR")
    folder = Path(config.out) if resume is True else Path(resume)
    saved = RunFolder(folder).config_file
    if not saved.is_file():
        raise ResnetlabError(f"cannot resume {folder}: it is not a run folder (no {CONFIG}); "
                             f"pass the {option('out')} folder of a run that 'resnetlab train' started")
    return replace(config, out=str(folder)) if config is not None else replace(read_run_config(saved), out=str(folder))


def refuse_out_in_data(config: TrainConfig) -> None:
    """A run folder inside the image folder it trains on (``--data-dir s5 --out s5/train/myrun``) would
    become a class folder of that data set, or images of one: refused before anything is created."""
    if config.dataset != "folder" or not config.data_dir or not config.out:
        return
    data, out = Path(config.data_dir).expanduser().resolve(), Path(config.out).expanduser().resolve()
    if out == data or data in out.parents:
        raise ResnetlabError(f"{option('out', config.out)} is inside the data folder {config.data_dir}: the run's files would "
                             f"become part of the data set it reads; pass an {option('out')} outside it")


def load_data(config: TrainConfig, split_rule: str = NAME_HASH) -> DatasetBundle:
    """The one place training reads data (``train(..., bundle=)`` bypasses it); ``split_rule``: a
    resumed run's own (its data.json's), so that a run split before ``NAME_HASH`` keeps its split."""
    val_split = int(config.val_split) if config.val_split >= 1 else config.val_split
    budget = int(config.memory_budget_gb * 2**30) if config.memory_budget_gb else None
    return load_dataset(config.dataset, config.data_dir, val_split=val_split, seed=config.seed, subset=config.subset,
                        image_size=config.image_size, skip_bad_images=config.skip_bad_images, memory_budget=budget,
                        stream=config.stream, exif_orientation=config.exif_orientation, split_rule=split_rule)


def normalization_for(init_from: str | None) -> str:
    """``auto`` decided: ImageNet's mean/std for torchvision (ImageNet) weights, the data's own otherwise."""
    if not init_from:
        return "dataset"
    _, ours = read_state_dict(init_from)
    return "dataset" if ours is not None else "imagenet"


def normalized(bundle: DatasetBundle, config: TrainConfig) -> DatasetBundle:
    """The bundle with the normalisation the config asks for (the checkpoint records it). A bundle of
    one's own (``train(bundle=)``) needs a std above 0 per channel, as ``load_dataset`` makes it."""
    if config.normalization == "imagenet":
        channels = bundle.image_shape[0]
        if channels != 3:
            raise ResnetlabError(f"ImageNet normalisation is for RGB images; these have {channels} channel(s): "
                                 f"use {option('normalization', 'dataset')}")
        return replace(bundle, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    if config.normalization == "none":  # pixels in [0, 1], as ToTensor gives them
        channels = bundle.image_shape[0]
        return replace(bundle, mean=(0.0,) * channels, std=(1.0,) * channels)
    if not all(s > 0 for s in bundle.std):
        raise ResnetlabError(f"the bundle's std {list(bundle.std)} has a channel at 0 (or NaN), which would make step 1 NaN: "
                             "pass it through resnetlab.data.factory.with_usable_std first (load_dataset does)")
    return bundle


def describe_data(config: TrainConfig, bundle: DatasetBundle) -> str:
    """The run's data in one line, with how its seeded split was made: "data folder at /d: 5 classes,
    train 3,000, val 300, test 370 images; val held out of train by val_split 0.1, seed 0"."""
    test_name = bundle.extra.get("test_split", "test")
    parts = {"train": bundle.train, **({"val": bundle.val} if bundle.val is not None else {}), test_name: bundle.test}
    counts = ", ".join(f"{name} {len(part):,}" for name, part in parts.items())
    line = f"data {bundle.name} at {bundle.location}: {bundle.num_classes} classes, {counts} images"
    if "split" in bundle.extra:  # an unsplit folder: its test split held out of each class folder
        split = bundle.extra["split"]
        line += f"; {test_name} held out of each class folder by val_split {split.get('val_split')}, seed {split.get('seed')}"
    elif bundle.val is not None:
        line += f"; val held out of train by val_split {config.val_split:g}, seed {config.seed}"
    if config.subset:
        line += f"; train is a seeded subset of {config.subset:,} (seed {config.seed})"
    return line


def check_batch_fits(config: TrainConfig, device: torch.device, world_size: int = 1) -> None:
    """Refuse an ``image_size`` the model cannot take (below its smallest), or whose training step
    (batch, activations, weights and their gradients) exceeds the device's memory, before any
    folder or data."""
    if not config.image_size:
        return
    what = option("image_size", config.image_size)
    check_min_image_size(config.model, config.image_size, what, config.model_options)
    per_process = config.batch_size * config.batch_copies // world_size  # each process's share of a step
    check_activation_memory(config.model, config.model_options, (3, config.image_size, config.image_size), max(1, per_process),
                            device, f"a training batch of {what}", f"lower {option('image_size')} or {option('batch_size')}", training=True)


def check_native_size_fits(config: TrainConfig, bundle: DatasetBundle, device: torch.device, world_size: int = 1) -> None:
    """``check_batch_fits`` for images kept at their native size (no ``image_size``: small images of
    one size), which only the data tells: a folder of 2x2 images is refused here, naming it, rather
    than failing in the model's layers. Photos are always resized to their crop, checked before."""
    if config.image_size or bundle.pipeline != "small":
        return
    channels, height, width = bundle.image_shape
    smallest = min_image_size(config.model, config.model_options)
    if min(height, width) < smallest:
        raise ResnetlabError(f"the images of {bundle.location} are {width}x{height}, below the smallest image {config.model} "
                             f"takes, {smallest} pixels (its layers shrink the image {smallest} times): "
                             f"pass {option('image_size', smallest)} (or more) to resize them")
    per_process = config.batch_size * config.batch_copies // world_size
    check_activation_memory(config.model, config.model_options, (channels, height, width), max(1, per_process), device,
                            f"a training batch of {width}x{height} images", f"lower {option('batch_size')} or {option('image_size')}",
                            training=True,
                            num_classes=bundle.num_classes)


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
                         f"({option('data_dir')}), or start a new run (or 'resnetlab finetune --init-from' this one)")


def data_record(config: TrainConfig, bundle: DatasetBundle) -> dict[str, Any]:
    """What an image folder holds as a run starts (data.json): its fingerprint and, for a folder
    without train/ and test/, the seeded split of its files; nothing for other data sets."""
    if config.dataset != "folder" or not config.data_dir:
        return {}
    return fingerprint.data_record(config.data_dir, bundle.extra.get("split"))


def check_same_data(run: RunFolder, record: dict[str, Any], config: TrainConfig, accept_changed_data: bool) -> None:
    """A resumed run must see the images it started on (data.json), unless told to go on anyway."""
    if config.dataset == "folder" and config.data_dir:
        fingerprint.refuse_changed_data(record, config.data_dir, f"cannot resume {run.path}", accept_changed_data,
                                        run.log.warning, doing="resuming")


def build_model(config: TrainConfig, bundle: DatasetBundle, device: torch.device) -> nn.Module:
    """The run's model on ``device``, its weights drawn from the global generator (seeded by the caller)."""
    model = create_model(config.model, num_classes=bundle.num_classes, in_channels=bundle.image_shape[0], **config.model_options)
    initialise = WEIGHT_INITS[config.init]
    if initialise is not None:  # kaiming: the model's own weights, drawn above
        initialise(model)
    return model.to(device, memory_format=memory_format(device, config.channels_last))


def load_init_from(model: nn.Module, init_from: str | None, log: Any, read_from: str | None = None) -> dict[str, Any] | None:
    """Fresh runs only: weights from a checkpoint or a torchvision file (``init_from``, read from
    ``read_from`` when ``--overwrite`` has set the run it belongs to aside)."""
    if not init_from:
        return None
    report = load_pretrained(model, read_from or init_from)
    log.info(f"initialised from {init_from}: {_short(report)}")
    return report


def _short(report: Any) -> str:
    if isinstance(report, dict):
        return ", ".join(f"{k}: {len(v) if isinstance(v, (list, tuple)) else v}" for k, v in report.items())
    return str(report)
