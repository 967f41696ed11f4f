"The house rules: small rooms, a one-way stack, one name per thing, every default written once, the data loaded once."
import ast, argparse, collections, dataclasses, importlib, json, pathlib, re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT/'bilstm_kd'
STACK = ['core', 'parallel', 'data', 'yourdata', 'tokenization', 'teacher', 'labels', 'augmentation', 'transfer', 'student', 'distillation',
         'evaluation', 'speed', 'report', 'serve', 'pipeline', 'course', 'game', 'ablation', 'widgets', 'grading', 'exercises', 'cli']


def modules():
    return {p.stem: ast.parse(p.read_text()) for p in sorted(PKG.glob('*.py')) if p.stem not in ('__init__', '_modidx')}


def test_exported_cells_are_short():
    "One idea per cell: at most 5 exported cells over 40 lines in all the notebooks (the checks' machinery of 09 holds them)."
    import json
    long = [f"{nb.name} {c['id']}: {len(c['source'])} lines" for nb in sorted((PKG.parent/'nbs').glob('*.ipynb'))
            for c in json.loads(nb.read_text())['cells']
            if c['cell_type'] == 'code' and ''.join(c['source']).startswith('#| export') and len(c['source']) > 40]
    assert len(long) <= 5, 'exported cells over 40 lines:\n' + '\n'.join(long)


def test_every_module_has_a_place_in_the_stack():
    assert sorted(modules()) == sorted(STACK)


def test_rooms_are_small():
    "No module over 600 lines, no function over 60 lines or with more than 12 parameters."
    big = []
    for name, tree in modules().items():
        n = len((PKG/f'{name}.py').read_text().splitlines())
        if n > 600: big.append(f'{name}: {n} lines')
        for f in ast.walk(tree):
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = f.args
                k = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) - (1 if a.args and a.args[0].arg in ('self', 'cls') else 0)
                if f.end_lineno - f.lineno + 1 > 60 or k > 12: big.append(f'{name}.{f.name}: {f.end_lineno - f.lineno + 1} lines, {k} parameters')
    assert not big, big


def package_imports(tree) -> set:
    "The bilstm_kd modules a module's code imports, relative (`from .core import`) or absolute, at the top or lazily."
    deps = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level and node.module: deps.add(node.module.split('.')[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('bilstm_kd.'): deps.add(node.module.split('.')[1])
        elif isinstance(node, ast.Import): deps |= {a.name.split('.')[1] for a in node.names if a.name.startswith('bilstm_kd.')}
    return deps


def test_one_way_stack_counting_lazy_imports():
    "A module imports only modules above it in the stack, also inside functions (no cycles, lazy or not)."
    mods = modules()
    assert package_imports(mods['student']) >= {'core', 'data', 'tokenization'}   # the scan sees relative imports
    bad = [f'{name} -> {d}' for name, tree in mods.items() for d in package_imports(tree) if STACK.index(d) >= STACK.index(name)]
    assert not bad, bad
    import bilstm_kd.cli as cli
    assert all(STACK.index(c) < STACK.index('cli') for c in cli.CHAPTERS)   # its dynamic imports too


def test_the_student_stands_without_the_teacher_side():
    "The student (and so a served student) imports neither the teacher nor its labelling: int8 lives in core."
    assert not package_imports(modules()['student']) & {'teacher', 'labels', 'parallel'}


def _patched(node) -> bool:
    "Is `node` a method added to a class by fastcore's `@patch` (a `Class.name`, not a name of the module)?"
    return any(getattr(d.func if isinstance(d, ast.Call) else d, 'id', None) == 'patch' for d in getattr(node, 'decorator_list', ()))


def test_no_public_name_is_defined_twice():
    seen = collections.defaultdict(list)
    for name, tree in modules().items():
        for node in tree.body:
            if _patched(node): continue
            ns = ([node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else
                  [t.id for t in node.targets if isinstance(t, ast.Name)] if isinstance(node, ast.Assign) else [])
            for n in ns:
                if not n.startswith('_'): seen[n].append(name)
    assert not {n: m for n, m in seen.items() if len(m) > 1 and n != '__all__'}


def test_cli_defaults_are_the_dataclass_defaults():
    "Every flag of every command defaults to its dataclass: a command given no flags builds exactly the defaults."
    from bilstm_kd.core import config_from_args
    from bilstm_kd.cli import build_parser
    from bilstm_kd.pipeline import SECTIONS, PRESETS, preset_from_args
    ap = build_parser()
    sub = ap._subparsers._group_actions[0].choices
    config_groups = [g for p in sub.values() for g in p._action_groups if g.title and ' (' in g.title and 'Config' in g.title]
    assert len(config_groups) >= 10                                  # add_config_args' groups, one per config and command
    for g in config_groups:
        for action in g._group_actions:   # a config flag leaves its dest out when not given: the dataclass fills it in
            assert action.default is argparse.SUPPRESS, f'{action.option_strings} has its own default {action.default!r}'
            assert '(default: ' in action.help                        # and the help shows the dataclass's default
    args = ap.parse_args(['run', '--task', 'sst2', '--out', 'x', '--preset', 'cpu'])
    assert preset_from_args(args) == PRESETS['cpu']
    for cmd, cls in (('teacher', SECTIONS['teacher']), ('augment', SECTIONS['augment']), ('distill', SECTIONS['distill'])):
        a = ap.parse_args([cmd, '--task', 'sst2', '--out', 'x'])
        assert config_from_args(cls, a) == cls(), cmd


def test_adding_a_rule_or_a_loss_is_a_registry_entry(monkeypatch):
    "The registries the chapters extend, read rather than pinned: a loss added to `LOSSES` (05) is a setting and an ablation row."
    import torch
    from bilstm_kd.augmentation import WORD_RULES, AugmentConfig
    from bilstm_kd.distillation import LOSSES, DistillConfig, kd_loss
    from bilstm_kd.ablation import GRID, _loss_row
    assert all(hasattr(AugmentConfig(), r.prob) for r in WORD_RULES)            # each rule's probability is a setting
    assert {s.changes['distill']['loss'] for s in GRID if s.group == 'loss' and 'loss' in s.changes.get('distill', {})} \
        == set(LOSSES) - {DistillConfig().loss}                                 # the grid reads the registry
    with pytest.raises(Exception, match=f"loss must be one of {', '.join(LOSSES)}, ce"): DistillConfig(loss='cosine')
    monkeypatch.setitem(LOSSES, 'l1', lambda z_s, z_t, cfg: (z_s - z_t).abs().mean())   # a throwaway loss: one entry
    cfg = DistillConfig(loss='l1')                                              # accepted without touching DistillConfig
    z = torch.tensor([[1.0, -1.0]])
    assert float(kd_loss(z, z + 2, None, cfg)) == pytest.approx(2.0)
    assert _loss_row('l1').changes == {'distill': {'loss': 'l1'}} and _loss_row('l1').name == 'l1'


def test_notebook_cell_ids_are_unique():
    "Merged notebooks can repeat a cell id; nbformat then renames one silently and the ids stop being stable."
    import collections, json
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        ids = [c.get('id') for c in json.loads(nb.read_text())['cells']]
        assert not [i for i, n in collections.Counter(ids).items() if n > 1], nb.name


RUN_NAMES = re.compile(r"""['"](logits\.npy|report\.json|report\.html|stages\.json|eval\.json|\.running\.json|\.lock|seeds\.json|ablation\.json)['"]"""
                       r"""|\.(work|sweep|ckpt)['"]|[\w)\]]\s*/\s*['"](teacher|student|baseline|transfer|logits|pos|store|rows|course-pack)['"]""")


def test_one_owner_names_every_file_of_a_run_and_every_cache_folder():
    "Only `core.RunLayout` / `CacheLayout` spell a run's files, its work folders and the cache folders; every other module reads them."
    hits = [f'{p.name}:{i}: {line.strip()}' for p in sorted(PKG.glob('*.py')) if p.stem not in ('core', '_modidx')
            for i, line in enumerate(p.read_text().splitlines(), 1) if RUN_NAMES.search(line)]
    assert not hits, hits
    from bilstm_kd.core import RunLayout
    assert {'teacher', 'student', 'baseline', 'transfer', 'logits.npy', 'eval.json', 'report.json'} <= {v for v in vars(RunLayout).values() if isinstance(v, str)}


def test_no_module_imports_another_modules_private_name():
    "A module's `_private` names are its own: what another module needs is public (and documented)."
    bad = [f'{name}: {a.name} from {n.module}' for name, tree in modules().items() for n in ast.walk(tree)
           if isinstance(n, ast.ImportFrom) and (n.level or (n.module or '').startswith('bilstm_kd'))
           for a in n.names if a.name.startswith('_')]
    assert not bad, bad
