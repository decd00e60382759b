"""tools/benchmarks/converged_camvid.py: parallel runs, host records, the report."""
import os.path as osp
import shutil
import threading
import time
import types

import pytest

from helpers import ROOT, load_tool

ARCHIVE = osp.join(ROOT, 'docs', 'results', 'camvid_converged')
BASELINE = 'configs/fast_scnn/fast-scnn_1xb8-6k_camvid-240x320.py'


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools/benchmarks/converged_camvid.py')


def _timed_jobs(tool, parallel, fail=()):
    spans, lock = {}, threading.Lock()

    def fn(job):
        t0 = time.monotonic()
        time.sleep(0.3)
        with lock:
            spans[job] = (t0, time.monotonic())
        if job in fail:
            raise tool.RunFailed(f'job {job} failed')

    failed = tool.run_jobs(['a', 'b', 'c'], fn, parallel)
    return spans, failed


def _overlap(s, t):
    return min(s[1], t[1]) - max(s[0], t[0]) > 0.1


def test_parallel_jobs_run_at_the_same_time(tool):
    spans, failed = _timed_jobs(tool, 2)
    assert failed == [] and set(spans) == {'a', 'b', 'c'}
    assert _overlap(spans['a'], spans['b'])  # the first two start together
    spans, _ = _timed_jobs(tool, 1)
    assert not any(_overlap(spans[x], spans[y]) for x, y in [('a', 'b'), ('b', 'c')])


@pytest.mark.parametrize('parallel', [1, 2])
def test_a_failed_job_does_not_stop_the_others(tool, parallel):
    spans, failed = _timed_jobs(tool, parallel, fail=('a', ))
    assert set(spans) == {'a', 'b', 'c'}
    assert [job for job, _ in failed] == ['a']
    assert 'job a failed' in str(failed[0][1])


def test_parallel_runs_share_the_cores(tool, monkeypatch):
    monkeypatch.setattr(tool.os, 'cpu_count', lambda: 4)
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    args = types.SimpleNamespace(threads=None, parallel=2)
    assert tool.launch_env(args)['OMP_NUM_THREADS'] == '2'
    args.parallel = 8
    assert tool.launch_env(args)['OMP_NUM_THREADS'] == '1'
    args.threads = 3
    assert tool.launch_env(args)['OMP_NUM_THREADS'] == '3'
    assert 'OMP_NUM_THREADS' not in tool.launch_env(types.SimpleNamespace(threads=None, parallel=1))


def test_latest_iter_is_the_highest_checkpoint(tool, tmp_path):
    assert tool.latest_iter(str(tmp_path)) == 0
    for it in (800, 4000, 400):
        (tmp_path / f'iter_{it}.pth').write_bytes(b'')
    (tmp_path / 'best_mIoU_iter_5200.pth').write_bytes(b'')
    assert tool.latest_iter(str(tmp_path)) == 4000


def test_host_records_are_appended_archived_and_reported(tool, tmp_path):
    from rtkd.utils import cpu_name
    from rtkd.visualization.run_logs import archive_run
    wd = tmp_path / 'work' / 'fast-scnn_6k_seed0'
    shutil.copytree(osp.join(ARCHIVE, 'fast-scnn_6k_seed0'), wd)
    (wd / 'host.json').unlink()
    tool.record_host(str(wd), {'OMP_NUM_THREADS': '1'}, 0)
    tool.record_host(str(wd), {}, 2400)
    hosts = tool.read_hosts(str(wd))
    assert [h['start_iter'] for h in hosts] == [0, 2400]
    assert hosts[0]['threads'] == 1 and hosts[0]['cpu'] == cpu_name()
    dest = tmp_path / 'archive' / 'fast-scnn_6k_seed0'
    assert 'host.json' in archive_run(str(wd), str(dest))
    assert tool.read_hosts(str(dest)) == hosts
    md = tool.report([('fast-scnn_6k', BASELINE)], [0], str(tmp_path / 'archive'))
    row = [ln for ln in md.splitlines() if ln.startswith('| fast-scnn_6k | 0 |')]
    assert row == [f'| fast-scnn_6k | 0 | 60.74 | 60.74 (6000) | 49.17 | {cpu_name()} |']


def test_report_of_the_archive_names_each_runs_host(tool, tmp_path):
    shutil.copytree(ARCHIVE, tmp_path / 'a')
    md = tool.report([('fast-scnn_6k', BASELINE)], [0], str(tmp_path / 'a'))
    assert '| fast-scnn_6k | 0 | 60.74 | 60.74 (6000) | 49.17 | AMD EPYC |' in md
    shutil.rmtree(tmp_path / 'a' / 'fast-scnn_6k_seed0' / 'test')
    (tmp_path / 'a' / 'fast-scnn_6k_seed0' / 'host.json').unlink()
    md = tool.report([('fast-scnn_6k', BASELINE)], [0], str(tmp_path / 'a'))
    assert '| fast-scnn_6k | 0 | 60.74 | 60.74 (6000) | n/a | not recorded |' in md


def test_report_dir_keeps_the_archive_unwritten(tool, tmp_path):
    shutil.copytree(ARCHIVE, tmp_path / 'a')
    before = sorted(p.relative_to(tmp_path / 'a') for p in (tmp_path / 'a').rglob('*'))
    md = tool.report([('fast-scnn_6k', BASELINE)], [0, 1], str(tmp_path / 'a'),
                     str(tmp_path / 'out'))
    assert sorted(p.relative_to(tmp_path / 'a') for p in (tmp_path / 'a').rglob('*')) == before
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
        'converged.csv', 'converged.md', 'curves.png'
    ]
    assert (tmp_path / 'out' / 'converged.md').read_text() == md
    assert '| fast-scnn_6k | 2 | 6000 | 59.90 +- 1.19 | 48.49 +- 0.96 |' in md
    assert (tmp_path / 'out' / 'curves.png').read_bytes()[:4] == b'\x89PNG'
