"Choose on train, report on dev: no stage reads the reported split's labels to make a decision."
import dataclasses, json
from pathlib import Path

import numpy as np
import pytest

from bilstm_kd.data import load_task, SELECTION
from bilstm_kd.pipeline import run_pipeline, get_preset
from bilstm_kd.speed import SpeedConfig

QUICK = dataclasses.replace(get_preset('smoke'), speed=SpeedConfig(quick=True, budget_s=0.3, latency_calls=1))   # a quick speed table (never compared)
ARTEFACTS = ('teacher/model.safetensors', 'transfer/data-00000-of-00001.arrow', 'logits.npy',
             'student/model.safetensors', 'baseline/model.safetensors')


def _glue_with_dev_labels(glue_dir: Path, folder: Path, permute: bool) -> Path:
    "A GLUE folder whose SST-2 train is the real one and whose dev labels are the real ones, or a permutation of them."
    (folder/'SST-2').mkdir(parents=True)
    (folder/'SST-2'/'train.tsv').symlink_to(glue_dir/'SST-2'/'train.tsv')
    head, *rows = (glue_dir/'SST-2'/'dev.tsv').read_text(encoding='utf-8').splitlines()
    texts, labels = zip(*(r.rsplit('\t', 1) for r in rows))
    if permute: labels = np.random.default_rng(7).permutation(labels)
    (folder/'SST-2'/'dev.tsv').write_text('\n'.join([head, *(f'{t}\t{y}' for t, y in zip(texts, labels))]) + '\n', encoding='utf-8')
    return folder


def _counting_task_loads(monkeypatch) -> list:
    "Count `load_task` calls from every bilstm_kd module from now on."
    import sys
    import bilstm_kd.data as data
    real, calls = data.load_task, []
    def counting(*a, **k): calls.append(a[:1]); return real(*a, **k)
    for m in [m for n, m in sys.modules.items() if n.startswith('bilstm_kd')]:
        if getattr(m, 'load_task', None) is real: monkeypatch.setattr(m, 'load_task', counting)
    return calls


def test_permuted_dev_labels_change_no_model(tmp_path, glue_dir, monkeypatch):
    real, shuffled = (_glue_with_dev_labels(glue_dir, tmp_path/name, permute=name == 'shuffled') for name in ('real', 'shuffled'))
    a, b = (load_task('sst2', d, verbose=False)['validation']['label'] for d in (real, shuffled))
    assert np.mean(np.array(a) != np.array(b)) > 0.3, 'the permutation must change many dev labels'
    outs, calls = {}, _counting_task_loads(monkeypatch)
    for name, data in (('real', real), ('shuffled', shuffled)):   # separate caches: the second run computes everything anew
        outs[name] = tmp_path/f'run-{name}'
        run_pipeline('sst2', QUICK, outs[name], data, threads=1, progress=False, cache=tmp_path/f'cache-{name}',
                     targets=('report',) if name == 'real' else ('distill', 'baseline'))
        if name == 'real':   # one whole run, report included: stages receive the data, they do not go and find it again
            assert 1 <= len(calls) <= 2, calls
    for f in ARTEFACTS:
        assert (outs['real']/f).read_bytes() == (outs['shuffled']/f).read_bytes(), f'{f} depends on the dev labels'
    # and the records say where each model chose, and that dev was scored only at the end
    out = outs['real']
    teacher = json.loads((out/'teacher'/'bilstm_kd_teacher.json').read_text())
    assert teacher['chosen_on'] == SELECTION and {SELECTION, 'validation'} <= set(teacher['metrics'])
    for who in ('student', 'baseline'):
        meta = json.loads((out/who/'bilstm_kd_student.json').read_text())
        assert meta['chosen_on'] == SELECTION
        assert all(not k.startswith('dev_') for rec in meta['history'] for k in rec), 'no evaluation while training reads dev'
        assert any(k.startswith('select_') for rec in meta['history'] for k in rec)
        assert meta['best']['select_accuracy'] == pytest.approx(meta['metrics'][SELECTION]['accuracy'])
