"""The reproduction reports end to end: each notebook of reports/ executed with papermill against one pocket-quick farm run,
its CSV files checked, its HTML page opened in headless Chromium (Debian's, driven by Playwright): every plotly figure drawn,
and not one request leaving the machine. And `alpacafarm report` on bad input: one line, exit status 2."""
import json, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path

import pandas as pd
import pytest

from alpacafarm_nb.core import shared_data
from alpacafarm_nb.reports import farm_run, list_reports, run_report

ROOT = Path(__file__).resolve().parent.parent
ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")
REPORTS = ["table2", "overoptimization", "annotator_agreement", "ranking_correlation"]
# tiny parameters: the checks are about the pipeline and the pages, not the statistics
PARAMS = dict(table2=dict(n_boot=100), overoptimization=dict(n_boot=50), annotator_agreement=dict(n_pairs=120, n_repeats=3),
              ranking_correlation=dict(n_boot=100))


@pytest.fixture(scope="module", autouse=True)
def jupyter_env():
    "Jupyter writes into HOME and its config/data folders: keep them in a scratch folder (as tools/test.sh does)."
    keys = ["HOME", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "MPLCONFIGDIR", "IPYTHONDIR"]
    old = {k: os.environ.get(k) for k in keys}
    with tempfile.TemporaryDirectory() as d:
        for k in keys:
            os.environ[k] = os.path.join(d, k.lower()); os.makedirs(os.environ[k])
        yield
    for k, v in old.items():
        if v is None: os.environ.pop(k, None)
        else: os.environ[k] = v


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, jupyter_env):
    "One pocket-quick farm run (the reports' own default run: learned methods and every scripted system), made once."
    return farm_run("", tmp_path_factory.mktemp("reports"))   # the farm keeps its annotations in the run folder


@pytest.fixture(scope="module")
def pages(quick_run, tmp_path_factory):
    "{report: html path}: every report executed once against the quick run."
    out = tmp_path_factory.mktemp("reports_out")
    return {name: run_report(name, quick_run, PARAMS[name], out) for name in REPORTS}


def test_list_reports():
    names = set(list_reports())
    assert set(REPORTS) <= names, names


def test_table2(pages, quick_run):
    out = pages["table2"].parent
    t = pd.read_csv(out / "table2.csv")
    for c in ["paper_row", "method", "simulated", "simulated_se", "human", "human_se", "paper_simulated", "paper_simulated_se",
              "paper_human", "paper_human_se", "paper_check", "paper_source"]:
        assert c in t, c
    # the paper's 13 rows, with their published numbers
    paper = t.dropna(subset=["paper_simulated"]).drop_duplicates("paper_row").set_index("paper_row")
    assert len(paper) == 13
    assert paper.loc["PPO", ["paper_simulated", "paper_human"]].tolist() == [46.8, 55.1]
    assert paper.loc["GPT-4", "paper_simulated"] == 79.0 and paper.loc["LLaMA 7B", "paper_human"] == 6.5
    assert "verified" in paper.loc["ChatGPT", "paper_check"] and paper.loc["GPT-4", "paper_check"] == "unverified"
    # our rows: every method of the run, with the win rates of methods.csv
    methods = pd.read_csv(quick_run / "methods.csv")
    ours = t.dropna(subset=["method"]).set_index("method")
    assert set(methods["method"]) <= set(ours.index)
    for m, paper_row in [("sft10k", "SFT 10k"), ("best_of_n", "Best-of-1024"), ("pocket_gpt4", "GPT-4"), ("ppo", "PPO")]:
        assert ours.loc[m, "paper_row"] == paper_row
        sim = methods[(methods.method == m) & methods.feedback.isin(["simulated", "none"])]["win_rate_pool"].iloc[0]
        hum = methods[(methods.method == m) & methods.feedback.isin(["human", "none"])]["win_rate_humans"].iloc[0]
        assert ours.loc[m, "simulated"] == pytest.approx(sim) and ours.loc[m, "human"] == pytest.approx(hum)
    corr = pd.read_csv(out / "table2_ranking.csv")
    assert set(corr["source"]) == {"ours", "paper (from its Table 2)"} and set(corr["statistic"]) == {"spearman", "kendall", "pearson"}
    assert corr["value"].between(-1, 1).all()
    page = pages["table2"].read_text()
    assert "Best-of-1024" in page and "46.8 ± 1.8" in page


def test_overoptimization(pages, quick_run):
    out = pages["overoptimization"].parent
    pts = pd.read_csv(out / "overoptimization_points.csv")
    assert len(pts) == len(pd.read_csv(quick_run / "overoptimization.csv")) > 0 and "sqrt_kl" in pts
    fits = pd.read_csv(out / "overoptimization_fits.csv")
    assert {"best_of_n"} <= set(fits["method"]) and set(fits["y"]) == {"win_rate_humans", "win_rate_pool"}
    page = pages["overoptimization"].read_text()
    assert "no greedy-judge feedback" in page or "greedy" in set(pts["feedback"])


def test_overoptimization_with_a_model_and_a_device(quick_run, tmp_path):
    """`-p model FOLDER -p device cuda` (tested with the quick run's tiny SFT10k as the "pretrained" policy): the report's farm runs
    pocket-quick's pretrained counterpart with FOLDER as its base policy, on CUDA, or, where CUDA is absent, on the CPU with a note."""
    import torch
    model = quick_run / "models" / "sft10k"
    page = run_report("overoptimization", None, dict(model=str(model), device="cuda", n_boot=20), tmp_path / "out").read_text()
    run = tmp_path / "out" / "run_pocket-smollm2-quick"
    res = json.loads((run / "results.json").read_text())
    assert res["preset"] == "pocket-smollm2-quick" and res["config"]["base_model"] == str(model)
    assert res["models"]["base"]["pretrained"] and res["models"]["base"]["folder"] == str(model)
    assert "pretrains its own policy" in page and (tmp_path / "out" / "overoptimization_points.csv").is_file()
    if not torch.cuda.is_available(): assert "CUDA is not available" in page and "the farm runs on the CPU instead" in page


def test_annotator_agreement(pages):
    out = pages["annotator_agreement"].parent
    am = pd.read_csv(out / "agreement_matrix.csv", index_col=0)
    assert am.shape == (15, 15) and "humans" in am.index and "pocket_greedy" in am.index   # 13 pool judges, greedy, crowd
    # the greedy judge repeats itself (only the shown order changes between repeats) far more than two humans agree
    assert am.loc["pocket_greedy", "pocket_greedy"] > am.loc["humans", "humans"] + 0.1
    jm = pd.read_csv(out / "judge_metrics.csv", index_col=0)
    assert jm.loc["pocket_greedy", "variance"] < jm.loc["humans", "variance"]
    assert jm["agreement_with_reference"].between(0, 1).all()
    shared_csv = out / "shared_judge_metrics.csv"
    if shared_data("alpaca_eval", "crossannotation_pairs_gpt4_seeds.jsonl") is None:
        assert not shared_csv.exists() and "skipped: this section needs ../shared/data" in pages["annotator_agreement"].read_text()
    else:
        assert set(pd.read_csv(shared_csv, index_col=0).index) == {"gpt4_b1", "gpt4_b5"}


def test_ranking_correlation(pages):
    out = pages["ranking_correlation"].parent
    pairs = pd.read_csv(out / "ranking_methods.csv")
    corr = pd.read_csv(out / "ranking_correlation.csv").set_index("statistic")
    assert list(corr.index) == ["spearman", "kendall", "pearson"] and (corr["n"] == len(pairs)).all()
    assert ((corr["ci_low"] <= corr["value"] + 1e-9) & (corr["value"] <= corr["ci_high"] + 1e-9)).all()
    if shared_data("alpaca_eval") is not None:
        lc = pd.read_csv(out / "lc_vs_raw.csv")
        assert len(lc) == 16 and lc["lc"].between(0, 100).all()


# --- the pages in a browser ----------------------------------------------------------------------------------------------

def browser():
    "Debian's chromium driven by Playwright (Playwright's own browser download is not used); skips where either is absent."
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None: pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    try: from playwright.sync_api import sync_playwright
    except ImportError: pytest.skip("playwright is not installed (a dev dependency)")
    return exe, sync_playwright


def browse(path, timeout_ms=15_000):
    "Open `path` in headless Chromium; return (figures: per .js-plotly-plot its counts of SVGs, traces and marks; request URLs; JS errors)."
    exe, sync_playwright = browser()
    requests, errors = [], []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = b.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(Path(path).as_uri(), wait_until="load")
            try: page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0", timeout=timeout_ms)
            except Exception: pass   # no figure drawn: the caller's assertions say so
            figures = page.eval_on_selector_all(".plotly-graph-div", """els => els.map(el => ({
                svg: el.querySelectorAll('.main-svg').length,
                traces: el.querySelectorAll('.scatterlayer .trace, .barlayer .trace, .heatmaplayer image, .imagelayer image').length,
                marks: el.querySelectorAll('.scatterlayer path, .barlayer path, .heatmaplayer image, .imagelayer image').length}))""")
        finally:
            b.close()
    return figures, requests, errors


def check_page(name, path, timeout_ms=15_000):
    figures, requests, errors = browse(path, timeout_ms)
    assert figures, f"{name}: no plotly figure on the page"
    for i, f in enumerate(figures):
        assert f["svg"] > 0 and f["traces"] > 0 and f["marks"] > 0, f"{name}: figure {i} not drawn: {f}"
    assert not errors, f"{name}: JavaScript errors: {errors}"
    outside = [u for u in requests if not u.startswith(("file://", "data:", "blob:", "about:"))]
    assert not outside, f"{name}: requests left the machine: {outside}"
    text = Path(path).read_text()
    assert not re.search(r'<(?:script|link)[^>]+(?:src|href)="https?:', text), f"{name}: a script or stylesheet from the network"


@pytest.mark.parametrize("name", REPORTS)
def test_page_in_browser(pages, name):
    check_page(name, pages[name])


def test_page_check_catches_a_cdn_page(tmp_path):
    "The check fails on what nbconvert's default template and plotly's CDN mode make: figures needing a network."
    import plotly.graph_objects as go
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
    cdn = tmp_path / "cdn.html"
    cdn.write_text(fig.to_html(include_plotlyjs="cdn"))   # plotly.js from cdn.plot.ly: unreachable offline, so nothing is drawn
    with pytest.raises(AssertionError, match="not drawn|requests left the machine|no plotly figure"):
        check_page("cdn", cdn, timeout_ms=3_000)
    inline = tmp_path / "inline.html"
    inline.write_text(fig.to_html(include_plotlyjs=True).replace("<head>", '<head><link rel="stylesheet" href="https://example.invalid/x.css">'))
    with pytest.raises(AssertionError, match="requests left the machine"):
        check_page("inline", inline, timeout_ms=3_000)


# --- the command line ----------------------------------------------------------------------------------------------------

def run_cli(*args, env=None):
    return subprocess.run([ALPACAFARM, "report", *args], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


def test_cli_list():
    r = run_cli("--list")
    assert r.returncode == 0, r.stderr
    for n in REPORTS: assert re.search(rf"^{n}: run=", r.stdout, re.M), r.stdout


@pytest.mark.parametrize("args,expect", [
    (["nope"], "unknown report 'nope'"),
    (["table2", "--run", "/nonexistent/run"], "run folder not found"),
    (["table2", "-p", "nope", "1"], "report 'table2' has no parameter 'nope'"),
    (["table2", "-p", "n_boot", "many"], "parameter 'n_boot' expects int, got 'many'"),
    (["table2", "-p", "run", "x"], "give run with --run"),
])
def test_cli_bad_input(args, expect, tmp_path, capsys):
    "Through the `alpacafarm` dispatcher, in this process (fast): one line on stderr, exit status 2, nothing written."
    from alpacafarm_nb.cli import main
    assert main(["report", *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_bad_input_console_script():
    "The installed console script: no traceback either."
    r = run_cli("table2", "-p", "n_boot", "many")
    assert r.returncode == 2 and r.stderr.strip() == "alpacafarm report: error: parameter 'n_boot' expects int, got 'many'", r.stderr


def test_cli_runs_a_report(quick_run, tmp_path, jupyter_env):
    r = run_cli("ranking_correlation", "--run", str(quick_run), "-p", "n_boot", "50", "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr[-3000:]
    page = Path(r.stdout.strip().splitlines()[-1])
    assert page == tmp_path / "out" / "ranking_correlation.html" and page.is_file()
    assert (tmp_path / "out" / "ranking_correlation.ipynb").is_file() and (tmp_path / "out" / "ranking_methods.csv").is_file()


def test_cli_report_that_fails(tmp_path):
    "A report whose cell raises: one line naming the cell's error and the executed notebook, exit status 1; the notebook is kept."
    import nbformat
    d = tmp_path / "reps"; d.mkdir()
    params = nbformat.v4.new_code_cell("run = ''\nout_dir = 'reports/out'\nx = 1", metadata={"tags": ["parameters"]})
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell("assert x == 2, f'x is {x}'")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, d / "broken.ipynb")
    r = run_cli("broken", "--reports-dir", str(d), "-p", "x", "3", "--out", str(tmp_path / "out"))
    assert r.returncode == 1, r.stderr
    line = [l for l in r.stderr.splitlines() if l.startswith("alpacafarm report:")]
    assert len(line) == 1 and "broken failed in cell [3]: AssertionError: x is 3" in line[0] and "Traceback" not in r.stderr, r.stderr
    assert (tmp_path / "out" / "broken.ipynb").is_file() and not (tmp_path / "out" / "broken.html").exists()
