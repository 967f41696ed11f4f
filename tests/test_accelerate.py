"""Several processes under `accelerate launch`: labelling shared by 2 CPU processes equals one process's, the logits
cache is shared across process counts, and the teacher's Trainer (DDP over gloo) writes one folder.

Two CPU processes come from `accelerate launch --multi_gpu --num_processes 2` with CUDA hidden: accelerate 1.16
starts several *CPU* processes from `--cpu` only through MPI, so `--cpu --num_processes 2` alone runs one process
(tested too: it says so and gives the same logits); the MPI route is tested where `mpirun` is installed.
"""
import json, os, shutil, socket, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

from bilstm_kd.data import load_task
from bilstm_kd.labels import LabelConfig, LogitsCache
from bilstm_kd.teacher import TEACHER_MARKER, finetune_teacher
from bilstm_kd.transfer import build_transfer_set, label_transfer, save_transfer_set

DATA = os.environ.get('BILSTM_KD_DATA', '/work/shared/data/glue')
pytestmark = pytest.mark.skipif(not Path(DATA, 'SST-2', 'train.tsv').is_file(), reason='local GLUE data not found')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _script() -> list:
    exe = shutil.which('bilstm-kd')
    return [exe] if exe else ['-m', 'bilstm_kd.cli']

def launch(*args, n=2, how='multi_gpu', timeout=300):
    "Run `bilstm-kd ARGS` under `accelerate launch` with `n` CPU processes; returns the CompletedProcess."
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    opts = ['--num_processes', str(n), '--num_machines', '1', '--mixed_precision', 'no', '--dynamo_backend', 'no']
    if how == 'multi_gpu': opts += ['--multi_gpu', '--main_process_port', '0']
    elif how == 'cpu': opts += ['--cpu']
    elif how == 'mpi':
        hostfile = Path(env.get('TMPDIR', '/tmp'))/f'bilstm_kd_hostfile_{os.getpid()}'
        hostfile.write_text(f'localhost slots={n}\n')
        env.update(OMPI_ALLOW_RUN_AS_ROOT='1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM='1')
        opts += ['--cpu', '--mpirun_hostfile', str(hostfile), '--main_process_port', str(_free_port())]
    cmd = [sys.executable, '-m', 'accelerate.commands.launch', *opts, *_script(), *map(str, args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)

def json_lines(stdout: str) -> list:
    return [json.loads(l) for l in stdout.splitlines() if l.startswith('{"')]   # (Trainer's log dicts are not JSON)


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    "A few-step teacher (64 SST-2 sentences, one thread) and a small saved transfer set."
    d = tmp_path_factory.mktemp('accel')
    finetune_teacher('sst2', d/'teacher', data=load_task('sst2', DATA, max_train=64, max_eval=32, verbose=False),
                     batch_size=16, eval_steps=2, progress=False, threads=1)
    save_transfer_set(build_transfer_set(load_task('sst2', DATA, max_train=120, verbose=False)['train'], n_iter=3,
                                         task='sst2'), d/'transfer')
    return d


def test_label_on_two_processes_equals_one(smoke, tmp_path):
    one = label_transfer(smoke/'teacher', smoke/'transfer', tmp_path/'one.npy', LabelConfig(threads=1, chunk_size=128),
                         cache=tmp_path/'c1', progress=False)
    r = launch('label', '--teacher', smoke/'teacher', '--transfer', smoke/'transfer', '--out', tmp_path/'two.npy',
               '--cache', tmp_path/'c2', '--chunk-size', 128, '--threads', 1, '--json')
    assert r.returncode == 0, r.stderr[-3000:]
    (res,) = json_lines(r.stdout)                          # the main process alone reports
    two = np.load(tmp_path/'two.npy')
    assert res['processes'] == 2 and res['rows'] == len(one) == len(two)
    assert two.shape == one.shape and two.dtype == np.float32
    assert np.abs(two - one).max() <= 1e-4                 # same rows, same order
    assert not [p for p in tmp_path.iterdir() if p.name.endswith('.tmp')]
    # the cache is shared across process counts: same chunks -> interchangeable shards
    s1, s2 = (sorted((tmp_path/c).rglob('shard-*.npz')) for c in ('c1', 'c2'))
    assert len(s1) == len(s2) > 1
    s2[0].unlink()                                        # as if the 2-process run had been killed before that shard
    c = LogitsCache(tmp_path/'c2')
    again = label_transfer(smoke/'teacher', smoke/'transfer', None, LabelConfig(threads=1, chunk_size=128), cache=c, progress=False)
    assert 0 < c.misses <= 128 and c.hits > 0             # one process finishes what two left
    np.testing.assert_allclose(again, one, atol=1e-4)


def test_two_processes_reuse_a_one_process_cache(smoke, tmp_path):
    label_transfer(smoke/'teacher', smoke/'transfer', tmp_path/'one.npy', LabelConfig(threads=1), cache=tmp_path/'c',
                   progress=False)
    before = sorted(p.name for p in (tmp_path/'c').rglob('shard-*.npz'))
    r = launch('label', '--teacher', smoke/'teacher', '--transfer', smoke/'transfer', '--out', tmp_path/'two.npy',
               '--cache', tmp_path/'c', '--threads', 1, '--json')
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path/'c').rglob('shard-*.npz')) == before   # nothing relabelled
    np.testing.assert_allclose(np.load(tmp_path/'two.npy'), np.load(tmp_path/'one.npy'), atol=1e-4)


def test_accelerate_cpu_flag_without_mpi_runs_one_process_and_says_so(smoke, tmp_path):
    one = label_transfer(smoke/'teacher', smoke/'transfer', None, LabelConfig(threads=1), cache=None, progress=False)
    r = launch('label', '--teacher', smoke/'teacher', '--transfer', smoke/'transfer', '--out', tmp_path/'z.npy',
               '--cache', tmp_path/'c', '--threads', 1, '--json', how='cpu')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'started one process' in r.stderr and 'processes' not in json_lines(r.stdout)[0]
    np.testing.assert_allclose(np.load(tmp_path/'z.npy'), one, atol=1e-4)


@pytest.mark.skipif(shutil.which('mpirun') is None, reason='no mpirun: accelerate starts CPU processes from --cpu only through MPI')
def test_label_on_two_mpi_processes_equals_one(smoke, tmp_path):
    one = label_transfer(smoke/'teacher', smoke/'transfer', None, LabelConfig(threads=1), cache=None, progress=False)
    r = launch('label', '--teacher', smoke/'teacher', '--transfer', smoke/'transfer', '--out', tmp_path/'z.npy',
               '--cache', tmp_path/'c', '--threads', 1, '--json', how='mpi')
    assert r.returncode == 0, r.stderr[-3000:]
    assert json_lines(r.stdout)[0]['processes'] == 2
    assert np.abs(np.load(tmp_path/'z.npy') - one).max() <= 1e-4


def test_teacher_on_two_processes_writes_one_folder(tmp_path):
    r = launch('teacher', '--task', 'sst2', '--max-train', 64, '--max-eval', 32, '--batch-size', 16, '--eval-steps', 2,
               '--threads', 1, '--json', '--out', tmp_path/'t')
    assert r.returncode == 0, r.stderr[-3000:]
    (res,) = json_lines(r.stdout)
    assert [p.name for p in tmp_path.iterdir()] == ['t']    # no work folder, no temporary, no second copy
    info = json.loads((tmp_path/'t'/TEACHER_MARKER).read_text())
    assert info['processes'] == 2
    assert info['steps'] == res['steps'] == 4               # 64 rows at a total batch of 16: 8 per process
    assert info['metrics'] == res['metrics'] and info['metrics']['validation']['n'] == 32
    assert (tmp_path/'t'/'model.safetensors').is_file()


def test_teacher_refuses_a_batch_that_does_not_split(tmp_path):
    r = launch('teacher', '--task', 'sst2', '--max-train', 64, '--max-eval', 32, '--batch-size', 15, '--threads', 1,
               '--json', '--out', tmp_path/'t')
    assert r.returncode != 0 and 'error: batch_size 15 does not split evenly over 2 processes' in r.stderr
    assert not (tmp_path/'t').exists()


@pytest.mark.slow
def test_run_on_two_processes(tmp_path):
    "The whole smoke pipeline under 2 processes (about a minute): one report, one ledger; one process then reuses it."
    r = launch('run', '--task', 'sst2', '--preset', 'smoke', '--out', tmp_path/'run', '--threads', 1, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (res,) = json_lines(r.stdout)
    assert 'teacher and label use all of them' in r.stderr and r.stderr.count('[label] running') == 1
    stages = json.loads((tmp_path/'run'/'stages.json').read_text())
    assert list(stages) == ['teacher', 'augment', 'label', 'distill', 'baseline', 'evaluate', 'report']
    assert stages['label']['result']['processes'] == 2
    assert json.loads((tmp_path/'run'/'teacher'/TEACHER_MARKER).read_text())['processes'] == 2
    direct = _script() if _script()[0] != '-m' else [sys.executable, *_script()]
    one = subprocess.run([*direct, 'run', '--task', 'sst2', '--preset', 'smoke', '--out', tmp_path/'run', '--threads', '1'],
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    assert one.stderr.count('] cached') == 7 and json_lines(one.stdout)[0]['stages'] == res['stages']
