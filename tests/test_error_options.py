"""Errors name the option as the caller spells it: a keyword from Python, a flag on the command line."""

from __future__ import annotations

import pytest

import resnetlab
from resnetlab.cli import main
from resnetlab.errors import ResnetlabError, option
from tests.builders import make_image_folder

pytestmark = pytest.mark.usefixtures("data_cache")


@pytest.mark.parametrize("name, value, keyword, flag", [
    ("overwrite", True, "overwrite=True", "--overwrite"),
    ("cuda_graphs", False, "cuda_graphs=False", "--no-cuda-graphs"),
    ("image_size", 32, "image_size=32", "--image-size 32"),
    ("device", "cpu", "device='cpu'", "--device cpu"),
    ("config_file", "a.yaml", "config_file='a.yaml'", "--config a.yaml"),
])
def test_an_option_reads_as_a_keyword_or_a_flag(name, value, keyword, flag) -> None:
    error = ResnetlabError(f"pass {option(name, value)} now")
    assert (str(error), error.for_command_line()) == (f"pass {keyword} now", f"pass {flag} now")
    assert str(ResnetlabError(f"lower {option('batch_size')}")) == "lower batch_size"


def test_a_run_already_there_is_refused_naming_the_keyword_or_the_flag(tmp_path, capsys) -> None:
    data = make_image_folder(tmp_path / "data", per_class=8)
    keywords = dict(dataset="folder", data_dir=str(data), epochs=1, batch_size=8, device="cpu", quiet=True, out=str(tmp_path / "run"))
    resnetlab.train(**keywords)
    with pytest.raises(ResnetlabError, match=r"or pass overwrite=True to replace it$"):
        resnetlab.train(**keywords)
    assert main(["train", "--dataset", "folder", "--data-dir", str(data), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.rstrip().endswith("or pass --overwrite to replace it")
