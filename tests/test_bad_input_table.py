"""Every bad input and file-system fault a user meets on the command line: one line on stderr,
exit code 2, no traceback, and nothing that was on disk before changed or lost.

One row per case: a function that sets the case up inside ``tmp`` (given a finished run folder
there) and returns the command line, and the words the message must contain. The whole of
``tmp`` is hashed before and after: no file may change or disappear, and no checkpoint appear.
"""

from __future__ import annotations

import errno
import hashlib
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from resnetlab.cli import main
from resnetlab.run_lock import RunLock
from tests.builders import make_image_folder

TRAIN = ["--model", "resnet20", "--dataset", "folder", "--max-iters", "2", "--batch-size", "4", "--device", "cpu", "--quiet"]


def write_folder_dataset(root: Path) -> Path:
    """Two classes of 8x8 PNGs (dark and bright), 8 training and 4 test images each."""
    return make_image_folder(root, classes=("dark", "bright"), per_class={"train": 8, "test": 4})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data folder, run folder) of one 2-iteration training, copied into each test's tmp."""
    root = tmp_path_factory.mktemp("table")
    data = write_folder_dataset(root / "data")
    assert main(["train", *TRAIN, "--data-dir", str(data), "--out", str(root / "run")]) == 0
    return data, root / "run"


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


# Each builder gets (tmp, data, run) and returns the command line.
Case = Callable[[Path, Path, Path], list[str]]


def _existing_run(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["train", *TRAIN, "--data-dir", str(data), "--out", str(run)]


def _overwrite_with_a_wrong_data_dir(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["train", *TRAIN, "--data-dir", str(tmp / "typo"), "--out", str(run), "--overwrite"]


def _overwrite_with_a_wrong_model(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "options.yaml").write_text("model_options: {shortcut: Z}\n")
    return ["train", *TRAIN, "--data-dir", str(data), "--out", str(run), "--overwrite", "--config", str(tmp / "options.yaml")]


def _finetune_into_its_own_run_without_overwrite(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["finetune", "--init-from", str(run), "--data-dir", str(data), "--out", str(run), "--max-iters", "2", "--device", "cpu"]


def _folder_of_the_users_files(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "class_indices.json").write_text('{"0": "my own"}\n')
    return ["train", *TRAIN, "--data-dir", str(data), "--out", str(tmp / "mine"), "--overwrite"]


def _folder_of_the_users_checkpoints(tmp: Path, data: Path, run: Path) -> list[str]:
    """No config.yaml of ours: the user's own checkpoints/, weights.pth and train.log are no run to replace."""
    mine = tmp / "mine"
    (mine / "checkpoints").mkdir(parents=True)
    (mine / "checkpoints" / "last.pt").write_bytes(b"my own checkpoint")
    (mine / "weights.pth").write_bytes(b"my own weights")
    (mine / "train.log").write_text("my own log\n")
    return ["train", *TRAIN, "--data-dir", str(data), "--out", str(mine), "--overwrite"]


def _image_size_below_the_models_smallest(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["train", *TRAIN, "--data-dir", str(data), "--image-size", "1", "--out", str(tmp / "new-run")]


def _image_size_whose_activations_do_not_fit(tmp: Path, data: Path, run: Path) -> list[str]:
    """The input batch (8 x 3 x 4000 x 4000 floats: 1.4 GiB) passes; the layers' outputs do not."""
    return ["train", *TRAIN, "--model", "resnet18", "--data-dir", str(data), "--image-size", "4000", "--batch-size", "8",
            "--out", str(tmp / "new-run")]


def _out_is_a_file(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "notes.txt").write_text("mine")
    return ["train", *TRAIN, "--data-dir", str(data), "--out", str(tmp / "notes.txt")]


def _out_under_a_file(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "notes.txt").write_text("mine")
    return ["train", *TRAIN, "--data-dir", str(data), "--out", str(tmp / "notes.txt" / "run")]


def _out_under_proc(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["train", *TRAIN, "--data-dir", str(data), "--out", "/proc/resnetlab-run"]


def _out_in_a_folder_that_refuses_writes(tmp: Path, data: Path, run: Path) -> list[str]:
    if not Path("/sys/kernel").is_dir():  # sysfs refuses new files, even to root
        pytest.skip("no /sys/kernel to stand for a folder that refuses writes")
    return ["train", *TRAIN, "--data-dir", str(data), "--out", "/sys/kernel"]


def _run_locked_by_another_process(tmp: Path, data: Path, run: Path) -> list[str]:
    _held_locks.append(RunLock(run))
    _held_locks[-1].acquire()
    return ["train", *TRAIN, "--data-dir", str(data), "--out", str(run), "--resume", "--max-iters", "4"]


def _disk_full_while_saving(tmp: Path, data: Path, run: Path) -> list[str]:
    _faults.append(("resnetlab.checkpoint.torch.save", OSError(errno.ENOSPC, "No space left on device")))
    return ["train", *TRAIN, "--data-dir", str(data), "--out", str(tmp / "fresh")]


def _disk_full_as_torch_reports_it(tmp: Path, data: Path, run: Path) -> list[str]:
    error = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    error.__context__ = OSError(errno.ENOSPC, "No space left on device")  # raised while torch's zip writer closed
    _faults.append(("resnetlab.checkpoint.torch.save", error))
    return ["train", *TRAIN, "--data-dir", str(data), "--out", str(tmp / "fresh")]


def _torch_writer_fails(tmp: Path, data: Path, run: Path) -> list[str]:
    error = RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file data/3: file write failed")
    _faults.append(("resnetlab.checkpoint.torch.save", error))
    return ["train", *TRAIN, "--data-dir", str(data), "--out", str(tmp / "fresh")]


def _learning_rate_that_overflows(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["train", *TRAIN, "--data-dir", str(data), "--out", str(tmp / "fresh"), "--lr", "1e6"]


def _absurd_image_size(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["train", *TRAIN, "--data-dir", str(data), "--out", str(tmp / "fresh"), "--image-size", "100000"]


def _export_over_the_runs_checkpoint(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["export", str(run), "--format", "torchscript", "--out", str(run / "checkpoints" / "last.pt"), "--overwrite"]


def _export_over_the_runs_config(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["export", str(run), "--format", "torchscript", "--out", str(run / "config.yaml"), "--overwrite"]


def _export_over_an_existing_file(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "model.pt").write_text("an older export")
    return ["export", str(run), "--format", "torchscript", "--out", str(tmp / "model.pt")]


def _export_over_its_own_checkpoint(tmp: Path, data: Path, run: Path) -> list[str]:
    shutil.copy(run / "checkpoints" / "last.pt", tmp / "model.pt")
    return ["export", str(tmp / "model.pt"), "--format", "onnx", "--out", str(tmp / "model.pt"), "--overwrite"]


def _export_over_its_checkpoint_through_a_link(tmp: Path, data: Path, run: Path) -> list[str]:
    shutil.copy(run / "checkpoints" / "last.pt", tmp / "model.pt")
    (tmp / "link.pt").symlink_to(tmp / "model.pt")
    return ["export", str(tmp / "model.pt"), "--format", "torchscript", "--out", str(tmp / "link.pt"), "--overwrite"]


def _export_to_a_folder(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["export", str(run), "--format", "torchscript", "--out", str(tmp)]


def _export_under_a_file(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "notes.txt").write_text("mine")
    return ["export", str(run), "--format", "torchscript", "--out", str(tmp / "notes.txt" / "model.pt")]


def _huge_input_size(tmp: Path, run: Path) -> Path:
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    ckpt["input_size"] = [3, 100000, 100000]
    torch.save(ckpt, tmp / "huge.pt")
    return tmp / "huge.pt"


def _export_of_a_huge_input(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["export", str(_huge_input_size(tmp, run)), "--format", "torchscript", "--out", str(tmp / "m.pt")]


def _predict_with_a_huge_input(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["predict", str(_huge_input_size(tmp, run)), str(next((data / "test").rglob("*.png")))]


def _predict_from_weights_at_a_huge_size(tmp: Path, data: Path, run: Path) -> list[str]:
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    torch.save(ckpt["state_dict"], tmp / "weights.pth")
    return ["predict", "--model", "resnet20", "--weights", str(tmp / "weights.pth"), "--classes", str(run / "class_indices.json"),
            "--image-size", "100000", str(next((data / "test").rglob("*.png")))]


def _predict_with_a_class_file(tmp: Path, data: Path, run: Path, text: str) -> list[str]:
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    torch.save(ckpt["state_dict"], tmp / "weights.pth")
    (tmp / "classes.json").write_text(text)
    return ["predict", "--model", "resnet20", "--weights", str(tmp / "weights.pth"), "--classes", str(tmp / "classes.json"),
            str(next((data / "test").rglob("*.png")))]


def _class_file_of_numbers(tmp: Path, data: Path, run: Path) -> list[str]:
    return _predict_with_a_class_file(tmp, data, run, '{"0": 1, "1": null}')


def _class_file_with_names_as_keys(tmp: Path, data: Path, run: Path) -> list[str]:
    return _predict_with_a_class_file(tmp, data, run, '{"dark": "bright", "bright": "dark"}')


def _unsplit_folder_without_val_split(tmp: Path, data: Path, run: Path) -> list[str]:
    shutil.copytree(data / "train", tmp / "flower_photos")  # DIR/<class>/*, as downloads come
    return ["train", *TRAIN, "--data-dir", str(tmp / "flower_photos"), "--out", str(tmp / "new-run")]


def _predict_shown_over_its_photo(tmp: Path, data: Path, run: Path) -> list[str]:
    photo = next((data / "test").rglob("*.png"))
    shutil.copy(photo, tmp / "keep.png")
    return ["predict", str(run), str(tmp / "keep.png"), "--show", str(tmp / "keep.png"), "--overwrite"]


def _predict_shown_as_a_weights_file(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["predict", str(run), str(next((data / "test").rglob("*.png"))), "--show", str(tmp / "weights.pth")]


def _predict_from_weights_at_size_1(tmp: Path, data: Path, run: Path) -> list[str]:
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    torch.save(ckpt["state_dict"], tmp / "weights.pth")
    return ["predict", "--model", "resnet20", "--weights", str(tmp / "weights.pth"), "--classes", str(run / "class_indices.json"),
            "--image-size", "1", str(next((data / "test").rglob("*.png")))]


def _responses_of_weights_without_a_model(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["responses", str(run / "weights.pth"), "--out", str(tmp / "fig7"), "--device", "cpu"]


def _responses_with_an_unknown_model(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["responses", str(run / "weights.pth"), "--model", "resnet21", "--dataset", "folder", "--data-dir", str(data),
            "--out", str(tmp / "fig7"), "--device", "cpu"]


def _responses_of_another_architectures_weights(tmp: Path, data: Path, run: Path) -> list[str]:
    from resnetlab.models import create_model

    torch.save({"state_dict": create_model("resnet32", num_classes=2).state_dict()}, tmp / "resnet32.th")
    return ["responses", str(tmp / "resnet32.th"), "--model", "resnet20", "--dataset", "folder", "--data-dir", str(data),
            "--out", str(tmp / "fig7"), "--device", "cpu"]


def _responses_without_the_data(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["responses", str(run), "--data-dir", str(tmp / "typo"), "--out", str(tmp / "fig7"), "--device", "cpu"]


def _responses_on_changed_data(tmp: Path, data: Path, run: Path) -> list[str]:
    _eval_on_changed_data(tmp, data, run)  # data.json: train/dark held 7 images; the folder holds 8
    return ["responses", str(run), "--out", str(tmp / "fig7"), "--device", "cpu"]


def _responses_into_a_file(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "notes.txt").write_text("mine")
    return ["responses", str(run), "--out", str(tmp / "notes.txt"), "--device", "cpu"]


def _data_info_at_a_huge_size(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["data", "info", "--dataset", "folder", "--data-dir", str(data), "--image-size", "100000"]


def _summary_of_a_huge_input(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["summary", "resnet20", "--input-size", "3", "100000", "100000"]


def _report_into_a_file(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "notes.txt").write_text("mine")
    return ["report", str(run), "--no-checkpoints", "--out", str(tmp / "notes.txt")]


def _eval_into_a_file(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "notes.txt").write_text("mine")
    return ["eval", str(run), "--out", str(tmp / "notes.txt" / "eval"), "--device", "cpu"]


def _sweep_into_a_file(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "notes.txt").write_text("mine")
    (tmp / "sweep.yaml").write_text(f"name: s\ndefaults: {{dataset: folder, data_dir: {data}, model: resnet20, max_iters: 2}}\n"
                                    "runs:\n  - {name: a}\n")
    return ["sweep", str(tmp / "sweep.yaml"), "--out", str(tmp / "notes.txt")]


def _export_folder_into_the_run(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["export", str(run), "--format", "folder", "--out", str(run), "--overwrite"]


def _export_folder_over_the_users_folder(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("mine")
    return ["export", str(run), "--format", "folder", "--out", str(tmp / "mine"), "--overwrite"]


def _export_folder_onto_a_file(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "notes.txt").write_text("mine")
    return ["export", str(run), "--format", "folder", "--out", str(tmp / "notes.txt")]


def _predict_with_a_damaged_model_folder(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "model").mkdir()
    (tmp / "model" / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    return ["predict", str(tmp / "model"), str(next((data / "test").rglob("*.png")))]


def _predict_explaining_an_unknown_class(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["predict", str(run), str(next((data / "test").rglob("*.png"))), "--explain", str(tmp / "why.png"), "--explain-class", "oak"]


def _predict_explained_over_its_photo(tmp: Path, data: Path, run: Path) -> list[str]:
    shutil.copy(next((data / "test").rglob("*.png")), tmp / "keep.png")
    return ["predict", str(run), str(tmp / "keep.png"), "--explain", str(tmp / "keep.png"), "--overwrite"]


def _serve_a_folder_with_no_model(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "empty").mkdir()
    return ["serve", str(tmp / "empty"), "--port", "0"]


def _log_planted_as_a_link(tmp: Path, data: Path, run: Path) -> list[str]:
    """A link planted as train.log would have the resume append its lines to whatever it points at."""
    (tmp / "victim.txt").write_text("someone else's file\n")
    (run / "train.log").unlink()
    (run / "train.log").symlink_to(tmp / "victim.txt")
    return ["train", "--resume", str(run), "--max-iters", "4"]


def _lock_planted_as_a_link(tmp: Path, data: Path, run: Path) -> list[str]:
    """A link planted as run.lock would have the lock's pid and host written over what it points at."""
    (tmp / "victim.txt").write_text("someone else's file\n")
    (run / "run.lock").symlink_to(tmp / "victim.txt")
    return ["train", "--resume", str(run), "--max-iters", "4"]


def _report_over_the_users_site(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "mysite").mkdir()
    (tmp / "mysite" / "index.html").write_text("<p>my own page</p>\n")
    (tmp / "mysite" / "results.md").write_text("my own results\n")
    return ["report", str(run), "--no-checkpoints", "--out", str(tmp / "mysite")]


def _overwrite_a_hand_written_config(tmp: Path, data: Path, run: Path) -> list[str]:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "config.yaml").write_text("lr: 0.5  # my own notes\n")
    return ["train", *TRAIN, "--data-dir", str(data), "--out", str(tmp / "mine"), "--overwrite"]


def _out_inside_the_data_folder(tmp: Path, data: Path, run: Path) -> list[str]:
    copy = shutil.copytree(data, tmp / "s5")
    return ["train", *TRAIN, "--data-dir", str(copy), "--out", str(copy / "train" / "myrun")]


def _resume_under_a_spent_budget(tmp: Path, data: Path, run: Path) -> list[str]:
    return ["train", "--resume", str(run), "--max-iters", "1"]  # it stopped at iteration 2


def _export_onto_a_full_disk(tmp: Path, data: Path, run: Path, format: str) -> list[str]:
    _faults.append(("os.fsync", OSError(errno.ENOSPC, "No space left on device")))
    return ["export", str(run), "--format", format, "--out", str(tmp / ("model.pt2" if format == "exported-program" else "model.pt"))]


def _eval_on_changed_data(tmp: Path, data: Path, run: Path) -> list[str]:
    """data.json says train/dark held 7 images when the run started; the folder holds 8."""
    import json

    record = json.loads((run / "data.json").read_text())
    record["fingerprint"]["train/dark"]["images"] = 7
    (run / "data.json").write_text(json.dumps(record))
    return ["eval", str(run), "--device", "cpu"]


def _predict_weights_of_an_older_run(tmp: Path, data: Path, run: Path) -> list[str]:
    (run / "preprocess.json").unlink()  # runs written before preprocess.json existed
    return ["predict", "--model", "resnet20", "--weights", str(run / "weights.pth"), "--classes", str(run / "class_indices.json"),
            str(next((data / "test").rglob("*.png")))]


def _class_folder_linked_to_another(tmp: Path, data: Path, run: Path) -> list[str]:
    copy = shutil.copytree(data, tmp / "linked")
    shutil.rmtree(copy / "test" / "dark")
    (copy / "test" / "dark").symlink_to(copy / "train" / "dark")
    return ["data", "info", "--dataset", "folder", "--data-dir", str(copy)]


CASES: dict[str, tuple[Case, str]] = {
    "train into an existing run": (_existing_run, "already holds a run: continue it with .resnetlab train --resume .* or pass --overwrite"),
    "--overwrite with a wrong --data-dir": (_overwrite_with_a_wrong_data_dir, "typo"),
    "--overwrite with a wrong model option": (_overwrite_with_a_wrong_model, "shortcut"),
    "finetune into its own run": (_finetune_into_its_own_run_without_overwrite, "already holds a run"),
    "folder of the user's own files": (_folder_of_the_users_files,
                                      "is not a run folder \\(no config.yaml\\) and holds other files \\(class_indices.json\\)"),
    "folder of the user's own checkpoints": (
        _folder_of_the_users_checkpoints, "is not a run folder \\(no config.yaml\\) and holds other files \\(checkpoints, weights.pth\\)"),
    "--image-size below the model's smallest": (_image_size_below_the_models_smallest,
                                                "--image-size 1 is below the smallest image resnet20 takes, 4 pixels"),
    "--image-size whose activations do not fit": (_image_size_whose_activations_do_not_fit,
                                                  "a training batch of --image-size 4000 .*needs [\\d.]+ GiB"),
    "--out is a file": (_out_is_a_file, "cannot write .*notes.txt: it is a file"),
    "--out under a file": (_out_under_a_file, "cannot write .*notes.txt/run: "),
    "--out under /proc": (_out_under_proc, "cannot write /proc/resnetlab-run: "),
    "--out a folder that refuses writes": (_out_in_a_folder_that_refuses_writes, "cannot write /sys/kernel/run.lock: "),
    "run locked by another process": (_run_locked_by_another_process, "is in use by process \\d+ on "),
    "disk full while saving": (_disk_full_while_saving, "cannot write .*last.pt: No space left on device"),
    "disk full as torch.save reports it": (_disk_full_as_torch_reports_it, "cannot write .*last.pt: No space left on device$"),
    "torch's writer fails": (_torch_writer_fails, "cannot write .*last.pt: "),
    "learning rate that overflows": (_learning_rate_that_overflows, "became (nan|inf).*lower --lr"),
    "absurd --image-size": (_absurd_image_size, "--image-size 100000 .* needs [\\d.]+ GiB of memory, more than"),
    "export over the run's checkpoint": (_export_over_the_runs_checkpoint, "belongs to the run"),
    "export over the run's config.yaml": (_export_over_the_runs_config, "belongs to the run"),
    "export over an existing file": (_export_over_an_existing_file, "already exists: pass --overwrite"),
    "export over its own checkpoint": (_export_over_its_own_checkpoint, "--out .*model.pt is the checkpoint being exported"),
    "export over its checkpoint through a link": (_export_over_its_checkpoint_through_a_link,
                                                  "--out .*link.pt is the checkpoint being exported"),
    "export to a folder": (_export_to_a_folder, "cannot write .*: it is a folder"),
    "export under a file": (_export_under_a_file, "cannot write .*notes.txt/model.pt: "),
    "export of a huge input size": (_export_of_a_huge_input, "needs [\\d.]+ GiB of memory"),
    "predict with a huge input size": (_predict_with_a_huge_input, "needs [\\d.]+ GiB of memory"),
    "summary of a huge input size": (_summary_of_a_huge_input, "needs [\\d.]+ GiB of memory"),
    "predict from weights at a huge --image-size": (_predict_from_weights_at_a_huge_size, "--image-size 100000 .* needs [\\d.]+ GiB"),
    "predict --show over its photo": (_predict_shown_over_its_photo, "keep.png is one of the images being shown"),
    "predict --show as a .pth": (_predict_shown_as_a_weights_file, "matplotlib writes no .pth files; end the name with .png"),
    "predict from weights at --image-size 1": (_predict_from_weights_at_size_1,
                                                "--image-size 1 is below the smallest image resnet20 takes, 4 pixels"),
    "responses of weights without --model": (_responses_of_weights_without_a_model,
                                             "weights.pth is a plain weights file: pass --model NAME .* and --dataset NAME"),
    "responses with an unknown --model": (_responses_with_an_unknown_model, "resnet21"),
    "responses of another architecture's weights": (_responses_of_another_architectures_weights,
                                                    "do not fit the backbone of resnet20: .*they look like resnet32 weights"),
    "responses without the data": (_responses_without_the_data, "typo"),
    "responses into a file": (_responses_into_a_file, "cannot write .*notes.txt"),
    "responses on changed data": (_responses_on_changed_data, "cannot measure the responses of .*changed since the run started "
                                                              "\\(train/dark has 8 images, it had 7\\).*--accept-changed-data"),
    "data info at a huge --image-size": (_data_info_at_a_huge_size, "--image-size 100000 .* needs [\\d.]+ GiB"),
    "class file of numbers": (_class_file_of_numbers, "class indices file .*classes.json: the class of index 0 is 1, not a class name"),
    "class file with names as keys": (_class_file_with_names_as_keys, "classes.json: 'dark' maps to \"bright\", not an index"),
    "unsplit folder without --val-split": (_unsplit_folder_without_val_split,
                                           "holds class folders \\(bright, dark\\) but no train/ .*pass --val-split FRACTION"),
    "report into a file": (_report_into_a_file, "cannot write .*notes.txt"),
    "eval into a file": (_eval_into_a_file, "cannot write .*notes.txt/eval"),
    "export a model folder into the run": (_export_folder_into_the_run, "is \\(inside\\) a run folder"),
    "export a model folder over the user's folder": (_export_folder_over_the_users_folder, "holds other files, never replaced"),
    "export a model folder onto a file": (_export_folder_onto_a_file, "cannot write .*notes.txt: it is a file"),
    "predict with a damaged model folder": (_predict_with_a_damaged_model_folder, "not a readable safetensors file"),
    "predict --explain-class of no class": (_predict_explaining_an_unknown_class, "--explain-class oak names no class of this model"),
    "predict --explain over its photo": (_predict_explained_over_its_photo, "keep.png is one of the images being shown"),
    "serve a folder with no model": (_serve_a_folder_with_no_model, "no checkpoints/last.pt .*and no model.safetensors"),
    "sweep into a file": (_sweep_into_a_file, "cannot write .*notes.txt"),
    "train.log planted as a link": (_log_planted_as_a_link, "train.log is a link to .*victim.txt.* delete the link"),
    "run.lock planted as a link": (_lock_planted_as_a_link, "run.lock is a link to .*victim.txt.* delete the link"),
    "report over the user's own site": (_report_over_the_users_site,
                                        "mysite holds files that resnetlab report did not write \\(index.html, results.md\\).*--overwrite"),
    "--overwrite of a hand-written config.yaml": (_overwrite_a_hand_written_config,
                                                  "is not a run folder \\(its config.yaml is no run's"),
    "--out inside the data folder": (_out_inside_the_data_folder, "--out .*s5/train/myrun is inside the data folder"),
    "resume under a spent budget": (_resume_under_a_spent_budget,
                                    "it has trained 2 iterations, more than the budget now given \\(max_iters 1\\): "
                                    "give at least --max-iters 2"),
    "export torchscript onto a full disk": (lambda t, d, r: _export_onto_a_full_disk(t, d, r, "torchscript"),
                                            "cannot write .*model.pt: No space left on device$"),
    "export exported-program onto a full disk": (lambda t, d, r: _export_onto_a_full_disk(t, d, r, "exported-program"),
                                                 "cannot write .*model.pt2: No space left on device$"),
    "eval on changed data": (_eval_on_changed_data, "changed since the run started \\(train/dark has 8 images, it had 7\\).*"
                                                    "--accept-changed-data"),
    "predict --weights of a run without preprocess.json": (_predict_weights_of_an_older_run,
                                                           "has no preprocess.json .*resnetlab predict .*run IMAGE.*--mean and --std"),
    "class folder linked to another": (_class_folder_linked_to_another, "class folder .*test/dark is a link to .*train/dark"),
}

_held_locks: list[RunLock] = []
_faults: list[tuple[str, BaseException]] = []


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case: str, tmp_path: Path, finished_run: tuple[Path, Path],
                                                          capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    build, message = CASES[case]
    data, source = finished_run
    run = tmp_path / "run"
    shutil.copytree(source, run)
    argv = build(tmp_path, data, run)
    for target, error in _faults:
        def fail(*args, error=error, **kwargs):
            raise error
        monkeypatch.setattr(target, fail)
    before = snapshot(tmp_path)
    try:
        code = main(argv)
        after = snapshot(tmp_path)
    finally:
        _faults.clear()
        while _held_locks:
            _held_locks.pop().release()
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("resnetlab: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert re.search(message, err), err
    assert {k: after.get(k) for k in before} == before, "a file that was there changed or disappeared"
    assert not [k for k in after.keys() - before.keys() if k.endswith(".pt") or ".tmp" in k], after.keys() - before.keys()
    if case == "--out inside the data folder":  # refused before anything is created, even an empty folder
        assert not (tmp_path / "s5" / "train" / "myrun").exists()
