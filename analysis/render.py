"""Render a report, given as a list of blocks, to Markdown and to one self-contained HTML page
(figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Banner:
    """A warning the reader must not miss (synthetic data, failed trials)."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table of text cells; `frame`'s column names are the header."""

    frame: pd.DataFrame
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """A PNG beside the report, with a caption saying what it shows."""

    path: Path
    caption: str
    alt: str = "figure"


Block = Heading | Paragraph | Bullets | Banner | Table | Figure


def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    """The report as Markdown; figures are linked by file name (they sit beside report.md)."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Banner):
            parts.append(f"> **Warning:** {block.text}")
        elif isinstance(block, Table):
            header = "| " + " | ".join(_md_cell(c) for c in block.frame.columns) + " |"
            rule = "|" + "|".join("---" for _ in block.frame.columns) + "|"
            rows = [
                "| " + " | ".join(_md_cell(v) for v in row) + " |"
                for row in block.frame.itertuples(index=False)
            ]
            text = "\n".join([header, rule, *rows])
            parts.append(f"{text}\n\n*{block.caption}*" if block.caption else text)
        elif isinstance(block, Figure):
            parts.append(f"![{block.alt}]({block.path.name})\n\n*{block.caption}*")
    return "\n\n".join(parts) + "\n"


STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1320px;
       margin: 24px auto; padding: 0 20px; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: 6px; }
h2 { margin-top: 36px; border-bottom: 1px solid #eee; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 12px 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
.scroll { overflow-x: auto; }
.caption { color: #555; font-size: 13px; margin-top: 2px; }
.banner { background: #fff3cd; border: 1px solid #e0b84c; padding: 10px 14px; border-radius: 4px;
          margin: 14px 0; font-weight: 600; }
code { background: #f3f3f3; padding: 0 3px; border-radius: 3px; font-size: 90%; }
figure { margin: 16px 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
"""


def _text(text: object) -> str:
    """Text as HTML: escaped, and `code` (a command, a flag) as <code>, as markdown shows it."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text)))


def _html_table(block: Table) -> str:
    header = "".join(f"<th>{_text(c)}</th>" for c in block.frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_text(v)}</td>" for v in row) + "</tr>"
        for row in block.frame.itertuples(index=False)
    )
    caption = f'<div class="caption">{_text(block.caption)}</div>' if block.caption else ""
    table = f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>"
    return f'<div class="scroll">{table}</div>{caption}'


def to_html(blocks: Sequence[Block], title: str) -> str:
    """The report as one HTML page with every figure embedded."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{_text(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_text(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Banner):
            parts.append(f'<div class="banner">Warning: {_text(block.text)}</div>')
        elif isinstance(block, Table):
            parts.append(_html_table(block))
        elif isinstance(block, Figure):
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            caption = _text(block.caption)
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}">'
                f'<figcaption class="caption">{caption}</figcaption></figure>'
            )
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )
