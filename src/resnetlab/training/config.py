"""Training configuration: one typed dataclass whose defaults are the paper's CIFAR-10 recipe.

Layers, last one wins: ``TrainConfig`` defaults < recipe YAML (``recipes/<name>.yaml``, plus
its ``per_family`` and ``per_model`` sections for the chosen model) < ``--config FILE`` < overrides (command-line
flags). The resolved config is written to the run folder as ``config.yaml`` (itself a valid
``--config`` file) and stored inside every checkpoint as plain types.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from resnetlab.config_values import check_seed, check_value, check_values, load_yaml, read_yaml_file, shown
from resnetlab.data.orientation import EXIF_ORIENTATIONS
from resnetlab.errors import ResnetlabError
from resnetlab.precision import PRECISIONS

# No torch here (the registry, the photo loader and torch.distributed load where they are used):
# ``resnetlab train --help`` builds its flags from this module in a fraction of torch's import time.

DEFAULT_RECIPE = "paper"
COLLECTIVE_TIMEOUT = 600.0  # seconds; collective_timeout's default (its help says why), training.distributed's too
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("multistep", "cosine", "linear")
SCHEDULE_UNITS = ("iterations", "epochs")
NORMALIZATIONS = ("auto", "imagenet", "dataset", "none")
INITS = ("kaiming", "xavier")


def setting(default: Any, help: str) -> Any:
    """A field whose ``--help`` text lives in its metadata: one source for the code and the CLI
    (``cli.train_cmd``). A list or dict default is copied for every config."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything that decides a training run. Defaults: He et al. 2016, Section 4.2."""

    # What to train, on what, and where the run folder goes
    model: str = setting("resnet20", "registered model name (resnetlab models)")
    model_options: dict[str, Any] = setting({}, "create_model keyword options")
    init: str = setting("kaiming", "a fresh model's starting weights: kaiming (each model's own: He et al.'s) | xavier "
                                   "(xavier_uniform_ on every Conv2d and Linear weight, as d2l's train_ch6)")
    dataset: str = setting("cifar10", "cifar10 | cifar100 | mnist | fashion-mnist | folder (DIR/train/<class>/*)")
    data_dir: str | None = setting(None, "the dataset's folder (None: the download cache, $RESNETLAB_DATA or ~/.cache/resnetlab)")
    out: str = setting("runs/run", "the run folder")
    recipe: str | None = setting(None, "the recipe this config was resolved from (for the record)")

    # Budget: the run stops at min(epochs * iterations per epoch, max_iters)
    epochs: int | None = setting(None, "passes over the training split (None: as many as max_iters needs)")
    max_iters: int | None = setting(64_000, "optimizer steps; paper: 64k")
    batch_size: int = setting(128, "images per optimizer step, GLOBAL over all processes")
    drop_last: bool = setting(True, "training: leave out each epoch's last partial batch (other images each epoch, every step "
                                    "the same size); --no-drop-last trains on it where every process gets 2 or more of its "
                                    "images (BatchNorm's minimum)")

    # Optimizer
    optimizer: str = setting("sgd", "sgd | adam")
    lr: float = setting(0.1, "peak learning rate (for batch_size images per step)")
    momentum: float = setting(0.9, "SGD momentum (Adam: beta1)")
    nesterov: bool = setting(False, "Nesterov momentum (SGD)")
    weight_decay: float = setting(1e-4, "L2 penalty coefficient")
    norm_weight_decay: float | None = setting(None, "weight decay of normalization layers' weights and biases (None: "
                                                    "weight_decay; biases take bias_weight_decay when it is set)")
    bias_weight_decay: float | None = setting(None, "weight decay of every bias, normalization layers' too (None: weight_decay)")
    label_smoothing: float = setting(0.0, "fraction of the target mass spread over all classes")

    # Learning-rate schedule (stepped every iteration)
    schedule: str = setting("multistep", "multistep | cosine (to 0) | linear (to 0), each after any warm-up")
    schedule_unit: str = setting("iterations", "lr changes every iteration, or only at epoch boundaries")
    milestones: list[float] = setting([0.5, 0.75], "multistep: <1 fraction of budget; >=1 count in schedule_unit")
    lr_decay: float = setting(0.1, "multistep: lr multiplier at each milestone")
    warmup: float = setting(0.0, "linear warm-up length: <1 fraction of budget, >=1 count in schedule_unit")
    error_warmup_lr: float | None = setting(None, "paper's ResNet-110 warm-up: this lr until train error < threshold")
    error_warmup_threshold: float = setting(0.8, "training error (fraction) that ends the error warm-up")

    # Weight averaging and evaluation
    ema_decay: float = setting(0.0, "exponential moving average of weights per step (0: off); evaluated when on")
    test_time_flip: bool = setting(False, "evaluate the mean of each image's and its mirror image's logits")
    test_time_shift: int = setting(0, "also average every move by up to this many pixels, black borders (0: off; final evaluation only)")
    test_time_ten_crop: bool = setting(False, "photo folders: average the paper's 10 crops (corners, centre, mirrored) "
                                              "in the final evaluation")

    # Augmentation (data.loader.Augmentation)
    crop_padding: int = setting(4, "pixels of zero padding before the random crop (0: no crop)")
    flip: str = setting("random", "random | alternate (mirror every other epoch) | none")
    cutout: int = setting(0, "side of a zeroed square in pixels (0: off)")
    uncropped_epochs: int = setting(0, "the last N epochs train on whole images, as the test sees them (0: crop in every epoch)")
    batch_copies: int = setting(1, "views of each image per batch, each its own crop and flip (batch augmentation; 1: off)")
    progressive_sizes: list[float] = setting([], "progressive resizing (small images): the training images' side in the first stages, "
                                                 "e.g. 20 24 (smaller images cost less: a network ending in global average "
                                                 "pooling runs unchanged on them); full size after the last stage")
    progressive_ends: list[float] = setting([], "the epoch where each progressive_sizes stage ends: <1 fraction of the epochs, >=1 count")
    progressive_mode: str = setting("resize", "progressive resizing's images: resize (the whole image made smaller, its crop "
                                              "padding in proportion) | crop (a smaller random crop of the padded full-size image)")
    photo_augmentation: str = setting("random-resized-crop", "photos: random-resized-crop (torchvision's) | "
                                                             "scale (paper: 256-480 px, PCA colour)")

    # Data
    val_split: float = setting(0, "validation images held out of train: count (>=1) or fraction (<1)")
    subset: int | None = setting(None, "keep only this many training images (quick runs)")
    image_size: int | None = setting(None, "small images: resize to this side (None: native); "
                                           "photo folders: the training crop S (None: 224)")
    normalization: str = setting("auto", "auto (imagenet for torchvision init_from weights, else dataset) | imagenet | dataset | "
                                         "none (pixels in [0, 1], as ToTensor gives)")
    memory_budget_gb: float | None = setting(None, "photo folders: GiB the decoded cache may take (None: half the machine's memory)")
    stream: bool | None = setting(None, "photo folders: decode from disk each epoch in worker processes (None: if the cache would not fit)")
    workers: int | None = setting(None, "streaming: decoding processes (None: the cores but one, at least 1; 0: in the training process)")
    photo_views: str = setting("auto", "photos: where training crops are cut (and streamed JPEGs decoded): per-photo (the CPU, one "
                                       "at a time) | batched (the training device, whole batches; nvjpeg on CUDA) | auto (batched on CUDA)")
    skip_bad_images: bool = setting(False, "image folders: leave out unreadable images (named in the log) instead of stopping")
    exif_orientation: str = setting("ignore", "image folders and predict: photos tagged as stored sideways (EXIF orientation) "
                                              "are read as stored, as torchvision does (ignore) or turned upright (apply)")

    # Execution
    device: str = setting("auto", "auto (cuda, mps, cpu) | cpu | cuda | cuda:1 | mps")
    precision: str = setting("auto", "auto (bf16 on a CPU with native bf16, bf16/fp16 on a GPU, else fp32) | fp32 | bf16 | fp16 autocast")
    channels_last: bool = setting(True, "NHWC memory format (CUDA and CPU; faster convolutions)")
    compile: bool = setting(False, "torch.compile the model")
    cuda_graphs: bool = setting(True, "CUDA: replay each training step as one captured CUDA graph (SGD, one process, "
                                      "not fp16); --no-cuda-graphs runs eager steps (the same numbers)")
    sync_bn: bool = setting(False, "torchrun on GPUs: BatchNorm statistics over the whole global batch, not each GPU's share")
    collective_timeout: float = setting(COLLECTIVE_TIMEOUT, "torchrun: seconds a process waits for the others in a collective (gradient "
                                               "sum, barrier) before the run stops naming the one that stopped answering. 600 "
                                               "(torch's nccl default) outlasts the longest wait of a healthy run, rank 0 "
                                               "saving a checkpoint while the others wait, yet frees a stalled job's GPUs "
                                               "in 10 minutes, not gloo's 30")
    seed: int = setting(0, "model init, data order and augmentation")
    quiet: bool = setting(False, "no progress bars or per-epoch lines on the console")

    # Starting weights (fine-tuning)
    init_from: str | None = setting(None, "checkpoint or torchvision weights loaded on a fresh run")
    freeze_backbone: bool = setting(False, "train only fc; backbone BatchNorm stays in eval mode")

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (YAML, JSON and weights-only checkpoints)."""
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
HINTS = typing.get_type_hints(TrainConfig)  # the type each value must have (config_values.check_value)
# may change on --resume
RESUME_MUTABLE = ("out", "data_dir", "device", "quiet", "compile", "cuda_graphs", "photo_views", "epochs", "max_iters",
                  "memory_budget_gb", "workers", "collective_timeout")


def resolve_config(
    recipe: str | None = None, config_file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Merge defaults, a recipe, a config file and overrides (in that order) into a checked config."""
    source = f"config file {config_file}"
    file_values = _older_spellings(_as_asked(_read_yaml(Path(config_file), "config file")), source) if config_file else {}
    overrides = _older_spellings(overrides or {})
    _check_keys(file_values, source)
    _check_keys(overrides, "overrides")
    file_values = check_values(file_values, HINTS, source)
    overrides = check_values(overrides, HINTS, "")
    name = check_value("recipe", recipe, HINTS["recipe"], "") or file_values.get("recipe") or DEFAULT_RECIPE
    recipe_values = load_recipe(name)
    model = {**recipe_values, **file_values, **overrides}.get("model", TrainConfig.model)
    recipe_values = recipe_for_model(recipe_values, model, name)
    merged = {**recipe_values, **file_values, **overrides, "recipe": name}
    return validate(TrainConfig(**merged))


def recipe_for_model(values: dict[str, Any], model: str, name: str) -> dict[str, Any]:
    """A recipe's values for ``model``: its top level, then its ``per_family`` section for the
    model's family (``imagenet``: 224-pixel images), then its ``per_model`` section for the model."""
    values = dict(values)
    per_family = values.pop("per_family", {}) or {}
    per_model = values.pop("per_model", {}) or {}
    if not isinstance(model, str):
        return values  # refused by validate, naming the field
    from resnetlab.models import model_info

    family = model_info(model).family
    for section, key, chosen in (("per_family", family, per_family.get(family)), ("per_model", model, per_model.get(model))):
        _check_keys(chosen or {}, f"recipe {name!r} {section}.{key}")
        values.update(chosen or {})
    return values


# Fields that say what is trained, on which data, where and how fast, never how: a recipe sets
# none of them for a run, so a run's changes to its recipe (``recipe_changes``) leave them out.
NOT_RECIPE = ("model", "dataset", "data_dir", "out", "recipe", "device", "quiet", "compile", "cuda_graphs", "photo_views",
              "stream", "channels_last", "memory_budget_gb", "workers", "collective_timeout")
RECORD_ONLY = ("recipe_changes",)  # written beside the fields in config.yaml, derived again when it is read


def recipe_config(name: str | None, model: str) -> TrainConfig:
    """The config recipe ``name`` gives ``model`` with nothing changed (None: the dataclass defaults);
    unchecked beyond types, so that a recipe's model options a user replaced do not stop it."""
    if name is None:
        return TrainConfig(model=model)
    values = recipe_for_model(load_recipe(name), model, name)
    values = check_values({**values, "model": model, "recipe": name}, HINTS, f"recipe {name!r}")
    base = TrainConfig(**values)
    base.milestones = [float(m) for m in base.milestones or []]
    return base


def recipe_changes(config: TrainConfig) -> dict[str, Any] | None:
    """``{field: value}`` of every field whose value differs from what ``config.recipe`` sets for
    its model, however it was changed (flag, config file, keyword); None when the recipe is no
    longer known (a run of a recipe since renamed)."""
    try:
        base = recipe_config(config.recipe, config.model)
    except ResnetlabError:
        return None
    return {k: _as_hinted(k, getattr(config, k)) for k in FIELDS if k not in NOT_RECIPE and getattr(config, k) != getattr(base, k)}


def _as_hinted(key: str, value: Any) -> Any:
    """A rate given as a whole number (``--momentum 0``) recorded as the float it is (0.0)."""
    hint = HINTS[key]
    floats = hint is float or (typing.get_origin(hint) in (typing.Union, types.UnionType) and float in typing.get_args(hint))
    return float(value) if floats and key != "val_split" and isinstance(value, int) and not isinstance(value, bool) else value


def describe_recipe(recipe: str | None, changes: dict[str, Any] | None) -> str:
    """The first line of a run: "recipe paper, changed: lr 0.05, momentum 0.0"."""
    name = f"recipe {recipe}" if recipe else "no recipe (the TrainConfig defaults)"
    if changes is None:
        return f"{name}, changes unknown (recorded before runs listed them)"
    if not changes:
        return f"{name}, unchanged"
    return f"{name}, changed: " + ", ".join(f"{k} {shown_value(v)}" for k, v in changes.items())


def shown_value(value: Any) -> str:
    """A config value as a person reads it: none, true, [0.5, 0.75], {stem: cifar}, 0.05."""
    return yaml.safe_dump(value, default_flow_style=True, width=1_000).strip().removesuffix("...").strip()


def with_recipe_changes(values: dict[str, Any], changes: dict[str, Any] | None) -> dict[str, Any]:
    """``values`` (a config or summary dict) with ``recipe_changes`` right after ``recipe``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        out[key] = value
        if key == "recipe":
            out["recipe_changes"] = changes
    return out if "recipe" in values else {**values, "recipe_changes": changes}


def list_recipes() -> list[str]:
    """Names of the recipes shipped in ``resnetlab/training/recipes``."""
    folder = resources.files("resnetlab.training") / "recipes"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def recipe_description(name: str) -> str:
    """The comment a recipe file opens with, as one paragraph."""
    load_recipe(name)  # an unknown name: the message listing the known ones
    text = (resources.files("resnetlab.training") / "recipes" / f"{name}.yaml").read_text()
    lines = [line[1:].strip() for line in text.splitlines()[: next((i for i, t in enumerate(text.splitlines())
                                                                     if not t.startswith("#")), 0)]]
    return " ".join(lines)


def recipe_settings(name: str, model: str | None = None) -> dict[str, tuple[str, bool]]:
    """Every setting recipe ``name`` gives ``model`` (None: the recipe's own model, else the default):
    ``{field: (value as shown, whether the recipe sets it)}``, leaving out ``NOT_RECIPE``'s fields."""
    values = load_recipe(name)
    model = model or values.get("model") or TrainConfig.model
    check_value("model", model, str, "")
    from resnetlab.models import model_info

    model_info(model)  # an unknown model: the message naming the close ones
    own = recipe_for_model(values, model, name)
    config = recipe_config(name, model)
    return {k: (shown_value(getattr(config, k)), k in own) for k in FIELDS if k not in NOT_RECIPE}


def load_recipe(name: str) -> dict[str, Any]:
    """A recipe's raw values (including its ``per_family`` and ``per_model`` sections)."""
    if name not in list_recipes():
        raise ResnetlabError(f"unknown recipe {shown(name)}: choose one of {', '.join(list_recipes())}")
    text = (resources.files("resnetlab.training") / "recipes" / f"{name}.yaml").read_text()
    values = load_yaml(text, f"recipe {name!r}") or {}
    _check_keys({k: v for k, v in values.items() if k not in ("per_model", "per_family")}, f"recipe {name!r}")
    return values


# Fields a run decides when it starts and records in its config.yaml ("auto" -> "imagenet"); a
# config that leaves them undecided asks for nothing different from the recorded decision.
DECIDED_AT_START = {"normalization": "auto", "stream": None, "precision": "auto"}


def differing_fields(first: TrainConfig, second: TrainConfig, ignore: Iterable[str] = ()) -> list[str]:
    """Names of the fields whose values differ between two configs, leaving out ``ignore`` (and the
    ``DECIDED_AT_START`` fields that either config leaves undecided)."""
    skipped = set(ignore)
    return sorted(k for k in FIELDS if k not in skipped and getattr(first, k) != getattr(second, k) and not _undecided(k, first, second))


def _undecided(key: str, *configs: TrainConfig) -> bool:
    return key in DECIDED_AT_START and any(getattr(c, key) == DECIDED_AT_START[key] for c in configs)


def read_run_config(path: Path) -> TrainConfig:
    """The config.yaml of a run folder, checked like any other."""
    return config_from_dict(_read_yaml(path, "run config"), str(path))


def config_from_dict(values: dict[str, Any], source: str) -> TrainConfig:
    """A config saved in a run folder or checkpoint, checked like any other."""
    values = _older_spellings(_without_record(values), source)
    _check_keys(values, source)
    return validate(TrainConfig(**check_values(values, HINTS, source)))


# Older spellings: each old key becomes today's fields (which win when a config has both), each old
# value today's, so configs, run folders and checkpoints written before a rename still load and resume.
def _from_amp(value: Any, source: str) -> dict[str, Any]:
    """``amp: bool`` (GPU mixed precision, on by default) came before ``precision``: false is fp32,
    true is auto (a resumed run of that age keeps fp32 on a CPU, see run.py)."""
    return {"precision": "auto" if check_value("amp", value, bool, source) else "fp32"}  # "no" is false, not a true string


def _from_no_weight_decay_on_bn_and_bias(value: Any, source: str) -> dict[str, Any]:
    """One switch came before torchvision's two rates: true is no decay on normalization layers and biases."""
    rate = 0.0 if check_value("no_weight_decay_on_bn_and_bias", value, bool, source) else None
    return {"norm_weight_decay": rate, "bias_weight_decay": rate}


def _from_whiten_first_conv(value: Any, source: str) -> dict[str, Any]:
    """The whitened first convolution left the training options: no recipe used it and it did not pay."""
    if check_value("whiten_first_conv", value, bool, source):
        where = f" in {source}" if source else ""
        raise ResnetlabError(f"whiten_first_conv{where} is no longer a training option: it moved to "
                             "experiments/whitened_init.py, which writes the whitened starting weights for "
                             "'resnetlab train --init-from FILE' (docs/fast-recipe.md); remove it from the config")
    return {}


OLD_KEYS = {"amp": _from_amp, "no_weight_decay_on_bn_and_bias": _from_no_weight_decay_on_bn_and_bias,
            "whiten_first_conv": _from_whiten_first_conv}
OLD_VALUES = {"schedule": {"onecycle": "linear"}}  # onecycle: linear warm-up, then linear decay to 0


def _older_spellings(values: dict[str, Any], source: str = "") -> dict[str, Any]:
    """``values`` in today's spelling: a run written before a rename is read (and resumed: its
    config.yaml and its checkpoint's config both pass here) as the same config as today's."""
    values = dict(values)
    for old, translate in OLD_KEYS.items():
        if old in values:
            for key, value in translate(values.pop(old), source).items():
                values.setdefault(key, value)
    for key, renamed in OLD_VALUES.items():
        if isinstance(values.get(key), str) and values[key] in renamed:
            values[key] = renamed[values[key]]
    return values


def _as_asked(values: dict[str, Any]) -> dict[str, Any]:
    """A config file as the run it records was asked for: a run's config.yaml holds the values
    decided as it started (``DECIDED_AT_START``: precision auto -> bf16); those its
    ``recipe_changes`` do not list were the recipe's, so the recipe decides them again (the same way
    on the same machine) and a repeated run records the same changes. Other files: as they are."""
    changes = values.get("recipe_changes")
    values = _without_record(values)
    if isinstance(changes, dict):
        values = {k: v for k, v in values.items() if k not in DECIDED_AT_START or k in changes}
    return values


def _without_record(values: dict[str, Any]) -> dict[str, Any]:
    """A saved config without what the run recorded beside its fields (``RECORD_ONLY``)."""
    return {k: v for k, v in values.items() if k not in RECORD_ONLY}


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    values = read_yaml_file(path, what) or {}
    if not isinstance(values, dict):
        raise ResnetlabError(f"{what} {path} must be a mapping of config keys to values")
    return values


def _check_keys(values: dict[str, Any], source: str) -> None:
    unknown = [shown(k).strip("'") for k in values if k not in FIELDS]
    if unknown:
        hints = [f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, FIELDS, n=1)) else k for k in unknown[:10]]
        raise ResnetlabError(f"unknown training option(s) in {source}: {', '.join(hints)}")


def validate(config: TrainConfig) -> TrainConfig:
    """Check choices and ranges, coercing YAML/CLI types (ints for floats, lists for tuples)."""
    from resnetlab.data.loader import FLIP_MODES, PHOTO_AUGMENTATIONS, STAGE_MODES  # the data's own choices, loaded with torch
    from resnetlab.data.photo_pipeline import PHOTO_VIEWS
    from resnetlab.models.registry import check_model_options

    for key in FIELDS:  # types first: every check below may then compare and compute
        setattr(config, key, check_value(key, getattr(config, key), HINTS[key], ""))
    choices = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "schedule_unit": SCHEDULE_UNITS, "flip": FLIP_MODES,
               "photo_augmentation": PHOTO_AUGMENTATIONS, "normalization": NORMALIZATIONS, "precision": PRECISIONS,
               "exif_orientation": EXIF_ORIENTATIONS, "photo_views": PHOTO_VIEWS, "init": INITS,
               "progressive_mode": STAGE_MODES}
    for key, allowed in choices.items():
        if getattr(config, key) not in allowed:
            raise ResnetlabError(f"{key} must be one of {', '.join(allowed)}, got {shown(getattr(config, key))}")
    if config.epochs is None and config.max_iters is None:
        raise ResnetlabError("set epochs or max_iters: the run needs a budget")
    if config.max_iters is not None and (isinstance(config.max_iters, bool) or not isinstance(config.max_iters, int)
                                         or config.max_iters < 1):  # 0 would read as "no cap": say null for that
        raise ResnetlabError(f"max_iters must be a whole number >= 1 (or null: no cap, the epochs alone), got {shown(config.max_iters)}")
    check_seed(config.seed)
    for key in ("test_time_shift", "crop_padding", "cutout", "uncropped_epochs", "workers"):
        value = getattr(config, key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ResnetlabError(f"{key} must be a whole number >= 0, got {value!r}")
    for key in ("batch_size", "batch_copies", "epochs", "subset", "image_size"):
        value = getattr(config, key)
        if value is None and FIELDS[key].default is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ResnetlabError(f"{key} must be a whole number >= 1, got {value!r}")
    if config.memory_budget_gb is not None and not (isinstance(config.memory_budget_gb, (int, float))
                                                    and not isinstance(config.memory_budget_gb, bool) and config.memory_budget_gb > 0):
        raise ResnetlabError(f"memory_budget_gb must be a positive number of GiB, got {config.memory_budget_gb!r}")
    if not 0 <= config.ema_decay < 1:
        raise ResnetlabError(f"ema_decay must be in [0, 1), got {config.ema_decay}")
    if not isinstance(config.model_options, dict):
        raise ResnetlabError("model_options must be a mapping of option names to values")
    check_model_options(config.model, config.model_options)  # before any data is read or downloaded
    config.milestones = [float(m) for m in (config.milestones or [])]
    _check_size_stages(config)
    for key in ("lr", "momentum", "weight_decay", "norm_weight_decay", "bias_weight_decay", "label_smoothing", "lr_decay",
                "warmup", "val_split"):
        if getattr(config, key) is not None:  # None only where the field allows it (checked above)
            setattr(config, key, _number(key, getattr(config, key)))
    for key, (within, allowed) in _LIMITS.items():
        value = getattr(config, key)
        if value is not None and not within(value):
            raise ResnetlabError(f"{key} must be {allowed}, got {shown(value)}")
    return config


def _check_size_stages(config: TrainConfig) -> None:
    """Progressive resizing: one end per size, sizes whole and >= 1, the ends in order."""
    sizes, ends = config.progressive_sizes or [], config.progressive_ends or []
    if len(sizes) != len(ends):
        raise ResnetlabError(f"progressive_sizes and progressive_ends need one entry each per stage, got {len(sizes)} size(s) and "
                             f"{len(ends)} end(s), e.g. progressive_sizes [20, 24] with progressive_ends [0.3, 0.6]")
    if any(not float(s).is_integer() or s < 1 for s in sizes):
        raise ResnetlabError(f"progressive_sizes must be whole numbers of pixels >= 1, got {shown(sizes)}")
    if any(e <= 0 for e in ends) or any(b <= a for a, b in zip(ends, ends[1:])):
        raise ResnetlabError(f"progressive_ends must be positive and increasing, got {shown(ends)}")
    config.progressive_sizes = [int(s) for s in sizes]
    config.progressive_ends = [float(e) for e in ends]


_LIMITS = {  # ranges beyond "a finite number >= 0" (validate)
    "momentum": (lambda v: v < 1, "in [0, 1)"),
    "label_smoothing": (lambda v: v < 1, "in [0, 1) (the fraction of the target spread over all classes)"),
    "val_split": (lambda v: v < 1 or float(v).is_integer(), "a fraction below 1 or a whole number of images"),
    "error_warmup_lr": (lambda v: v > 0, "> 0 (or none)"),
    "error_warmup_threshold": (lambda v: 0 < v <= 1, "in (0, 1] (a training error fraction)"),
    "milestones": (lambda v: all(m >= 0 for m in v), "numbers >= 0"),
    "collective_timeout": (lambda v: v > 0, "a positive number of seconds"),
}


def _number(key: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ResnetlabError(f"{key} must be a finite number, got {value!r}")
    if value < 0:
        raise ResnetlabError(f"{key} must be >= 0, got {value}")
    return value
