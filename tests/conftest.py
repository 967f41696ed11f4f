"Shared test set-up: offline by default, local GLUE and NLTK data from ../shared, a private cache."
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent/'shared'
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
os.environ.setdefault('NLTK_DATA', str(SHARED/'nltk_data'))
os.environ.setdefault('BILSTM_KD_DATA', str(SHARED/'data'/'glue'))

@pytest.fixture(scope='session')
def glue_dir() -> Path:
    d = Path(os.environ['BILSTM_KD_DATA'])
    assert (d/'SST-2'/'train.tsv').is_file(), f'local GLUE data missing at {d}'
    return d

@pytest.fixture(autouse=True, scope='session')
def _private_cache(tmp_path_factory):
    "Keep test caches out of ~/.cache unless CI chose a folder."
    if 'BILSTM_KD_CACHE' not in os.environ:
        os.environ['BILSTM_KD_CACHE'] = str(tmp_path_factory.mktemp('cache'))
    yield

@pytest.fixture(scope='session')
def artifacts_dir() -> Path:
    "Where tests save artefacts (screenshots): $BILSTM_KD_ARTIFACTS or tests/artifacts."
    d = Path(os.environ.get('BILSTM_KD_ARTIFACTS') or ROOT/'tests'/'artifacts')
    d.mkdir(parents=True, exist_ok=True)
    return d
