"""The `deepernets` command: train, evaluate, export, lr-find, predict, models, data (and study, report, bench)."""

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from deepernets import data, models, settings, study
from deepernets.config import LRFinderSettings, ModelOptions, RunConfig, dataset_slug
from deepernets.errors import UserError
from deepernets.run.folder import RunDir
from deepernets.train.cpu_speed import keep_freed_memory_mapped


class Parser(argparse.ArgumentParser):
    """Usage mistakes are one line and exit code 2, like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a {kind.__name__}, got '{text}'") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """A flag for every run setting and model option; only the flags given override --config and --preset."""
    p.add_argument("--config", help="YAML file of settings (a run's config.yaml reproduces that run)")
    p.add_argument(
        "--preset",
        help=f"named settings applied over --config, under the flags ({', '.join(study.run_preset_names())})",
    )
    known = {"model": models.names(), "dataset": data.names()}
    settings.add_flags(p, RunConfig, known=known)
    settings.add_flags(p.add_argument_group("model options (each for some models only)"), ModelOptions)


def run_config(args: argparse.Namespace) -> RunConfig:
    """The run's settings: --config, then --preset over it, then the flags given. `--config RUN/config.yaml
    --resume` resumes RUN, from whichever directory (its config.yaml names runs_dir as it was typed)."""
    files = [args.config] if args.config else []
    files += [study.run_preset_path(args.preset)] if args.preset else []
    flags = settings.given(args, RunConfig)
    run = Path(args.config).resolve().parent if args.config else None
    if getattr(args, "resume", False) and run is not None and RunDir(run).summary_path.exists():
        flags = {"runs_dir": str(run.parent), "name": run.name, **flags}
    return RunConfig.from_sources(files, flags, settings.given(args, ModelOptions))


def cmd_train(args: argparse.Namespace) -> int:
    config = run_config(args)  # before the training code's imports, so that a bad setting is reported at once
    from deepernets.train.fit import train

    summary = train(config, resume=args.resume)
    return 0 if summary.get("status") in ("finished", None) else 3


def cmd_evaluate(args: argparse.Namespace) -> int:
    from deepernets.infer import predict

    loaded = predict.load_run(args.run_dir, args.device)
    note(loaded.note)
    result, confusion = predict.evaluate_run(loaded, flip_tta=args.tta == "flip")
    print("\n".join(predict.evaluation_lines(loaded, result, confusion, args.top)))
    return 0


def note(text: str | None) -> None:
    if text:
        print(f"deepernets: note: {text}", file=sys.stderr)


def cmd_export(args: argparse.Namespace) -> int:
    from deepernets.infer import export, predict

    try:
        result = export.export_run(args.run_dir, args.format, args.out, args.force)
    except export.ExportMismatch as e:
        print(f"deepernets: export failed: {e}", file=sys.stderr)
        return 1
    note(predict.unfinished(args.run_dir, result.recorded))
    print(f"wrote {result.path}")
    print(f"input: {result.input}")
    print(
        f"checked on {result.images} test images: top-1 agrees with the run's model (its checkpoint in PyTorch, fp32) "
        f"on {result.agreement:.2f}% (needed {export.REQUIRED_AGREEMENT}%)"
    )
    recorded = result.recorded.get("final_test_acc")
    print(
        f"the file's test accuracy {result.accuracy:.2f}%"
        + (f"; the run recorded {recorded:.2f}% ({result.recorded.get('precision')})" if recorded is not None else "")
    )
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from deepernets.train.lr_finder_run import find_lr
    from deepernets.train.setup import build_local_parts

    config = run_config(args)
    parts, precision = build_local_parts(config)
    name = config.name or f"lr-find-{config.model}-{dataset_slug(config.dataset)}"
    out = Path(args.out or Path(config.runs_dir) / name)
    result = find_lr(parts.model, config, parts.train_batches, precision, out, print,
                     start=args.start_lr, end=args.end_lr, steps=args.steps)  # fmt: skip
    print(
        f"suggested LR {result['suggested_lr']:.3g}; wrote {out / 'lr_finder.csv'}, {out / 'plots' / 'lr_finder.png'}"
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from deepernets.infer import predict

    loaded = predict.load_run(args.run_dir, args.device)
    note(loaded.note)
    for path, top in zip(args.images, predict.predict(loaded, args.images, args.top), strict=True):
        print(f"{path}: " + ", ".join(f"{name} {p:.1%}" for name, p in top))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    print(f"{'model':<10} {'parameters':>12} {'GFLOPs/image':>13}  options")
    for name in models.names(args.pattern):
        params = models.count_parameters(models.build(name, 3, 10))
        flops = models.flops_per_image(name, 3, 10, 32)
        print(f"{name:<10} {params:>12,} {flops / 1e9:>13.3f}  {', '.join(models.options(name))}")
    print("(3 input channels, 10 classes, 32×32 input; FLOPs count 2 per multiply-add)")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from deepernets.data import sources

    print("looking in: " + ", ".join(str(r) for r in sources.roots(args.data_dir)))
    for name in sources.LAYOUTS:
        found = sources.find(name, args.data_dir)
        if found is None:
            print(f"{name:<14} not found")
            continue
        try:
            (train_x, _, test_x, _, _), verified = sources.load_arrays(name, found, verify=True)
        except UserError as e:
            print(f"{name:<14} {found.folder}  FAILED: {e}")
            continue
        check = {True: "MD5 ok", None: "no official MD5 known"}[verified]
        print(f"{name:<14} {found.folder}  {len(train_x)} train / {len(test_x)} test, {check}")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    in_file = study.load_grid(args.grid)
    grid = dataclasses.replace(in_file, **settings.given(args, study.Grid, ("budget", "jobs")))
    overrides = settings.given(args, RunConfig, study.OVERRIDES)
    study_dir = Path(args.runs_dir) if args.runs_dir else study.default_folder(grid, overrides, in_file.budget)
    shard = study.parse_shard(args.shard)
    if args.dry_run:
        study.dry_run(grid, study_dir, overrides, args.seeds, shard)
        return 0
    if grid.jobs > 1:
        failed = study.run_jobs(grid, study_dir, overrides, seeds=args.seeds, shard=shard)
    else:
        failed = study.run_study(grid, study_dir, overrides, seeds=args.seeds, shard=shard)["failed"] > 0
    if args.report:
        write_report([study_dir], study_dir)
    else:
        print(f"next: deepernets report {study_dir}")
    if failed:  # the report lists them; running the study again tries them again
        print(f"deepernets: some runs failed: see {study_dir / 'failures.json'}", file=sys.stderr)
    return 3 if failed else 0


def cmd_bench(args: argparse.Namespace) -> int:
    from deepernets import bench
    from deepernets.run import atomic

    result = bench.throughput(args.models, args.batch_size, args.steps, args.repeats, args.device,
                              variants=tuple(args.variants), classic_workers=tuple(args.classic_workers))  # fmt: skip
    if args.out:
        atomic.write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    folders = [Path(f) for f in args.runs_dirs]
    return write_report(folders, Path(args.out) if args.out else folders[0])


def write_report(folders: list[Path], out: Path) -> int:
    from deepernets import report

    md, html = report.build(folders, out)
    print(f"wrote {md} and {html}")
    return 0


def build_parser() -> Parser:
    parser = Parser(prog="deepernets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("train", help="train one model on one dataset")
    add_run_flags(p)
    p.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser(
        "evaluate", help="test accuracy, per-class precision/recall/F1, confusion matrix, confidently wrong images"
    )
    p.add_argument("run_dir")
    p.add_argument("--top", type=positive(int), default=5, help="how many most-confused pairs to show")
    settings.add_flags(p, RunConfig, ("device", "tta"), overrides=False)
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("export", help="the run's model as an ONNX or TorchScript file, checked on its test set")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=["onnx", "torchscript"], required=True)
    p.add_argument("--out", help="the file to write (default RUN/model.onnx or RUN/model.torchscript.pt)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("lr-find", help="LR range test: suggest a learning rate")
    add_run_flags(p)
    settings.add_flags(p, LRFinderSettings, overrides=False)
    # results go to --runs-dir/--name; --out, the old way to name that folder itself, still works unlisted
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_lr_find)

    p = sub.add_parser("predict", help="top-3 classes of image files with a trained run")
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+")
    p.add_argument("--top", type=positive(int), default=3)
    settings.add_flags(p, RunConfig, ("device",), overrides=False)
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser("study", help="run a grid of runs (a preset or a grid YAML file), restartably")
    p.add_argument("grid", help=f"a preset ({', '.join(study.grid_names())}) or a grid YAML file")
    settings.add_flags(p, study.Grid, ("seeds", "budget", "jobs"), show_defaults=False)
    p.add_argument("--shard", default="0/1", help="i/n: run every n-th run starting at i (split across workers)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and estimate their time here")
    p.add_argument("--report", action="store_true", help="when the runs end, write the study folder's report")
    p.add_argument("--runs-dir", help="the study folder, where its runs go (default runs/GRID-NAME[-bBUDGET])")
    p.add_argument("--out", dest="runs_dir", help=argparse.SUPPRESS)  # the old name of --runs-dir
    overrides = p.add_argument_group("run settings over the grid's (--epochs, --subset, --test-subset: quick versions)")
    settings.add_flags(overrides, RunConfig, study.OVERRIDES, show_defaults=False)
    p.set_defaults(handler=cmd_study)

    p = sub.add_parser("report", help="report.md and report.html from run folders (a study's, or several)")
    p.add_argument("runs_dirs", nargs="+", help="folders holding run directories; several are merged")
    p.add_argument("--out", help="where to write the report (default: the first folder)")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("bench", help="training images/s: our path against the classic PIL pipeline, and GEMM")
    p.add_argument("--models", nargs="+", default=["resnet20", "vgg16_bn"], help="default: those the targets name")
    settings.add_flags(p, RunConfig, ("batch_size", "device"), overrides=False)
    p.add_argument("--steps", type=positive(int), default=6, help="timed steps per measurement, after warm-up")
    p.add_argument("--repeats", type=positive(int), default=2, help="A B A B alternations; medians reported")
    p.add_argument("--variants", nargs="+", default=["eager"], help="eager, compile, cuda-graphs (CUDA only)")
    p.add_argument("--classic-workers", nargs="+", type=int, default=[2],
                   help="classic pipeline DataLoader workers (CIFAR scripts use 2); the fastest counts")  # fmt: skip
    p.add_argument("--out", help="write the results as JSON here")
    p.set_defaults(handler=cmd_bench)

    p = sub.add_parser("models", help="list models with parameter counts and FLOPs")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")
    p.set_defaults(handler=cmd_models)

    p = sub.add_parser("data", help="where each dataset was found and whether its checksums pass")
    settings.add_flags(p, RunConfig, ("data_dir",), overrides=False)
    p.set_defaults(handler=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory_mapped()
    try:
        return args.handler(args)
    except UserError as e:
        print(f"deepernets: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:  # a folder that cannot be written, a full disk: the environment's problem, not a bug
        print(f"deepernets: error: {' '.join(str(e).split())}; check the path and its permissions", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        after = {"train": "; finished epochs are saved, continue with --resume",
                 "study": "; finished epochs are saved, run the same command again to continue"}  # fmt: skip
        print(f"deepernets: interrupted{after.get(args.command, '')}", file=sys.stderr)
        return 130
