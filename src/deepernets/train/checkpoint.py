"""Checkpoints as plain data (tensors, numbers, strings, lists, dicts), read back with weights_only=True."""

from pathlib import Path
from typing import Any

import torch

from deepernets.atomic import write_atomic
from deepernets.errors import UserError

FORMAT = "deepernets-checkpoint-1"


def save(path: Path, state: dict[str, Any]) -> None:
    write_atomic(path, lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint without running any pickled code; a damaged or foreign file is a UserError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} does not exist: train the run first") from None
    except Exception as e:  # torch raises many types for a bad file; all mean "not a usable checkpoint"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"cannot read checkpoint {path} ({reason}); it is damaged or not a deepernets checkpoint: "
            "delete it to start the run again"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a deepernets checkpoint ({FORMAT}); delete it to start the run again")
    return state
