"""The report's sections, one function each, in the order the report shows them. Each returns its blocks of plain
text; render.py escapes them. Figures are written under `figures` and are per variant (its number in the file
name), so runs of other settings never share a figure."""

import statistics
from pathlib import Path

from deepernets.config import LR_PICKS, dataset_slug
from deepernets.report import figures as draw
from deepernets.report.aggregate import Cells
from deepernets.report.collect import Collection, Run, read_confusion, read_failures, read_range_tests
from deepernets.report.document import Block, Figure, Heading, Paragraph, Table
from deepernets.report.published import REFERENCES, STUDY_SOURCE, study_numbers
from deepernets.run import scores


def introduction(collection: Collection, title: str) -> list[Block]:
    folders = ", ".join(str(f) for f in collection.folders)
    return [
        Heading(title, 1),
        Paragraph(
            f"{len(collection.runs)} runs from {folders}. Accuracies are final-epoch test accuracy (%), mean ± std "
            "over seeds with n; a best-epoch figure is always labelled as such. Where a study planned more runs for "
            "a cell, 'n=2 of 3' says so, with the runs that diverged or did not finish."
        ),
        *(Paragraph(f"Study {name}: {about}") for name, about in collection.abouts.items()),
    ]


def accuracy(cells: Cells) -> list[Block]:
    """The study's tables rebuilt: per dataset and optimizer, a model per row and a policy per column."""
    blocks: list[Block] = [Heading("Accuracy by model and learning-rate policy")]
    policies = cells.policies
    for variant in cells.variants:
        for dataset in cells.datasets:
            for optimizer in cells.optimizers:
                rows = []
                for model in cells.models:
                    row = [cells.summary((dataset, model, optimizer, p, variant)) for p in policies]
                    if all(c == "—" for c in row):
                        continue
                    study = study_numbers(dataset, model) if optimizer == "sgd" else {}  # it published SGD's only
                    published = " / ".join(f"{study[p]:.2f}" if p in study else "—" for p in policies) if study else "—"
                    ref = REFERENCES.get(dataset, {}).get(model)
                    rows.append([model, *row, published, f"{ref[0]:.2f} ({ref[1]})" if ref else "—"])
                if rows:
                    blocks.append(Heading(f"{dataset}, {optimizer} ({variant})", 3))
                    study_header = "study (published, " + " / ".join(policies) + ")"
                    blocks.append(Table(["model", *policies, study_header, "reference"], rows))
    blocks.append(
        Paragraph(
            f"Study numbers: {STUDY_SOURCE}; they used SGD, 50 epochs on all images (it gives no numbers for Adam, "
            "which it reports did not converge). Reference numbers: "
            "He et al. 2016, 'Deep Residual Learning for Image Recognition' (CIFAR-10 Table 6), and "
            "chenyaofo/pytorch-cifar-models (VGG-BN, 512-512 head), each a full 160–300-epoch training: compare "
            "runs of the same length."
        )
    )
    return blocks


def optimizers(cells: Cells) -> list[Block]:
    """Where the runs used more than one optimizer: each cell per optimizer, side by side."""
    if len(cells.optimizers) <= 1:
        return []
    rows = []
    for variant in cells.variants:
        for dataset in cells.datasets:
            for model in cells.models:
                for policy in cells.policies:
                    row = [cells.summary((dataset, model, o, policy, variant)) for o in cells.optimizers]
                    if any(c != "—" for c in row):
                        rows.append([dataset, model, policy, *row, variant])
    return [
        Heading("Optimizers compared"),
        Table(["dataset", "model", "policy", *cells.optimizers, "settings"], rows),
    ]


def best_policies(cells: Cells) -> list[Block]:
    rows = []
    for variant in cells.variants:
        for dataset in cells.datasets:
            for model in cells.models:
                if best := cells.best(dataset, model, variant):
                    study = study_numbers(dataset, model)
                    study_best = f"{max(study.values()):.2f}" if study else "—"
                    choice = f"{best.optimizer}, {best.policy}"
                    rows.append([dataset, model, choice, cells.summary(best.key), study_best, variant])
    header = ["dataset", "model", "best optimizer, policy", "final test acc", "study's best", "settings"]
    return [Heading("Best policy per model"), Table(header, rows)]


def training_curves(cells: Cells, collection: Collection, figures: Path) -> list[Block]:
    blocks: list[Block] = [Heading("Training curves")]
    for v, variant in enumerate(cells.variants, 1):
        for dataset in cells.datasets:
            for model in cells.models:
                chosen: dict[tuple[str, str], Run] = {}  # one line per optimizer and policy: its lowest seed
                for r in sorted(collection.runs, key=lambda r: r.config.seed):
                    if r.cell_key[:2] == (dataset, model) and r.variant == variant and r.metrics:
                        chosen.setdefault((r.config.optimizer, r.policy), r)
                if chosen:
                    path = figures / f"curves-{dataset_slug(dataset)}-{model}-variant{v}.png"
                    draw.training_curves(list(chosen.values()), path, f"{model} on {dataset}\n{variant}")
                    caption = (f"{model} on {dataset} ({variant}): test accuracy and training loss per epoch, by "
                               "optimizer and policy (lowest seed)")  # fmt: skip
                    blocks.append(Figure(path, caption))
    return blocks


def _lr(value: float | None) -> str:
    """An LR for a table; a suggestion the range test could not make (NaN, or null) shows as a dash."""
    return "—" if value is None or value != value else f"{value:.3g}"


def lr_finder(collection: Collection) -> list[Block]:
    """Each LR range test: the LR it picked, by which rule, any fallback, every suggestion, and its curve."""
    rows, images = [], []
    for test in read_range_tests(collection):
        result, source = test.result, test.source
        picked = result["suggested_lr"]
        method = result.get("method", "—")
        rule = result.get("picked_by", method)  # results from before picked_by and fallback were recorded
        rule = rule if rule == method else f"{rule} (asked for {method})"
        mark = f"⚠ fallback: {result.get('warning') or 'the requested rule could not be used'}"
        fallback = mark if result.get("fallback", False) else "no"
        rows.append([result["dataset"], result["model"], result["optimizer"], _lr(picked), rule, fallback,
                     result["points"], *(_lr(result.get(k)) for k in LR_PICKS), source])  # fmt: skip
        if test.plot.exists():
            caption = (f"LR range test: {result['model']} on {result['dataset']} ({result['optimizer']}, {source}): "
                       f"picked {_lr(picked)} by {rule}" + (f"; {fallback}" if fallback != "no" else ""))  # fmt: skip
            images.append(Figure(test.plot, caption))
    if not rows:
        return [Heading("LR finder"), Paragraph("No LR range test was recorded for these runs.")]
    header = ["dataset", "model", "optimizer", "picked LR", "rule", "fallback", "points", "valley", "steep",
              "minimum/10", "minimum", "from"]  # fmt: skip
    explanation = Paragraph(
        "Picked LR: the range test's answer to the rule that was asked for (lr_pick; the seed presets' "
        "scheduler: minimum), and the rule that gave it. Where the asked-for rule could not be used, another "
        "rule or the optimizer's default LR gave it instead: marked ⚠ fallback, with the reason."
    )
    return [Heading("LR finder"), Table(header, rows), explanation, *images]


def lr_schedules(cells: Cells, collection: Collection, figures: Path) -> list[Block]:
    blocks: list[Block] = [Heading("LR schedules used")]
    for v, variant in enumerate(cells.variants, 1):
        for dataset in cells.datasets:
            path = figures / f"schedules-{dataset_slug(dataset)}-variant{v}.png"
            runs = [r for r in collection.runs if r.config.dataset == dataset and r.variant == variant]
            if draw.lr_schedules(runs, path):
                caption = (f"learning rate at the end of each epoch, as metrics.csv logged it, for each model and "
                           f"policy on {dataset} ({variant}; first optimizer)")  # fmt: skip
                blocks.append(Figure(path, caption))
    return blocks


def confusion_matrices(cells: Cells, figures: Path) -> list[Block]:
    """Per dataset, each model's best run: its confusion matrix, per-class scores and most confidently wrong
    images; then the most-confused pairs of the dataset's best run."""
    blocks: list[Block] = [Heading("Confusion matrices of the best runs")]
    for dataset in cells.datasets:
        best_runs = {}  # by model and variant
        for variant in cells.variants:
            for model in cells.models:
                if best := cells.best(dataset, model, variant):
                    best_runs[(model, variant)] = best.run
        for (model, _), run in best_runs.items():
            matrix, classes = read_confusion(run)
            if matrix:
                path = draw.confusion(run, matrix, classes, figures, f"{model} on {dataset} ({run.final:.2f}%)")
                blocks.append(Figure(path, f"{run.label} ({run.variant}): final test accuracy {run.final:.2f}%"))
                blocks.append(Paragraph(f"Per class, {run.label} (%; recall is the class's accuracy):"))
                blocks.append(Table(["class", "precision", "recall", "F1", "test images"], _per_class(matrix, classes)))
            wrong = run.dir.plots / "confidently_wrong.png"
            if wrong.exists():
                caption = (f"{run.label}: its most confidently wrong test images (test index, true class, predicted "
                           "class and its probability)")  # fmt: skip
                blocks.append(Figure(wrong, caption))
        top = max(best_runs.values(), key=lambda r: r.final, default=None)
        matrix, classes = read_confusion(top) if top else ([], [])
        if matrix:
            pairs = scores.format_pairs(scores.most_confused_pairs(matrix, classes, 5))
            blocks.append(
                Paragraph(f"Most confused pairs on {dataset} (best run, {top.label}, {top.variant}): {pairs}")
            )
    return blocks


def _per_class(matrix: list[list[int]], classes: list[str]) -> list[list[object]]:
    return [
        [c, f"{s.precision:.2f}", f"{s.recall:.2f}", f"{s.f1:.2f}", s.images]
        for c, s in zip(classes, scores.per_class_scores(matrix), strict=True)
    ]


def speed_and_size(cells: Cells, collection: Collection) -> list[Block]:
    runs = collection.runs
    rows = []
    for variant in cells.variants:
        for dataset in cells.datasets:
            for model in cells.models:
                group = [r for r in runs if r.cell_key[:2] == (dataset, model) and r.variant == variant and r.metrics]
                if not group:
                    continue
                epoch_times = [float(m["epoch_time_s"]) for r in group for m in r.metrics]
                speeds = [float(m["train_images_per_s"]) for r in group for m in r.metrics]
                s = group[0].summary
                rows.append([dataset, model, f"{statistics.median(epoch_times):.1f}",
                             f"{statistics.median(speeds):.0f}", f"{s.get('parameters', 0):,}",
                             f"{s.get('flops_per_image', 0) / 1e6:.1f}", variant])  # fmt: skip
    header = ["dataset", "model", "time per epoch (s, median)", "train images/s (median)", "parameters",
              "MFLOPs/image", "settings"]  # fmt: skip
    devices = sorted({f"{r.summary.get('device')} ({r.summary.get('precision')})" for r in runs})
    versions = sorted({", ".join(f"{k} {v}" for k, v in r.summary.get("versions", {}).items()) for r in runs})
    sizes = sorted(
        {(r.summary.get("train_images"), r.summary.get("test_images"), r.config.epochs) for r in runs}, key=str
    )
    return [
        Heading("Speed and size"),
        Table(header, rows),
        Paragraph("Devices: " + "; ".join(devices) + ". Versions: " + "; ".join(versions) + "."),
        Paragraph(
            "Train / test images and epochs per run: " + "; ".join(f"{a} / {b}, {e} epochs" for a, b, e in sizes) + "."
        ),
    ]


def problems(collection: Collection) -> list[Block]:
    """Every run that did not finish, every planned run that is missing, and runs outside their study's plan."""
    blocks: list[Block] = [Heading("Diverged, unfinished and missing runs")]
    errors = read_failures(collection.folders)
    rows = [
        [r.label, r.status, r.summary.get("epochs_completed", 0), errors.get(r.label, "")]
        for r in collection.runs
        if r.status != "finished"
    ]
    for m in collection.missing:
        rows.append([m.label, "failed" if m.label in errors else "missing (not started)", 0, errors.get(m.label, "")])
    if rows:
        blocks.append(Table(["run", "status", "epochs completed", "last error (failures.json)"], rows))
    else:
        blocks.append(Paragraph("None: every planned run finished."))
    unplanned = [r for r in collection.runs if r.study_dir and not r.planned]
    if unplanned:
        blocks.append(
            Paragraph(
                "Runs in a study folder but not in the study's plan (study.json): each is filed under the policy of "
                "its planned seeds where it has some, else under a policy named from its own schedule and LR."
            )
        )
        rows = [[r.label, r.status, r.policy, r.variant] for r in unplanned]
        blocks.append(Table(["run", "status", "policy", "settings"], rows))
    if collection.unread:
        blocks.append(Paragraph("Files under the folders that are not runs or plans this version can read, left out:"))
        blocks.append(Table(["file", "why"], [[str(path), why] for path, why in collection.unread]))
    return blocks
