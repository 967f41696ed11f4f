"The course site (tools/build_docs.py): executed chapters with outputs, API docs, plotly as HTML, no dead links."
import json, sys

import nbformat
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT/'tools'))   # chapters run in spawned processes, which import build_docs by name
import build_docs as bd  # noqa: E402
md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell


def project(tmp_path, chapter_cells, other_cells=None):
    "A tiny nbdev project: index, a chapter (module `core`) and a second chapter (module `data`)."
    (tmp_path/'pyproject.toml').write_text('[project]\nname = "x"\n[project.urls]\nRepository = "https://github.com/o/x"\n'
                                           '[tool.nbdev]\ntst_flags = "notest"\n')
    nbs = tmp_path/'nbs'; nbs.mkdir()
    write = lambda name, cells: nbformat.write(nbformat.v4.new_notebook(cells=cells), nbs/name)
    write('index.ipynb', [md('# x\n\n> the index\n\nStart with [the chapter](nbs/00_a.ipynb).')])
    write('00_a.ipynb', [code('#| default_exp core'), md('# Chapter A'), *chapter_cells])
    write('01_b.ipynb', [code('#| default_exp data'), md('# Chapter B\n\n## A heading'), *(other_cells or [code('1 + 1')])])
    return nbs


def test_chapter_rendered_with_outputs_api_docs_and_figures(tmp_path):
    nbs = project(tmp_path, [
        code('#| hide\nSECRET = "hidden cell"\nprint(SECRET)'),
        code('#| export\ndef announce(message: str, key: str | None = None):\n    "Say it once."'),
        code('#| eval: false\nraise RuntimeError("never run")'),
        code('#| notest\nraise RuntimeError("skipped like nbdev-test")'),
        code('print("visible output", 6 * 7)'),
        code('import plotly.graph_objects as go\ngo.Figure(go.Bar(x=[1, 2], y=[3, 4]))'),
        md('Next: [chapter B](01_b.ipynb#A-heading), the [API](api.html).')])
    out = bd.build(tmp_path/'site', None, 1, nbs)
    a = (out/'a.html').read_text()
    assert 'visible output 42' in a                                    # executed, with outputs
    assert 'hidden cell' not in a and '#|' not in a                     # hide cells gone, directives stripped
    assert 'never run' in a and 'RuntimeError: never run' not in a     # eval: false shown, not run
    assert 'id="announce"' in a and 'Say it once.' in a                 # show_doc of the exported name
    assert 'Plotly.newPlot' in a and 'application/vnd.plotly.v1+json' not in a
    assert 'href="b.html#A-heading"' in a                            # notebook links go to pages
    assert 'href="a.html"' in (out/'index.html').read_text()         # the README's nbs/ links too
    assert (out/'assets'/'plotly.min.js').is_file() and (out/'a.html.md').is_file()
    api = (out/'api.html.md').read_text()
    assert '[`announce`](a.html#announce)' in api and '[`atomic_path`](a.html)' in api   # documented here, or not
    assert json.loads(nbformat.writes(nbformat.read(nbs/'00_a.ipynb', as_version=4)))['cells'][6]['outputs'] == []


def test_a_failing_cell_breaks_the_build(tmp_path):
    nbs = project(tmp_path, [code('1 / 0')])
    with pytest.raises(SystemExit, match=r'(?s)broken pages.*00_a\.ipynb.*ZeroDivisionError'):
        bd.build(tmp_path/'site', None, 1, nbs)


def test_dead_links_break_the_build(tmp_path):
    nbs = project(tmp_path, [md('See [a missing chapter](02_c.ipynb) and [a missing heading](01_b.ipynb#nope).')])
    with pytest.raises(SystemExit) as e:
        bd.build(tmp_path/'site', [], 1, nbs)
    assert '02_c.ipynb (no such page)' in str(e.value) and 'b.html#nope (no anchor #nope)' in str(e.value)


def test_page_names_follow_nbdev():
    chaps = [ROOT/'nbs'/'03_augmentation.ipynb', ROOT/'nbs'/'07a_course.ipynb']
    names = bd.page_names(chaps, [ROOT/'nbs'/'index.ipynb', ROOT/'nbs'/'course.ipynb'])
    assert names == {'03_augmentation.ipynb': 'augmentation.html', '07a_course.ipynb': 'course.html',
                     'index.ipynb': 'index.html', 'course.ipynb': 'course-guide.html'}
    mod_idx = (ROOT/'bilstm_kd'/'_modidx.py').read_text()
    assert "'augmentation.html#get_tagger'" in mod_idx   # the library's own doc links use the same names
