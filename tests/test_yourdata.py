"Your own data (chapter 11) and serving the student (chapter 11a): file formats, labels, pairs, a teacher already fine-tuned, predict and export."
import json, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bilstm_kd.core import UserError
from bilstm_kd.data import load_task, get_task, TASKS
from bilstm_kd.yourdata import task_from_file, task_from_hub, resolve_task, label_order
from test_faults import cli, one_line_error

ROWS = [('the food was cold and late', 'complaint'), ('where is my parcel', 'question'), ('thanks, all sorted', 'praise'),
        ('why was I charged twice', 'question'), ('great service, quick reply', 'praise'), ('the app keeps crashing', 'complaint')] * 20


def write(path: Path, rows=ROWS, cols=('text', 'label')):
    "`rows` in the format the suffix names."
    df = pd.DataFrame(rows, columns=list(cols))
    if path.suffix == '.csv': df.to_csv(path, index=False)
    elif path.suffix == '.tsv': df.to_csv(path, sep='\t', index=False, quoting=3)
    elif path.suffix == '.jsonl': path.write_text(''.join(json.dumps(r) + '\n' for r in df.to_dict('records')))
    elif path.suffix == '.parquet': df.to_parquet(path)
    return path


@pytest.mark.parametrize('suffix', ['.csv', '.tsv', '.jsonl', '.parquet'])
def test_each_format_reads_alike(tmp_path, suffix):
    spec = task_from_file(write(tmp_path/f'tickets{suffix}'))
    assert spec.name == 'tickets' and spec.label_names == ('complaint', 'praise', 'question') and not spec.pair
    assert get_task('tickets') is spec and 'tickets' not in TASKS   # registered for this process, GLUE's list untouched
    dd = load_task(spec, verbose=False)
    assert set(dd) == {'train', 'selection', 'validation'} and sum(len(d) for d in dd.values()) == len(ROWS)
    train = dd['train']
    assert train.features['label'].names == list(spec.label_names)
    first = train[0]
    assert dict(ROWS)[first['text_a']] == spec.label_names[first['label']]   # each text keeps its own label


def test_a_csv_field_with_commas_and_quotes(tmp_path):
    rows = [('he said "no", then left', 'complaint'), ('fine', 'praise')] * 10
    dd = load_task(task_from_file(write(tmp_path/'q.csv', rows)), verbose=False, selection=None)
    assert 'he said "no", then left' in list(dd['train']['text_a']) + list(dd['validation']['text_a'])


def test_integer_labels_keep_numeric_order_and_metrics_are_accuracy_and_macro_f1(tmp_path):
    rows = [(f'text number {i}', i % 3 * 5) for i in range(90)]   # labels 0, 5, 10
    spec = task_from_file(write(tmp_path/'ints.jsonl', rows))
    assert spec.label_names == ('0', '5', '10') and spec.metrics == ('accuracy', 'macro_f1')
    from bilstm_kd.data import compute_metrics
    m = compute_metrics(spec, [0, 1, 2, 2], [0, 1, 1, 1])
    assert m['accuracy'] == 0.5 and m['macro_f1'] == pytest.approx((1 + 0.5 + 0) / 3)   # class 1: precision 1/3, recall 1
    assert label_order(['b', 'a']) == ('a', 'b')


def test_a_pair_file(tmp_path):
    rows = [(f'premise {i}', f'hypothesis {i}', ['yes', 'no', 'maybe'][i % 3]) for i in range(60)]
    spec = task_from_file(write(tmp_path/'nli.jsonl', rows, ('p', 'h', 'y')), text_col='p', text_b_col='h', label_col='y')
    dd = load_task(spec, verbose=False)
    assert spec.pair and dd['train'].column_names == ['text_a', 'text_b', 'label', 'idx']
    r = dd['train'][0]
    assert r['text_a'].replace('premise', 'hypothesis') == r['text_b']


def test_a_dev_file_is_the_reported_split(tmp_path):
    spec = task_from_file(write(tmp_path/'tr.csv'), dev=write(tmp_path/'dev.csv', ROWS[:12]))
    dd = load_task(spec, verbose=False)
    assert len(dd['validation']) == 12 and not dd['validation'].info.description   # not a carve


@pytest.mark.parametrize('make, phrase', [
    (lambda p: task_from_file(write(p/'a.csv'), text_col='body'), "no column 'body' (it has 'text', 'label'); name the right one with --text-col"),
    (lambda p: task_from_file(write(p/'a.csv'), label_col='y'), "no column 'y'"),
    (lambda p: task_from_file(write(p/'a.csv'), text_b_col='second'), "no column 'second'"),
    (lambda p: (p/'e.csv').write_text('') and None or task_from_file(p/'e.csv'), 'e.csv holds no rows'),
    (lambda p: (p/'h.csv').write_text('text,label\n') and None or task_from_file(p/'h.csv'), 'h.csv holds no rows'),
    (lambda p: (p/'e.jsonl').write_text('\n') and None or task_from_file(p/'e.jsonl'), 'e.jsonl holds no rows'),
    (lambda p: task_from_file(p/'missing.csv'), 'missing.csv not found'),
    (lambda p: task_from_file(write(p/'a.csv').rename(p/'a.xlsx')), "unknown file type '.xlsx'"),
    (lambda p: task_from_file(write(p/'one.csv', [('x', 'a'), ('y', 'a')])), "every row has the label 'a'"),
    (lambda p: (p/'b.jsonl').write_text('{"text": "x", "label": "a"}\n[1, 2]\n') and None or task_from_file(p/'b.jsonl'), 'b.jsonl:2: a JSON list'),
    (lambda p: (p/'c.csv').write_text('text,label\nx,a\n,b\n') and None or task_from_file(p/'c.csv'), "c.csv:3: empty text in column 'text'"),
    (lambda p: (p/'d.csv').write_text('text,label\nx,a\ny,\n') and None or task_from_file(p/'d.csv'), "d.csv:3: no label in column 'label'"),
    (lambda p: (p/'f.tsv').write_text('text\tlabel\nx\ta\textra\n') and None or task_from_file(p/'f.tsv'), 'f.tsv:2: expected 2 fields, found 3'),
])
def test_bad_files_are_one_line_errors(tmp_path, make, phrase):
    with pytest.raises(UserError) as e: make(tmp_path)
    assert phrase in str(e.value) and '\n' not in str(e.value)


def test_a_label_seen_only_in_dev_is_refused(tmp_path):
    spec = task_from_file(write(tmp_path/'tr.csv'), dev=write(tmp_path/'dev.csv', ROWS[:5] + [('new kind', 'refund')]))
    with pytest.raises(UserError, match=r"dev.csv: label 'refund' never appears in tr.csv \(its labels: complaint, praise, question\)"):
        load_task(spec, verbose=False)


def test_a_hub_dataset_uses_its_classlabel_names_and_validation_split(monkeypatch):
    import datasets
    feats = datasets.Features({'sentence': datasets.Value('string'), 'label': datasets.ClassLabel(names=['neg', 'pos', 'mixed'])})
    raw = datasets.DatasetDict({s: datasets.Dataset.from_dict({'sentence': [f'{s} {i}' for i in range(n)], 'label': [i % 3 for i in range(n)]},
                                                              features=feats) for s, n in (('train', 60), ('validation', 9), ('test', 9))})
    monkeypatch.setattr(datasets, 'load_dataset', lambda name, config=None: raw)
    spec = resolve_task('hub:someone/reviews:en', text_col='sentence')
    assert spec.name == 'reviews' and spec.label_names == ('neg', 'pos', 'mixed')   # the dataset's order, not sorted
    dd = load_task(spec, verbose=False)
    assert len(dd['validation']) == 9 and dd['validation'][1] == {'text_a': 'validation 1', 'label': 1, 'idx': 1}


def test_the_cli_resolves_own_data_and_refuses_column_flags_for_glue(tmp_path):
    write(tmp_path/'tickets.csv')
    code, out, _ = cli('data', '--task', tmp_path/'tickets.csv', '--json')
    assert code == 0 and json.loads(out)['task'] == 'tickets'
    one_line_error(cli('data', '--task', 'sst2', '--text-col', 'x'), '--text-col describes your own data, but --task sst2 is a GLUE task')
    one_line_error(cli('data', '--task', tmp_path/'nope.csv'), 'nope.csv not found')
    one_line_error(cli('data', '--task', 'hub:nobody/nothing'), 'cannot load hub:nobody/nothing')
    one_line_error(cli('data', '--task', 'sst3'), 'or pass your own data: --task FILE')


def test_a_language_without_a_tagger_turns_the_pos_rule_off_and_says_so(capsys):
    from bilstm_kd.augmentation import AugmentConfig, get_tagger
    from bilstm_kd.transfer import pos_rule_for
    assert pos_rule_for(AugmentConfig(), 'en') == AugmentConfig()
    off = pos_rule_for(AugmentConfig(), 'xx')
    assert off.p_pos == 0 and off.tagger == 'none' and 'POS-guided replacement is off' in capsys.readouterr().err
    named = AugmentConfig(tagger='spacy:xx_core_news_sm')
    assert pos_rule_for(named, 'xx') is named
    with pytest.raises(UserError, match='spacy:MODEL'): AugmentConfig(tagger='spacey')
    with pytest.raises(UserError, match="unknown tagger 'spacey'"): get_tagger('spacey')


def test_a_transfer_set_in_another_language_records_the_rule_off(tmp_path):
    from bilstm_kd.transfer import build_transfer_set, transfer_meta
    dd = load_task(task_from_file(write(tmp_path/'de.csv', [('das Essen war kalt', 'a'), ('sehr gut', 'b')] * 10)), verbose=False)
    ds = build_transfer_set(dd['train'], n_iter=3, cache=False, language='de')
    meta = transfer_meta(ds)
    assert meta['language'] == 'de' and meta['p_pos'] == 0 and meta['tagger'] == 'none' and ds.num_rows > len(dd['train'])


# ---- end to end: the run, an adopted teacher, predict and export ----

@pytest.fixture(scope='module')
def mnli_files(tmp_path_factory):
    "A 3-class CSV with string labels (MNLI hypotheses alone), 2,000 rows, and a pair JSON Lines file (premise, hypothesis)."
    d = tmp_path_factory.mktemp('own')
    tr = load_task('mnli', verbose=False)['train'].shuffle(seed=0).select(range(2000))
    names = tr.features['label'].names
    pd.DataFrame({'hyp': tr['text_b'], 'judgement': [names[i] for i in tr['label']]}).to_csv(d/'hyp.csv', index=False)
    (d/'pairs.jsonl').write_text(''.join(json.dumps({'premise': a, 'hypothesis': b, 'label': names[y]}) + '\n'
                                         for a, b, y in zip(tr['text_a'][:600], tr['text_b'][:600], tr['label'][:600])))
    return d


@pytest.fixture(scope='module')
def own_run(mnli_files):
    code, out, err = cli('run', '--task', mnli_files/'hyp.csv', '--text-col', 'hyp', '--label-col', 'judgement',
                         '--preset', 'smoke', '--out', mnli_files/'run', '--quiet')
    assert code == 0, err[-3000:]
    return mnli_files/'run'


def test_a_three_class_csv_with_string_labels_and_no_dev_file_runs_end_to_end(own_run):
    rep = json.loads((own_run/'report.json').read_text())
    assert rep['task'] == 'hyp' and rep['labels'] == ['contradiction', 'entailment', 'neutral']
    for who in ('teacher', 'student', 'baseline'):
        m = rep[who]['metrics']['validation']
        assert {'accuracy', 'macro_f1'} <= set(m) and 'carved from 10% of hyp.csv' in m['note']
    page = (own_run/'report.html').read_text()
    assert 'macro_f1' in page and 'contradiction, entailment, neutral' in page
    assert json.loads((own_run/'student'/'bilstm_kd_student.json').read_text())['label_names'] == rep['labels']


def test_predict_gives_evaluates_labels_from_pytorch_and_from_onnx(own_run, mnli_files, tmp_path):
    code, _, err = cli('evaluate', '--model', own_run/'student', '--task', mnli_files/'hyp.csv', '--text-col', 'hyp',
                       '--label-col', 'judgement', '--predictions', tmp_path/'ev.jsonl', '--json')
    assert code == 0, err
    ev = [json.loads(l) for l in (tmp_path/'ev.jsonl').read_text().splitlines()][:200]
    assert len(ev) == 200 and {'text', 'label', 'gold', 'probabilities'} <= set(ev[0])
    (tmp_path/'texts.txt').write_text(''.join(r['text'] + '\n' for r in ev))
    got = {}
    for runtime in ('torch', 'onnx'):
        if runtime == 'onnx':
            code, out, err = cli('export', '--model', own_run/'student', '--onnx'); assert code == 0, err
        code, out, err = cli('predict', '--model', own_run/'student', '--file', tmp_path/'texts.txt', '--runtime', runtime)
        assert code == 0, err
        got[runtime] = [json.loads(l) for l in out.splitlines()]
    for runtime, rows in got.items():
        assert [r['label'] for r in rows] == [r['label'] for r in ev], runtime
        assert np.allclose([list(r['probabilities'].values()) for r in rows], [list(r['probabilities'].values()) for r in ev], atol=1e-4)
    from bilstm_kd.student import load_student
    assert [r['label'] for r in load_student(own_run/'student').classify([r['text'] for r in ev])] == [r['label'] for r in ev]


def test_a_stale_graph_is_refused(own_run, tmp_path):
    import shutil
    from bilstm_kd.serve import GRAPH, GRAPH_INFO
    cli('export', '--model', own_run/'student', '--onnx')
    copy = tmp_path/'student'; shutil.copytree(own_run/'student', copy)
    info = json.loads((copy/GRAPH_INFO).read_text()); info['weights'] = 'other'
    (copy/GRAPH_INFO).write_text(json.dumps(info))
    one_line_error(cli('predict', '--model', copy, 'some text'), 'was exported from other weights')
    (copy/GRAPH).unlink(); (copy/GRAPH_INFO).unlink()
    one_line_error(cli('predict', '--model', copy, '--runtime', 'onnx', 'x'), 'holds no exported graph')
    one_line_error(cli('export', '--model', copy), 'say what to export: --onnx')


def _relabelled(src: Path, dst: Path, order):
    "A plain transformers copy of teacher `src` whose outputs come in `order` (id2label says so), as a hub checkpoint would."
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    m = AutoModelForSequenceClassification.from_pretrained(str(src))
    names = [m.config.id2label[i] for i in order]
    lin = m.classifier if hasattr(m, 'classifier') else None
    import torch
    with torch.no_grad():
        lin.weight.copy_(lin.weight[order].clone()); lin.bias.copy_(lin.bias[order].clone())
    m.config.id2label, m.config.label2id = dict(enumerate(names)), {n: i for i, n in enumerate(names)}
    m.save_pretrained(dst); AutoTokenizer.from_pretrained(str(src)).save_pretrained(dst)
    return dst


def test_a_teacher_already_fine_tuned_is_adopted_in_its_own_label_order(own_run, mnli_files, tmp_path):
    shuffled = _relabelled(own_run/'teacher', tmp_path/'hub-like', [2, 0, 1])
    code, out, err = cli('run', '--task', mnli_files/'hyp.csv', '--text-col', 'hyp', '--label-col', 'judgement', '--preset', 'smoke',
                         '--out', tmp_path/'run', '--teacher', shuffled)
    assert code == 0, err[-3000:]
    assert 'is already fine-tuned for contradiction, entailment, neutral: adopted as the teacher, no fine-tuning' in err
    before, after = (json.loads((d/'teacher'/'bilstm_kd_teacher.json').read_text()) for d in (own_run, tmp_path/'run'))
    assert after['steps'] == 0 and after['head_order'] == [1, 2, 0]
    assert after['metrics']['validation']['accuracy'] == before['metrics']['validation']['accuracy']


def test_a_teacher_for_other_labels_stops_at_once_naming_both(own_run, mnli_files, tmp_path):
    df = pd.read_csv(mnli_files/'hyp.csv')
    df['judgement'] = df['judgement'].map({'entailment': 'agree', 'neutral': 'maybe', 'contradiction': 'disagree'})
    df.to_csv(tmp_path/'other.csv', index=False)
    t0 = time.time()
    one_line_error(cli('run', '--task', tmp_path/'other.csv', '--text-col', 'hyp', '--label-col', 'judgement', '--preset', 'smoke',
                       '--out', tmp_path/'run', '--teacher', own_run/'teacher'),
                   'fine-tuned for the labels contradiction, entailment, neutral, but other has agree, disagree, maybe')
    assert time.time() - t0 < 5 and not (tmp_path/'run').exists()


def test_a_pair_jsonl_runs_end_to_end(mnli_files):
    code, out, err = cli('run', '--task', mnli_files/'pairs.jsonl', '--text-col', 'premise', '--text-b-col', 'hypothesis',
                         '--preset', 'smoke', '--out', mnli_files/'prun', '--quiet')
    assert code == 0, err[-3000:]
    rep = json.loads((mnli_files/'prun'/'report.json').read_text())
    assert rep['pair'] and rep['labels'] == ['contradiction', 'entailment', 'neutral']
    assert {'accuracy', 'macro_f1'} <= set(rep['student']['metrics']['validation'])
    assert json.loads((mnli_files/'prun'/'student'/'config.json').read_text())['pair']


def test_the_label_names_travel_in_the_students_config(own_run):
    "A student uploaded with `push_to_hub` alone (config.json, weights, vocab) still answers with the task's label names."
    cfg = json.loads((own_run/'student'/'config.json').read_text())
    assert cfg['label_names'] == ['contradiction', 'entailment', 'neutral']
