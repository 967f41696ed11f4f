import numpy as np
import pytest

from bilstm_kd.core import UserError
from bilstm_kd.data import load_task
from bilstm_kd.tokenization import (MASK, MASK_TOKEN, DEFAULT_TEACHER, Vocab, load_vectors, resolve_backbone,
                                    resolve_vectors, tokenize)


@pytest.mark.parametrize('raw,toks', [
    ("It's great", ['it', "'s", 'great']),
    ("it 's great", ['it', "'s", 'great']),
    ("Doesn't work", ['does', "n't", 'work']),
    ("does n't work", ['does', "n't", 'work']),
    ("I'm sure they'll go", ['i', "'m", 'sure', 'they', "'ll", 'go']),
    ('Wow!!! (really?)', ['wow', '!', '!', '!', '(', 'really', '?', ')']),
    ('well-made 10,000 1.5 U.S. ...', ['well-made', '10,000', '1.5', 'u.s.', '...']),
    ('Café naïve “quoted” ’tis', ['café', 'naïve', '"', 'quoted', '"', "'", 'tis']),
    ('Ｆｕｌｌｗｉｄｔｈ', ['fullwidth']),
    ('', []),
    ('   \t\n', []),
    (f'a {MASK_TOKEN} b [mask]', ['a', MASK, 'b', MASK]),
])
def test_tokenize(raw, toks):
    assert tokenize(raw) == toks


def test_hub_and_local_text_agree():
    "GLUE's pre-tokenized text and raw text give the same tokens."
    assert tokenize("the film is n't bad , it 's `` fun '' .") == tokenize("The film isn't bad, it's ``fun''.")


def test_vocab_api_and_round_trip(tmp_path):
    v = Vocab.build(['b a a', 'c a b', 'd'], min_freq=1)
    assert v.get_itos()[:6] == ['<pad>', '<unk>', '<mask>', 'a', 'b', 'c']
    assert (v.pad_index, v.unk_index, v.mask_index) == (0, 1, 2)
    assert len(v) == 7 and v['zzz'] == 1 and v.get_default_index() == 1
    assert v.lookup_indices(['a', 'zzz']) == [3, 1] and v.lookup_tokens([3, 4]) == ['a', 'b']
    assert v.encode('A b [MASK]') == [3, 4, 2] and v.decode([3, 4, 0, 0]) == 'a b'
    assert len(Vocab.build(['b a a', 'c a b', 'd'], min_freq=2)) == 5
    assert len(Vocab.build(['b a a', 'c a b', 'd'], max_size=1)) == 4
    v.save(tmp_path/'vocab.json')
    w = Vocab.load(tmp_path/'vocab.json')
    assert w == v and w.counts == v.counts and w.encode('c d e') == v.encode('c d e')
    (tmp_path/'bad.json').write_text('{')
    with pytest.raises(UserError, match='not a bilstm_kd vocabulary'):
        Vocab.load(tmp_path/'bad.json')


def _w2v_files(tmp_path, words):
    (tmp_path/'v.txt').write_text(''.join(f"{w} {' '.join(map(str, x))}\n" for w, x in words.items()))
    (tmp_path/'v.vec').write_text(f'{len(words)} 3\n' + (tmp_path/'v.txt').read_text())
    with open(tmp_path/'v.bin', 'wb') as f:
        f.write(f'{len(words)} 3\n'.encode())
        for w, x in words.items(): f.write(w.encode() + b' ' + np.array(x, np.float32).tobytes())
    import gzip, shutil
    with open(tmp_path/'v.bin', 'rb') as a, gzip.open(tmp_path/'v.bin.gz', 'wb') as b: shutil.copyfileobj(a, b)
    return ['v.txt', 'v.vec', 'v.bin', 'v.bin.gz']


def test_vectors_align_with_vocab(tmp_path):
    words = {'Good': [9., 9., 9.], 'good': [1., 2., 3.], 'Movie': [4., 5., 6.], 'other': [7., 8., 9.]}
    v = Vocab(['<pad>', '<unk>', '<mask>', 'movie', 'good', 'unseen'])
    for name in _w2v_files(tmp_path, words):
        r = load_vectors(v, tmp_path/name, seed=0)
        assert r.matrix.shape == (6, 3) and r.matrix.dtype == np.float32
        assert r.matrix[v['good']].tolist() == [1., 2., 3.]      # exact match beats the cased 'Good'
        assert r.matrix[v['movie']].tolist() == [4., 5., 6.]     # cased word2vec entry, matched lower-cased
        assert r.found.tolist() == [False, False, False, True, True, False]
        assert not r.matrix[0].any()                              # <pad> is zeros
        assert np.abs(r.matrix[v['unseen']]).max() <= np.sqrt(3) * np.stack([[1, 2, 3], [4, 5, 6]]).std() + 1e-6
    assert load_vectors(v, tmp_path/'v.txt', seed=1).matrix[5].tolist() != load_vectors(v, tmp_path/'v.txt', seed=2).matrix[5].tolist()
    cov = load_vectors(v, tmp_path/'v.txt').coverage([['good', 'good', 'unseen', 'zzz']])
    assert cov == {'types': pytest.approx(2/3), 'tokens': pytest.approx(0.5)}


def test_packaged_glove_coverage(glue_dir):
    ds = load_task('sst2', data_dir=glue_dir, max_train=2000, verbose=False)['train']
    v = Vocab.build(ds['text_a'])
    r = load_vectors(v, 'glove-50d')
    assert r.dim == 50 and r.coverage()['types'] > 0.9 and r.coverage()['tokens'] > 0.97
    sim = lambda a, b: float(r.matrix[v[a]] @ r.matrix[v[b]] / np.linalg.norm(r.matrix[v[a]]) / np.linalg.norm(r.matrix[v[b]]))
    assert sim('good', 'great') > sim('good', 'the')


def test_vector_errors(tmp_path):
    v = Vocab(['<pad>', '<unk>', '<mask>', 'a'])
    with pytest.raises(UserError, match='not found'):
        load_vectors(v, tmp_path/'none.txt')
    (tmp_path/'x.txt').write_text('zzz 1 2\n')
    with pytest.raises(UserError, match='no word of the vocabulary'):
        load_vectors(v, tmp_path/'x.txt')


def test_default_backbone_resolves_offline():
    "Offline, the default hub id resolves to the HF cache or the packaged snapshot: a BERT whose mask is one token."
    p = resolve_backbone()
    assert (p/'config.json').is_file() and (p/'model.safetensors').is_file()
    assert resolve_backbone(DEFAULT_TEACHER) == p and resolve_backbone(p) == p
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(p))
    assert tok.convert_tokens_to_ids(tok.tokenize(MASK_TOKEN)) == [tok.mask_token_id]


def test_unknown_model_fails_fast_offline(monkeypatch, tmp_path):
    import time
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    t = time.time()
    with pytest.raises(UserError, match="cannot load 'no-such-org/no-such-model'.*HF_HUB_OFFLINE"):
        resolve_backbone('no-such-org/no-such-model')
    with pytest.raises(UserError, match='not a model folder'): resolve_backbone(tmp_path)
    assert time.time() - t < 5


def test_vector_sources_offline():
    assert resolve_vectors('auto')[0] in ('kumo', 'hub') and resolve_vectors('glove-50d')[0] == 'kumo'
    with pytest.raises(UserError, match='glove-300d comes from the hub'): resolve_vectors('glove-300d')
