"""Final-epoch test accuracy of a recipe (a run preset with its epochs fixed in advance), mean ± std over seeds.

Each seed is a whole run timed end to end by time_to_accuracy.py; no epoch is picked by the test set.

    python benchmarks/recipe.py mnist resnet20               # the mnist preset, 15 epochs, seeds 0 1 2
"""

import argparse
import statistics
from typing import Any

from time_to_accuracy import RESULTS, time_to_accuracy

from deepernets.run import atomic

# preset: (dataset, epochs fixed in advance, target % of the final epoch's mean per model)
RECIPES = {"mnist": ("mnist", 15, {"resnet20": 99.65})}


def recipe(preset: str, model: str, seeds: list[int], device: str = "auto") -> dict[str, Any]:
    dataset, epochs, targets = RECIPES[preset]
    runs = []
    for seed in seeds:
        run = time_to_accuracy(model, dataset, targets[model], epochs, device, ("--seed", str(seed)), preset)
        runs.append({"seed": seed, **{k: run[k] for k in ("final_test_acc", "wall_time_s", "test_acc_per_epoch")}})
        print(f"seed {seed}: final {run['final_test_acc']:.2f}% in {run['wall_time_s']:.0f} s", flush=True)
    finals = [r["final_test_acc"] for r in runs]
    mean = statistics.mean(finals)
    return {
        "benchmark": "recipe",
        "device": run["device"],
        "versions": run["versions"],
        "settings": {**{k: v for k, v in run["settings"].items() if k != "extra_args"}, "seeds": seeds},
        "final_test_acc_mean": round(mean, 3),
        "final_test_acc_std": round(statistics.stdev(finals), 3) if len(finals) > 1 else None,
        "target": targets[model],
        "met": mean >= targets[model],
        "runs": runs,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("preset", choices=sorted(RECIPES))
    parser.add_argument("model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    result = recipe(args.preset, args.model, args.seeds, args.device)
    device_kind = "cpu" if "CPU" in result["device"] else "cuda"
    out = RESULTS / f"recipe-{args.preset}-{args.model}-{device_kind}.json"
    atomic.write_json(out, result)
    std = result["final_test_acc_std"]
    print(f"{args.model}, {args.preset} recipe: {result['final_test_acc_mean']:.2f} ± {std}% over seeds {args.seeds}")
    print(f"wrote {out}")
