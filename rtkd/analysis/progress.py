"""Follow a training subprocess: its full log into a file, one short progress line per log line.

Used by the benchmark drivers (``tools/benchmarks/``) and the main job, so a user sees which run,
which iteration, the ETA and the current losses instead of nothing for most of an hour.
"""
from __future__ import annotations

import re
import subprocess

_ITER_RE = re.compile(r'Iter\(train\) \[\s*(\d+)/(\d+)\].*?eta: (\S+)')
_LOSS_RE = re.compile(r'(?:^|\s)((?:[\w.]+\.)?loss(?:_[\w]+)?): ([-0-9.e+naif]+)')


def progress_line(line: str, name: str, tag: str = 'train') -> str | None:
    """A one-line summary of an mmengine training log line (None for other lines).

    Args:
        line (str): a line of the training log.
        name (str): run name shown first.
        tag (str): prefix, e.g. ``'learning'``.

    Returns:
        str | None: e.g. ``'[learning] cwd: iter 120/600, eta 0:05:12, loss 1.23, loss_cwd 0.41'``.
    """
    m = _ITER_RE.search(line)
    if m is None:
        return None
    losses = [(k, v) for k, v in _LOSS_RE.findall(line) if not k.startswith('aux')]
    shown = ', '.join(f'{k} {float(v):.4g}' for k, v in losses[:5])
    return f'[{tag}] {name}: iter {m[1]}/{m[2]}, eta {m[3]}, {shown}'


def run_with_progress(cmd: list,
                      env: dict,
                      log_path: str,
                      name: str,
                      cwd: str = '.',
                      tag: str = 'train'):
    """Run a training command, its output into ``log_path``; print one progress line per log line.

    Args:
        cmd (list): the command.
        env (dict): its environment.
        log_path (str): file that receives the whole output.
        name (str): run name for the progress lines.
        cwd (str): working directory of the command.
        tag (str): prefix of the progress lines.

    Returns:
        subprocess.CompletedProcess: with the return code.
    """
    with open(log_path, 'w', buffering=1) as out:  # line-buffered: the log survives a kill
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1)
        for line in proc.stdout:
            out.write(line)
            short = progress_line(line, name, tag)
            if short:
                print(short, flush=True)
        proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode)
