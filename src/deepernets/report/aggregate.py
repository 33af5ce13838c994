"""Runs grouped into cells (the seeds of one experiment), each cell's final accuracy as mean ± std with n of
planned, the axes in the grid's order, and the best policy per model."""

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

from deepernets.report.collect import CellKey, Collection, Planned, Run
from deepernets.run.folder import DONE


def mean_std(values: list[float], diverged: int = 0, planned: int = 0, unfinished: int = 0, started: int = 0) -> str:
    """mean ± std (n) of final accuracies; diverged runs are counted beside n, not averaged in.

    When a study planned more runs for the cell than finished, n says of how many, and the planned runs that are
    running, failed or missing are counted as unfinished, so a mean over fewer seeds never passes for the whole cell.
    A cell without results whose runs have not started is "not run yet"; one with some started (running, or
    failed after its folder was written), "no result yet".
    """
    n = f"n={len(values)}" + (f" of {planned}" if planned > len(values) else "")
    notes = (f", {diverged} diverged" if diverged else "") + (f", {unfinished} unfinished" if unfinished else "")
    if not values:
        if not notes:
            return "—"
        if not diverged:  # every planned run is still to come (missing, running or failed)
            return f"{'no result' if started else 'not run'} yet ({n})"
        return f"{'diverged' if not unfinished else '—'} ({n}{notes})"
    if len(values) == 1:
        return f"{values[0]:.2f} ({n}{notes})"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} ({n}{notes})"


@dataclass
class Best:
    """A model's best optimizer and policy in one variant: by mean final accuracy, and its best seed."""

    key: CellKey
    optimizer: str
    policy: str
    run: Run


@dataclass
class Cells:
    runs: dict[CellKey, list[Run]]
    planned: Counter[CellKey]  # the runs a study planned for the cell
    unfinished: Counter[CellKey]  # planned runs that are running, failed or missing
    # the values of each axis that the cells hold, in the grid's order where a study planned them
    variants: list[str]
    datasets: list[str]
    models: list[str]
    optimizers: list[str]
    policies: list[str]

    def finals(self, key: CellKey) -> list[float]:
        return [r.final for r in self.runs.get(key, []) if r.final is not None]

    def diverged(self, key: CellKey) -> int:
        return sum(r.status == "diverged" for r in self.runs.get(key, []))

    def summary(self, key: CellKey) -> str:
        """The cell as a table shows it: mean ± std (n of planned, diverged, unfinished), or a dash."""
        started = sum(r.status not in DONE for r in self.runs.get(key, []))
        return mean_std(self.finals(key), self.diverged(key), self.planned[key], self.unfinished[key], started)

    def best(self, dataset: str, model: str, variant: str) -> Best | None:
        """The cell of the highest mean among those where no seed diverged (where there are such cells): the mean of
        the one seed that survived is no result for a policy whose other seeds diverged."""
        options = [
            (not self.diverged(key), statistics.mean(finals), key)
            for optimizer in self.optimizers
            for policy in self.policies
            if (finals := self.finals(key := (dataset, model, optimizer, policy, variant)))
        ]
        if not options:
            return None
        *_, key = max(options)
        seeds = [r for r in self.runs[key] if r.final is not None]
        return Best(key, key[2], key[3], max(seeds, key=lambda r: r.final))


def group(collection: Collection) -> Cells:
    """The cells of the runs found, and of the runs planned but not found (which count as unfinished)."""
    runs: dict[CellKey, list[Run]] = defaultdict(list)
    for run in collection.runs:
        runs[run.cell_key].append(run)
    planned: Counter[CellKey] = Counter()
    unfinished: Counter[CellKey] = Counter()
    for p in collection.planned:
        run = collection.by_dir.get(p.dir)
        key = run.cell_key if run else p.cell_key  # a run that exists is filed by what it trained
        if key is None:  # not started, in a study.json that did not record settings: listed as missing only
            continue
        planned[key] += 1
        unfinished[key] += run is None or run.status not in DONE
    keys = list(runs) + list(planned)
    return Cells(
        runs=runs,
        planned=planned,
        unfinished=unfinished,
        variants=list(dict.fromkeys(k[4] for k in keys)),
        datasets=_in_order([k[0] for k in keys], "dataset", collection.planned),
        models=_in_order([k[1] for k in keys], "model", collection.planned),
        optimizers=_in_order([k[2] for k in keys], "optimizer", collection.planned),
        policies=_in_order([k[3] for k in keys], "policy", collection.planned),
    )


def _in_order(values: list[str], axis: str, planned: list[Planned]) -> list[str]:
    """The values present in the cells, in the grid's order where a study planned them."""
    present = set(values)
    return [v for v in dict.fromkeys([p.cell.get(axis) for p in planned] + values) if v in present]
