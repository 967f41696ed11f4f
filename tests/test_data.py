import os, subprocess, sys, time, warnings
from pathlib import Path

import numpy as np
import pytest

from bilstm_kd.core import UserError, atomic_path, fingerprint
from bilstm_kd.data import (CARVED_NOTE, CarvedSplitWarning, TASKS, compute_metrics, get_task, load_task, read_glue_tsv,
                            split_note, texts_of)


def test_sst2_official_sizes(glue_dir):
    dd = load_task('sst2', data_dir=glue_dir, selection=None)   # GLUE's splits as published, before the selection carve
    assert {s: len(d) for s, d in dd.items()} == {'train': 67_349, 'validation': 872}
    assert dd['train'].column_names == ['text_a', 'label', 'idx']
    assert dd['train'].features['label'].names == ['negative', 'positive']
    assert sum(dd['train']['label']) == 37_569 and split_note(dd['validation']) == ''


def test_mrpc_official_sizes(glue_dir):
    dd = load_task('mrpc', data_dir=glue_dir, selection=None)
    assert {s: len(d) for s, d in dd.items()} == {'train': 3_668, 'validation': 408}
    assert dd['train'].column_names == ['text_a', 'text_b', 'label', 'idx']
    assert texts_of(dd['validation'])[0] == (dd['validation'][0]['text_a'], dd['validation'][0]['text_b'])


def test_qqp_dev_is_carved_and_labelled(glue_dir):
    with pytest.warns(CarvedSplitWarning, match='validation carved'):
        dd = load_task('qqp', data_dir=glue_dir)
    assert len(dd['train']) + len(dd['selection']) + len(dd['validation']) == 23_497
    assert split_note(dd['validation']).startswith(CARVED_NOTE)
    ids = [set(dd[s]['idx']) for s in ('train', 'selection', 'validation')]   # three disjoint parts of one file
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    # stratified: both splits keep the ~37% positive rate
    assert abs(np.mean(dd['train']['label']) - np.mean(dd['validation']['label'])) < 0.01


def test_mnli_train_carved_from_dev_matched(glue_dir):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        dd = load_task('mnli', data_dir=glue_dir)
    msg = ' '.join(str(x.message) for x in w)
    assert 'validation_mismatched not available' in msg
    assert sorted(dd) == ['selection', 'train', 'validation_matched']
    assert len(dd['train']) + len(dd['selection']) + len(dd['validation_matched']) == 9_815
    assert dd['train'].features['label'].names == ['entailment', 'neutral', 'contradiction']
    assert split_note(dd['train']).startswith(CARVED_NOTE)


def test_carving_and_subsets_are_seeded(glue_dir):
    a = load_task('qqp', data_dir=glue_dir, seed=3, verbose=False)['validation']['idx']
    b = load_task('qqp', data_dir=glue_dir, seed=3, verbose=False)['validation']['idx']
    c = load_task('qqp', data_dir=glue_dir, seed=4, verbose=False)['validation']['idx']
    assert a == b and a != c
    s = load_task('sst2', data_dir=glue_dir, max_train=300, max_eval=40, seed=0)
    assert (len(s['train']), len(s['validation'])) == (300, 40)


def test_env_var_selects_local_folder(glue_dir, monkeypatch):
    monkeypatch.setenv('BILSTM_KD_DATA', str(glue_dir))
    assert len(load_task('mrpc')['validation']) == 408


def test_offline_without_data_fails_fast(monkeypatch):
    monkeypatch.delenv('BILSTM_KD_DATA', raising=False)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    t = time.time()
    with pytest.raises(UserError, match='--data-dir.*BILSTM_KD_DATA'):
        load_task('sst2')
    assert time.time() - t < 5


def test_unknown_task():
    with pytest.raises(UserError, match="unknown task 'cola'; choose one of sst2, qqp, mnli, mrpc"):
        get_task('cola')


@pytest.mark.parametrize('content,match', [
    ('sentence\tlabel\ngood\t1\nbad\tfilm\t0\n', r'train.tsv:3: expected 2 tab-separated fields, found 3'),
    ('text\tlabel\ngood\t1\n', r"train.tsv: no first-sentence column"),
    ('sentence\tlabel\ngood\tpositive\nbad\tmaybe\n', r"train.tsv:3: bad label 'maybe'"),
    ('', r'train.tsv:1: empty file'),
])
def test_malformed_tsv_names_file_and_line(tmp_path, content, match):
    (tmp_path/'SST-2').mkdir()
    (tmp_path/'SST-2'/'train.tsv').write_text(content)
    with pytest.raises(UserError, match=match):
        load_task('sst2', data_dir=tmp_path)


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(UserError, match='does not exist'):
        load_task('sst2', data_dir=tmp_path/'nope')
    with pytest.raises(UserError, match='SST-2 not found'):
        load_task('sst2', data_dir=tmp_path)
    with pytest.raises(UserError, match='not found'):
        read_glue_tsv(tmp_path/'x.tsv', 'sst2')


def test_quoting_off_keeps_every_row(glue_dir):
    "A field that starts with a double quote must not swallow the following lines."
    assert len(read_glue_tsv(glue_dir/'MNLI'/'dev_matched.tsv', 'mnli')) == 9_815


def test_official_glue_column_names(tmp_path):
    "Full GLUE files (MRPC's Quality/#1 String layout) load as well as trimmed copies."
    p = tmp_path/'dev.tsv'
    p.write_text('Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\t"He said" so\tHe said so\n')
    ds = read_glue_tsv(p, 'mrpc')
    assert ds[0] == {'text_a': '"He said" so', 'text_b': 'He said so', 'label': 1, 'idx': 0}


def test_metrics():
    assert compute_metrics('sst2', [1, 0, 1], [1, 1, 1]) == {'accuracy': pytest.approx(2/3)}
    m = compute_metrics('mrpc', [1, 1, 0, 0], [1, 0, 1, 0])
    assert m == {'accuracy': 0.5, 'f1': 0.5}


def test_atomic_path_keeps_old_on_failure(tmp_path):
    with atomic_path(tmp_path/'f.txt') as p: p.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path/'f.txt') as p:
            p.write_text('partial'); raise RuntimeError('killed')
    assert (tmp_path/'f.txt').read_text() == 'old' and len(list(tmp_path.iterdir())) == 1
    assert fingerprint('x', 1) == fingerprint('x', 1) != fingerprint('x', 2)


def test_cli_errors_are_one_line(glue_dir):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}; env.pop('BILSTM_KD_DATA', None)
    r = subprocess.run([sys.executable, '-m', 'bilstm_kd.cli', 'data', '--task', 'sst2'],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and r.stderr.startswith('error: cannot load sst2')
    r = subprocess.run([sys.executable, '-m', 'bilstm_kd.cli', 'data', '--task', 'cola'],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "unknown task 'cola'" in r.stderr
    r = subprocess.run([sys.executable, '-m', 'bilstm_kd.cli', 'data', '--task', 'mrpc', '--data-dir',
                        str(glue_dir), '--json'], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and '"rows": 408' in r.stdout


def test_stratified_indices_proportional_and_seeded():
    from bilstm_kd.data import stratified_indices
    y = np.array([0] * 700 + [1] * 300)
    rest, picked = stratified_indices(y, 100, seed=0)
    assert len(picked) == 100 and len(rest) == 900 and not set(rest) & set(picked)
    assert (y[picked] == 1).sum() == 30
    assert stratified_indices(y, 0.1, seed=0)[1].tolist() == picked.tolist()
    assert stratified_indices(y, 100, seed=1)[1].tolist() != picked.tolist()
    assert stratified_indices(y, 7, seed=0)[1].size == 7      # leftovers go to the largest remainders


def test_a_selection_split_needs_two_rows_and_takes_at_least_one():
    from datasets import Dataset
    from bilstm_kd.data import carve_selection
    with pytest.raises(UserError, match='too few to carve a selection split'):
        carve_selection(Dataset.from_dict({'text_a': ['good'], 'label': [1]}), 0.1, 0)
    train, sel = carve_selection(Dataset.from_dict({'text_a': ['good', 'bad', 'fine'], 'label': [1, 0, 1]}), 0.1, 0)
    assert (len(train), len(sel)) == (2, 1)
