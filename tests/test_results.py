"Every figure the README quotes about a run is the rendering of a results file that run wrote."
import json

from conftest import ROOT
from bilstm_kd.report import report_markdown


def test_readme_quotes_each_results_file_as_rendered():
    files = sorted((ROOT/'results').glob('*.json'))
    assert files, 'no results file'
    readme = (ROOT/'README.md').read_text()
    for f in files:
        rep = json.loads(f.read_text())
        assert {'date', 'commit', 'machine', 'task', 'preset'} <= set(rep), f'{f.name} lacks when, where or at which commit it ran'
        assert report_markdown(rep) in readme, f"README.md does not quote {f.name} as report_markdown renders it"


def test_a_changed_figure_is_caught(tmp_path):
    rep = json.loads(sorted((ROOT/'results').glob('*.json'))[0].read_text())
    rep['student']['metrics'] = {k: {**v, 'accuracy': v['accuracy'] + 0.01} for k, v in rep['student']['metrics'].items()}
    assert report_markdown(rep) not in (ROOT/'README.md').read_text()


def test_readme_quotes_each_group_of_seeds_as_rendered():
    "Results files that differ only in their seed (`NAME-seedN.json`) are quoted together as `seeds_markdown` renders them."
    import re
    from collections import defaultdict
    from bilstm_kd.report import seeds_markdown
    groups = defaultdict(list)
    for f in sorted((ROOT/'results').glob('*-seed*.json')):
        groups[re.sub(r'-seed\d+$', '', f.stem)].append(f)
    readme = (ROOT/'README.md').read_text()
    for name, files in groups.items():
        if len(files) < 2: continue
        table = seeds_markdown([json.loads(f.read_text()) for f in sorted(files, key=lambda f: int(f.stem.rsplit('seed', 1)[1]))])
        assert table in readme, f"README.md does not quote the {len(files)} seeds of {name} as seeds_markdown renders them"
