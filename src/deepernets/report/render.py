"""The report's blocks as Markdown and as a self-contained HTML page, each through one template (templates/).

Each template writes every value through its format's escape (Jinja's `finalize`), so that text from the run
folders (run, policy and dataset names, error messages) cannot make Markdown or HTML syntax; only the templates'
own characters can.
"""

import base64
import html as html_text
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import jinja2

from deepernets.report.document import Block

TEMPLATES = Path(__file__).parent / "templates"

# Backslash-escaped wherever they stand: escapes, code spans, emphasis, links and table columns. These escapes
# work in CommonMark (GitHub) and in Python-Markdown alike; what only CommonMark escapes becomes an entity below.
_ALWAYS = re.compile(r"[\\`*\[\]|]")
# `_` makes emphasis only at a word's edge, so that vgg11_bn keeps its plain spelling.
_EDGE_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
# `<` opens HTML or an autolink only before a letter, `/`, `!` or `?`, and `&` starts an entity only before a name
# or number and `;`: ordinary text such as `loss < 2.3` stays as written. `~` makes strikethrough on GitHub.
_ENTITIES = {"<": "&lt;", "&": "&amp;", "~": "&#126;"}
_TAG_ENTITY_OR_TILDE = re.compile(r"<(?=[A-Za-z/!?])|&(?=#?\w+;)|~")
# `#` starts a heading at the start of a line, and closes one after a space.
_HASH = re.compile(r"(?:^|(?<=\s))#")
# What would start a block quote or a list at the start of a paragraph.
_BLOCK_START = re.compile(r"^(?:[>+-]|\d+[.)](?=\s|$))")
_LINE_BREAK = re.compile(r"\r\n?|\n")


class Verbatim(str):
    """Template output already written for its format (a link's address), which the escape leaves as it is."""


def markdown_text(value: object) -> str:
    """Text that Markdown shows as written, in a paragraph, a heading, a table cell or an image's caption."""
    if isinstance(value, Verbatim):
        return value
    text = _ALWAYS.sub(r"\\\g<0>", str(value))
    text = _EDGE_UNDERSCORE.sub(r"\\_", text)
    text = _TAG_ENTITY_OR_TILDE.sub(lambda m: _ENTITIES[m[0]], text)
    text = _HASH.sub(r"\\#", text)
    text = _BLOCK_START.sub(lambda m: m[0][:-1] + "\\" + m[0][-1], text)
    return _LINE_BREAK.sub("<br>", text)  # a line break would end a table row, or could start a block


def html_escaped(value: object) -> str:
    return html_text.escape(str(value))


def _environment(escape: Callable[[object], str], **filters: Callable) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,  # `finalize` escapes every value for the template's own format, Markdown or HTML
        finalize=escape,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(filters)
    return env


def markdown(blocks: list[Block], base: Path) -> str:
    """report.md, its figures linked relative to `base` (the report's folder) where they lie under it."""

    def link_from_report(path: Path) -> Verbatim:
        try:
            target = path.resolve().relative_to(base.resolve())
        except ValueError:
            target = path.resolve()
        return Verbatim(quote(str(target)))  # a space or parenthesis would end the link

    env = _environment(markdown_text, link_from_report=link_from_report)
    return env.get_template("report.md.j2").render(blocks=blocks)


def html(blocks: list[Block], title: str) -> str:
    """report.html, with its figures embedded, so that the one file can be sent or archived."""

    def base64_of(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    env = _environment(html_escaped, base64=base64_of)
    return env.get_template("report.html.j2").render(blocks=blocks, title=title)
