"Augmentation (Tang et al. 2019, §3.3): statistics of the rules, provenance, determinism, pairs, widget, CLI."
import json, sys, types

import numpy as np
import pytest

from bilstm_kd.augmentation import AugmentConfig, Augmenter, PosTable, WORD_RULES, draw, get_tagger, pos_tag
from bilstm_kd.transfer import build_transfer_set, load_transfer_set, save_transfer_set, transfer_meta
from bilstm_kd.widgets import AugmentExplorer
from bilstm_kd.exercises import check_copy_prob, check_ngram, check_pos_sampler
from bilstm_kd.core import UserError
from bilstm_kd.data import load_task
from bilstm_kd.tokenization import MASK_TOKEN
from bilstm_kd.tokenization import tokenize


@pytest.fixture(scope='module')
def sst2_small(glue_dir):
    return load_task('sst2', data_dir=glue_dir, max_train=1500, verbose=False)['train']

@pytest.fixture(scope='module')
def aug(sst2_small):
    return Augmenter.from_texts(sst2_small['text_a'])

@pytest.fixture(scope='module')
def mrpc_small(glue_dir):
    return load_task('mrpc', data_dir=glue_dir, max_train=150, verbose=False)['train']


@pytest.mark.parametrize('args, msg', [((1.5, .1, .25, 20), 'p_mask must be a probability in [0, 1]'),
                                       ((.1, -.01, .25, 20), 'p_pos must be a probability'),
                                       ((.1, .1, 2, 20), 'p_ng must be a probability'),
                                       ((.1, .1, float('nan'), 20), 'p_ng must be a finite number'),
                                       ((.6, .5, .25, 20), 'p_mask + p_pos must be <= 1'),
                                       ((.1, .1, .25, 0), 'n_iter must be >= 1'),
                                       ((.1, .1, .25, 2.5), 'n_iter must be an integer')])
def test_bad_parameters(args, msg):
    mk = lambda a: AugmentConfig(p_mask=a[0], p_pos=a[1], p_ng=a[2], n_iter=a[3])
    with pytest.raises(UserError, match=msg.replace('[', r'\[').replace(']', r'\]').replace('+', r'\+')) as e: mk(args)
    assert '\n' not in str(e.value)                                 # one line
    mk((1.0, 0.0, 0.0, 1)); mk((0.5, 0.5, 1.0, 1))                  # the edges are fine


def test_shares_match_p_mask_and_p_pos(aug):
    e = aug.corpus[0]
    ms, rs = [], []
    for seed in range(5):
        d = draw(e, aug.table, AugmentConfig(p_mask=0.15, p_pos=0.25, p_ng=0.0), np.random.default_rng(seed))
        assert not (d.fired['masked'] & d.fired['replaced']).any()   # one rule per word
        ms.append(d.fired['masked'].mean()); rs.append(d.fired['replaced'].mean())
    assert abs(np.mean(ms) - 0.15) < 0.005 and abs(np.mean(rs) - 0.25) < 0.005


def test_replacements_keep_tag_and_come_from_its_vocabulary(aug):
    e = aug.corpus[0]
    d = draw(e, aug.table, AugmentConfig(p_mask=0.0, p_pos=0.5, p_ng=0.0), np.random.default_rng(1))
    rep = np.nonzero(d.fired['replaced'])[0]
    assert len(rep) > 1000
    assert (aug.table.counts[e.tags[rep], d.ids[rep]] > 0).all()     # (tag of the original, new word) seen in train
    for i in rep[:300]:
        assert aug.table.words[d.ids[i]] in aug.table.vocab(aug.table.tags[e.tags[i]])
    # frequency-weighted: within one tag the draws follow the unigram counts
    nn = aug.table.tag_id['NN']
    got = aug.table.sample(np.full(50_000, nn), np.random.default_rng(0))
    v = aug.table.vocab('NN'); top = next(iter(v))
    assert abs((got == aug.table.word_id[top]).mean() - v[top] / sum(v.values())) < 0.01


def test_ngrams_are_contiguous_runs_of_1_to_5_words(aug):
    e = aug.corpus[0]
    d = draw(e, aug.table, AugmentConfig(p_ng=1.0), np.random.default_rng(2))
    assert d.ngram.all()
    texts = d.texts(aug.table).to_pylist()
    for i in range(len(e)):
        inter = [aug.table.words[j] for j in d.ids[e.offsets[i]:e.offsets[i + 1]]]
        n = d.end[i] - d.start[i]
        assert 1 <= n <= min(5, len(inter)) and 0 <= d.start[i] and d.end[i] <= len(inter)
        assert texts[i] == ' '.join(inter[d.start[i]:d.end[i]])
    lens = (d.end - d.start)[e.lengths >= 5]
    assert np.allclose(np.bincount(lens, minlength=6)[1:] / len(lens), 0.2, atol=0.04)   # n ~ U{1..5}


def test_ngram_coin_has_probability_p_ng(aug):
    d = draw(aug.corpus[0], aug.table, AugmentConfig(p_ng=0.3), np.random.default_rng(3))
    assert abs(d.ngram.mean() - 0.3) < 0.04


def test_empty_and_one_word_inputs(aug):
    encs = aug.encode(['', 'gorgeous', 'a fine film'])
    rows = aug.run(encs, n_iter=40, seed=0).to_pydict()
    by = lambda i, col: [v for v, s in zip(rows[col], rows['source_idx']) if s == i]
    assert set(by(0, 'status')) == {'copy'} and set(by(0, 'text_a')) == {''}
    tag = aug.table.tags[encs[0].tags[0]]
    one = by(1, 'text_a')
    assert set(one) <= {'gorgeous', MASK_TOKEN} | set(aug.table.vocab(tag)) and MASK_TOKEN in one
    assert all(len(t.split(' ')) == 1 for t in one)
    kept = [t for t, s in zip(rows['text_a'], rows['status']) if s == 'kept']
    assert len(kept) == len(set(kept)) and '' not in kept and 'gorgeous' not in kept and 'a fine film' not in kept


def test_transfer_set_columns_and_provenance(sst2_small):
    st = {}
    ds = build_transfer_set(sst2_small.select(range(400)), n_iter=10, seed=0, stats=st)
    for c in ('text_a', 'source_idx', 'is_original', 'label', 'iter', 'masked_a', 'replaced_a',
              'ngram_start_a', 'ngram_end_a'):
        assert c in ds.column_names
    df = ds.to_pandas()
    assert df.is_original.sum() == 400 and (df.label[df.is_original] == np.asarray(sst2_small['label'][:400])).all()
    assert (df.label[~df.is_original] == -1).all()
    assert st['n_draws'] == 4000 and st['n_augmented'] == (~df.is_original).sum()
    assert st['n_copies'] + st['n_duplicates'] + st['n_augmented'] == st['n_draws']
    aug_rows = df[~df.is_original]
    assert not aug_rows.text_a.duplicated().any() and not aug_rows.text_a.isin(set(df.text_a[df.is_original])).any()
    src = sst2_small['text_a']
    for _, r in aug_rows.head(400).iterrows():
        words = tokenize(src[r.source_idx])
        masked, replaced = set(r.masked_a), set(r.replaced_a)
        assert not masked & replaced
        s, e = (r.ngram_start_a, r.ngram_end_a) if r.ngram_start_a >= 0 else (0, len(words))
        out = r.text_a.split(' ')
        assert len(out) == e - s
        for i in range(s, e):
            if i in masked: assert out[i - s] == MASK_TOKEN
            elif i not in replaced: assert out[i - s] == words[i]


def test_same_seed_gives_byte_identical_saved_set(sst2_small, tmp_path):
    mk = lambda seed: build_transfer_set(sst2_small.select(range(300)), n_iter=6, seed=seed)
    save_transfer_set(mk(4), tmp_path/'a'); save_transfer_set(mk(4), tmp_path/'b'); save_transfer_set(mk(5), tmp_path/'c')
    files = sorted(p.name for p in (tmp_path/'a').iterdir())
    assert files == sorted(p.name for p in (tmp_path/'b').iterdir()) and 'bilstm_kd_transfer.json' in files
    for f in files: assert (tmp_path/'a'/f).read_bytes() == (tmp_path/'b'/f).read_bytes(), f
    data = lambda d: next(d.glob('*.arrow')).read_bytes()
    assert data(tmp_path/'a') != data(tmp_path/'c')
    back = load_transfer_set(tmp_path/'a')
    assert transfer_meta(back)['seed'] == 4 and back.num_rows == mk(4).num_rows
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]        # no temporary leftovers
    with pytest.raises(UserError, match='not a saved transfer set'): load_transfer_set(tmp_path/'missing')


def test_pairs_cycle_first_second_both(mrpc_small):
    ds = build_transfer_set(mrpc_small, n_iter=6, seed=0, dedupe='example', originals=False)
    assert 'text_b' in ds.column_names and 'masked_b' in ds.column_names
    df = ds.to_pandas()
    assert set(df.side) == {'a', 'b', 'ab'}
    assert (df.side == np.array(['a', 'b', 'ab'])[df.iter % 3]).all()
    a, b = mrpc_small['text_a'], mrpc_small['text_b']
    norm = lambda t: ' '.join(tokenize(t))
    for _, r in df.iterrows():
        if r.side == 'a': assert r.text_b == norm(b[r.source_idx]) and len(r.masked_b) == 0 and r.ngram_start_b == -1
        if r.side == 'b': assert r.text_a == norm(a[r.source_idx]) and len(r.masked_a) == 0 and r.ngram_start_a == -1
    assert transfer_meta(ds)['n_iter'] == 6
    assert transfer_meta(build_transfer_set(mrpc_small.select(range(5)), seed=0))['n_iter'] == 10   # pairs default


def test_dedupe_modes(aug):
    encs = aug.encode(['a b', 'a b'])
    g = aug.run(encs, n_iter=30, p_ng=1.0, seed=0).to_pydict()
    e = aug.run(encs, n_iter=30, p_ng=1.0, seed=0, dedupe='example').to_pydict()
    kept = lambda r: [(s, t) for s, t, st in zip(r['source_idx'], r['text_a'], r['status']) if st == 'kept']
    assert len({t for _, t in kept(g)}) == len(kept(g))                        # global: each text once
    assert len(set(kept(e))) == len(kept(e)) and len(kept(e)) > len(kept(g))   # example: once per example


def test_pos_tags_are_cached(monkeypatch, tmp_path):
    import bilstm_kd.augmentation as A
    monkeypatch.setenv('BILSTM_KD_CACHE', str(tmp_path))                      # a cache this test starts empty
    calls = []
    real = A.get_tagger
    def counting(*a, **k):
        f = real(*a, **k)
        return lambda sents: (calls.append(len(sents)), f(sents))[1]
    monkeypatch.setattr(A, 'get_tagger', counting)
    sents = [tokenize(s) for s in ['an unlikely cache test sentence', 'the same', 'the same']]
    t1 = pos_tag(sents); t2 = pos_tag(sents)
    assert t1 == t2 and calls == [2]                                          # distinct sentences, tagged once
    assert [len(t) for t in t1] == [5, 2, 2]


def test_tags_are_exactly_nltks(sst2_small):
    from nltk.tag.mapping import map_tag
    from nltk.tag.perceptron import PerceptronTagger
    ref = PerceptronTagger(lang='eng')
    sents = [tokenize(t) for t in sst2_small['text_a']] + [['The', 'U.S.', '1999', 'well-made', '42', ''], []]
    penn = [[t for _, t in ref.tag(s)] for s in sents]
    assert pos_tag(sents, cache=False) == penn                                 # memoised loop == NLTK's loop
    assert pos_tag(sents, tagset='universal', cache=False) == [[map_tag('en-ptb', 'universal', t) for t in ts] for ts in penn]


def test_missing_tagger_says_how_to_get_it(monkeypatch, tmp_path):
    import nltk
    monkeypatch.setattr(nltk.data, 'path', [str(tmp_path)])
    with pytest.raises(UserError, match='python -m nltk.downloader averaged_perceptron_tagger_eng universal_tagset'):
        get_tagger('nltk')
    with pytest.raises(UserError, match='unknown tagset'): get_tagger(tagset='brown')


def test_spacy_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'spacy', None)                     # as if not installed
    with pytest.raises(UserError, match='pip install spacy'): get_tagger('spacy')


def _fake_spacy(load_error=False):
    "A stand-in for spaCy with its API shape: load(model) -> nlp, nlp.pipe(Docs), Doc(vocab, words=...), tag_/pos_."
    tok = lambda w: types.SimpleNamespace(tag_='NNP' if w[0].isupper() else 'NN', pos_='PROPN' if w[0].isupper() else 'NOUN')
    class Doc:
        def __init__(self, vocab, words): self.words = list(words)
        def __iter__(self): return iter([tok(w) for w in self.words])
    class NLP:
        vocab = object()
        def pipe(self, docs): yield from docs
    def load(model, exclude=()):
        if load_error: raise OSError(f"[E050] Can't find model '{model}'")
        return NLP()
    spacy = types.ModuleType('spacy'); spacy.__version__ = '0.fake'; spacy.load = load
    tokens = types.ModuleType('spacy.tokens'); tokens.Doc = Doc; spacy.tokens = tokens
    return spacy, tokens


def test_spacy_tagger_when_asked(monkeypatch, sst2_small):
    spacy, tokens = _fake_spacy()
    monkeypatch.setitem(sys.modules, 'spacy', spacy); monkeypatch.setitem(sys.modules, 'spacy.tokens', tokens)
    assert get_tagger('spacy', 'penn')([['a', 'Bc'], [], ['d']]) == [['NN', 'NNP'], [], ['NN']]
    assert get_tagger('spacy', 'universal')([['a', 'Bc']]) == [['NOUN', 'PROPN']]
    a = Augmenter.from_texts(sst2_small['text_a'][:50], tagger='spacy')
    assert a.table.tags == ['NN'] and a.tagger == 'spacy'              # lower-cased SST-2: every word 'NN'
    bad, btok = _fake_spacy(load_error=True)
    monkeypatch.setitem(sys.modules, 'spacy', bad); monkeypatch.setitem(sys.modules, 'spacy.tokens', btok)
    with pytest.raises(UserError, match='python -m spacy download en_core_web_sm'): get_tagger('spacy')


def test_tagsets_differ_in_granularity(sst2_small):
    texts = sst2_small['text_a'][:300]
    penn = Augmenter.from_texts(texts, tagset='penn').table
    uni = Augmenter.from_texts(texts, tagset='universal').table
    assert len(uni.tags) <= 12 < len(penn.tags)
    assert 'VERB' in uni.tags and 'VBD' in penn.tags


def test_pos_table_never_draws_the_mask():
    t = PosTable.build([['a', 'b', '<mask>']], [['X', 'X', 'X']])
    assert 0 not in t.sample(np.zeros(1000, int), np.random.default_rng(0)).tolist()
    assert t.vocab('X') == {'a': 1, 'b': 1}


def test_explorer_logic_without_a_browser(sst2_small, aug):
    texts = sst2_small['text_a']
    teacher = lambda batch: np.tile([0.3, 0.7], (len(batch), 1))
    ex = AugmentExplorer(texts, teacher=teacher, label_names=['neg', 'pos'], augmenter=aug, max_hist=300)
    ex.example.value = next(i for i, t in enumerate(texts) if len(t.split()) >= 8)
    k = ex.knobs
    assert k['p_mask'].description == 'p_mask' and k['p_mask'].value == AugmentConfig().p_mask
    assert list(k) == [r.prob for r in WORD_RULES] + ['p_ng', 'n_iter', 'seed']   # one slider per registered rule
    h0 = ex.html.value
    k['p_mask'].value, k['p_pos'].value, k['p_ng'].value = 1.0, 0.0, 0.0
    assert ex.html.value != h0 and ex.html.value.count('class="aug-masked"') >= 8 * k['n_iter'].value
    assert 'class="aug-replaced"' not in ex.html.value and 'class="aug-drop"' not in ex.html.value
    k['p_mask'].value, k['p_pos'].value = 0.0, 1.0
    assert 'class="aug-replaced"' in ex.html.value and 'class="aug-masked"' not in ex.html.value
    k['p_pos'].value, k['p_ng'].value = 0.0, 1.0
    assert 'class="aug-drop"' in ex.html.value
    k['p_ng'].value = 0.0
    assert ex.rows['status'] == ['copy'] * k['n_iter'].value and '0 kept' in ex.html.value
    k['n_iter'].value = 3; assert len(ex.rows['status']) == 3
    k['p_mask'].value, k['p_pos'].value = 0.3, 0.3; h = ex.html.value
    k['seed'].value = 9; assert ex.html.value != h
    ex.typed.value = 'an utterly <b>gorgeous</b> film'
    assert 'gorgeous' in ex.source.value and '<b>gorgeous' not in ex.html.value + ex.source.value  # escaped
    assert list(ex.fig_logits.data[0].x)[0] == 'original' and len(ex.fig_logits.data) == 2
    assert list(ex.fig_logits.data[1].y)[0] == 0.7                                   # the teacher's logits, per class
    assert [t.name for t in ex.fig_lengths.data] == ['original', 'augmented']
    k['p_mask'].value = 0.8
    assert 'p_mask + p_pos must be &lt;= 1' in ex.html.value


def test_cli(glue_dir, tmp_path, capsys):
    from bilstm_kd.cli import main
    out = tmp_path/'ts'
    with pytest.raises(SystemExit) as e:
        main(['augment', '--task', 'sst2', '--data-dir', str(glue_dir), '--max-train', '200', '--n-iter', '3',
              '--out', str(out)])
    assert e.value.code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['n_source'] == 200 and summary['n_samples'] > 0 and 0 < summary['unique_yield'] <= 1
    assert load_transfer_set(out).num_rows == summary['n_rows']
    for bad, msg in ((['--p-mask', '1.5'], '--p-mask: must be'), (['--p-mask', '.6', '--p-pos', '.6'], 'p_mask + p_pos'),
                     (['--n-iter', '0'], '--n-iter: must be'), (['--p-ng', '-1'], '--p-ng: must be')):
        with pytest.raises(SystemExit) as e:
            main(['augment', '--task', 'sst2', '--data-dir', str(glue_dir), '--out', str(tmp_path/'bad'), *bad])
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and err.startswith('error: ') and msg in err and len(err.splitlines()) == 1
    assert not (tmp_path/'bad').exists()


def test_exercise_checks():
    def ngram(tokens, rng):
        if not tokens: return []
        n = min(int(rng.integers(1, 6)), len(tokens)); s = int(rng.integers(0, len(tokens) - n + 1))
        return tokens[s:s + n]
    assert check_ngram(ngram).startswith('Correct')
    assert check_ngram(lambda t, rng: t[:1]).startswith('Not quite')
    assert check_copy_prob(0.8 ** 8 * 0.75).startswith('Correct')
    assert check_copy_prob(0.8 ** 8).startswith('Not quite')
    def sample_word(counts, tag, rng):
        w, c = zip(*counts[tag].items()); return w[rng.choice(len(w), p=np.array(c) / sum(c))]
    assert check_pos_sampler(sample_word).startswith('Correct')
    assert check_pos_sampler(lambda counts, tag, rng: rng.choice(list(counts[tag]))).startswith('Not quite')


def test_a_rule_that_drops_words_needs_only_its_function_entry_and_field(aug):
    "A throwaway rule that deletes words: a function, a `WORD_RULES` entry and a probability field declared with `added`."
    import dataclasses
    from bilstm_kd import augmentation as A
    from bilstm_kd.core import added
    from bilstm_kd.widgets import sample_html

    @dataclasses.dataclass(frozen=True)
    class WithDrop(AugmentConfig):   # as a release that adds the rule would declare its probability
        p_del: float = added(0.0)

    A.WORD_RULES.append(A.WordRule('deleted', 'p_del', lambda ids, tags, table, rng: np.full_like(ids, A.DELETED), deletes=True))
    try:
        e = aug.corpus[0]
        d = draw(e, aug.table, WithDrop(p_mask=0.0, p_pos=0.0, p_ng=0.0, p_del=0.3), np.random.default_rng(0))
        assert abs(d.fired['deleted'].mean() - 0.3) < 0.01
        gone = np.bincount(e.sent[d.fired['deleted']], minlength=len(e))
        expect = np.where(gone == e.lengths, e.lengths, e.lengths - gone)   # a sample never loses every word
        assert [len(t.split()) for t in d.texts(aug.table).to_pylist()] == expect.tolist()
        assert (gone == e.lengths).any() and (gone > 0).sum() > 100       # both cases were drawn
        with pytest.raises(UserError, match=r'p_del must be a probability'): WithDrop(p_del=1.5)
        with pytest.raises(UserError, match=r'p_mask \+ p_pos \+ p_del must be <= 1'): WithDrop(p_del=0.9)
        assert 'p_del' not in WithDrop().key_dict() and WithDrop(p_del=0.1).key_dict()['p_del'] == 0.1   # old runs stay cached
        tab = aug.run(aug.corpus, WithDrop(p_del=0.2, n_iter=2))
        assert 'deleted_a' in tab.column_names and sum(map(len, tab['deleted_a'].to_pylist())) > 0
        html, n = sample_html(['a', 'good', 'film'], 'a film', {'deleted': [1], 'masked': [], 'replaced': []})
        assert 'line-through' in html and '>good<' in html and n['deleted'] == 1
        html, _ = sample_html(['good'], 'good', {'deleted': [0], 'masked': [], 'replaced': []})   # kept: its only word
        assert 'line-through' not in html
    finally:
        A.WORD_RULES.pop()
    assert [r.name for r in WORD_RULES] == ['masked', 'replaced']
