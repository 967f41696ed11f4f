"The course's promises: chapters hold exercises and stubs but no solutions; the solutions notebook grades every check; the instructor's page has its plans and questions."
import ast, itertools, json, re
from pathlib import Path

import pytest

import bilstm_kd.exercises as ex

NBS = Path(__file__).resolve().parents[1]/'nbs'
CHECKS = sorted(n for n in ex.__all__ if n.startswith('check_'))
# the checks' own chapter runs them on right answers by design: its tests show that right answers pass
CHAPTERS = sorted(p for p in [*NBS.glob('0*.ipynb'), *NBS.glob('1*.ipynb')] if p.name != '09_exercises.ipynb')
BUILD = {'03_augmentation.ipynb': {'augment_once': 'check_augment_pass', 'ngram': 'check_ngram', 'sample_word': 'check_pos_sampler'},
         '04_student.ipynb': {'features': 'check_pair_features'},
         '05_distillation.ipynb': {'kd_mse_loss': 'check_kd_mse_loss', 'train_step': 'check_train_step'},
         '01_tokenization.ipynb': {'split_clitics': 'check_split_clitics'}}


def cells(path, kind='code'):
    return [''.join(c['source']) for c in json.loads(path.read_text())['cells'] if c['cell_type'] == kind]


def live_code(src: str) -> str:
    "The code of a cell that runs: comments and directives removed."
    return '\n'.join(l.split('#', 1)[0] if not l.lstrip().startswith('#') else '' for l in src.splitlines())


def test_chapters_never_run_a_check():
    "Every check call in a chapter is commented out: a chapter holds the exercise and a stub, never a graded answer."
    calls = {p.name: [c for c in cells(p) for name in CHECKS if re.search(rf'\b{name}\s*\(', live_code(c))] for p in CHAPTERS}
    assert not {k: v for k, v in calls.items() if v}, calls


def test_chapters_hold_no_solution_cells():
    "No hidden cell answers an exercise, and no code cell calls itself a solution."
    for p in CHAPTERS:
        for c in cells(p):
            assert not re.search(r'solution', c, re.I), (p.name, c[:200])
            if c.lstrip().startswith('#| hide'): assert 'check_' not in c, (p.name, c[:200])


def test_every_check_is_offered_in_a_chapter():
    text = {p.name: '\n'.join(cells(p)) for p in CHAPTERS}
    missing = [n for n in CHECKS if not any(re.search(rf'#\s*{n}\(', t) for t in text.values())]
    assert not missing, f'no chapter offers {missing} (a commented call in its Exercises section)'


def stub(path: Path, name: str):
    "The chapter's definition of `name`, executed on its own."
    for c in cells(path):
        try: tree = ast.parse(live_code(c))
        except SyntaxError: continue                    # a cell with IPython magic (%pip): no definitions there
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                ns = {}
                exec(compile(ast.Module([node], []), path.name, 'exec'), ns)
                return ns[name]
    raise AssertionError(f'{path.name} defines no {name}')


@pytest.mark.parametrize('nb, name, check', [(nb, n, c) for nb, d in BUILD.items() for n, c in d.items()])
def test_build_exercises_are_stubs_that_their_checks_refuse(nb, name, check):
    "The learner's function in the chapter is a stub: its check answers 'Not yet', and says nothing more."
    assert getattr(ex, check)(stub(NBS/nb, name)) == 'Not yet: your function still raises NotImplementedError; write its body.'


def test_solutions_grade_every_check_and_export_nothing():
    src = cells(NBS/'solutions.ipynb')
    assert not any('default_exp' in c or c.lstrip().startswith('#| export') for c in src)
    code = '\n'.join(live_code(c) for c in src)
    missing = [n for n in CHECKS if not re.search(rf'\b{n}\s*\(', code)]
    assert not missing, f'solutions.ipynb never runs {missing}'
    assert code.count('graded(') >= len(CHECKS)


def plan_minutes(md: str, title: str) -> list[int]:
    "The last column (minutes) of the first markdown table after the heading `title`."
    lines = md.split(title, 1)[1].splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith('|'))
    table = list(itertools.takewhile(lambda l: l.startswith('|'), lines[start:]))
    return [int(re.search(r'(\d+)\s*\|\s*$', r).group(1)) for r in table[2:]]


def test_instructor_page_has_two_plans_that_fit_their_sessions():
    md = '\n'.join(cells(NBS/'course.ipynb', 'markdown'))
    assert sum(plan_minutes(md, '### A 90-minute session')) == 90
    assert sum(plan_minutes(md, '### A 3-hour session')) == 180
    assert 'bilstm-kd course-pack' in md and 'load average' in md


def test_every_discussion_question_has_an_answer():
    course = '\n'.join(cells(NBS/'course.ipynb', 'markdown'))
    sol = '\n'.join(cells(NBS/'solutions.ipynb', 'markdown'))
    questions = re.findall(r'(?m)^(\d+)\. ', course.split('## Discussion questions', 1)[1].split('\n## ', 1)[0])
    assert len(questions) >= 8
    answers = re.findall(r'(?m)^\*\*(\d+)\. ', sol.split('## Discussion questions: answers', 1)[1])
    assert answers == questions


# the chapters that implement a rule of the paper, and a name each rule's exported cell defines
PAPER_RULES = {'03_augmentation.ipynb': {'§3.3': ['def mask_words', 'def pos_replace', 'class WordRule', 'def ngram_windows']},
               '04_student.ipynb': {'§3.1': ['class StudentBase']},
               '05_distillation.ipynb': {'§3.2': ['def mse_logits']}}


@pytest.mark.parametrize('nb', sorted(PAPER_RULES))
def test_the_paper_is_quoted_above_the_code_that_implements_it(nb):
    "Issue 23: between a rule's exported cell and the exported cell before it, the paper's words (a `>` block); the chapter names the section."
    cs = json.loads((NBS/nb).read_text())['cells']
    for section, defs in PAPER_RULES[nb].items():
        for d in defs:
            i = next((i for i, c in enumerate(cs) if c['cell_type'] == 'code' and '#| export' in ''.join(c['source'])
                      and re.search(rf'^{re.escape(d)}\b', ''.join(c['source']), re.M)), None)
            assert i is not None, f'{nb}: no exported cell defines {d!r}'
            above = []
            for c in reversed(cs[:i]):
                s = ''.join(c['source'])
                if c['cell_type'] == 'code' and '#| export' in s: break
                if c['cell_type'] == 'markdown': above.append(s)
            assert any(re.search(r'^>\s*\S', s, re.M) for s in above), \
                f'{nb}: no quote of the paper (a `>` block) above the cell that defines {d!r}'
        assert section in ''.join(''.join(c['source']) for c in cs if c['cell_type'] == 'markdown'), \
            f'{nb}: the paper section {section} is never named'
