"""The docs name only what exists: every module path, dotted name, function and class that
ARCHITECTURE.md, guide.md and gpu.md put in backticks is in the source (the documented-commands
test does the same for commands)."""

from __future__ import annotations

import ast
import importlib
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "resnetlab"
DOCS = [ROOT / "docs" / name for name in ("ARCHITECTURE.md", "guide.md", "gpu.md")]

FILE = re.compile(r"^[\w./-]+\.py$")  # training/run.py, benchmarks/gpu.py
DOTTED = re.compile(r"^(resnetlab|models|data|evaluation|training|reports|cli)(\.\w+)+$")  # resnetlab.training.train, training.run
CALL = re.compile(r"^(?:[\w.]+\.)?(\w+)\(")  # train_step(...), Trainer.fit(), torch.compile(...) (the last name)
CLASS = re.compile(r"^[A-Z][a-z]+(?:[A-Z][a-z0-9]*)+$")  # RunFolder, TrainConfig (CamelCase, two words or more)
FILE_TYPES = {"json", "yaml", "csv", "pt", "pth", "log", "png", "html", "txt", "onnx", "md"}  # data.json is a file
OUTSIDE = re.compile(r"^(torch|torchvision|np|numpy|nn|F|tqdm|yaml|matplotlib|argparse|os|sys|pytest|json|timm|ast|references/)\b")


def backticked(doc: Path) -> list[str]:
    """Inline code spans of ``doc``, fenced blocks left out (they are commands, tested elsewhere)."""
    text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
    return re.findall(r"`([^`\n]+)`", text)


@cache
def defined_names() -> frozenset[str]:
    """Every function, class and module-level name defined in src/resnetlab, benchmarks and experiments."""
    names: set[str] = set()
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "benchmarks").glob("*.py"), *(ROOT / "experiments").glob("*.py")]:
        names.add(path.stem)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return frozenset(names)


def missing(token: str) -> str | None:
    """Why ``token`` names nothing that exists (None: it exists, or is not a name of ours)."""
    if OUTSIDE.match(token) or " " in token.strip():
        return None
    if FILE.match(token):
        candidates = [ROOT / token, PACKAGE / token, PACKAGE.parent / token]
        if "/" not in token:  # a bare file name: anywhere in the project's code
            candidates += [*PACKAGE.rglob(token), *ROOT.glob(f"*/{token}")]
        return None if any(p.is_file() for p in candidates) else f"no file {token}"
    if DOTTED.match(token) and token.rsplit(".", 1)[1] not in FILE_TYPES:
        parts = token.split(".")
        parts = parts if parts[0] == "resnetlab" else ["resnetlab", *parts]
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attribute in parts[cut:]:
                if not hasattr(obj, attribute):
                    return f"{'.'.join(parts[:cut])} has no {attribute}"
                obj = getattr(obj, attribute)
            return None
        return f"no module {token}"
    call = CALL.match(token)
    if call:
        return None if call.group(1) in defined_names() or token.split("(")[0].split(".")[0] in ("resnetlab",) else \
            f"no function or class {call.group(1)}"
    if CLASS.match(token):
        return None if token in defined_names() else f"no class {token}"
    return None


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_module_and_name_the_docs_mention_exists(doc: Path) -> None:
    wrong = sorted({f"`{token}`: {why}" for token in backticked(doc) if (why := missing(token))})
    assert not wrong, f"{doc.name} names what does not exist:\n" + "\n".join(wrong)


def test_the_checker_finds_what_does_not_exist() -> None:
    assert missing("training/trainer.py") is None and missing("training/devices.py") == "no file training/devices.py"
    assert missing("resnetlab.training.train") is None and missing("resnetlab.training.nothing") is not None
    assert missing("train_step(parts, images, labels)") is None and missing("evaluate_all(x)") is not None
    assert missing("RunFolder") is None and missing("RunFolderOwner") == "no class RunFolderOwner"
