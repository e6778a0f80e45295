"""Annotation throughput against a local OpenAI-compatible judge server, ours and alpaca_eval's (not a test: it prints figures).

Starts `alpacafarm_nb.serve.ChatSimulationServer` in a separate process with a fixed latency per request, then times
whole processes, cold (a fresh cache, so every pair is a request), each one pair per request with the greedy prompt:

- ours: `alpacafarm annotate --pairs PAIRS --annotator greedy --base-url URL` (default concurrency);
- alpaca_eval (where installed; `--alpaca-eval BIN`, else `alpaca_eval` on PATH): `alpaca_eval evaluate` with its defaults
  and an annotator config whose prompt is our greedy prompt, so that the same server reads it and answers the same way;
  the client is pointed at the server with a client config file (OPENAI_CLIENT_CONFIG_PATH);
- a fully cached re-run of ours (no request is made), as a whole process.

Reports pairs/s (median of --repeats runs) at each latency, and the ratio ours / alpaca_eval.

    .venv/bin/python benchmarks/annotation_throughput.py [--pairs 805] [--latency 0.05 0.2] [--repeats 3] [--alpaca-eval BIN]
                                                         [--alpaca-eval-concurrency N]

alpaca_eval installs beside the project, without torch: `python3 -m venv venv-ae && venv-ae/bin/pip install 'setuptools<80'
alpaca_eval==0.6.6`, then `--alpaca-eval venv-ae/bin/alpaca_eval`. It runs offline here: the reference outputs are given,
the win rate is the plain one (`--fn_metric get_winrate`; its length-controlled metric downloads a model from the Hub).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = """
import sys
from alpacafarm_nb.judges import prefer_longer
from alpacafarm_nb.serve import ChatSimulationServer
srv = ChatSimulationServer(lambda model, exs, seed: [prefer_longer(e, tie=1.0) for e in exs], latency=float(sys.argv[1]), record=False)
print(srv.base_url, flush=True)
srv.serve_forever()
"""

WORDS = "the of and to in is that for it as with was on be by this are from or an at have which not but can".split()


def make_pairs(n: int, seed: int = 0) -> list[dict]:
    """n distinct pairs of plain prose (no backticks, no input), 20-200 words an output, lengths always differ."""
    rng = random.Random(seed)
    def text(k): return ' '.join(rng.choice(WORDS) for _ in range(k)).capitalize() + '.'
    out = []
    for i in range(n):
        a, b = rng.sample(range(20, 200), 2)
        out.append(dict(instruction=f"Question {i}: {text(rng.randint(8, 30))}", input='', output_1=text(a), output_2=text(b),
                        generator_1='reference', generator_2='model'))
    return out


def alpaca_eval_config(folder: Path) -> Path:
    """An alpaca_eval annotator config whose prompt renders exactly as our `greedy` template (for pairs without backticks)."""
    from alpacafarm_nb.judges import TEMPLATES
    t = TEMPLATES['greedy']
    ex = dict(instruction='{instruction}', input='', output_1='{output_1}', output_2='{output_2}')
    system, user = [m['content'] for m in t.render([ex])]
    (folder / 'ours_greedy').mkdir(parents=True)
    (folder / 'ours_greedy' / 'prompt.txt').write_text(
        f"<|im_start|>system\n{system}\n<|im_end|>\n<|im_start|>user\n{user}\n<|im_end|>\n")
    cfg = folder / 'ours_greedy' / 'configs.yaml'
    cfg.write_text("ours_greedy:\n  prompt_template: \"ours_greedy/prompt.txt\"\n  fn_completions: \"openai_completions\"\n"
                   "  completions_kwargs:\n    model_name: \"gpt-4o\"\n    max_tokens: 16\n    temperature: 0\n"
                   "  completion_parser_kwargs:\n    outputs_to_match:\n      1: '(?:^|\\n) ?Output \\(a\\)'\n"
                   "      2: '(?:^|\\n) ?Output \\(b\\)'\n  batch_size: 1\n")
    return cfg


def timed(cmd: list[str], env: dict, cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800)
    return time.perf_counter() - t0, r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--pairs', type=int, default=805)
    ap.add_argument('--latency', type=float, nargs='+', default=[0.05, 0.2], help='seconds per request at the server')
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--alpaca-eval', default=os.environ.get('ALPACA_EVAL_BIN') or shutil.which('alpaca_eval'),
                    help='the alpaca_eval executable (default: $ALPACA_EVAL_BIN, else alpaca_eval on PATH); "none" to skip')
    ap.add_argument('--alpaca-eval-concurrency', type=int, default=None,
                    help="alpaca_eval's OPENAI_MAX_CONCURRENCY (default: unset, its default of 5 requests at once)")
    a = ap.parse_args(argv)
    ae_bin = None if (a.alpaca_eval or 'none') == 'none' else a.alpaca_eval
    alpacafarm = str(Path(sys.executable).parent / 'alpacafarm')
    pairs = make_pairs(a.pairs)
    print(f"{a.pairs} pairs, greedy prompt, one pair per request, whole processes timed cold, median of {a.repeats}; "
          f"alpaca_eval concurrency {a.alpaca_eval_concurrency or 'default (5)'}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / 'pairs.json').write_text(json.dumps(pairs))
        (d / 'model.json').write_text(json.dumps([dict(instruction=p['instruction'], output=p['output_2'], generator='model') for p in pairs]))
        (d / 'reference.json').write_text(json.dumps([dict(instruction=p['instruction'], output=p['output_1'], generator='reference')
                                                      for p in pairs]))
        env = dict(os.environ, HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
        env.pop('OPENAI_API_KEY', None)
        for lat in a.latency:
            proc = subprocess.Popen([sys.executable, '-c', SERVER, str(lat)], stdout=subprocess.PIPE, text=True)
            try:
                url = proc.stdout.readline().strip()
                ours, cached, theirs = [], [], []
                for r in range(a.repeats):
                    cache = d / f"cache_{lat}_{r}.sqlite"
                    cmd = [alpacafarm, 'annotate', '--pairs', str(d / 'pairs.json'), '--annotator', 'greedy', '--base-url', url,
                           '--cache', str(cache), '--out', str(d / 'ours.json'), '--no-progress']
                    dt, res = timed(cmd, env, d)
                    if res.returncode != 0 or f"annotated {a.pairs}/{a.pairs}" not in res.stdout:
                        raise SystemExit(f"alpacafarm annotate failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
                    ours.append(a.pairs / dt)
                    dt, res = timed(cmd, env, d)                         # the same command again: all from the cache
                    if res.returncode != 0 or f"{a.pairs} from the cache" not in res.stdout:
                        raise SystemExit(f"cached re-run failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
                    cached.append(dt)
                    if ae_bin:
                        run = d / f"ae_{lat}_{r}"                        # a fresh folder: alpaca_eval caches next to its config
                        cfg = alpaca_eval_config(run)
                        (run / 'client.yaml').write_text(f"default:\n  - api_key: \"EMPTY\"\n    base_url: \"{url}\"\n")
                        ae_env = dict(env, OPENAI_CLIENT_CONFIG_PATH=str(run / 'client.yaml'))
                        if a.alpaca_eval_concurrency: ae_env['OPENAI_MAX_CONCURRENCY'] = str(a.alpaca_eval_concurrency)
                        dt, res = timed([ae_bin, 'evaluate', '--model_outputs', str(d / 'model.json'),
                                         '--reference_outputs', str(d / 'reference.json'), '--annotators_config', str(cfg),
                                         '--output_path', str(run / 'out'), '--precomputed_leaderboard', 'None',
                                         '--is_cache_leaderboard', 'False', '--fn_metric', 'get_winrate',
                                         '--sort_by', 'win_rate'], ae_env, run)
                        ann = run / 'out' / 'annotations.json'
                        n_ok = sum(x.get('preference') in (1, 2, 1.0, 2.0) for x in json.loads(ann.read_text())) if ann.exists() else 0
                        if res.returncode != 0 or n_ok != a.pairs:
                            print(f"alpaca_eval did not annotate all pairs ({n_ok}/{a.pairs}, exit {res.returncode}):\n"
                                  f"{res.stderr[-3000:]}", file=sys.stderr)
                            ae_bin = None
                        else: theirs.append(a.pairs / dt)
                med = statistics.median
                rows.append((lat, med(ours), med(theirs) if theirs else None, med(cached)))
                print(f"latency {lat * 1000:.0f} ms: ours {med(ours):.1f} pairs/s (runs {', '.join(f'{x:.1f}' for x in ours)})"
                      + (f"; alpaca_eval {med(theirs):.1f} pairs/s (runs {', '.join(f'{x:.1f}' for x in theirs)}); "
                         f"ratio {med(ours) / med(theirs):.1f}x" if theirs else "; alpaca_eval not run")
                      + f"; cached re-run {med(cached):.2f} s (runs {', '.join(f'{x:.2f}' for x in cached)})", flush=True)
            finally:
                proc.terminate(); proc.wait(5)
    print(f"\n(load average {os.getloadavg()[0]:.1f} at the end)")
    print("\n| latency | ours (pairs/s) | alpaca_eval 0.6.6 (pairs/s) | ratio | cached re-run, whole process (s) |\n|---|---|---|---|---|")
    for lat, o, t, c in rows:
        print(f"| {lat * 1000:.0f} ms | {o:.1f} | {f'{t:.1f}' if t else 'n/a'} | {f'{o / t:.1f}x' if t else 'n/a'} | {c:.2f} |")
    return 0


if __name__ == '__main__':
    sys.exit(main())
