"The one-command pipeline: one-line CLI errors, what the students read, stage keys. (A finished smoke run, killed and resumed runs, `--cache`: tests/test_faults.py.)"
import subprocess, sys

import pytest

CLI = [sys.executable, '-m', 'bilstm_kd.cli']


def _run(*args, **kw):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, **kw)


@pytest.mark.parametrize('args,msg', [
    (['run', '--task', 'sst2', '--preset', 'paper', '--out', 'x'], 'needs a GPU'),
    (['run', '--task', 'cola', '--out', 'x'], "unknown task 'cola'"),
    (['run', '--task', 'sst2', '--preset', 'huge', '--out', 'x'], "invalid choice: 'huge'"),
    (['run', '--task', 'sst2', '--data-dir', '/nonexistent', '--out', 'x'], 'does not exist'),
])
def test_run_user_errors(args, msg, tmp_path):
    r = _run(*args, cwd=tmp_path)
    assert r.returncode == 2 and msg in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(('error:', 'bilstm-kd run: error:'))
    assert 'Traceback' not in r.stderr


def test_max_gold_cuts_only_the_students_data(tmp_path, glue_dir):
    "`max_gold` gives the students (augment, distill, baseline) fewer gold rows; the teacher still reads all of train."
    import dataclasses
    from bilstm_kd.data import DataConfig, RunPaths, data_fingerprint, get_task
    from bilstm_kd.pipeline import Ledger, Run, STAGE, get_preset, rerun_stages
    dd = DataConfig(max_train=400, max_eval=50).load('sst2', glue_dir, verbose=False)
    p = get_preset('smoke'); g = dataclasses.replace(p, data=p.data.replace(max_gold=100))
    paths, led, fp = RunPaths.resolve(glue_dir, tmp_path/'cache', tmp_path/'run'), Ledger(tmp_path/'run', False), data_fingerprint(dd)
    r0, r1 = (Run(get_task('sst2'), q, paths, dd, False) for q in (p, g))
    assert r0.gold is dd                                           # by default the students read all of train, keys as before
    assert len(r1.gold['train']) == 100 and r1.gold['validation'] is dd['validation'] and r1.gold['selection'] is dd['selection']
    assert set(r1.gold['train']['text_a']) <= set(dd['train']['text_a'])
    assert sorted(set(r1.gold['train']['label'])) == [0, 1]         # stratified
    key = lambda r, s: led.key(STAGE[s], r, fp)
    assert key(r0, 'teacher') == key(r1, 'teacher')                # the teacher is not retrained ...
    assert key(r0, 'augment') != key(r1, 'augment') and key(r0, 'baseline') != key(r1, 'baseline')   # ... the students are
    assert rerun_stages('max_gold')[0] == 'augment' and 'teacher' not in rerun_stages('max_gold')


def test_course_pack_command_takes_a_seed_and_a_precision(monkeypatch):
    "`bilstm-kd course-pack --seed S --label-precision P` builds the default preset with those, and says so in its settings."
    import bilstm_kd.course as course
    from bilstm_kd.cli import build_parser
    monkeypatch.delenv('BILSTM_KD_COURSE_PRESET', raising=False)   # the default preset, whatever the test run chose
    seen = {}
    def fake_build(out, p, *a, **k):   # what the command would build, without building it
        seen['p'] = p; raise SystemExit(0)
    monkeypatch.setattr(course, 'build_course_pack', fake_build)
    args = build_parser().parse_args(['course-pack', '--out', '/tmp/x', '--seed', '3', '--label-precision', 'fp32'])
    with pytest.raises(SystemExit): args.func(args)
    p = seen['p']
    assert (p.name, p.teacher.seed, p.augment.seed, p.distill.seed, p.label.precision) == ('class', 3, 3, 3, 'fp32')
    monkeypatch.setenv('BILSTM_KD_COURSE_PRESET', 'mini')
    assert course.course_preset() == 'mini'


def test_a_new_setting_at_its_default_keeps_old_runs_cached(tmp_path, glue_dir):
    "A field added to a config (declared with `added`) changes no stage key while at its default; off its default, its stages rerun."
    import dataclasses
    from bilstm_kd.augmentation import AugmentConfig
    from bilstm_kd.core import added
    from bilstm_kd.data import DataConfig, RunPaths, data_fingerprint, get_task
    from bilstm_kd.pipeline import Ledger, Run, STAGE, get_preset

    @dataclasses.dataclass(frozen=True)
    class Newer(AugmentConfig):   # as if a release added a rule that is off by default
        p_swap: float = added(0.0)

    dd = DataConfig(max_train=200, max_eval=40).load('sst2', glue_dir, verbose=False)
    p = get_preset('smoke')
    paths, led, fp = RunPaths.resolve(glue_dir, tmp_path/'cache', tmp_path/'run'), Ledger(tmp_path/'run', False), data_fingerprint(dd)
    key = lambda aug, s: led.key(STAGE[s], Run(get_task('sst2'), dataclasses.replace(p, augment=aug), paths, dd, False), fp)
    old, new, on = p.augment, Newer(**p.augment.to_dict()), Newer(**p.augment.to_dict(), p_swap=0.1)
    assert key(new, 'augment') == key(old, 'augment')   # the old run's transfer set is still found
    assert key(on, 'augment') != key(old, 'augment') and key(on, 'teacher') == key(old, 'teacher')


def test_word_vectors_are_keyed_by_content_not_by_name():
    "`--vectors auto` and the file it resolves to train one student (an ablation's 'GloVe 50-d' row offline reuses the preset's); other vectors another."
    import dataclasses
    from bilstm_kd.pipeline import STAGES, get_preset
    from bilstm_kd.tokenization import resolve_vectors
    p = get_preset('cpu')
    with_vectors = lambda p, v, **student: dataclasses.replace(p, distill=p.distill.replace(vectors=v), student=p.student.replace(**student))
    for stage in (s for s in STAGES if s.name in ('distill', 'baseline')):
        same = stage.settings(p) == stage.settings(with_vectors(p, 'glove-50d'))
        assert same == (resolve_vectors('auto')[0] == 'kumo'), stage.name   # offline 'auto' is the packaged GloVe 50-d
        assert stage.settings(p) != stage.settings(with_vectors(p, 'minilm-384d')), stage.name
        assert stage.settings(with_vectors(p, 'auto', embed_mode='rand')) == stage.settings(with_vectors(p, 'minilm-384d', embed_mode='rand'))
