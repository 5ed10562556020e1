"""Self-describing checkpoints: built in one place (``build_checkpoint``), written atomically,
read with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so that
``torch.load(path, weights_only=True)`` reads it and untrusted files cannot run code. Its entries
are documented where they are built: ``build_checkpoint`` (what every checkpoint holds) and
``TrainingState`` (what a resumable one adds). Which checkpoint a run folder means is ``runs.py``'s.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetlab.errors import ResnetlabError
from resnetlab.files import atomic_save, path_problem
from resnetlab.memory import check_image_size
from resnetlab.model_folder import WEIGHTS, checkpoint_entries, is_model_folder, is_safetensors, read_safetensors
from resnetlab.models import create_model
from resnetlab.runs import CHECKPOINTS, RUN_CHECKPOINTS, run_checkpoint

FORMAT = "resnetlab-checkpoint"
VERSION = 1
# Entries every consumer (eval, predict, export, finetune) reads, and those a resume reads too.
REQUIRED = ("model", "classes", "normalization", "input_size", "state_dict")
TRAINING_STATE = ("config", "epoch", "batch", "iteration", "optimizer", "scheduler", "rng", "metrics")


def checkpoint_path(source: str | Path) -> Path:
    """A checkpoint file as given, a run folder's ``run_checkpoint``, or a model folder's
    model.safetensors (``model_folder.py``); a missing one is named."""
    source = Path(source)
    if source.is_dir():
        found = run_checkpoint(source)
        if found is None and is_model_folder(source):
            return source / WEIGHTS
        if found is None:
            raise ResnetlabError(f"{source} is a folder with no {' or '.join(f'{CHECKPOINTS}/{n}' for n in RUN_CHECKPOINTS)} "
                                 f"and no {WEIGHTS}: pass a run folder, a model folder or a .pt file")
        return found
    if (problem := path_problem(source)) is not None:
        raise ResnetlabError(f"checkpoint {source} {problem}: pass a .pt file or a run folder")
    return source


def read_weights_file(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` with our own message for every way it can fail; a
    safetensors file (or model folder) is its checkpoint when it describes itself, else its tensors."""
    path = checkpoint_path(path)
    if path.stat().st_size == 0:
        raise ResnetlabError(f"{path} is empty (0 bytes): the checkpoint was never written; pass another one")
    if is_safetensors(path):
        state, description = read_safetensors(path)
        return state if description is None else build_checkpoint(**checkpoint_entries(description, path), state_dict=state)
    try:
        with warnings.catch_warnings():  # a plain pickle's protocol note would only precede our own message
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not looks_like_torch_save(path):
            raise ResnetlabError(f"{path} is not a PyTorch file (torch.save writes a zip archive or a pickle): "
                                 "pass a run folder, a checkpoint or a weights file") from None
        raise ResnetlabError(
            f"{path} is not a checkpoint resnetlab can load safely: it holds Python objects that "
            f"weights-only loading refuses to run. Load only checkpoints and weights files you trust, "
            f"saved as tensors (torch.save(model.state_dict(), ...))"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise ResnetlabError(f"{path} is not a readable PyTorch file (truncated or corrupt?): {reason}") from None


def looks_like_torch_save(path: Path) -> bool:
    """Whether ``path`` starts like torch.save output: a zip archive, or a pickle (legacy format).

    Tells a file of some other kind (an image passed by mistake) from a pickle that holds objects
    weights-only loading refuses: torch raises the same error for both."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Write a checkpoint dict (``build_checkpoint``'s, or a test's own) atomically."""
    atomic_save({"format": FORMAT, "version": VERSION, **payload}, path)


@dataclass
class TrainingState:
    """What a resumable checkpoint holds beyond the weights: enough to continue bit-exactly."""

    epoch: int  # completed epochs
    batch: int  # batches done in the current epoch
    iteration: int  # optimizer steps done
    optimizer: dict[str, Any]  # optimizer.state_dict()
    scheduler: dict[str, Any]  # {"scheduler": LambdaLR state without lambdas, "error_warmup": {...} | None}
    scaler: dict[str, Any]  # GradScaler state (fp16 loss scaling; empty when disabled)
    rng: dict[str, Any]  # ``rng_state``: {"torch": uint8 tensor, "cuda": [the own GPU's uint8 tensor] or []}
    metrics: dict[str, Any]  # {"epoch_stats", "train_seconds", "train_images", "best", "last", "pretrained"}
    train_state_dict: dict[str, Any] | None = None  # the raw training weights, only with EMA (resume loads these)
    ema: dict[str, Any] | None = None  # AveragedModel state, only with EMA


def build_checkpoint(*, model: dict[str, Any], classes: list[str], mean: Sequence[float], std: Sequence[float],
                     input_size: Sequence[int], preprocess: dict[str, Any], state_dict: dict[str, Any],
                     config: dict[str, Any] | None = None, dataset: dict[str, Any] | None = None,
                     test_views: dict[str, Any] | None = None, training: TrainingState | None = None) -> dict[str, Any]:
    """The whole checkpoint record, for training's checkpoints and for a plain weights file alike.

    Every consumer (eval, predict, export, finetune) reads ``REQUIRED``; a resume also reads
    ``TRAINING_STATE``."""
    checkpoint: dict[str, Any] = {
        "format": FORMAT, "version": VERSION,
        "model": model,  # {"name", "num_classes", "in_channels", "options"} -> create_model(**)
        "classes": list(classes),  # class names by index (class_indices.json's values)
        "normalization": {"mean": [float(m) for m in mean], "std": [float(s) for s in std]},
        "input_size": list(input_size),  # [C, H, W] the model was trained on
        # How a file becomes the model's input, for predict: {"pipeline": "small"} (resized whole to
        # input_size) or {"pipeline": "photos", "resize": R} (shorter side to R, then centre-cropped),
        # with "exif_orientation": "ignore" | "apply" (a photo tagged as stored sideways: as stored, or upright).
        "preprocess": preprocess,
        "dataset": dataset or {},  # {"name", "data_dir"}: where eval finds the run's data by default
        "config": config or {},  # the resolved TrainConfig as plain values ({} for a plain weights file)
        "state_dict": state_dict,  # the weights to evaluate (the EMA weights when ema_decay > 0)
    }
    if test_views is not None:
        # The views of the run's final evaluation ({"flip", "shift", "ten_crop"}), which eval, predict and
        # reports use unless told otherwise (older checkpoints lack it: their config's test_time_* say the same).
        checkpoint["test_views"] = test_views
    if training is not None:
        checkpoint.update({k: v for k, v in asdict(training).items() if v is not None})
    return checkpoint


def weights_sidecar(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """preprocess.json, written beside a run's weights.pth: how a file becomes that model's input
    (the checkpoint's ``preprocess`` entry with its mean, std and input size) and the views its final
    evaluation used, so that ``predict --weights RUN/weights.pth`` gives ``predict RUN``'s probabilities.
    class_indices.json stays the seed's ``{"0": "daisy", ...}``; this is the rest."""
    sidecar = {**checkpoint["preprocess"], "input_size": list(checkpoint["input_size"]),
               "mean": list(checkpoint["normalization"]["mean"]), "std": list(checkpoint["normalization"]["std"])}
    if checkpoint.get("test_views") is not None:
        sidecar["test_views"] = dict(checkpoint["test_views"])
    return sidecar


def load_checkpoint(path: str | Path, *, for_resume: bool = False) -> dict[str, Any]:
    """Read one of our checkpoints (a file, or a run folder: see ``run_checkpoint``).

    ``for_resume`` also requires the training state (optimizer, schedule, RNG, position)."""
    ckpt = read_weights_file(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ResnetlabError(
            f"{path} is not a resnetlab checkpoint (no 'format: {FORMAT}' entry); "
            "for a torchvision weights file use 'resnetlab finetune --init-from', or 'resnetlab predict --weights FILE "
            "--model NAME --classes JSON'"
        )
    check_checkpoint(ckpt, path, for_resume=for_resume)
    check_input_size(ckpt.get("input_size"), path)
    return ckpt


def check_input_size(input_size: Any, path: str | Path) -> None:
    """``input_size`` is [C, H, W] of positive whole numbers, and one such image fits in memory
    (predict, export and eval allocate batches of it before anything else could stop them)."""
    if input_size is None:
        return
    if (not isinstance(input_size, (list, tuple)) or len(input_size) != 3
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in input_size)):
        raise ResnetlabError(f"{path} claims an input size of {str(input_size)[:80]}: a checkpoint's input_size "
                             "must be three positive whole numbers [C, H, W]")
    check_image_size(input_size, 1, f"one image of the input size in {path}",
                     "the checkpoint's input_size is wrong, or it needs a bigger machine")


def check_checkpoint(ckpt: dict[str, Any], path: str | Path, *, for_resume: bool = False) -> dict[str, Any]:
    """``ckpt`` if this version of resnetlab can use it: not from a newer format, no entry missing."""
    version = ckpt.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version > VERSION:
        raise ResnetlabError(f"{path} was written by a newer resnetlab (checkpoint version {str(version)[:20]}, this "
                             f"resnetlab reads up to {VERSION}): upgrade resnetlab")
    wanted = REQUIRED + (TRAINING_STATE if for_resume else ())
    missing = [k for k in wanted if k not in ckpt]
    model = ckpt.get("model")
    if isinstance(model, dict):
        missing += [f"model.{k}" for k in ("name", "num_classes", "in_channels") if k not in model]
    elif "model" not in missing:
        missing.append("model (a mapping)")
    if not missing and not _well_formed(ckpt):
        missing.append("a well-formed classes/input_size/normalization/state_dict")
    if missing:
        what = "a resumable checkpoint" if for_resume else "a complete checkpoint"
        raise ResnetlabError(f"{path} is not {what}: it lacks {', '.join(missing)}")
    return ckpt


def _well_formed(ckpt: dict[str, Any]) -> bool:
    """The shapes eval, predict and export rely on: names, [C, H, W], per-channel mean and std, tensors."""
    classes, size, norm, state = ckpt["classes"], ckpt["input_size"], ckpt["normalization"], ckpt["state_dict"]
    return (isinstance(classes, (list, tuple)) and len(classes) >= 1
            and isinstance(size, (list, tuple)) and len(size) == 3 and all(isinstance(v, int) and v >= 1 for v in size)
            and isinstance(norm, dict) and all(isinstance(norm.get(k), (list, tuple)) and len(norm[k]) == size[0] for k in ("mean", "std"))
            and all(isinstance(s, (int, float)) and s > 0 for s in norm["std"])
            and isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()))


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Build the checkpoint's architecture and load its weights (strict)."""
    spec = ckpt["model"]
    model = create_model(spec["name"], num_classes=spec["num_classes"], in_channels=spec["in_channels"], **spec.get("options", {}))
    load_state_dict_or_explain(model, ckpt["state_dict"], source=spec["name"])
    return model


def load_state_dict_or_explain(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)``, turning key and shape mismatches into one clear message."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong_shape = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or wrong_shape:
        name = getattr(model, "model_name", type(model).__name__)
        reasons = describe_misfit(own, state_dict, missing, unexpected, wrong_shape)
        raise ResnetlabError(f"weights from {source} do not fit model {name}: {reasons}")
    model.load_state_dict(state_dict, strict=True)


def describe_misfit(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], missing: list[str],
                    unexpected: list[str], wrong_shape: list[str]) -> str:
    """'N tensor(s) of another shape (e.g. ...); N missing from the file (e.g. ...); ...' for errors."""
    parts = []
    if wrong_shape:
        k = wrong_shape[0]
        parts.append(f"{len(wrong_shape)} tensor(s) of another shape (e.g. {k}: {tuple(state[k].shape)} "
                     f"in the file, {tuple(own[k].shape)} in the model)")
    if missing:
        parts.append(f"{len(missing)} missing from the file (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} not in the model (e.g. {unexpected[0]})")
    return "; ".join(parts)


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """Global RNG states as tensors (weights-only loadable): the CPU's and, on a GPU, that of the
    process's own ``device`` only (default: the current one), so a run saved with N GPUs visible
    resumes with fewer."""
    cuda = _own_gpu(device)
    return {"torch": torch.get_rng_state(), "cuda": [torch.cuda.get_rng_state(cuda)] if cuda is not None else []}


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore ``rng_state``'s states; the GPU's on the process's own ``device`` (older checkpoints
    list every visible GPU's: the entry of that index, else the first)."""
    torch.set_rng_state(state["torch"])
    saved, cuda = state.get("cuda") or [], _own_gpu(device)
    if saved and cuda is not None:
        torch.cuda.set_rng_state(saved[cuda.index] if cuda.index < len(saved) else saved[0], cuda)


def _own_gpu(device: torch.device | None) -> torch.device | None:
    """The CUDA device whose generator a checkpoint holds: ``device`` (None: the current one), or None off CUDA."""
    if device is None:
        if not torch.cuda.is_available():
            return None
        device = torch.device("cuda", torch.cuda.current_device())
    if device.type != "cuda":
        return None
    return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())
