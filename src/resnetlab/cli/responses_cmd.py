"""``resnetlab responses RUN_OR_WEIGHTS... --out DIR``: the paper's Fig. 7 (std of layer responses)."""

from __future__ import annotations

import argparse
import json

from resnetlab.cli.eval_cmd import add_run_flags

JSON_KEYS = ("runs", "files")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("responses", help="std of every 3x3 layer's response on the test split (the paper's Fig. 7)",
                       description="For every 3x3 convolution, the standard deviation (population, over images x channels "
                                   "x height x width) of its BatchNorm's output on the whole test split, the model in eval "
                                   "mode, before the addition and the ReLU. Writes responses.csv and responses.png (top: by "
                                   "layer; bottom: sorted descending; plain nets dashed, ResNets solid).")
    p.add_argument("sources", nargs="+", metavar="RUN_OR_WEIGHTS",
                   help="run folders, checkpoints, or plain state_dict files (.pth/.th, with --model and --dataset)")
    p.add_argument("--out", required=True, help="folder for responses.csv and responses.png")
    p.add_argument("--model", action="append", default=None, metavar="NAME",
                   help="plain weights files: their architecture (e.g. resnet20, plain56); once for all of them, or "
                        "repeated once per weights file in their order")
    p.add_argument("--dataset", default=None, help="plain weights files: the dataset whose test split to read (e.g. cifar10); "
                                                   "runs: default their own")
    p.add_argument("--data-dir", default=None, help="where that dataset is (default: the run's own, or the cache)")
    p.add_argument("--mean", type=float, nargs="+", default=None, metavar="M",
                   help="plain weights files: the per-channel mean they were trained with, in [0, 1] units "
                        "(default: the training split's)")
    p.add_argument("--std", type=float, nargs="+", default=None, metavar="S",
                   help="plain weights files: the per-channel std they were trained with (default: the training split's)")
    p.add_argument("--name", action="append", default=None, dest="names", metavar="LABEL",
                   help="the label of each source in the CSV and the legend, in order (repeat it once per source; "
                        "default: the run folder's name or the file's stem)")
    add_run_flags(p, batch_default=None)  # --batch-size, --device, --accept-changed-data
    p.add_argument("--json", action="store_true", help='print {"runs": [...], "files": {"csv", "png"}} as JSON')
    p.set_defaults(func=run_responses)


def run_responses(args: argparse.Namespace) -> int:
    from resnetlab.reports.responses import responses

    result = responses(args.sources, args.out, model=args.model, dataset=args.dataset, data_dir=args.data_dir,
                       mean=args.mean, std=args.std, names=args.names, batch_size=args.batch_size, device=args.device,
                       accept_changed_data=args.accept_changed_data)
    if args.json:
        print(json.dumps({k: result[k] for k in JSON_KEYS}, indent=2))
        return 0
    for run in result["runs"]:
        stds = [layer["std"] for layer in run["layers"]]
        kind = "ResNet" if run["residual"] else "plain"
        print(f"{run['run']} ({run['model']}, {kind}, {run['images']} test images): {len(stds)} 3x3 layers, std "
              f"mean {sum(stds) / len(stds):.4f}, min {min(stds):.4f}, max {max(stds):.4f}")
    for path in result["files"].values():
        print(f"wrote {path}")
    return 0
