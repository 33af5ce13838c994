"""The report as a list of blocks of plain text: the sections make them, and render.py turns the same list into
Markdown and into HTML, escaping all text for each."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True)
class Heading:
    kind: ClassVar[str] = "heading"
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    kind: ClassVar[str] = "paragraph"
    text: str


@dataclass(frozen=True)
class Table:
    kind: ClassVar[str] = "table"
    header: list[str]
    rows: list[list[Any]]  # cells are shown as str() gives them


@dataclass(frozen=True)
class Figure:
    kind: ClassVar[str] = "figure"
    path: Path  # a PNG: linked from the Markdown, embedded in the HTML
    caption: str


Block = Heading | Paragraph | Table | Figure
