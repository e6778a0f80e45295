"""Benchmark: tokens/s of the decoding loop (`sampling.generate`) and of teacher-forced scoring (`sampling.score_responses`),
this tree's `alpacafarm_nb/sampling.py` against the same file at a baseline git revision, on the same model, prompts and
settings. The two are interleaved run by run (alternating which goes first) and the median of --runs runs is reported, with
the 1-minute load average around each run (a shared machine is noisy: read the ratio, not the absolute numbers). Each
mode also checks that both versions give the same token ids and the same log-probabilities, bit for bit.

    .venv/bin/python benchmarks/sampling_speed.py [--baseline HEAD] [--model DIR] [--runs 5] [--prompts 64] [--n 4]
        [--max-new-tokens 64] [--batch-size 64] [--threads 1]

Modes: `best_of_n` (temperature 1.0, top_p 0.9: best-of-n and expert iteration), `rollout` (temperature 1.0, top_p 1.0: RL
and preference pairs), `score` (score_responses of the rollout samples, batch 32). Without --model an untrained
pocket-tiny model is used (its samples are noise and rarely end: every row runs to --max-new-tokens).
"""
import argparse, importlib.util, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def load_baseline(rev: str):
    "alpacafarm_nb/sampling.py at git revision `rev`, imported as a module of the package (its relative imports resolve)."
    src = subprocess.run(['git', 'show', f'{rev}:alpacafarm_nb/sampling.py'], cwd=ROOT, capture_output=True, text=True)
    if src.returncode: sys.exit(f"sampling_speed.py: cannot read alpacafarm_nb/sampling.py at {rev!r}: {src.stderr.strip()}")
    path = Path(tempfile.mkdtemp()) / 'sampling_baseline.py'
    path.write_text(src.stdout)
    spec = importlib.util.spec_from_file_location('alpacafarm_nb._sampling_baseline', path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--baseline', default='HEAD', help='git revision of the sampler to compare with (default HEAD)')
    p.add_argument('--model', default=None, help='a trained policy folder (default: an untrained pocket-tiny model)')
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--prompts', type=int, default=64)
    p.add_argument('--n', type=int, default=4, help='samples per prompt')
    p.add_argument('--max-new-tokens', type=int, default=64)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--threads', type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from alpacafarm_nb import sampling as current
    from alpacafarm_nb.world import make_world, scaled_sizes
    from alpacafarm_nb.data import format_prompt
    from alpacafarm_nb.models import make_pocket_model, load_policy
    baseline = load_baseline(a.baseline)
    w = make_world(0, scaled_sizes('tiny'))
    rows = (w.splits['eval'] * 10)[:a.prompts]
    prompts = [format_prompt(r['instruction'], r['input']) for r in rows]
    if a.model: model, tok = load_policy(a.model, device='cpu')
    else: model, tok = make_pocket_model('pocket-tiny', list(w.pretrain_corpus)[:3000] + prompts)
    model.eval()
    modes = dict(best_of_n=dict(temperature=1.0, top_p=0.9), rollout=dict(temperature=1.0, top_p=1.0))

    def sample(mod, kw):
        return mod.generate(model, tok, prompts, n=a.n, max_new_tokens=a.max_new_tokens, batch_size=a.batch_size, seed=0, **kw)

    samples = sample(current, modes['rollout'])
    enc = current.encode_prompts(tok, prompts)
    P, R = [enc[s['prompt_index']] for s in samples], [s['token_ids'] for s in samples]

    def run(mod, mode):
        t0 = time.perf_counter()
        if mode == 'score': out = mod.score_responses(model, P, R, batch_size=32, pad_token_id=tok.pad_token_id)
        else: out = sample(mod, modes[mode])
        dt = time.perf_counter() - t0
        ntok = sum(len(x) for x in R) if mode == 'score' else sum(len(s['token_ids']) for s in out)
        key = out if mode == 'score' else [(s['token_ids'], s['logprobs']) for s in out]
        return ntok / dt, key

    report = dict(settings=vars(a), torch=torch.__version__, cpu_count=os.cpu_count(), modes={})
    for mode in (*modes, 'score'):
        res = {'baseline': [], 'current': []}; loads = []; same = True
        run(current, mode)                                                     # warm-up
        for i in range(a.runs):
            order = [('baseline', baseline), ('current', current)]
            if i % 2: order.reverse()
            outs = {}
            for name, mod in order:
                l0 = os.getloadavg()[0]
                tps, outs[name] = run(mod, mode)
                res[name].append(round(tps, 1)); loads.append(round((l0 + os.getloadavg()[0]) / 2, 2))
            same = same and outs['baseline'] == outs['current']
        med = {k: statistics.median(v) for k, v in res.items()}
        report['modes'][mode] = dict(tokens_per_s_runs=res, median_tokens_per_s=med, ratio=round(med['current'] / med['baseline'], 3),
                                     identical_tokens_and_logprobs=same, load_avg_1min_runs=loads)
        print(mode, json.dumps(report['modes'][mode]), file=sys.stderr)
    print(json.dumps(report, indent=1))


if __name__ == '__main__':
    main()
