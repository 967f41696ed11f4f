"Installs that match the notebooks: one install source for the notebooks and the README, and every import declared."
import importlib.metadata as md, importlib.util, re, sys

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location('install_source', ROOT/'tools'/'install_source.py')
src = importlib.util.module_from_spec(spec); spec.loader.exec_module(src)


def test_install_source_comes_from_pyproject():
    pp = src.pyproject()
    want = 'bilstm_kd[ui]' if pp['tool']['bilstm_kd']['install-from'] == 'pypi' else \
        f"bilstm_kd[ui] @ git+{pp['project']['urls']['Repository']}"
    assert src.install_spec() == want


@pytest.mark.parametrize('nb', src.chapters(), ids=lambda p: p.name)
def test_chapter_installs_from_the_one_source(nb):
    "The first hidden code cell of every chapter installs exactly `install_spec()` when bilstm_kd is missing."
    cells = [c for c in src.json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code']
    first_hidden = next(c for c in cells if 'hide' in src.directives(''.join(c['source'])))
    assert ''.join(first_hidden['source']) == src.install_cell(), 'run `python tools/install_source.py`'


def test_readme_installs_from_the_one_source():
    "Every `pip install` of bilstm_kd in the README (other than `-e .` from a checkout) names the one source."
    want = src.install_spec().split('[')[0], src.install_spec().partition(' @ ')[2]   # name, URL ('' for PyPI)
    readme = (ROOT/'README.md').read_text()
    found = re.findall(r'pip install[^\n`]*?["\']?(bilstm_kd(?:\[[\w,]+\])?(?: @ [^\s"\'`]+)?)', readme)
    assert found, 'the README names no install line for bilstm_kd'
    for req in found:
        assert (req.split('[')[0], req.partition(' @ ')[2]) == want, f'README installs {req!r}, not {src.install_spec()!r}'


def test_colab_badges_point_at_the_repository():
    repo = src.pyproject()['project']['urls']['Repository'].removeprefix('https://github.com/')
    for nb in src.chapters():
        badge = f'https://colab.research.google.com/github/{repo}/blob/main/nbs/{nb.name}'
        assert badge in nb.read_text(), f'{nb.name}: no Colab badge for {badge}'


def test_notebook_imports_are_declared():
    "Every third-party module a notebook imports (outside `#| eval: false`) comes from a distribution of bilstm_kd[ui]."
    dists, declared = md.packages_distributions(), src.declared()
    optional = set(src.pyproject()['tool']['bilstm_kd']['optional-imports'])
    missing = {}
    for mod, nbs in src.notebook_imports().items():
        if mod in optional: continue
        names = {src._norm(d) for d in dists.get(mod, [])}
        assert names, f'{mod} (imported by {", ".join(nbs)}) is not installed here, so its distribution is unknown'
        if not names & declared: missing[mod] = (sorted(names), nbs)
    assert not missing, f'imported by the notebooks but not declared by bilstm_kd[ui]: {missing}'


def test_import_scanner():
    code = ("import numpy as np, os\nfrom plotly.subplots import make_subplots\nfrom . import x\n"
            "def f():\n    import torch\n    try: import spacy\n    except ImportError: pass\n%pip install foo\n"
            "if True:\n    !ls\n")
    assert src._imports(code) == {'numpy', 'os', 'plotly', 'torch'}


def test_environment_yml_has_the_same_dependencies():
    "environment.yml (conda) lists every dependency of the base install and the ui and dev extras."
    from packaging.requirements import Requirement
    pp = src.pyproject()['project']
    reqs = pp['dependencies'] + pp['optional-dependencies']['ui'] + pp['optional-dependencies']['dev']
    want = {src._norm(Requirement(r).name) for r in reqs} - {'bilstm-kd'}
    conda_names = {'python-build': 'build'}
    have = {conda_names.get(n, n) for n in (src._norm(m) for m in
            re.findall(r'^\s*-\s+([A-Za-z][\w.-]*)', (ROOT/'environment.yml').read_text(), re.M))}
    assert want <= have, f'missing from environment.yml: {sorted(want - have)}'
