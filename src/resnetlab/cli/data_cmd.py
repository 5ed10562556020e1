"""``resnetlab data info|stats|download``: what a dataset holds, its statistics, fetching it."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from resnetlab.data.orientation import DEFAULT_EXIF_ORIENTATION, EXIF_ORIENTATIONS
from resnetlab.memory import check_image_size

if TYPE_CHECKING:
    from resnetlab.data.types import DatasetBundle

# data.sources' registry (checked against it by a test); named here so that --help needs no torch
DATASETS = ("cifar10", "cifar100", "mnist", "fashion-mnist", "folder")
PER_CLASS_SHOWN = 20  # data info lists each class's counts up to this many classes (--json: always)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect, download or cache a dataset")
    data_sub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    commands = (
        ("info", "classes, split sizes, image shape, mean/std and location", run_info),
        ("stats", "per-channel mean and std of the training split", run_stats),
        ("download", "download and verify (or decode and cache an image folder) ahead of training", run_download),
    )
    for name, help_text, func in commands:
        q = data_sub.add_parser(name, help=help_text)
        add_dataset_arguments(q)
        q.add_argument("--json", action="store_true", help="print JSON instead of text")
        q.set_defaults(func=func)


def add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    """The options every command that loads a dataset shares (train uses the same names)."""
    p.add_argument("--dataset", required=True, metavar="NAME", help=f"one of: {', '.join(DATASETS)}")
    p.add_argument("--data-dir", default=None, help="cache folder (default $RESNETLAB_DATA or ~/.cache/resnetlab); "
                   "for 'folder' the folder holding train/ and test/")
    p.add_argument("--val-split", type=count_or_fraction, default=0, metavar="N",
                   help="hold out N training images for validation (below 1: that fraction of them); an unsplit "
                        "folder (DIR/<class>/*): N of each class's photos held out as its test split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, nargs="+", default=None, metavar="SIZE",
                   help="small images: resize to SIZE or H W; photo folders: the training crop S (default 224)")
    p.add_argument("--skip-bad-images", action="store_true", help="leave out unreadable images instead of stopping")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                   help="photo folders: leave the photos on disk for the streaming loader (default: when the cache would not fit)")
    p.add_argument("--memory-budget-gb", type=float, default=None, metavar="GIB",
                   help="photo folders: GiB the decoded cache may take (default: half the machine's memory)")
    p.add_argument("--exif-orientation", choices=EXIF_ORIENTATIONS, default=DEFAULT_EXIF_ORIENTATION,
                   help="image folders: photos tagged as stored sideways are read as stored, as torchvision does (ignore), "
                        "or turned upright (apply)")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading missing files")


def count_or_fraction(text: str) -> int | float:
    """'5000' -> 5000 images, '0.1' -> a tenth of them."""
    value = float(text)
    return int(value) if value >= 1 and value.is_integer() else value


count_or_fraction.__name__ = "number"  # argparse names the type in its message


def load_from_args(args: argparse.Namespace) -> DatasetBundle:
    from resnetlab.data import load_dataset

    size = args.image_size[0] if args.image_size and len(args.image_size) == 1 else args.image_size
    if args.image_size:
        height, width = (args.image_size * 2)[:2]
        check_image_size((3, height, width), 1, f"one image of --image-size {' '.join(map(str, args.image_size))}",
                         "lower --image-size")
    budget = int(args.memory_budget_gb * 2**30) if args.memory_budget_gb else None
    return load_dataset(args.dataset, args.data_dir, val_split=args.val_split, seed=args.seed, download=not args.no_download,
                        image_size=size, skip_bad_images=args.skip_bad_images, memory_budget=budget, stream=args.stream,
                        exif_orientation=args.exif_orientation)


def dataset_info(bundle: DatasetBundle) -> dict:
    """The JSON form of ``resnetlab data info``: splits named as on disk (``DIR/val`` is "val"),
    ``test_split`` naming the one the final evaluation reads, and what each class has in each."""
    import torch

    from resnetlab.data.device_decode import photo_decoder
    from resnetlab.data.photo_pipeline import batched_on
    from resnetlab.devices import resolve_device

    test_name = bundle.extra.get("test_split", "test")
    parts = {"train": bundle.train, test_name: bundle.test}
    if bundle.val is not None:
        parts["val" if test_name != "val" else "held_out"] = bundle.val  # held out of train by --val-split
    splits = {name: len(part) for name, part in parts.items()}
    counts = {name: torch.bincount(part.labels, minlength=len(bundle.classes)).tolist() for name, part in parts.items()}
    per_class = {c: {name: counts[name][k] for name in parts} for k, c in enumerate(bundle.classes)}
    why = bundle.extra.get("pipeline_reason") or "a built-in dataset of small images of one size"
    info = {"dataset": bundle.name, "classes": bundle.classes, "splits": splits, "test_split": test_name, "per_class": per_class,
            "image_shape": list(bundle.image_shape), "pipeline": bundle.pipeline, "pipeline_reason": why,
            "storage": bundle.extra.get("storage", "memory"),
            "storage_reason": bundle.extra.get("storage_reason", "small images are always held in memory"),
            "mean": list(bundle.mean), "std": list(bundle.std), "location": bundle.location}
    for key in ("exif_orientation", "passed_over"):
        if key in bundle.extra:
            info[key] = bundle.extra[key]
    if "split" in bundle.extra:  # an unsplit folder: how its split was made (the file lists stay out)
        info["split"] = {k: v for k, v in bundle.extra["split"].items() if k not in ("train", "val")}
    if bundle.pipeline == "photos":  # how a run with the default --device and photo_views decodes them
        device = resolve_device("auto")
        info["decoder"] = photo_decoder(info["storage"], device, batched_on("auto", device))
    return info


def run_info(args: argparse.Namespace) -> int:
    from resnetlab.data.scan import listed

    info = dataset_info(load_from_args(args))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"dataset      {info['dataset']}  ({info['location']})")
    print(f"classes      {len(info['classes'])}: {', '.join(info['classes'])}")
    print(f"splits       {', '.join(f'{k} {v:,}' for k, v in info['splits'].items())} (the final evaluation reads {info['test_split']})")
    if "split" in info:
        split = info["split"]
        print(f"split        {info['test_split']} held out of each class folder by --val-split {split['val_split']}, "
              f"--seed {split['seed']}")
    if len(info["classes"]) <= PER_CLASS_SHOWN:
        order = "/".join(info["splits"])
        print(f"per class    ({order}) " + ", ".join(f"{c} {'/'.join(map(str, n.values()))}" for c, n in info["per_class"].items()))
    print(f"pipeline     {info['pipeline']}: {info['pipeline_reason']}")
    print(f"storage      {info['storage']}: {info['storage_reason']}")
    if "decoder" in info:
        print(f"decoder      {info['decoder']}")
    crop_note = ", the training crop" if info["pipeline"] == "photos" else ""
    print(f"image shape  {'x'.join(map(str, info['image_shape']))} (C x H x W{crop_note})")
    print(f"mean         {_floats(info['mean'])}")
    print(f"std          {_floats(info['std'])}")
    if "exif_orientation" in info:
        print(f"orientation  {_orientation_line(info['exif_orientation'])}")
    if info.get("passed_over"):
        passed = info["passed_over"]
        print(f"passed over  {len(passed)} entr{'y' if len(passed) == 1 else 'ies'}: {listed(passed)}")
    return 0


def _orientation_line(survey: dict) -> str:
    """How many images carry an EXIF orientation tag, and how they are read."""
    of = f"{survey['checked']:,} images" if survey["checked"] == survey["images"] else \
        f"{survey['checked']:,} sampled images (of {survey['images']:,})"
    if not survey["tagged"]:
        return f"none of the {of} carries an EXIF orientation tag"
    rule = ("turned upright by their tag (--exif-orientation apply)" if survey["rule"] == "apply"
            else "read as stored, as torchvision reads them (--exif-orientation apply turns them upright)")
    verb = "carries" if survey["tagged"] == 1 else "carry"
    return f"{survey['tagged']:,} of the {of} {verb} an EXIF orientation tag (e.g. {survey['examples'][0]}): {rule}"


def run_stats(args: argparse.Namespace) -> int:
    bundle = load_from_args(args)
    if args.json:
        print(json.dumps({"dataset": bundle.name, "train_images": len(bundle.train), "mean": list(bundle.mean), "std": list(bundle.std)}))
        return 0
    print(f"mean {_floats(bundle.mean)}\nstd  {_floats(bundle.std)}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    bundle = load_from_args(args)
    if args.json:
        extra = {k: v for k, v in bundle.extra.items() if k != "split"}  # not an unsplit folder's file lists
        print(json.dumps({"dataset": bundle.name, "location": bundle.location, **extra}))
    else:
        print(f"{bundle.name} ready in {bundle.location}")
    return 0


def _floats(values: list[float] | tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"
