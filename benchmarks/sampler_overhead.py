"""Benchmark (not a test): the batched sampler's overheads on a real pocket policy, before/after, interleaved, median of --reps.

Variants (each samples the same prompts with `generate`, the farm's settings by default: temperature 0.7, 96 new tokens):
  prune-every-eos  batch 128: finished rows leave the batch at every EOS (a copy of the whole KV cache each time): the code before
  prune-deferred   batch 128: they leave once they are --prune-fraction of the batch (or <= SMALL_BATCH rows are left)
  prune-deferred   batch --big-batch
Each variant's samples are compared with the first's: identical token ids and bit-identical log-probs are required for the
speed-up to keep every farm result unchanged (the script says which). Timings on a shared machine are noisy: read the ratios.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sampler_overhead.py [--policy RUN/models/sft10k] [--n-prompts 512] [--reps 3]
"""
import argparse, functools, os, statistics, sys, time
from pathlib import Path

import torch

from alpacafarm_nb import sampling
from alpacafarm_nb.models import load_policy, WORK
from alpacafarm_nb.world import make_world


def run(policy, prompts, batch_size, prune_fraction, args):
    orig = sampling.sample_batch
    sampling.sample_batch = functools.partial(orig, prune_fraction=prune_fraction)
    try:
        w0, t0 = WORK.snapshot(), time.perf_counter()
        res = sampling.generate(*policy, prompts, n=args.n, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                batch_size=batch_size, seed=0)
        dt = time.perf_counter() - t0
    finally:
        sampling.sample_batch = orig
    return dt, res, WORK.since(w0, dt)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", default="/work/runs/after-pocket/models/sft10k")
    p.add_argument("--n-prompts", type=int, default=512)
    p.add_argument("--n", type=int, default=1, help="samples per prompt")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--big-batch", type=int, default=256)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--prune-fraction", type=float, default=0.25)
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads()))
    policy = load_policy(a.policy, dtype=torch.float32)
    from alpacafarm_nb.data import format_prompt
    rows = make_world(0, None).splits["eval"][:a.n_prompts]
    prompts = [format_prompt(r["instruction"], r["input"], policy[1]) for r in rows]
    variants = [("prune-every-eos, batch 128", 128, 0.0), (f"prune-deferred {a.prune_fraction}, batch 128", 128, a.prune_fraction),
                (f"prune-deferred {a.prune_fraction}, batch {a.big_batch}", a.big_batch, a.prune_fraction)]
    times, outs, work = {v[0]: [] for v in variants}, {}, {}
    for r in range(a.reps):
        for name, bs, frac in variants:
            dt, res, w = run(policy, prompts, bs, frac, a)
            times[name].append(dt); outs[name], work[name] = res, w
    base = variants[0][0]
    b_med = statistics.median(times[base])
    print(f"{len(prompts)} prompts x {a.n}, {a.max_new_tokens} new tokens, T={a.temperature}, {torch.get_num_threads()} thread(s), load {os.getloadavg()}")
    for name, _, _ in variants:
        same_tok = all(x["token_ids"] == y["token_ids"] for x, y in zip(outs[name], outs[base]))
        same_lp = all(x["logprobs"] == y["logprobs"] for x, y in zip(outs[name], outs[base]))
        med = statistics.median(times[name])
        print(f"  {name:36s} median {med:6.2f} s of {[round(t, 2) for t in times[name]]}  speed-up x{b_med / med:.2f}  "
              f"generated {work[name]['generated_tokens']} tokens ({work[name]['generated_tokens'] / med:.0f}/s), "
              f"forwarded {work[name]['tokens']['generate']}; tokens identical: {same_tok}, log-probs bit-identical: {same_lp}")


if __name__ == "__main__":
    main()
