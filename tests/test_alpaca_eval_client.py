"""alpaca_eval, the field's evaluation client, run as its users run it against `alpacafarm serve-judges`: its win rate of pocket
SFT10k outputs against the pocket reference equals, within its standard error, what `alpacafarm annotate` gives with the same
judge on the same pairs. Three of its annotators: `alpaca_farm_greedy_gpt4` (AlpacaFarm's 5-pairs-per-prompt template,
`Output (a)`/`Output (b)` answers), `weighted_alpaca_eval_gpt4_turbo` (AlpacaEval 2: outputs named `m`/`M`, read from the
first token's `top_logprobs`), and `alpaca_farm`, AlpacaFarm's pool of 13 annotator configs (chat and plain-text prompts,
batched and single, JSON answers) all addressed to `pocket_pool`, against `alpacafarm annotate --annotator pocket`. Each is
alpaca_eval's own config with `model_name` set to a served id, and OPENAI_BASE_URL/OPENAI_API_BASE pointed at the server;
its caches and outputs go to a temporary folder. Two edits a user makes too: a plain-text template gets
`requires_chatml: false` (alpaca_eval sends it to the completions endpoint only for model names it knows as such), and
`tokens_to_avoid`/`tokens_to_favor` are dropped (they need tiktoken's encoding of an OpenAI model name, downloaded).

alpaca_eval is not a dependency of the project (it pins its own stack); run this test in a separate environment:
    python3 -m venv /work/wt/venv-ae && /work/wt/venv-ae/bin/pip install torch==2.13.0
    /work/wt/venv-ae/bin/pip install -e . 'alpaca_eval==0.6.6' 'setuptools<81' pytest
    /work/wt/venv-ae/bin/python -m pytest -q tests/test_alpaca_eval_client.py
(`setuptools<81`: alpaca_eval 0.6.6 imports `pkg_resources`.) The pocket outputs come from a pocket-quick farm (best-of-n only,
about a minute) built in a temporary folder, or from the farm folder named by ALPACAFARM_TEST_FARM (e.g. a finished
`alpacafarm farm --preset pocket-quick --out DIR`).
"""
import json, os, re, subprocess, sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

alpaca_eval = pytest.importorskip('alpaca_eval', reason="alpaca_eval is not installed here (it is not a project dependency): install "
                                                       "'alpaca_eval==0.6.6' in a separate venv to run this test (see this file's docstring)")

from alpacafarm_nb.core import read_records, write_records
from alpacafarm_nb.evaluate import leaderboard, read_annotations

BIN = Path(sys.executable).parent
N_PAIRS = 100
ANNOTATORS = [('alpaca_farm_greedy_gpt4', 'pocket_strong_batch5_lines', 5),   # alpaca_eval config, served id, its batch size in our pool
              ('weighted_alpaca_eval_gpt4_turbo', 'pocket_strong_json', 1),
              ('alpaca_farm', 'pocket_pool', None)]


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    e = {k: v for k, v in os.environ.items() if not k.startswith('OPENAI')}
    return {**e, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}


@pytest.fixture(scope='module')
def farm(tmp_path_factory, env):
    given = os.environ.get('ALPACAFARM_TEST_FARM')
    if given: return Path(given)
    out = tmp_path_factory.mktemp('farm')
    r = subprocess.run([str(BIN / 'alpacafarm'), 'farm', '--preset', 'pocket-quick', '--methods', 'best_of_n', '--out', str(out),
                        '--no-progress'], capture_output=True, text=True, env=env, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


@pytest.fixture(scope='module')
def pairs(farm, tmp_path_factory):
    """100 SFT10k outputs and the reference outputs of the same instructions, as alpaca_eval reads them (an instruction's input,
    if any, joined to it: alpaca_eval's templates have no input field), written for both tools."""
    d = tmp_path_factory.mktemp('pairs')
    ref = {(r['instruction'], r['input']): r for r in read_records(farm / 'outputs' / 'reference.json')}
    model = read_records(farm / 'outputs' / 'sft10k.json')[:N_PAIRS]
    join = lambda r: r['instruction'] + (f"\n\n{r['input']}" if r['input'] else '')
    rows = lambda rs: [dict(instruction=join(r), input='', output=r['output'], generator=r['generator']) for r in rs]
    write_records(rows(model), d / 'sft10k.json')
    write_records(rows([ref[(r['instruction'], r['input'])] for r in model]), d / 'reference.json')
    return d


@pytest.fixture(scope='module')
def server(env):
    p = subprocess.Popen([str(BIN / 'alpacafarm'), 'serve-judges', '--port', '0'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    try:
        line = p.stdout.readline()
        m = re.search(r'(http://127\.0\.0\.1:\d+/v1)', line)
        assert m, f"no URL printed: {line!r}"
        yield m.group(1)
    finally:
        p.terminate(); p.wait(10)


def alpaca_eval_win_rate(config:str, judge:str, pairs:Path, server:str, env:dict, work:Path) -> tuple[float, float]:
    "alpaca_eval's win rate and standard error (in %) with its annotator `config`, `model_name` set to `judge`, through `server`."
    base = Path(alpaca_eval.__file__).parent / 'evaluators_configs'
    cfgs = yaml.safe_load((base / config / 'configs.yaml').read_text())
    for cfg in cfgs.values():
        cfg['prompt_template'] = str(base / cfg['prompt_template'])
        cfg['completions_kwargs']['model_name'] = judge
        if '<|im_start|>' not in Path(cfg['prompt_template']).read_text(): cfg['completions_kwargs']['requires_chatml'] = False
        for k in ('tokens_to_avoid', 'tokens_to_favor'): cfg['completions_kwargs'].pop(k, None)
    folder = work / f"{config}_{judge}"; folder.mkdir()
    (folder / 'configs.yaml').write_text(yaml.safe_dump(cfgs))
    cmd = [str(BIN / 'alpaca_eval'), '--model_outputs', str(pairs / 'sft10k.json'), '--reference_outputs', str(pairs / 'reference.json'),
           '--annotators_config', str(folder / 'configs.yaml'), '--output_path', str(folder / 'out'),
           '--fn_metric', 'get_winrate', '--sort_by', 'win_rate']   # its length-controlled rate downloads instruction difficulties from a hub: not reachable offline
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=work,
                       env={**env, 'OPENAI_API_BASE': server, 'OPENAI_BASE_URL': server, 'OPENAI_API_KEY': 'not-needed'})
    assert r.returncode == 0, r.stderr[-4000:]
    board = next((folder / 'out').rglob('leaderboard.csv'))
    row = pd.read_csv(board, index_col=0).iloc[0]
    n = len(json.loads(next((folder / 'out').rglob('annotations.json')).read_text()))
    assert n == N_PAIRS, f"alpaca_eval annotated {n} pairs"
    return float(row['win_rate']), float(row['standard_error'])


def alpacafarm_win_rate(judge:str, batch_size:int|None, pairs:Path, env:dict, work:Path) -> tuple[float, float]:
    "`alpacafarm annotate` with the pocket judge `judge` alone (or the pocket pool for `pocket_pool`), in process: win rate and SE in %."
    pool = 'pocket' if judge == 'pocket_pool' else work / f"pool_{judge}.yaml"
    if judge != 'pocket_pool':
        one = dict(name=judge, backend='python', batch_size=batch_size, function='alpacafarm_nb.pocket_judges:pocket_judge', params=dict(judge=judge))
        pool.write_text(yaml.safe_dump(dict(name=judge, annotators=[one])))
    out = work / f"ann_{judge}.json"
    r = subprocess.run([str(BIN / 'alpacafarm'), 'annotate', '--outputs', str(pairs / 'sft10k.json'), '--reference', str(pairs / 'reference.json'),
                        '--annotator', str(pool), '--out', str(out), '--cache', str(work / f"cache_{judge}.sqlite"), '--no-progress'],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    row = leaderboard(read_annotations(out)).iloc[0]
    return float(row['win_rate']), float(row['standard_error'])


@pytest.mark.parametrize('config,judge,batch_size', ANNOTATORS)
def test_alpaca_eval_through_serve_judges(config, judge, batch_size, pairs, server, env, tmp_path):
    ae, ae_se = alpaca_eval_win_rate(config, judge, pairs, server, env, tmp_path)
    af, af_se = alpacafarm_win_rate(judge, batch_size, pairs, env, tmp_path)
    print(f"\n{config} via serve-judges ({judge}): alpaca_eval {ae:.2f} ± {ae_se:.2f}; alpacafarm annotate {af:.2f} ± {af_se:.2f}")
    assert 0 < ae < 100 and ae_se > 0
    assert abs(ae - af) <= ae_se, (ae, ae_se, af, af_se)
