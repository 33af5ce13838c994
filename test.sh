#!/usr/bin/env bash
# Command 2: set up (if needed) and run the lint checks and the test suite.
source "$(dirname "$0")/scripts/env.sh"
ruff check .
ruff format --check .
python -m pytest -q -n auto "$@"  # one worker per core (tests/conftest.py gives each one thread)
