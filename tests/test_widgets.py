"""The annotator comparison widget across modules: the report notebook under papermill, your labels read by the evaluator
and the judge metrics (and the leaderboard CLI), concurrent appends from two processes, a real file with repeats, and the
widget in a real JupyterLab driven by Chromium (Playwright)."""
import html, json, os, re, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alpacafarm_nb.widgets import (AnnotatorComparison, append_label, label_record, live_pocket_sample, read_labels,
                                   verdict_matrix, load_annotation_files)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REPORT = ROOT / 'reports' / 'annotator_widget.ipynb'


def _env(tmp_path):
    "Environment for subprocesses: this checkout's package first, Jupyter's and IPython's folders in the temp folder."
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''), HOME=str(tmp_path / 'home'),
               JUPYTER_CONFIG_DIR=str(tmp_path / 'jupyter_config'), JUPYTER_DATA_DIR=str(tmp_path / 'jupyter_data'),
               JUPYTER_RUNTIME_DIR=str(tmp_path / 'jupyter_runtime'), IPYTHONDIR=str(tmp_path / 'ipython'),
               OMP_NUM_THREADS='1', PYTHONHASHSEED='0', HF_HUB_OFFLINE='1', ALPACAFARM_CACHE_PATH=str(tmp_path / 'cache.sqlite'))
    (tmp_path / 'home').mkdir(exist_ok=True)
    return env


def test_report_runs_under_papermill_and_writes_a_snapshot(tmp_path):
    out = tmp_path / 'out'
    r = subprocess.run([str(BIN / 'papermill'), str(REPORT), str(tmp_path / 'run.ipynb'), '-p', 'out_dir', str(out),
                        '-p', 'text_filter', 'fact'], capture_output=True, text=True, env=_env(tmp_path), timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    snap = (out / 'annotator_widget.html').read_text()
    expected = AnnotatorComparison('live')
    expected.text_filter.value = 'fact'
    assert expected.current is not None
    assert html.escape(f"filter {'fact'!r}") in snap and html.escape(expected.current['instruction']) in snap and 'afw-matrix' in snap
    assert f"of {len(expected.pair_ids)}</b>" in snap
    # the executed notebook holds the widget and the same snapshot as static HTML (what an HTML export shows)
    nb = json.loads((tmp_path / 'run.ipynb').read_text())
    outs = [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', [])]
    assert any('application/vnd.jupyter.widget-view+json' in o.get('data', {}) for o in outs)
    assert any(html.escape(expected.current['instruction']) in ''.join(o.get('data', {}).get('text/html', '')) for o in outs)


def test_your_labels_are_an_annotator_for_the_evaluator_and_the_judge_metrics(tmp_path, cli_env):
    from alpacafarm_nb.evaluate import leaderboard
    from alpacafarm_nb.judge_metrics import judge_metrics
    labels = tmp_path / 'labels.jsonl'
    w = AnnotatorComparison('live:4', labels_path=labels, user='ann')
    said = {}
    for pref in (2, 1, 2, 1.5, 2, 2, 1, 1):        # 8 of the 12 pairs, clicking like a user
        said[w.current['pair_id']] = pref
        {1: w.label_a, 1.5: w.label_tie, 2: w.label_b}[pref].click()
    mine = read_labels(labels)
    assert mine.set_index('pair_id')['preference'].to_dict() == said
    assert (mine['annotator'] == 'ann').all() and mine['time_per_example'].notna().all()
    # the leaderboard of your labels: one row per model B, the win rate is the mean of your (preference - 1)
    board = leaderboard(mine)
    for model, g in mine.groupby('generator_2'):
        assert board.loc[model, 'win_rate'] == pytest.approx(100 * (g['preference'] - 1).mean())
    # ... and the same from the command line, on the file as written
    r = subprocess.run([str(BIN / 'alpacafarm'), 'leaderboard', str(labels)], capture_output=True, text=True, env=cli_env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert set(mine['generator_2']) <= set(r.stdout.split())
    # your agreement with every judge, as judge_metrics computes it from the judges' own annotations plus yours
    judges = w.verdicts[w.verdicts['annotator'] != 'ann']
    both = pd.concat([judges[judges['pair_id'].isin(said)], mine], ignore_index=True)
    jm = judge_metrics(both, reference_annotator='ann')
    for name in ('pocket_greedy', 'pocket_human_00'):
        theirs = judges[judges['annotator'] == name].set_index('pair_id')['label']
        assert jm.loc[name, 'agreement_with_reference'] == pytest.approx(np.mean([theirs[p] == v for p, v in said.items()]))
    assert w.matrix.loc['ann', 'pocket_greedy'] == pytest.approx(jm.loc['pocket_greedy', 'agreement_with_reference'])


_APPEND = """
import sys
from alpacafarm_nb.widgets import append_label
for i in range(int(sys.argv[3])):
    append_label(sys.argv[1], dict(instruction=f'q{i}', input='', output_1='a ' * 500, output_2='b', generator_2='m',
                                   preference=1.0, annotator=sys.argv[2]))
"""

def test_two_processes_append_to_one_labels_file(tmp_path):
    path, n = tmp_path / 'labels.jsonl', 300
    procs = [subprocess.Popen([sys.executable, '-c', _APPEND, str(path), who, str(n)], env=_env(tmp_path)) for who in ('x', 'y')]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 * n and all(json.loads(l)['output_1'] == 'a ' * 500 for l in lines)   # whole lines, none interleaved
    assert read_labels(path)['annotator'].value_counts().to_dict() == {'x': n, 'y': n}


def test_a_real_file_with_repeats_gives_judge_metrics_agreement(shared):
    from alpacafarm_nb.judge_metrics import agreement_matrix, read_judge_annotations
    path = shared / 'alpaca_eval' / 'crossannotation_pairs_gpt4_seeds.jsonl'
    v = load_annotation_files(path, repeat_key='seed')
    assert v['pair_id'].nunique() == 648 and len(v) == 5184
    ours = verdict_matrix(v)
    theirs = agreement_matrix(read_judge_annotations(path, 'seed'), repeat_key='seed')
    pd.testing.assert_frame_equal(ours, theirs.loc[ours.index, ours.columns], check_exact=False, atol=1e-12)
    w = AnnotatorComparison(path, repeat_key='seed')
    w.disagreement_only.value = True
    assert 0 < len(w.pair_ids) < 648 and w.current_verdicts['label'].nunique() == 2 and len(w.current_verdicts) == 8


# --- the widget in a real JupyterLab, driven by Chromium --------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _wait_for_server(url:str, proc, timeout:float=120):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None: raise RuntimeError(f"jupyter lab exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200: return
        except OSError: time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer {url} within {timeout} s")


def test_widget_in_jupyterlab(tmp_path):
    chromium = shutil.which('chromium') or shutil.which('chromium-browser')
    if chromium is None: pytest.skip("no system Chromium (apt-get install chromium): the JupyterLab browser test needs one")
    sync_api = pytest.importorskip('playwright.sync_api', reason="playwright is not installed (pip install -e '.[dev]')")
    if not (BIN / 'jupyter-lab').exists(): pytest.skip(f"jupyter lab is not installed in {BIN}")
    # what the widget will show: the pairs' first instruction, and the one a filter on the second instruction brings up
    w = AnnotatorComparison('live')
    first = w.current['instruction']
    second = next(i for i in pd.unique(w.verdicts['instruction']) if i != first)
    w.text_filter.value = second
    expected = w.current['instruction']
    assert expected == second
    n_expected = len(w.pair_ids)

    root = tmp_path / 'root'                        # a copy: Lab's autosave must not write into the checkout
    (root / 'reports').mkdir(parents=True)
    shutil.copy(REPORT, root / 'reports' / REPORT.name)
    port, token = _free_port(), 'alpacafarm-test-token'
    cmd = [str(BIN / 'jupyter-lab'), '--no-browser', '--ip', '127.0.0.1', f'--port={port}', '--ServerApp.port_retries=0',
           f'--ServerApp.token={token}', f'--ServerApp.root_dir={root}',
           '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate']
    if hasattr(os, 'geteuid') and os.geteuid() == 0: cmd.append('--allow-root')
    env = _env(tmp_path)
    # no 'Would you like to get notified about official Jupyter news?' toast over the page (and the screenshot)
    news = Path(env['JUPYTER_CONFIG_DIR']) / 'lab' / 'user-settings' / '@jupyterlab' / 'apputils-extension' / 'notification.jupyterlab-settings'
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text(json.dumps({'fetchNews': 'false'}))
    env['PATH'] = str(BIN) + os.pathsep + env.get('PATH', '')      # the kernel's `python` is this venv's
    log = open(tmp_path / 'lab.log', 'w')
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    shot = Path(os.environ.get('ALPACAFARM_WIDGET_SCREENSHOT') or tmp_path / 'widget.png')
    try:
        _wait_for_server(f'http://127.0.0.1:{port}/api/status?token={token}', server)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=['--no-sandbox'])
            try:
                page = browser.new_page(viewport={'width': 1300, 'height': 1000})
                page.goto(f'http://127.0.0.1:{port}/lab/tree/reports/{REPORT.name}?token={token}', timeout=120_000)
                page.wait_for_selector('.jp-NotebookPanel .jp-Cell', timeout=120_000)
                # the kernel is up (the status bar says 'Python 3 (ipykernel) | Idle'): Run > Run All Cells is enabled
                sync_api.expect(page.get_by_role('button', name=re.compile(r'\| Idle'))).to_be_visible(timeout=120_000)
                page.locator('.jp-NotebookPanel .jp-Cell').first.click()
                page.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
                page.locator('.lm-Menu-itemLabel', has_text='Run All Cells').first.click()
                widget = page.locator('.afw-widget').first
                widget.wait_for(timeout=180_000)
                instr = widget.locator('.afw-instr').first
                sync_api.expect(instr).to_contain_text(first, timeout=30_000)
                box = widget.locator('input[placeholder="instruction contains…"]').first
                box.fill(second)
                sync_api.expect(instr).to_contain_text(expected, timeout=30_000)
                # the agreement matrix follows the filter
                sync_api.expect(widget.locator('.afw-matrix caption')).to_have_text(f'agreement on {n_expected} pairs', timeout=30_000)
                assert first not in instr.inner_text()
                assert f'of {n_expected} pairs' in widget.inner_text()     # the systems' answers to that instruction
                # the screenshot for the README: the whole widget, without the file browser
                page.keyboard.press('Control+b')
                page.set_viewport_size({'width': 1100, 'height': int(widget.bounding_box()['height']) + 200})
                widget.scroll_into_view_if_needed()
                shot.parent.mkdir(parents=True, exist_ok=True)
                widget.screenshot(path=str(shot))
            finally:
                browser.close()
        assert shot.stat().st_size < 300_000
    except Exception:
        log.flush(); print((tmp_path / 'lab.log').read_text()[-5000:])   # the server's side of the story
        raise
    finally:
        server.terminate()
        try: server.wait(timeout=15)
        except subprocess.TimeoutExpired: server.kill(); server.wait()
        log.close()


@pytest.fixture
def judge_server(cli_env):
    "`alpacafarm serve-judges` on a free port: the pocket judges behind an OpenAI-compatible API."
    p = subprocess.Popen([str(BIN / 'alpacafarm'), 'serve-judges', '--port', '0'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=cli_env)
    try:
        m = re.search(r'(http://127\.0\.0\.1:\d+/v1)', p.stdout.readline())
        assert m, p.stderr.read() if p.poll() is not None else 'no URL printed'
        yield m.group(1)
    finally:
        p.terminate()
        try: p.wait(10)
        except subprocess.TimeoutExpired: p.kill(); p.wait()


def test_live_pool_over_the_api_shows_each_judges_raw_completion(judge_server, tmp_path):
    "Every judge of an OpenAI-compatible pool on the same pairs: the verdicts of the python pool, and the judges' own replies."
    from alpacafarm_nb.widgets import annotate_each, LIVE_SYSTEMS
    names = ['pocket_strong_json', 'pocket_medium_batch4_lines']
    python = live_pocket_sample(n=3, n_humans=0)
    pairs = python.drop_duplicates('pair_id')
    api = annotate_each(pairs, pools=['pocket_api'], names=names, base_url=judge_server, cache=tmp_path / 'cache.sqlite')
    assert len(api) == len(pairs) * len(names) and set(api['group']) == {'pocket_api'}
    merged = api.merge(python[python['annotator'].isin(names)], on=['pair_id', 'annotator'], suffixes=('', '_python'))
    assert len(merged) == len(api) and (merged['preference'] == merged['preference_python']).all()
    # the API judges answer in their prompt formats (a JSON verdict, numbered lines), not a bare number
    raw = api.set_index('annotator')['raw_completion']
    assert raw.loc['pocket_strong_json'].str.contains('{').all() and not raw.str.fullmatch(r'[12]\.0').any()
    w = AnnotatorComparison(api)
    assert html.escape(w.current_verdicts['raw_completion'].iloc[0][:40]) in w.verdict_view.value


def test_a_farm_run_of_pocket_annotators_shows_its_simulated_cost(tmp_path):
    "A farm-run folder annotated by the pocket pool and crowd: the widget prices each verdict as its published annotator, marked simulated."
    from alpacafarm_nb.annotators import annotate_pairs
    from alpacafarm_nb.pocket_judges import cross_annotation_pairs, annotation_cost
    pairs = cross_annotation_pairs(2)
    for group, pool in (('pool', 'pocket'), ('humans', 'pocket_humans')):
        (tmp_path / 'annotations' / group).mkdir(parents=True)
        ann = annotate_pairs(pairs, pool, seed=0, cache_path=False, progress=False)
        (tmp_path / 'annotations' / group / 'model.json').write_text(ann.to_json(orient='records'))
    w = AnnotatorComparison(tmp_path)
    assert w.verdicts['price_is_simulated'].all() and w.by.value == 'group'
    cost = annotation_cost(w.shown_verdicts)
    assert cost['n'] == 2 * len(pairs) and cost['simulated']
    humans = cost['per_annotator']
    assert abs(sum(v['price'] for k, v in humans.items() if k.startswith('pocket_human')) - 0.30 * len(pairs)) < 1e-9
    assert f"cost of {2 * len(pairs)} annotations: ${cost['price']:.2f}" in w.cost_view.value and '(sim.)' in w.verdict_view.value
