"""``resnetlab finetune --init-from WEIGHTS``: train from other weights with the fine-tune recipe (Adam, lr 1e-4).

Every other training field is a flag too (generated as for ``resnetlab train``).
"""

from __future__ import annotations

import argparse
import sys

from resnetlab.cli.flags import add_deprecated_spelling
from resnetlab.cli.train_cmd import add_config_flags, overrides_from
from resnetlab.training.config import list_recipes

_OWN = {"model", "dataset", "data_dir", "out", "init_from", "freeze_backbone", "epochs", "recipe", "model_options"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a checkpoint or torchvision weights on new classes",
                       description="Start from --init-from weights, replace the classifier when the class count "
                                   "differs, and train with the fine-tune recipe into a normal run folder.")
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT_OR_WEIGHTS",
                   help="the starting weights: a resnetlab checkpoint/run folder or a torchvision state dict (.pth)")
    add_deprecated_spelling(p, "--from", "--init-from", dest="init_from")
    p.add_argument("--dataset", default="folder", metavar="NAME", help="default: folder (DIR/train/<class>, DIR/test/<class>)")
    p.add_argument("--data-dir", default=None, metavar="DIR")
    p.add_argument("--out", required=True, metavar="RUN_DIR")
    p.add_argument("--model", default=None, metavar="NAME", help="default: the architecture of the weights")
    p.add_argument("--freeze-backbone", action="store_true", help="train only the classifier (fc)")
    p.add_argument("--epochs", type=int, default=None, metavar="N", help="default: the recipe's")
    p.add_argument("--recipe", default="fine-tune", choices=list_recipes(),
                   help="fine-tune (Adam 1e-4, 10 epochs; default) or transfer (torchvision's transfer-learning settings for photos)")
    p.add_argument("--config", dest="config_file", default=None, metavar="FILE")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the --out folder")
    add_config_flags(p, exclude=_OWN)
    p.set_defaults(func=run_finetune)


def run_finetune(args: argparse.Namespace) -> int:
    from resnetlab.errors import ResnetlabError
    from resnetlab.training import TrainingInterrupted
    from resnetlab.training.command import cli_command
    from resnetlab.training.finetune import finetune

    if args.init_from is None:
        raise ResnetlabError("finetune needs its starting weights: --init-from CHECKPOINT_OR_WEIGHTS")
    others = {k: v for k, v in overrides_from(args).items() if k not in _OWN}
    try:
        summary = finetune(args.init_from, dataset=args.dataset, data_dir=args.data_dir, out=args.out, model=args.model,
                           freeze_backbone=args.freeze_backbone, epochs=args.epochs, config_file=args.config_file,
                           overrides=others, overwrite=args.overwrite, recipe=args.recipe,
                           command=cli_command(getattr(args, "argv", sys.argv[1:])))
    except TrainingInterrupted as exc:  # a fine-tuning run folder is a training run folder: train resumes it
        print(f"resnetlab: {exc}\ncontinue with: resnetlab train --resume {args.out}", file=sys.stderr)
        return 130
    report = summary.get("pretrained") or {}
    loaded, new = report.get("loaded", []), report.get("new", [])
    adapted = report.get("adapted", [])
    adapted_note = f"; adapted to the images' channel count: {', '.join(adapted)}" if adapted else ""
    print(f"loaded {len(loaded)} tensors from {args.init_from}; new: {', '.join(new) if new else 'none'}{adapted_note}")
    final = summary["final"]
    print(f"{summary['model']} fine-tuned on {summary['dataset']} ({len(summary['classes'])} classes): "
          f"test accuracy {final['test_acc']:.4f} (loss {final['test_loss']:.4f}) after {summary['epochs']} epochs; "
          f"run folder {args.out}")
    return 0
