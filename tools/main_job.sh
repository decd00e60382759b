#!/usr/bin/env bash
# The main job on its embedded default: CamVid distillation on this machine's CPU.
#
#   1. teacher: TEACHER_CFG + TEACHER_CKPT (default: the shared BiSeNetV2 CamVid teacher in
#      ../shared/teachers); when no checkpoint exists there, a BiSeNetV2 teacher is trained first
#      with `mim train mmseg configs/baselines/bisenetv2_1xb8-1800_camvid-240x320.py` (TEACHER_ITERS).
#   2. student baseline: the project's Fast-SCNN, trained alone;
#   3. distilled student: the same Fast-SCNN with channel-wise distillation (CWD) on the logits
#      (configs/distill/seg/cwd/...), same budget (ITERS iterations, batch 8, 240x320 crops);
#   4. `mim test mmseg` of both students on the CamVid test split; prints their mIoU side by side.
#
#   ITERS=600 WORK_DIR=work_dirs/main_job bash tools/main_job.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-600}
WORK_DIR=${WORK_DIR:-work_dirs/main_job}
TEACHER_CFG=${TEACHER_CFG:-../shared/teachers/bisenetv2_camvid-240x320_infer.py}
TEACHER_CKPT=${TEACHER_CKPT:-../shared/teachers/bisenetv2_camvid-240x320.pth}
TEACHER_ITERS=${TEACHER_ITERS:-1800}
STUDENT=${STUDENT:-configs/fast_scnn/fast-scnn_1xb8-2k_camvid-360x480.py}
DISTILL=${DISTILL:-configs/distill/seg/cwd/cwd_logits_bisenetv2_fast-scnn_1xb8-2k_camvid-360x480.py}
mkdir -p "$WORK_DIR"

if [ ! -f "$TEACHER_CKPT" ]; then
  echo "[main_job] no teacher checkpoint at $TEACHER_CKPT: training a BiSeNetV2 teacher ($TEACHER_ITERS iters)"
  TEACHER_CFG=configs/baselines/bisenetv2_1xb8-1800_camvid-240x320.py
  w=$(( TEACHER_ITERS / 18 < 100 ? TEACHER_ITERS / 18 : 100 ))
  mim train mmseg "$TEACHER_CFG" --work-dir "$WORK_DIR/teacher" --cfg-options \
    train_cfg.max_iters="$TEACHER_ITERS" train_cfg.val_interval="$TEACHER_ITERS" \
    default_hooks.checkpoint.interval="$TEACHER_ITERS" param_scheduler.0.end="$w" \
    param_scheduler.1.begin="$w" param_scheduler.1.end="$TEACHER_ITERS"
  TEACHER_CKPT="$WORK_DIR/teacher/iter_${TEACHER_ITERS}.pth"
fi
echo "[main_job] teacher: $TEACHER_CFG  $TEACHER_CKPT"

python tools/benchmarks/camvid_learning.py --iters "$ITERS" --crop 240 320 --batch 8 \
  --work-dir "$WORK_DIR" --skip-existing --names baseline cwd \
  --teacher-config "$TEACHER_CFG" --teacher-ckpt "$TEACHER_CKPT" "$STUDENT" "$DISTILL"

for run in baseline cwd; do
  echo "[main_job] mim test mmseg: $run student on the CamVid test split"
  mim test mmseg "$WORK_DIR/$run/bench_config.py" --checkpoint "$WORK_DIR/$run/iter_${ITERS}.pth" \
    --work-dir "$WORK_DIR/$run/test" > "$WORK_DIR/$run/test.log" 2>&1 \
    || { tail -20 "$WORK_DIR/$run/test.log"; exit 1; }
done
python - "$WORK_DIR" <<'PY'
# mim test's metrics as mmengine writes them (<work_dir>/<timestamp>/<timestamp>.json), read by
# the same function as the benchmarks and the report; no log is grepped
import sys
from rtkd.visualization.run_logs import read_test_metrics
wd = sys.argv[1]
res = {}
for run in ('baseline', 'cwd'):
    m = read_test_metrics(f'{wd}/{run}/test')
    if m is None:
        sys.exit(f'[main_job] no metrics file under {wd}/{run}/test/ (see {wd}/{run}/test.log)')
    res[run] = float(m['mIoU'])
print(f"[main_job] CamVid test mIoU - Fast-SCNN baseline: {res['baseline']:.2f}  "
      f"Fast-SCNN + CWD from the teacher: {res['cwd']:.2f}  "
      f"(difference {res['cwd'] - res['baseline']:+.2f})")
PY
