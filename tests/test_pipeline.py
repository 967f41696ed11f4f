"The one-command pipeline: smoke run end to end, killed with SIGKILL and resumed; one-line CLI errors."
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest

CLI = [sys.executable, '-m', 'bilstm_kd.cli']


def _run(*args, **kw):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, **kw)


def test_smoke_run_killed_then_resumed(tmp_path, glue_dir):
    out = tmp_path/'smoke'
    cmd = [*CLI, 'run', '--task', 'sst2', '--preset', 'smoke', '--data-dir', str(glue_dir), '--out', str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:   # kill -9 as soon as the first two stages are recorded
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            try: done = json.loads((out/'stages.json').read_text())
            except (OSError, ValueError): done = {}
            if 'augment' in done: break
            time.sleep(0.2)
        assert proc.poll() is None, 'the run finished before it could be killed'
        os.kill(proc.pid, signal.SIGKILL); proc.wait()
    finally:
        if proc.poll() is None: proc.kill()
    assert not (out/'report.json').exists()
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '[teacher] cached' in r.stdout and '[augment] cached' in r.stdout
    rep = json.loads((out/'report.json').read_text())
    assert {'task', 'preset', 'teacher', 'student', 'baseline', 'speed', 'stages', 'versions'} <= set(rep)
    assert rep['task'] == 'sst2' and rep['preset'] == 'smoke'
    assert set(rep['stages']) == {'teacher', 'augment', 'label', 'distill', 'baseline', 'evaluate'}
    for who in ('teacher', 'student', 'baseline'):
        assert 0 <= rep[who]['metrics']['validation']['accuracy'] <= 1 and rep[who]['params'] > 0
    assert rep['labelling']['n'] == rep['transfer']['n_rows']
    assert [row['model'] for row in rep['speed']][:5] == ['student', 'student-int8', 'student-onnx', 'student-onnx-int8', 'teacher']
    assert sum(row['reference'] for row in rep['speed']) == 1
    assert 0 <= rep['student_onnx_int8']['metrics']['validation']['accuracy'] <= 1
    assert (out/'report.html').stat().st_size > 10_000
    assert not list(out.glob('.*.tmp')) and not list(out.glob('*.ckpt'))
    # a third run has nothing to do
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.count('cached') == 7


@pytest.mark.parametrize('args,msg', [
    (['run', '--task', 'sst2', '--preset', 'paper', '--out', 'x'], 'needs a GPU'),
    (['run', '--task', 'cola', '--out', 'x'], "unknown task 'cola'"),
    (['run', '--task', 'sst2', '--preset', 'huge', '--out', 'x'], "invalid choice: 'huge'"),
    (['run', '--task', 'sst2', '--data-dir', '/nonexistent', '--out', 'x'], 'does not exist'),
])
def test_run_user_errors(args, msg, tmp_path):
    r = _run(*args, cwd=tmp_path)
    assert r.returncode == 2 and msg in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(('error:', 'bilstm-kd run: error:'))
    assert 'Traceback' not in r.stderr


def test_run_cache_moves_every_cache(tmp_path, glue_dir):
    "`run --cache X` writes its POS tags and logits under X and nothing under the default cache."
    default, mine = tmp_path/'default-cache', tmp_path/'mine'
    env = dict(os.environ, BILSTM_KD_CACHE=str(default), TOKENIZERS_PARALLELISM='false')
    r = subprocess.run([*CLI, 'run', '--task', 'sst2', '--preset', 'smoke', '--threads', '1', '--data-dir', str(glue_dir),
                        '--out', str(tmp_path/'run'), '--cache', str(mine), '--speed-budget-s', '0.3', '--speed-latency-calls', '1'],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not default.exists() or not any(default.rglob('*')), sorted(map(str, default.rglob('*')))
    assert list((mine/'pos').glob('*.npz')) and list((mine/'logits').rglob('shard-*.npz'))
