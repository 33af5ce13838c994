"""Build report.md and a self-contained report.html from run folders alone.

collect reads the folders into runs (and the runs a study's study.json planned, so that missing runs are listed
instead of silently dropped), aggregate groups them into cells, sections turn those into one document of plain
blocks (drawing the figures), and render writes that document once as Markdown and once as HTML.
"""

from pathlib import Path

from deepernets.report import aggregate, render, sections
from deepernets.report.collect import collect
from deepernets.run import atomic

TITLE = "deepernets report"


def build(folders: list[Path], out: Path) -> tuple[Path, Path]:
    """Write the report on the runs under `folders` into `out`; return the paths of report.md and report.html."""
    collection = collect(folders)
    cells = aggregate.group(collection)
    out.mkdir(parents=True, exist_ok=True)
    figures = out / "report_files"
    blocks = [
        *sections.introduction(collection, TITLE),
        *sections.accuracy(cells),
        *sections.optimizers(cells),
        *sections.best_policies(cells),
        *sections.training_curves(cells, collection, figures),
        *sections.lr_finder(collection),
        *sections.lr_schedules(cells, collection, figures),
        *sections.confusion_matrices(cells, figures),
        *sections.speed_and_size(cells, collection),
        *sections.problems(collection),
    ]
    md_path, html_path = out / "report.md", out / "report.html"
    atomic.write_text(md_path, render.markdown(blocks, out))
    atomic.write_text(html_path, render.html(blocks, TITLE))
    return md_path, html_path
