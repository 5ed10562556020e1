"""The report page: one self-contained index.html that opens from disk, no server, no scripts.

Every link and image is a path relative to the page, so the report folder can be zipped,
copied or opened from a file manager. This module only turns a ``Page`` into markup; what goes
on the page is decided in ``report.py``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from resnetlab.reports.tables import format_cell, header, table_columns

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; } th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { background: #f6f6f6; padding: 0.1em 0.3em; border-radius: 3px; }
pre { padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; }
.missing { background: #fff4e0; border-left: 4px solid #e0a040; padding: 0.5em 0.8em; }
"""
NUMERIC = {"layers", "params", "train_error_pct", "test_error_pct", "paper_error_pct", "train_seconds", "epochs", "iterations"}


@dataclass
class FigureRef:
    """An image on the page: its path relative to index.html and what it shows."""

    src: str
    caption: str
    width: int = 560  # displayed width in CSS pixels


@dataclass
class RunSection:
    """One run's part of the page."""

    name: str
    anchor: str
    folder: str
    command: str | None
    facts: list[tuple[str, str]] = field(default_factory=list)
    figures: list[FigureRef] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # what could not be shown, and why


@dataclass
class Page:
    title: str
    generated: str
    table_rows: list[dict[str, Any]]
    overview: list[FigureRef]
    runs: list[RunSection]
    downloads: list[tuple[str, str]]  # (label, relative path)
    sweep: str | None = None  # the sweep command and file, when the report comes from one
    notes: list[str] = field(default_factory=list)


def render(page: Page) -> str:
    """The whole index.html as a string."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{e(page.title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<h1>{e(page.title)}</h1>", f"<p>Generated {e(page.generated)} by <code>resnetlab report</code>.</p>",
    ]
    if page.sweep:
        parts.append(f"<p>Produced by the sweep: <code>{e(page.sweep)}</code></p>")
    parts += [f"<p>{e(note)}</p>" for note in page.notes]
    parts += ["<h2>Results</h2>", _table(page.table_rows)]
    parts.append("<p>Download: " + ", ".join(f'<a href="{e(href)}">{e(label)}</a>' for label, href in page.downloads) + "</p>")
    parts += ["<h2>Across runs</h2>", _figures(page.overview)]
    parts += ["<h2>Commands</h2>", _commands(page.runs)]
    for section in page.runs:
        parts.append(_run_section(section))
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _table(rows: Sequence[dict[str, Any]]) -> str:
    e = html.escape
    columns = table_columns(rows)
    head = "".join(f"<th>{e(header(k))}</th>" for k in columns)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{e(format_cell(k, row[k]))}</td>' if k in NUMERIC else f"<td>{e(format_cell(k, row[k]))}</td>"
            for k in columns
        )
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _figures(figures: Sequence[FigureRef]) -> str:
    e = html.escape
    items = [
        f'<figure><img src="{e(f.src)}" alt="{e(f.caption)}" width="{f.width}"><figcaption>{e(f.caption)}</figcaption></figure>'
        for f in figures
    ]
    return '<div class="figures">' + "".join(items) + "</div>"


def _commands(runs: Sequence[RunSection]) -> str:
    e = html.escape
    lines = [f'<li><a href="#{e(r.anchor)}">{e(r.name)}</a>: <code>{e(r.command or "(not recorded)")}</code></li>' for r in runs]
    return "<ul>" + "".join(lines) + "</ul>"


def _run_section(section: RunSection) -> str:
    e = html.escape
    facts = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in section.facts)
    parts = [
        f'<h2 id="{e(section.anchor)}">{e(section.name)}</h2>',
        f"<p>Folder: <code>{e(section.folder)}</code></p>",
        f"<p>Command: <code>{e(section.command or '(not recorded)')}</code></p>",
        f'<table class="facts">{facts}</table>',
    ]
    parts += [f'<p class="missing">{e(m)}</p>' for m in section.missing]
    parts.append(_figures(section.figures))
    return "\n".join(parts)
