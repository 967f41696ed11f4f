"The build-the-paper checks: right answers pass (however they are written), wrong and gamed ones fail, and no verdict gives the answer away."
from unittest import mock

import numpy as np
import pytest
import torch

from bilstm_kd.distillation import mse_logits
from bilstm_kd.tokenization import MASK_TOKEN
import json
import re
import sys
import threading
from pathlib import Path

import bilstm_kd.exercises as ex
from bilstm_kd.exercises import (check_kd_mse_loss, check_augment_pass, check_pair_features, check_train_step,
                                 check_ablation_reading, check_ngram, check_param_count, check_rerun_stages, check_ece,
                                 check_split_clitics, check_mixed_loss)

PASS = ('Correct', 'Close enough')


def fails(verdict):
    assert not verdict.startswith(PASS) and '\n' not in verdict, verdict
    return verdict


# --- the distillation loss -----------------------------------------------------------------------------------------

def test_kd_mse_loss_accepts_any_right_formula():
    for fn in (lambda s, t: (s - t).pow(2).sum(-1).mean(),
               lambda s, t: torch.nn.functional.mse_loss(s, t, reduction='sum') / len(s),
               lambda s, t: ((t - s) ** 2).sum(dim=1).mean(dim=0)):
        assert check_kd_mse_loss(fn).startswith('Correct')


@pytest.mark.parametrize('fn, says', [
    (lambda s, t: torch.nn.functional.mse_loss(s, t), 'averages over the classes'),
    (lambda s, t: (s - t).pow(2).sum(), 'sums over the batch'),
    (lambda s, t: -(s - t).pow(2).sum(-1).mean(), 'wrong sign'),
    (lambda s, t: (s - t).pow(2).sum(-1), 'your loss has shape ('),
    (lambda s, t: torch.tensor(3.0), 'ignores both'),
    (lambda s, t: s.pow(2).sum(-1).mean(), 'ignores the teacher'),
    (lambda s, t: float((s - t).pow(2).sum(-1).mean()), 'torch tensor'),
    (lambda s, t: torch.tensor(((s - t).detach().numpy() ** 2).sum(-1).mean()), 'no gradient'),
    (mse_logits, "library's own mse_logits"),
    (lambda s, t: mse_logits(s, t), "uses the library's mse_logits"),
    (lambda s, t: torch.nn.functional.kl_div(s.log_softmax(-1), t.log_softmax(-1), log_target=True, reduction='batchmean'),
     'a constant is added to every logit of a row'),                    # KL: shift-invariant, not deaf
    (lambda s, t: ((s - s.mean(-1, keepdim=True)) - (t - t.mean(-1, keepdim=True))).pow(2).sum(-1).mean(), 'centred logits'),
    (lambda s, t: None, 'did you forget `return`'),
    (lambda s, t: t.sub_(s.detach()).pow(2).sum(-1).mean(), 'in place'),
])
def test_kd_mse_loss_names_the_mistake(fn, says):
    assert says in fails(check_kd_mse_loss(fn))


def test_kd_mse_loss_verdicts_never_print_a_value():
    for fn in (lambda s, t: torch.nn.functional.mse_loss(s, t), lambda s, t: torch.tensor(1.0), lambda s, t: (s - t).pow(2).sum()):
        assert not re.search(r'\d\.\d{2,}', fails(check_kd_mse_loss(fn)))


def off_the_record(fn):
    "A gamed answer: `fn` run from another thread after switching the profiler off."
    def run(*args, **kwargs):
        sys.setprofile(None); out = []
        def go():
            try: out.append(fn(*args, **kwargs))
            except Exception as e: out.append(e)          # raised again in the caller's thread, as a learner's error
        t = threading.Thread(target=go); t.start(); t.join()
        if isinstance(out[0], Exception): raise out[0]
        return out[0]
    return run


def by_name(module, name):
    import importlib
    return getattr(importlib.import_module(f'bilstm_kd.{module}'), name)


def test_the_library_is_caught_however_it_is_reached():
    assert "calls the library's mse_logits" in fails(check_kd_mse_loss(off_the_record(lambda s, t: by_name('distillation', 'mse_' + 'logits')(s, t))))
    assert "calls the library's kd_loss" in fails(check_kd_mse_loss(lambda s, t: by_name('distillation', 'kd_' + 'loss')(s, t, alpha=0.0)))
    assert not __import__("bilstm_kd.grading", fromlist=["TRIPS"]).TRIPS and mse_logits(torch.ones(1, 2), torch.zeros(1, 2)).item() == 2.0     # the wires are off afterwards
    assert "calls the library's SiameseBiLSTM" in fails(check_pair_features(off_the_record(reassembled)))
    assert "calls the library's tokenize" in fails(check_split_clitics(off_the_record(lambda t: ' '.join(by_name('tokenization', 'tokenize')(t)))))
    assert "calls the library's train_epoch" in fails(check_train_step(off_the_record(lambda m, o, b, z: by_name('distillation', 'train_' + 'epoch')(m, o, [b], z))))


def reassembled(h1, h2):
    "The library's SiameseBiLSTM with its encoder and head replaced by identities: its forward computes the features."
    cls = by_name('student', 'SiameseBiLSTM'); m = cls.__new__(cls); torch.nn.Module.__init__(m)
    m.encoder, m.head = (lambda ids, lengths: ids), torch.nn.Identity()
    return m(h1, None, h2, None)


def test_a_regex_like_the_librarys_is_the_learners_own():
    pattern = r"(?<=\w)(n't|'s|'re|'ve|'ll|'d|'m)\b"
    own = re.compile(pattern, re.I)                     # the library's pattern and flags: a distinct object all the same
    for fn in (lambda t: re.sub(pattern, r' \1', t, flags=re.I), lambda t: own.sub(r' \1', t), lambda t: re.sub(pattern, r' \1', t)):
        assert check_split_clitics(fn).startswith('Correct'), check_split_clitics(fn)
    from bilstm_kd.tokenization import CLITIC_RE
    assert "uses the library's CLITIC_RE" in fails(check_split_clitics(lambda t: CLITIC_RE.sub(r' \1', t)))


def test_mixed_loss_tells_the_weights_apart():
    ce, mse = np.log(2), 5.0
    assert check_mixed_loss(0.3 * ce + 0.7 * mse, 0.7 * mse).startswith('Correct')
    assert 'not the other way round' in fails(check_mixed_loss(0.7 * ce + 0.3 * mse, 0.3 * mse))


# --- one augmentation pass -----------------------------------------------------------------------------------------

def sample(counts, rng):
    words, c = zip(*counts.items())
    return words[rng.choice(len(words), p=np.array(c) / sum(c))]


def ngram(out, rng):
    n = min(int(rng.integers(1, 6)), len(out)); s = int(rng.integers(0, len(out) - n + 1))
    return out[s:s + n]


def loop_pass(words, tags, vocab, rng, p_mask=0.1, p_pos=0.1, p_ng=0.25):
    out = []
    for w, t in zip(words, tags):
        x = rng.random()
        out.append(MASK_TOKEN if x < p_mask else sample(vocab[t], rng) if x < p_mask + p_pos else w)
    return ngram(out, rng) if out and rng.random() < p_ng else out


def vector_pass(words, tags, vocab, rng, p_mask=0.1, p_pos=0.1, p_ng=0.25):
    "Another right answer: all draws first, in another order, so it shares no random number with `loop_pass`."
    coin, n, u = rng.random(), rng.integers(1, 6), rng.random()
    x = rng.random(len(words))
    out = [MASK_TOKEN if xi < p_mask else sample(vocab[t], rng) if xi < p_mask + p_pos else w for xi, w, t in zip(x, words, tags)]
    if coin >= p_ng or not out: return out
    n = min(int(n), len(out)); s = int(u * (len(out) - n + 1))
    return out[s:s + n]


def test_augment_pass_tests_statistics_not_one_sequence_of_draws():
    assert check_augment_pass(loop_pass).startswith('Correct')
    assert check_augment_pass(vector_pass).startswith('Correct')


def independent_draws(words, tags, vocab, rng, p_mask=0.1, p_pos=0.1, p_ng=0.25):
    out = [MASK_TOKEN if rng.random() < p_mask else sample(vocab[t], rng) if rng.random() < p_pos else w for w, t in zip(words, tags)]
    return ngram(out, rng) if out and rng.random() < p_ng else out


def ignores_p_mask(words, tags, vocab, rng, p_mask=0.1, p_pos=0.1, p_ng=0.25):
    return loop_pass(words, tags, vocab, rng, 0.1, p_pos, p_ng)


def ngram_before_rules(words, tags, vocab, rng, p_mask=0.1, p_pos=0.1, p_ng=0.25):
    kept = words[:3] if words and rng.random() < p_ng else words    # always the first words: not a uniform start
    return loop_pass(kept, tags, vocab, rng, p_mask, p_pos, 0.0)


@pytest.mark.parametrize('fn, says', [
    (lambda w, t, v, rng, **p: list(w), 'masked 0.0%'),
    (independent_draws, 'one draw X_i per word'),
    (ignores_p_mask, 'must come back unchanged'),
    (lambda w, t, v, rng, **p: loop_pass(w, ['NN'] * len(w), v, rng, **p), 'keep the POS tag'),
    (ngram_before_rules, 'n-gram lengths'),
    (lambda w, t, v, rng, **p: loop_pass(w, t, v, np.random.default_rng(), **p), 'same seed'),
    (lambda w, t, v, rng, **p: loop_pass(w, t, v, np.random.default_rng(0), **p), 'Not quite'),
    (lambda w, t, v, rng, **p: ['[MASK]'] * len(w), 'p_mask = p_pos = p_ng = 0'),
])
def test_augment_pass_names_the_broken_invariant(fn, says):
    assert says in fails(check_augment_pass(fn))


def test_augment_pass_catches_a_mutated_input_and_the_stub():
    def pops(words, tags, vocab, rng, **p):
        words.append('x'); return words[:-1]
    assert 'changed the list of words' in fails(check_augment_pass(pops))
    def stub(words, tags, vocab, rng, p_mask=0.1, p_pos=0.1, p_ng=0.25): raise NotImplementedError
    assert fails(check_augment_pass(stub)).startswith('Not yet')


def test_ngram_check_rejects_the_global_generator():
    def global_rng(tokens, rng):
        return ngram(tokens, np.random.default_rng()) if tokens else []
    assert 'same seed' in fails(check_ngram(global_rng))


# --- the pair features ---------------------------------------------------------------------------------------------

def test_pair_features():
    assert check_pair_features(lambda a, b: torch.cat([a, b, a * b, torch.abs(a - b)], dim=1)).startswith('Correct')
    assert 'block 4' in fails(check_pair_features(lambda a, b: torch.cat([a, b, a * b, a - b], -1)))
    assert 'block 2' in fails(check_pair_features(lambda a, b: torch.cat([a, a, a * b, (a - b).abs()], -1)))
    assert 'shape' in fails(check_pair_features(lambda a, b: torch.cat([a, b, a * b, (a - b).abs()], 0)))
    assert 'no gradient' in fails(check_pair_features(lambda a, b: torch.cat([a, b, a * b, (a - b).abs()], -1).detach()))
    assert 'torch tensor' in fails(check_pair_features(lambda a, b: torch.cat([a, b, a * b, (a - b).abs()], -1).tolist()))
    assert 'in place' in fails(check_pair_features(lambda a, b: torch.cat([a, b, a.detach().mul_(b.detach()), (a - b).abs()], -1)))
    assert "calls the library's SiameseBiLSTM" in fails(check_pair_features(reassembled))


# --- one training step ---------------------------------------------------------------------------------------------

def step(model, opt, batch, z_t):
    loss = ((model(*batch) - z_t) ** 2).sum(-1).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    return loss.item()


def test_train_step():
    assert check_train_step(step).startswith('Correct')
    assert check_train_step(lambda m, o, b, z: torch.tensor(step(m, o, b, z))).startswith('Correct')   # a 0-d tensor is fine
    def no_zero(model, opt, batch, z_t):
        loss = ((model(*batch) - z_t) ** 2).sum(-1).mean(); loss.backward(); opt.step(); return loss.item()
    def zero_after(model, opt, batch, z_t):
        loss = ((model(*batch) - z_t) ** 2).sum(-1).mean(); loss.backward(); opt.zero_grad(); opt.step(); return loss.item()
    def twice(model, opt, batch, z_t):
        step(model, opt, batch, z_t); return step(model, opt, batch, z_t)
    assert 'stale' in fails(check_train_step(no_zero))
    assert 'did not move' in fails(check_train_step(zero_after))
    assert 'after the step' in fails(check_train_step(twice))
    assert 'loss as a number' in fails(check_train_step(lambda m, o, b, z: [step(m, o, b, z)]))
    def eval_mode(model, opt, batch, z_t):
        model.eval(); return step(model, opt, batch, z_t)
    def eval_then_train(model, opt, batch, z_t):
        model.eval(); loss = step(model, opt, batch, z_t); model.train(); return loss
    assert 'eval mode' in fails(check_train_step(eval_mode))
    assert 'dropout off' in fails(check_train_step(eval_then_train))


# --- reading an ablation -------------------------------------------------------------------------------------------

ROWS = [dict(group='reference', name='KD: the preset', model='student', metric=0.812),
        dict(group='reference', name='no KD: gold labels', model='baseline', metric=0.790),
        dict(group='augmentation', name='no augmentation', model='student', metric=0.793),
        dict(group='augmentation', name='masking only', model='student', metric=0.793),
        dict(group='augmentation', name='n-gram sampling only', model='student', metric=0.805)]


def ablation_folder(folder: Path, rows=ROWS, listed=None) -> Path:
    "A finished ablation as `ablate` lays it out: each row's run records, and ablation.json (its rows: `listed`, else `rows`)."
    from bilstm_kd.ablation import MODELS, Setting
    for r in rows:
        d = folder/'rows'/Setting(r['group'], r['name'], {}).slug; d.mkdir(parents=True)
        (d/'stages.json').write_text(json.dumps({MODELS[r['model']]: {'result': {'metrics': {'selection': {'accuracy': r['metric']}}}}}))
    (folder/'ablation.json').write_text(json.dumps(dict(task='sst2', preset='smoke', metric='selection/accuracy', rows=listed or rows)))
    return folder


def test_ablation_reading_reads_the_runs(tmp_path):
    abl = ablation_folder(tmp_path/'a')
    assert check_ablation_reading('no augmentation', 2.2, abl, 'augmentation').startswith('Correct')
    assert check_ablation_reading('Masking  only', 2.2, abl, 'augmentation').startswith('Correct')    # tied; case and spaces
    assert check_ablation_reading('no KD: gold labels', 2.2, abl/'ablation.json').startswith('Correct')   # the whole chart
    assert 'not in the augmentation group' in fails(check_ablation_reading('no KD: gold labels', 2.2, abl, 'augmentation'))
    assert 'fraction' in fails(check_ablation_reading('no augmentation', 0.022, abl, 'augmentation'))
    assert 'sign' in fails(check_ablation_reading('no augmentation', -2.2, abl, 'augmentation'))
    assert 'one row' in fails(check_ablation_reading(['no augmentation', 'masking only'], 2.2, abl, 'augmentation'))
    v = fails(check_ablation_reading('n-gram sampling only', 2.2, abl, 'augmentation'))
    assert 'no augmentation' not in v and 'masking only' not in v                                  # the answer is not named
    # made-up figures: a dict of rows, an ablation.json edited after its runs, a folder without the runs
    assert 'not dict' in fails(check_ablation_reading('n-gram sampling only', 1.5, {'rows': ROWS}, 'augmentation'))
    edited = ablation_folder(tmp_path/'b', listed=[dict(r, metric=0.5) if r['name'] == 'n-gram sampling only' else r for r in ROWS])
    assert 'not the lowest' in fails(check_ablation_reading('n-gram sampling only', 2.2, edited, 'augmentation'))
    (tmp_path/'c').mkdir(); (tmp_path/'c'/'ablation.json').write_text((abl/'ablation.json').read_text())
    assert 'is missing' in fails(check_ablation_reading('no augmentation', 2.2, tmp_path/'c', 'augmentation'))


# --- the hardened number checks --------------------------------------------------------------------------------------

def test_number_checks_refuse_look_alikes_and_keep_the_answer():
    for v in (mock.ANY, '963002', True, np.array([963002, 1])):
        assert 'answer with' in fails(check_param_count(v))
    assert '963,002' not in fails(check_param_count(963_000)) and '963002' not in fails(check_param_count(963_000))
    assert 'answer with a list' in fails(check_rerun_stages([mock.ANY] * 5))


@pytest.fixture
def fake_pack(tmp_path, monkeypatch):
    "A course pack with known figures: teacher 0.9 and student 0.8 on dev, BERT-large 40x the student, 250 rows/s."
    p = tmp_path/'pack'; (p/'data'/'SST-2').mkdir(parents=True)
    (p/'data'/'SST-2'/'selection.tsv').write_text('sentence\tlabel\n')
    acc = lambda a: {'metrics': {'validation': {'accuracy': a}}}
    speed = [dict(model='student', latency_ms=1.0, latency_ratio=1.0, reference=True), dict(model='bert-large', latency_ms=40.0, latency_ratio=40.0)]
    (p/'eval.json').write_text(json.dumps(dict(teacher=acc(0.9), student=acc(0.8), speed=speed)))
    (p/'report.json').write_text(json.dumps(dict(labelling=dict(n=1000, seconds=4.0, sentences_per_s=250.0))))
    (p/'manifest.json').write_text('{}')
    monkeypatch.setenv('BILSTM_KD_COURSE_PACK', str(p))
    return p


def test_pack_checks_read_the_pack(fake_pack):
    assert ex.check_expected_agreement(0.9 * 0.8 + 0.1 * 0.2).startswith('Correct')
    assert 'both right' in fails(ex.check_expected_agreement(0.72))
    assert ex.check_latency_ratio(60).startswith('Close enough') and 'too high' in fails(ex.check_latency_ratio(400))
    assert ex.check_label_rate(250).startswith('Correct') and 'seconds per sentence' in fails(ex.check_label_rate(0.004))
    (fake_pack/'manifest.json').unlink()
    assert fails(ex.check_label_rate(250)).startswith('Not yet: no course pack')


DATA_CHECKS = ['check_majority_baseline', 'check_quoting_loss', 'check_unk_rate', 'check_padding_saved', 'check_int8_fraction',
               'check_ece', 'check_copy_prob', 'check_param_count', 'check_padding_leak', 'check_gradients', 'check_expected_agreement',
               'check_latency_ratio', 'check_label_rate']


@pytest.mark.parametrize('name', DATA_CHECKS)
def test_checks_take_no_made_up_inputs(name):
    "A check grades a number against data it reads itself: figures passed beside the answer are refused, not used."
    check = getattr(ex, name)
    n = 2 if name == 'check_gradients' else 1
    fake = ([[0.0, 1.0]] * 872, [1] * 872, {'rows': []})
    assert 'call it as' in fails(check(*([0.5] * n), *fake))


def _raises(*a, **k): raise ValueError('boom')
JUNK = [None, object(), 'x', float('inf'), -1, 10 ** 30, [], {}, mock.ANY, _raises, lambda *a, **k: None,
        lambda *a, **k: object(), lambda: 1, lambda *a, **k: 'text', lambda *a, **k: [None], lambda *a, **k: torch.zeros(3, 3)]


@pytest.mark.parametrize('name', ex.__all__)
def test_no_check_raises_on_any_answer(name):
    "Every check answers any answer with one line (no traceback), never 'Correct'."
    check = getattr(ex, name)
    n = len([p for p in __import__('inspect').signature(check).parameters.values() if p.default is p.empty])
    for junk in JUNK:
        v = check(*([junk] * n))
        assert isinstance(v, str) and '\n' not in v and not v.startswith(PASS), (name, junk, v)


def test_chapter_04_toy_batch_is_the_checks():
    "check_padding_leak grades the toy batch of chapter 04: the same three sentences."
    nb = json.loads(Path(__file__).parents[1].joinpath('nbs/04_student.ipynb').read_text())
    src = next(''.join(c['source']) for c in nb['cells'] if ''.join(c['source']).startswith('texts = ['))
    assert tuple(eval(src.split('\n')[0].split('=', 1)[1])) == ex._TOY_TEXTS


@pytest.mark.parametrize('nb, stub, impl', [('01_tokenization', 'def split_clitics', 'CLITIC_RE = re.compile'),
                                            ('04_student', 'def features', 'class SiameseBiLSTM'),
                                            ('05_distillation', 'def kd_mse_loss', 'def mse_logits'),
                                            ('05_distillation', 'def train_step', 'def train_epoch')])
def test_the_exercise_comes_before_its_collapsed_implementation(nb, stub, impl):
    cells = json.loads(Path(__file__).parents[1].joinpath(f'nbs/{nb}.ipynb').read_text())['cells']
    at = lambda s: next(i for i, c in enumerate(cells) if s in ''.join(c['source']))
    i, j = at(stub), at(impl)
    assert i < j, f'{nb}: the exercise {stub!r} comes after its implementation'
    assert cells[j]['metadata'].get('jupyter', {}).get('source_hidden') and cells[j]['metadata'].get('cellView') == 'form'
    assert 'Try it first' in ''.join(cells[i - 1]['source'])
