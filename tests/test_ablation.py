"`bilstm-kd ablate`: one grid, one teacher, resumable, one-line errors."
import json, subprocess, sys


def _ablate(out, cache, *extra):
    cmd = [sys.executable, '-m', 'bilstm_kd.cli', 'ablate', '--task', 'sst2', '--preset', 'smoke', '--out', str(out),
           '--threads', '1', '--quiet', '--cache', str(cache), *extra]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_ablate_augmentation_group(tmp_path):
    r = _ablate(tmp_path/'abl', tmp_path/'cache', '--groups', 'augmentation')
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout.splitlines()[-1])['rows']
    assert [x['name'] for x in rows] == ['KD: the preset', 'no KD: gold labels', 'no augmentation', 'masking only',
                                         'POS replacement only', 'n-gram sampling only']
    assert all(0 <= x['metric'] <= 1 for x in rows), rows
    abl = json.loads((tmp_path/'abl'/'ablation.json').read_text())
    n = {x['name']: x['rows'] for x in abl['rows']}
    assert n['no augmentation'] <= n['no KD: gold labels'] < n['masking only'] and n['KD: the preset'] > n['no augmentation']
    assert len({x['teacher'] for x in abl['rows']}) == 1 and len(list((tmp_path/'abl'/'store').glob('*/teacher'))) == 1
    # a second call resumes: nothing is trained again, the rows are the same
    again = _ablate(tmp_path/'abl', tmp_path/'cache', '--groups', 'augmentation')
    assert again.returncode == 0 and json.loads(again.stdout.splitlines()[-1])['rows'] == rows


def test_ablate_bad_group_is_one_line(tmp_path):
    r = _ablate(tmp_path/'abl', tmp_path/'cache', '--groups', 'augmentation,lossy')
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and "unknown ablation group 'lossy'" in r.stderr, r.stderr
