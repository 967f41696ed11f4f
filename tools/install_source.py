#!/usr/bin/env python
"""Where learners install bilstm_kd from, read from one place: `[tool.bilstm_kd]` in pyproject.toml.

`install-from = "pypi"` gives `bilstm_kd[ui]`; `"repository"` (until a release is on PyPI) gives
`bilstm_kd[ui] @ git+<[project.urls] Repository>`. Every chapter notebook's first hidden cell installs that when
bilstm_kd is missing (Colab, a fresh kernel). Also here: the modules the notebooks import, and the distributions
that `bilstm_kd[ui]` declares, for tests/test_packaging.py and tests/test_install.py.

    python tools/install_source.py            # rewrite the chapters' install cells from pyproject.toml
    python tools/install_source.py --check    # exit 1 when a chapter's install cell differs (CI)
    python tools/install_source.py --spec     # print the requirement, e.g. for the README
"""
import argparse, ast, json, re, sys
from pathlib import Path

try: import tomllib
except ImportError: import tomli as tomllib   # Python 3.10

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
_DIRECTIVE = re.compile(r'^\s*#\|\s*(.*?)\s*$')
_FIND = "importlib.util.find_spec('bilstm_kd')"

def pyproject(root=ROOT) -> dict: return tomllib.loads((root/'pyproject.toml').read_text())

def install_spec(root=ROOT) -> str:
    "The requirement learners install, e.g. `bilstm_kd[ui]` or `bilstm_kd[ui] @ git+https://github.com/...`."
    pp = pyproject(root)
    cfg, name = pp['tool']['bilstm_kd'], pp['project']['name']
    req = f"{name}[{cfg['install-extra']}]"
    if cfg['install-from'] == 'pypi': return req
    if cfg['install-from'] == 'repository': return f"{req} @ git+{pp['project']['urls']['Repository']}"
    raise ValueError(f"[tool.bilstm_kd] install-from must be 'pypi' or 'repository', not {cfg['install-from']!r}")

def install_cell(root=ROOT) -> str:
    "The source of every chapter's first hidden cell."
    return ('#| hide\nimport importlib.util\n'
            f"if {_FIND} is None:  # Colab / a fresh kernel: install once, a no-op here\n"
            f'    %pip install -q "{install_spec(root)}"')

def chapters(nbs=NBS) -> list[Path]:
    "The chapter notebooks: those that export a module (`#| default_exp`)."
    return [p for p in sorted(nbs.glob('*.ipynb')) if '#| default_exp' in p.read_text()]

def directives(src: str) -> list[str]: return [m.group(1) for m in map(_DIRECTIVE.match, src.splitlines()) if m]

def install_cell_index(nb: dict):
    "Index of the notebook's install cell, or None."
    return next((i for i, c in enumerate(nb['cells']) if c['cell_type'] == 'code' and _FIND in ''.join(c['source'])), None)

def _new_id(nb):
    used = {c.get('id') for c in nb['cells']}
    return next(f'c{i:03d}' for i in range(1000, 100000) if f'c{i:03d}' not in used)

def sync(path: Path, write: bool) -> bool:
    "True when `path`'s install cell is the one `install_cell` makes; with `write`, make it so (after the title cell)."
    nb, want = json.loads(path.read_text()), install_cell()
    i = install_cell_index(nb)
    if i is not None and ''.join(nb['cells'][i]['source']) == want: return True
    if write:
        if i is None:
            title = next(j for j, c in enumerate(nb['cells']) if c['cell_type'] == 'markdown')
            nb['cells'].insert(title + 1, {'cell_type': 'code', 'execution_count': None, 'id': _new_id(nb),
                                           'metadata': {}, 'outputs': [], 'source': []})
            i = title + 1
        nb['cells'][i]['source'] = want.splitlines(keepends=True)
        path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + '\n')
    return False

# --- what the notebooks import, and what bilstm_kd[ui] declares ---

def _guarded(node, parents) -> bool:
    "Is this import inside a `try` that catches ImportError (an optional dependency)?"
    for p in parents:
        if isinstance(p, ast.Try) and any(h.type is None or 'ImportError' in ast.unparse(h.type) for h in p.handlers):
            return node in [n for b in p.body for n in ast.walk(b)]
    return False

def _imports(src: str) -> set[str]:
    "Top-level names of the modules `src` imports (at any depth; optional ones, in `try/except ImportError`, left out)."
    src = '\n'.join(l[:len(l) - len(l.lstrip())] + 'pass' if l.lstrip().startswith(('%', '!')) else l
                    for l in src.splitlines())   # IPython magics and shell lines
    tree, out = ast.parse(src), set()
    def walk(node, parents):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not _guarded(node, parents):
            if isinstance(node, ast.Import): out.update(a.name.split('.')[0] for a in node.names)
            elif node.level == 0 and node.module: out.add(node.module.split('.')[0])
        for ch in ast.iter_child_nodes(node): walk(ch, parents + [node])
    walk(tree, [])
    return out

def notebook_imports(nbs=NBS) -> dict[str, list[str]]:
    "{third-party module: [notebooks]} over every code cell that runs (not `#| eval: false`) of every notebook."
    skip = set(sys.stdlib_module_names) | {'bilstm_kd', '__future__'}
    found = {}
    for p in sorted(nbs.glob('*.ipynb')):
        for c in json.loads(p.read_text())['cells']:
            src = ''.join(c['source'])
            if c['cell_type'] != 'code' or any(re.fullmatch(r'eval:\s*false', d) for d in directives(src)): continue
            for m in _imports(src) - skip: found.setdefault(m, []).append(p.name)
    return {m: sorted(set(v)) for m, v in sorted(found.items())}

def _norm(name: str) -> str: return re.sub(r'[-_.]+', '-', name).lower()

def declared(root=ROOT) -> set[str]:
    "Normalised names of the distributions `bilstm_kd[<install-extra>]` declares (the base ones and the extra's)."
    from packaging.requirements import Requirement
    pp = pyproject(root)
    reqs = pp['project']['dependencies'] + pp['project']['optional-dependencies'][pp['tool']['bilstm_kd']['install-extra']]
    return {_norm(Requirement(r).name) for r in reqs}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument('--check', action='store_true', help="exit 1 when a chapter's install cell is not the one source's")
    g.add_argument('--spec', action='store_true', help='print the requirement learners install')
    a = ap.parse_args()
    if a.spec: print(install_spec()); return
    stale = [p.name for p in chapters() if not sync(p, write=not a.check)]
    if a.check and stale:
        sys.exit(f"install cells differ from pyproject.toml's [tool.bilstm_kd] in {', '.join(stale)}: run "
                 "`python tools/install_source.py`")
    print(f"{'fixed' if stale and not a.check else 'ok'}: {len(chapters())} chapters install {install_spec()!r}"
          + (f" ({', '.join(stale)} rewritten)" if stale and not a.check else ''))

if __name__ == '__main__': main()
