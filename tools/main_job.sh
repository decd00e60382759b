#!/usr/bin/env bash
# The main job on its embedded default: a short `mim train mmseg` of mmseg's stock Fast-SCNN on CamVid
# (../shared/data/camvid or data/camvid), then `mim test mmseg` on the CamVid test split, printing mIoU.
#   ITERS=300 WORK_DIR=work_dirs/main bash tools/main_job.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CFG=${CFG:-configs/baselines/mmseg-fast-scnn_2k_camvid-360x480.py}
ITERS=${ITERS:-300}
WORK_DIR=${WORK_DIR:-work_dirs/main_job}
echo "[main_job] training $CFG for $ITERS iterations -> $WORK_DIR"
mim train mmseg "$CFG" --work-dir "$WORK_DIR" --cfg-options \
  train_cfg.max_iters="$ITERS" train_cfg.val_interval="$ITERS" \
  default_hooks.checkpoint.interval="$ITERS" param_scheduler.1.end="$ITERS"
CKPT="$WORK_DIR/iter_${ITERS}.pth"
echo "[main_job] testing $CKPT on the CamVid test split"
mim test mmseg "$CFG" --checkpoint "$CKPT" --work-dir "$WORK_DIR/test" 2>&1 | tee "$WORK_DIR/test.log"
python - "$WORK_DIR/test.log" <<'PY'
import re, sys
txt = open(sys.argv[1]).read()
m = re.findall(r"mIoU: ([0-9.]+)", txt)
if not m:
    sys.exit('[main_job] no mIoU found in the test log')
print(f'[main_job] CamVid test mIoU: {m[-1]}')
PY
