"""Checkpoints as plain data (tensors, numbers, strings, lists, dicts), read back with weights_only=True."""

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from deepernets.errors import UserError
from deepernets.run.atomic import write_atomic

FORMAT = "deepernets-checkpoint-1"
FIX = "delete it and train the run again"


def save(path: Path, state: dict[str, Any]) -> None:
    write_atomic(path, lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint without running any pickled code; a damaged or foreign file is a UserError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about a foreign file's pickle protocol before refusing it
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} does not exist: train the run first") from None
    except pickle.UnpicklingError as e:
        # weights_only refused what the file holds. torch's own message spans lines and advises loading the file
        # with weights_only=False, which would run whatever it holds: say what happened and the safe fix instead.
        refused = re.search(r"GLOBAL (\S+) was not an allowed global", str(e))
        what = f" ({refused.group(1)})" if refused else ""
        raise UserError(
            f"cannot read checkpoint {path}: it holds Python objects{what} beyond the plain data deepernets saves, "
            f"and loading them could run code, so it was not loaded; it is damaged, altered or not a deepernets "
            f"checkpoint: {FIX}"
        ) from None
    except Exception as e:  # torch raises many types for a bad file; all mean "not a usable checkpoint"
        raise UserError(
            f"cannot read checkpoint {path} ({_first_line(e)}); it is damaged or not a deepernets checkpoint: {FIX}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a deepernets checkpoint ({FORMAT}): {FIX}")
    return state


def restore(path: Path, state: dict[str, Any], **targets: Any) -> None:
    """`target.load_state_dict(state[name])` for each keyword, e.g. model=model; a checkpoint that does not fit
    (another model's weights, a missing entry) is a UserError naming the file, not torch's multi-line listing."""
    try:
        for name, target in targets.items():
            target.load_state_dict(state[name])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UserError(
            f"checkpoint {path} does not fit this run's {name} ({_first_line(e)}); it belongs to another run or "
            f"was altered: {FIX}"
        ) from None


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
