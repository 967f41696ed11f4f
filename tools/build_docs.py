#!/usr/bin/env python
"""Build the course site into _site/ without Quarto: every chapter executed at its small size and rendered with
its outputs, the API docs (nbdev's `show_doc` of every exported name), plotly figures as HTML, and an index.

Like `nbdev-test`: cells marked `#| eval: false` (or with the project's `tst_flags`) are shown but not run, and
`#| hide` cells run but are not shown. Chapters run in a Jupyter kernel (nbclient) from `nbs/`, so widgets keep
their state for a static snapshot. The committed notebooks are never written: outputs live only in _site/.
Fails (exit 1) on an error in any cell and on a dead link between pages.

    python tools/build_docs.py                      # execute every chapter, render, check links
    python tools/build_docs.py --no-execute         # render the notebooks as they are (fast), check links
    python tools/build_docs.py --execute 03_augmentation.ipynb   # run only these; render the rest as committed
"""
import argparse, ast, concurrent.futures as cf, html, json, multiprocessing as mp, os, re, shutil, sys, time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
sys.path.insert(0, str(ROOT/'tools'))
from install_source import chapters, directives, pyproject   # noqa: E402

_PREFIX = re.compile(r'^\d+[a-z]?_')
_HIDE = {'hide', 'default_exp'}

def page_name(nb: Path) -> str:
    "nbdev's page name: `03_augmentation.ipynb` -> `augmentation.html`."
    return _PREFIX.sub('', nb.stem) + '.html'

def page_names(chaps, others) -> dict[str, str]:
    "{notebook file name: page}: chapters get nbdev's names (the library's doc links use them), the others theirs or, "
    "when a chapter took it, `<stem>-guide.html` (course.ipynb beside 07a_course.ipynb)."
    names = {p.name: page_name(p) for p in chaps}
    for p in others:
        names[p.name] = page_name(p) if page_name(p) not in names.values() else f'{p.stem}-guide.html'
    return names

def title_of(nb) -> str:
    for c in nb.cells:
        if c.cell_type == 'markdown' and (m := re.match(r'#\s+(.+)', c.source.strip())): return m.group(1).strip()
    return 'untitled'

def _flags(src) -> set[str]: return {re.sub(r'\s+', '', d).lower() for d in directives(src)}

# --- execution ---

def _skip(src, skip_flags) -> bool:
    f = _flags(src)
    return 'eval:false' in f or bool(f & set(skip_flags))

def execute(path: str, cwd: str, skip_flags=(), timeout=600):
    "Run one notebook in a fresh kernel; returns (notebook JSON with outputs, seconds, error or None)."
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    nb, t = nbformat.read(path, as_version=4), time.time()
    for c in nb.cells:
        if c.cell_type == 'code' and _skip(c.source, skip_flags): c.metadata.setdefault('tags', []).append('skip-execution')
    client = NotebookClient(nb, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': cwd}},
                            store_widget_state=True, skip_cells_with_tag='skip-execution',
                            extra_arguments=['--Application.log_level=ERROR'])   # no transport chatter
    try: client.execute()
    except CellExecutionError as e:
        return None, time.time() - t, f'{Path(path).name}: a cell failed\n{str(e)[-3000:]}'
    except Exception as e:
        return None, time.time() - t, f'{Path(path).name}: {type(e).__name__}: {e}'
    return nbformat.writes(nb), time.time() - t, None

def execute_all(paths, n_workers=2, skip_flags=(), cwd=NBS):
    "Execute notebooks in parallel, each in its own kernel; {path: notebook}, or exit 1 naming every failure."
    os.environ.setdefault('PLOTLY_RENDERER', 'plotly_mimetype')   # figures as JSON; rendered to HTML below
    done, errors = {}, []
    with cf.ProcessPoolExecutor(n_workers, mp_context=mp.get_context('spawn')) as ex:
        futs = {ex.submit(execute, str(p), str(cwd), tuple(skip_flags)): p for p in paths}
        for f in cf.as_completed(futs):
            nb, secs, err = f.result()
            print(f'{futs[f].name}: {secs:.0f} s' + (' FAILED' if err else ''), flush=True)
            if err: errors.append(err)
            else: done[futs[f]] = nbformat.reads(nb, as_version=4)
    if errors: sys.exit('\n\n'.join(['the site has broken pages:'] + errors))
    return done

# --- API docs: show_doc of every exported name, after the cell that defines it ---

def _defined(src) -> list[tuple[str, list[str]]]:
    "(name, public method names) for each top-level def, class or assignment in an exported cell."
    out = []
    for n in ast.parse(src).body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)): out.append((n.name, []))
        elif isinstance(n, ast.ClassDef):
            out.append((n.name, [m.name for m in n.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
                                 and not m.name.startswith('_')]))
    return out

def _show_doc(obj, qualname, mod_file, repo) -> str:
    "Markdown of nbdev's show_doc, with an anchor named as in _modidx and a source link to the right line."
    import inspect
    from nbdev.showdoc import show_doc
    md = show_doc(obj, name=qualname)._repr_markdown_()
    try: line = f'#L{inspect.getsourcelines(inspect.unwrap(obj))[1]}'
    except (TypeError, OSError): line = ''
    link = f'<a class="api-source" href="{repo}/blob/main/bilstm_kd/{mod_file}{line}">source</a>'
    md = re.sub(r'\[source\]\([^)]*\)(\{[^}]*\})?', lambda _: link, md, count=1)
    return f'<a id="{qualname.lower()}"></a>\n\n' + md

def api_cells(nb, module, repo) -> list[tuple[int, list]]:
    "(index of an exported cell, markdown cells of show_doc for the public names it defines)."
    import importlib
    mod = importlib.import_module(f'bilstm_kd.{module}')
    public, out = set(getattr(mod, '__all__', [])), []
    for i, c in enumerate(nb.cells):
        if c.cell_type != 'code' or not {'export', 'exports'} & _flags(c.source): continue
        docs = []
        for name, methods in _defined(c.source):
            if name not in public or not callable(obj := getattr(mod, name, None)): continue
            docs.append(_show_doc(obj, name, f'{module}.py', repo))
            docs += [_show_doc(getattr(obj, m), f'{name}.{m}', f'{module}.py', repo) for m in methods]
        if docs: out.append((i, [nbformat.v4.new_markdown_cell(d) for d in docs]))
    return out

def api_index(pages, documented) -> nbformat.NotebookNode:
    "A notebook listing every module's exported names, linked to their docs (`documented`: {page: names})."
    import importlib
    cells = [nbformat.v4.new_markdown_cell('# API\n\n> Every name the library exports, by chapter. '
                                           'Each links to its documentation beside the code that builds it.')]
    for nb_path, (page, title, module) in pages.items():
        if not module: continue
        mod = importlib.import_module(f'bilstm_kd.{module}')
        rows = []
        for n in getattr(mod, '__all__', []):
            doc = (getattr(getattr(mod, n), '__doc__', None) or '') if callable(getattr(mod, n)) else ''
            first = doc.strip().splitlines()[0] if doc.strip() else ''
            anchor = f'#{n.lower()}' if n.lower() in documented.get(page, ()) else ''
            rows.append(f'- [`{n}`]({page}{anchor}){" — " + first if first else ""}')
        cells.append(nbformat.v4.new_markdown_cell(f'## [{title}]({page}) (`bilstm_kd.{module}`)\n\n' + '\n'.join(rows)))
    return nbformat.v4.new_notebook(cells=cells)

# --- rendering ---

def _plotly_html(data) -> str:
    import plotly.io as pio
    return pio.to_html(data, include_plotlyjs=False, full_html=False, validate=False)

def prepare(nb, api=()):
    "Drop hidden cells, strip directives, apply echo/output options, turn plotly JSON into HTML, add API docs."
    api = dict(api)
    cells = []
    for i, c in enumerate(nb.cells):
        c.metadata.pop('execution', None)   # `nbdev-test --save` records timings there in a form nbformat rejects
        if c.cell_type == 'code':
            f = _flags(c.source)
            if f & _HIDE or 'include:false' in f: continue
            c.source = '\n'.join(l for l in c.source.splitlines() if not re.match(r'\s*#\|', l)).strip()
            if 'echo:false' in f: c.metadata.setdefault('tags', []).append('remove-input')
            if 'output:false' in f: c.outputs = []
            for o in c.get('outputs', []):
                d = o.get('data', {})
                if 'application/vnd.plotly.v1+json' in d:
                    d['text/html'] = _plotly_html(d.pop('application/vnd.plotly.v1+json'))
            if not c.source and not c.get('outputs'): continue
        cells.append(c)
        cells += api.get(i, [])
    nb.cells = cells
    return nb

_SITE_CSS = """
body { margin: 0; }
nav.site { position: fixed; top: 0; left: 0; bottom: 0; width: 230px; overflow-y: auto; padding: 16px 12px;
  background: #f6f7f9; border-right: 1px solid #dde; font: 14px/1.45 system-ui, sans-serif; box-sizing: border-box; }
nav.site a { color: #234; text-decoration: none; display: block; padding: 2px 4px; border-radius: 3px; }
nav.site a:hover { background: #e4e8ef; } nav.site a.here { background: #dfe7f5; font-weight: 600; }
nav.site .home { font-size: 18px; font-weight: 700; margin-bottom: 8px; } nav.site h4 { margin: 12px 0 4px; color: #667; }
body > main { margin-left: 240px; max-width: 1100px; padding: 8px 24px 48px; }
.pager { display: flex; justify-content: space-between; margin: 32px 16px 0; font: 14px system-ui, sans-serif; }
a.api-source { float: right; font-size: smaller; }
.jp-OutputArea-output { overflow-x: auto; }
@media (max-width: 800px) { nav.site { position: static; width: auto; } body > main { margin-left: 0; } }
"""

UNDER_THE_HOOD = ('core.html', 'parallel.html', 'course.html', 'exercises.html', 'grading.html', 'cli.html', 'serve.html')   # engineering pages, after the course proper

def _chapter_order(pages) -> list:
    "The chapters' pages: the course proper in its numbers' order, then the Under the hood part."
    chaps = [p for p, t, m in pages.values() if m]
    return [p for p in chaps if p not in UNDER_THE_HOOD] + [p for p in UNDER_THE_HOOD if p in chaps]

def _nav(pages, here) -> str:
    link = lambda p, t: f'<a href="{p}"{" class=here" if p == here else ""}>{html.escape(t)}</a>'
    titles, order = {p: t for p, t, m in pages.values()}, _chapter_order(pages)
    course, hood = ([link(p, titles[p]) for p in order if (p in UNDER_THE_HOOD) == h] for h in (False, True))
    extra = [link(p, t) for p, t, m in pages.values() if not m and p != 'index.html']
    return (f'<nav class="site"><a class="home" href="index.html">bilstm_kd</a><h4>The course</h4>{"".join(course)}'
            f'<h4>Under the hood</h4>{"".join(hood)}<h4>More</h4>{"".join(extra)}{link("api.html", "API")}</nav>')

def _pager(pages, here) -> str:
    order = ['index.html'] + _chapter_order(pages)
    if here not in order: return ''
    i, titles = order.index(here), {p: t for p, t, m in pages.values()}
    prev = f'<a href="{order[i-1]}">← {html.escape(titles[order[i-1]])}</a>' if i else '<span></span>'
    nxt = f'<a href="{order[i+1]}">{html.escape(titles[order[i+1]])} →</a>' if i + 1 < len(order) else '<span></span>'
    return f'<div class="pager">{prev}{nxt}</div>'

def _fix_links(page_html, base: Path, nbs: Path, repo: str, names: dict) -> str:
    "Links to notebooks go to their pages; links to other files of the repository go to GitHub."
    def fix(m):
        attr, url = m.group(1), html.unescape(m.group(2))
        u = urlsplit(url)
        if u.scheme or u.netloc or not u.path: return m.group(0)
        target = (base/u.path).resolve()
        frag = f'#{u.fragment}' if u.fragment else ''
        if target.suffix == '.ipynb' and target.parent == nbs.resolve() and target.name in names: new = names[target.name] + frag
        elif target.exists() and ROOT.resolve() in target.parents:
            new = f"{repo}/{'tree' if target.is_dir() else 'blob'}/main/{target.relative_to(ROOT.resolve())}{frag}"
        else: return m.group(0)
        return f'{attr}="{html.escape(new)}"'
    return re.sub(r'\b(href|src)="([^"]*)"', fix, page_html)

def render(nb, page, pages, base, nbs, repo, out: Path, names: dict):
    "Write `page` (HTML) and `page`.md (Markdown, for readers and tools that want text)."
    from nbconvert import HTMLExporter, MarkdownExporter
    from traitlets.config import Config
    cfg = Config()
    cfg.TagRemovePreprocessor.enabled = True
    cfg.TagRemovePreprocessor.remove_input_tags = {'remove-input'}
    body, _ = HTMLExporter(config=cfg, template_name='lab').from_notebook_node(nb, resources={'metadata': {'name': pages_title(pages, page)}})
    body = body.replace('<head>', '<head>\n<script src="assets/plotly.min.js"></script>', 1)
    body = body.replace('</head>', f'<style>{_SITE_CSS}</style>\n</head>', 1)
    body = re.sub(r'<main>', lambda _: _nav(pages, page) + '\n<main>', body, count=1)
    body = body.replace('</main>', _pager(pages, page) + '\n</main>', 1)
    (out/page).write_text(_fix_links(body, base, nbs, repo, names))
    md, _ = MarkdownExporter(config=cfg).from_notebook_node(nb)
    (out/f'{page}.md').write_text(md)

def pages_title(pages, page): return next((t for p, t, m in pages.values() if p == page), 'API') + ' — bilstm_kd'

# --- link check ---

class _Links(HTMLParser):
    def __init__(self):
        super().__init__(); self.ids, self.links = set(), []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ('id', 'name'):
            if a.get(k): self.ids.add(a[k])
        for k in ('href', 'src'):
            if a.get(k) and not (tag == 'script' and a.get('type', '').startswith('application/')): self.links.append(a[k])

def dead_links(site: Path) -> list[str]:
    "Relative links in `site` whose file, or whose #anchor in that file, does not exist."
    parsed = {}
    for p in site.glob('*.html'):
        parsed[p.name] = _Links(); parsed[p.name].feed(p.read_text())
    dead = []
    for name, lk in sorted(parsed.items()):
        for url in lk.links:
            u = urlsplit(url)
            if u.scheme or u.netloc or url.startswith(('data:', 'javascript:', 'mailto:')): continue
            target = u.path or name
            if not (site/target).exists(): dead.append(f'{name}: {url} (no such page)'); continue
            if u.fragment and target in parsed and u.fragment not in parsed[target].ids:
                dead.append(f'{name}: {url} (no anchor #{u.fragment})')
    return dead

# --- the whole site ---

def build(out=ROOT/'_site', execute_nbs=None, n_workers=2, nbs=NBS):
    "Build the site into `out`; `execute_nbs`: the chapters to run (None: all). Exit 1 on a broken page."
    t0, pp = time.time(), pyproject(nbs.parent)
    repo = pp['project']['urls']['Repository']
    skip_flags = [f for f in pp.get('tool', {}).get('nbdev', {}).get('tst_flags', '').split() if f]
    chaps = chapters(nbs)
    extra = [p for p in (nbs/'course.ipynb',) if p.exists()]
    nbs_read = {p: nbformat.read(p, as_version=4) for p in [nbs/'index.ipynb', *chaps, *extra]}
    mods = {p: re.search(r'#\|\s*default_exp\s+([\w.]+)', p.read_text()).group(1) for p in chaps}
    names = page_names(chaps, [nbs/'index.ipynb', *extra])
    pages = {p: (names[p.name], title_of(nb), mods.get(p)) for p, nb in nbs_read.items()}
    runs = [p for p in chaps if execute_nbs is None or p.name in execute_nbs]
    nbs_read.update(execute_all(runs, n_workers, skip_flags, nbs) if runs else {})
    shutil.rmtree(out, ignore_errors=True); (out/'assets').mkdir(parents=True)
    import plotly
    shutil.copy(Path(plotly.__file__).parent/'package_data'/'plotly.min.js', out/'assets'/'plotly.min.js')
    (out/'.nojekyll').write_text('')
    documented = {}
    for p, nb in nbs_read.items():
        api = api_cells(nb, mods[p], repo) if p in mods else ()
        documented[pages[p][0]] = {re.search(r'id="([^"]+)"', c.source).group(1) for _, cs in api for c in cs}
        render(prepare(nb, api), pages[p][0], pages, nbs.parent if p.name == 'index.ipynb' else nbs, nbs, repo, out, names)
    render(api_index(pages, documented), 'api.html', pages, nbs, nbs, repo, out, names)
    if dead := dead_links(out): sys.exit('dead links in the site:\n' + '\n'.join(dead))
    print(f'site: {len(list(out.glob("*.html")))} pages in {out} ({len(runs)} chapters executed) in {time.time() - t0:.0f} s')
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=str(ROOT/'_site'), help='site folder (default: _site/)')
    g = ap.add_mutually_exclusive_group()
    g.add_argument('--no-execute', action='store_true', help='render the notebooks as they are, with the outputs they hold (e.g. after `nbdev-test --save`)')
    g.add_argument('--execute', nargs='+', metavar='NB', help='execute only these chapters (file names)')
    ap.add_argument('--n-workers', type=int, default=2, help='chapters executed at once')
    a = ap.parse_args()
    build(Path(a.out), [] if a.no_execute else a.execute, a.n_workers)

if __name__ == '__main__': main()
