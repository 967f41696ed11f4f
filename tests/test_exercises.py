"The build-the-paper checks: right answers pass (however they are written), wrong and gamed ones fail, and no verdict gives the answer away."
from unittest import mock

import numpy as np
import pytest
import torch

from bilstm_kd.distillation import mse_logits
from bilstm_kd.tokenization import MASK_TOKEN
from bilstm_kd.exercises import (check_kd_mse_loss, check_augment_pass, check_pair_features, check_train_step,
                                 check_ablation_reading, check_ngram, check_param_count, check_rerun_stages, check_ece)

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
    (lambda s, t: (s - t).pow(2).sum(-1), 'shape (4,)'),
    (lambda s, t: torch.tensor(3.0), 'ignores both'),
    (lambda s, t: s.pow(2).sum(-1).mean(), 'ignores the teacher'),
    (lambda s, t: float((s - t).pow(2).sum(-1).mean()), 'torch tensor'),
    (lambda s, t: torch.tensor(((s - t).detach().numpy() ** 2).sum(-1).mean()), 'no gradient'),
    (mse_logits, "library's own mse_logits"),
    (lambda s, t: mse_logits(s, t), "calls the library's mse_logits"),
    (lambda s, t: t.sub_(s.detach()).pow(2).sum(-1).mean(), 'in place'),
])
def test_kd_mse_loss_names_the_mistake(fn, says):
    assert says in fails(check_kd_mse_loss(fn))


def test_kd_mse_loss_verdicts_never_print_the_loss():
    g = torch.Generator().manual_seed(0)
    zs, zt = (3 * torch.randn(4, 2, generator=g) for _ in range(2))
    value = mse_logits(zs, zt).item()
    for fn in (lambda s, t: torch.nn.functional.mse_loss(s, t), lambda s, t: torch.tensor(1.0)):
        v = check_kd_mse_loss(fn)
        assert f'{value:.2f}' not in v and f'{value:.3f}' not in v


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


# --- reading an ablation -------------------------------------------------------------------------------------------

ABL = {'rows': [dict(group='reference', name='KD: the preset', model='student', metric=0.812),
                dict(group='reference', name='no KD: gold labels', model='baseline', metric=0.790),
                dict(group='augmentation', name='no augmentation', model='student', metric=0.793),
                dict(group='augmentation', name='masking only', model='student', metric=0.793),
                dict(group='augmentation', name='n-gram sampling only', model='student', metric=0.805)]}


def test_ablation_reading_accepts_ties_and_the_folder(tmp_path):
    import json
    assert check_ablation_reading('no augmentation', 2.2, ABL, 'augmentation').startswith('Correct')
    assert check_ablation_reading('Masking  only', 2.2, ABL, 'augmentation').startswith('Correct')    # tied; case and spaces
    (tmp_path/'ablation.json').write_text(json.dumps(ABL))
    assert check_ablation_reading('no KD: gold labels', 2.2, tmp_path).startswith('Correct')          # the whole chart
    assert 'not in the augmentation group' in fails(check_ablation_reading('no KD: gold labels', 2.2, ABL, 'augmentation'))
    assert 'fraction' in fails(check_ablation_reading('no augmentation', 0.022, ABL, 'augmentation'))
    assert 'sign' in fails(check_ablation_reading('no augmentation', -2.2, ABL, 'augmentation'))
    assert 'one row' in fails(check_ablation_reading(['no augmentation', 'masking only'], 2.2, ABL, 'augmentation'))
    v = fails(check_ablation_reading('n-gram sampling only', 2.2, ABL, 'augmentation'))
    assert 'no augmentation' not in v and 'masking only' not in v                                  # the answer is not named
    assert 'pass the ablation' in fails(check_ablation_reading('x', 1, {'rows': []}))


# --- the hardened number checks --------------------------------------------------------------------------------------

def test_number_checks_refuse_look_alikes_and_keep_the_answer():
    for v in (mock.ANY, '963002', True, np.array([963002, 1])):
        assert 'answer with' in fails(check_param_count(v))
    assert '963,002' not in fails(check_param_count(963_000)) and '963002' not in fails(check_param_count(963_000))
    assert 'answer with a list' in fails(check_rerun_stages([mock.ANY] * 5))


def test_ece_refuses_stand_in_logits():
    z, y = np.zeros((872, 2)), np.arange(872) % 2
    assert 'trained model' in fails(check_ece(0.0, z, y))
    assert 'sample' in fails(check_ece(0.5, np.array([[0.0, 1.0]]), np.array([0])))
