"""Progress in a notebook: a bar inside every epoch, never tqdm's IProgress warning."""

from __future__ import annotations

import io
import sys
import types
import warnings

import pytest

from resnetlab import progress
from resnetlab.training import train
from tests.builders import make_tiny_bundle, tiny_config


class ZMQInteractiveShell:  # the class name IPython's Jupyter kernel shell has
    pass


@pytest.fixture
def notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as a Jupyter kernel without ipywidgets; its output a cell's (no terminal)."""
    shell = ZMQInteractiveShell()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    real_find_spec = progress.importlib.util.find_spec
    monkeypatch.setattr(progress.importlib.util, "find_spec", lambda name, *a: None if name == "ipywidgets" else real_find_spec(name, *a))


def test_outside_a_notebook_a_bar_shows_only_on_a_terminal() -> None:
    assert not progress.in_notebook()
    assert progress.progress_bar(range(3), file=io.StringIO()).disable  # a pipe: no bar


@pytest.mark.usefixtures("notebook")
def test_a_notebook_without_ipywidgets_gets_text_bars_inside_each_epoch(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert progress.in_notebook()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # TqdmWarning: IProgress not found would fail here
        train(tiny_config(tmp_path / "run", epochs=1, quiet=False), bundle=make_tiny_bundle())
    shown = capsys.readouterr().out  # a cell's output is no terminal: tqdm alone would show no bar
    assert "epoch 1/1:   0%|" in shown and "| 0/6 [" in shown  # the bar over the epoch's 6 batches, first drawn
    assert "evaluating (1 view)" in shown
