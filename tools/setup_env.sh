#!/usr/bin/env bash
# One-command, idempotent set-up of the rtkd environment on a CPU (or GPU) Linux machine.
#
#   bash tools/setup_env.sh            # creates/reuses $RTKD_VENV (default ~/.cache/rtkd/venv)
#
# What it does (each step is skipped by pip when already satisfied; a stamp file skips
# everything when neither this script nor requirements/ changed since the last success):
#   1. python3 -m venv
#   2. torch 2.13.0 + torchvision 0.28.0 from PyPI as a matching pair (pip --isolated, so a
#      machine-wide find-links holding a torch build without a matching torchvision is ignored)
#   3. mmcv 2.1.0 built from source WITH ops (no build isolation, so it sees torch); pip caches
#      the built wheel, so later runs install it in seconds
#   4. mmengine, mmsegmentation, mmdet, mmpretrain, openmim (--no-deps), tensorboard (for mmengine's
#      TensorboardVisBackend), test tools, rtkd (-e)
#   5. verifies that mmcv.ops, torchvision.ops.nms, the three model zoos and tensorboard import
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RTKD_VENV:-$HOME/.cache/rtkd/venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.rtkd-stamp"
want_stamp="$(cat "$ROOT/tools/setup_env.sh" "$ROOT"/requirements/*.txt | sha256sum | cut -c1-16):$ROOT"

log() { printf '[setup_env %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
t0=$(date +%s)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_stamp" ] && "$VENV/bin/python" -c "import rtkd" 2>/dev/null; then
  log "environment $VENV is up to date (stamp matches); nothing to do"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --isolated --disable-pip-version-check)
C=(-c "$ROOT/requirements/constraints.txt")  # every version pin lives there
export PIP_DEFAULT_TIMEOUT=180

log "build tools"
"${PIP[@]}" install -q -U "pip>=24" "${C[@]}" setuptools wheel ninja psutil packaging numpy
log "torch + torchvision (matching PyPI pair)"
"${PIP[@]}" install -q "${C[@]}" torch torchvision
if ! "$VENV/bin/python" -c "import mmcv, mmcv.ops" 2>/dev/null; then
  log "mmcv 2.1.0 with ops (source build ~10 min the first time; cached wheel afterwards)"
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
    "${PIP[@]}" install -q "${C[@]}" --no-build-isolation mmcv
fi
log "OpenMMLab packages"
"${PIP[@]}" install -q "${C[@]}" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"
"${PIP[@]}" install -q "${C[@]}" -r "$ROOT/requirements/mim.txt"
"${PIP[@]}" install -q --no-deps "${C[@]}" openmim
log "rtkd (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

log "verifying imports"
"$VENV/bin/python" - <<'PY'
import torch, torchvision, mmcv, mmengine
from mmcv.ops import nms, roi_align  # noqa: F401  (fails if mmcv was built without ops)
import torchvision.ops
b = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]]); s = torch.tensor([0.9, 0.8])
assert torchvision.ops.nms(b, s, 0.5).tolist() == [0]
assert nms(b, s, 0.5)[1].tolist() == [0]
import mmseg.models, mmdet.models, mmpretrain.models  # noqa: F401
import cv2, rtkd
from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (TensorboardVisBackend)
assert cv2.__version__.split('.')[0] == '4', cv2.__version__
print(f'torch {torch.__version__} torchvision {torchvision.__version__} mmcv {mmcv.__version__} '
      f'mmengine {mmengine.__version__} mmseg {__import__("mmseg").__version__} '
      f'mmdet {__import__("mmdet").__version__} mmpretrain {__import__("mmpretrain").__version__} '
      f'opencv {cv2.__version__} tensorboard {__import__("tensorboard").__version__} '
      f'rtkd {rtkd.__version__}')
PY
n_cv=$("$VENV/bin/python" -m pip list 2>/dev/null | grep -ci '^opencv' || true)
if [ "$n_cv" != "1" ]; then
  log "ERROR: expected exactly one OpenCV distribution, found $n_cv"; exit 1
fi
echo "$want_stamp" > "$STAMP"
log "done in $(( $(date +%s) - t0 )) s; activate with: source $VENV/bin/activate"
