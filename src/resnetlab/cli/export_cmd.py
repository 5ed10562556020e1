"""``resnetlab export``: a checkpoint as ONNX, a torch.export program, TorchScript, safetensors or a model
folder, checked against the model."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX, a torch.export program (.pt2), TorchScript "
                                      "(dynamic batch size), safetensors or a model folder")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a .pt file or a run folder (its final model, checkpoints/last.pt)")
    p.add_argument("--format", choices=("onnx", "exported-program", "torchscript", "safetensors", "folder"), default="onnx",
                   help="exported-program: torch.export's ExportedProgram, saved as .pt2 (torch.export.load); "
                        "safetensors: the weights alone (.safetensors); folder: model.safetensors, config.json and a "
                        "README.md model card in the folder --out")
    p.add_argument("--out", required=True, metavar="FILE_OR_DIR")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file, or a folder an earlier export wrote (never a run's own files)")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from resnetlab.evaluation import export

    result = export(args.checkpoint, args.out, format=args.format, overwrite=args.overwrite)
    if result["checked_with"]:
        check = f"checked with {result['checked_with']} (max difference {result['max_abs_diff']:.2g})"
    else:
        check = "not checked: onnxruntime is not installed (pip install 'resnetlab[onnx]')"
    batch = ", dynamic batch size" if result["format"] not in ("safetensors", "folder") else ""
    print(f"wrote {result['path']} ({result['format']}{batch}); {check}")
    return 0
