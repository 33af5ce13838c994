#!/usr/bin/env bash
# The datasets for a GPU sitting (README: "GPU sitting"). A device call carries at most 64 MiB, so MNIST and
# CIFAR-10 (150 MB) travel in three calls, into gpu-data/ (ignored by git), which stays on the machine between
# calls while it is warm.
#
#   bash benchmarks/gpu/data.sh stage   # here: copy them into gpu-data/ and print each call's carry list
#   bash benchmarks/gpu/data.sh check   # there: which files have arrived intact (exit 1 while any is missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
CIFAR=cifar10/cifar-10-batches-bin
# MD5 of the files as they are stored in shared/data (.gz and .xz wrappers; the loader checks the contents too)
FILES="
mnist/train-images-idx3-ubyte.gz c7dfcf1bfd3481a40f7b3aedbdbd083c 1
mnist/train-labels-idx1-ubyte.gz d289298a347a2cc65765a3c81043ba88 1
mnist/t10k-images-idx3-ubyte.gz ecff87aa27c74fbc2c1f97e89c19221d 1
mnist/t10k-labels-idx1-ubyte.gz a38049bc042dc6e683842a84160daae1 1
$CIFAR/data_batch_1.bin.xz 8bae2d50e47eac269440558eb09edb3c 1
$CIFAR/data_batch_2.bin.xz 80ea49d8f1b7ca22d668bb2a2802f398 1
$CIFAR/data_batch_3.bin.xz 86d22d09dd7011e8d4756c32c6393c8a 2
$CIFAR/data_batch_4.bin.xz ca5fe74e1ed7f147e7e839f681b64e31 2
$CIFAR/data_batch_5.bin.xz 0f1917988fc52d28a180d679817bd0ec 3
$CIFAR/test_batch.bin.xz 9147fb1582bfd2b684a7243525e384e5 3
$CIFAR/batches.meta.txt - 3
"

case "${1:-}" in
stage)
    source_root="${DEEPERNETS_DATA:-../shared/data}"
    echo "$FILES" | while read -r path _ _; do
        [ -n "$path" ] || continue
        mkdir -p "gpu-data/$(dirname "$path")"
        cp -p "$source_root/$path" "gpu-data/$path"
    done
    for call in 1 2 3; do
        list=$(echo "$FILES" | awk -v c="$call" '$3 == c {printf "%s\"gpu-data/%s\"", (n++ ? ", " : ""), $1}')
        bytes=$(echo "$FILES" | awk -v c="$call" '$3 == c {print "gpu-data/" $1}' | xargs du -cb | tail -1 | cut -f1)
        echo "call $call carries $((bytes / 1048576)) MiB: [$list]"
    done
    ;;
check)
    missing=0
    while read -r path md5 _; do
        [ -n "$path" ] || continue
        if [ ! -f "gpu-data/$path" ]; then
            echo "missing  gpu-data/$path"
            missing=$((missing + 1))
        elif [ "$md5" != "-" ] && [ "$(md5sum "gpu-data/$path" | cut -d' ' -f1)" != "$md5" ]; then
            echo "damaged  gpu-data/$path (MD5 differs)"
            missing=$((missing + 1))
        fi
    done <<<"$FILES"
    if [ "$missing" -eq 0 ]; then
        echo "gpu-data: MNIST and CIFAR-10 complete"
    else
        echo "gpu-data: $missing file(s) missing or damaged"
        exit 1
    fi
    ;;
*)
    echo "usage: bash benchmarks/gpu/data.sh stage|check" >&2
    exit 2
    ;;
esac
