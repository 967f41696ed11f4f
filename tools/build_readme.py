#!/usr/bin/env python
"""Build README.md from nbs/index.ipynb without Quarto.

nbdev's `nbdev-readme` renders through Quarto, which cannot be installed on every machine (it is a binary download).
This does the part we need with nbconvert: drop cells marked `#| hide`, strip other `#|` directives, and export the
rest as Markdown. `--check` exits 1 when README.md is stale (CI runs it).
"""
import argparse, re, sys
from pathlib import Path

import nbformat
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parents[1]
_DIRECTIVE = re.compile(r'^\s*#\|\s*(.*)$')

def _directives(src):
    return [m.group(1).strip() for m in map(_DIRECTIVE.match, src.splitlines()) if m]

def render(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    nb = nbformat.read(nb_path, as_version=4)
    keep = []
    for c in nb.cells:
        ds = _directives(c.source) if c.cell_type == 'code' else []
        if any(d.split(':')[0].strip() in ('hide', 'export', 'exporti', 'default_exp') for d in ds): continue
        if c.cell_type == 'code':
            c.source = '\n'.join(l for l in c.source.splitlines() if not _DIRECTIVE.match(l)).strip()
            if not c.source: continue
        keep.append(c)
    nb.cells = keep
    body, _ = MarkdownExporter().from_notebook_node(nb)
    body = re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'
    return '<!-- Generated from nbs/index.ipynb by tools/build_readme.py: edit the notebook, not this file. -->\n\n' + body

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--check', action='store_true', help='exit 1 if README.md differs from what the notebook makes')
    a = ap.parse_args()
    new, readme = render(), ROOT/'README.md'
    if a.check:
        if not readme.exists() or readme.read_text() != new:
            print('README.md is stale: run `python tools/build_readme.py` after editing nbs/index.ipynb', file=sys.stderr)
            sys.exit(1)
        print('README.md is up to date')
    else:
        readme.write_text(new); print(f'wrote {readme}')

if __name__ == '__main__': main()
