# Sourced by run.sh and test.sh: make .venv (once), install deepernets into it, and find the datasets.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi
# Reinstall only when pyproject.toml changed since the last install.
STAMP=.venv/.deepernets-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    echo "installing deepernets and its dependencies into .venv (torch is about 5.5 GB; a minute from a local index)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 \
        | grep -v "^WARNING: Location" || true
    .venv/bin/python -c "import deepernets, torch" && touch "$STAMP"
fi
# Datasets: an explicit DEEPERNETS_DATA wins; otherwise use ../shared/data when it is there.
if [ -z "${DEEPERNETS_DATA:-}" ] && [ -d "$ROOT/../shared/data" ]; then
    export DEEPERNETS_DATA="$(cd "$ROOT/../shared/data" && pwd)"
fi
export PATH="$ROOT/.venv/bin:$PATH"
