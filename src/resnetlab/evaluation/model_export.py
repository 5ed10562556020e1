"""Export a checkpoint as safetensors weights, or as a self-describing model folder (``model_folder.py``):
``model.safetensors``, ``config.json`` and a README.md model card.

Both are written under a temporary name, read back the way every command reads them (so the
check covers the reading path too: config.json, metadata, strict loading) and compared with the
checkpoint's model on a probe batch before they take their name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from resnetlab.checkpoint import checkpoint_path, load_checkpoint, model_from_checkpoint
from resnetlab.errors import ResnetlabError, option
from resnetlab.files import WriteError, replacing, writing
from resnetlab.model_folder import CONFIG, DESCRIPTION_FORMAT, MODEL_CARD, SUFFIX, WEIGHTS, describe, write_safetensors
from resnetlab.models.registry import model_info
from resnetlab.runs import RunFolder, holds_run, run_holding

PROBE_BATCH = 2


def export_safetensors(source: str | Path, out: Path) -> dict[str, Any]:
    """``source``'s weights as one ``.safetensors`` file (its description in the header's metadata)."""
    if out.suffix != SUFFIX:
        raise ResnetlabError(f"safetensors files end in {SUFFIX}: use {option('out', str(out.with_suffix(SUFFIX)))}")
    ckpt = load_checkpoint(source)
    with replacing(out) as tmp:  # .<name>.XXXX.tmp.safetensors: read back as safetensors
        write_safetensors(ckpt["state_dict"], tmp, describe(ckpt))
        diff = _same_outputs(ckpt, tmp)
    return {"path": str(out), "format": "safetensors", "checked_with": "safetensors (read back as predict reads it)", "max_abs_diff": diff}


def export_folder(source: str | Path, out: Path, overwrite: bool) -> dict[str, Any]:
    """``source`` as a model folder: ``model.safetensors``, ``config.json``, ``README.md``."""
    _check_folder_out(out, overwrite, checkpoint_path(source))
    ckpt = load_checkpoint(source)
    description = describe(ckpt)
    out.parent.mkdir(parents=True, exist_ok=True)
    with writing(out):
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            staging.chmod(0o755)  # mkdtemp's folder is private; the export is an ordinary folder
            write_safetensors(ckpt["state_dict"], staging / WEIGHTS, description)
            (staging / CONFIG).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
            (staging / MODEL_CARD).write_text(model_card(ckpt, _run_of(source)), encoding="utf-8")
            diff = _same_outputs(ckpt, staging)
            _move_into_place(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return {"path": str(out), "format": "folder", "checked_with": "safetensors and config.json (read back as predict reads them)",
            "max_abs_diff": diff}


def model_card(ckpt: dict[str, Any], run: RunFolder | None) -> str:
    """The README.md of a model folder: what it learnt from, how, how well, and how to load it."""
    spec, classes = ckpt["model"], list(ckpt["classes"])
    summary = run.read_summary() if run is not None else {}
    config = ckpt.get("config") or {}
    data = ckpt.get("dataset") or {}
    dataset = data.get("name") or summary.get("dataset") or "unknown"
    if dataset == "folder" and data.get("data_dir"):  # an image folder: its own name says more
        dataset = f"the image folder {Path(data['data_dir']).name}"
    final = summary.get("final") or {}
    lines = [f"# {spec['name']} fine-tuned on {dataset}" if config.get("init_from") else f"# {spec['name']} trained on {dataset}", "",
             f"A {spec['name']} ({spec.get('options') or 'default options'}) classifying {len(classes)} classes, "
             "exported by resnetlab.", "", "## Data", "",
             f"- dataset: {dataset}; classes, in output order: {', '.join(classes)}",
             f"- input: {ckpt['input_size'][0]} channels, {ckpt['input_size'][1]}x{ckpt['input_size'][2]} pixels; "
             f"preprocessing: {json.dumps(ckpt.get('preprocess') or {})}",
             f"- normalisation: mean {ckpt['normalization']['mean']}, std {ckpt['normalization']['std']}", "",
             "## Recipe", ""]
    recipe = summary.get("recipe") or config.get("recipe")
    lines.append(f"- recipe: {recipe or 'none recorded'}")
    changes = summary.get("recipe_changes") or config.get("recipe_changes")
    if changes:
        lines.append(f"- changed from it: {json.dumps(changes, sort_keys=True)}")
    for key in ("init_from", "epochs", "batch_size", "lr", "precision"):
        if config.get(key) is not None:
            lines.append(f"- {key}: {config[key]}")
    if isinstance(ckpt.get("epoch"), int) and config.get("epochs") not in (None, ckpt["epoch"]):
        lines.append(f"- this checkpoint: after epoch {ckpt['epoch']} of {config['epochs']}")
    lines += ["", "## Accuracy", ""]
    last = (ckpt.get("metrics") or {}).get("last") or {}  # the checkpoint's own record: an unfinished run has no summary
    if final.get("test_acc") is not None:
        lines.append(f"- test accuracy (top-1) at the end of training: {final['test_acc']:.4f}")
    elif last.get("test_acc") is not None:
        lines.append(f"- test accuracy (top-1) of this checkpoint, after epoch {ckpt.get('epoch', '?')}: {last['test_acc']:.4f}")
    if (summary.get("best") or {}).get("val_acc") is not None:
        lines.append(f"- best validation accuracy: {summary['best']['val_acc']:.4f}")
    if len(lines) and lines[-1] == "":
        lines.append("- not recorded (a checkpoint without its run's records)")
    lines += ["", "## Use it", "", "With resnetlab (this folder is accepted wherever a run folder is):", "", "```bash",
              "resnetlab predict THIS_FOLDER photo.jpg", "resnetlab eval THIS_FOLDER --data-dir DATA",
              "resnetlab finetune --init-from THIS_FOLDER --data-dir NEW_DATA --out runs/next", "```", ""]
    lines += _torchvision_usage(ckpt)
    return "\n".join(lines) + "\n"


def _torchvision_usage(ckpt: dict[str, Any]) -> list[str]:
    """How plain torchvision loads the weights: only for the ImageNet family without options (the
    same tensor names and shapes as torchvision's models)."""
    import torchvision

    spec = ckpt["model"]
    if model_info(spec["name"]).family != "imagenet" or spec.get("options") or not hasattr(torchvision.models, spec["name"]):
        return []
    preprocess, (_, crop, _) = ckpt.get("preprocess") or {}, ckpt["input_size"]
    norm = ckpt["normalization"]
    return ["With plain torchvision (no resnetlab needed):", "", "```python",
            "import torch, torchvision", "from PIL import Image", "from safetensors.torch import load_file",
            "from torchvision import transforms", "",
            f"model = torchvision.models.{spec['name']}(num_classes={spec['num_classes']})",
            f"model.load_state_dict(load_file(\"{WEIGHTS}\"))  # strict", "model.eval()",
            f"preprocess = transforms.Compose([transforms.Resize({preprocess.get('resize', crop)}), transforms.CenterCrop({crop}),",
            f"                                 transforms.ToTensor(), transforms.Normalize({norm['mean']}, {norm['std']})])",
            "with torch.no_grad():",
            "    probabilities = model(preprocess(Image.open(\"photo.jpg\").convert(\"RGB\"))[None]).softmax(1)[0]",
            "```", ""]


def _same_outputs(ckpt: dict[str, Any], written: Path) -> float:
    """The largest difference between the checkpoint's model and the written one's on a probe batch
    (0: safetensors stores the tensors exactly); anything else is refused."""
    model = model_from_checkpoint(ckpt).eval()
    again = model_from_checkpoint(load_checkpoint(written)).eval()
    probe = torch.randn(PROBE_BATCH, *ckpt["input_size"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (model(probe) - again(probe)).abs().max().item()
    if diff != 0:
        raise ResnetlabError(f"the exported weights differ from the checkpoint's by {diff:.3g} on a test batch: not written")
    return diff


def _run_of(source: str | Path) -> RunFolder | None:
    """The run folder behind ``source`` (a run folder, or one of its checkpoints), for the model card."""
    source = Path(source)
    if source.is_dir() and holds_run(source):
        return RunFolder(source, writer=False)
    run = run_holding(source)
    return RunFolder(run, writer=False) if run is not None else None


def _check_folder_out(out: Path, overwrite: bool, reads: Path) -> None:
    """An empty or new folder, or with ``overwrite`` a model folder written before; never a run folder,
    never the folder being exported."""
    if out.exists() and not out.is_dir():
        raise WriteError(f"cannot write {out}: it is a file, and {option('format', 'folder')} writes a folder "
                         f"(choose another {option('out')})")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if holds_run(out) or run_holding(out) is not None:
        raise ResnetlabError(f"{out} is (inside) a run folder: export to a folder of its own")
    if reads.parent.resolve() == out.resolve():
        raise ResnetlabError(f"{option('out', str(out))} is the model folder being exported: choose another {option('out')}; "
                             f"an export never replaces its source, even with {option('overwrite', True)}")
    ours = _is_exported_folder(out)
    if not overwrite or not ours:
        what = f"{option('overwrite', True)} to replace it" if ours else "an empty or new folder (it holds other files, never replaced)"
        raise ResnetlabError(f"{out} already exists: pass {what}, or choose another {option('out')}")


def _is_exported_folder(folder: Path) -> bool:
    """Only our own exports are replaced: the files of the layout, config.json naming our format."""
    try:
        ours = json.loads((folder / CONFIG).read_text(encoding="utf-8")).get("format") == DESCRIPTION_FORMAT
    except (OSError, ValueError, AttributeError):
        return False
    return ours and {p.name for p in folder.iterdir()} <= {WEIGHTS, CONFIG, MODEL_CARD}


def _move_into_place(staging: Path, out: Path) -> None:
    """Rename the checked folder to ``out``; an old export there is set aside first and removed after."""
    if out.is_dir() and any(out.iterdir()):
        aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.replace(out, aside / out.name)
        try:
            os.replace(staging, out)
        except OSError:
            os.replace(aside / out.name, out)  # the old export back where it was
            raise
        shutil.rmtree(aside, ignore_errors=True)
        return
    if out.is_dir():
        out.rmdir()
    os.replace(staging, out)
