"Tests for bilstm_kd.teacher and bilstm_kd.labels: fine-tuning, save/load, sorted batching, pairs, the logits cache, int8, CLI."
import json, os, warnings
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1')

from bilstm_kd.core import UserError
from bilstm_kd.data import load_task, texts_of
from bilstm_kd.evaluation import evaluate_folder
from bilstm_kd.teacher import TEACHER_MARKER, Teacher, TeacherConfig, finetune_teacher, load_teacher
from bilstm_kd.labels import CacheRebuildWarning, LabelConfig, LogitsCache, length_batches, teacher_logits

DATA = os.environ.get('BILSTM_KD_DATA', '/work/shared/data/glue')
needs_data = pytest.mark.skipif(not Path(DATA, 'SST-2', 'train.tsv').is_file(), reason='local GLUE data not found')

SENTS = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate clichés .", "ok",
         "it 's a [MASK] film .", "one long string of cliches .", "the acting , costumes , music , cinematography and "
         "sound are all astounding given the production 's austere locales .", "bad", "not bad at all ."]


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    "One torch thread: as fast on these tiny batches, and no spinning siblings on a shared 2-core CI box."
    old = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope='module')
def base():
    return load_teacher(task='sst2')   # packaged MiniLM with a seeded fresh head


@pytest.fixture(scope='module')
def tuned(tmp_path_factory, base):
    if not Path(DATA, 'SST-2', 'train.tsv').is_file(): pytest.skip('local GLUE data not found')
    out = tmp_path_factory.mktemp('teacher')/'sst2'
    t = finetune_teacher('sst2', out, data=load_task('sst2', DATA, max_train=64, max_eval=32), batch_size=16, eval_steps=4,
                         progress=False, threads=1)
    return t, out


def test_sorted_batching_returns_input_order(base):
    alone = np.concatenate([teacher_logits(base, [s], progress=False) for s in SENTS])
    together = teacher_logits(base, SENTS, batch_size=3, progress=False)
    np.testing.assert_allclose(together, alone, atol=1e-4)
    rev = teacher_logits(base, SENTS[::-1], max_tokens=40, progress=False)
    np.testing.assert_allclose(rev, alone[::-1], atol=1e-4)
    assert together.dtype == np.float32 and together.shape == (len(SENTS), 2)


def test_length_batches_cover_everything_longest_first():
    lens = np.random.default_rng(0).integers(1, 60, 500)
    for bs, mt in [(64, None), (7, None), (64, 512)]:
        bs_ = length_batches(lens, bs, mt)
        assert sorted(np.concatenate(bs_).tolist()) == list(range(500))
        firsts = [lens[b[0]] for b in bs_]
        assert firsts == sorted(firsts, reverse=True)
        if mt: assert all(lens[b].max() * len(b) <= mt or len(b) == 1 for b in bs_)


def test_pair_inputs(tmp_path):
    t = load_teacher(task='mrpc')
    pairs = [("the cat sat on the mat .", "a cat was sitting on the mat ."), ("he left .", "she stayed at home all day .")]
    z = teacher_logits(t, pairs, progress=False)
    assert z.shape == (2, 2)
    one = teacher_logits(t, pairs[1:], progress=False)
    np.testing.assert_allclose(z[1:], one, atol=1e-4)
    swapped = teacher_logits(t, [(b, a) for a, b in pairs], progress=False)
    assert not np.allclose(z, swapped)          # the pair order matters: the model sees two segments
    with pytest.raises(UserError, match='sentence pairs'): teacher_logits(t, ['just one'], progress=False)
    # pairs are cached under their own keys, never confused with the concatenated string
    c = LogitsCache(tmp_path/'c')
    np.testing.assert_allclose(teacher_logits(t, pairs, cache=c, progress=False), z, atol=1e-5)
    assert teacher_logits(t, pairs, cache=c, progress=False).shape == (2, 2) and c.hits == 2


def test_cache_hit_does_not_call_the_model(base, tmp_path):
    cache = LogitsCache(tmp_path/'logits')
    first = teacher_logits(base, SENTS, chunk_size=3, cache=cache, progress=False)
    assert cache.misses == len(SENTS)
    calls = []
    h = base.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        again = teacher_logits(base, SENTS, cache=cache, progress=False)
        fresh = teacher_logits(base, SENTS, cache=LogitsCache(tmp_path/'logits'), progress=False)  # a new process
    finally: h.remove()
    assert calls == [] and cache.hits == len(SENTS)
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(fresh, first)


def test_partial_labelling_resumes(base, tmp_path):
    cache = LogitsCache(tmp_path/'logits')
    teacher_logits(base, SENTS[:4], chunk_size=2, cache=cache, progress=False)   # half the set was labelled before a crash
    calls = []
    h = base.model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0] if i else 0))
    try: teacher_logits(base, SENTS, chunk_size=2, cache=LogitsCache(tmp_path/'logits'), progress=False)
    finally: h.remove()
    assert len(calls) > 0
    shards = list((tmp_path/'logits').glob('*/shard-*.npz'))
    assert len(shards) == 4                                               # 8 rows in chunks of 2


def test_corrupt_cache_file_is_rebuilt(base, tmp_path):
    cache = LogitsCache(tmp_path/'logits')
    ref = teacher_logits(base, SENTS, chunk_size=4, cache=cache, progress=False)
    shards = sorted((tmp_path/'logits').glob('*/shard-*.npz'))
    assert len(shards) == 2
    shards[0].write_bytes(shards[0].read_bytes()[:150])                  # truncated (a partial write)
    data = bytearray(shards[1].read_bytes()); data[-300] ^= 0xFF; shards[1].write_bytes(bytes(data))  # garbled
    c2 = LogitsCache(tmp_path/'logits')
    with pytest.warns(CacheRebuildWarning):
        got = teacher_logits(base, SENTS, chunk_size=4, cache=c2, progress=False)
    assert c2.misses == len(SENTS)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter('error', CacheRebuildWarning)             # the rebuilt shards read back cleanly
        c3 = LogitsCache(tmp_path/'logits')
        np.testing.assert_array_equal(teacher_logits(base, SENTS, cache=c3, progress=False), got)
    assert c3.hits == len(SENTS)


@pytest.mark.parametrize('precision', ['bf16', 'int8'])
def test_low_precision_close_to_fp32_and_cached_separately(base, tmp_path, precision):
    z = teacher_logits(base, SENTS, progress=False)
    q = teacher_logits(base, SENTS, precision=precision, progress=False)
    assert q.shape == z.shape and q.dtype == np.float32 and np.abs(q - z).max() < 0.5 and not np.array_equal(q, z)
    cache = LogitsCache(tmp_path/'c')
    teacher_logits(base, SENTS, cache=cache, progress=False)
    teacher_logits(base, SENTS, precision=precision, cache=cache, progress=False)
    assert cache.misses == len(SENTS)                                     # each precision has its own key space
    with pytest.raises(Exception, match='precision must be one of fp32, bf16, int8'):
        teacher_logits(base, SENTS, precision='fp16', progress=False)


def test_finetune_changes_logits_and_save_load_is_identical(tuned, base):
    t, out = tuned
    assert (out/TEACHER_MARKER).is_file() and (out/'model.safetensors').is_file()
    info = json.loads((out/TEACHER_MARKER).read_text())
    assert info['task'] == 'sst2' and 0 <= info['metrics']['validation']['accuracy'] <= 1
    assert info['config']['lr'] == [5e-5] and info['config']['warmup'] == 0.1 and info['steps'] == 4
    assert any('loss' in h for h in info['log_history']) and info['best_step'] == 4
    before = teacher_logits(base, SENTS, progress=False)
    after = teacher_logits(t, SENTS, progress=False)
    assert np.abs(after - before).max() > 1e-3                            # 4 steps on 64 examples moved the logits
    loaded = load_teacher(out)
    assert loaded.fingerprint == t.fingerprint and loaded.task == 'sst2'
    np.testing.assert_array_equal(teacher_logits(loaded, SENTS, progress=False), after)
    assert not out.parent.joinpath(f'.{out.name}.work').exists()


def small_tsv(tmp_path):
    f = tmp_path/'dev_small.tsv'
    f.write_text('sentence\tlabel\n' + ''.join(f'{s}\t{i % 2}\n' for i, s in enumerate(SENTS)))
    return f


def test_evaluate_and_user_errors(tuned, tmp_path):
    t, out = tuned
    r = evaluate_folder(out, 'sst2', file=small_tsv(tmp_path))
    assert set(r) == {'task', 'n', 'accuracy'} and r['n'] == len(SENTS)
    z = teacher_logits(t, SENTS, progress=False)
    assert r['accuracy'] == np.mean(z.argmax(1) == np.arange(len(SENTS)) % 2)
    with pytest.raises(UserError, match='trained for sst2'): evaluate_folder(out, 'qqp', data_dir=DATA)
    with pytest.raises(UserError, match='does not exist'): evaluate_folder(tmp_path/'missing', 'sst2')
    bad = tmp_path/'bad.tsv'; bad.write_text('question1\tquestion2\tis_duplicate\na\tb\t0\n')
    with pytest.raises(UserError, match='column'): evaluate_folder(out, 'sst2', file=bad)
    with pytest.raises(UserError, match='not a model folder'): load_teacher(tmp_path/'nope')


def test_cli_evaluate_json_and_exit_code(tuned, tmp_path, capsys):
    t, out = tuned
    import bilstm_kd.cli as pipeline
    with pytest.raises(SystemExit) as e:
        pipeline.main(['evaluate', '--model', str(out), '--task', 'sst2', '--file', str(small_tsv(tmp_path)), '--json'])
    assert e.value.code == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r['task'] == 'sst2' and r['n'] == len(SENTS) and 'accuracy' in r
    with pytest.raises(SystemExit) as e:
        pipeline.main(['evaluate', '--model', str(tmp_path/'nope'), '--task', 'sst2', '--json'])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error:') and len(err.splitlines()) == 1


def test_fingerprint_follows_weight_changes():
    t = load_teacher(task='sst2')
    fp = t.fingerprint
    assert t.fingerprint == fp                                            # stable while nothing changes
    with torch.no_grad(): t.model.classifier.bias.add_(1.0)               # what an optimiser step does
    assert t.fingerprint != fp
    with torch.no_grad(): t.model.classifier.bias.sub_(1.0)
    assert t.fingerprint == fp                                            # content-addressed: same weights, same key
