"""The report on hand-made run folders (written by the real RunDir writers): no training, so every case is quick."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from deepernets import report, study
from deepernets.config import RunConfig
from deepernets.report import render
from deepernets.run import atomic, plots
from deepernets.run.folder import RunDir

CLASSES = ["0", "1", "2"]


def fake_run(
    folder: Path, config: RunConfig, status: str = "finished", acc: float = 90.0, lr_finder: dict | None = None
) -> RunDir:
    """A run folder as training leaves it: config.yaml, metrics.csv, summary.json and confusion.csv."""
    run = RunDir(folder / (config.name or config.default_name()))
    config = config.replace(lr=0.351) if config.lr == "auto" else config  # training resolves the LR finder's pick
    run.write_config(config)
    done = config.epochs if status == "finished" else 1
    run.write_metrics(
        [
            {"epoch": e, "lr": 0.01, "train_loss": 1 / e, "train_acc": acc - 1, "val_loss": 1 / e, "val_acc": acc,
             "epoch_time_s": 10.0, "train_images_per_s": 100.0, "timestamp": "2026-01-01 00:00:00"}
            for e in range(1, done + 1)
        ]
    )  # fmt: skip
    run.write_summary(
        {"status": status, "epochs_completed": done, "final_test_acc": acc if status == "finished" else None,
         "train_images": config.subset or 1024, "test_images": 100, "parameters": 1000, "flops_per_image": 1e6,
         "device": "cpu", "precision": "fp32", "versions": {}, "lr_finder": lr_finder}
    )  # fmt: skip
    (run.path / "confusion.csv").write_text("true,0,1,2\n0,9,1,0\n1,0,10,0\n2,0,2,8\n")
    return run


def plan(st: Path, seeds: int, models: tuple[str, ...] = ("resnet20",), **overrides: object):
    grid = study.Grid(
        name="g",
        base={"epochs": 2, "batch_size": 64, "subset": 256, "test_subset": 100},
        axes={"dataset": ["mnist"], "model": list(models), "policy": ["lr0.01", "scheduler"]},
        policies={"lr0.01": {"lr": 0.01, "schedule": "constant"}, "scheduler": {"lr": "auto", "schedule": "onecycle"}},
    )
    return grid, study.expand(grid, st, overrides, seeds)


def accuracy_rows(md: str) -> dict[str, str]:
    return {line.split(" | ")[0].strip("| "): line for line in md.splitlines() if line.startswith("| resnet20 |")}


def test_a_run_outside_the_plan_is_named_and_stays_in_its_cell(tmp_path):
    """study.json of an older version: only the last invocation's seeds (not the third), and no settings."""
    st = tmp_path / "st"
    grid, planned = plan(st, seeds=3)
    for run in planned:
        fake_run(st, run.config, acc=90.0 + run.cell["seed"])
    old = [{"name": p.name, "cell": p.cell} for p in planned if p.cell["seed"] < 2]
    (st / "study.json").write_text(json.dumps({"grid": {}, "runs": old}))
    md = report.build([st], st)[0].read_text()
    assert "onecycle lr0.351" not in md  # not a column of its own: its cell's policy comes from the plan
    assert "| model | lr0.01 | scheduler | study (published, lr0.01 / scheduler) | reference |" in md
    row = accuracy_rows(md)["resnet20"]
    assert "91.00 ± 1.00 (n=3)" in row  # lr0.01 and scheduler: all three seeds together
    assert "not in the study's plan" in md
    assert re.search(r"st/mnist-resnet20-scheduler-s2 .*scheduler", md)


def test_the_seed_studys_numbers_stand_beside_sgd_runs_only(tmp_path):
    """The seed study published SGD's accuracies; beside Adam's runs they would compare unlike with unlike."""
    st = tmp_path / "st"
    grid = study.Grid(
        name="g",
        base={"epochs": 2, "batch_size": 64, "subset": 256, "test_subset": 100},
        axes={"dataset": ["mnist"], "model": ["resnet20"], "optimizer": ["sgd", "adam"], "policy": ["lr0.01"]},
        policies={"lr0.01": {"lr": 0.01, "schedule": "constant"}},
    )
    for run in study.expand(grid, st, {}, 1):
        fake_run(st, run.config)
    md = report.build([st], st)[0].read_text()
    sgd, adam = (md.split(f"### mnist, {o}")[1].split("###")[0] for o in ("sgd", "adam"))
    assert "| 99.37 |" in sgd  # resnet20's published lr0.01
    assert "99.37" not in adam and "| — |" in adam.split("| resnet20 |")[1].splitlines()[0]


def test_a_cell_says_how_many_planned_seeds_did_not_finish(tmp_path):
    st = tmp_path / "st"
    grid, planned = plan(st, seeds=3, models=("resnet20", "vgg11_bn"))
    study.write_manifest(grid, st, planned)
    for run in planned:
        seed, policy = run.cell["seed"], run.cell["policy"]
        if run.cell["model"] == "vgg11_bn":  # none of its runs started
            continue
        if policy == "lr0.01" and seed < 2:  # lr0.01: seed 2 never started
            fake_run(st, run.config, acc=90.0 + seed)
        if policy == "scheduler":  # scheduler: seed 0 finished, seed 1 diverged, seed 2 is still running
            fake_run(st, run.config, status=["finished", "diverged", "running"][seed], acc=95.0)
    md, html = (p.read_text() for p in report.build([st], st))
    row = accuracy_rows(md)["resnet20"]
    assert "90.50 ± 0.71 (n=2 of 3, 1 unfinished)" in row
    assert "95.00 (n=1 of 3, 1 diverged, 1 unfinished)" in row
    assert "n=2 of 3, 1 unfinished" in html
    vgg = next(line for line in md.splitlines() if line.startswith("| vgg11_bn |"))
    assert vgg.count("not run yet (n=0 of 3)") == 2  # in the policies' columns, not one named "lr auto"
    assert "lr auto" not in md
    fake_run(st, next(p for p in planned if p.cell["model"] == "vgg11_bn").config, status="running")
    vgg = next(line for line in report.build([st], st)[0].read_text().splitlines() if line.startswith("| vgg11_bn |"))
    assert "| no result yet (n=0 of 3) | not run yet (n=0 of 3) |" in vgg  # one run started in the first


def test_the_best_policy_is_not_one_whose_other_seeds_diverged_and_shows_its_n(tmp_path):
    st = tmp_path / "st"
    grid, planned = plan(st, seeds=3)
    study.write_manifest(grid, st, planned)
    for run in planned:
        seed = run.cell["seed"]
        if run.cell["policy"] == "lr0.01":
            fake_run(st, run.config, acc=90.0 + seed / 10)
        else:  # one seed higher, the other two diverged
            fake_run(st, run.config, status="finished" if seed == 0 else "diverged", acc=95.0)
    md = report.build([st], st)[0].read_text()
    assert "| mnist | resnet20 | sgd, lr0.01 | 90.10 ± 0.10 (n=3) |" in md.split("## Best policy per model")[1]


def test_a_recipe_grid_reports_each_models_mean_over_its_seeds(tmp_path):
    st = tmp_path / "st"
    grid = study.load_grid("cifar10-recipe")
    planned = study.expand(grid, st, {})
    study.write_manifest(grid, st, planned)
    for run in planned[:-1]:  # vgg16_bn's last seed has not run
        fake_run(st, run.config, acc=92.0 + run.cell["seed"])
    md = report.build([st], st)[0].read_text()
    assert "Study cifar10-recipe: The cifar10 training preset" in md
    assert "### cifar10, sgd (50 epochs, all images, batch 128, nesterov True, label_smoothing 0.1, cutout 8)" in md
    rows = {
        line.split(" | ")[0].strip("| "): line for line in md.splitlines() if line.startswith(("| resnet", "| vgg"))
    }
    assert "| 93.00 ± 1.00 (n=3) |" in rows["resnet44"]
    assert "| 92.50 ± 0.71 (n=2 of 3, 1 unfinished) |" in rows["vgg16_bn"]


def test_merged_study_folders_keep_each_variant_apart(tmp_path):
    """`report A B` over two versions of one grid: the same run names, other settings (here the subset)."""
    folders = [tmp_path / "st-256", tmp_path / "st-512"]
    for folder, subset, acc in zip(folders, (256, 512), (80.0, 90.0), strict=True):
        grid, planned = plan(folder, seeds=1, subset=subset)
        study.write_manifest(grid, folder, planned)
        for run in planned:
            fake_run(folder, run.config, acc=acc).path.joinpath("confusion.csv").write_text(
                f"true,0,1,2\n0,{subset},1,0\n1,0,10,0\n2,0,2,8\n"  # each folder's matrix tells its own figure apart
            )
    md = report.build(folders, tmp_path)[0].read_text()
    images = re.findall(r"!\[(.*)\]\((.*)\)", md)
    assert len({path for _, path in images}) == len(images)  # no figure file stands for two figures
    confusions = [(caption, path) for caption, path in images if "confusion" in path]
    assert len(confusions) == 2
    for variant in ("256 train images", "512 train images"):
        for kind in ("curves", "schedules", "confusion"):
            assert any(variant in caption for caption, path in images if kind in path), (kind, variant)
        section = md.split("## Speed and size")[1].split("##")[0]
        assert any(variant in line for line in section.splitlines() if line.startswith("| mnist | resnet20"))
    assert len({(tmp_path / path).read_bytes() for _, path in confusions}) == 2


@pytest.mark.parametrize(
    ("axis", "values", "policy"),
    [
        ("warmup_epochs", [0, 1], {"lr": 0.01, "schedule": "constant"}),
        ("lr", [0.1, 0.001], {"schedule": "constant"}),
        ("schedule", ["constant", "onecycle"], {"lr": 0.01}),
    ],
)
def test_runs_of_another_value_of_any_axis_are_never_averaged_together(tmp_path, axis, values, policy):
    st = tmp_path / "st"
    grid = study.Grid(
        name="g",
        base={"epochs": 2, "batch_size": 64, "subset": 256, "test_subset": 100},
        axes={"dataset": ["mnist"], "model": ["resnet20"], "policy": ["p"], axis: values},
        policies={"p": policy},
    )
    planned = study.expand(grid, st, {}, 1)
    study.write_manifest(grid, st, planned)
    for run, acc in zip(planned, (80.0, 90.0), strict=True):
        fake_run(st, run.config, acc=acc)
    md = report.build([st], st)[0].read_text()
    assert "85.00" not in md and "(n=2)" not in md
    for value, acc in zip(values, ("80.00 (n=1)", "90.00 (n=1)"), strict=True):
        assert re.search(rf"### mnist, sgd \(.*{axis} {value}\)\n\n.*\n.*\n\| resnet20 \| {re.escape(acc)} \|", md)


def test_single_runs_of_other_schedule_settings_are_never_averaged_together(tmp_path):
    for key in ("warmup_epochs", "gamma"):
        fake_run(tmp_path, RunConfig(dataset="mnist", epochs=2, schedule="multistep", name=key, **{key: 0.5}))
    md = report.build([tmp_path], tmp_path)[0].read_text()
    assert "warmup_epochs 0.5" in md and "gamma 0.5" in md and "(n=2)" not in md


def finder_result(suggested: float, method: str, points: int, **keys: object) -> dict:
    suggestions = {"valley": 0.005, "steep": 0.02, "minimum_tenth": 0.0351, "minimum": 0.351}
    return {"suggested_lr": suggested, "method": method, **suggestions, "points": points, **keys}


def curve(path: Path, picked: float) -> None:
    losses = [2.3, 2.0, 2.5]
    plots.lr_finder_curve([1e-3, 1e-2, 1e-1], losses, losses, 2.1, (picked, "minimum"), path)


def test_lr_finder_section_shows_each_pick_its_rule_and_any_fallback(tmp_path):
    st, single = tmp_path / "st", tmp_path / "runs"
    grid, planned = plan(st, seeds=1, models=("resnet20", "vgg11_bn"))
    study.write_manifest(grid, st, planned)
    for run in planned:
        fake_run(st, run.config)
    results = {
        "mnist-resnet20-sgd-0123abcd": finder_result(
            0.351, "minimum", 30, picked_by="minimum", fallback=False, warning=None, dataset="mnist",
            model="resnet20", optimizer="sgd",
        ),
        "mnist-vgg11_bn-sgd-4567cdef": finder_result(
            0.01, "minimum", 3, picked_by="default", fallback=True, dataset="mnist", model="vgg11_bn",
            optimizer="sgd", valley=float("nan"), warning="the loss never fell in 3 steps; sgd's default LR 0.01",
        ),
    }  # fmt: skip
    for key, result in results.items():
        (st / "lr_finder" / key).mkdir(parents=True)
        (st / "lr_finder" / key / "result.json").write_text(json.dumps(result))
        curve(st / "lr_finder" / key / "plots/lr_finder.png", result["suggested_lr"])
    # a single `train --lr auto` run, with a result written before picked_by and fallback existed
    run = fake_run(single, RunConfig(model="resnet44", dataset="mnist", lr=0.0042, epochs=2, name="one"),
                   lr_finder=finder_result(0.0042, "valley", 100))  # fmt: skip
    curve(run.plots / "lr_finder.png", 0.0042)

    md, html = (p.read_text() for p in report.build([st, single], tmp_path))
    section = md.split("## LR finder")[1].split("\n## ")[0]
    rows = {line.split(" | ")[1]: line for line in section.splitlines() if line.startswith("| mnist |")}
    assert "| picked LR | rule | fallback |" in section
    assert "| 0.351 | minimum | no |" in rows["resnet20"]
    assert "| 0.01 | default (asked for minimum) | ⚠ fallback: the loss never fell in 3 steps" in rows["vgg11_bn"]
    assert "| 0.0042 | valley | no |" in rows["resnet44"] and "runs/one" in rows["resnet44"]
    captions = re.findall(r"!\[(LR range test[^\]]*)\]", section)
    assert len(captions) == 3
    assert any("vgg11_bn" in c and "⚠ fallback" in c for c in captions)
    html_section = html.split("<h2>LR finder</h2>")[1].split("<h2>")[0]
    assert "<td>0.01</td><td>default (asked for minimum)</td><td>⚠ fallback: the loss never fell" in html_section
    assert "<td>0.351</td><td>minimum</td><td>no</td>" in html_section
    assert html_section.count("data:image/png;base64,") == 3


def test_best_runs_show_per_class_scores_and_their_confidently_wrong_images(tmp_path):
    run = fake_run(tmp_path / "runs", RunConfig(model="resnet20", dataset="mnist", epochs=2, name="one"))
    picture = run.plots / "confidently_wrong.png"
    captions = ["#3: true 0\npredicted 1 (90%)", "#7: true 2\npredicted 1 (80%)"]
    plots.image_grid(np.zeros((2, 1, 8, 8), np.uint8), captions, picture)
    md, html = (p.read_text() for p in report.build([tmp_path / "runs"], tmp_path))
    section = md.split("## Confusion matrices of the best runs")[1].split("\n## ")[0]
    # by hand from fake_run's confusion.csv: precision = diagonal / column sum, recall = diagonal / row sum
    assert "| class | precision | recall | F1 | test images |" in section
    assert "| 0 | 100.00 | 90.00 | 94.74 | 10 |" in section
    assert "| 1 | 76.92 | 100.00 | 86.96 | 10 |" in section
    assert "| 2 | 100.00 | 80.00 | 88.89 | 10 |" in section
    assert re.search(
        r"!\[runs/one: its most confidently wrong test images[^\]]*\]\(runs/one/plots/confidently_wrong", section
    )
    html_section = html.split("<h2>Confusion matrices of the best runs</h2>")[1].split("<h2>")[0]
    assert html_section.count("data:image/png;base64,") == 2  # the confusion matrix and the wrong images
    assert "<td>1</td><td>76.92</td><td>100.00</td><td>86.96</td><td>10</td>" in html_section


# A name that would make Markdown syntax (a table column, HTML, emphasis, a link) and HTML tags if not escaped;
# without a slash, as it names run folders too.
TRICKY = "a|b <b>bold *star* _under_ [x](y) back\\slash"


def unescaped(char: str, text: str) -> list[str]:
    """Each `char` in the Markdown text that no backslash escapes (in `\\\\|`, the backslash is the one escaped),
    with the character after it."""
    return [m[1] for m in re.finditer(rf"\\.|{re.escape(char)}(?=(.?))", text) if not m[0].startswith("\\")]


def test_markdown_text_escapes_what_would_make_syntax_and_leaves_plain_text_as_written():
    assert render.markdown_text("a|b") == "a\\|b"
    assert render.markdown_text("<b>x</b> & &amp;") == "&lt;b>x&lt;/b> & &amp;amp;"
    assert render.markdown_text("*x* _y_ snake_case `c` [l](u) ~s~") == (
        "\\*x\\* \\_y\\_ snake_case \\`c\\` \\[l\\](u) &#126;s&#126;"
    )
    assert render.markdown_text("back\\slash") == "back\\\\slash"
    assert render.markdown_text("two\nlines") == "two<br>lines"  # a table row or paragraph stays whole
    assert render.markdown_text("- not a list") == "\\- not a list"
    assert render.markdown_text("# not a heading") == "\\# not a heading"
    for plain in ("vgg11_bn", "loss < 2.3", "90.50 ± 0.71 (n=2 of 3)", "0.01", "⚠ fallback: lr 1e-3", "mnist-s0"):
        assert render.markdown_text(plain) == plain


def test_run_and_policy_names_cannot_break_the_tables_or_inject_html(tmp_path):
    st, single = tmp_path / "st", tmp_path / "runs"
    grid, planned = plan(st, seeds=1)
    grid.policies = {TRICKY: grid.policies["lr0.01"], "scheduler": grid.policies["scheduler"]}
    grid.axes["policy"] = [TRICKY, "scheduler"]
    planned = study.expand(grid, st, {}, 1)
    study.write_manifest(grid, st, planned)
    for run in planned:
        fake_run(st, run.config)
    finder = finder_result(0.0042, "valley", 100, warning=f"fell\nbadly {TRICKY}", fallback=True)
    fake_run(single, RunConfig(model="resnet44", dataset="mnist", lr=0.0042, epochs=2, name=TRICKY), lr_finder=finder)
    fake_run(single, RunConfig(model="resnet20", dataset="mnist", epochs=2, name=TRICKY + "2"), status="diverged")

    md, html = (p.read_text() for p in report.build([st, single], tmp_path))
    tables = re.findall(r"(?m)^(\|.*\|)\n\|((?:---\|)+)\n((?:\|.*\|\n)*)", md)
    assert len(tables) >= 6
    for header, rule, rows in tables:
        columns = rule.count("|")
        assert len(unescaped("|", header)) == columns + 1, header
        assert all(len(unescaped("|", row)) == columns + 1 for row in rows.splitlines()), rows
    assert TRICKY not in md  # always escaped, wherever it appears
    assert "| a\\|b &lt;b>bold \\*star\\* \\_under\\_ \\[x\\](y) back\\\\slash |" in md  # the policy's column
    assert "runs/a\\|b &lt;b>bold" in md and "fell<br>badly a\\|b" in md
    assert set(unescaped("<", md)) == {"b"}  # no HTML tag but the line breaks (<br>) it writes itself

    assert "<b>" not in html
    assert "<td>runs/a|b &lt;b&gt;bold *star* _under_ [x](y) back\\slash2</td>" in html
    assert f"<th>{TRICKY.replace('<', '&lt;').replace('>', '&gt;')}</th>" in html


def test_a_study_given_fewer_images_than_its_cells_need_says_so(tmp_path):
    """Also where the subset came from the command line, not a budget; and for each of two folders merged."""
    folders = []
    for subset, short in ((256, True), (1024, False)):
        st = tmp_path / f"st-{subset}"
        grid, planned = plan(st, seeds=1, subset=subset)
        grid.about, grid.enough_images = "a check", {"mnist": 1000}
        study.write_manifest(grid, st, planned, {"subset": subset, "data_dir": "/data"})
        for run in planned:
            fake_run(st, run.config)
        md = report.build([st], st)[0].read_text()
        sentence = (
            "Its runs trained on fewer images than its cells need to be clearly above chance (mnist 256 of 1,000)."
        )
        assert (sentence in md) == short and "budget" not in md
        assert "Study g: a check" in md
        assert f"Its runs were started with --subset {subset}, which this description does not include." in md
        folders.append(st)
    md = report.build(folders, tmp_path)[0].read_text()
    assert "Study g (st-256): a check" in md and "Study g (st-1024): a check" in md and sentence in md


def test_another_tools_run_and_study_files_are_listed_and_left_out(tmp_path):
    fake_run(tmp_path, RunConfig(dataset="mnist", epochs=2, name="ours"), acc=91.0)
    other = tmp_path / "notes" / "other"
    other.mkdir(parents=True)
    (other / "config.yaml").write_text("layers: 3\n")
    (other / "summary.json").write_text("{}")
    (tmp_path / "notes" / "study.json").write_text('{"trials": []}')
    md = report.build([tmp_path], tmp_path)[0].read_text()
    assert "91.00 (n=1)" in md
    assert f"| {other / 'config.yaml'} | unknown setting(s) layers" in md
    assert f"| {tmp_path / 'notes' / 'study.json'} | no list of planned runs |" in md


def test_files_are_written_whole_with_the_mode_a_plain_write_would_give(tmp_path):
    # mkstemp's temporary file is private to its owner; a report or a run's files must be readable where the umask
    # lets a plain write make them so
    atomic.write_text(tmp_path / "report.md", "# a report\n")
    (tmp_path / "plain.md").write_text("# a report\n")
    assert (tmp_path / "report.md").stat().st_mode == (tmp_path / "plain.md").stat().st_mode
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_the_temporaries_a_killed_write_left_are_removed_and_nothing_else(tmp_path):
    atomic.write_text(tmp_path / "summary.json", "{}")
    (tmp_path / "checkpoints").mkdir()
    leftovers = [tmp_path / ".summary.json.u7oshshs.tmp", tmp_path / "checkpoints" / ".last.pt.abc.tmp"]
    for leftover in leftovers:
        leftover.write_text("half")
    (tmp_path / "notes.tmp").write_text("the user's")  # not hidden: not ours
    atomic.remove_leftovers(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "checkpoints", "notes.tmp", "summary.json"
    ]  # fmt: skip
