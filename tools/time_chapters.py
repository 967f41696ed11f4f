"""Time chapters the way the course page quotes them, and write a results file.

Each notebook runs in a fresh `nbdev-test` process; the file records its wall time, whether it passed, the 1-minute
load average before and after, and when, where, at which commit and with which course pack it ran. The course page's
session plans quote these seconds; `tests/test_results.py` checks that they agree.

    python tools/time_chapters.py nbs/000_whole_game.ipynb nbs/02a_labels.ipynb --out results/chapter-times-DATE.json
"""
import argparse, json, os, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _git(*args) -> str:
    return subprocess.run(['git', '-C', str(ROOT), *args], capture_output=True, text=True).stdout.strip()


def _cpu() -> str:
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or 'unknown'


def time_chapters(notebooks, pack=None) -> dict:
    "Run each notebook with `nbdev-test` in its own process; {'rows': [{notebook, seconds, passed, load_before, load_after}], ...}."
    nbdev_test = shutil.which('nbdev-test', path=str(Path(sys.executable).parent)) or shutil.which('nbdev-test')
    if nbdev_test is None: sys.exit('error: nbdev-test not found; install the dev extras (pip install -e ".[dev]")')
    env = dict(os.environ, **({'BILSTM_KD_COURSE_PACK': str(pack)} if pack else {}))
    rows = []
    for nb in map(Path, notebooks):
        if not nb.is_file(): sys.exit(f'error: {nb} does not exist; pass notebook paths such as nbs/02a_labels.ipynb')
        before, t0 = os.getloadavg()[0], time.time()
        r = subprocess.run([nbdev_test, str(nb)], cwd=ROOT, env=env, capture_output=True, text=True)
        rows.append({'notebook': nb.name, 'seconds': round(time.time() - t0, 1), 'passed': r.returncode == 0,
                     'load_before': round(before, 2), 'load_after': round(os.getloadavg()[0], 2)})
        print(json.dumps(rows[-1]), flush=True)
    manifest = Path(env.get('BILSTM_KD_COURSE_PACK', ''))/'manifest.json'
    return {'what': 'nbdev-test wall time per notebook (fresh process each)', 'date': time.strftime('%Y-%m-%d'),
            'commit': _git('rev-parse', '--short', 'HEAD') + ('+dirty' if _git('status', '--porcelain', '--', 'bilstm_kd', 'nbs') else ''),
            'machine': {'cpu': _cpu(), 'cpu_count': os.cpu_count(), 'platform': platform.platform()},
            'pack': json.loads(manifest.read_text()).get('preset') if manifest.is_file() else None, 'rows': rows}


def markdown(res: dict) -> str:
    "The timings as the course page quotes them: one row per notebook, then the total."
    out = ['| notebook | `nbdev-test` wall time | load average (before → after) | passed |', '|---|---|---|---|']
    out += [f"| {r['notebook']} | {r['seconds']:.0f} s | {r['load_before']:.2f} → {r['load_after']:.2f} | {'yes' if r['passed'] else 'no'} |" for r in res['rows']]
    total = sum(r['seconds'] for r in res['rows'])
    return '\n'.join(out + [f"| all {len(res['rows'])} | {total / 60:.1f} min ({total:.0f} s) | | |"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('notebooks', nargs='+', help='notebook paths, timed in this order')
    ap.add_argument('--out', required=True, help='results file to write (JSON)')
    ap.add_argument('--pack', default=None, help='course pack folder (default: $BILSTM_KD_COURSE_PACK, else the cache)')
    a = ap.parse_args(argv)
    res = time_chapters(a.notebooks, a.pack)
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile('w', dir=out.parent, delete=False, suffix='.tmp') as f: json.dump(res, f, indent=1)
    os.replace(f.name, out)
    return 0 if all(r['passed'] for r in res['rows']) else 1


if __name__ == '__main__':
    sys.exit(main())
