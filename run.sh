#!/usr/bin/env bash
# Command 1: set up .venv (first time only), then run the main job.
source "$(dirname "$0")/scripts/env.sh"
deepernets train --model resnet20 --dataset mnist --epochs 2 --subset 20000 --name main-mnist-resnet20 "$@"
