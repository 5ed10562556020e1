"""``resnetlab finetune``: train from other weights with the fine-tune recipe (Adam, lr 1e-4).

Every other training field is a flag too (generated as for ``resnetlab train``).
"""

from __future__ import annotations

import argparse
import sys

from resnetlab.cli.train_cmd import add_config_flags, overrides_from
from resnetlab.training.config import list_recipes

_OWN = {"model", "dataset", "data_dir", "out", "init_from", "freeze_backbone", "epochs", "recipe", "model_options"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a checkpoint or torchvision weights on new classes",
                       description="Start from --from weights, replace the classifier when the class count "
                                   "differs, and train with the fine-tune recipe into a normal run folder.")
    p.add_argument("--from", dest="source", required=True, metavar="CHECKPOINT_OR_WEIGHTS",
                   help="a resnetlab checkpoint/run folder or a torchvision state dict (.pth)")
    p.add_argument("--dataset", dest="ft_dataset", default="folder", metavar="NAME",
                   help="default: folder (DIR/train/<class>, DIR/test/<class>)")
    p.add_argument("--data-dir", dest="ft_data_dir", default=None, metavar="DIR")
    p.add_argument("--out", dest="ft_out", required=True, metavar="RUN_DIR")
    p.add_argument("--model", dest="ft_model", default=None, metavar="NAME", help="default: the architecture of the weights")
    p.add_argument("--freeze-backbone", dest="ft_freeze", action="store_true", help="train only the classifier (fc)")
    p.add_argument("--epochs", dest="ft_epochs", type=int, default=None, metavar="N", help="default: the recipe's")
    p.add_argument("--recipe", dest="ft_recipe", default="fine-tune", choices=list_recipes(),
                   help="fine-tune (Adam 1e-4, 10 epochs; default) or transfer (torchvision's transfer-learning settings for photos)")
    p.add_argument("--config", dest="config_file", default=None, metavar="FILE")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the --out folder")
    add_config_flags(p, exclude=_OWN)
    p.set_defaults(func=run_finetune)


def run_finetune(args: argparse.Namespace) -> int:
    from resnetlab.training import TrainingInterrupted
    from resnetlab.training.finetune import finetune

    try:
        summary = finetune(args.source, dataset=args.ft_dataset, data_dir=args.ft_data_dir, out=args.ft_out,
                           model=args.ft_model, freeze_backbone=args.ft_freeze, epochs=args.ft_epochs,
                           config_file=args.config_file, overrides=overrides_from(args), overwrite=args.overwrite,
                           recipe=args.ft_recipe)
    except TrainingInterrupted as exc:  # a fine-tuning run folder is a training run folder: train resumes it
        print(f"resnetlab: {exc}\ncontinue with: resnetlab train --resume {args.ft_out}", file=sys.stderr)
        return 130
    report = summary.get("pretrained") or {}
    loaded, new = report.get("loaded", []), report.get("new", [])
    adapted = report.get("adapted", [])
    adapted_note = f"; adapted to the images' channel count: {', '.join(adapted)}" if adapted else ""
    print(f"loaded {len(loaded)} tensors from {args.source}; new: {', '.join(new) if new else 'none'}{adapted_note}")
    final = summary["final"]
    print(f"{summary['model']} fine-tuned on {summary['dataset']} ({len(summary['classes'])} classes): "
          f"test accuracy {final['test_acc']:.4f} (loss {final['test_loss']:.4f}) after {summary['epochs']} epochs; "
          f"run folder {args.ft_out}")
    return 0
