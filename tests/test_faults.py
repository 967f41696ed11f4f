"""Reliability (issue 17), tried as a careless or unlucky user would: every mistake is one line, `error: ...`, and exit
code 2; a damaged artefact is named with the command that rebuilds it; nothing finished is lost; every run resumes, to
byte-identical results; one run per folder; no pickle."""
import contextlib, errno, gzip, io, json, os, pickle, shutil, signal, subprocess, sys, time, warnings
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, '-m', 'bilstm_kd.cli']
SPEED = ['--speed-budget-s', '0.3', '--speed-latency-calls', '1']   # a quick speed table (its timings are never compared)
FINISHED = ('teacher/model.safetensors', 'logits.npy', 'student/model.safetensors', 'baseline/model.safetensors')
STAGES = ('teacher', 'augment', 'label', 'distill', 'baseline', 'evaluate', 'report')


# ---------------------------------------------------------------------------------------------------------- helpers
def cli(*argv):
    "`bilstm-kd ARGV` in this process: (exit code, stdout, stderr)."
    from bilstm_kd.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: main([str(a) for a in argv]); code = 0
        except SystemExit as e: code = e.code
    return code, out.getvalue(), err.getvalue()


def one_line_error(res, phrase):
    "Exit code 2 and stderr exactly one line, `error: ...`, that contains `phrase`; no traceback."
    code, out, err = res
    lines = err.strip().splitlines()
    assert code == 2 and 'Traceback' not in err, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith('error: '), err[-3000:]
    assert phrase in lines[0], lines[0]


def env(cache, **more):
    return dict(os.environ, BILSTM_KD_CACHE=str(cache), TOKENIZERS_PARALLELISM='false', **more)


def run_cmd(out, data, *extra):
    return [*CLI, 'run', '--task', 'sst2', '--preset', 'smoke', '--threads', '1', '--data-dir', str(data),
            '--out', str(out), *SPEED, *extra]


def pipeline(out, data, cache, *extra):
    "A `bilstm-kd run` to its end: (exit code, stdout, stderr)."
    r = subprocess.run(run_cmd(out, data, *extra), env=env(cache), capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def stage_states(log: str) -> dict:
    "{stage: 'running' | 'cached'} from a run's `[stage] ...` lines (on its stderr: the `bilstm_kd` logger's)."
    return {s: 'running' if f'[{s}] running' in log else 'cached' if f'[{s}] cached' in log else '?' for s in STAGES}


def recorded(out, stage) -> bool:
    try: return stage in json.loads((Path(out)/'stages.json').read_text())
    except (OSError, ValueError): return False


def kill_9_when(cmd, e, log, cond, timeout=900):
    "Start `cmd`, wait for `cond()`, then `kill -9` it; returns its stderr."
    with open(log, 'w') as f:
        p = subprocess.Popen(cmd, env=e, stdout=f, stderr=subprocess.STDOUT)
        t0 = time.time()
        while p.poll() is None and not cond():
            assert time.time() - t0 < timeout, 'the kill point never came'
            time.sleep(0.05)
        assert p.poll() is None, 'it finished before the kill point: ' + Path(log).read_text()[-2000:]
        p.send_signal(signal.SIGKILL); p.wait()
    return Path(log).read_text()


def lock_held(out) -> bool:
    try: return bool((Path(out)/'.lock').read_text(errors='replace').strip())
    except OSError: return False


def same_finished_artefacts(a, b):
    for f in FINISHED: assert (Path(a)/f).read_bytes() == (Path(b)/f).read_bytes(), f


def edit_row(tsv: Path, row: int):
    lines = tsv.read_text(encoding='utf-8').splitlines(True)
    lines[row] = 'CHANGED ' + lines[row]
    tsv.write_text(''.join(lines), encoding='utf-8')


def tree_bytes(folder) -> dict:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(Path(folder).rglob('*')) if f.is_file()}


# --------------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def glue(tmp_path_factory, glue_dir):
    "A small SST-2 folder: 120 train and 60 dev rows, so the smoke preset (160 / 96) reads every row."
    d = tmp_path_factory.mktemp('glue')/'SST-2'; d.mkdir()
    for name, n in (('train.tsv', 120), ('dev.tsv', 60)):
        lines = (glue_dir/'SST-2'/name).read_text(encoding='utf-8').splitlines(True)
        (d/name).write_text(''.join(lines[:n + 1]), encoding='utf-8')
    return d.parent


@pytest.fixture(scope='module')
def ref(tmp_path_factory, glue):
    "An uninterrupted smoke run: what every resumed run must match byte for byte, and the artefacts the damage tests copy."
    root = tmp_path_factory.mktemp('ref')   # --cache names its cache; $BILSTM_KD_CACHE points elsewhere and must stay empty
    code, out, err = pipeline(root/'run', glue, root/'default-cache', '--cache', root/'cache')
    assert code == 0, err[-3000:]
    assert stage_states(err) == dict.fromkeys(STAGES, 'running')   # progress goes to stderr (the `bilstm_kd` logger)
    return root/'run'


def test_a_finished_run_reports_every_model_and_keeps_its_caches_where_asked(ref):
    "`ref`'s report names every stage and scores every model; `--cache X` put the POS tags and logits under X alone."
    rep = json.loads((ref/'report.json').read_text())
    assert {'task', 'preset', 'teacher', 'student', 'baseline', 'speed', 'stages', 'versions'} <= set(rep)
    assert rep['task'] == 'sst2' and rep['preset'] == 'smoke' and set(rep['stages']) == set(STAGES) - {'report'}
    for who in ('teacher', 'student', 'baseline', 'student_onnx_int8'):
        assert 0 <= rep[who]['metrics']['validation']['accuracy'] <= 1, who
    assert all(rep[who]['params'] > 0 for who in ('teacher', 'student', 'baseline'))
    assert rep['labelling']['n'] == rep['transfer']['n_rows']
    assert [row['model'] for row in rep['speed']][:5] == ['student', 'student-int8', 'student-onnx', 'student-onnx-int8', 'teacher']
    assert sum(row['reference'] for row in rep['speed']) == 1
    assert (ref/'report.html').stat().st_size > 10_000
    assert not list(ref.glob('.*.tmp')) and not list(ref.glob('*.ckpt'))
    default, mine = ref.parent/'default-cache', ref.parent/'cache'
    assert not default.exists() or not any(default.rglob('*')), sorted(map(str, default.rglob('*')))
    assert list((mine/'pos').glob('*.npz')) and list((mine/'logits').rglob('shard-*.npz'))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    "A private cache for in-process commands."
    monkeypatch.setenv('BILSTM_KD_CACHE', str(tmp_path/'cache'))
    return tmp_path/'cache'


# ------------------------------------------------------------------------------------------------ numeric settings
@pytest.mark.parametrize('argv,phrase', [
    (['teacher', '--epochs', '0'], '--epochs: must be > 0'),
    (['teacher', '--batch-size', '0'], '--batch-size: must be > 0'),
    (['teacher', '--lr', '-1'], '--lr: must be > 0'),
    (['teacher', '--lr', 'nan'], '--lr: must be a finite number'),
    (['teacher', '--threads', '-1'], '--threads: must be > 0'),
    (['teacher', '--max-steps', '0'], '--max-steps: must be >= 1, or -1'),
    (['teacher', '--warmup', '2'], '--warmup: must be a probability'),
    (['teacher', '--epochs', 'abc'], "--epochs: invalid float value: 'abc'"),
    (['distill', '--no-kd', '--batch-size', '-4'], '--batch-size: must be > 0'),
    (['distill', '--no-kd', '--epochs', '0'], '--epochs: must be > 0'),
    (['distill', '--no-kd', '--lr', '-1'], '--lr: must be > 0'),
    (['distill', '--no-kd', '--alpha', '2'], '--alpha: must be a probability'),
    (['distill', '--no-kd', '--max-rows', '0'], '--max-rows: must be > 0'),
    (['distill', '--no-kd', '--threads', '0'], '--threads: must be > 0'),
    (['augment', '--n-iter', '0'], '--n-iter: must be >= 1'),
    (['augment', '--p-mask', '2'], '--p-mask: must be a probability'),
    (['augment', '--p-mask', '0.7', '--p-pos', '0.7'], 'p_mask + p_pos must be <= 1'),
    (['augment', '--max-train', '0'], '--max-train: must be > 0'),
    (['teacher', '--data-seed', '-1'], '--data-seed must be in 0..4294967295'),   # the rows' seed ...
    (['augment', '--seed', '-1'], '--seed: must be in 0..4294967295'),            # ... and the command's own
    (['distill', '--no-kd', '--seed', str(2**40)], '--seed: must be in 0..4294967295'),
])
def test_a_bad_number_is_one_line_and_nothing_is_written(argv, phrase, tmp_path, glue, cache):
    out = tmp_path/'out'
    one_line_error(cli(*argv, '--task', 'sst2', '--data-dir', glue, '--out', out), phrase)
    assert not out.exists() and not list(tmp_path.glob('.out.*'))   # no untrained model saved as if trained


@pytest.mark.parametrize('argv,phrase', [
    (['label', '--batch-size', '0'], '--batch-size: must be > 0'),
    (['label', '--chunk-size', '0'], '--chunk-size: must be > 0'),
    (['label', '--threads', '-1'], '--threads: must be > 0'),
    (['evaluate', '--batch-size', '-5'], 'batch_size must be >= 1, got -5'),
    (['bench-speed', '--budget-s', '0'], '--budget-s: must be > 0'),
    (['bench-speed', '--reference', 'nope'], "unknown reference row 'nope'; choose 'fastest' or one of student"),
    (['run', '--threads', '-1'], '--threads must be >= 1'),
    (['run', '--teacher-batch-size', '0'], '--teacher-batch-size: must be > 0'),
    (['run', '--teacher-lr', '-1'], '--teacher-lr: must be > 0'),
    (['run', '--distill-batch-size', '-4'], '--distill-batch-size: must be > 0'),
    (['run', '--data-max-train', '0'], '--data-max-train: must be > 0'),
    (['run', '--augment-n-iter', '0'], '--augment-n-iter: must be >= 1'),
    (['run', '--teacher-max-steps', '0'], '--teacher-max-steps: must be >= 1, or -1'),
    (['run', '--preset', 'huge'], "invalid choice: 'huge'"),
])
def test_bad_flags_of_every_command(argv, phrase, tmp_path, ref, cache):
    given = {'label': ['--teacher', ref/'teacher', '--transfer', ref/'transfer', '--out', tmp_path/'l.npy'],
             'evaluate': ['--task', 'sst2', '--model', ref/'student'], 'bench-speed': ['--student', ref/'student'],
             'run': ['--task', 'sst2', '--out', tmp_path/'run']}[argv[0]]
    one_line_error(cli(*argv, *given), phrase)
    assert not (tmp_path/'l.npy').exists() and not (tmp_path/'run').exists()


def test_evaluate_an_explicit_split_scores_all_of_it(ref, glue, cache):
    from bilstm_kd.data import load_task
    dd = load_task('sst2', glue, verbose=False)
    for split in ('train', 'validation'):
        code, out, err = cli('evaluate', '--model', ref/'student', '--task', 'sst2', '--data-dir', glue, '--split', split, '--json')
        assert code == 0, err
        assert json.loads(out)['n'] == len(dd[split]) > 50


# ----------------------------------------------------------------------------------------------------- data files
TEXT = 'sentence\tlabel\ngood film\t1\nbad film\t0\n'

@pytest.mark.parametrize('raw,phrase', [
    (TEXT.encode('utf-16'), 'is UTF-16 text'),
    (TEXT.encode('utf-16-le'), 'is UTF-16LE text without a byte-order mark'),
    ((TEXT + 'caf\u00e9\t1\n').encode('latin-1'), 'train.tsv:4: not UTF-8 (byte 0xe9'),
    (bytes(range(256)) * 4, 'is a binary file'),
    (gzip.compress(TEXT.encode()), 'is gzip-compressed'),
    (TEXT.encode() + b'x' * 150_000 + b'\t1\n', 'train.tsv:4: field larger than field limit'),
    (b'sentence\tlabel\n', 'has a header but no rows'),
    (b'', 'empty file'),
    (TEXT.encode() + b'a \xed\xa0\x80 surrogate\t1\n', 'train.tsv:4: holds a lone surrogate'),
    (TEXT.encode() + b'hello\t7\n', "train.tsv:4: bad label '7'"),
    (TEXT.encode() + b'hello\t1\textra\n', 'train.tsv:4: expected 2 tab-separated fields, found 3'),
    (b'text\tlabel\ngood\t1\n', 'no first-sentence column'),
    (None, 'train.tsv is not a regular file'),   # a folder where the file should be: never skipped (a split carved silently)
], ids=['utf16', 'utf16le-no-bom', 'latin1', 'binary', 'gzip', 'huge-field', 'header-only', 'empty', 'surrogate',
        'bad-label', 'fields', 'columns', 'folder'])
def test_an_odd_data_file_is_one_line(raw, phrase, tmp_path, glue, ref):
    d = tmp_path/'glue'; shutil.copytree(glue, d)
    f = d/'SST-2'/'train.tsv'
    if raw is None: f.unlink(); f.mkdir()
    else: f.write_bytes(raw)
    one_line_error(cli('data', '--task', 'sst2', '--data-dir', d), phrase)
    one_line_error(cli('evaluate', '--task', 'sst2', '--model', ref/'student', '--file', f), phrase)


@pytest.mark.parametrize('raw', [('\ufeff' + TEXT).encode(), TEXT.replace('\n', '\r\n').encode() + b'\r\n\n'],
                         ids=['utf8-bom', 'crlf-blank-lines'])
def test_utf8_with_bom_crlf_and_trailing_blank_lines_are_read(raw, tmp_path, glue):
    d = tmp_path/'glue'; shutil.copytree(glue, d); (d/'SST-2'/'train.tsv').write_bytes(raw)
    code, out, err = cli('data', '--task', 'sst2', '--data-dir', d, '--json')
    assert code == 0, err
    rows = {r['split']: r['rows'] for r in json.loads(out)['splits']}
    assert rows['train'] + rows['selection'] == 2 and rows['selection'] == 1   # both rows read; one carved to choose on


@pytest.mark.parametrize('data_dir,phrase', [('/nonexistent', 'does not exist'), ('/etc/hostname', 'is a file, not a folder')])
def test_a_bad_data_folder_is_one_line(data_dir, phrase):
    one_line_error(cli('data', '--task', 'sst2', '--data-dir', data_dir), phrase)


# ----------------------------------------------------------------------------------------------------------- --out
def out_cases(tmp_path):
    (tmp_path/'a_file').write_text('mine')
    return {'file': (tmp_path/'a_file', 'is a file'), 'proc': (Path('/proc/bilstm-kd-out'), 'cannot be written'),
            'read-only': (Path('/sys/bilstm-kd-out'), 'cannot be written'),
            'under a file': (tmp_path/'a_file'/'out', str(tmp_path/'a_file'))}


@pytest.mark.parametrize('where', ['file', 'proc', 'read-only', 'under a file'])
@pytest.mark.parametrize('cmd', [['run', '--quiet'], ['teacher', '--json'], ['distill', '--json', '--no-kd'], ['augment']])
def test_a_bad_out_is_one_line_before_any_work(cmd, where, tmp_path, glue, cache):
    out, phrase = out_cases(tmp_path)[where]
    one_line_error(cli(*cmd, '--task', 'sst2', '--data-dir', glue, '--out', out), phrase)
    assert (tmp_path/'a_file').read_text() == 'mine'


@pytest.mark.parametrize('cmd', [['teacher', '--json'], ['distill', '--json', '--no-kd'], ['augment']])
def test_out_never_replaces_a_folder_of_the_users_own_files(cmd, tmp_path, glue, cache):
    mine = tmp_path/'thesis'; mine.mkdir(); (mine/'chapter1.tex').write_text('years of work')
    one_line_error(cli(*cmd, '--task', 'sst2', '--data-dir', glue, '--out', mine), 'holds files bilstm-kd did not write')
    assert tree_bytes(mine) == {'chapter1.tex': b'years of work'}


def test_label_out_never_replaces_a_folder(tmp_path, ref, cache):
    mine = tmp_path/'mine'; mine.mkdir(); (mine/'notes.txt').write_text('keep')
    one_line_error(cli('label', '--json', '--teacher', ref/'teacher', '--transfer', ref/'transfer', '--out', mine,
                       '--threads', '1'), 'is a folder; pass a file path')
    assert tree_bytes(mine) == {'notes.txt': b'keep'}


@pytest.mark.parametrize('where', ['proc', 'read-only', 'under a file'])
def test_label_checks_its_out_before_loading_the_teacher(where, tmp_path, ref, cache):
    out, phrase = out_cases(tmp_path)[where]
    one_line_error(cli('label', '--json', '--teacher', ref/'teacher', '--transfer', ref/'transfer', '--out', out), phrase)


# ----------------------------------------------------------------------------------------------- damaged artefacts
def trunc(f): f.write_bytes(f.read_bytes()[:len(f.read_bytes()) // 2])
def flip(f): b = bytearray(f.read_bytes()); b[len(b) // 2] ^= 1; f.write_bytes(bytes(b))


class Evil:   # a pickle that would run a command when loaded
    def __init__(self, flag): self.flag = flag
    def __reduce__(self): return (os.system, (f'touch {self.flag}',))


@pytest.mark.parametrize('damage', [
    lambda d: trunc(d/'model.safetensors'), lambda d: (d/'model.safetensors').write_bytes(b''),
    lambda d: (d/'model.safetensors').write_bytes(os.urandom(4096)), lambda d: trunc(d/'tokenizer.json'),
    lambda d: [(d/n).unlink() for n in ('tokenizer.json', 'tokenizer_config.json')],   # transformers would make an all-[UNK] one
    lambda d: (d/'config.json').write_text('{"x": '), lambda d: (d/'bilstm_kd_teacher.json').write_text('[]'),
    lambda d: (d/'bilstm_kd_teacher.json').write_text('{"task": "cola"}'), lambda d: flip(d/'model.safetensors'),
], ids=['truncated', 'empty', 'garbage', 'tokenizer-truncated', 'tokenizer-gone', 'config', 'marker-list', 'marker-task',
        'bit-flip'])
def test_a_damaged_teacher_is_one_line(damage, tmp_path, ref, cache):
    t = tmp_path/'teacher'; shutil.copytree(ref/'teacher', t); damage(t)
    res = cli('evaluate', '--model', t, '--task', 'sst2')
    one_line_error(res, 'unknown task' if '"cola"' in (t/'bilstm_kd_teacher.json').read_text() else 'bilstm-kd teacher')


@pytest.mark.parametrize('damage', [
    lambda d: trunc(d/'model.safetensors'), lambda d: flip(d/'model.safetensors'), lambda d: trunc(d/'vocab.json'),
    lambda d: (d/'config.json').write_text('[]'), lambda d: (d/'bilstm_kd_student.json').write_text('[]'),
    lambda d: (d/'bilstm_kd_files.json').write_text('{"x'),
], ids=['truncated', 'bit-flip', 'vocab', 'config', 'marker', 'manifest'])
def test_a_damaged_student_is_one_line(damage, tmp_path, ref, cache):
    s = tmp_path/'student'; shutil.copytree(ref/'student', s); damage(s)
    one_line_error(cli('evaluate', '--model', s, '--task', 'sst2'), 'rebuild it with `bilstm-kd distill`')
    one_line_error(cli('bench-speed', '--student', s, '--json'), 'rebuild it with `bilstm-kd distill`')


@pytest.mark.parametrize('damage', [
    lambda d: trunc(next(d.glob('*.arrow'))), lambda d: flip(next(d.glob('*.arrow'))), lambda d: trunc(d/'dataset_info.json'),
    lambda d: trunc(d/'state.json'), lambda d: (d/'bilstm_kd_transfer.json').write_text('{'),
], ids=['arrow-truncated', 'arrow-bit-flip', 'info', 'state', 'meta'])
def test_a_damaged_transfer_set_is_one_line(damage, tmp_path, ref, glue, cache):
    x = tmp_path/'transfer'; shutil.copytree(ref/'transfer', x); damage(x)
    one_line_error(cli('distill', '--json', '--task', 'sst2', '--data-dir', glue, '--out', tmp_path/'s', '--transfer', x,
                       '--logits', ref/'logits.npy'), 'bilstm-kd augment')
    one_line_error(cli('label', '--json', '--teacher', ref/'teacher', '--transfer', x, '--out', tmp_path/'l.npy'), 'bilstm-kd augment')
    assert not (tmp_path/'s').exists() and not (tmp_path/'l.npy').exists()


@pytest.mark.parametrize('make,phrase', [
    (lambda f, z: f.write_bytes(z.tobytes()[:100]), 'is not a logits .npy file'),
    (lambda f, z: f.write_bytes(b''), 'is not a logits .npy file'),
    (lambda f, z: f.write_bytes(os.urandom(3000)), 'is not a logits .npy file'),
    (lambda f, z: np.save(f, np.array([Evil(f.parent/'PWNED')], dtype=object), allow_pickle=True), 'is not a logits .npy file'),
    (lambda f, z: np.save(f, z * np.nan), 'NaN or infinite'),
    (lambda f, z: np.save(f, z[:10]), 'have shape (10, 2)'),
    (lambda f, z: np.save(f, z.astype(np.int64)), 'must be floating-point'),
    (lambda f, z: f.mkdir(), 'is not a logits .npy file'),
], ids=['truncated', 'empty', 'garbage', 'pickle', 'nan', 'rows', 'ints', 'folder'])
def test_bad_logits_are_one_line_and_a_pickle_runs_no_code(make, phrase, tmp_path, ref, glue, cache):
    f = tmp_path/'logits.npy'; make(f, np.load(ref/'logits.npy'))
    one_line_error(cli('distill', '--json', '--task', 'sst2', '--data-dir', glue, '--out', tmp_path/'s', '--transfer',
                       ref/'transfer', '--logits', f), phrase)
    assert not (tmp_path/'PWNED').exists() and not (tmp_path/'s').exists()


def test_a_transfer_set_or_teacher_of_another_task_is_one_line(tmp_path, ref, cache, glue_dir):
    base = ['distill', '--json', '--task', 'mrpc', '--data-dir', glue_dir, '--max-train', '50', '--out', tmp_path/'s']
    one_line_error(cli(*base, '--transfer', ref/'transfer', '--logits', ref/'logits.npy'), 'built for sst2, not mrpc')
    one_line_error(cli(*base, '--teacher', ref/'teacher'), 'is a sst2 teacher, not mrpc')


def test_no_pickle_anywhere():
    assert not [p.name for p in (ROOT/'bilstm_kd').glob('*.py') if 'weights_only=False' in p.read_text()]


@pytest.mark.parametrize('damage', ['bit-flip', 'truncated', 'pickle'])
def test_a_damaged_or_crafted_student_checkpoint_is_set_aside_and_runs_no_code(damage, tmp_path, glue, capsys):
    from bilstm_kd.data import load_task
    from bilstm_kd.distillation import DistillConfig, distill
    dd, cfg = load_task('sst2', glue, 160, 96, verbose=False), DistillConfig(epochs=2, threads=1)
    ref = distill('sst2', tmp_path/'ref', cfg, data=dd, no_kd=True, progress=False)
    class Stop(Exception): pass
    def stop(history):   # after epoch 2's evaluation: epoch 1's checkpoint is on disk
        if len(history) == 2: raise Stop
    with pytest.raises(Stop): distill('sst2', tmp_path/'s', cfg, data=dd, no_kd=True, progress=False, callback=stop)
    ck = next((tmp_path/'s.ckpt').glob('checkpoint-*.safetensors'))
    if damage == 'bit-flip': flip(ck)
    elif damage == 'truncated': trunc(ck)
    else: ck.write_bytes(pickle.dumps(Evil(tmp_path/'PWNED')))
    capsys.readouterr()
    s = distill('sst2', tmp_path/'s', cfg, data=dd, no_kd=True, progress=False)
    assert 'set aside, training starts over' in capsys.readouterr().err
    assert not (tmp_path/'PWNED').exists()
    for (k, a), b in zip(ref.state_dict().items(), s.state_dict().values()): assert torch.equal(a, b), k


def test_a_half_written_or_crafted_trainer_checkpoint_is_set_aside(tmp_path):
    from safetensors.torch import save_file
    from bilstm_kd.teacher import last_good_checkpoint
    for n in (4, 8, 12):
        c = tmp_path/f'checkpoint-{n}'; c.mkdir()
        (c/'trainer_state.json').write_text('{}'); save_file({'w': torch.zeros(2)}, str(c/'model.safetensors'))
        for f in ('optimizer.pt', 'scheduler.pt', 'rng_state.pth'): torch.save({'x': torch.zeros(3)}, c/f)
    trunc(tmp_path/'checkpoint-12'/'optimizer.pt')                                  # killed while writing it
    (tmp_path/'checkpoint-8'/'rng_state.pth').write_bytes(pickle.dumps(Evil(tmp_path/'PWNED')))   # crafted
    with contextlib.redirect_stderr(io.StringIO()) as err: good = last_good_checkpoint(tmp_path)
    assert Path(good).name == 'checkpoint-4' and err.getvalue().count('set aside') == 2
    assert not (tmp_path/'PWNED').exists()


# ----------------------------------------------------------------------------------------------- caches check content
def test_an_altered_pos_cache_is_retagged(cache):
    from bilstm_kd.augmentation import pos_tag
    from bilstm_kd.tokenization import tokenize
    sents = [tokenize(s) for s in ['a gorgeous , witty film', 'it is dull .']]
    tags = pos_tag(sents)
    f = next((cache/'pos').glob('*.npz'))
    with np.load(f) as z: z = dict(z)
    z['ids'] = (z['ids'] + 1) % len(z['names'])       # every tag shifted, the file still well-formed
    with open(f, 'wb') as fh: np.savez(fh, **z)
    with pytest.warns(UserWarning, match='damaged or was altered'): assert pos_tag(sents) == tags
    assert pos_tag(sents) == tags


def test_an_altered_logits_cache_shard_is_recomputed(tmp_path, ref):
    from bilstm_kd.labels import CacheRebuildWarning, LogitsCache, teacher_logits
    from bilstm_kd.teacher import load_teacher
    t, texts = load_teacher(ref/'teacher'), ['a fine film', 'a dull film', 'it works']
    z = teacher_logits(t, texts, cache=LogitsCache(tmp_path/'c'), progress=False, threads=1)
    shard = next((tmp_path/'c').rglob('shard-*.npz'))
    with np.load(shard) as s: s = dict(s)
    s['logits'] = s['logits'] + 1.0
    with open(shard, 'wb') as fh: np.savez(fh, **s)
    with pytest.warns(CacheRebuildWarning):
        np.testing.assert_array_equal(teacher_logits(t, texts, cache=LogitsCache(tmp_path/'c'), progress=False, threads=1), z)


# ---------------------------------------------------------------------------------------------------- lone surrogates
def test_lone_surrogates_read_as_replacement_characters(ref):
    from bilstm_kd.evaluation import as_predictor
    from bilstm_kd.labels import teacher_logits
    from bilstm_kd.speed import hf_runner
    from bilstm_kd.teacher import load_teacher
    bad, fixed = ['a \ud800 film', 'dull \udfff .', '\ud83d'], ['a \ufffd film', 'dull \ufffd .', '\ufffd']
    t = load_teacher(ref/'teacher')
    np.testing.assert_array_equal(teacher_logits(t, bad, progress=False), teacher_logits(t, fixed, progress=False))
    for who in ('student', 'teacher'):
        p = as_predictor(ref/who)
        np.testing.assert_array_equal(p(bad), p(fixed))
    r = hf_runner('teacher', t.model, t.tokenizer)
    assert r.run(r.prepare(bad)).shape == (3, 2)


# --------------------------------------------------------------------------------------------------------- disk full
def test_a_full_disk_is_one_line_and_the_previous_student_survives(tmp_path, ref, glue, cache, monkeypatch):
    import safetensors.torch
    out = tmp_path/'student'; shutil.copytree(ref/'student', out); before = tree_bytes(out)
    def full(*a, **k): raise RuntimeError('Error while serializing: I/O error: No space left on device (os error 28)')
    monkeypatch.setattr(safetensors.torch, 'save_file', full)
    one_line_error(cli('distill', '--json', '--task', 'sst2', '--data-dir', glue, '--no-kd', '--epochs', '1',
                       '--out', out), 'the disk is full while writing')
    assert tree_bytes(out) == before


def test_a_full_disk_while_labelling_keeps_the_previous_logits(tmp_path, ref, cache, monkeypatch):
    out = tmp_path/'logits.npy'; shutil.copy(ref/'logits.npy', out)
    def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(np, 'save', full)
    one_line_error(cli('label', '--json', '--teacher', ref/'teacher', '--transfer', ref/'transfer', '--out', out,
                       '--threads', '1'), 'the disk is full while writing')
    assert out.read_bytes() == (ref/'logits.npy').read_bytes()


def test_a_full_disk_deep_in_a_library_is_one_line(monkeypatch):
    import bilstm_kd.report
    def full(): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(bilstm_kd.report, 'paper_tables', full)
    one_line_error(cli('paper'), 'the disk is full')


# ---------------------------------------------------------------------------------------------- hub, bugs, pipes
def test_an_unknown_hub_model_fails_fast_and_leaves_nothing(tmp_path, glue, cache):
    one_line_error(cli('teacher', '--json', '--task', 'sst2', '--data-dir', glue, '--out', tmp_path/'t',
                       '--model', 'no-such-org/no-such-model'), "cannot load 'no-such-org/no-such-model'")
    one_line_error(cli('run', '--quiet', '--task', 'sst2', '--data-dir', glue, '--out', tmp_path/'r',
                       '--teacher-model', 'no-such-org/no-such-model'), "cannot load 'no-such-org/no-such-model'")
    assert not (tmp_path/'t').exists() and not list(tmp_path.glob('.t.*')) and not (tmp_path/'r').exists()


def test_a_folder_that_is_no_model_is_refused_as_teacher(tmp_path, ref, glue, cache):
    one_line_error(cli('run', '--quiet', '--task', 'sst2', '--data-dir', glue, '--out', tmp_path/'r',
                       '--teacher-model', ref/'student'), 'is not a transformers model folder (a bilstm-kd student)')


def test_an_internal_error_keeps_its_traceback_and_says_it_is_a_bug(monkeypatch):
    import bilstm_kd.report
    def boom(): raise RuntimeError('boom')
    monkeypatch.setattr(bilstm_kd.report, 'paper_tables', boom)
    code, out, err = cli('paper')
    assert code == 1 and 'Traceback' in err and 'RuntimeError: boom' in err
    assert err.strip().splitlines()[-1].startswith('error: this is a bug in bilstm_kd')


def test_a_closed_pipe_is_not_a_bug():
    e = {k: v for k, v in os.environ.items() if k != 'PYTHONUNBUFFERED'}   # stdout block-buffered, as usual
    p = subprocess.Popen([*CLI, 'paper'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    p.stdout.close()                          # like `bilstm-kd paper | head -0`
    err = p.stderr.read(); p.wait()
    assert p.returncode == 141 and 'Traceback' not in err, err


# ------------------------------------------------------------------------------------------ the run folder and resume
def test_a_damaged_ledger_is_set_aside_and_the_run_resumes(tmp_path, ref, glue):
    out = tmp_path/'run'; shutil.copytree(ref, out)
    (out/'stages.json').write_text('[]')                     # valid JSON, not a ledger
    trunc(out/'student'/'model.safetensors')                  # and a finished output damaged
    (out/'.lock').write_bytes(os.urandom(64))                 # and a lock file of garbage
    code, stdout, err = pipeline(out, glue, tmp_path/'cache')
    assert code == 0, err[-3000:]
    assert 'stages.json was unreadable; set aside' in err and list(out.glob('stages.json.broken-*'))
    same_finished_artefacts(out, ref)


def test_kill_9_anywhere_resumes_to_identical_artefacts_one_run_per_folder(tmp_path, glue, ref):
    out, e = tmp_path/'run', env(tmp_path/'cache')
    # each point, or the stage after it on a machine too busy to catch a short window: never a finished run
    points = [('mid-teacher, while it writes a checkpoint', lambda: (out/'.teacher.work'/'checkpoint-5').exists() or recorded(out, 'teacher')),
              ('after the teacher', lambda: recorded(out, 'teacher')),
              ('mid-distill, after its first checkpoint', lambda: any(out.glob('student.ckpt/*.safetensors')) or recorded(out, 'distill')),
              ('mid-baseline, after its first checkpoint', lambda: any(out.glob('baseline.ckpt/*.safetensors')) or recorded(out, 'baseline')),
              ('during evaluate', lambda: recorded(out, 'baseline'))]
    for i, (name, cond) in enumerate(points):
        if i == 0:   # while the first run holds the folder, a second run on it stops at once with one line
            with open(tmp_path/'first.log', 'w') as f:
                first = subprocess.Popen(run_cmd(out, glue), env=e, stdout=f, stderr=subprocess.STDOUT)
                while not lock_held(out):
                    assert first.poll() is None, Path(tmp_path/'first.log').read_text()[-2000:]
                    time.sleep(0.05)
                busy = subprocess.run(run_cmd(out, glue, '--quiet'), env=e, capture_output=True, text=True)
                assert first.poll() is None, 'the first run ended before the second one tried'
                one_line_error((busy.returncode, busy.stdout, busy.stderr), 'is in use by another bilstm-kd run (pid')
                while first.poll() is None and not cond(): time.sleep(0.05)
                assert first.poll() is None, name
                first.send_signal(signal.SIGKILL); first.wait()
        else: kill_9_when(run_cmd(out, glue), e, tmp_path/f'{i}.log', cond)
    code, stdout, err = pipeline(out, glue, tmp_path/'cache')
    assert code == 0, err[-3000:]
    assert 'taking over' in err and 'ended without releasing it' in err   # the dead run's lock
    same_finished_artefacts(out, ref)
    assert json.loads((out/'report.json').read_text())['task'] == 'sst2'
    assert not list(out.glob('.*.tmp')) and not list(out.glob('*.ckpt')) and not (out/'.teacher.work').exists()


def test_a_changed_data_file_reruns_exactly_the_stages_that_read_it(tmp_path, glue, ref):
    data, out, cache = tmp_path/'glue', tmp_path/'run', tmp_path/'cache'
    shutil.copytree(glue, data); shutil.copytree(ref, out)     # the same content: every stage is cached
    code, stdout, err = pipeline(out, data, cache)
    assert code == 0 and stage_states(err) == dict.fromkeys(STAGES, 'cached'), err[-2000:]
    assert err.count('] cached') == len(STAGES) and json.loads(stdout)['task'] == 'sst2'   # stdout: the JSON alone
    # dev.tsv edited, a run killed half-way through the teacher, dev.tsv edited again: the rerun must not resume the
    # killed run's work (other data); augmentation reads train only and stays cached
    edit_row(data/'SST-2'/'dev.tsv', 3)
    kill_9_when(run_cmd(out, data), env(cache), tmp_path/'k.log', lambda: any(out.glob('.teacher.work/checkpoint-*')))
    edit_row(data/'SST-2'/'dev.tsv', 5)
    code, stdout, err = pipeline(out, data, cache)
    assert code == 0, err[-3000:]
    assert stage_states(err) == {**dict.fromkeys(STAGES, 'running'), 'augment': 'cached'}
    # train.tsv edited: everything reads it
    edit_row(data/'SST-2'/'train.tsv', 2)
    code, stdout, err = pipeline(out, data, cache)
    assert code == 0 and stage_states(err) == dict.fromkeys(STAGES, 'running'), err[-3000:]


def test_a_changed_teacher_setting_reruns_exactly_its_dependents_and_switching_back_resumes(tmp_path, glue, ref):
    out, cache = tmp_path/'run', tmp_path/'cache'
    shutil.copytree(ref, out)
    code, stdout, err = pipeline(out, glue, cache, '--teacher-max-steps', '12')
    assert code == 0, err[-3000:]
    assert stage_states(err) == {'teacher': 'running', 'augment': 'cached', 'label': 'running', 'distill': 'running',
                                    'baseline': 'cached', 'evaluate': 'running', 'report': 'running'}
    # killed half-way under yet another setting, then rerun with the preset's: no mixing, the reference comes back
    kill_9_when(run_cmd(out, glue, '--teacher-max-steps', '14'), env(cache), tmp_path/'k.log',
                lambda: any(out.glob('.teacher.work/checkpoint-*')))
    code, stdout, err = pipeline(out, glue, cache)
    assert code == 0, err[-3000:]
    assert stage_states(err)['augment'] == 'cached' and stage_states(err)['baseline'] == 'cached'
    same_finished_artefacts(out, ref)


# ----------------------------------------------------------------------- a second hostile pass (issue 25), case by case
def code_folder(tmp_path, src, config='config.json'):
    "A copy of model folder `src` (no file list) whose `config` asks transformers to import the folder's own module."
    d = tmp_path/'with-code'; shutil.copytree(src, d)
    (d/'bilstm_kd_files.json').unlink(missing_ok=True)
    (d/'evil_model.py').write_text(f"open({str(tmp_path/'PWNED')!r}, 'w').write('ran')\n"
                                   "from transformers import BertForSequenceClassification as EvilModel, BertConfig as EvilConfig\n")
    cfg = json.loads((d/config).read_text())
    cfg['auto_map'] = {'AutoConfig': 'evil_model.EvilConfig', 'AutoModelForSequenceClassification': 'evil_model.EvilModel',
                       'AutoTokenizer': ['evil_model.EvilModel', None]}
    (d/config).write_text(json.dumps(cfg))
    return d


@pytest.mark.parametrize('config', ['config.json', 'tokenizer_config.json'])
def test_code_in_a_model_folder_never_runs_whatever_stdin_says(config, tmp_path, ref, glue, cache):
    d = code_folder(tmp_path, ref/'teacher', config)
    for cmd in ([*CLI, 'evaluate', '--task', 'sst2', '--data-dir', glue, '--model', d],
                [*CLI, 'run', '--task', 'sst2', '--preset', 'smoke', '--data-dir', glue, '--out', tmp_path/'run', '--teacher-model', d],
                [*CLI, 'label', '--teacher', d, '--transfer', ref/'transfer', '--out', tmp_path/'l.npy']):
        r = subprocess.run([str(c) for c in cmd], input='y\n' * 20, env=env(cache), capture_output=True, text=True)
        one_line_error((r.returncode, r.stdout, r.stderr), 'asks to run code shipped with the model (auto_map')
        assert not (tmp_path/'PWNED').exists(), 'code from the model folder ran'
    assert not (tmp_path/'run').exists() and not (tmp_path/'l.npy').exists()


def _calls(src: str, opening: str) -> list:
    "The text of every call in `src` that starts with `opening` (which ends in '('), up to its matching parenthesis."
    out, i = [], src.find(opening)
    while i >= 0:
        depth, j = 0, i + len(opening) - 1
        while True:
            depth += {'(': 1, ')': -1}.get(src[j], 0)
            if depth == 0: break
            j += 1
        out.append(src[i:j + 1]); i = src.find(opening, j)
    return out


def test_every_transformers_load_refuses_remote_code():
    import re
    calls = [(p.name, c) for p in (ROOT/'bilstm_kd').glob('*.py') if p.name != '_modidx.py'
             for name in set(re.findall(r'Auto\w+\.from_pretrained\(', p.read_text())) for c in _calls(p.read_text(), name)]
    assert len(calls) >= 6, calls
    assert all('trust_remote_code=False' in c for _, c in calls), [c for c in calls if 'trust_remote_code=False' not in c[1]]


def test_a_lock_linked_outside_the_folder_truncates_nothing(tmp_path, glue, cache):
    outside = tmp_path/'precious.txt'; outside.write_text('years of work')
    out = tmp_path/'run'; out.mkdir(); (out/'.lock').symlink_to(outside)
    one_line_error(cli('run', '--task', 'sst2', '--data-dir', glue, '--out', out, '--quiet'), 'outside the run folder')
    from bilstm_kd.core import RunLock, UserError
    with pytest.raises(UserError, match='is a symbolic link'):   # the lock itself never follows a link, wherever it points
        with RunLock(out): pass
    assert outside.read_text() == 'years of work'


def test_run_never_writes_into_a_folder_of_the_users_own_files(tmp_path, glue, cache):
    mine = tmp_path/'results'; mine.mkdir()
    (mine/'report.html').write_text('<p>my report</p>'); (mine/'eval.json').write_text('{"mine": 1}')
    one_line_error(cli('run', '--task', 'sst2', '--data-dir', glue, '--out', mine, '--quiet'), 'is a folder that holds files bilstm-kd did not write (eval.json, report.html)')
    assert tree_bytes(mine) == {'eval.json': b'{"mine": 1}', 'report.html': b'<p>my report</p>'}


def test_label_out_at_a_pipe_is_one_line_and_the_pipe_stays(tmp_path, ref, cache):
    fifo = tmp_path/'pipe'; os.mkfifo(fifo)
    one_line_error(cli('label', '--teacher', ref/'teacher', '--transfer', ref/'transfer', '--out', fifo), 'is not a regular file')
    import stat
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


@pytest.fixture
def finished(tmp_path, ref):
    "A private copy of the finished smoke run (hard links would share its files: a real copy)."
    d = tmp_path/'finished'; shutil.copytree(ref, d)
    return d


def test_another_task_in_a_finished_folder_deletes_nothing(finished, glue_dir, cache):
    before = tree_bytes(finished/'teacher')
    one_line_error(cli('run', '--task', 'mrpc', '--data-dir', glue_dir, '--out', finished, '--quiet'),
                   'holds a sst2 run and a run folder holds one task')
    assert tree_bytes(finished/'teacher') == before


@pytest.mark.parametrize('flag,value,phrase', [
    ('--augment-seed', '-1', '--augment-seed: must be in 0..4294967295'), ('--distill-seed', '-1', '--distill-seed: must be in 0..'),
    ('--seed', '-1', '--seed must be in 0..4294967295'), ('--seed', str(2**40), '--seed must be in 0..4294967295'),
    ('--threads', '9999', '--threads must be at most'), ('--teacher-threads', '9999', '--teacher-threads: must be at most'),
    ('--label-threads', '0', '--label-threads: must be'),
])
def test_a_bad_seed_or_thread_count_deletes_nothing(flag, value, phrase, finished, glue, cache):
    before = {w: tree_bytes(finished/w) for w in ('transfer', 'student', 'teacher')}
    one_line_error(cli('run', '--task', 'sst2', '--preset', 'smoke', '--data-dir', glue, '--out', finished, '--quiet', flag, value), phrase)
    assert {w: tree_bytes(finished/w) for w in before} == before


def _reweigh(src, dst, drop_head=False, num_labels=None, task=None):
    "A copy of teacher folder `src` without its file list: its head dropped, or remade with `num_labels`, its marker's task set."
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForSequenceClassification
    shutil.copytree(src, dst); (dst/'bilstm_kd_files.json').unlink()
    if num_labels:
        m = AutoModelForSequenceClassification.from_pretrained(str(src), num_labels=num_labels, ignore_mismatched_sizes=True,
                                                               id2label={i: f'class{i}' for i in range(num_labels)})
        m.save_pretrained(dst)
    if drop_head:
        w = load_file(dst/'model.safetensors')
        save_file({k: v for k, v in w.items() if not k.startswith('classifier.')}, dst/'model.safetensors', metadata={'format': 'pt'})
    if task:
        marker = json.loads((dst/'bilstm_kd_teacher.json').read_text()); marker['task'] = task
        (dst/'bilstm_kd_teacher.json').write_text(json.dumps(marker))
    return dst


def test_a_teacher_is_checked_before_it_scores(tmp_path, ref, glue, cache):
    headless = _reweigh(ref/'teacher', tmp_path/'headless', drop_head=True)
    one_line_error(cli('evaluate', '--task', 'sst2', '--data-dir', glue, '--model', headless),
                   'lacks weights its classifier needs (classifier.bias, classifier.weight)')
    three = _reweigh(ref/'teacher', tmp_path/'three', num_labels=3, task='sst2')   # a 3-class teacher relabelled as SST-2
    one_line_error(cli('evaluate', '--task', 'sst2', '--data-dir', glue, '--model', three),
                   'is a classifier with 3 labels (class0, class1, class2), but sst2 has 2')
    one_line_error(cli('label', '--teacher', three, '--transfer', ref/'transfer', '--out', tmp_path/'l.npy'), 'is a classifier with 3 labels')


def test_a_classifier_of_another_task_as_the_backbone_is_one_line(tmp_path, ref, glue, cache):
    mnli_like = _reweigh(ref/'teacher', tmp_path/'mnli', num_labels=3)
    (mnli_like/'bilstm_kd_teacher.json').unlink()   # a plain transformers classifier, as the hub has them
    one_line_error(cli('run', '--task', 'sst2', '--data-dir', glue, '--out', tmp_path/'run', '--teacher-model', mnli_like, '--quiet'),
                   'is a classifier with 3 labels (class0, class1, class2); fine-tuning it for sst2 needs 2')
    one_line_error(cli('teacher', '--task', 'sst2', '--data-dir', glue, '--out', tmp_path/'t', '--model', mnli_like, '--json'),
                   'is a classifier with 3 labels')
    assert not (tmp_path/'run').exists() and not (tmp_path/'t').exists()


def test_a_stage_output_linked_outside_is_refused_and_a_link_inside_is_unlinked_not_followed(finished, tmp_path, glue, cache):
    away = tmp_path/'away'; (finished/'teacher').rename(away); (finished/'teacher').symlink_to(away)
    one_line_error(cli('run', '--task', 'sst2', '--data-dir', glue, '--out', finished, '--quiet', '--teacher-lr', '3e-5'),
                   'outside the run folder')
    (finished/'teacher').unlink(); (finished/'teacher.real').mkdir(); (finished/'teacher.real'/'keep').write_text('mine')
    (finished/'teacher').symlink_to('teacher.real')
    from bilstm_kd.pipeline import Ledger, STAGE
    Ledger(finished, progress=False).clear(STAGE['teacher'])
    assert not (finished/'teacher').exists() and (finished/'teacher.real'/'keep').read_text() == 'mine'


def test_a_resumed_stage_keeps_its_thread_count(finished, glue, cache, monkeypatch):
    from bilstm_kd import core
    from bilstm_kd.pipeline import run_pipeline, get_preset
    monkeypatch.setattr(core, 'usable_cores', lambda: 2)   # the 2 cores of CI's machine, also under `taskset`
    recs = json.loads((finished/'stages.json').read_text())
    key = recs.pop('distill')['key']   # as if a kill interrupted distill's attempt on 2 threads
    (finished/'stages.json').write_text(json.dumps(recs))
    (finished/'.running.json').write_text(json.dumps({'distill': {'key': key, 'threads': 2}}))
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        run_pipeline('sst2', get_preset('smoke'), finished, glue, cache=cache, targets=('distill',))
    assert '[distill] resuming on the 2 thread(s) it started with' in buf.getvalue()
    assert json.loads((finished/'stages.json').read_text())['distill']['threads'] == 2
    recs = json.loads((finished/'stages.json').read_text()); recs.pop('distill')
    (finished/'stages.json').write_text(json.dumps(recs))
    (finished/'.running.json').write_text(json.dumps({'distill': {'key': key, 'threads': 2}}))
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):   # a count asked for that differs: the attempt starts again, never mixes
        run_pipeline('sst2', get_preset('smoke'), finished, glue, threads=1, cache=cache, targets=('distill',))
    assert 'ran on 2 thread(s): starting it again on the 1 asked for' in buf.getvalue()
    assert json.loads((finished/'stages.json').read_text())['distill']['threads'] == 1


def test_labels_do_not_depend_on_the_thread_count(ref, monkeypatch):
    "Why the label stage may choose its threads afresh (per shard, on a resume) while training stages keep theirs."
    from bilstm_kd import core
    monkeypatch.setattr(core, 'usable_cores', lambda: 2)
    from bilstm_kd.labels import LabelConfig, teacher_logits
    from bilstm_kd.teacher import load_teacher
    from bilstm_kd.transfer import load_transfer_set
    from bilstm_kd.data import texts_of
    t, x = load_teacher(ref/'teacher'), texts_of(load_transfer_set(ref/'transfer'))[:300]
    one, two = (teacher_logits(t, x, LabelConfig(threads=n), progress=False) for n in (1, 2))
    assert one.tobytes() == two.tobytes()


def test_threads_count_the_cores_this_process_may_use():
    "Under `taskset` (or a container's CPU set) the heuristic and the limit see the allowed cores, not the machine's."
    code = ("from bilstm_kd.core import usable_cores, choose_threads, thread_count;"
            "print(usable_cores(), choose_threads(quiet=True), thread_count(2))")
    r = subprocess.run(['taskset', '-c', '0', sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ['1', '1'] and 'must be at most 1, the cores this process may use' in r.stdout
