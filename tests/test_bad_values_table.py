"""Every bad value a user can hand the command line: one table, one row per input.

Each row is (command line built from tiny generated files, words the message must contain). Every
row must end with exit code 2, one ``resnetlab ... error:`` message and no traceback, and leave
every file that existed before exactly as it was. A few rows also run in a real process.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from resnetlab.cli import main
from tests.builders import make_checkpoint, make_idx_files, make_image_folder, write_idx, write_image

PER_BATCH = 8  # images per CIFAR batch file: 40 training and 8 test images
CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TRAIN_FLAGS = ["--model", "resnet20", "--max-iters", "1", "--batch-size", "8", "--device", "cpu", "--quiet"]


# ---------------------------------------------------------------- tiny files in the official formats


def write_cifar10(root: Path, *, labels: dict[int, list] | None = None, names: list[str] | None = None) -> Path:
    """An extracted ``cifar-10-batches-py`` folder (protocol-2 pickles, as the official archive holds);
    ``labels`` replaces the labels of some batches (1-5, 6 = test), ``names`` the class names."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    _pickle(folder / "batches.meta", {b"label_names": [n.encode() for n in names or CIFAR_NAMES], b"num_vis": 3072})
    rng = np.random.default_rng(0)
    for i in range(1, 7):
        name = f"data_batch_{i}" if i < 6 else "test_batch"
        batch_labels = (labels or {}).get(i, [int(v) for v in rng.integers(0, 10, PER_BATCH)])
        _pickle(folder / name, {b"batch_label": name.encode(), b"labels": batch_labels, b"filenames": [b"x.png"] * PER_BATCH,
                                b"data": rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)})
    return root


def _pickle(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_config(tmp: Path, text: str | bytes) -> str:
    path = tmp / "config.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


ALIAS_BOMB = "a: &a [" + ",".join(["lol"] * 10) + "]\n" + "".join(
    f"{b}: &{b} [" + ",".join([f"*{a}"] * 10) + "]\n" for a, b in zip("abcdefgh", "bcdefghi")) + "recipe: [" + ",".join(["*i"] * 10) + "]\n"


# ---------------------------------------------------------------- the rows


def train(tmp: Path, *flags: str) -> list[str]:
    return ["train", "--out", str(tmp / "run"), *TRAIN_FLAGS, *flags]


def cifar_train(tmp: Path, **kwargs) -> list[str]:
    return train(tmp, "--dataset", "cifar10", "--data-dir", str(write_cifar10(tmp / "cifar", **kwargs)))


def mnist_train(tmp: Path, damage: Callable[[Path], None]) -> list[str]:
    make_idx_files(tmp / "mnist", n_train=16, n_test=8)
    damage(tmp / "mnist")
    return train(tmp, "--dataset", "mnist", "--data-dir", str(tmp / "mnist"))


def bad_checkpoint(tmp: Path, kind: str) -> Path:
    path = make_checkpoint(tmp / "model.pt")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "half":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        payload = torch.load(path, weights_only=True)
        if kind == "newer":
            payload["version"] = 99
        else:
            del payload[kind]
        torch.save(payload, path)
    return path


def consumer(command: str, tmp: Path, ckpt: Path) -> list[str]:
    """``command`` reading the checkpoint ``ckpt``, with otherwise valid arguments."""
    if command == "eval":
        return ["eval", str(ckpt), "--dataset", "folder", "--data-dir", str(make_image_folder(tmp / "photos", size=16))]
    if command == "predict":
        return ["predict", str(ckpt), str(write_image(tmp / "a.png"))]
    if command == "export":
        return ["export", str(ckpt), "--out", str(tmp / "model.onnx")]
    return ["finetune", "--init-from", str(ckpt), "--data-dir", str(make_image_folder(tmp / "photos", size=16)),
            "--out", str(tmp / "ft"), "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--quiet"]


def write_sweep(tmp: Path) -> str:
    """A one-run sweep file on tiny CIFAR-10 files, for the rows that hand it a bad --set."""
    path = tmp / "sweep.yaml"
    path.write_text(f"name: s\nout: {tmp / 'sweep'}\ndefaults: {{dataset: cifar10, data_dir: {write_cifar10(tmp / 'cifar')}, "
                    "model: resnet20, max_iters: 1, batch_size: 8, device: cpu, quiet: true}\nruns:\n  - {name: a}\n")
    return str(path)


def resume_with(run: Path, tmp: Path, **data) -> list[str]:
    return ["train", "--resume", str(run), "--data-dir", str(write_cifar10(tmp / "other", **data))]


def resume_broken(tmp: Path, run: Path) -> list[str]:
    payload = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    del payload["optimizer"]
    torch.save(payload, run / "checkpoints" / "last.pt")
    return ["train", "--resume", str(run)]


@dataclass
class Row:
    build: Callable[[Path, Path], list[str]]  # (tmp folder, a finished run folder to resume) -> argv
    words: str  # regular expression the message must match
    without_gpu: bool = False  # run as where CUDA is absent (torch.cuda.is_available mocked False), on any machine


def config(text: str | bytes) -> Callable[[Path, Path], list[str]]:
    return lambda t, r: train(t, "--config", write_config(t, text))


def flags(*given: str) -> Callable[[Path, Path], list[str]]:
    return lambda t, r: train(t, *given)


def predict_flags(*given: str) -> Callable[[Path, Path], list[str]]:
    return lambda t, r: ["predict", str(make_checkpoint(t / "m.pt")), str(write_image(t / "a.png")), *given]


def cifar_labels(batch: int, labels: object) -> Callable[[Path, Path], list[str]]:
    return lambda t, r: cifar_train(t, labels={batch: labels})


def checkpoint_kind(command: str, kind: str) -> Callable[[Path, Path], list[str]]:
    return lambda t, r: consumer(command, t, bad_checkpoint(t, kind))


WHOLE = "expected a whole number >= 1"
NOT_WHOLE = "holds labels that are not whole numbers"
ROWS: dict[str, Row] = {
    # config files: types
    "milestones: abc": Row(config("milestones: abc\n"), r"milestones must be a list of numbers, got 'abc'"),
    "model: [x]": Row(config("model: [x]\n"), r"model must be a text.*\['x'\]"),
    "seed: 1.5": Row(config("seed: 1.5\n"), r"seed must be a whole number, got 1.5"),
    "image_size: 16.5": Row(config("image_size: 16.5\n"), r"image_size must be a whole number"),
    "quiet: maybe": Row(config("quiet: maybe\n"), r"quiet must be true or false, got 'maybe'"),
    "model_options: 3": Row(config("model_options: 3\n"), r"model_options must be a mapping"),
    "config is a list": Row(config("- lr\n"), r"must be a mapping of config keys"),
    "config not UTF-8": Row(config(b"lr: 0.1  # caf\xe9\n"), r"is not UTF-8 text"),
    "YAML syntax": Row(config("lr: [0.1\n"), r"is not valid YAML"),
    "YAML alias bomb": Row(config(ALIAS_BOMB), r"YAML aliases .* not allowed"),
    "model name of 5000 characters": Row(lambda t, r: ["train", "--config", write_config(t, "model: x" + "x" * 4999)],
                                         r"unknown model 'x+\.\.\.x+'\. Run"),
    "missing config": Row(lambda t, r: train(t, "--config", str(t / "nope.yaml")), r"config file .*nope.yaml does not exist"),
    # config files and flags: ranges
    "momentum: 5": Row(config("momentum: 5\n"), r"momentum must be in \[0, 1\), got 5"),
    "--label-smoothing 2": Row(flags("--label-smoothing", "2"), r"label_smoothing must be in \[0, 1\)"),
    "--epochs 0": Row(flags("--epochs", "0"), r"epochs must be a whole number >= 1, got 0"),
    "--lr -0.1": Row(flags("--lr", "-0.1"), r"lr must be >= 0, got -0.1"),
    "--lr nan": Row(flags("--lr", "nan"), r"lr must be a finite number"),
    "--collective-timeout 0": Row(flags("--collective-timeout", "0"), r"collective_timeout must be a positive number of seconds, got 0"),
    "--collective-timeout inf": Row(flags("--collective-timeout", "inf"), r"collective_timeout must be a finite number, got inf"),
    "--collective-timeout -5": Row(flags("--collective-timeout", "-5"), r"collective_timeout must be a positive number of seconds, got -5"),
    "--weight-decay -1": Row(flags("--weight-decay", "-1"), r"weight_decay must be >= 0"),
    "--lr-decay -0.1": Row(flags("--lr-decay", "-0.1"), r"lr_decay must be >= 0"),
    "--val-split 1.5": Row(flags("--val-split", "1.5"), r"val_split must be a fraction below 1 or a whole number"),
    "--val-split 0.001": Row(lambda t, r: cifar_train(t) + ["--val-split", "0.001"], r"0.001 of the 40 training images holds out 0"),
    "data info --val-split 1.5": Row(lambda t, r: ["data", "info", "--dataset", "cifar10", "--data-dir", str(write_cifar10(t / "c")),
                                                   "--val-split", "1.5"], r"--val-split 1.5 must be a fraction below 1 or a whole number"),
    "--milestones -1": Row(flags("--milestones", "-1"), r"milestones must be numbers >= 0"),
    "--image-size 16.5": Row(flags("--image-size", "16.5"), r"argument --image-size: invalid int value"),
    "train --device foo": Row(flags("--device", "foo"), r"unknown device 'foo'"),
    "train --device cuda": Row(flags("--device", "cuda"), r"CUDA is not available", without_gpu=True),
    # predict and eval flags
    "predict --batch-size 0": Row(predict_flags("--batch-size", "0"), rf"--batch-size: {WHOLE}, got 0"),
    "predict --batch-size -1": Row(predict_flags("--batch-size", "-1"), rf"--batch-size: {WHOLE}, got -1"),
    "predict --topk 0": Row(predict_flags("--topk", "0"), rf"--topk: {WHOLE}, got 0"),
    "predict --device foo": Row(predict_flags("--device", "foo"), r"unknown device 'foo'"),
    "predict --device cuda": Row(predict_flags("--device", "cuda"), r"CUDA is not available", without_gpu=True),
    "eval --batch-size 0": Row(lambda t, r: ["eval", "m.pt", "--batch-size", "0"], rf"--batch-size: {WHOLE}"),
    # data that is not what it claims
    "CIFAR label 99": Row(cifar_labels(2, [99] + [0] * (PER_BATCH - 1)), r"data_batch_2 has 1 label\(s\) outside 0..9 .*99 for image 0"),
    "CIFAR label -1": Row(cifar_labels(6, [0] * (PER_BATCH - 1) + [-1]), r"test_batch has 1 label\(s\) outside 0..9 .*e.g. -1 for image 7"),
    "CIFAR label 'cat'": Row(cifar_labels(1, ["cat"] * PER_BATCH), rf"data_batch_1 {NOT_WHOLE} \('cat'"),
    "CIFAR label 1.5": Row(cifar_labels(1, [1.5] * PER_BATCH), rf"data_batch_1 {NOT_WHOLE} \(1.5"),
    "CIFAR labels not a list": Row(cifar_labels(3, 7), rf"data_batch_3 {NOT_WHOLE} \(one int instead of a list"),
    "CIFAR too few labels": Row(cifar_labels(3, [1, 2]), r"data_batch_3 holds 2 labels for 8 images"),
    "MNIST label 255": Row(lambda t, r: mnist_train(t, lambda d: write_idx(d / "t10k-labels-idx1-ubyte.gz", np.full(8, 255), 2049)),
                           r"t10k-labels-idx1-ubyte.gz has 8 label\(s\) outside 0..9 .*e.g. 255"),
    "IDX of 0 images": Row(lambda t, r: mnist_train(t, lambda d: (write_idx(d / "train-images-idx3-ubyte.gz", np.zeros((0, 28, 28)), 2051),
                                                                write_idx(d / "train-labels-idx1-ubyte.gz", np.zeros(0), 2049))),
                           r"train-images-idx3-ubyte.gz holds no images"),
    # resume on other data, or from a damaged checkpoint
    "resume, other class names": Row(lambda t, r: resume_with(r, t, names=[f"x{i}" for i in range(10)]),
                                     r"cannot resume .*10 classes and the data has 10; class 0 is 'airplane' in the run but 'x0'"),
    "resume, other class count": Row(lambda t, r: resume_with(r, t, names=CIFAR_NAMES + ["extra"]),
                                     r"cannot resume .*10 classes and the data has 11"),
    "resume, checkpoint lacks optimizer": Row(resume_broken, r"last.pt is not a resumable checkpoint: it lacks optimizer"),
    "report, damaged config.yaml": Row(lambda t, r: (r / "config.yaml").write_text("lr: [0.1\n") and
                                       ["report", str(r), "--out", str(t / "report"), "--no-checkpoints"],
                                       r"run config .*config.yaml is not valid YAML"),
    # numbers at their limits: checked where they enter, against what torch takes
    "--seed 99999999999999999999": Row(flags("--seed", "99999999999999999999"), r"seed must be a whole number from 0 to 2\*\*63 - 1"),
    "seed over 2**63 in YAML": Row(config("seed: 99999999999999999999\n"), r"seed must be a whole number from 0 to 2\*\*63 - 1"),
    "seed over 2**63 by --set": Row(lambda t, r: ["sweep", write_sweep(t), "--set", "seed=99999999999999999999"],
                                    r"seed must be a whole number from 0 to 2\*\*63 - 1"),
    "--seed -1": Row(flags("--seed", "-1"), r"seed must be a whole number from 0 to 2\*\*63 - 1 \(\d+\), got -1"),
    "data info --seed 2**63": Row(lambda t, r: ["data", "info", "--dataset", "cifar10", "--data-dir", str(write_cifar10(t / "c")),
                                                "--seed", str(2**63)], r"seed must be a whole number from 0 to 2\*\*63 - 1"),
    "--max-iters 0": Row(flags("--epochs", "1", "--max-iters", "0"), r"max_iters must be a whole number >= 1 \(or null: no cap"),
    "YAML key given twice": Row(config("batch_size: 8\nbatch_size: 12\n"),
                                r"is not valid YAML: the key 'batch_size' is given twice \(lines 1 and 2\): keep one"),
    "sweep --set epochs= (empty)": Row(lambda t, r: ["sweep", write_sweep(t), "--set", "epochs="],
                                       r"--set 'epochs=' has no value: give one \(--set epochs=null unsets it\)"),
    "summary --num-classes 0": Row(lambda t, r: ["summary", "resnet20", "--num-classes", "0"],
                                   r"--num-classes must be a positive whole number, got 0"),
    "summary --num-classes 100000000": Row(lambda t, r: ["summary", "resnet20", "--num-classes", "100000000"],
                                           r"a classifier of 100,000,000 classes .* needs [\d.]+ GiB of memory"),
    "finetune into a run": Row(lambda t, r: consumer("finetune", t, make_checkpoint(t / "m.pt"))[:-9] + ["--out", str(r)],
                               r"already holds a run: continue it with 'resnetlab train --resume"),
}
for command in ("eval", "predict", "export", "finetune"):  # every reader of checkpoints, every kind of bad one
    ROWS[f"{command}: empty .pt"] = Row(checkpoint_kind(command, "empty"), r"model.pt is empty \(0 bytes\)")
    ROWS[f"{command}: half-written .pt"] = Row(checkpoint_kind(command, "half"), r"model.pt is not a readable PyTorch file")
    ROWS[f"{command}: newer version"] = Row(checkpoint_kind(command, "newer"), r"written by a newer resnetlab \(checkpoint version 99")
    ROWS[f"{command}: no classes"] = Row(checkpoint_kind(command, "classes"), r"model.pt is not a complete checkpoint: it lacks classes")
ROWS["eval: no normalization"] = Row(checkpoint_kind("eval", "normalization"), r"it lacks normalization")


# ---------------------------------------------------------------- running the table


def files_of(root: Path) -> dict[str, str]:
    """Every file under ``root`` -> its SHA-256 (what "nothing changed on disk" compares)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-step resnet20 run on tiny CIFAR-10 files: what the resume rows try to continue."""
    tmp = tmp_path_factory.mktemp("finished")
    assert main(cifar_train(tmp)) == 0
    return tmp / "run"


def run_row(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name", list(ROWS))
def test_bad_value_is_one_message_and_changes_nothing(name: str, tmp_path: Path, finished_run: Path,
                                                      capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    row = ROWS[name]
    if row.without_gpu:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = tmp_path / "finished"
    shutil.copytree(finished_run, run)
    argv = row.build(tmp_path, run)
    before = files_of(tmp_path)
    logs = {k: (tmp_path / k).read_bytes() for k in before if k.endswith("train.log")}
    code, err = run_row(argv, capsys)
    assert code == 2, err
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert re.match(r"resnetlab( \w+)?: error: ", message), err
    assert re.search(row.words, message), message
    assert len(message) < 600, f"{len(message)} characters"
    after = files_of(tmp_path)
    # train.log may gain the precision line logged before the data is checked: appended, never rewritten
    assert all((tmp_path / k).read_bytes().startswith(old) for k, old in logs.items())
    kept = {k: v for k, v in before.items() if k not in logs}
    assert {k: v for k, v in after.items() if k in kept} == kept, "a file that existed was changed or removed"
    # A fresh run folder's train.log may already hold the precision line when the data is refused:
    # a log, not a result; every other new file with content is a refused command writing.
    created = [k for k in after if k not in before and (tmp_path / k).stat().st_size and k != "run/train.log"]
    assert created == [], f"files written by a refused command: {created}"


# A real process each (about 5 s of CPU): the quick tier keeps one.
SUBPROCESS_ROWS = ["YAML alias bomb", "predict: empty .pt"]


@pytest.mark.slow  # a real process: the whole suite runs it, the quick tier does not
@pytest.mark.parametrize("name", SUBPROCESS_ROWS)
def test_a_real_process_prints_no_traceback(name: str, tmp_path: Path) -> None:
    argv = ROWS[name].build(tmp_path, tmp_path / "no-run")
    proc = subprocess.run([sys.executable, "-m", "resnetlab", *argv], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and re.search(ROWS[name].words, proc.stderr), proc.stderr
    assert len(proc.stderr) < 1000  # the alias bomb expands neither in memory nor in the message


# ---------------------------------------------------------------- values that are fine, read right


@pytest.mark.parametrize(("text", "expected"), [('"no"', False), ("'yes'", True), ("no", False), ("True", True), ("off", False)])
def test_boolean_words_are_read_strictly(tmp_path: Path, text: str, expected: bool) -> None:
    from resnetlab.training import resolve_config

    assert resolve_config(config_file=write_config(tmp_path, f"quiet: {text}\n")).quiet is expected


def test_val_split_fraction_holds_out_that_share(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(cifar_train(tmp_path) + ["--val-split", "0.25"]) == 0
    from resnetlab.data import load_dataset

    bundle = load_dataset("cifar10", tmp_path / "cifar", val_split=0.25, download=False)
    assert (len(bundle.train), len(bundle.val)) == (30, 10)  # a quarter of 40
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert '"val_acc"' in summary


def test_constant_channel_trains_with_a_note(tmp_path: Path) -> None:
    """A blue plane of one value (std 0) used to turn step 1's loss into NaN."""
    from resnetlab.data import load_dataset

    root = write_cifar10(tmp_path / "cifar")
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        path = root / "cifar-10-batches-py" / name
        batch = pickle.loads(path.read_bytes(), encoding="bytes")
        batch[b"data"][:, 2048:] = 77  # rows are R, G, B planes of 1024 bytes
        _pickle(path, batch)
    bundle = load_dataset("cifar10", root, download=False)
    assert bundle.std[2] == 1.0 and bundle.std[0] > 0.2 and bundle.extra["constant_channels"] == [2]
    assert main(train(tmp_path, "--dataset", "cifar10", "--data-dir", str(root), "--max-iters", "2")) == 0
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["normalization"]["std"][2] == 1.0
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert "channel 2 (blue) of the training images is constant" in (tmp_path / "run" / "train.log").read_text()


def test_ctrl_c_in_finetune_saves_and_train_resume_continues(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import resnetlab.training as training

    real_train = training.train

    def train_with_ctrl_c(config, **kwargs):  # finetune calls resnetlab.training.train
        return real_train(config, on_iteration=lambda i: os.kill(os.getpid(), signal.SIGINT) if i == 1 else None, **kwargs)

    monkeypatch.setattr(training, "train", train_with_ctrl_c)
    argv = consumer("finetune", tmp_path, make_checkpoint(tmp_path / "m.pt"))
    assert main(argv) == 130
    err = capsys.readouterr().err
    out = tmp_path / "ft"
    assert "Traceback" not in err and "interrupted at iteration 1" in err
    assert f"continue with: resnetlab train --resume {out}" in err
    assert (out / "checkpoints" / "last.pt").is_file()
    monkeypatch.undo()
    assert main(["train", "--resume", str(out)]) == 0  # the hint is a command that works
    summary = (out / "summary.json").read_text()
    assert '"recipe": "fine-tune"' in summary and '"iterations": 3' in summary  # 12 images, batch 4, 1 epoch


def test_seeds_up_to_2_63_split_and_train(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The split's and the loader's seed arithmetic (seed * 1_000_003 + crc, seed * 100_003 + epoch)
    once overflowed torch's 64-bit seed; now it wraps, and the largest seed trains."""
    root = make_image_folder(tmp_path / "flat", classes=("a", "b"), per_class=6, splits=("",))
    assert main(["data", "info", "--dataset", "folder", "--data-dir", str(root), "--val-split", "0.25", "--seed", "35184372088832"]) == 0
    from resnetlab.data.layout import PERMUTATION, read_layout

    assert read_layout(root, 0.25, 2**63 - 1, PERMUTATION).split["per_class"]["a"] == {"train": 4, "val": 2}
    assert main(cifar_train(tmp_path) + ["--seed", str(2**63 - 1)]) == 0
    assert "seed: 9223372036854775807" in (tmp_path / "run" / "config.yaml").read_text()
