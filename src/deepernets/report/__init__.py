"""Build report.md and a self-contained report.html from run directories alone.

Runs are found under one or more folders (any directory holding config.yaml and summary.json). A study's
study.json names the runs it planned and the cell (policy) of each, so missing runs are listed instead of silently
dropped, and a cell says how many of its planned runs finished.
"""

import base64
import csv
import hashlib
import html
import json
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepernets.config import LR_PICKS, RunConfig, dataset_slug
from deepernets.errors import UserError
from deepernets.run import atomic, plots, scores
from deepernets.run.folder import RunDir
from deepernets.run.plots import plt
from deepernets.train.schedules import lr_per_step

# The study's published final accuracies (%), SGD, batch 128, 50 epochs.
STUDY = {
    "cifar10": {
        "vgg13": {"lr0.01": 87.77, "lr0.001": 84.03, "scheduler": 87.12},
        "vgg16": {"lr0.01": 88.04, "lr0.001": 93.82, "scheduler": 87.82},
        "resnet20": {"lr0.01": 73.22, "lr0.001": 68.45, "scheduler": 76.35},
        "resnet44": {"lr0.01": 70.95, "lr0.001": 69.02, "scheduler": 75.65},
    },
    "mnist": {
        "vgg13": {"lr0.01": 99.64, "lr0.001": 99.57, "scheduler": 99.65},
        "vgg16": {"lr0.01": 99.62, "lr0.001": 99.53, "scheduler": 99.60},
        "resnet20": {"lr0.01": 99.37, "lr0.001": 98.81, "scheduler": 99.22},
        "resnet44": {"lr0.01": 99.31, "lr0.001": 99.00, "scheduler": 99.38},
    },
}
STUDY_SOURCE = "the seed study, 'Deeper Networks for Image Classification' (its final tables)"
# Published CIFAR-10 test accuracies (%), with their sources.
REFERENCES = {
    "cifar10": {
        "resnet20": (91.25, "He et al. 2016, Table 6"),
        "resnet32": (92.49, "He et al. 2016, Table 6"),
        "resnet44": (92.83, "He et al. 2016, Table 6"),
        "resnet56": (93.03, "He et al. 2016, Table 6"),
        "resnet110": (93.39, "He et al. 2016, Table 6"),
        "vgg11_bn": (92.79, "chenyaofo/pytorch-cifar-models"),
        "vgg13_bn": (94.00, "chenyaofo/pytorch-cifar-models"),
        "vgg16_bn": (94.16, "chenyaofo/pytorch-cifar-models"),
        "vgg19_bn": (93.91, "chenyaofo/pytorch-cifar-models"),
    }
}


@dataclass
class Run:
    dir: RunDir
    config: RunConfig
    summary: dict[str, Any]
    metrics: list[dict[str, str]]
    policy: str
    study_dir: Path | None  # the study folder the run lies in, if any
    planned: bool  # whether its study's study.json plans it
    variant: str  # the settings besides dataset, model, optimizer, policy and seed, as words

    @property
    def cell_key(self) -> tuple[str, str, str, str, str]:
        """Runs of one cell are seeds of one experiment: they are averaged together."""
        return (self.config.dataset, self.config.model, self.config.optimizer, self.policy, self.variant)

    @property
    def label(self) -> str:
        """The run's folder with its parent, unique where several study folders hold runs of the same names."""
        return f"{self.dir.path.parent.name}/{self.dir.name}"

    @property
    def status(self) -> str:
        return self.summary.get("status", "unknown")

    @property
    def final(self) -> float | None:
        return self.summary.get("final_test_acc")


@dataclass
class Planned:
    """A run that a study's study.json plans."""

    name: str
    dir: Path  # resolved, like study_dir
    study_dir: Path
    cell: dict[str, Any]  # the axis values and seed that make the run
    config: RunConfig | None  # its planned settings; None in study.json files written before they were recorded

    @property
    def policy(self) -> str | None:
        if "policy" in self.cell:
            return self.cell["policy"]
        return policy_of(self.config) if self.config else None

    @property
    def cell_key(self) -> tuple[str, str, str, str, str] | None:
        """The cell the run is planned for, as Run.cell_key; unknown where the plan has no settings."""
        c = self.config
        return None if c is None else (c.dataset, c.model, c.optimizer, self.policy, variant_of(c))


@dataclass
class Document:
    """Report content as blocks, rendered once to Markdown and once to HTML."""

    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def text(self, text: str) -> None:
        self.blocks.append(("text", text))

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        self.blocks.append(("table", (header, rows)))

    def image(self, path: Path, caption: str) -> None:
        self.blocks.append(("image", (path, caption)))

    def markdown(self, base: Path) -> str:
        out = []
        for kind, value in self.blocks:
            if kind == "heading":
                out.append(f"{'#' * value[0]} {value[1]}\n")
            elif kind == "text":
                out.append(value + "\n")
            elif kind == "table":
                header, rows = value
                out.append("| " + " | ".join(header) + " |")
                out.append("|" + "---|" * len(header))
                out.extend("| " + " | ".join(str(c) for c in row) + " |" for row in rows)
                out.append("")
            elif kind == "image":
                path, caption = value
                out.append(f"![{caption}]({_relative(path, base)})\n")
        return "\n".join(out)

    def html(self, title: str) -> str:
        out = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        ]
        for kind, value in self.blocks:
            if kind == "heading":
                out.append(f"<h{value[0]}>{html.escape(value[1])}</h{value[0]}>")
            elif kind == "text":
                out.append(f"<p>{html.escape(value)}</p>")
            elif kind == "table":
                header, rows = value
                head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
                body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif kind == "image":
                path, caption = value
                data = base64.b64encode(path.read_bytes()).decode()
                out.append(
                    f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(caption)}'>"
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
        out.append("</body></html>")
        return "\n".join(out)


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { background: #f0f3f7; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; }
img { max-width: 100%; border: 1px solid #eee; } figcaption { font-size: 0.85em; color: #555; }
h1 { border-bottom: 2px solid #333; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
"""


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path.resolve())


def policy_of(config: RunConfig) -> str:
    """A policy named from the settings, for runs that no study plan names (a planned `lr: auto` is unresolved)."""
    if config.lr == "auto":
        return f"{config.schedule} lr auto ({config.lr_pick})"
    return f"lr{config.lr}" if config.schedule == "constant" else f"{config.schedule} lr{config.lr:.3g}"


def variant_of(config: RunConfig) -> str:
    """What else sets runs apart; only runs of one variant are averaged together."""
    images = "all images" if config.subset is None else f"{config.subset} train images"
    if config.test_subset is not None:
        images += f", {config.test_subset} test images"
    words = [f"{config.epochs} epochs", images, f"batch {config.batch_size}"]
    rest = {k: v for k, v in config.to_dict().items() if k in VARIANT_DETAILS and v != DEFAULTS[k]}
    words += [f"{k} {v}" for k, v in rest.items()]
    return ", ".join(words)


DEFAULTS = RunConfig().to_dict()
VARIANT_DETAILS = (
    "model_options",
    "image_size",
    "momentum",
    "nesterov",
    "weight_decay",
    "label_smoothing",
    "cutout",
    "mixup",
    "cutmix",
    "precision",
)


def find_runs(folders: list[Path]) -> tuple[list[Run], list[Planned]]:
    """Every run under the folders, and every run that a study there planned (study.json)."""
    plans: dict[Path, Planned] = {}
    for folder in folders:
        if not folder.is_dir():
            raise UserError(f"{folder} is not a folder of runs")
        for manifest in sorted(folder.rglob("study.json")):
            study_dir = manifest.parent.resolve()
            for entry in json.loads(manifest.read_text())["runs"]:
                config = RunConfig.from_dict(entry["config"], str(manifest)) if "config" in entry else None
                p = Planned(entry["name"], study_dir / entry["name"], study_dir, entry["cell"], config)
                plans.setdefault(p.dir, p)
    study_dirs = {p.study_dir for p in plans.values()}
    runs = []
    seen: set[Path] = set()
    for folder in folders:
        for config_path in sorted(folder.rglob("config.yaml")):
            run_dir = RunDir(config_path.parent)
            path = run_dir.path.resolve()
            if path in seen or run_dir.read_summary() is None:
                continue
            seen.add(path)
            config = run_dir.read_config()
            plan = plans.get(path)
            # a run its study's plan lacks (study.json of an older version kept only the last invocation's runs)
            # belongs to the cell of its planned seeds, whose names differ only in the seed
            source = plan or _planned_sibling(path, plans)
            runs.append(
                Run(
                    dir=run_dir,
                    config=config,
                    summary=run_dir.read_summary() or {},
                    metrics=run_dir.read_metrics(),
                    policy=(source.policy if source else None) or policy_of(config),
                    study_dir=path.parent if plan or path.parent in study_dirs else None,
                    planned=plan is not None,
                    variant=variant_of(config),
                )
            )
    return runs, list(plans.values())


def _planned_sibling(run: Path, plans: dict[Path, Planned]) -> Planned | None:
    """A planned run in the same study folder whose name differs only in the seed."""

    def cell_name(name: str) -> str:
        return re.sub(r"-s\d+$", "", name)

    siblings = (p for p in plans.values() if p.study_dir == run.parent and cell_name(p.name) == cell_name(run.name))
    return next(siblings, None)


def mean_std(values: list[float], diverged: int = 0, planned: int = 0, unfinished: int = 0) -> str:
    """mean ± std (n) of final accuracies; diverged runs are counted beside n, not averaged in.

    When a study planned more runs for the cell than finished, n says of how many, and the planned runs that are
    running, failed or missing are counted as unfinished, so a mean over fewer seeds never passes for the whole cell.
    """
    n = f"n={len(values)}" + (f" of {planned}" if planned > len(values) else "")
    notes = (f", {diverged} diverged" if diverged else "") + (f", {unfinished} unfinished" if unfinished else "")
    if not values:
        if not notes:
            return "—"
        return f"{'diverged' if diverged and not unfinished else '—'} ({n}{notes})"
    if len(values) == 1:
        return f"{values[0]:.2f} ({n}{notes})"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} ({n}{notes})"


def _base_model(name: str) -> str:
    return name.removesuffix("_bn")


def build(folders: list[Path], out: Path) -> tuple[Path, Path]:
    runs, planned = find_runs(folders)
    found = {r.dir.path.resolve(): r for r in runs}
    missing = [p for p in planned if p.dir not in found]
    if not runs and not missing:
        raise UserError(f"no runs found under {', '.join(str(f) for f in folders)}: train or run a study first")
    out.mkdir(parents=True, exist_ok=True)
    figures = out / "report_files"
    doc = Document()
    doc.heading("deepernets report", 1)
    doc.text(
        f"{len(runs)} runs from {', '.join(str(f) for f in folders)}. Accuracies are final-epoch test accuracy "
        "(%), mean ± std over seeds with n; a best-epoch figure is always labelled as such. Where a study planned "
        "more runs for a cell, 'n=2 of 3' says so, with the runs that diverged or did not finish."
    )

    by_cell: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        by_cell[run.cell_key].append(run)
    planned_per_cell: Counter[tuple] = Counter()
    unfinished_per_cell: Counter[tuple] = Counter()
    for p in planned:
        run = found.get(p.dir)
        key = run.cell_key if run else p.cell_key  # a run that exists is filed by what it trained
        if key is None:  # not started, in a study.json that did not record settings: listed as missing only
            continue
        planned_per_cell[key] += 1
        unfinished_per_cell[key] += run is None or run.status not in ("finished", "diverged")
    cells = list(by_cell) + list(planned_per_cell)

    def in_order(values: list[str], axis: str) -> list[str]:
        """The values present in the cells, in the grid's order where a study planned them."""
        present = set(values)
        return [v for v in dict.fromkeys([p.cell.get(axis) for p in planned] + values) if v in present]

    variants = list(dict.fromkeys(c[4] for c in cells))
    datasets = in_order([c[0] for c in cells], "dataset")
    models = in_order([c[1] for c in cells], "model")
    optimizers = in_order([c[2] for c in cells], "optimizer")
    policies = in_order([c[3] for c in cells], "policy")

    def finals(dataset: str, model: str, optimizer: str, policy: str, variant: str) -> list[float]:
        return [r.final for r in by_cell.get((dataset, model, optimizer, policy, variant), []) if r.final is not None]

    def cell(dataset: str, model: str, optimizer: str, policy: str, variant: str) -> str:
        key = (dataset, model, optimizer, policy, variant)
        diverged = sum(r.status == "diverged" for r in by_cell.get(key, []))
        return mean_std(finals(*key), diverged, planned_per_cell[key], unfinished_per_cell[key])

    doc.heading("Accuracy by model and learning-rate policy")
    for variant in variants:
        for dataset in datasets:
            for optimizer in optimizers:
                rows = []
                for model in models:
                    cells = [cell(dataset, model, optimizer, p, variant) for p in policies]
                    if all(c == "—" for c in cells):
                        continue
                    study = STUDY.get(dataset, {}).get(_base_model(model), {})
                    published = " / ".join(f"{study[p]:.2f}" if p in study else "—" for p in policies) if study else "—"
                    ref = REFERENCES.get(dataset, {}).get(model)
                    rows.append([model, *cells, published, f"{ref[0]:.2f} ({ref[1]})" if ref else "—"])
                if rows:
                    doc.heading(f"{dataset}, {optimizer} ({variant})", 3)
                    study_header = "study (published, " + " / ".join(policies) + ")"
                    doc.table(["model", *policies, study_header, "reference"], rows)
    doc.text(
        f"Study numbers: {STUDY_SOURCE}; they used SGD, 50 epochs on all images. Reference numbers: He et al. 2016, "
        "'Deep Residual Learning for Image Recognition' (CIFAR-10 Table 6), and chenyaofo/pytorch-cifar-models "
        "(VGG-BN, 512-512 head), each a full 160–300-epoch training: compare runs of the same length."
    )

    if len(optimizers) > 1:
        doc.heading("Optimizers compared")
        rows = []
        for variant in variants:
            for dataset in datasets:
                for model in models:
                    for policy in policies:
                        cells = [cell(dataset, model, o, policy, variant) for o in optimizers]
                        if any(c != "—" for c in cells):
                            rows.append([dataset, model, policy, *cells, variant])
        doc.table(["dataset", "model", "policy", *optimizers, "settings"], rows)

    doc.heading("Best policy per model")
    best_runs: dict[tuple[str, str, str], Run] = {}
    rows = []
    for variant in variants:
        for dataset in datasets:
            for model in models:
                options = [
                    (statistics.mean(v), o, p)
                    for o in optimizers
                    for p in policies
                    if (v := finals(dataset, model, o, p, variant))
                ]
                if not options:
                    continue
                acc, optimizer, policy = max(options)
                cell_runs = [r for r in by_cell[(dataset, model, optimizer, policy, variant)] if r.final is not None]
                best_runs[(dataset, model, variant)] = max(cell_runs, key=lambda r: r.final)
                study = STUDY.get(dataset, {}).get(_base_model(model), {})
                study_best = f"{max(study.values()):.2f}" if study else "—"
                rows.append([dataset, model, f"{optimizer}, {policy}", f"{acc:.2f}", study_best, variant])
    doc.table(["dataset", "model", "best optimizer, policy", "final test acc (mean)", "study's best", "settings"], rows)

    # Figures are per variant (its number in the file name): runs of other settings never share a figure.
    doc.heading("Training curves")
    for v, variant in enumerate(variants, 1):
        for dataset in datasets:
            for model in models:
                chosen: dict[tuple[str, str], Run] = {}  # one line per optimizer and policy: its lowest seed
                for r in sorted(runs, key=lambda r: r.config.seed):
                    if r.cell_key[:2] == (dataset, model) and r.variant == variant and r.metrics:
                        chosen.setdefault((r.config.optimizer, r.policy), r)
                if chosen:
                    path = figures / f"curves-{dataset_slug(dataset)}-{model}-variant{v}.png"
                    curves_figure(list(chosen.values()), path, f"{model} on {dataset}\n{variant}")
                    doc.image(
                        path,
                        f"{model} on {dataset} ({variant}): test accuracy and training loss per epoch, by optimizer "
                        "and policy (lowest seed)",
                    )

    doc.heading("LR finder")
    # (where it comes from, its result, the folder of its plot): a study's tests, then single `--lr auto` runs'
    finders: list[tuple[str, dict[str, Any], Path]] = []
    for study_dir in sorted({r.study_dir for r in runs if r.study_dir} | {m.study_dir for m in missing}):
        for path in sorted((study_dir / "lr_finder").glob("*/result.json")):
            finders.append((f"study {study_dir.name}", json.loads(path.read_text()), path.parent / "plots"))
    for r in runs:
        if r.summary.get("lr_finder") and not r.study_dir:  # a study's runs share the test listed above
            names = {"dataset": r.config.dataset, "model": r.config.model, "optimizer": r.config.optimizer}
            finders.append((r.label, {**r.summary["lr_finder"], **names}, r.dir.plots))
    rows, images = [], []
    for source, result, plot_dir in finders:
        picked = result["suggested_lr"]
        method = result.get("method", "—")
        rule = result.get("picked_by", method)  # results from before picked_by and fallback were recorded
        rule = rule if rule == method else f"{rule} (asked for {method})"
        mark = f"⚠ fallback: {result.get('warning') or 'the requested rule could not be used'}"
        fallback = mark if result.get("fallback", False) else "no"
        rows.append([result["dataset"], result["model"], result["optimizer"], _lr(picked), rule, fallback,
                     result["points"], *(_lr(result.get(k)) for k in LR_PICKS), source])  # fmt: skip
        if (plot_dir / "lr_finder.png").exists():
            caption = (f"LR range test: {result['model']} on {result['dataset']} ({result['optimizer']}, {source}): "
                       f"picked {_lr(picked)} by {rule}" + (f"; {fallback}" if fallback != "no" else ""))  # fmt: skip
            images.append((plot_dir / "lr_finder.png", caption))
    if rows:
        doc.table(["dataset", "model", "optimizer", "picked LR", "rule", "fallback", "points", "valley", "steep",
                   "minimum/10", "minimum", "from"], rows)  # fmt: skip
        doc.text(
            "Picked LR: the range test's answer to the rule that was asked for (lr_pick; the seed presets' "
            "scheduler: minimum), and the rule that gave it. Where the asked-for rule could not be used, another "
            "rule or the optimizer's default LR gave it instead: marked ⚠ fallback, with the reason."
        )
        for path, caption in images:
            doc.image(path, caption)
    else:
        doc.text("No LR range test was recorded for these runs.")

    doc.heading("LR schedules used")
    for v, variant in enumerate(variants, 1):
        for dataset in datasets:
            path = figures / f"schedules-{dataset_slug(dataset)}-variant{v}.png"
            if schedules_figure([r for r in runs if r.config.dataset == dataset and r.variant == variant], path):
                doc.image(
                    path, f"learning rate per step for each model and policy on {dataset} ({variant}; first optimizer)"
                )

    doc.heading("Confusion matrices of the best runs")
    for dataset in datasets:
        candidates = {(m, v): r for (d, m, v), r in best_runs.items() if d == dataset}
        top_run = max(candidates.values(), key=lambda r: r.final, default=None)
        for (model, _), run in candidates.items():
            confusion, classes = read_confusion(run)
            if confusion:
                # run names repeat across the study folders of one grid; the folder's path tells them apart
                digest = hashlib.sha256(str(run.dir.path.resolve()).encode()).hexdigest()[:8]
                path = figures / f"confusion-{run.dir.path.parent.name}-{run.dir.name}-{digest}.png"
                plots.confusion_heatmap(confusion, classes, path, f"{model} on {dataset} ({run.final:.2f}%)")
                doc.image(path, f"{run.label} ({run.variant}): final test accuracy {run.final:.2f}%")
                doc.text(f"Per class, {run.label} (%; recall is the class's accuracy):")
                doc.table(["class", "precision", "recall", "F1", "test images"], per_class_rows(confusion, classes))
            wrong = run.dir.plots / "confidently_wrong.png"
            if wrong.exists():
                doc.image(
                    wrong,
                    f"{run.label}: its most confidently wrong test images (test index, true class, predicted class "
                    "and its probability)",
                )
        if top_run is not None:
            confusion, classes = read_confusion(top_run)
            if confusion:
                pairs = scores.most_confused_pairs(confusion, classes, 5)
                doc.text(
                    f"Most confused pairs on {dataset} (best run, {top_run.label}, {top_run.variant}): "
                    f"{scores.format_pairs(pairs)}"
                )

    doc.heading("Speed and size")
    rows = []
    for variant in variants:
        for dataset in datasets:
            for model in models:
                group = [r for r in runs if r.cell_key[:2] == (dataset, model) and r.variant == variant and r.metrics]
                if not group:
                    continue
                epoch_times = [float(m["epoch_time_s"]) for r in group for m in r.metrics]
                speeds = [float(m["train_images_per_s"]) for r in group for m in r.metrics]
                s = group[0].summary
                rows.append([dataset, model, f"{statistics.median(epoch_times):.1f}",
                             f"{statistics.median(speeds):.0f}", f"{s.get('parameters', 0):,}",
                             f"{s.get('flops_per_image', 0) / 1e6:.1f}", variant])  # fmt: skip
    doc.table(
        ["dataset", "model", "time per epoch (s, median)", "train images/s (median)", "parameters", "MFLOPs/image",
         "settings"],
        rows,
    )  # fmt: skip
    devices = sorted({f"{r.summary.get('device')} ({r.summary.get('precision')})" for r in runs})
    versions = sorted({", ".join(f"{k} {v}" for k, v in r.summary.get("versions", {}).items()) for r in runs})
    doc.text("Devices: " + "; ".join(devices) + ". Versions: " + "; ".join(versions) + ".")
    sizes = sorted(
        {(r.summary.get("train_images"), r.summary.get("test_images"), r.config.epochs) for r in runs}, key=str
    )
    doc.text(
        "Train / test images and epochs per run: " + "; ".join(f"{a} / {b}, {e} epochs" for a, b, e in sizes) + "."
    )

    doc.heading("Diverged, unfinished and missing runs")
    errors = read_failures(folders)
    problems = [
        [r.label, r.status, r.summary.get("epochs_completed", 0), errors.get(r.label, "")]
        for r in runs
        if r.status != "finished"
    ]
    for m in missing:
        label = f"{m.study_dir.name}/{m.name}"
        problems.append([label, "failed" if label in errors else "missing (not started)", 0, errors.get(label, "")])
    if problems:
        doc.table(["run", "status", "epochs completed", "last error (failures.json)"], problems)
    else:
        doc.text("None: every planned run finished.")
    unplanned = [r for r in runs if r.study_dir and not r.planned]
    if unplanned:
        doc.text(
            "Runs in a study folder but not in the study's plan (study.json): each is filed under the policy of its "
            "planned seeds where it has some, else under a policy named from its own schedule and LR."
        )
        doc.table(
            ["run", "status", "policy", "settings"], [[r.label, r.status, r.policy, r.variant] for r in unplanned]
        )

    md_path, html_path = out / "report.md", out / "report.html"
    atomic.write_text(md_path, doc.markdown(out))
    atomic.write_text(html_path, doc.html("deepernets report"))
    return md_path, html_path


def _lr(value: float | None) -> str:
    """An LR for a table; a suggestion the range test could not make (NaN, or null) shows as a dash."""
    return "—" if value is None or value != value else f"{value:.3g}"


def read_failures(folders: list[Path]) -> dict[str, str]:
    """The last error of each failed run, from its study's failures.json, by the run's label (study/run)."""
    errors = {}
    for folder in folders:
        for path in sorted(folder.rglob("failures.json")):
            for name, failure in json.loads(path.read_text()).items():
                errors[f"{path.parent.name}/{name}"] = failure["error"]
    return errors


def read_confusion(run: Run) -> tuple[list[list[int]], list[str]]:
    path = run.dir.path / "confusion.csv"
    if not path.exists():
        return [], []
    with path.open() as f:
        rows = list(csv.reader(f))
    return [[int(v) for v in row[1:]] for row in rows[1:]], rows[0][1:]


def per_class_rows(confusion: list[list[int]], classes: list[str]) -> list[list[Any]]:
    return [
        [c, f"{s.precision:.2f}", f"{s.recall:.2f}", f"{s.f1:.2f}", s.images]
        for c, s in zip(classes, scores.per_class_scores(confusion), strict=True)
    ]


def curves_figure(runs: list[Run], path: Path, title: str) -> None:
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.6))
    for run in sorted(runs, key=lambda r: (r.config.optimizer, r.policy)):
        epochs = [int(m["epoch"]) for m in run.metrics]
        label = f"{run.config.optimizer}, {run.policy}"
        ax_acc.plot(epochs, [float(m["val_acc"]) for m in run.metrics], marker=".", label=label)
        ax_loss.plot(epochs, [float(m["train_loss"]) for m in run.metrics], marker=".", label=label)
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss", yscale="log")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=7)
    fig.suptitle(title)
    plots.save_figure(fig, path)


def schedules_figure(runs: list[Run], path: Path) -> bool:
    """The LR at every step as each run's schedule computed it (plateau runs: the per-epoch LR they logged)."""
    optimizer = next((r.config.optimizer for r in runs), None)
    chosen = [r for r in runs if r.config.optimizer == optimizer and r.metrics and r.summary.get("train_images")]
    if not chosen:
        return False
    fig, ax = plt.subplots(figsize=(7, 3.4))
    seen = set()
    for run in sorted(chosen, key=lambda r: (r.policy, r.config.model)):
        key = (run.policy, run.config.model)
        if key in seen:
            continue
        seen.add(key)
        per_process = run.summary["train_images"] // run.summary.get("world_size", 1)
        steps = max(1, per_process // run.config.batch_size)
        lrs = lr_per_step(run.config, steps, run.metrics)
        ax.plot([i / steps for i in range(len(lrs))], lrs, label=f"{run.config.model}, {run.policy}")
    ax.set(xlabel="epoch", ylabel="learning rate", yscale="log", title=f"LR schedules ({optimizer})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    plots.save_figure(fig, path)
    return True
