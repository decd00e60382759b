#!/usr/bin/env bash
# The converged CamVid benchmark's teacher, end to end and resumable: trains the ft4k continuation
# of the shared BiSeNetV2 (configs/baselines/bisenetv2_1xb8-ft4k_camvid-240x320.py; ~2-3 h on 2
# CPU cores, checkpoints every 400 iterations, rerun this script to --resume), installs its best
# val checkpoint as $RTKD_TEACHERS/bisenetv2_camvid-240x320_ft7000.pth (inference config beside
# it), tests it on the CamVid test split and archives the run's scalars and test metrics into
# docs/results/teacher_ft7000 (the README's teacher curve is read from there).
#
#   RTKD_TEACHERS=$HOME/rtkd_teachers bash tools/benchmarks/camvid_teacher_ft7000.sh [WORK_DIR]
#
# WORK_DIR defaults to work_dirs/teacher_ft4k. Run it from an environment made by
# tools/setup_env.sh (python = the venv's).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
WD="${1:-work_dirs/teacher_ft4k}"
: "${RTKD_TEACHERS:?set RTKD_TEACHERS to a writable teacher folder (../shared is read-only)}"
export RTKD_TEACHERS
CFG=configs/baselines/bisenetv2_1xb8-ft4k_camvid-240x320.py
INFER=configs/_base_/teachers/bisenetv2_camvid-240x320_infer.py
NAME=bisenetv2_camvid-240x320_ft7000
ARCHIVE=docs/results/teacher_ft7000

if [ ! -f "$WD/iter_4000.pth" ]; then
  resume=()
  if compgen -G "$WD/iter_*.pth" >/dev/null; then resume=(--resume); fi
  python tools/train.py "$CFG" --work-dir "$WD" "${resume[@]}"
fi
best=("$WD"/best_mIoU_iter_*.pth)
if [ "${#best[@]}" -ne 1 ] || [ ! -f "${best[0]}" ]; then
  echo "expected one best_mIoU_iter_*.pth in $WD, found: ${best[*]}" >&2
  exit 1
fi
python tools/misc/install_teacher.py "$INFER" "${best[0]}" --name "$NAME"
python tools/test.py "$RTKD_TEACHERS/$(basename "$INFER")" "$RTKD_TEACHERS/$NAME.pth" \
  --work-dir "$WD/test"
python - "$WD" "$ARCHIVE" <<'PY'
import sys

from rtkd.visualization.run_logs import archive_run, load_run, read_test_metrics

wd, dest = sys.argv[1:]
print(f'{len(archive_run(wd, dest))} files archived in {dest}')
steps, miou = load_run(dest).series('mIoU', 'val')
print('val mIoU:', ', '.join(f'{s}: {v:.2f}' for s, v in zip(steps, miou)))
print('test mIoU:', read_test_metrics(f'{dest}/test')['mIoU'])
PY
