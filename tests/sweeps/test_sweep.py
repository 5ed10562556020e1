"""``sweep``: shipped sweeps resolve, bad sweeps fail before training, interrupted sweeps resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import resnetlab
from resnetlab import training
from resnetlab.cli import main
from resnetlab.errors import ResnetlabError
from resnetlab.sweeps import list_sweeps, load_sweep, sweep
from resnetlab.training.config import resolve_config
from resnetlab.training.interrupt import TrainingInterrupted
from tests.builders import fake_run, tiny_train_overrides


def write_sweep(path: Path, runs: list[dict[str, Any]], defaults: dict[str, Any] | None = None) -> Path:
    path.write_text(yaml.safe_dump({"name": "tiny", "defaults": defaults or {"recipe": "paper", "epochs": 2}, "runs": runs}))
    return path


class FakeTrain:
    """Stands in for ``training.train``: records calls, writes a run folder, can be told to fail."""

    def __init__(self, interrupt: str | None = None) -> None:
        self.calls: list[tuple[str, bool, bool]] = []
        self.interrupt = interrupt

    def __call__(self, config: Any, *, resume: bool = False, overwrite: bool = False) -> dict:
        folder = Path(config.out)
        self.calls.append((folder.name, resume, overwrite))
        if folder.name == self.interrupt:  # Ctrl-C mid-run: a checkpoint, metrics, no summary
            fake_run(folder, config.model, finished=False)
            (folder / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))  # the settings it started with
            (folder / "checkpoints").mkdir(exist_ok=True)
            (folder / "checkpoints" / "last.pt").write_bytes(b"checkpoint")
            raise TrainingInterrupted(str(folder / "checkpoints" / "last.pt"), 1, 3, 103)
        fake_run(folder, config.model, epochs=config.epochs)
        (folder / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))  # the settings it was trained with
        return {}


def test_shipped_sweeps_resolve_to_valid_configs() -> None:
    assert {"cifar10-depth", "degradation", "degradation-cpu"} <= set(list_sweeps())
    depth = load_sweep("cifar10-depth")
    assert [r.name for r in depth.runs] == ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202"]
    for name in set(list_sweeps()) - {"seed004"}:  # the paper's sweeps (seed004's d2l runs: test_sweep_seed004.py)
        for run in load_sweep(name).runs:
            config = resolve_config(run.recipe, overrides={**run.overrides, "out": "x"})
            assert config.model == run.name and config.recipe == "paper"
            if name != "degradation-cpu":  # the paper's budget, untouched
                assert config.max_iters == 64_000 and config.epochs is None and config.subset is None
    assert resolve_config("paper", overrides=load_sweep("cifar10-depth").runs[4].overrides).error_warmup_lr == 0.01
    cpu = load_sweep("degradation-cpu")
    assert [r.name for r in cpu.runs] == ["plain20", "plain56", "resnet20", "resnet56"]
    config = resolve_config("paper", overrides={**cpu.runs[0].overrides, "out": "x"})
    assert (config.subset, config.epochs, config.dataset, config.device) == (12500, 10, "folder", "cpu")
    # Table 6 on the CIFAR-10 JPEG copy (docs/gpu.md): the folder reaches every run; budget and warm-up stay the paper's
    jpeg = [resolve_config(r.recipe, overrides={**r.overrides, "out": "x"})
            for r in load_sweep("cifar10-depth", {"dataset": "folder", "data_dir": "/data/cifar10-jpeg"}).runs]
    assert {(c.dataset, c.data_dir, c.max_iters, c.batch_size) for c in jpeg} == {("folder", "/data/cifar10-jpeg", 64_000, 128)}
    assert [c.error_warmup_lr for c in jpeg] == [None] * 4 + [0.01, 0.01]
    # --set wins over the sweep file, for every run
    assert all(r.overrides["data_dir"] == "/elsewhere" for r in load_sweep("degradation-cpu", {"data_dir": "/elsewhere"}).runs)


def test_a_bad_sweep_fails_before_anything_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTrain()
    monkeypatch.setattr(training, "train", fake, raising=False)
    bad_key = write_sweep(tmp_path / "bad.yaml", [{"name": "a", "model": "resnet20"}, {"name": "b", "modle": "resnet20"}])
    with pytest.raises(ResnetlabError, match="modle"):
        sweep(bad_key, tmp_path / "out")
    twice = write_sweep(tmp_path / "twice.yaml", [{"name": "a", "model": "resnet20"}, {"name": "a", "model": "plain20"}])
    with pytest.raises(ResnetlabError, match="appear twice"):
        sweep(twice, tmp_path / "out")
    logs = write_sweep(tmp_path / "logs.yaml", [{"name": "logs", "model": "resnet20"}])
    with pytest.raises(ResnetlabError, match="run name 'logs' is taken by the sweep's own <out>/logs folder"):
        sweep(logs, tmp_path / "out")
    with pytest.raises(ResnetlabError, match="degradation-cpu"):  # lists the shipped sweeps
        sweep("no-such-sweep", tmp_path / "out")
    assert fake.calls == []


def test_interrupted_sweep_resumes_the_unfinished_run_and_skips_finished_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = write_sweep(tmp_path / "s.yaml", [{"name": n, "model": m} for n, m in
                                             [("a", "resnet20"), ("b", "plain20"), ("c", "resnet32")]])
    out = tmp_path / "out"
    first = FakeTrain(interrupt="b")
    monkeypatch.setattr(training, "train", first, raising=False)
    with pytest.raises(TrainingInterrupted):
        sweep(spec, out)
    assert first.calls == [("a", False, False), ("b", False, False)]
    finished = {p: p.stat().st_mtime_ns for p in (out / "a").iterdir()}

    second = FakeTrain()
    monkeypatch.setattr(training, "train", second, raising=False)
    index = sweep(spec, out)
    assert second.calls == [("b", True, False), ("c", False, False)]  # a skipped, b resumed, c started
    assert {p: p.stat().st_mtime_ns for p in (out / "a").iterdir()} == finished
    assert index == out / "report" / "index.html" and index.is_file()
    page = index.read_text()
    assert "resnetlab sweep" in page and all(f">{n}</a>" in page for n in "abc")

    third = FakeTrain()
    monkeypatch.setattr(training, "train", third, raising=False)
    sweep(spec, out, write_report=False)
    assert third.calls == []  # everything finished: nothing retrained


def test_a_run_folder_without_checkpoint_or_summary_starts_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = write_sweep(tmp_path / "s.yaml", [{"name": "a", "model": "resnet20"}])
    fake_run(tmp_path / "out" / "a", "resnet20", finished=False)  # crashed before its first checkpoint
    fake = FakeTrain()
    monkeypatch.setattr(training, "train", fake, raising=False)
    sweep(spec, tmp_path / "out", write_report=False)
    assert fake.calls == [("a", False, True)]


def test_sweep_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_sweep(tmp_path / "s.yaml", [{"name": "a", "model": "resnet20"}, {"name": "b", "model": "plain20"}])
    fake = FakeTrain(interrupt="b")
    monkeypatch.setattr(training, "train", fake, raising=False)
    args = ["sweep", str(spec), "--out", str(tmp_path / "out"), "--set", "epochs=3", "--no-checkpoints"]
    assert main(args) == 130
    assert "again to continue" in capsys.readouterr().err
    fake.interrupt = None
    assert main(args) == 0
    assert fake.calls == [("a", False, False), ("b", False, False), ("b", True, False)]
    assert "3" == str(yaml.safe_load((tmp_path / "out" / "a" / "config.yaml").read_text())["epochs"])
    assert "--set epochs=3" in (tmp_path / "out" / "report" / "index.html").read_text()
    assert main(["sweep", "--list"]) == 0
    assert "degradation-cpu" in capsys.readouterr().out


@pytest.mark.slow  # real processes or real data: the whole suite runs it, the quick tier does not
def test_real_sweep_interrupted_and_run_again_does_not_retrain_finished_runs(
        tiny_image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(training, "train"):
        pytest.skip("resnetlab.training.train is not available yet")
    real_train = training.train
    calls: list[tuple[str, bool]] = []

    def counting_train(config: Any, *, resume: bool = False, overwrite: bool = False) -> dict:
        calls.append((Path(config.out).name, resume))
        if Path(config.out).name == "b" and power_cut:
            raise RuntimeError("power cut")
        return real_train(config, resume=resume, overwrite=overwrite)

    monkeypatch.setattr(training, "train", counting_train, raising=False)
    defaults = {"recipe": "paper", **tiny_train_overrides(tiny_image_folder)}
    spec = write_sweep(tmp_path / "s.yaml", [{"name": "a", "model": "resnet20"}, {"name": "b", "model": "plain20"}], defaults)
    out = tmp_path / "out"
    power_cut = True
    with pytest.raises(RuntimeError, match="power cut"):
        sweep(spec, out)
    files_of_a = {p: p.stat().st_mtime_ns for p in (out / "a").rglob("*") if p.is_file()}
    assert (out / "a" / "summary.json").is_file() and not (out / "b" / "summary.json").exists()

    power_cut = False
    sweep(spec, out, checkpoints=False)
    assert (out / "b" / "summary.json").is_file()
    # b interrupted after its last checkpoint, before its summary: resumed, not retrained
    (out / "b" / "summary.json").unlink()
    index = sweep(spec, out)
    assert calls == [("a", False), ("b", False), ("b", False), ("b", True)]
    assert {p: p.stat().st_mtime_ns for p in (out / "a").rglob("*") if p.is_file()} == files_of_a
    assert (out / "b" / "summary.json").is_file() and index.is_file()


def test_a_finished_run_with_other_settings_is_refused_before_any_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTrain()
    monkeypatch.setattr(training, "train", fake, raising=False)
    runs = [{"name": "a", "model": "resnet20"}, {"name": "b", "model": "resnet56"}]
    out = tmp_path / "out"
    sweep(write_sweep(tmp_path / "s.yaml", runs), out, write_report=False)
    # the same file again: both kept; b's options changed: refused, naming the folder and the setting
    sweep(write_sweep(tmp_path / "s.yaml", runs), out, write_report=False)
    runs[1]["model_options"] = {"zero_init_residual": True}
    (out / "a" / "summary.json").unlink()  # a is unfinished now: still nothing may train before the refusal
    with pytest.raises(ResnetlabError, match=r"out/b finished with other settings.*model_options \{\} -> \{'zero_init_residual': True\}"):
        sweep(write_sweep(tmp_path / "s.yaml", runs), out, write_report=False)
    assert fake.calls == [("a", False, False), ("b", False, False)]


def test_a_finished_run_keeps_the_precision_auto_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run records what auto resolved to (bf16 on a CPU with native bf16): running the sweep
    again with auto skips it, asking for another precision refuses it."""
    fake = FakeTrain()
    monkeypatch.setattr(training, "train", fake, raising=False)
    out = tmp_path / "out"
    sweep(write_sweep(tmp_path / "s.yaml", [{"name": "a"}]), out, write_report=False)
    recorded = yaml.safe_load((out / "a" / "config.yaml").read_text()) | {"precision": "bf16"}
    (out / "a" / "config.yaml").write_text(yaml.safe_dump(recorded))
    sweep(write_sweep(tmp_path / "s.yaml", [{"name": "a"}]), out, write_report=False)
    assert fake.calls == [("a", False, False)]
    with pytest.raises(ResnetlabError, match=r"out/a finished with other settings.*precision 'bf16' -> 'fp32'"):
        sweep(write_sweep(tmp_path / "s.yaml", [{"name": "a", "precision": "fp32"}]), out, write_report=False)


def test_only_trains_and_reports_the_named_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_sweep(tmp_path / "s.yaml", [{"name": n, "model": "resnet20"} for n in ("a", "b", "c")])
    fake = FakeTrain()
    monkeypatch.setattr(training, "train", fake, raising=False)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--only", "c,a", "--no-checkpoints"]) == 0
    assert fake.calls == [("a", False, False), ("c", False, False)]  # in the sweep's order
    page = (tmp_path / "out" / "report" / "index.html").read_text()
    assert "--only c,a" in page and not (tmp_path / "out" / "b").exists()

    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--only", "a,d"]) == 2
    assert "--only d: sweep tiny has the runs a, b, c" in capsys.readouterr().err
    assert fake.calls == [("a", False, False), ("c", False, False)]


def test_the_old_reports_spelling_names_the_sweeps_package() -> None:
    with pytest.raises(ImportError, match=r"resnetlab.reports.sweep moved to resnetlab.sweeps.sweep"):
        from resnetlab.reports import sweep as _  # noqa: F401
    assert resnetlab.sweep is sweep


def test_an_unfinished_run_with_other_settings_is_not_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep re-run with other settings once said "unfinished, resuming" and resumed the run under them."""
    first = FakeTrain(interrupt="a")
    monkeypatch.setattr(training, "train", first, raising=False)
    out = tmp_path / "out"
    with pytest.raises(TrainingInterrupted):
        sweep(write_sweep(tmp_path / "s.yaml", [{"name": "a", "model": "resnet20"}]), out, write_report=False)
    second = FakeTrain()
    monkeypatch.setattr(training, "train", second, raising=False)
    spec = write_sweep(tmp_path / "s.yaml", [{"name": "a", "model": "resnet20"}], defaults={"recipe": "paper", "epochs": 3})
    with pytest.raises(ResnetlabError, match=r"out/a stopped unfinished \(it would not be resumed\) with other settings .*epochs 2 -> 3"):
        sweep(spec, out, write_report=False)
    assert second.calls == []
    sweep(write_sweep(tmp_path / "s.yaml", [{"name": "a", "model": "resnet20"}]), out, write_report=False)
    assert second.calls == [("a", True, False)]  # the sweep's own settings again: resumed
