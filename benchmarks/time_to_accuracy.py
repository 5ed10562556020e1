"""Time to accuracy of ResNet-20 on CIFAR-10 (JPEG copy): two recipes side by side, by default
``fast-cpu`` against ``fast``.

Each recipe trains the same, unchanged ResNet-20 for its own epoch budget (``--epochs`` gives both
one budget; ``paper`` needs it, its own budget being 64k iterations, and is then compressed to it:
its two learning-rate drops at 50% and 75%), one after the other in this one process, so that the
machine's speed of the hour enters both. Each run is an ordinary run folder under ``--out`` (so
``resnetlab report`` draws them, and an interrupted benchmark resumes where it stopped). Prints
each epoch's test accuracy, then for each recipe its training time and the wall time it needed to
first reach 80%, 85%, 87% and 88%, and the ratio of the first recipe's time to the second's. Wall
time counts training and the per-epoch test pass, as a user waits for both.

    python benchmarks/time_to_accuracy.py --data-dir DIR --out runs/time-to-accuracy
    python benchmarks/time_to_accuracy.py --data-dir DIR --recipes fast paper --epochs 15

``DIR`` holds train/ and test/ (the shared tarball unpacked); without ``--data-dir`` the tarball in
``../shared/data`` is unpacked into the resnetlab cache first. ``--only RECIPE`` trains one of them
per sitting. A finished run of an older recipe stops the benchmark before anything trains.
``--precision fp32`` / ``bf16`` fixes the arithmetic (default auto: bf16 on a CPU with native bf16).
Figures and the machines they were measured on: docs/fast-recipe.md.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import tarfile
from pathlib import Path

from resnetlab.data.download import cache_root
from resnetlab.errors import ResnetlabError
from resnetlab.precision import PRECISIONS
from resnetlab.sweeps.sweep import refuse_outdated_run
from resnetlab.training import TrainConfig, TrainingInterrupted, resolve_config, train

REPO = Path(__file__).resolve().parents[1]
SHARED_TARBALL = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
THRESHOLDS = (0.80, 0.85, 0.87, 0.88)
RECIPES = ("fast-cpu", "fast")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="CIFAR-10 JPEG folder with train/ and test/")
    p.add_argument("--recipes", nargs=2, default=list(RECIPES), metavar=("RECIPE", "BASELINE"),
                   help="the two recipes to compare (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="one epoch budget for both recipes (default: each recipe's own)")
    p.add_argument("--out", default="runs/time-to-accuracy", help="parent folder of the two run folders")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subset", type=int, default=None, help="train on fewer images (a quick trial only)")
    p.add_argument("--only", default=None, metavar="RECIPE",
                   help="train only this one of the two recipes (the two halves in separate sittings); the tables show what has run")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="training precision (docs/precision.md); give each precision its own --out")
    return p.parse_args()


def cifar10_jpeg_dir(data_dir: str | None) -> Path:
    """The given folder, or the shared tarball unpacked once into the cache."""
    if data_dir:
        return Path(data_dir)
    target = cache_root() / "cifar10-jpeg"
    if not (target / "train").is_dir():
        if not SHARED_TARBALL.is_file():
            raise SystemExit(f"error: {SHARED_TARBALL} not found; pass --data-dir with train/ and test/ inside")
        with tarfile.open(SHARED_TARBALL) as tar:
            tar.extractall(target, filter="data")
    roots = [p.parent for p in target.rglob("train") if p.is_dir()]
    return roots[0]


def run_folder(config: TrainConfig, args: argparse.Namespace) -> Path:
    return Path(args.out) / f"resnet20-{config.recipe}-{config.epochs}ep-seed{args.seed}"


def recipe_config(recipe: str, data_dir: Path, args: argparse.Namespace) -> TrainConfig:
    """The recipe as shipped on the JPEG copy, with the benchmark's seed, precision and budget."""
    overrides = {"model": "resnet20", "dataset": "folder", "data_dir": str(data_dir), "max_iters": None, "seed": args.seed,
                 "quiet": True, "subset": args.subset, "precision": args.precision}
    epochs = args.epochs or resolve_config(recipe=recipe, overrides=overrides).epochs
    if epochs is None:
        raise ResnetlabError(f"the {recipe} recipe sets no epoch budget of its own: give one with --epochs")
    config = resolve_config(recipe=recipe, overrides={**overrides, "epochs": epochs})
    return dataclasses.replace(config, out=str(run_folder(config, args)))


def run_recipe(config: TrainConfig) -> None:
    """Train, resume, or keep a finished run of exactly this config."""
    out = Path(config.out)
    if not (out / "summary.json").is_file():
        train(config, resume=(out / "checkpoints" / "last.pt").is_file())


def read_curve(run: Path) -> list[tuple[int, float, float, float]]:
    """(epoch, cumulative wall seconds, test accuracy, cumulative training seconds) per epoch from
    the run's metrics.csv."""
    curve, elapsed, training = [], 0.0, 0.0
    with open(run / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            training += float(row["epoch_seconds"])
            elapsed += float(row["epoch_seconds"]) + float(row.get("eval_seconds") or 0)  # older runs: training only
            curve.append((int(row["epoch"]), elapsed, float(row["test_acc"]), training))
    return curve


def first_reach(curve: list[tuple[int, float, float, float]], threshold: float) -> float | None:
    return next((seconds for _, seconds, acc, _ in curve if acc >= threshold), None)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def main() -> None:
    args = parse_args()
    data_dir = cifar10_jpeg_dir(args.data_dir)
    recipes = list(dict.fromkeys(args.recipes))
    if args.only is not None and args.only not in recipes:
        raise SystemExit(f"error: --only {args.only} is not one of the compared recipes ({', '.join(recipes)})")
    try:
        configs = {recipe: recipe_config(recipe, data_dir, args) for recipe in recipes}
        for recipe, config in configs.items():  # never train beside, or report, a run of an older recipe
            refuse_outdated_run(Path(config.out), config, asker=f"the {recipe} recipe")
        for recipe in [args.only] if args.only else recipes:
            run_recipe(configs[recipe])
    except ResnetlabError as exc:  # a run folder of another recipe, bad data, an unknown recipe: one line, no traceback
        raise SystemExit(f"error: {exc}") from None
    except TrainingInterrupted as exc:  # Ctrl-C or SIGTERM: the run's checkpoint is saved
        raise SystemExit(f"{exc}; run the same command again to continue") from None
    curves = {r: read_curve(Path(c.out)) for r, c in configs.items() if (Path(c.out) / "summary.json").is_file()}
    print_tables(curves, args.seed)


def print_tables(curves: dict[str, list[tuple[int, float, float, float]]], seed: int) -> None:
    """Each epoch's test accuracy, then times to each threshold and their ratio (first / second)."""
    print(f"\nResNet-20, CIFAR-10 (JPEG copy), seed {seed}: test accuracy per epoch")
    print(f"{'epoch':>5}  " + "  ".join(f"{r:>10}" for r in curves))
    for i in range(max((len(c) for c in curves.values()), default=0)):
        print(f"{i + 1:>5}  " + "  ".join(f"{c[i][2]:>10.2%}" if i < len(c) else f"{'-':>10}" for c in curves.values()))
    names = list(curves)
    pair = len(names) == 2
    print(f"\n{'':>9}  " + "  ".join(f"{r + ' s':>10}" for r in names) + (f"  {names[0]}/{names[1]}" if pair else ""))
    training = {r: c[-1][3] for r, c in curves.items() if c}
    print(f"{'training':>9}  " + "  ".join(f"{training[r]:>10.0f}" for r in names)
          + (f"  {ratio(training.get(names[0]), training.get(names[1])):>10}" if pair else ""))
    for threshold in THRESHOLDS:
        times = {r: first_reach(curves[r], threshold) for r in names}
        cells = "  ".join(f"{t:>10.0f}" if t is not None else f"{'never':>10}" for t in times.values())
        print(f"{'to ' + format(threshold, '.0%'):>9}  {cells}" + (f"  {ratio(*times.values()):>10}" if pair else ""))
    for r, c in curves.items():
        if c:
            print(f"{r}: {c[-1][2]:.2%} after epoch {c[-1][0]}")


if __name__ == "__main__":
    main()
