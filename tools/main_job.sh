#!/usr/bin/env bash
# The main job on its embedded default: CamVid distillation on this machine's CPU, with the recipe
# of the converged benchmark (README, "Converged CamVid benchmark") at a budget that fits ~40 min.
#
#   1. student baseline: the project's Fast-SCNN (configs/fast_scnn/fast-scnn_1xb8-6k_*: its
#      paper optimizer, 240x320 crops, batch 8), trained alone for ITERS iterations;
#   2. distilled student: the same Fast-SCNN with channel-wise distillation (CWD, tau 4, weight 3)
#      on the logits from the ft7000 BiSeNetV2 teacher (val 65.62 / test 55.42; its weights ship
#      in checkpoints/teachers/), live teacher, same budget;
#   3. `mim test mmseg` of both students on the CamVid test split; prints their mIoU side by side,
#      then the converged (6000-iteration) results archived in docs/results/camvid_converged.
#
#   ITERS=800 WORK_DIR=work_dirs/main_job bash tools/main_job.sh
#   TEACHER_CFG=... TEACHER_CKPT=... STUDENT=... DISTILL=<recipe> bash tools/main_job.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-800}
WORK_DIR=${WORK_DIR:-work_dirs/main_job}
STUDENT=${STUDENT:-configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py}
DISTILL=${DISTILL:-configs/distill/seg/cwd/cwd_logits_bisenetv2-ft7000_fast-scnn_1xb8-6k_camvid-240x320.py}
TEACHER_CFG=${TEACHER_CFG:-}
TEACHER_CKPT=${TEACHER_CKPT:-}
mkdir -p "$WORK_DIR"

teacher_args=()
[ -n "$TEACHER_CFG" ] && teacher_args+=(--teacher-config "$TEACHER_CFG")
if [ -n "$TEACHER_CKPT" ]; then
  [ -f "$TEACHER_CKPT" ] || { echo "[main_job] TEACHER_CKPT=$TEACHER_CKPT does not exist" >&2; exit 1; }
  teacher_args+=(--teacher-ckpt "$TEACHER_CKPT")
fi
echo "[main_job] baseline: $STUDENT"
echo "[main_job] distilled: $DISTILL ${teacher_args[*]:-(its own teacher)}"

python tools/benchmarks/camvid_learning.py --iters "$ITERS" --crop 240 320 --batch 8 \
  --work-dir "$WORK_DIR" --skip-existing ${teacher_args[@]+"${teacher_args[@]}"} \
  "$STUDENT" "$DISTILL" --names baseline cwd

for run in baseline cwd; do
  echo "[main_job] mim test mmseg: $run student on the CamVid test split"
  mim test mmseg "$WORK_DIR/$run/bench_config.py" --checkpoint "$WORK_DIR/$run/iter_${ITERS}.pth" \
    --work-dir "$WORK_DIR/$run/test" > "$WORK_DIR/$run/test.log" 2>&1 \
    || { tail -20 "$WORK_DIR/$run/test.log"; exit 1; }
done
python - "$WORK_DIR" "$ITERS" <<'PY'
# mim test's metrics as mmengine writes them (<work_dir>/<timestamp>/<timestamp>.json), read by
# the same function as the benchmarks and the report; no log is grepped
import sys
from rtkd.visualization.run_logs import read_test_metrics
wd, iters = sys.argv[1:]
res = {}
for run in ('baseline', 'cwd'):
    m = read_test_metrics(f'{wd}/{run}/test')
    if m is None:
        sys.exit(f'[main_job] no metrics file under {wd}/{run}/test/ (see {wd}/{run}/test.log)')
    res[run] = float(m['mIoU'])
print(f"[main_job] CamVid test mIoU after {iters} iterations - Fast-SCNN baseline: "
      f"{res['baseline']:.2f}  Fast-SCNN + CWD from the teacher: {res['cwd']:.2f}  "
      f"(difference {res['cwd'] - res['baseline']:+.2f})")
PY
echo "[main_job] the same two recipes trained to convergence (6000 iterations; archived runs of"
echo "[main_job] docs/results/camvid_converged, host per seed; report also in $WORK_DIR/converged):"
python tools/benchmarks/converged_camvid.py --report-only --seeds 0 1 2 \
  --work-dir docs/results/camvid_converged --report-dir "$WORK_DIR/converged" \
  --run fast-scnn_6k=configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py \
  --run cwd-ft7000_6k=configs/distill/seg/cwd/cwd_logits_bisenetv2-ft7000_fast-scnn_1xb8-6k_camvid-240x320_geo-cache.py \
  | sed '/^val mIoU every/,$d'
