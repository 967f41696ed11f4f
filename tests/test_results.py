"Every figure the README quotes about a run is the rendering of a results file that run wrote."
import json

from conftest import ROOT
from bilstm_kd.report import report_markdown


def run_reports() -> list:
    "The results files that are single runs the README quotes (course packs, chapter times and ablations have their own tests below)."
    return [f for f in sorted((ROOT/'results').glob('*.json')) if not f.name.startswith(('course-pack-', 'chapter-times-', 'ablation-'))]


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
    rep['student']['metrics'] = {k: {m: x + 0.01 if m != 'n' else x for m, x in v.items()} for k, v in rep['student']['metrics'].items()}
    assert report_markdown(rep) not in (ROOT/'README.md').read_text()


def test_readme_quotes_each_ablation_as_rendered():
    "An ablation's results file (`ablation-*.json`, an `ablation.json` copied verbatim) is quoted as `ablation_markdown` renders it."
    from bilstm_kd.ablation import ablation_markdown
    files, readme = sorted((ROOT/'results').glob('ablation-*.json')), (ROOT/'README.md').read_text()
    assert files, 'no ablation results file'
    for f in files:
        res = json.loads(f.read_text())
        assert {'date', 'commit', 'machine', 'task', 'preset', 'metric', 'rows'} <= set(res), f'{f.name} lacks when, where or at which commit it ran'
        assert res['metric'].startswith('selection/'), f'{f.name}: an ablation chooses, so it reads the selection split'
        assert ablation_markdown(res) in readme, f"README.md does not quote {f.name} as ablation_markdown renders it"
        edited = dict(res, rows=[dict(r, metric=r['metric'] + 0.01) if 'metric' in r else r for r in res['rows']])
        assert ablation_markdown(edited) not in readme   # a changed score is caught


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


def test_the_readme_speed_table_is_a_results_file_rendered():
    "The README's speed table is `speed_markdown` of a results file, verbatim."
    from bilstm_kd.report import speed_markdown
    readme = (ROOT/'README.md').read_text()
    rendered = [speed_markdown(json.loads(f.read_text())) for f in run_reports() if json.loads(f.read_text()).get('speed')]
    assert any(r in readme for r in rendered), 'README.md quotes no speed table as speed_markdown renders a results file'
    heads = readme.count('| model | parameters | batch-1 latency |')
    assert heads == sum(r in readme for r in rendered), 'a speed table in README.md is not the rendering of a results file'


# --- Every figure in prose has a source -------------------------------------------------------------------------
# What counts as a figure about a run: an accuracy-like decimal (0.5 to 1, three or four places), a gain in points, a
# ratio written N×, a time or a rate with its unit. Each must be a number of a results file (at the precision quoted,
# or as a percentage, or seconds as minutes), a figure of the paper (06b's tables and the ratios it derives), or text
# that a renderer of results files writes (the mean ± std of seeds, the speed table's multiples).
import re

FIGURE = re.compile(r"""(?<![\w.,/^-])(?:
      (?P<acc>0\.\d{3,4})(?![\d%])
    | (?P<pts>[+−-]?\d+(?:\.\d+)?)(?=\s?points?\b)
    | (?P<ratio>\d[\d,]*(?:\.\d+)?)(?=×)
    | (?P<time>\d[\d,]*(?:\.\d+)?)(?=\s?(?P<unit>ms|s|seconds|min|minutes|rows/s|sentences/s|pairs/s)\b)
    )""", re.X)
UNIT = {'ms': ('ms', 1), 's': ('s', 1), 'seconds': ('s', 1), 'min': ('s', 1 / 60), 'minutes': ('s', 1 / 60),
        'rows/s': ('rate', 1), 'sentences/s': ('rate', 1), 'pairs/s': ('rate', 1)}   # a quoted unit: the kind of number it reads, and the scale


KIND_OF_KEY = (('s', re.compile(r'second|_s$|runtime')), ('ms', re.compile(r'_ms$')), ('rate', re.compile(r'per_s|throughput')),
               ('ratio', re.compile(r'ratio|speedup')), ('pts', re.compile(r'points')))


def _numbers(o, key='', under=''):
    "(kind, value) of every number in `o`: a time or rate, a ratio or a gain by its key's name (a stage's seconds by its parent's); any number may be an accuracy-like figure."
    if isinstance(o, dict): yield from (x for k, v in o.items() for x in _numbers(v, str(k), key))
    elif isinstance(o, list): yield from (x for v in o for x in _numbers(v, key, under))
    elif isinstance(o, (int, float)) and not isinstance(o, bool):
        kinds = {kind for kind, pat in KIND_OF_KEY if pat.search(key)} | ({'s'} if under == 'stages' else set())
        yield from (('acc', float(o)), *((k, float(o)) for k in kinds))


def sources() -> tuple[set, str]:
    "(kind, value) of every number of the results files and of the paper's tables, and the text the renderers make of the results files."
    import math, sys
    from collections import defaultdict
    from bilstm_kd.report import paper_tables, report_markdown, seeds_markdown, speed_markdown
    from bilstm_kd.course import builds_markdown
    from bilstm_kd.ablation import ablation_markdown
    sys.path.insert(0, str(ROOT/'tools'))
    from time_chapters import markdown as times_markdown
    paper = paper_tables()
    nums = set(_numbers(paper))
    nums |= {('ratio', math.floor(r[k])) for r in paper['ratios'] for k in ('time_ratio', 'params_ratio')}   # the paper prints 434.6 as 434×, 97.5 as 98×
    text, groups = [], defaultdict(list)
    for f in sorted((ROOT/'results').glob('*.json')):
        rep = json.loads(f.read_text())
        nums |= set(_numbers(rep))
        if f.name.startswith('chapter-times-'): text.append(times_markdown(rep)); continue
        if f.name.startswith('ablation-'): text.append(ablation_markdown(rep)); continue
        groups[re.sub(r'-seed\d+$', '', f.stem)].append(rep)
        if not f.name.startswith('course-pack-'): text.append(report_markdown(rep))
        if rep.get('speed'): text.append(speed_markdown(rep))
    for reps in groups.values():
        if len(reps) > 1: text.append(seeds_markdown(reps))
        if len(reps) > 1 and all('build' in r for r in reps): text.append(builds_markdown(reps))
    return nums, '\n'.join(text)


def _backed(m, nums, text) -> bool:
    kind, tok = next((k, v) for k, v in m.groupdict().items() if v and k != 'unit')
    said = re.escape(tok) + (rf"\s?{re.escape(m['unit'])}\b" if kind == 'time' else r'(?![\d])')   # a time with its unit
    if re.search(rf'(?<![\d.,]){said}', text): return True
    x, places = float(tok.replace(',', '').replace('−', '-')), len(tok.split('.')[1]) if '.' in tok else 0
    if kind == 'time': kind, scale = UNIT[m['unit']]; scales = (scale,)
    else: scales = (1, 100) if kind == 'pts' else (1,)
    return any(round(abs(v) * k, places) == abs(x) for kd, v in nums if kd == kind for k in scales)


def prose() -> list[tuple[str, str]]:
    "(where, text) of every markdown cell of the notebooks, and the README."
    out = [('README.md', (ROOT/'README.md').read_text())]
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        cells = json.loads(nb.read_text())['cells']
        out += [(f'{nb.name} {c["id"]}', ''.join(c['source'])) for c in cells if c['cell_type'] == 'markdown']
    return out


def unbacked(docs, nums, text) -> list[str]:
    return [f"{where}: {m.group(0)} in '…{s[max(0, m.start() - 50):m.end() + 10]}…'".replace('\n', ' ')
            for where, s in docs for m in FIGURE.finditer(s)
            if not (m['acc'] and not 0.5 <= float(m['acc']) < 1) and not _backed(m, nums, text)]


def test_every_figure_in_prose_has_a_source():
    nums, text = sources()
    bad = unbacked(prose(), nums, text)
    assert not bad, f"{len(bad)} figures in prose that no results file backs:\n" + '\n'.join(bad)


def test_a_typed_figure_is_caught():
    nums, text = sources()
    docs = [('made-up', 'The student reached 0.8911, a gain of +4.37 points, 17.37× faster, in 47.3 min at 512 rows/s.')]
    assert len(unbacked(docs, nums, text)) == 5
    ok = [('quoted', f"The paper's 434× and 1060.48 s; our teacher's {json.loads(run_reports()[0].read_text())['teacher']['metrics']['validation']['accuracy']:.4f}.")]
    assert unbacked(ok, nums, text) == []
