"Chapters 06, 06a, 06b: metrics, sizes, the speed table (shape and ratios, never timings), the paper's tables, plots, the report page."
import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from bilstm_kd.core import UserError
from bilstm_kd.data import load_task
from bilstm_kd.evaluation import (
    OUTCOMES, SplitResult, agreement, as_predictor, centered_logits, compare, evaluate, evaluate_folder, main_score,
    model_size, outcomes, param_counts, plot_agreement, plot_confusions, plot_logit_scatter, predict_splits)
from bilstm_kd.core import size_on_disk
from bilstm_kd.speed import (BERT_SIZES, bench_texts, bert_param_count, measure_speed, random_bert, speed_table, with_reference,
                             student_runner)
from bilstm_kd.report import PAPER_TABLE1, PAPER_TABLE2, paper_points, paper_ratios, plot_tradeoff, report_html, table1, table2
from bilstm_kd.exercises import check_bert_params
from bilstm_kd.student import StudentConfig, build_student, count_params, save_student
from bilstm_kd.labels import softmax
from bilstm_kd.tokenization import Vocab, teacher_tokenizer

TINY_BERT = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
TEXTS = ['a gripping , funny film .', 'dull and far too long .', 'it works .', 'great']


@pytest.fixture(scope='module')
def student():
    v = Vocab.build([t.split() for t in TEXTS])
    torch.manual_seed(0)
    return build_student(StudentConfig(vocab_size=len(v), embed_dim=8, hidden=4, fc=6, task='sst2'), vocab=v).eval()


@pytest.fixture(scope='module')
def tok():
    return teacher_tokenizer()


@pytest.fixture(scope='module')
def toy_rows(student, tok):
    return speed_table({'student': student, 'tiny-bert': (random_bert(**TINY_BERT), tok)}, TEXTS,
                       batch_sizes=(2, 8), latency_calls=3, max_batches=2, budget_s=5)


def const(row):
    return lambda texts: np.tile(np.asarray(row, np.float32), (len(texts), 1))


# --- metrics -------------------------------------------------------------------------------------------------------

def test_split_metrics_known_inputs():
    r = SplitResult('validation', list('abcd'), np.array([1, 1, 1, 0]), np.eye(2)[[1, 1, 0, 0]])
    assert r.metrics('sst2') == {'n': 4, 'accuracy': 0.75}
    m = r.metrics('qqp')
    assert m['accuracy'] == 0.75 and m['f1'] == pytest.approx(0.8)   # precision 1, recall 2/3


def test_evaluate_fake_on_sst2_dev(glue_dir):
    ev = evaluate(as_predictor(const([0, 1]), 'pos', task='sst2'), 'sst2')
    y = np.asarray(load_task('sst2', max_train=1, verbose=False)['validation']['label'])
    assert list(ev) == ['validation'] and ev['validation']['n'] == len(y)
    assert ev['validation']['accuracy'] == pytest.approx(y.mean())
    assert main_score(ev, 'sst2') == pytest.approx(y.mean())


def test_evaluate_every_mnli_split_and_notes(glue_dir):
    ev = evaluate(const([1, 0, 0]), 'mnli', max_eval=30)
    assert set(ev) <= {'validation_matched', 'validation_mismatched'} and 'validation_matched' in ev
    assert all(m['n'] == 30 for m in ev.values())
    assert 'NOT the official' in ev['validation_matched'].get('note', '')   # only dev_matched.tsv is local: carved


def test_evaluate_file_and_pair_f1(tmp_path):
    f = tmp_path / 'dev.tsv'
    f.write_text('#1 String\t#2 String\tQuality\na\tb\t1\nc\td\t0\ne\tf\t1\n')
    ev = evaluate(const([0.2, 0.8]), 'mrpc', file=f)
    assert ev == {'dev.tsv': {'n': 3, 'accuracy': pytest.approx(2 / 3), 'f1': pytest.approx(0.8)}}


def test_evaluate_errors(glue_dir, student):
    with pytest.raises(UserError, match='no split'):
        evaluate(const([0, 1]), 'sst2', splits=['test'])
    with pytest.raises(UserError, match='trained for sst2'):
        evaluate(student, 'qqp')
    with pytest.raises(UserError, match='does not exist'):
        evaluate('/no/such/model', 'sst2')


def test_predictor_from_student_folder(tmp_path, student, glue_dir):
    save_student(student, tmp_path / 's')
    p = as_predictor(tmp_path / 's')
    assert p.kind == 'student' and p.label_names == ('negative', 'positive') and p.vocab is not None
    res = predict_splits(p, 'sst2', max_eval=20)['validation']
    assert res.probs.shape == (20, 2) and np.allclose(res.probs.sum(-1), 1, atol=1e-5)
    np.testing.assert_allclose(res.probs, student.predict(res.texts), atol=1e-6)
    size = model_size(tmp_path / 's')
    assert size['params'] == count_params(student) and size['disk_bytes'] > 4 * size['params']


# --- size ----------------------------------------------------------------------------------------------------------

def test_param_counts_match_student_and_formula(student):
    assert param_counts(student) == {'params': count_params(student),
                                     'params_without_embeddings': count_params(student, embeddings=False)}
    for emb in (True, False):
        key = 'params' if emb else 'params_without_embeddings'
        assert param_counts(random_bert(**TINY_BERT, num_labels=3))[key] == bert_param_count(**TINY_BERT, num_labels=3,
                                                                                             embeddings=emb)
    assert bert_param_count(**BERT_SIZES['bert-base']) == 109_483_778
    assert bert_param_count(**BERT_SIZES['bert-large']) == 335_143_938


def test_size_on_disk(tmp_path):
    (tmp_path / 'd' / 'sub').mkdir(parents=True)
    (tmp_path / 'd' / 'a').write_bytes(b'x' * 10)
    (tmp_path / 'd' / 'sub' / 'b').write_bytes(b'y' * 5)
    assert size_on_disk(tmp_path / 'd') == 15 and size_on_disk(tmp_path / 'd' / 'a') == 10
    with pytest.raises(UserError):
        size_on_disk(tmp_path / 'nope')


# --- speed ---------------------------------------------------------------------------------------------------------

def test_speed_table_shape_and_ratios(toy_rows):
    assert [r['model'] for r in toy_rows] == ['student', 'tiny-bert']
    for k in ('params', 'params_without_embeddings', 'latency_ms', 'throughput_2', 'throughput_8', 'params_ratio',
              'latency_ratio', 'time_ratio_2', 'time_ratio_8', 'skipped', 'note'):
        assert all(k in r for r in toy_rows), k
    s, b = toy_rows
    assert s['params_ratio'] == s['latency_ratio'] == s['time_ratio_8'] == 1.0
    assert b['params_ratio'] == pytest.approx(b['params'] / s['params'])
    assert b['time_ratio_8'] == pytest.approx(s['throughput_8'] / b['throughput_8'])
    assert b['latency_ratio'] == pytest.approx(b['latency_ms'] / s['latency_ms'])
    json.dumps(toy_rows)   # JSON-ready: no NaN, only numbers, strings and None


def test_over_budget_batch_is_skipped_not_guessed(student):
    slow = student_runner('slow', student)
    run = slow.run
    slow.run = lambda x: (__import__('time').sleep(0.02), run(x))[1]
    row = measure_speed(slow, TEXTS, batch_sizes=(1000,), latency_calls=2, budget_s=1.0)
    assert row['throughput_1000'] is None and 'batch 1000: predicted' in row['skipped']
    assert row['latency_ms'] >= 20


def test_speed_table_errors(student):
    with pytest.raises(UserError, match='reference'):
        speed_table({'student': student}, TEXTS, reference='bert', batch_sizes=(2,), latency_calls=1)
    with pytest.raises(UserError, match='cannot time'):
        speed_table({'x': object()}, TEXTS)
    with pytest.raises(UserError, match='unknown BERT size'):
        random_bert('bert-huge')


def test_bench_texts_fixed(glue_dir):
    a, b = bench_texts(900), bench_texts(900)
    assert a == b and len(a) == 900 and a[872] == a[0]   # SST-2 dev has 872 rows, then it cycles


def test_table2_and_table1(toy_rows):
    t2 = table2(toy_rows)
    assert [r['source'] for r in t2] == ['paper'] * len(PAPER_TABLE2) + ['ours', 'ours']
    assert t2[0]['time_ratio'] == pytest.approx(1060.48 / 2.44) and t2[0]['params_ratio'] == pytest.approx(335 / 0.96)
    assert t2[-1]['measured_at'] == 'batch 8' and t2[-2]['time_ratio'] == 1.0
    t1 = table1('sst2', {'student': 0.8, 'teacher': 91.0})
    assert [r['value'] for r in t1 if r['source'] == 'ours'] == [80.0, 91.0]
    assert any(r['value'] == 90.7 and r['model'] == 'BiLSTM_SOFT' for r in t1)
    qqp = {(r['model'], r['metric']): r['value'] for r in table1('qqp', {}) if r['source'] == 'paper'}
    assert qqp == {('BERT-large', 'f1'): 72.1, ('BERT-large', 'accuracy'): 89.3, ('BiLSTM_SOFT', 'f1'): 68.2,
                   ('BiLSTM_SOFT', 'accuracy'): 88.1, ('BiLSTM', 'f1'): 63.7, ('BiLSTM', 'accuracy'): 86.2}
    mnli = {(r['model'], r['split']): r['value'] for r in table1('mnli', {})}
    assert mnli[('BERT-large', 'matched')] == 86.7 and mnli[('BiLSTM', 'mismatched')] == 68.3 and len(mnli) == 6
    assert [(p['model'], p['params'], p['latency_ratio']) for p in paper_points()] == [
        ('BERT-large', 335e6, pytest.approx(1060.48 / 2.44)), ('BiLSTM_SOFT', 0.96e6, 1.0)]


def test_paper_ratios_are_computed():
    r = {x['model']: x for x in paper_ratios()}
    assert int(r['BERT-large']['params_ratio']) == 348 and round(r['BERT-large']['params_ratio']) == 349
    assert int(r['BERT-large']['time_ratio']) == 434 and round(r['ELMo']['params_ratio']) == 98
    assert round(r['ELMo']['time_ratio']) == 15
    import bilstm_kd, pathlib
    src = ''.join(p.read_text() for p in pathlib.Path(bilstm_kd.__file__).parent.glob('*.py'))
    assert '2.62' not in src and '2.35' not in src                                   # the old, wrong Table 2 row


# --- comparison and plots ------------------------------------------------------------------------------------------

def test_outcomes_agreement_compare():
    y, t, s = np.array([0, 1, 1, 0, 1]), np.array([0, 1, 0, 1, 1]), np.array([0, 0, 1, 1, 0])
    assert outcomes(y, t, s).tolist() == [0, 1, 2, 3, 1]
    assert agreement(np.eye(2)[t], s) == 0.4
    c = compare(y, t, s)
    assert c['agreement'] == 0.4 and sum(c[o] for o in OUTCOMES) == 5 and c['teacher right, student wrong'] == 2


def test_centered_logits_recover_logits():
    z = np.array([[1., 3., -1.], [0., -2., 5.]])
    np.testing.assert_allclose(centered_logits(softmax(z)), z - z.mean(-1, keepdims=True), atol=1e-6)


def test_plots_are_figures():
    import plotly.graph_objects as go
    rng = np.random.default_rng(0)
    pt, ps, y = softmax(rng.normal(size=(20, 2))), softmax(rng.normal(size=(20, 2))), rng.integers(0, 2, 20)
    f = plot_logit_scatter(pt, ps, y, ('neg', 'pos'))
    assert isinstance(f, go.Figure) and len(f.data) == 3 and 'Pearson' in f.layout.title.text
    assert len(plot_logit_scatter(softmax(rng.normal(size=(5, 3))), softmax(rng.normal(size=(5, 3)))).data) == 4
    f = plot_confusions(y, {'teacher': pt, 'student': ps.argmax(-1)}, ('neg', 'pos'))
    assert len(f.data) == 2 and f.data[0].z.sum() == 20
    f = plot_agreement(y, pt, ps)
    assert list(f.data[0].x) == list(OUTCOMES) and sum(f.data[0].y) == 20 and 'agreement' in f.layout.title.text
    f = plot_tradeoff([dict(model='s', params=1e6, accuracy=.8, latency_ratio=1),
                       dict(model='B', source='paper', params=3e8, accuracy=94.9, latency_ratio=450)])
    assert len(f.data) == 2 and f.layout.xaxis.type == 'log' and f.data[0].y[0] == pytest.approx(80)


# --- report page ---------------------------------------------------------------------------------------------------

def test_report_html_writes_plots(tmp_path, toy_rows):
    rep = dict(task='sst2', preset='smoke', teacher={'validation': {'n': 10, 'accuracy': 0.9}},
               student={'metrics': {'accuracy': 0.85}, 'params': toy_rows[0]['params']}, baseline={'accuracy': 0.8},
               speed=toy_rows, stages={'teacher': 12.5, 'distill': 30.1}, versions={'torch': torch.__version__})
    rng = np.random.default_rng(0)
    extra = plot_agreement([0, 1, 1], softmax(rng.normal(size=(3, 2))), softmax(rng.normal(size=(3, 2))))
    out = report_html(rep, tmp_path / 'r' / 'report.html', figures=[extra], include_plotlyjs='cdn')
    page = out.read_text()
    assert out == tmp_path / 'r' / 'report.html' and page.startswith('<!DOCTYPE html>')
    assert page.count('class="plotly-graph-div"') == 3 and 'cdn.plot.ly' in page
    for s in ('Time per sentence relative to the student', 'Accuracy vs parameters', 'BiLSTM_SOFT', 'distill', '0.85'):
        assert s in page, s
    assert [p.name for p in (tmp_path / 'r').iterdir()] == ['report.html']   # atomic: no temp file left
    bare = report_html(dict(task='qqp', preset='smoke'), tmp_path / 'bare.html').read_text()
    assert 'plotly-graph-div' not in bare and '(no speed rows)' in bare


# --- CLI and exercise checks ---------------------------------------------------------------------------------------

def test_cli_bench_speed_json(monkeypatch, capsys, toy_rows):
    import argparse
    import bilstm_kd.speed as sp
    monkeypatch.setattr(sp, 'bench_speed', lambda *a, **k: toy_rows)
    from bilstm_kd.cli import build_parser
    ap = build_parser()
    args = ap.parse_args(['bench-speed', '--json', '--quick'])
    assert args.func(args) == 0
    assert [r['model'] for r in json.loads(capsys.readouterr().out)] == ['student', 'tiny-bert']
    args = ap.parse_args(['bench-speed'])
    assert args.func(args) == 0 and 'latency_ratio' in capsys.readouterr().out


def test_cli_missing_folder_exit_2():
    p = subprocess.run([sys.executable, '-m', 'bilstm_kd.cli', 'bench-speed', '--student', '/no/such', '--json'],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith('error: ') and 'does not exist' in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_checks(toy_rows):
    from bilstm_kd.exercises import _speed_rows_problem       # what check_latency_ratio asks of the pack's speed rows
    assert _speed_rows_problem(toy_rows, 'tiny-bert') is None
    assert 'No measured' in _speed_rows_problem(toy_rows, 'bert-large')
    rebased = with_reference(copy.deepcopy(toy_rows), 'tiny-bert')   # ratios to another row (bench_speed's 'fastest')
    assert _speed_rows_problem(rebased, 'student') is None
    assert 'not a speed measurement' in _speed_rows_problem([dict(r, latency_ratio=5.0) for r in toy_rows], 'tiny-bert')
    want = bert_param_count(**BERT_SIZES['bert-base'], embeddings=False)
    assert check_bert_params(want).startswith('Correct')
    assert 'embedding tables' in check_bert_params(bert_param_count(**BERT_SIZES['bert-base']))
    assert 'biases' in check_bert_params(want - 12 * (4 * 768 + 3072 + 768))


def test_bench_speed_times_pairs_for_a_pair_task(monkeypatch):
    "A siamese student must be timed on sentence pairs (regression: it was given SST-2 sentences)."
    import bilstm_kd.speed as ev
    seen = {}
    monkeypatch.setattr(ev, 'speed_models', lambda s, t, texts, **k: seen.update(texts=texts) or {})
    monkeypatch.setattr(ev, 'speed_table', lambda models, texts, *a, **k: [dict(model='student', params=1, latency_ms=1.0)])
    ev.bench_speed(task='mrpc', quick=True)
    assert isinstance(seen['texts'][0], tuple) and len(seen['texts'][0]) == 2
    ev.bench_speed(quick=True)
    assert isinstance(seen['texts'][0], str)


def test_speed_models_bert_wordpieces_come_from_the_teacher(student):
    "The BERTs are timed on the teacher's own WordPieces."
    import bilstm_kd.speed as ev
    from bilstm_kd.teacher import load_teacher
    teacher = load_teacher(None, task='sst2', device='cpu')
    runners = ev.speed_models(student, teacher, berts=('bert-base',), device='cpu')
    assert list(runners) == ['student', 'student-int8', 'student-onnx', 'student-onnx-int8', 'teacher', 'bert-base']
    assert set(runners) < set(ev.SPEED_ROWS)   # bench_speed checks --reference against SPEED_ROWS before building these
    ids = runners['bert-base'].prepare(TEXTS[:2])['input_ids']
    assert ids.tolist() == teacher.tokenizer(TEXTS[:2], padding=True, return_tensors='pt')['input_ids'].tolist()
    assert runners['bert-base'].run(runners['bert-base'].prepare(TEXTS[:2])).shape == (2, 2)
