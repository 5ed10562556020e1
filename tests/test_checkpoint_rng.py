"""A checkpoint holds the random state of the process's own GPU, so it resumes where fewer GPUs are visible."""

from __future__ import annotations

import pytest
import torch

from resnetlab.checkpoint import rng_state, set_rng_state
from resnetlab.training import run as run_module
from tests.builders import fake_cuda, make_tiny_bundle, tiny_config

pytestmark = pytest.mark.gpu_emulated


def test_a_run_saved_with_two_gpus_visible_resumes_with_one() -> None:
    with fake_cuda(count=2) as generators:
        saved = rng_state()
        expected = generators[0].get_state()
        assert len(saved["cuda"]) == 1 and torch.equal(saved["cuda"][0], expected)
    with fake_cuda(count=1) as generators:
        set_rng_state(saved)
        assert torch.equal(generators[0].get_state(), expected)


def test_each_process_saves_and_restores_its_own_gpu_only() -> None:
    with fake_cuda(count=4, current=0) as generators:
        generators[2].manual_seed(7)
        saved = rng_state(torch.device("cuda", 2))
        assert len(saved["cuda"]) == 1 and torch.equal(saved["cuda"][0], generators[2].get_state())
        before = [g.get_state() for g in generators]
        generators[2].manual_seed(8)
        set_rng_state(saved, torch.device("cuda", 2))
        assert torch.equal(generators[2].get_state(), before[2])
        assert all(torch.equal(g.get_state(), b) for i, (g, b) in enumerate(zip(generators, before)) if i != 2)


def test_an_older_checkpoint_listing_every_gpu_gives_each_process_its_own_entry() -> None:
    with fake_cuda(count=2) as generators:
        states = [g.get_state() for g in generators]
        older = {"torch": torch.get_rng_state(), "cuda": states}
        generators[1].manual_seed(1)
        set_rng_state(older, torch.device("cuda", 1))
        assert torch.equal(generators[1].get_state(), states[1])


def test_cpu_runs_save_no_gpu_state_even_where_gpus_are_visible(tmp_path) -> None:
    """The training loop passes its device: a CPU run on a GPU machine touches no GPU."""
    config = tiny_config(tmp_path / "run", epochs=None, max_iters=1)
    with fake_cuda(count=2):
        run_module.train(config, bundle=make_tiny_bundle())
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert last["rng"]["cuda"] == []
