"""The GPU sitting (sitting.py, the driver) and its parts: the plan, the steps, their processes, archive and table."""

from pathlib import Path

# the checkout the sitting runs from: every child starts here, with its src/ on PYTHONPATH
REPO = Path(__file__).resolve().parents[2]
