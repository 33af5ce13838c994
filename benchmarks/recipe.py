"""Final-epoch test accuracy of a recipe (a run preset with its epochs fixed in advance), mean ± std over seeds.

Each seed is a whole run timed end to end by time_to_accuracy.py; no epoch is picked by the test set. "met" is
null until 3 seeds are in the file: a target is a mean of 3.

    python benchmarks/recipe.py mnist resnet20               # the mnist preset, 15 epochs, seeds 0 1 2
    python benchmarks/recipe.py cifar10 resnet20 --seeds 1 --keep   # another seed beside those already in the file
"""

import argparse
import json
import statistics
from typing import Any

from time_to_accuracy import RESULTS, time_to_accuracy

from deepernets import study
from deepernets.config import RunConfig
from deepernets.run import atomic
from deepernets.train.device import device_description, resolve_device

# preset: the target % of the final epoch's mean per model (the dataset and the epochs are the preset's own)
TARGETS = {
    "mnist": {"resnet20": 99.65},
    "cifar10": {"resnet20": 92.0, "resnet44": 93.0, "vgg13_bn": 94.0, "vgg16_bn": 94.0},
}
SEEDS_FOR_A_VERDICT = 3  # a target is a mean of 3 seeds: fewer give a figure but no "met"


def recipe(
    preset: str, model: str, seeds: list[int], device: str = "auto", earlier: list[dict] | None = None
) -> dict[str, Any]:
    """Run the seeds; `earlier` are runs of other seeds already measured with the same recipe on the same device."""
    targets = TARGETS[preset]
    settings = RunConfig.from_sources([study.run_preset_path(preset)], {}, {})
    dataset, epochs = settings.dataset, settings.epochs
    runs = list(earlier or [])
    for seed in seeds:
        run = time_to_accuracy(model, dataset, targets[model], epochs, device, ("--seed", str(seed)), preset)
        runs.append({"seed": seed, **{k: run[k] for k in ("final_test_acc", "wall_time_s", "test_acc_per_epoch")}})
        print(f"seed {seed}: final {run['final_test_acc']:.2f}% in {run['wall_time_s']:.0f} s", flush=True)
    runs.sort(key=lambda r: r["seed"])
    finals = [r["final_test_acc"] for r in runs]
    mean = statistics.mean(finals)
    return {
        "benchmark": "recipe",
        "device": run["device"],
        "versions": run["versions"],
        "settings": {
            **{k: v for k, v in run["settings"].items() if k != "extra_args"},
            "seeds": [r["seed"] for r in runs],
        },
        "final_test_acc_mean": round(mean, 3),
        "final_test_acc_std": round(statistics.stdev(finals), 3) if len(finals) > 1 else None,
        "target": targets[model],
        "met": mean >= targets[model] if len(finals) >= SEEDS_FOR_A_VERDICT else None,
        "runs": runs,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("preset", choices=sorted(TARGETS))
    parser.add_argument("model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--keep", action="store_true", help="keep the other seeds already in the result file")
    args = parser.parse_args()
    device = resolve_device(args.device)
    out = RESULTS / f"recipe-{args.preset}-{args.model}-{device.type}.json"
    kept = json.loads(out.read_text()) if args.keep and out.exists() else {"runs": [], "device": None}
    if kept["device"] not in (None, device_description(device)):
        parser.error(f"{out} was measured on {kept['device']}, not {device_description(device)}: seeds of two "
                     "devices do not make one mean")  # fmt: skip
    earlier = [r for r in kept["runs"] if r["seed"] not in args.seeds]
    result = recipe(args.preset, args.model, args.seeds, args.device, earlier)
    atomic.write_json(out, result)
    mean, std, seeds = result["final_test_acc_mean"], result["final_test_acc_std"], result["settings"]["seeds"]
    spread = f" ± {std}" if std is not None else ""
    print(f"{args.model}, {args.preset} recipe: {mean:.2f}{spread}% over seeds {seeds}")
    print(f"wrote {out}")
