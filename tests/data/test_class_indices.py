"""class_indices.json: both forms read, anything else one message naming the file and the problem."""

from __future__ import annotations

import os

import pytest

from resnetlab.data import read_class_indices
from resnetlab.errors import ResnetlabError
from resnetlab.runs import RunFolder


def test_both_forms_and_the_round_trip(tmp_path) -> None:
    run = RunFolder(tmp_path)
    run.write_start({}, ["daisy", "rose"])  # a run's class file
    path = run.class_indices
    assert path.read_text() == '{\n  "0": "daisy",\n  "1": "rose"\n}\n'
    assert read_class_indices(path) == ["daisy", "rose"]
    (tmp_path / "old.json").write_text('{"rose": 1, "daisy": 0}')
    assert read_class_indices(tmp_path / "old.json") == ["daisy", "rose"]


@pytest.mark.parametrize("text, problem", [
    ('{"0": 1, "1": null}', "the class of index 0 is 1, not a class name"),
    ('{"0": "daisy", "1": null}', "the class of index 1 is null, not a class name"),
    ('{"0": "daisy", "1": "  "}', 'the class of index 1 is "  ", not a class name'),
    ('{"daisy": "rose"}', "'daisy' maps to \"rose\", not an index"),
    ('{"daisy": true}', "'daisy' maps to true, not an index"),
    ('{"0": "daisy", "rose": 1}', "its keys mix indices and class names"),
    ('{"0": "daisy", "2": "rose"}', "the indices are 0, 2, not 0..1"),
    ('{"1": "daisy"}', "the indices are 1, not 0..0"),
    ('{"00": "daisy"}', "the indices are 00, not 0..0"),
    ('{"0": "daisy", "1": "daisy"}', "the class name 'daisy' is given to more than one index"),
    ('{"0": "daisy", "0": "rose"}', "the key '0' is given twice"),
    ('["daisy", "rose"]', "it holds list, not a JSON object of classes"),
    ("{}", "it holds nothing, not a JSON object of classes"),
])
def test_a_bad_mapping_is_named_with_its_problem(tmp_path, text, problem) -> None:
    path = tmp_path / "class_indices.json"
    path.write_text(text)
    with pytest.raises(ResnetlabError) as caught:
        read_class_indices(path)
    assert str(caught.value) == (f"class indices file {path}: {problem}: expected {{\"0\": \"class name\", \"1\": ...}}: "
                                 "indices 0..n-1 as strings, each a different non-empty name")


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("{'0': 'daisy'}"), "is not JSON (Expecting property name enclosed in double quotes, line 1)"),
    (lambda p: p.write_bytes(b'{"0": "\xff"}'), "is not UTF-8 text (byte 7)"),
    (lambda p: None, "does not exist: pass a class_indices.json file"),
    (lambda p: p.mkdir(), "is a folder: pass a class_indices.json file"),
    (lambda p: os.mkfifo(p), "is a FIFO, not a regular file: pass a class_indices.json file"),  # reading it would block
])
def test_a_file_that_is_no_class_file_is_named(tmp_path, make, message) -> None:
    path = tmp_path / "class_indices.json"
    make(path)
    with pytest.raises(ResnetlabError) as caught:
        read_class_indices(path)
    assert str(caught.value).startswith(f"class indices file {path} {message}")


def test_a_class_file_of_200000_classes_is_read_and_a_repeat_found_in_linear_time(tmp_path) -> None:
    """names.count(n) per name made 200,000 classes take longer than anyone waits."""
    import json

    names = {str(i): f"class {i}" for i in range(200_000)}
    (tmp_path / "many.json").write_text(json.dumps(names))
    assert read_class_indices(tmp_path / "many.json")[-1] == "class 199999"
    names["199999"] = "class 7"
    (tmp_path / "many.json").write_text(json.dumps(names))
    with pytest.raises(ResnetlabError, match="the class name 'class 7' is given to more than one index"):
        read_class_indices(tmp_path / "many.json")
