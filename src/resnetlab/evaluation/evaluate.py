"""``evaluate``: a checkpoint's accuracy on its own dataset, with the files that explain it.

It reuses the training evaluation path (``TensorLoader`` + ``engine.loader_logits`` +
``engine.loss_and_accuracy``) with the checkpoint's own normalisation, so on a run folder the
top-1 accuracy is the ``final.test_acc`` of its summary.json, not a near-miss from another loop.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from resnetlab.checkpoint import checkpoint_path, load_checkpoint, model_from_checkpoint
from resnetlab.data import DatasetBundle, ImageSet, TensorLoader, create_loader, fingerprint, load_dataset
from resnetlab.data.photo_loader import PhotoLoader
from resnetlab.data.photos import PhotoSet
from resnetlab.devices import memory_format, resolve_device
from resnetlab.errors import ResnetlabError, option
from resnetlab.evaluation.logits import evaluation_batch_size, loader_logits, loss_and_accuracy
from resnetlab.evaluation.metrics import confusion_matrix, most_confident_errors, per_class_accuracy, topk_accuracy
from resnetlab.evaluation.plots import plot_confusion_matrix, plot_image_grid
from resnetlab.evaluation.view_averaging import TEN_CROP_VIEWS, TestViews, check_views_fit
from resnetlab.files import replacing, writing
from resnetlab.models.complexity import check_activation_memory, largest_batch_that_fits
from resnetlab.precision import autocast, evaluation_precision
from resnetlab.runs import RunFolder, run_holding
from resnetlab.stop_signals import StopRequest, stop_on_signals

SPLITS = ("test", "val")
log = logging.getLogger(__name__)


def evaluate(
    source: str | Path,
    *,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    split: str = "test",
    flip: bool | None = None,
    shift: int | None = None,
    ten_crop: bool | None = None,
    out: str | Path | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
    mistakes: int = 32,
    precision: str | None = None,
    accept_changed_data: bool = False,
) -> dict[str, Any]:
    """Evaluate a checkpoint file or a run folder (its ``checkpoints/last.pt``: the final model).

    ``dataset``/``data_dir`` default to the checkpoint's own; ``split="val"`` rebuilds the run's
    validation split from its config (same size, same seed). The test-time views are the run's own
    (``TestViews.from_checkpoint``) but for ``flip``, ``shift`` and ``ten_crop`` when given (None: as
    the run did); ``precision=None`` likewise (its ``precision``; ``"fp32"`` gives exact fp32 figures). With
    ``out`` (``eval``'s default: ``files_folder(source)``, the run folder or the checkpoint's) writes
    ``eval-<split>-confusion.csv``/``.png`` and ``eval-<split>-mistakes.png`` there; without, no file.
    A run's own image folder is compared with its data.json, as a resume compares it: images that
    changed since the run started are refused, naming what changed, unless ``accept_changed_data``.

    ``batch_size`` (None: ``evaluation_batch_size``, halved until its forward pass fits in the
    device's memory) is refused when its forward pass would not fit. SIGINT or SIGTERM stops the
    pass at the next batch with ``EvaluationStopped``, before any file is written.

    Returns {"top1", "top5", "loss", "n", "per_class", "test_views" ({"flip", "shift", "ten_crop"}),
    "views" (forward passes per image), "precision", "batch_size", "confusion", "mistakes", "files", ...}.
    """
    if split not in SPLITS:
        raise ResnetlabError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    path = checkpoint_path(source)
    ckpt = load_checkpoint(path)
    config = ckpt.get("config") or {}
    views = TestViews.from_checkpoint(ckpt).overridden(flip=flip, shift=shift, ten_crop=ten_crop)  # a bad shift: refused here
    check_views_fit(views, ckpt)  # before any data is read
    bundle = checkpoint_data(ckpt, dataset, data_dir, split, record=data_record_of(path), accept_changed_data=accept_changed_data,
                             cannot=f"cannot evaluate {path} on its data")
    images = bundle.test if split == "test" else bundle.val
    if images is None:  # an unsplit folder: val_split made its test split, and nothing else is held out
        raise ResnetlabError("this run's val_split held out its test split (an unsplit folder), not a validation split: "
                             f"use {option('split', 'test')}")
    device = resolve_device(device)
    precision = evaluation_precision(config, precision, device)
    batch_size = fitted_batch_size(ckpt, views, device, batch_size,
                                   evaluation_batch_size(bundle.pipeline, config.get("batch_size"), device))
    with stop_on_signals() as stop:  # Ctrl-C or SIGTERM: EvaluationStopped at the next batch, nothing written
        logits, labels = split_logits(ckpt, images, views, device=device, precision=precision, batch_size=batch_size,
                                      progress="evaluating", stop=stop)

    classes = list(ckpt["classes"])
    confusion = confusion_matrix(logits, labels, len(classes))
    n = len(labels)
    result: dict[str, Any] = {
        # correct / n as an exact fraction (as training's summary records it), not a float32 mean
        "top1": confusion.trace().item() / n if n else float("nan"),
        "top5": topk_accuracy(logits, labels, 5),
        "loss": loss_and_accuracy(logits, labels)["loss"],
        "n": n,
        "per_class": per_class_accuracy(confusion, classes),
        "split": split, "test_views": views.as_dict(), "views": views.count, "precision": precision,
        "checkpoint": str(path), "dataset": bundle.name, "batch_size": batch_size,
        "confusion": confusion.tolist(),
        "mistakes": most_confident_errors(logits, labels, mistakes),
    }
    result["files"] = {}
    if out is not None:
        with writing(Path(out)):
            result["files"] = _write_files(Path(out), split, confusion, classes, result["mistakes"], images)
    return result


def files_folder(source: str | Path) -> Path:
    """Where ``eval`` writes its files unless told: the run folder, or the checkpoint file's folder."""
    return Path(source) if Path(source).is_dir() else checkpoint_path(source).parent


def split_logits(ckpt: dict[str, Any], images: ImageSet | PhotoSet, views: TestViews, *, device: torch.device,
                 precision: str, batch_size: int, progress: str | None = None,
                 stop: StopRequest | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The checkpoint's logits (float32) and the labels over ``images``, averaged over ``views``, in
    ``precision``: the one evaluation pass of ``eval`` and of a report's confusion matrix."""
    model, loader = model_and_loader(ckpt, images, batch_size, device)
    with autocast(device, precision):
        return loader_logits(model, loader, views, progress=progress, stop=stop)


def fitted_batch_size(ckpt: dict[str, Any], views: TestViews, device: torch.device, asked: int | None, default: int) -> int:
    """``asked`` (--batch-size) when its forward pass fits in ``device``'s memory, else refused naming
    it; without it, ``default`` halved until its pass fits. The estimate is inference's (no
    activations kept for a backward pass), from ``models.complexity`` as training's is."""
    spec, shape = ckpt["model"], tuple(ckpt["input_size"])
    per_pass = TEN_CROP_VIEWS if views.ten_crop else 1  # ten crops pass as one batch ten times as big
    estimate = dict(num_classes=spec["num_classes"])
    if asked is not None:
        check_activation_memory(spec["name"], spec.get("options"), shape, asked * per_pass, device, option("batch_size", asked),
                                f"lower {option('batch_size')}", **estimate)
        return asked
    fitted = largest_batch_that_fits(spec["name"], spec.get("options"), shape, default * per_pass, device, **estimate) // per_pass
    if fitted < 1:  # not even one image: say how much it needs
        check_activation_memory(spec["name"], spec.get("options"), shape, per_pass, device, "evaluating one image",
                                f"evaluate on a device with more memory ({option('device', metavar='DEVICE')})", **estimate)
    return max(1, fitted)


def model_and_loader(ckpt: dict[str, Any], images: ImageSet | PhotoSet, batch_size: int,
                     device: str | torch.device) -> tuple[torch.nn.Module, TensorLoader | PhotoLoader]:
    """The checkpoint's model and an evaluation loader over ``images``, with its normalisation and in
    the memory layout its training used, so that the logits match training's to the last bit."""
    device = resolve_device(device)
    layout = memory_format(device, bool((ckpt.get("config") or {}).get("channels_last", False)))
    model = model_from_checkpoint(ckpt).to(device, memory_format=layout)
    norm = ckpt["normalization"]
    loader = create_loader(images, batch_size, mean=norm["mean"], std=norm["std"], device=device, train=False,
                           channels_last=layout == torch.channels_last)
    return model, loader


def checkpoint_data(ckpt: dict[str, Any], dataset: str | None = None, data_dir: str | Path | None = None,
                    split: str = "test", *, load: Callable[..., DatasetBundle] = load_dataset, record: dict[str, Any] | None = None,
                    accept_changed_data: bool = False, cannot: str = "cannot evaluate the run") -> DatasetBundle:
    """The data the checkpoint was trained on (or the one asked for), read as its training read it
    and checked against its classes and input size. ``load`` is ``load_dataset`` or a caching twin
    (a report reads one dataset once for many runs, and never downloads). ``record`` is the run's
    data.json: its own image folder is compared with it first (``fingerprint.refuse_changed_data``)."""
    request = data_request(ckpt, dataset, data_dir, split, record)
    named_by_run = data_dir is None and request["name"] == (ckpt.get("dataset") or {}).get("name")
    if record and reads_recorded_data(request, record, named_by_run) and Path(request["data_dir"]).is_dir():
        fingerprint.refuse_changed_data(record, request["data_dir"], cannot, accept_changed_data, log.warning, doing="evaluating")
    return check_data_fits(ckpt, load(**request))


def data_record_of(checkpoint: Path) -> dict[str, Any]:
    """The data.json of the run folder that keeps ``checkpoint`` ({} for a checkpoint outside one)."""
    run = run_holding(checkpoint)
    return RunFolder(run).read_data_record() if run is not None else {}


def reads_recorded_data(request: dict[str, Any], record: dict[str, Any], named_by_run: bool) -> bool:
    """Whether ``request`` reads the image folder data.json describes: the folder the run names
    (wherever its recorded path now leads: a relative one from another directory), or the same
    folder named again; not other data the user named."""
    if request["name"] != "folder" or not request.get("data_dir") or not record.get("fingerprint"):
        return False
    return named_by_run or Path(request["data_dir"]).resolve() == Path(str(record.get("data_dir"))).resolve()


def data_request(ckpt: dict[str, Any], dataset: str | None, data_dir: str | Path | None, split: str,
                 record: dict[str, Any] | None = None) -> dict[str, Any]:
    """``load_dataset``'s arguments for a checkpoint's data: its own data exactly as training read it
    (image size, validation split and seed and split rule, storage); other data resized to the model's input."""
    own = ckpt.get("dataset") or {}
    config = ckpt.get("config") or {}
    name = dataset or own.get("name")
    if not name:
        raise ResnetlabError(f"the checkpoint does not name its dataset: pass {option('dataset')} (and {option('data_dir')})")
    if data_dir is None and name == own.get("name"):
        data_dir = own.get("data_dir")
    own_data = name == own.get("name")
    # an unsplit folder's test split is held out by val_split: the run's own data is read with it
    val_split = config.get("val_split", 0) if split == "val" or own_data else 0
    if split == "val" and not val_split:
        raise ResnetlabError(f"this run was trained without a validation split (val_split 0): use {option('split', 'test')}")
    val_split = int(val_split) if val_split >= 1 else val_split  # a count, or a fraction (as training reads it)
    _, height, width = ckpt["input_size"]
    # The run's own data is read exactly as training read it; other data is resized to the model's input.
    image_size = config.get("image_size") if name == own.get("name") else (height, width)
    request = {"name": name, "data_dir": data_dir, "val_split": val_split, "seed": config.get("seed", 0),
               "image_size": image_size, "stream": config.get("stream"), "exif_orientation": config.get("exif_orientation", "ignore")}
    if own_data and val_split and record:
        request["split_rule"] = fingerprint.split_rule(record)  # a run split before the name-hash rule keeps its split
    return request


def check_data_fits(ckpt: dict[str, Any], bundle: DatasetBundle) -> DatasetBundle:
    """``bundle``, once its classes and image shape are the checkpoint's."""
    channels, height, width = ckpt["input_size"]
    name = bundle.name
    if bundle.classes != list(ckpt["classes"]):
        raise ResnetlabError(
            f"the checkpoint was trained on {len(ckpt['classes'])} classes ({', '.join(ckpt['classes'][:5])}...) but "
            f"dataset {name} has {len(bundle.classes)} ({', '.join(bundle.classes[:5])}...): evaluate it on data with its classes"
        )
    if tuple(bundle.image_shape) != (channels, height, width):
        raise ResnetlabError(
            f"the checkpoint expects {channels}x{height}x{width} images but dataset {name} has "
            f"{'x'.join(map(str, bundle.image_shape))}: evaluate on data of the same kind"
        )
    return bundle


def _write_files(folder: Path, split: str, confusion: torch.Tensor, classes: list[str],
                 mistakes: list[dict[str, Any]], images: ImageSet | PhotoSet) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / f"eval-{split}-confusion.csv"
    with replacing(csv_path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, confusion.tolist()):
            writer.writerow([name, *row])
    png = plot_confusion_matrix(confusion, classes, folder / f"eval-{split}-confusion.png", title=f"confusion matrix ({split})")
    rows = torch.tensor([m["index"] for m in mistakes], dtype=torch.long)
    captions = [f"{classes[m['label']]} -> {classes[m['predicted']]}\n{m['probability']:.2f}" for m in mistakes]
    grid = plot_image_grid(images.preview(rows), captions, folder / f"eval-{split}-mistakes.png")
    return {"confusion_csv": str(csv_path), "confusion_png": str(png), "mistakes_png": str(grid)}
