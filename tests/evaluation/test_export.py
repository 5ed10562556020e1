"""Exported files reproduce the model, at a batch size other than the one they were traced with."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from resnetlab.checkpoint import load_checkpoint, model_from_checkpoint
from resnetlab.cli import main
from resnetlab.errors import ResnetlabError
from resnetlab.evaluation import export


def _reference(ckpt_path: Path, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    model = model_from_checkpoint(load_checkpoint(ckpt_path)).eval()
    images = torch.randn(batch, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return images, model(images)


def test_torchscript_export_matches_the_model(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "exported" / "model.ts"
    assert main(["export", str(tiny_checkpoint), "--format", "torchscript", "--out", str(out)]) == 0
    assert "checked with torch.jit.load" in capsys.readouterr().out
    images, expected = _reference(tiny_checkpoint, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates TorchScript
        loaded = torch.jit.load(str(out))
    assert torch.allclose(loaded(images), expected, atol=1e-5)
    assert [p.name for p in out.parent.iterdir()] == ["model.ts"]  # no temporary file left behind


def test_onnx_export_matches_the_model_in_onnxruntime(tiny_checkpoint: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    result = export(tiny_checkpoint, tmp_path / "model.onnx", format="onnx")
    assert result["checked_with"] == "onnxruntime" and result["max_abs_diff"] < 1e-4
    images, expected = _reference(tiny_checkpoint, 5)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"images": images.numpy()})
    assert logits.shape == (5, 3) and torch.allclose(torch.from_numpy(logits), expected, atol=1e-4)


def test_onnx_without_the_package_is_a_clear_error(tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    with pytest.raises(ResnetlabError, match=r"pip install 'resnetlab\[onnx\]'"):
        export(tiny_checkpoint, tmp_path / "exported" / "m.onnx")
    assert not list((tmp_path / "exported").iterdir())


def test_exported_program_matches_the_model_at_another_batch_size(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported" / "model.pt2"
    result = export(tiny_checkpoint, out, format="exported-program")
    assert result["checked_with"] == "torch.export.load" and result["max_abs_diff"] < 1e-5
    images, expected = _reference(tiny_checkpoint, 7)
    program = torch.export.load(out)
    with torch.no_grad():
        assert torch.allclose(program.module()(images), expected, atol=1e-5)
    assert [p.name for p in out.parent.iterdir()] == ["model.pt2"]  # no temporary file left behind


def test_exported_program_needs_the_pt2_suffix_torch_reads(tiny_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ResnetlabError, match=r"only from \.pt2 files: use out='.*model\.pt2'"):
        export(tiny_checkpoint, tmp_path / "model.pt", format="exported-program")
