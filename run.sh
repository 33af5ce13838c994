#!/usr/bin/env bash
# Command 1: set up .venv (first time only), then run the main job: the seed study's whole grid on small
# subsets (about 12 minutes on a 2-core CPU with native bf16), and its report. Extra arguments go to `deepernets study`.
source "$(dirname "$0")/scripts/env.sh"
deepernets study seed-quick "$@"
deepernets report runs/seed-quick
echo "report: $ROOT/runs/seed-quick/report.html (and report.md beside it)"
