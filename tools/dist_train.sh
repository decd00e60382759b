#!/usr/bin/env bash
# Distributed training: NCCL on GPUs, gloo on CPU-only machines (chosen by tools/train.py).
#   bash tools/dist_train.sh CONFIG NUM_PROCS [extra tools/train.py args]
CONFIG=$1
NPROC=$2
PORT=${PORT:-29500}
shift 2
PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
torchrun --nnodes=1 --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "$@"
