"""Progress lines of the benchmark drivers: parsed from real mmengine log lines."""
from __future__ import annotations

import sys

from rtkd.analysis.progress import progress_line, run_with_progress

LINE = ('12/01 11:40:36 - mmengine - INFO - Iter(train) [ 160/6000]  base_lr: 4.3928e-02 '
        'lr: 4.3928e-02  eta: 0:47:15  time: 0.4614  data_time: 0.0089  loss: 1.9989  '
        'decode.loss_ce: 1.0258  decode.acc_seg: 65.6308  aux_0.loss_ce: 0.5497  '
        'aux_0.acc_seg: 53.5978  loss_cwd: 0.4234')


def test_progress_line_shows_iteration_eta_and_losses():
    out = progress_line(LINE, 'cwd', 'learning')
    assert out == ('[learning] cwd: iter 160/6000, eta 0:47:15, loss 1.999, '
                   'decode.loss_ce 1.026, loss_cwd 0.4234')
    assert progress_line('12/01 - mmengine - INFO - Iter(val) [80/101] eta: 0:00:01', 'x') is None


def test_run_with_progress_keeps_the_full_log(tmp_path, capsys):
    script = f"print('hello'); print({LINE!r}); import sys; sys.exit(3)"
    log = tmp_path / 'run.out'
    rc = run_with_progress([sys.executable, '-c', script], None, str(log), 'r')
    assert rc.returncode == 3
    assert log.read_text().splitlines() == ['hello', LINE]
    assert capsys.readouterr().out.strip().startswith('[train] r: iter 160/6000')
