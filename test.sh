#!/usr/bin/env bash
# Command 2: set up (if needed) and run the lint checks and the test suite.
source "$(dirname "$0")/scripts/env.sh"
ruff check .
ruff format --check .
python -m pytest -q -n auto --dist worksteal "$@"  # one worker per core (tests/conftest.py gives each one
# thread); an idle worker takes tests queued for the other, so that both end together
