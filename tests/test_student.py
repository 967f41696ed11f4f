"Tests for bilstm_kd.student: shapes, padding invariance, frozen channels, save/load round trip."
import json

import numpy as np
import pytest
import torch

from bilstm_kd.core import UserError
from bilstm_kd.tokenization import Vocab, tokenize
from bilstm_kd.student import (StudentConfig, BiLSTMClassifier, SiameseBiLSTM, build_student, encode, count_params,
                               save_student, load_student)
from bilstm_kd.exercises import check_param_count, check_pair_features, check_padding_leak

TEXTS = ["a gripping , funny film .", "dull .", "the plot is a mess but the actors are great .", ""]
PAIRS = [(TEXTS[0], TEXTS[1]), (TEXTS[2], TEXTS[0]), (TEXTS[1], TEXTS[2])]


@pytest.fixture
def vocab(): return Vocab.build([tokenize(t) for t in TEXTS])


def make(vocab, **kw):
    torch.manual_seed(0)
    vecs = np.random.default_rng(0).normal(size=(len(vocab), 8)).astype(np.float32); vecs[0] = 0
    cfg = StudentConfig(**{'vocab_size': len(vocab), 'embed_dim': 8, 'hidden': 6, 'fc': 5, 'task': 'sst2', **kw})
    return build_student(cfg, vecs, vocab).eval(), vecs


def test_shapes_single_and_pair(vocab):
    m, _ = make(vocab)
    assert isinstance(m, BiLSTMClassifier)
    assert m(*encode(vocab, TEXTS).batch([0, 1, 2, 3])).shape == (4, 2)
    p = m.predict(TEXTS)
    assert p.shape == (4, 2) and p.dtype == np.float32 and np.allclose(p.sum(1), 1, atol=1e-5)
    pm, _ = make(vocab, pair=True, num_labels=3, task='mnli')
    assert isinstance(pm, SiameseBiLSTM)
    assert pm(*encode(vocab, PAIRS).batch([0, 1, 2])).shape == (3, 3)
    assert pm.predict(PAIRS).shape == (3, 3)
    with pytest.raises(UserError, match='pairs'): pm.predict(TEXTS)
    with pytest.raises(UserError, match='mix'): encode(vocab, [TEXTS[0], PAIRS[0]])


def test_padding_invariance(vocab):
    m, _ = make(vocab)
    x = encode(vocab, TEXTS)
    alone = m(*x.batch([1]))
    batched = m(*x.batch([2, 1, 0, 3]))
    torch.testing.assert_close(alone, batched[1:2], atol=1e-6, rtol=0)
    pm, _ = make(vocab, pair=True)
    xp = encode(vocab, PAIRS)
    torch.testing.assert_close(pm(*xp.batch([0])), pm(*xp.batch([1, 0, 2]))[1:2], atol=1e-6, rtol=0)


def test_predict_order_independent_of_batching(vocab):
    m, _ = make(vocab)
    np.testing.assert_allclose(m.predict(TEXTS, batch_size=1), m.predict(TEXTS, batch_size=256), atol=1e-6)


def test_embedding_modes(vocab):
    def grads(mode):
        m, _ = make(vocab, embed_mode=mode)
        return {n: p.requires_grad for n, p in m.named_parameters() if n.startswith('encoder.embed') or n.startswith('encoder.static')}
    assert grads('static') == {'encoder.embed.weight': False}
    assert grads('non-static') == {'encoder.embed.weight': True}
    assert grads('multichannel') == {'encoder.embed.weight': True, 'encoder.static.weight': False}
    m, vecs = make(vocab)
    assert m.encoder.lstm.input_size == 16 and np.array_equal(m.encoder.static.weight.detach().numpy(), vecs)
    r, _ = make(vocab, embed_mode='rand')
    assert not np.allclose(r.encoder.embed.weight.detach().numpy()[1:], vecs[1:])
    with pytest.raises(UserError, match='embed_mode'): StudentConfig(embed_mode='frozen')
    with pytest.raises(UserError, match='vocab_size'): build_student(StudentConfig(vocab_size=3), vocab=vocab)


def test_param_count_matches_paper():
    assert count_params(build_student(StudentConfig(vocab_size=10, embed_dim=300)), embeddings=False) == 963_002
    m = build_student(StudentConfig(vocab_size=10, embed_dim=300))
    assert count_params(m) == 963_002 + 2 * 10 * 300
    assert count_params(m, trainable_only=True) == 963_002 + 10 * 300
    assert check_param_count(963_002).startswith('Correct')
    assert 'one LSTM direction' in check_param_count(963_002 - 451_200)


def test_save_load_round_trip(vocab, tmp_path):
    m, _ = make(vocab)
    save_student(m, tmp_path / 's', meta={'metrics': {'validation': {'accuracy': 0.5}}})
    files = {f.name for f in (tmp_path / 's').iterdir()}
    assert {'config.json', 'model.safetensors', 'vocab.json', 'bilstm_kd_student.json'} <= files
    marker = json.loads((tmp_path / 's' / 'bilstm_kd_student.json').read_text())
    assert marker['task'] == 'sst2' and marker['metrics'] == {'validation': {'accuracy': 0.5}}
    m2 = load_student(tmp_path / 's')
    assert m2.config == m.config and m2.vocab == m.vocab and m2.task == 'sst2'
    np.testing.assert_array_equal(m2.predict(TEXTS), m.predict(TEXTS))
    pm, _ = make(vocab, pair=True)
    save_student(pm, tmp_path / 'p')
    pm2 = load_student(tmp_path / 'p')
    assert isinstance(pm2, SiameseBiLSTM)
    np.testing.assert_array_equal(pm2.predict(PAIRS), pm.predict(PAIRS))
    with pytest.raises(UserError, match='not a student folder'): load_student(tmp_path)


def test_missing_vocab_is_an_error(vocab, tmp_path):
    m = build_student(StudentConfig(vocab_size=len(vocab), embed_dim=8))
    with pytest.raises(UserError, match='no Vocab'): m.predict(TEXTS)
    with pytest.raises(UserError, match='no Vocab'): save_student(m, tmp_path / 'x')


def test_exercise_checks():
    assert check_pair_features(lambda a, b: torch.cat([a, b, a * b, (a - b).abs()], -1)).startswith('Correct')
    assert 'block 4' in check_pair_features(lambda a, b: torch.cat([a, b, a * b, a - b], -1))
    assert check_padding_leak(2).startswith('Correct')           # the check runs chapter 04's toy batch itself
    assert check_padding_leak(3).startswith('Not quite')
