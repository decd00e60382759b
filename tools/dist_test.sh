#!/usr/bin/env bash
# Distributed testing: NCCL on GPUs, gloo on CPU-only machines (chosen by tools/test.py).
#   bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [extra tools/test.py args]
CONFIG=$1
CKPT=$2
shift 1
NPROC=$2
PORT=${PORT:-29500}
shift 2
PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
torchrun --nnodes=1 --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$(dirname "$0")/test.py" "$CONFIG" "$CKPT" --launcher pytorch "$@"
