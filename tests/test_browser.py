"""The course in a real browser: JupyterLab + headless Debian Chromium (Playwright) drive the chapter widgets.

A JupyterLab server (this venv's Python, so its kernel imports `bilstm_kd` and inherits the offline environment) serves
copies of the augmentation and evaluation notebooks from a temporary root. Chromium opens each one, runs it with
Run All, then uses its widget the way a learner would: the p_mask slider must change the rendered samples, and a
sentence typed into the teacher-vs-student explorer must draw a probability bar chart for each model. Screenshots go
to the `artifacts_dir` fixture. The server is stopped even when a test fails.

The copies leave out the cells nbdev-test leaves out (`#| eval: false`, `#| notest`), so Run All runs exactly what
`nbdev-test` runs: no hub downloads, the small size.
"""
import json, os, re, secrets, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NBS = Path(os.environ.get('BILSTM_KD_BROWSER_NBS') or ROOT/'nbs')  # where the notebooks under test live
AUG_NB = EVAL_NB = '08_widgets.ipynb'   # both explorers live in the widgets chapter
CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--no-first-run', '--disable-sync', '--disable-quic']
RUN_TIMEOUT = 300  # s for Run All of one notebook (the notebooks run small by default)
SENTENCE = 'a gripping , funny and moving film that never lets go'

# --- the notebook copies: what nbdev-test runs, nothing else ---

_SKIP = re.compile(r'^\s*#\s*\|\s*(eval\s*:\s*false|notest)\s*$', re.I | re.M)

def runnable_copy(src: Path, dst: Path):
    "Copy notebook `src` to `dst` without the cells nbdev-test skips, empty code cells and old outputs."
    nb = json.loads(src.read_text())
    def keep(c):
        text = ''.join(c['source'])
        return c['cell_type'] != 'code' or (text.strip() and not _SKIP.search(text))
    nb['cells'] = [c for c in nb['cells'] if keep(c)]
    for c in nb['cells']:
        if c['cell_type'] == 'code': c.update(outputs=[], execution_count=None)
    dst.write_text(json.dumps(nb, indent=1))

# --- JupyterLab ---

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _write_json(path: Path, obj):
    path.parent.mkdir(parents=True, exist_ok=True); path.write_text(json.dumps(obj))

class Lab:
    "A running JupyterLab server: `url`, `token`, `root` (its files), `log` (its output)."
    def __init__(self, root: Path, home: Path, log: Path):
        self.root, self.log, self.port, self.token = root, log, _free_port(), secrets.token_hex(16)
        self.url = f'http://127.0.0.1:{self.port}'
        # a private Jupyter home: fresh settings and workspaces; kernels and lab extensions come from this venv
        settings = home/'lab-settings'
        _write_json(settings/'@jupyterlab'/'apputils-extension'/'notification.jupyterlab-settings',
                    {'fetchNews': 'false', 'checkForUpdates': False})
        # attach every cell to the DOM, so that widgets far down a notebook are rendered and can be found
        _write_json(settings/'@jupyterlab'/'notebook-extension'/'tracker.jupyterlab-settings', {'windowingMode': 'none'})
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ,  # HF_*_OFFLINE, NLTK_DATA, BILSTM_KD_DATA, BILSTM_KD_CACHE reach the kernel from here
               'PATH': bin_dir + os.pathsep + os.environ.get('PATH', ''),
               'JUPYTER_CONFIG_DIR': str(home/'config'), 'JUPYTER_DATA_DIR': str(home/'data'),
               'JUPYTER_RUNTIME_DIR': str(home/'runtime'), 'IPYTHONDIR': str(home/'ipython'),
               'JUPYTERLAB_SETTINGS_DIR': str(settings), 'JUPYTERLAB_WORKSPACES_DIR': str(home/'workspaces')}
        cmd = [sys.executable, '-m', 'jupyter', 'lab', '--no-browser', '--ip=127.0.0.1', f'--port={self.port}',
               '--ServerApp.port_retries=0', f'--IdentityProvider.token={self.token}', f'--ServerApp.root_dir={root}',
               '--ServerApp.allow_root=True', '--LabApp.expose_app_in_browser=True']
        self._logf = open(log, 'w')
        # its own process group, so that stopping it also stops the kernels it started
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._logf, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout=90):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f'JupyterLab exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}')
            try:
                with urllib.request.urlopen(f'{self.url}/api/status?token={self.token}', timeout=2) as r:
                    if r.status == 200: return
            except OSError: time.sleep(0.5)
        raise TimeoutError(f'JupyterLab not ready after {timeout}s:\n{self.log.read_text()[-3000:]}')

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the server shuts its kernels down
                self.proc.wait(20)
            except (subprocess.TimeoutExpired, ProcessLookupError): pass
        try: os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of the group (kernels)
        except ProcessLookupError: pass
        self.proc.wait()
        self._logf.close()

    def notebook_url(self, name: str) -> str:  # `reset`: a fresh workspace, only this notebook open
        return f'{self.url}/lab/tree/{name}?reset&token={self.token}'

@pytest.fixture(scope='module')
def lab(tmp_path_factory, artifacts_dir):
    missing = [n for n in {AUG_NB, EVAL_NB} if not (NBS/n).is_file()]
    if missing: pytest.fail(f'notebooks under test missing from {NBS}: {missing}')
    pytest.importorskip('jupyterlab', reason='jupyterlab missing: pip install -e ".[dev]"')
    root = tmp_path_factory.mktemp('lab_root')
    for n in {AUG_NB, EVAL_NB}: runnable_copy(NBS/n, root/n)
    server = Lab(root, tmp_path_factory.mktemp('lab_home'), artifacts_dir/'jupyterlab.log')
    try:
        server.wait_ready()
        yield server
    finally: server.stop()

# --- Chromium ---

@pytest.fixture(scope='module')
def browser_ctx(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(f'{CHROMIUM} missing: install Debian Chromium (`apt-get install chromium`; .ci/run does)')
    sync_api = pytest.importorskip('playwright.sync_api', reason='playwright missing: pip install -e ".[dev]"')
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp('chromium_profile')), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={'width': 1400, 'height': 1800})
        try: yield ctx
        finally: ctx.close()

@pytest.fixture
def page(browser_ctx, artifacts_dir, request):
    "A fresh tab; on failure it leaves a screenshot `FAILED_<test>.png`."
    pg = browser_ctx.new_page()
    pg.set_default_timeout(60_000)
    failed = request.session.testsfailed
    yield pg
    if request.session.testsfailed > failed:  # this test failed: keep what the browser showed
        try: pg.screenshot(path=str(artifacts_dir/f'FAILED_{request.node.name}.png'))
        except Exception: pass
    pg.close()

# --- driving JupyterLab ---

_STATE_JS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.content || !w.content.model || !w.sessionContext) return null;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  const cells = [];
  for (const c of w.content.model.cells) {
    if (c.type !== 'code') continue;
    const err = c.outputs.toJSON().find(o => o.output_type === 'error');
    cells.push({n: c.executionCount, error: err ? `${err.ename}: ${err.evalue}` : null,
                src: err ? c.sharedModel.getSource() : null});
  }
  return {path: w.context.path, kernel: k ? k.status : null, cells};
}"""

def notebook_state(page) -> dict | None:
    "Kernel status and, per code cell, its execution count and error (if any), read from JupyterLab's model."
    return page.evaluate(_STATE_JS)

def open_notebook(page, lab, name):
    "Open notebook `name`, accept a 'Select Kernel' dialog if one comes, and wait for an idle kernel."
    page.goto(lab.notebook_url(name))
    page.wait_for_selector('.jp-NotebookPanel .jp-Cell')
    t0 = time.time()
    while time.time() - t0 < 90:
        dialog = page.locator('.jp-Dialog')
        if dialog.count() and dialog.first.is_visible():
            # a fresh notebook asks which kernel to start; the proposed one is this venv's Python
            dialog.first.locator('button.jp-mod-accept').click()
        st = notebook_state(page)
        if st and st['path'] == name and st['kernel'] == 'idle': return
        time.sleep(0.5)
    raise TimeoutError(f'{name}: kernel not idle after 90s (state {notebook_state(page)})')

def _head(src: str) -> str:
    "The first line of a cell that is not an nbdev directive, to say which cell failed."
    return next((l.strip()[:80] for l in src.splitlines() if l.strip() and not l.lstrip().startswith('#|')), '')

def run_all(page, name):
    "Run All Cells from the Run menu, then wait until every code cell has run; fail on the first error."
    page.locator('.lm-MenuBar-itemLabel', has_text=re.compile(r'^Run$')).click()
    page.locator('.lm-Menu-itemLabel', has_text=re.compile(r'^Run All Cells$')).click()
    t0 = time.time()
    while time.time() - t0 < RUN_TIMEOUT:
        st = notebook_state(page)
        errors = [f'code cell {i} ({_head(c["src"])}): {c["error"]}' for i, c in enumerate(st['cells']) if c['error']]
        assert not errors, f'{name}: Run All failed at ' + '; '.join(errors)
        if st['kernel'] == 'idle' and all(c['n'] is not None for c in st['cells']): return time.time() - t0
        time.sleep(1)
    left = sum(c['n'] is None for c in notebook_state(page)['cells'])
    raise TimeoutError(f'{name}: {left} code cells still not run after {RUN_TIMEOUT}s')

def wait_idle(page, timeout=120):
    "Wait until the kernel has been idle for a second (the widget callbacks have run)."
    t0, idle = time.time(), 0
    while time.time() - t0 < timeout:
        idle = idle + 1 if notebook_state(page)['kernel'] == 'idle' else 0
        if idle >= 3: return
        time.sleep(0.5)
    raise TimeoutError(f'kernel still busy after {timeout}s')

def cell_with(page, inner):
    "The (first) code cell whose output contains locator `inner`."
    return page.locator('.jp-CodeCell', has=inner).first

def rendered(cell) -> str:
    "HTML of what a widget cell renders (HTML and Output widgets), without the controls themselves."
    return '\n'.join(cell.locator('.jp-OutputArea .widget-html-content, .jp-OutputArea .widget-output').evaluate_all(
        'els => els.map(e => e.innerHTML)'))

def shot(cell, path: Path):
    "Screenshot of what a cell's output shows (the widget)."
    out = cell.locator('.jp-Cell-outputArea')
    out.scroll_into_view_if_needed()
    out.screenshot(path=str(path))

def wait_change(fn, old, timeout=60):
    "Poll `fn()` until it differs from `old` (or `timeout` s pass); return its last value."
    t0 = time.time()
    while time.time() - t0 < timeout:
        new = fn()
        if new != old: return new
        time.sleep(0.5)
    return old

# --- the tests ---

def test_augmentation_explorer(page, lab, artifacts_dir):
    "Run the widgets chapter; moving the p_mask slider changes the samples the augmentation explorer shows."
    open_notebook(page, lab, AUG_NB)
    run_all(page, AUG_NB)
    label = page.locator('.widget-label', has_text=re.compile(r'^\s*p_mask\s*$'))
    slider = page.locator('.widget-slider', has=label).first
    slider.wait_for(state='visible', timeout=30_000)
    cell = cell_with(page, slider)
    cell.scroll_into_view_if_needed()
    before = rendered(cell)
    assert before.strip(), 'the augmentation explorer renders no samples (no HTML or Output widget next to p_mask)'
    shot(cell, artifacts_dir/'08_augmentation_explorer_before.png')
    readout = slider.locator('.widget-readout')
    value = readout.inner_text()
    # move the slider the way a learner does with the keyboard: focus its handle, page it towards the middle
    handle = slider.locator('.noUi-handle').first
    handle.focus()
    key = 'PageUp' if float(handle.get_attribute('aria-valuenow')) <= 0.5 else 'PageDown'
    for _ in range(4): handle.press(key)
    assert wait_change(readout.inner_text, value, timeout=10) != value, 'the p_mask slider did not move'
    wait_idle(page)
    after = rendered(cell)
    shot(cell, artifacts_dir/'08_augmentation_explorer_after.png')
    page.screenshot(path=str(artifacts_dir/'08_augmentation_page.png'))
    assert after != before, f'moving p_mask ({value} -> {readout.inner_text()}) did not change the rendered samples'

def test_teacher_vs_student_explorer(page, lab, artifacts_dir):
    "Run the widgets chapter; a sentence typed into the explorer draws bars for the teacher, the student and no-KD."
    open_notebook(page, lab, EVAL_NB)
    run_all(page, EVAL_NB)
    label = page.locator('.widget-label', has_text=re.compile(r'^\s*Sentence\s*$'))
    box = page.locator('.widget-text', has=label).first  # the explorer's text box, described 'Sentence'
    box.wait_for(state='visible', timeout=30_000)
    cell = cell_with(page, box)
    cell.scroll_into_view_if_needed()
    before = rendered(cell)
    text = box.locator('input[type="text"]')
    text.click()
    text.fill(SENTENCE)
    text.press('Enter')  # the Text widget sends its value on Enter
    assert wait_change(lambda: rendered(cell), before) != before, 'typing a sentence changed nothing in the explorer'
    wait_idle(page)
    # wait for the bars to be drawn; then, per chart, its text (title, legend, axes) and the bars of each trace
    cell.locator('.js-plotly-plot .barlayer path').first.wait_for(state='attached', timeout=60_000)
    time.sleep(1)  # let plotly finish drawing
    shot(cell, artifacts_dir/'08_teacher_student_explorer.png')
    page.screenshot(path=str(artifacts_dir/'08_explorer_page.png'))
    charts = cell.locator('.js-plotly-plot').evaluate_all("""els => els.map(e => ({
        text: Array.from(e.querySelectorAll('svg text')).map(t => t.textContent).join(' ').toLowerCase(),
        traces: Array.from(e.querySelectorAll('.barlayer .trace')).map(t =>
            Array.from(t.querySelectorAll('.point path')).filter(p => p.getBBox().height > 0).length)}))""")
    assert charts, 'the teacher-vs-student explorer shows no plotly chart after typing a sentence'
    drawn = [c for c in charts if sum(n > 0 for n in c['traces'])]
    assert sum(sum(n > 0 for n in c['traces']) for c in drawn) >= 3, f'fewer than three models have bars: {charts}'
    for model in ('teacher', 'student', 'no-kd'):
        assert any(model in c['text'] for c in drawn), f'no bars named for the {model}: charts show {charts}'
