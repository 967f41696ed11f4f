"Tests for bilstm_kd.distillation: losses by hand, the loop learns, resumes exactly, keeps frozen channels, no-KD."
import json

import numpy as np
import pytest
import torch

from bilstm_kd.core import UserError
from bilstm_kd.data import load_task
from bilstm_kd.tokenization import Vocab, tokenize
from bilstm_kd.student import StudentConfig, build_student, encode, load_student
from bilstm_kd.distillation import (mse_logits, kl_logits, ce_labels, kd_loss, bucket_batches, DistillConfig, fit, distill,
                                    loss_gradients, LOSSES)
from bilstm_kd.cli import build_parser
from bilstm_kd.exercises import check_logit_information, check_gradients, check_mixed_loss


def TrainConfig(**kw):
    "The tests' training settings: one thread (steady on a shared CI box)."
    return DistillConfig(**{'threads': 1, **kw})

ZS = torch.tensor([[1., 2.], [0., 0.]])
ZT = torch.tensor([[3., 0.], [1., -1.]])


def test_mse_by_hand():  # sum over classes, mean over the batch
    assert mse_logits(ZS, ZT).item() == pytest.approx(((2 ** 2 + 2 ** 2) + (1 + 1)) / 2)


def test_kl_by_hand():
    def kl(zs, zt, T):
        ps, pt = np.exp(zs / T) / np.exp(zs / T).sum(1, keepdims=True), np.exp(zt / T) / np.exp(zt / T).sum(1, keepdims=True)
        return T * T * (pt * np.log(pt / ps)).sum(1).mean()
    for T in (1.0, 2.0, 5.0):
        assert kl_logits(ZS, ZT, T).item() == pytest.approx(kl(ZS.numpy(), ZT.numpy(), T), rel=1e-5)
    assert kl_logits(ZT + 3, ZT).item() == pytest.approx(0, abs=1e-6)   # shift invariant, unlike MSE
    assert mse_logits(ZT + 3, ZT).item() == pytest.approx(18)


def test_ce_and_mix_by_hand():
    ls = np.log(np.exp(ZS.numpy()) / np.exp(ZS.numpy()).sum(1, keepdims=True))
    y = torch.tensor([1, -1])
    assert ce_labels(ZS, y).item() == pytest.approx(-ls[0, 1], rel=1e-6)
    assert ce_labels(ZS, torch.tensor([-1, -1])).item() == 0.0
    # augmented row 2 takes the teacher's argmax (class 0), as in the paper
    assert kd_loss(ZS, ZT, y, alpha=0.5).item() == pytest.approx(0.5 * -(ls[0, 1] + ls[1, 0]) / 2 + 0.5 * 5, rel=1e-6)
    assert kd_loss(ZS, ZT, y, alpha=0.5, augmented_ce='off').item() == pytest.approx(0.5 * -ls[0, 1] + 0.5 * 5, rel=1e-6)
    assert kd_loss(ZS, ZT, y, alpha=0.0).item() == pytest.approx(5)
    assert kd_loss(ZS, None, torch.tensor([1, 0]), loss='ce').item() == pytest.approx(-(ls[0, 1] + ls[1, 0]) / 2, rel=1e-6)
    with pytest.raises(UserError, match="loss='ce'"): kd_loss(ZS, None, y)
    with pytest.raises(UserError, match='mse'): kd_loss(ZS, ZT, loss='l2')


def test_gradients_and_checks():
    g = loss_gradients(grid=np.array([3.0]))
    assert g['mse'][0] == pytest.approx(-6) and abs(g['kl T=1'][0]) < 0.01
    assert check_logit_information(0, 0, 0, 200).startswith('Correct')
    assert check_gradients(-4, 2 * (1 / (1 + np.exp(-0.5)) - 1 / (1 + np.exp(-1.5)))).startswith('Correct')
    assert check_mixed_loss(0.3 * np.log(2) + 0.7 * 5, 0.7 * 5).startswith('Correct')   # alpha = 0.3
    assert check_mixed_loss(1, 1).startswith('Not quite')


def test_bucket_batches_cover_and_are_seeded():
    lens = np.random.default_rng(0).integers(1, 40, 523)
    b = bucket_batches(lens, 50, (0, 1))
    assert sorted(np.concatenate(b).tolist()) == list(range(523))
    assert [x.tolist() for x in b] == [x.tolist() for x in bucket_batches(lens, 50, (0, 1))]
    assert [x.tolist() for x in b] != [x.tolist() for x in bucket_batches(lens, 50, (0, 2))]


# ---- a tiny synthetic task: label = does 'good' occur; teacher logits say so with a margin
WORDS = ['bad', 'film', 'plot', 'the', 'a', 'actors', 'dull', 'fun', 'story']


@pytest.fixture(scope='module')
def toy():
    rng = np.random.default_rng(0)
    texts = [' '.join(rng.choice(WORDS, rng.integers(2, 9))) + (' good' if i % 2 else '') for i in range(200)]
    y = np.arange(200) % 2
    z = np.stack([1 - 2.0 * y, 2.0 * y - 1], 1).astype(np.float32)
    v = Vocab.build([tokenize(t) for t in texts])
    vecs = np.random.default_rng(1).normal(size=(len(v), 8)).astype(np.float32)
    return texts, y, z, v, vecs, encode(v, texts)


def student(toy, mode='multichannel'):
    _, _, _, v, vecs, _ = toy
    torch.manual_seed(0)
    return build_student(StudentConfig(vocab_size=len(v), embed_dim=8, hidden=16, fc=16, embed_mode=mode), vecs, v)


def test_one_epoch_lowers_loss_and_keeps_static_channel(toy):
    texts, y, z, v, vecs, x = toy
    m = student(toy)
    with torch.no_grad(): before = mse_logits(m.eval()(*x.batch(np.arange(200))), torch.from_numpy(z)).item()
    fit(m, x, TrainConfig(epochs=1, batch_size=10), teacher_logits=z, progress=False)
    with torch.no_grad(): after = mse_logits(m.eval()(*x.batch(np.arange(200))), torch.from_numpy(z)).item()
    assert after < 0.9 * before
    assert np.array_equal(m.encoder.static.weight.detach().numpy(), vecs)      # frozen half untouched
    assert not np.allclose(m.encoder.embed.weight.detach().numpy(), vecs)      # trainable half moved
    s = student(toy, 'static')
    fit(s, x, TrainConfig(epochs=1, batch_size=20), teacher_logits=z, progress=False)
    assert np.array_equal(s.encoder.embed.weight.detach().numpy(), vecs)


def test_resume_matches_uninterrupted(toy, tmp_path):
    texts, y, z, v, vecs, x = toy
    cfg = TrainConfig(epochs=3, batch_size=20, patience=10, alpha=0.3)
    kw = dict(labels=y, teacher_logits=z, select=(x, y), progress=False)
    ref = student(toy); r_ref = fit(ref, x, cfg, **kw)

    class Stop(Exception): pass
    def stop(h):
        if len(h) == 2: raise Stop
    with pytest.raises(Stop): fit(student(toy), x, cfg, ckpt_dir=tmp_path, callback=stop, **kw)
    assert len(list(tmp_path.glob('checkpoint-*.safetensors'))) == 1
    res = student(toy); r_res = fit(res, x, cfg, ckpt_dir=tmp_path, **kw)
    drop = lambda h: [{k: e[k] for k in e if k != 'sents_per_s'} for e in h]
    assert drop(r_res['history']) == drop(r_ref['history'])
    for (k, a), b in zip(ref.state_dict().items(), res.state_dict().values()): assert torch.equal(a, b), k


def test_same_seed_same_result_and_early_stopping(toy):
    texts, y, z, v, vecs, x = toy
    cfg = TrainConfig(epochs=2, batch_size=20)
    a = fit(student(toy), x, cfg, teacher_logits=z, select=(x, y), progress=False)
    b = fit(student(toy), x, cfg, teacher_logits=z, select=(x, y), progress=False)
    assert [e['train_loss'] for e in a['history']] == [e['train_loss'] for e in b['history']]
    r = fit(student(toy), x, TrainConfig(epochs=20, batch_size=20, patience=1, lr=1e-9), teacher_logits=z, select=(x, y), progress=False)
    assert len(r['history']) < 20     # nothing improves with lr=1e-9, so it stops early


def test_no_kd_flag_and_errors(toy):
    texts, y, z, v, vecs, x = toy
    r = fit(student(toy), x, TrainConfig(epochs=3, batch_size=20, loss='ce'), labels=y, select=(x, y), progress=False)
    assert r['best']['select_accuracy'] > 0.9
    with pytest.raises(UserError, match="loss='ce'"): fit(student(toy), x, TrainConfig(), labels=y)
    with pytest.raises(UserError, match='align'): fit(student(toy), x, TrainConfig(), teacher_logits=z[:5])


@pytest.fixture(scope='module')
def glue(tmp_path_factory):
    "A tiny GLUE-layout SST-2 folder and a small word2vec text file."
    root = tmp_path_factory.mktemp('glue')
    (root / 'SST-2').mkdir()
    rng = np.random.default_rng(0)
    def rows(n):
        out = ['sentence\tlabel']
        for i in range(n):
            out.append(' '.join(rng.choice(WORDS, rng.integers(2, 7))) + (' good' if i % 2 else '') + f'\t{i % 2}')
        return '\n'.join(out) + '\n'
    (root / 'SST-2' / 'train.tsv').write_text(rows(160))
    (root / 'SST-2' / 'dev.tsv').write_text(rows(40))
    vec = root / 'vec.txt'
    vec.write_text('\n'.join(f"{w} " + ' '.join(f'{x:.3f}' for x in rng.normal(size=6)) for w in WORDS + ['good']) + '\n')
    return root, vec


def test_distill_kd_and_no_kd(glue, tmp_path):
    root, vec = glue
    from bilstm_kd.data import load_task, texts_of
    dd = load_task('sst2', data_dir=root, verbose=False); tr = dd['train']
    lab = np.asarray(tr['label'])
    z = np.stack([1 - 2.0 * lab, 2.0 * lab - 1], 1).astype(np.float32)
    kw = dict(data=dd, vectors=str(vec), epochs=2, threads=1, progress=False)
    s = distill('sst2', tmp_path / 'kd', logits=z, **kw)
    b = distill('sst2', tmp_path / 'nokd', no_kd=True, **kw)
    for d, kd in (('kd', True), ('nokd', False)):
        marker = json.loads((tmp_path / d / 'bilstm_kd_student.json').read_text())
        assert marker['task'] == 'sst2' and marker['kd'] is kd and 'accuracy' in marker['metrics']['validation']
        assert not (tmp_path / f'{d}.ckpt').exists()
    assert b.meta['distill_config']['loss'] == 'ce' and s.meta['distill_config']['loss'] == 'mse'
    loaded = load_student(tmp_path / 'kd')
    np.testing.assert_array_equal(loaded.predict(texts_of(tr)[:10]), s.predict(texts_of(tr)[:10]))
    assert loaded.encoder.embed.weight.shape[1] == 6
    with pytest.raises(UserError, match='--no-kd'): distill('sst2', tmp_path / 'x', **kw)
    with pytest.raises(UserError, match='augment'): distill('sst2', tmp_path / 'x', transfer=tmp_path / 'nope', logits=z, **kw)
    with pytest.raises(UserError, match='shape'): distill('sst2', tmp_path / 'x', logits=z[:3], **kw)


def test_distill_with_transfer_set(glue, tmp_path):
    from datasets import Dataset
    root, vec = glue
    ds = Dataset.from_dict({'text_a': ['the [MASK] film good', 'a dull plot', 'fun story good', 'bad [MASK]'],
                            'label': [-1, 0, 1, -1], 'is_original': [False, True, True, False], 'source_idx': [1, 0, 3, 2]})
    ds.save_to_disk(str(tmp_path / 'transfer'))
    z = np.array([[-1, 1], [1, -1], [-1, 1], [1, -1]], np.float32)
    s = distill('sst2', tmp_path / 'kd', transfer=tmp_path / 'transfer', logits=z, data=load_task('sst2', root, verbose=False),
                vectors=str(vec), epochs=1, alpha=0.5, threads=1, progress=False)
    assert s.meta['n_train'] == 4 and s.meta['transfer'].endswith('transfer')


def test_cli(glue, tmp_path, capsys):
    import argparse
    root, vec = glue
    ap = build_parser()
    a = ap.parse_args(['distill', '--task', 'sst2', '--out', str(tmp_path / 'x')])
    with pytest.raises(UserError, match='--no-kd'): a.func(a)
    a = ap.parse_args(['distill', '--task', 'sst2', '--out', str(tmp_path / 'x'), '--no-kd', '--alpha', '2'])
    with pytest.raises(UserError, match=r'--alpha: must be a probability in \[0, 1\]'): a.func(a)
    a = ap.parse_args(['distill', '--task', 'sst2', '--out', str(tmp_path / 'b'), '--no-kd', '--data-dir', str(root),
                       '--vectors', str(vec), '--epochs', '1', '--json'])
    assert a.func(a) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out['kd'] is False and out['task'] == 'sst2'


def test_pair_student_trains():
    rng = np.random.default_rng(0)
    a = [' '.join(rng.choice(WORDS, 4)) for _ in range(120)]
    y = np.arange(120) % 2
    b = [s if l else ' '.join(rng.choice(WORDS, 4)) for s, l in zip(a, y)]   # label 1: the same sentence twice
    v = Vocab.build([tokenize(t) for t in a + b])
    x = encode(v, list(zip(a, b)))
    torch.manual_seed(0)
    m = build_student(StudentConfig(vocab_size=len(v), embed_dim=8, hidden=8, fc=16, pair=True, embed_mode='rand'), vocab=v)
    z = np.stack([1 - 2.0 * y, 2.0 * y - 1], 1).astype(np.float32)
    with torch.no_grad(): before = mse_logits(m.eval()(*x.batch(np.arange(120))), torch.from_numpy(z)).item()
    fit(m, x, TrainConfig(epochs=2, batch_size=8), teacher_logits=z, progress=False)
    with torch.no_grad(): after = mse_logits(m.eval()(*x.batch(np.arange(120))), torch.from_numpy(z)).item()
    assert after < before


def test_evaluate_command_reads_student_folders(glue, tmp_path):
    from bilstm_kd.evaluation import evaluate_folder
    root, vec = glue
    s = distill('sst2', tmp_path / 'nokd', no_kd=True, data=load_task('sst2', root, verbose=False), vectors=str(vec), epochs=1,
                threads=1, progress=False)
    r = evaluate_folder(tmp_path / 'nokd', 'sst2', data_dir=root)
    assert r['n'] == 40 and r['accuracy'] == pytest.approx(s.meta['metrics']['validation']['accuracy'])
