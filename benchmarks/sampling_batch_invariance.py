"""Benchmark: the cost of batch-invariant sampling (issue 8). Tokens/s of the decoding loop with one shared
`torch.Generator` per batch (the sampler before issue 8: `torch.multinomial`, samples depend on the batch) against
per-sample random streams (SplitMix64 uniforms keyed by (seed, prompt, sample index) and an inverse-CDF draw: what
`alpacafarm_nb.sampling.generate` does now). Same model, prompts, batches and settings; the two are interleaved run by run
and the median of --runs runs is reported (2 shared cores: single runs are noisy).

    .venv/bin/python benchmarks/sampling_batch_invariance.py [--runs 5] [--prompts 128] [--max-new-tokens 64]
        [--batch-size 64] [--preset pocket-tiny] [--model DIR] [--threads 2]

Target (in this script, not in a test): the per-row sampler within 10% of the shared-generator sampler's tokens/s.
"""
import argparse, json, random, statistics, time

import torch


def run_once(model, tok, enc, keys, a, per_row):
    from alpacafarm_nb.sampling import sample_batch, _eos_ids
    eos, pad = _eos_ids(model, tok), tok.pad_token_id
    gen = torch.Generator().manual_seed(0)
    t0, ntok = time.perf_counter(), 0
    for s in range(0, len(enc), a.batch_size):
        outs = sample_batch(model, enc[s:s + a.batch_size], eos, pad, a.max_new_tokens, temperature=1.0, top_p=0.9,
                            row_keys=keys[s:s + a.batch_size] if per_row else None, generator=None if per_row else gen)
        ntok += sum(len(o['token_ids']) for o in outs)
    return ntok / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--prompts', type=int, default=128)
    p.add_argument('--max-new-tokens', type=int, default=64)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--preset', default='pocket-tiny')
    p.add_argument('--model', default=None, help='a trained policy folder (default: an untrained model of --preset)')
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from alpacafarm_nb.world import make_world, scaled_sizes
    from alpacafarm_nb.data import format_prompt
    from alpacafarm_nb.models import make_pocket_model, load_policy
    from alpacafarm_nb.sampling import encode_prompts, row_key
    w = make_world(0, scaled_sizes('tiny'))
    rows = (w.splits['eval'] * 10)[:a.prompts]
    prompts = [format_prompt(r['instruction'], r['input']) for r in rows]
    if a.model: model, tok = load_policy(a.model, device='cpu')
    else:
        model, tok = make_pocket_model(a.preset, list(w.pretrain_corpus) + prompts)
        model.eval()
    enc = encode_prompts(tok, prompts)
    keys = [row_key(0, pr, j) for j, pr in enumerate(prompts)]
    res = {'shared_generator': [], 'per_row_streams': []}
    run_once(model, tok, enc[:8], keys[:8], a, True)                   # warm-up
    for i in range(a.runs):
        order = [('shared_generator', False), ('per_row_streams', True)]
        if i % 2: order.reverse()                                          # interleave, alternating which goes first
        for name, per_row in order: res[name].append(run_once(model, tok, enc, keys, a, per_row))
    med = {k: statistics.median(v) for k, v in res.items()}
    ratio = med['per_row_streams'] / med['shared_generator']
    print(json.dumps(dict(settings=vars(a), tokens_per_s_runs=res, median_tokens_per_s=med, ratio=round(ratio, 3),
                          target='ratio >= 0.90', meets_target=ratio >= 0.90), indent=1))


if __name__ == '__main__':
    main()
