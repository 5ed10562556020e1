"""Time to accuracy of ResNet-20 on CIFAR-10 (JPEG copy): the ``fast`` recipe against the ``paper`` recipe.

Both recipes train the same, unchanged ResNet-20 for the same epoch budget, one after the other in
this one process: ``fast`` as shipped, ``paper`` compressed to the budget (its two learning-rate drops
at 50% and 75% of it). Each run is an ordinary run folder under ``--out`` (so ``resnetlab report``
draws them, and an interrupted benchmark resumes where it stopped). Prints each epoch's test
accuracy of both, then the training wall time each needed to first reach 80%, 85% and 88%, and the
ratio paper / fast. Time counts training and the per-epoch test pass, as a user waits for both.

    python benchmarks/time_to_accuracy.py --data-dir DIR --epochs 15 --out runs/time-to-accuracy

``DIR`` holds train/ and test/ (the shared tarball unpacked); without ``--data-dir`` the tarball in
``../shared/data`` is unpacked into the resnetlab cache first. At 15 epochs the fast half took 24 minutes
(two copies of each image per batch: twice an epoch's compute) and the paper half 11, on two quiet
cores (2026-11-25; docs/fast-recipe.md has the figures); ``--only fast`` / ``--only paper`` trains
one half per sitting. A finished run of an older recipe stops the benchmark before anything trains.
``--precision fp32`` / ``bf16`` fixes the arithmetic (default auto: bf16 on a CPU with native bf16).
"""

from __future__ import annotations

import argparse
import csv
import tarfile
from pathlib import Path

from resnetlab.data.download import cache_root
from resnetlab.errors import ResnetlabError
from resnetlab.precision import PRECISIONS
from resnetlab.sweeps.sweep import refuse_outdated_run
from resnetlab.training import TrainConfig, resolve_config, train

REPO = Path(__file__).resolve().parents[1]
SHARED_TARBALL = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
THRESHOLDS = (0.80, 0.85, 0.88)
RECIPES = ("fast", "paper")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="CIFAR-10 JPEG folder with train/ and test/")
    p.add_argument("--epochs", type=int, default=15, help="epoch budget of both recipes")
    p.add_argument("--out", default="runs/time-to-accuracy", help="parent folder of the two run folders")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subset", type=int, default=None, help="train on fewer images (a quick trial only)")
    p.add_argument("--only", choices=RECIPES, default=None,
                   help="train only this recipe (the two halves in separate sittings); the table shows what has run")
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


def run_folder(recipe: str, args: argparse.Namespace) -> Path:
    return Path(args.out) / f"resnet20-{recipe}-{args.epochs}ep-seed{args.seed}"


def recipe_config(recipe: str, data_dir: Path, args: argparse.Namespace) -> TrainConfig:
    overrides = {"model": "resnet20", "dataset": "folder", "data_dir": str(data_dir), "out": str(run_folder(recipe, args)),
                 "epochs": args.epochs, "max_iters": None, "seed": args.seed, "quiet": True, "subset": args.subset,
                 "precision": args.precision}
    return resolve_config(recipe=recipe, overrides=overrides)


def run_recipe(config: TrainConfig) -> None:
    """Train, resume, or keep a finished run of exactly this config."""
    out = Path(config.out)
    if not (out / "summary.json").is_file():
        train(config, resume=(out / "checkpoints" / "last.pt").is_file())


def read_curve(run: Path) -> list[tuple[int, float, float]]:
    """(epoch, cumulative seconds, test accuracy) per epoch from the run's metrics.csv."""
    curve, elapsed = [], 0.0
    with open(run / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            elapsed += float(row["epoch_seconds"]) + float(row.get("eval_seconds") or 0)  # older runs: training only
            curve.append((int(row["epoch"]), elapsed, float(row["test_acc"])))
    return curve


def first_reach(curve: list[tuple[int, float, float]], threshold: float) -> float | None:
    return next((seconds for _, seconds, acc in curve if acc >= threshold), None)


def main() -> None:
    args = parse_args()
    data_dir = cifar10_jpeg_dir(args.data_dir)
    try:
        configs = {recipe: recipe_config(recipe, data_dir, args) for recipe in RECIPES}
        for recipe, config in configs.items():  # never train beside, or report, a run of an older recipe
            refuse_outdated_run(Path(config.out), config, asker=f"the {recipe} recipe")
        for recipe in [args.only] if args.only else RECIPES:
            run_recipe(configs[recipe])
    except ResnetlabError as exc:  # a run folder of another recipe, bad data: one line, no traceback
        raise SystemExit(f"error: {exc}") from None
    finished = {r: run_folder(r, args) for r in RECIPES if (run_folder(r, args) / "summary.json").is_file()}
    curves = {recipe: read_curve(folder) for recipe, folder in finished.items()}

    print(f"\nResNet-20, CIFAR-10 (JPEG copy), {args.epochs} epochs, seed {args.seed}: test accuracy per epoch")
    print(f"{'epoch':>5}  " + "  ".join(f"{r:>8}" for r in curves))
    for i in range(args.epochs):
        print(f"{i + 1:>5}  " + "  ".join(f"{curves[r][i][2]:>8.2%}" if i < len(curves[r]) else f"{'-':>8}" for r in curves))

    print(f"\n{'reach':>5}  " + "  ".join(f"{r + ' s':>8}" for r in curves) + ("  paper/fast" if len(curves) == 2 else ""))
    for threshold in THRESHOLDS:
        times = {r: first_reach(curves[r], threshold) for r in curves}
        cells = "  ".join(f"{t:>8.0f}" if t is not None else f"{'never':>8}" for t in times.values())
        ratio = f"{times['paper'] / times['fast']:.2f}x" if len(times) == 2 and None not in times.values() else "-"
        print(f"{threshold:>5.0%}  {cells}  {ratio:>10}")


if __name__ == "__main__":
    main()
