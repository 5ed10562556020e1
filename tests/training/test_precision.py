"""Precision: what auto picks on each machine, what a run records, and that only the arithmetic
of the forward pass changes (weights, optimizer state, BatchNorm statistics, checkpoints: fp32).
Evaluating in the run's precision: tests/reports/test_run_precision.py."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from resnetlab import precision as precision_module
from resnetlab.checkpoint import load_checkpoint, save_checkpoint
from resnetlab.errors import ResnetlabError
from resnetlab.precision import cpu_flags, evaluation_precision, native_bf16, resolve_precision
from resnetlab.training import resolve_config, train
from resnetlab.training.config import config_from_dict
from tests.builders import tiny_config

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


@pytest.fixture
def native_bf16_cpu(monkeypatch):
    """This process on a CPU with AVX512-BF16 or AMX (the suite's default is a CPU without)."""
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)


@pytest.mark.parametrize(("capability", "flags", "native"), [
    ("AVX512", {"avx512f", "avx512_bf16"}, True),
    ("AVX512", {"avx512f", "amx_bf16", "amx_tile"}, True),
    ("AVX512", {"avx512f", "avx512bw"}, False),  # AVX-512 without bf16 units (Skylake-X)
    ("AVX2", {"avx2", "avx512_bf16"}, False),  # kernels limited to AVX2 (ATEN_CPU_CAPABILITY=avx2)
    ("DEFAULT", set(), False),
])
def test_native_bf16_needs_the_instructions_and_kernels_that_use_them(capability, flags, native):
    assert native_bf16(capability, flags) is native


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512_bf16 amx_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()  # not Linux: auto stays fp32


def test_auto_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch):
    assert resolve_precision("auto", CPU) == "fp32"  # the suite's machine: no native bf16
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", CPU) == "bf16"
    assert resolve_precision("auto", CPU, cpu_bf16=False) == "fp32"  # a run resumed from before the option
    assert resolve_precision("auto", MPS) == "fp32"
    for explicit in ("fp32", "bf16", "fp16"):
        assert resolve_precision(explicit, CPU) == explicit


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp16")])
def test_auto_on_a_gpu_is_bf16_where_native_else_fp16(monkeypatch, native, expected):
    monkeypatch.setattr(precision_module, "gpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", CUDA) == expected


def test_evaluation_uses_the_runs_precision_unless_asked():
    assert evaluation_precision({"precision": "bf16"}, None, CPU) == "bf16"
    assert evaluation_precision({"precision": "bf16"}, "fp32", CPU) == "fp32"
    assert evaluation_precision({"amp": True}, None, CPU) == "fp32"  # runs from before the option evaluated in fp32
    assert evaluation_precision({}, "auto", CPU) == "fp32"


def test_precision_is_checked_and_old_amp_configs_still_load(tmp_path):
    with pytest.raises(ResnetlabError, match="precision must be one of auto, fp32, bf16, fp16, got 'bf32'"):
        resolve_config(overrides={"precision": "bf32"})
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump({"amp": False, "epochs": 2}))
    assert resolve_config(config_file=old).precision == "fp32"
    old.write_text(yaml.safe_dump({"amp": True, "epochs": 2}))
    assert resolve_config(config_file=old).precision == "auto"
    assert config_from_dict({"amp": False}, "a checkpoint").precision == "fp32"
    assert resolve_config().precision == "auto"


def test_auto_on_a_cpu_without_native_bf16_trains_exactly_as_fp32(tmp_path, bundle):
    auto = train(tiny_config(tmp_path / "auto", epochs=1), bundle=bundle)
    fp32 = train(tiny_config(tmp_path / "fp32", epochs=1, precision="fp32"), bundle=bundle)
    assert auto["precision"] == "fp32" and auto["final"] == fp32["final"]
    first_line = (tmp_path / "auto" / "train.log").read_text().splitlines()[1]
    assert first_line.endswith("precision fp32 (auto on cpu)")


def test_bf16_trains_in_autocast_with_fp32_state_and_records_it(tmp_path, bundle):
    """Explicit bf16 runs on any CPU (emulated where not native); only the forward pass is bf16."""
    out = tmp_path / "bf16"
    summary = train(tiny_config(out, precision="bf16"), bundle=bundle)
    assert summary["precision"] == "bf16"
    assert yaml.safe_load((out / "config.yaml").read_text())["precision"] == "bf16"
    assert json.loads((out / "summary.json").read_text())["precision"] == "bf16"
    assert (out / "train.log").read_text().splitlines()[1].endswith("precision bf16")
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert {v.dtype for v in ckpt["state_dict"].values() if v.is_floating_point()} == {torch.float32}  # incl. BN stats
    optimizer_state = [t for s in ckpt["optimizer"]["state"].values() for t in s.values() if torch.is_tensor(t)]
    assert optimizer_state and {t.dtype for t in optimizer_state} == {torch.float32}
    assert summary["final"]["train_loss"] < 1.0 and summary["final"]["test_acc"] >= 0.9  # it learns (3 classes)
    fp32 = train(tiny_config(tmp_path / "fp32", precision="fp32"), bundle=bundle)
    assert summary["final"]["train_loss"] != fp32["final"]["train_loss"]  # the arithmetic did change


def test_auto_on_a_cpu_with_native_bf16_records_bf16(tmp_path, bundle, native_bf16_cpu):
    summary = train(tiny_config(tmp_path / "run", epochs=1), bundle=bundle)
    assert summary["precision"] == "bf16"
    assert (tmp_path / "run" / "train.log").read_text().splitlines()[1].endswith("precision bf16 (auto on cpu)")


def test_a_resumed_run_keeps_its_precision_and_refuses_another(tmp_path, bundle, native_bf16_cpu):
    out = tmp_path / "run"
    train(tiny_config(out, epochs=1), bundle=bundle)  # auto -> bf16 on this (mocked) CPU
    with pytest.raises(ResnetlabError, match=r"cannot change precision \('bf16' -> 'fp32'\) when resuming"):
        train(tiny_config(out, epochs=2, precision="fp32"), bundle=bundle, resume=True)
    resumed = train(tiny_config(out, epochs=2), bundle=bundle, resume=True)  # auto: the run's own
    assert resumed["precision"] == "bf16" and resumed["epochs"] == 2


def test_a_run_from_before_the_option_resumes_in_fp32(tmp_path, bundle, native_bf16_cpu):
    """Its ``amp: true`` meant fp32 on a CPU; a native-bf16 CPU must not switch it to bf16 mid-run."""
    out = tmp_path / "old"
    train(tiny_config(out, epochs=1, precision="fp32"), bundle=bundle)
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    legacy = {k: v for k, v in ckpt["config"].items() if k != "precision"} | {"amp": True}
    save_checkpoint({**ckpt, "config": legacy}, out / "checkpoints" / "last.pt")
    (out / "config.yaml").write_text(yaml.safe_dump(legacy, sort_keys=False))
    overrides = {"epochs": 2, "quiet": True}
    for epochs in (2, 3):  # twice: the second resume reads the fp32 the first one recorded
        resumed = train(resolve_config(config_file=out / "config.yaml", overrides={**overrides, "epochs": epochs}),
                        bundle=bundle, resume=True)
        assert resumed["precision"] == "fp32" and resumed["epochs"] == epochs
