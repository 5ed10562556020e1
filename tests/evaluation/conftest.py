"""Evaluation fixtures: tiny checkpoints built in place, and one short real run on CIFAR-10 JPEGs.

The real run (resnet20 on 10 classes) and its fine-tuned child (5 other classes, unseen images)
are module-independent session fixtures, so every end-to-end test shares the two trainings.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tests.builders import (
    CIFAR10_JPEG_TARBALL,
    FINETUNE_CLASSES,
    FINETUNE_TEST,
    FINETUNE_TRAIN,
    PRETRAIN_TEST,
    PRETRAIN_TRAIN,
    make_checkpoint,
)


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    return make_checkpoint(tmp_path / "tiny.pt")


@pytest.fixture(scope="session")
def cifar_subsets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two ImageFolder trees cut from the shared CIFAR-10 JPEG copy in one pass over the tarball:
    ``source`` (10 classes) and ``finetune`` (5 classes, images the source run never saw)."""
    if not CIFAR10_JPEG_TARBALL.is_file():
        pytest.skip(f"{CIFAR10_JPEG_TARBALL} not found (it ships in ../shared/data beside the repo)")
    root = tmp_path_factory.mktemp("cifar-subsets")
    plan = {"train": (PRETRAIN_TRAIN, FINETUNE_TRAIN), "test": (PRETRAIN_TEST, FINETUNE_TEST)}
    with tarfile.open(CIFAR10_JPEG_TARBALL) as tar:
        for member in tar:
            parts = Path(member.name).parts[-3:]
            if not member.isfile() or len(parts) != 3 or parts[0] not in plan:
                continue
            split, cls, name = parts
            index = int(Path(name).stem)
            first, second = plan[split]
            if index < first:
                target = root / "source" / split / cls / name
            elif index < first + second and cls in FINETUNE_CLASSES:
                target = root / "finetune" / split / cls / name
            else:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
    return {"source": root / "source", "finetune": root / "finetune"}


@pytest.fixture(scope="session")
def source_run(cifar_subsets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """resnet20 trained for 4 short epochs on 800 CIFAR-10 images (10 classes): a real run folder.

    Images are resized to 16x16 (a quarter of the compute) to keep the suite fast on two shared cores.
    """
    from resnetlab.training import resolve_config, train

    out = tmp_path_factory.mktemp("runs") / "source"
    config = resolve_config("paper", overrides={
        "model": "resnet20", "dataset": "folder", "data_dir": str(cifar_subsets["source"]), "out": str(out),
        "epochs": 4, "max_iters": None, "batch_size": 64, "milestones": [], "lr": 0.05, "image_size": 16,
        "device": "cpu", "quiet": True, "seed": 0,
    })
    train(config)
    return out


@pytest.fixture(scope="session")
def finetuned_run(source_run: Path, cifar_subsets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The source run fine-tuned on 5 classes it was not specialised for: (run folder, summary)."""
    from resnetlab.training.finetune import finetune

    out = tmp_path_factory.mktemp("runs") / "finetuned"
    summary = finetune(source_run / "checkpoints" / "last.pt", data_dir=cifar_subsets["finetune"], out=out, epochs=4,
                       overrides={"batch_size": 50, "device": "cpu", "quiet": True, "seed": 0})  # recipe: Adam, lr 1e-4
    return out, summary
