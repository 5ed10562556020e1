"""``resnetlab.train``: the Python call on a par with ``resnetlab train``.

Every ``TrainConfig`` field is a keyword, as every field is a flag; ``recipe`` and ``config_file``
are ``--recipe`` and ``--config``. The call is recorded in summary.json as typed, so a notebook's
run says how to repeat it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from resnetlab.data import DatasetBundle
from resnetlab.errors import ResnetlabError
from resnetlab.runs import RunFolder
from resnetlab.training.command import python_call
from resnetlab.training.config import TrainConfig, config_from_dict, resolve_config
from resnetlab.training.run import train as train_config


def train(
    config: TrainConfig | None = None,
    *,
    recipe: str | None = None,
    config_file: str | Path | None = None,
    resume: bool | str | Path = False,
    overwrite: bool = False,
    accept_changed_data: bool = False,
    bundle: DatasetBundle | None = None,
    on_iteration: Callable[[int], None] | None = None,
    command: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Train a run and return its summary.json content.

    ``resnetlab.train(model="resnet20", dataset="fashion-mnist", epochs=1, out="runs/r20")``: the
    ``recipe`` (default "paper"), then ``config_file``, then the keywords, exactly as ``resnetlab
    train --recipe ... --config ... --model resnet20 ...`` resolves them. A ``TrainConfig`` is taken
    as it is (keywords then change its fields). ``resume=True`` continues the run in ``out``,
    ``resume=DIR`` the run in DIR with its own config (keywords: what a resume may change, such as
    ``epochs``); ``overwrite=True`` replaces a run already in ``out``. ``bundle`` and
    ``on_iteration``: see ``resnetlab.training.run.train``.
    """
    if config is not None and not isinstance(config, TrainConfig):
        raise ResnetlabError(f"train() takes a TrainConfig or keywords, got {type(config).__name__}: "
                             "pass the fields as keywords, e.g. train(model='resnet20', epochs=1)")
    if config is not None and (recipe is not None or config_file is not None):
        raise ResnetlabError("train() takes a TrainConfig or recipe=/config_file=, not both: pass keywords to change the config")
    if config is None and not (fields or recipe or config_file or resume):
        raise ResnetlabError("train() needs a config: keywords such as train(model='resnet20', dataset='cifar10', "
                             "out='runs/r20'), a TrainConfig, or resume=DIR to continue the run in DIR")
    if config is not None:  # recorded as the call that resolves to it (training.command.config_call)
        config = config_from_dict({**config.to_dict(), **fields}, "train() keywords") if fields else config
    else:
        command = command or python_call(_asked(recipe, config_file, fields, resume, overwrite))
        if resume not in (False, None) and config_file is None:  # the run's own config, then what the keywords change
            folder = Path(resume) if resume is not True else Path(fields.get("out") or "")
            if not str(folder) or str(folder) == ".":
                raise ResnetlabError("train(resume=True) needs out= (the run folder), or resume=DIR")
            saved = RunFolder(folder).config_file
            config_file = saved if saved.is_file() else None
            fields = {**fields, "out": str(folder)}
        config = resolve_config(recipe, config_file, fields)
    return train_config(config, resume=resume or False, overwrite=overwrite, accept_changed_data=accept_changed_data,
                        bundle=bundle, on_iteration=on_iteration, command=command)


def _asked(recipe: str | None, config_file: str | Path | None, fields: dict[str, Any], resume: bool | str | Path,
           overwrite: bool) -> dict[str, Any]:
    """The keywords of the call as given (paths as text), for summary.json's command."""
    asked: dict[str, Any] = {k: v for k, v in (("recipe", recipe), ("config_file", config_file)) if v is not None}
    asked.update(fields)
    if resume:
        asked["resume"] = resume
    if overwrite:
        asked["overwrite"] = True
    return {k: str(v) if isinstance(v, Path) else v for k, v in asked.items()}
