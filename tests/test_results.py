"Every figure the README quotes about a run is the rendering of a results file that run wrote."
import json

from conftest import ROOT
from bilstm_kd.report import report_markdown


def run_reports() -> list:
    "The results files that are single runs the README quotes (course packs and chapter times have their own tests below)."
    return [f for f in sorted((ROOT/'results').glob('*.json')) if not f.name.startswith(('course-pack-', 'chapter-times-'))]


def test_readme_quotes_each_results_file_as_rendered():
    files = run_reports()
    assert files, 'no results file'
    readme = (ROOT/'README.md').read_text()
    for f in files:
        rep = json.loads(f.read_text())
        assert {'date', 'commit', 'machine', 'task', 'preset'} <= set(rep), f'{f.name} lacks when, where or at which commit it ran'
        assert report_markdown(rep) in readme, f"README.md does not quote {f.name} as report_markdown renders it"


def test_a_changed_figure_is_caught(tmp_path):
    rep = json.loads(run_reports()[0].read_text())
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
    prose = (ROOT/'README.md').read_text() + course_page()
    for name, files in groups.items():
        if len(files) < 2: continue
        reports = [json.loads(f.read_text()) for f in sorted(files, key=lambda f: int(f.stem.rsplit('seed', 1)[1]))]
        assert seeds_markdown(reports) in prose, f"neither README.md nor the course page quotes the {len(files)} seeds of {name} as seeds_markdown renders them"
        if all('build' in r for r in reports):     # course packs: their build times too
            from bilstm_kd.course import builds_markdown
            assert builds_markdown(reports) in course_page(), f"the course page does not quote the builds of {name} as builds_markdown renders them"


def course_page() -> str:
    "The instructor's page's prose: its markdown cells, joined."
    nb = json.loads((ROOT/'nbs'/'course.ipynb').read_text())
    return '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown')


def test_the_session_plans_quote_their_measured_times():
    "Each run time of both session plans is the `nbdev-test` seconds tools/time_chapters.py wrote for the chapters it names."
    import re
    page = course_page()
    plans = page[page.index('### A 90-minute session'):page.index('### Slides-ready figures')]
    name = re.search(r'`results/(chapter-times-[\w.-]+\.json)`', plans).group(1)
    res = json.loads((ROOT/'results'/name).read_text())
    assert {'date', 'commit', 'machine', 'pack'} <= set(res) and all(r['passed'] for r in res['rows'])
    sec = {r['notebook'].split('_')[0]: round(r['seconds']) for r in res['rows']}
    for plan, minutes in (('### A 90-minute session', 90), ('### A 3-hour session', 180)):
        part = plans[plans.index(plan):]
        part = part[:part.index('###', 4)] if '###' in part[4:] else part
        rows = [l for l in part.splitlines() if l.startswith('| ') and not l.startswith(('| segment', '|---'))]
        assert sum(int(l.split('|')[5]) for l in rows) == minutes, plan
        for l in rows:
            codes, quoted = l.split('|')[2].strip().split(':')[0], l.split('|')[4].strip()
            if quoted in ('', '–'): continue
            assert quoted == ' + '.join(f'{sec[c]} s' for c in codes.split(' + ')), (plan, codes, quoted)


def test_the_time_per_chapter_table_is_the_results_file_rendered():
    import re, sys
    sys.path.insert(0, str(ROOT/'tools'))
    from time_chapters import markdown
    page = course_page()
    part = page[page.index('## Time per chapter'):page.index('## Precompute before class')]
    name = re.search(r'`results/(chapter-times-[\w.-]+\.json)`', part).group(1)
    assert markdown(json.loads((ROOT/'results'/name).read_text())) in part
