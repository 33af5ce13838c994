#!/usr/bin/env bash
# Command 1: set up .venv (first time only), then run the main job: the seed study's comparison reduced to fit a
# 13-minute budget on this machine (2 ResNets × SGD and Adam × 2 LR policies × MNIST and CIFAR-10, one epoch each),
# and its report. Extra arguments go to `deepernets study` (--budget 30m, say).
source "$(dirname "$0")/scripts/env.sh"
deepernets study seed-quick --report "$@"  # runs/seed-quick (runs/seed-quick-b30m with --budget 30m)
