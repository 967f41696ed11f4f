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
