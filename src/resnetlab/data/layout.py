"""Which files make each split of an image folder, in either of the two layouts people have.

``DIR/train/<class>/*`` with ``DIR/test/<class>/*`` (or ``DIR/val/``), as torchvision's
ImageFolder reads them; or one unsplit folder of class folders (``flower_photos/daisy/*.jpg``,
as downloads come), split here: ``--val-split F`` holds out a fraction F (or a number) of each
class's photos for testing. Which photos: each photo's own draw, a hash of ``--seed`` and its
path under DIR (``class/name.jpg``) read as a number in [0, 1), held out when below F (the rule
TensorFlow's image retraining example used), so adding or removing a photo moves no other photo
between train and test. Runs that started before this rule were split by a permutation of each
class seeded by ``--seed`` and the class name (``PERMUTATION``); their data.json says so, and
resume and ``eval`` read them with that rule. The split is a function of (files, seed, F, rule)
alone, so resume and ``eval`` see the same one; its file lists travel in ``DatasetBundle.extra``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision.datasets.folder import IMG_EXTENSIONS

from resnetlab.config_values import generator_seed
from resnetlab.data.scan import class_folders, listed, scan_classes
from resnetlab.errors import ResnetlabError, option

log = logging.getLogger(__name__)
SPLIT_NAMES = ("train", "test", "val")  # folders that make DIR a split layout
NAME_HASH, PERMUTATION = "name-hash", "permutation"  # split rules: each photo's own draw; the older per-class permutation
SPLIT_RULES = (NAME_HASH, PERMUTATION)


@dataclass
class FolderLayout:
    """The photos of an image folder, by split: (path, class index) pairs in sorted order."""

    classes: list[str]
    train: list[tuple[str, int]]
    test: list[tuple[str, int]]
    train_dir: Path  # the folder the train split's paths are relative to (DIR itself when unsplit)
    test_dir: Path
    test_name: str  # the held-out split's name: "test" or "val" as on disk; "val" for an unsplit folder
    passed: list[str]  # entries passed over, "path (why)"
    split: dict[str, Any] | None = None  # an unsplit folder's seeded split (see ``stratified_split``)


def read_layout(root: Path, val_split: int | float = 0, seed: int = 0, split_rule: str = NAME_HASH) -> FolderLayout:
    """The layout of ``root``, its classes and the files of each split; a message for any other layout.
    ``split_rule`` says how an unsplit folder is split (``NAME_HASH``; ``PERMUTATION`` for older runs)."""
    if not root.is_dir():
        raise ResnetlabError(f"image folder {root} does not exist: pass {option('data_dir', metavar='DIR')} with "
                             f"DIR/train/<class>/ and DIR/test/<class>/ (or DIR/<class>/ and {option('val_split', metavar='FRACTION')})")
    if any((root / name).is_dir() for name in SPLIT_NAMES):
        return _split_layout(root)
    return _unsplit_layout(root, val_split, seed, split_rule)


def _split_layout(root: Path) -> FolderLayout:
    train = root / "train"
    test = next((root / name for name in ("test", "val") if (root / name).is_dir()), None)
    if not train.is_dir() or test is None:
        missing = "train/" if not train.is_dir() else "test/ (or val/)"
        raise ResnetlabError(f"image folder {root} has no {missing}: expected DIR/train/<class>/* and DIR/test/<class>/*")
    classes, test_classes = class_folders(train), class_folders(test)
    every = [train / c for c in classes] + [test / c for c in test_classes]
    _refuse_linked_classes(every)
    train_scan = scan_classes([train / c for c in classes], every)
    _refuse_empty(train_scan.empty)
    test_scan = scan_classes([test / c for c in test_classes], every)
    _refuse_empty(test_scan.empty)
    if test_classes != classes:
        only_train = sorted(set(classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(classes))
        raise ResnetlabError(
            f"{train} and {test} have different classes (only in train: {only_train or 'none'}; "
            f"only in {test.name}: {only_test or 'none'}): both must have the same class folders"
        )
    _log_passed(train_scan.passed, train)
    _log_passed(test_scan.passed, test)
    return FolderLayout(classes, train_scan.samples, test_scan.samples, train, test, test.name, train_scan.passed + test_scan.passed)


def _unsplit_layout(root: Path, val_split: int | float, seed: int, split_rule: str) -> FolderLayout:
    classes = class_folders(root)
    if not val_split:
        shown = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
        raise ResnetlabError(f"image folder {root} holds class folders ({shown}) but no train/ and test/ (or val/): pass "
                             f"{option('val_split', metavar='FRACTION')} (e.g. {option('val_split', 0.2)}) "
                             "to hold out that fraction of each class for testing")
    _refuse_linked_classes([root / c for c in classes])
    scan = scan_classes([root / c for c in classes])
    _refuse_empty(scan.empty)
    _log_passed(scan.passed, root)
    train, test, record = stratified_split(scan.samples, classes, root, val_split, seed, split_rule)
    return FolderLayout(classes, train, test, root, root, "val", scan.passed, record)


def stratified_split(samples: list[tuple[str, int]], classes: list[str], root: Path, val_split: int | float,
                     seed: int, split_rule: str = NAME_HASH) -> tuple[list[tuple[str, int]], list[tuple[str, int]], dict[str, Any]]:
    """(train, held out, record): ``val_split`` of each class held out (a fraction below 1, or a number
    of photos: that share of the folder), each class keeping a photo to train on.

    ``NAME_HASH``: a photo is held out when its own draw (``photo_draw``) is below the fraction, so
    each class holds out about F of its photos (not exactly: each photo decides alone) and a photo
    added or removed moves no other one. ``PERMUTATION`` (runs that started before): the first of a
    permutation of the class's sorted files, seeded by ``seed`` and the class name, exactly
    ``round(F * n)``. The record holds the rule, the settings, the counts per class and both file
    lists, relative to ``root``."""
    if split_rule not in SPLIT_RULES:
        raise ResnetlabError(f"split_rule must be one of {', '.join(SPLIT_RULES)}, got {split_rule!r}")
    by_class = [[s for s in samples if s[1] == k] for k in range(len(classes))]
    choose = _permuted if split_rule == PERMUTATION else _drawn
    chosen = choose(by_class, classes, root, val_split, seed)
    train, held = [], []
    for members, picked in zip(by_class, chosen):
        held += [s for i, s in enumerate(members) if i in picked]
        train += [s for i, s in enumerate(members) if i not in picked]
    if not held:
        raise ResnetlabError(f"{option('val_split', val_split)} holds out none of the {len(samples)} photos in {root}: "
                             "give a larger fraction or a number of photos")
    record = {
        "folder": str(root.resolve()), "val_split": val_split, "seed": seed, "stratified": True, "rule": split_rule,
        "per_class": {name: {"train": len(m) - len(c), "val": len(c)} for name, m, c in zip(classes, by_class, chosen)},
        "train": [Path(p).relative_to(root).as_posix() for p, _ in train],
        "val": [Path(p).relative_to(root).as_posix() for p, _ in held],
    }
    return train, held, record


def photo_draw(relative: str, seed: int) -> float:
    """A photo's own number in [0, 1): a hash of the seed and its path under the folder (``daisy/1.jpg``)."""
    digest = hashlib.sha256(f"{seed}\0{relative}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _drawn(by_class: list[list[tuple[str, int]]], classes: list[str], root: Path, val_split: int | float,
           seed: int) -> list[set[int]]:
    """``NAME_HASH``: the photos whose draw is below the fraction; a class all of whose photos drew
    below it keeps the one of highest draw to train on."""
    total = sum(len(c) for c in by_class)
    _check_val_split(val_split, total)
    fraction = val_split if val_split < 1 else int(val_split) / total
    chosen = []
    for members in by_class:
        draws = [photo_draw(Path(p).relative_to(root).as_posix(), seed) for p, _ in members]
        picked = {i for i, d in enumerate(draws) if d < fraction}
        if members and len(picked) == len(members):
            picked.discard(max(range(len(draws)), key=draws.__getitem__))
        chosen.append(picked)
    return chosen


def _permuted(by_class: list[list[tuple[str, int]]], classes: list[str], root: Path, val_split: int | float,
              seed: int) -> list[set[int]]:
    """``PERMUTATION`` (runs that started before ``NAME_HASH``): the first ``quota`` of each class's
    permutation seeded by ``seed`` and the class name."""
    quotas = _quotas([len(c) for c in by_class], val_split)
    chosen = []
    for name, members, quota in zip(classes, by_class, quotas):
        seeded = torch.Generator().manual_seed(generator_seed(seed * 1_000_003 + zlib.crc32(name.encode())))
        chosen.append(set(torch.randperm(len(members), generator=seeded)[:quota].tolist()))
    return chosen


def _check_val_split(val_split: int | float, total: int) -> None:
    if isinstance(val_split, float) and val_split >= 1 and not val_split.is_integer():
        raise ResnetlabError(f"{option('val_split', val_split)} must be a fraction below 1 or a whole number of photos")
    if val_split >= total:
        raise ResnetlabError(f"{option('val_split', val_split)} must be below the {total} photos of the folder")


def _quotas(sizes: list[int], val_split: int | float) -> list[int]:
    """Photos held out of each class: ``round(fraction * size)``, or a number of photos shared out by
    largest remainders; at most ``size - 1``, so that every class still trains."""
    total = sum(sizes)
    _check_val_split(val_split, total)
    if val_split < 1:
        wanted = [math.floor(val_split * n + 0.5) for n in sizes]
    else:
        shares = [int(val_split) * n / total for n in sizes]
        wanted = [math.floor(s) for s in shares]
        left = int(val_split) - sum(wanted)
        for k in sorted(range(len(sizes)), key=lambda k: (wanted[k] - shares[k], k))[:left]:
            wanted[k] += 1
    return [min(w, n - 1) for w, n in zip(wanted, sizes)]


def _refuse_linked_classes(class_dirs: list[Path]) -> None:
    """A class folder that is a link to another class folder of the data set (``test/cat -> ../train/cat``,
    ``train/kitten -> cat``) would read the same photos twice, under two labels or in both splits:
    refused, saying it is a link. A link to a folder outside the data set is a class folder like any other."""
    real = {d: os.path.realpath(d) for d in class_dirs}
    for linked in (d for d in class_dirs if d.is_symlink()):
        other = next((d for d in class_dirs if d != linked and _overlap(real[linked], real[d])), None)
        if other is not None:
            raise ResnetlabError(f"class folder {linked} is a link to {real[linked]}, which is (or holds) the class folder {other}: "
                                 "its photos would be read twice; copy them into a real folder or remove the link")


def _overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b.rstrip(os.sep) + os.sep) or b.startswith(a.rstrip(os.sep) + os.sep)


def _refuse_empty(empty: list[str]) -> None:
    if empty:
        raise ResnetlabError(
            f"class folder(s) {', '.join(empty)} contain no images "
            f"({', '.join(IMG_EXTENSIONS)}): add images or remove the folder"
        )


def _log_passed(passed: list[str], where: Path) -> None:
    """Name what was passed over: the first ``scan.NAMED`` entries and a count of the rest."""
    if passed:
        log.warning("passed over %d entr%s in %s: %s", len(passed), "y" if len(passed) == 1 else "ies", where, listed(passed))
