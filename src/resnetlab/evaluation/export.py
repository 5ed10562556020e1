"""Export a checkpoint to ONNX, a torch.export program (.pt2), TorchScript, safetensors or a model
folder (``model_export.py``), and prove the file computes what the model does.

The file is written under a temporary name, checked on a batch of a different size than the
one it was traced with (so the dynamic batch dimension is exercised), and only then renamed to
``out``: a failed export or check never leaves a file behind.

ONNX uses the TorchScript-based exporter (``dynamo=False``): it needs only the ``onnx`` package,
whereas the newer exporter also needs ``onnxscript``. The check runs with onnxruntime when it is
installed (``pip install 'resnetlab[onnx]'``) and is reported as skipped otherwise.

``exported-program`` is ``torch.export`` (an ``ExportedProgram`` saved as ``.pt2``), the format
torch now recommends in place of TorchScript (deprecated); TorchScript stays for older runtimes.
"""

from __future__ import annotations

import importlib.util
import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetlab.checkpoint import checkpoint_path, load_checkpoint, model_from_checkpoint
from resnetlab.errors import ResnetlabError, option
from resnetlab.evaluation.model_export import export_folder, export_safetensors
from resnetlab.files import WriteError, replacing
from resnetlab.memory import check_image_size
from resnetlab.models.complexity import check_activation_memory
from resnetlab.runs import run_holding

TRACE_BATCH = 2  # batch size the graph is recorded with
CHECK_BATCH = 3  # a different size, to prove the batch dimension is dynamic


def export(checkpoint: str | Path, out: str | Path, *, format: str = "onnx", atol: float = 1e-4,
           overwrite: bool = False) -> dict[str, Any]:
    """Write ``checkpoint``'s model to ``out`` as ``format`` ("onnx", "exported-program", "torchscript",
    "safetensors" or "folder": ``model_export.py``).

    Returns {"path", "format", "checked_with", "max_abs_diff"}; raises ``ResnetlabError`` if the
    exported file's outputs differ from the model's by more than ``atol`` (relative to the logits' scale).
    An existing ``out`` is replaced only with ``overwrite``, and never a run folder's own files.
    """
    if format not in FORMATS:
        raise ResnetlabError(f"unknown export format {format!r}: choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if format == "folder":
        return export_folder(checkpoint, out, overwrite)
    if format == "exported-program" and out.suffix != ".pt2":
        raise ResnetlabError(f"torch.export reads programs only from .pt2 files: use {option('out', str(out.with_suffix('.pt2')))}")
    check_out(out, overwrite, reads=checkpoint_path(checkpoint))
    if format == "safetensors":
        return export_safetensors(checkpoint, out)
    ckpt = load_checkpoint(checkpoint)
    if ckpt.get("input_size"):
        check_image_size(ckpt["input_size"], TRACE_BATCH + CHECK_BATCH, f"exporting {checkpoint}", "it cannot be exported here")
        spec = ckpt["model"]  # and the layers' outputs of the check's forward pass on the CPU
        check_activation_memory(spec["name"], spec.get("options"), tuple(ckpt["input_size"]), CHECK_BATCH, "cpu",
                                f"exporting {checkpoint}", "it cannot be exported here", num_classes=spec["num_classes"])
    model = model_from_checkpoint(ckpt).eval()
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(TRACE_BATCH, *ckpt["input_size"], generator=gen)
    probe = torch.randn(CHECK_BATCH, *ckpt["input_size"], generator=gen)
    with torch.no_grad():
        expected = model(probe)

    write, run = EXPORTERS[format]
    with replacing(out) as tmp:  # renamed to ``out`` only once the check has passed
        write(model, example, tmp)
        checked_with, actual = run(tmp, probe)
        diff = None
        if actual is not None:
            diff = (actual - expected).abs().max().item()
            if not diff <= atol * max(1.0, expected.abs().max().item()):
                raise ResnetlabError(f"exported {format} model differs from the checkpoint by {diff:.3g} on a test batch: not written")
    return {"path": str(out), "format": format, "checked_with": checked_with, "max_abs_diff": diff}


def check_out(out: Path, overwrite: bool, reads: Path | None = None) -> None:
    """Refuse a folder, an existing file without ``overwrite``, and, even with it, the file the
    export reads (``reads``, however it is spelled: a link, ``..``) and any file a run folder keeps
    (a checkpoint, its config.yaml...): an export never replaces what made it."""
    if out.is_dir():
        raise WriteError(f"cannot write {out}: it is a folder (give {option('out')} a file name, e.g. {out / 'model.onnx'})")
    run = run_holding(out)
    if run is not None:
        raise ResnetlabError(f"{out} belongs to the run in {run}: export to a file outside its checkpoints/ "
                             "and not named like its own files")
    if reads is not None and (out.resolve() == reads.resolve() or (out.exists() and os.path.samefile(out, reads))):
        raise ResnetlabError(f"{option('out', str(out))} is the checkpoint being exported ({reads}): choose another {option('out')}; "
                             f"an export never replaces its source, even with {option('overwrite', True)}")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ResnetlabError(f"{out} already exists: pass {option('overwrite', True)} to replace it, or choose another {option('out')}")


def _write_exported_program(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    write_bytes(path, buffer.getvalue())


def _run_exported_program(path: Path, images: torch.Tensor) -> tuple[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # notes about torch's own internals (2.4: its torch.load without weights_only)
        program = torch.export.load(path)
    with torch.no_grad():
        return "torch.export.load", program.module()(images)


def _write_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export (exported-program)
        traced = torch.jit.trace(model, example)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
    write_bytes(path, buffer.getvalue())


def write_bytes(path: Path, data: bytes) -> None:
    """The serialized model written by Python, not by torch's C++ writer: on a full disk that writer
    aborts the process (a C++ exception in a destructor) and leaves its file behind, where Python's
    write raises ``OSError``, which ``replacing`` turns into one line and cleans up after."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _run_torchscript(path: Path, images: torch.Tensor) -> tuple[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return "torch.jit.load", loaded(images)


def _write_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    if importlib.util.find_spec("onnx") is None:
        raise ResnetlabError("ONNX export needs the onnx package: pip install 'resnetlab[onnx]'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and constant-folding notes
        torch.onnx.export(
            model, (example,), str(path), dynamo=False, input_names=["images"], output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )


def _run_onnx(path: Path, images: torch.Tensor) -> tuple[str | None, torch.Tensor | None]:
    if importlib.util.find_spec("onnxruntime") is None:
        warnings.warn("onnxruntime is not installed: the exported ONNX file was not checked (pip install 'resnetlab[onnx]')", stacklevel=3)
        return None, None
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"images": images.numpy()})
    return "onnxruntime", torch.from_numpy(logits)


Writer = Callable[[nn.Module, torch.Tensor, Path], None]
Runner = Callable[[Path, torch.Tensor], tuple[Any, Any]]
EXPORTERS: dict[str, tuple[Writer, Runner]] = {
    "onnx": (_write_onnx, _run_onnx),
    "exported-program": (_write_exported_program, _run_exported_program),
    "torchscript": (_write_torchscript, _run_torchscript),
}
# safetensors: the weights alone (and their description); folder: model.safetensors, config.json, README.md
FORMATS = (*EXPORTERS, "safetensors", "folder")
