"""Benchmark: best-of-n throughput, samples/s for sampling the candidates and for scoring them with a reward model (median of runs).

    .venv/bin/python benchmarks/best_of_n.py [--policy SFT_DIR] [--reward-model RM_DIR] [--prompts 32] [--n 16]
                                             [--max-new-tokens 64] [--batch-size 256] [--runs 3] [--threads 2]

Without --policy / --reward-model, an untrained pocket-tiny policy and a reward model on its backbone stand in (untrained
models rarely stop early, so sampling runs close to the max-new-tokens worst case; a trained SFT model's answers are shorter,
give --policy for the real figure). Decoding as the pocket preset: temperature 1.0, top-p 0.9. Sampling samples/s counts the
prompts x n candidates per second of `sample_candidates`; scoring samples/s the candidates per second of `score_candidates`.
"""
import argparse, json, statistics, tempfile, time
from pathlib import Path

import torch


def _stats(xs): return dict(median=statistics.median(xs), min=min(xs), max=max(xs), runs=len(xs))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--policy', default=None)
    p.add_argument('--reward-model', default=None)
    p.add_argument('--prompts', type=int, default=32)
    p.add_argument('--n', type=int, default=16)
    p.add_argument('--max-new-tokens', type=int, default=64)
    p.add_argument('--batch-size', type=int, default=256)
    p.add_argument('--runs', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from alpacafarm_nb.world import make_world
    from alpacafarm_nb.models import make_pocket_model, save_policy
    from alpacafarm_nb.data import format_prompt
    from alpacafarm_nb.methods.reward_model import make_reward_model, load_reward_model
    from alpacafarm_nb.methods.best_of_n import BestOfNConfig, sample_candidates, score_candidates
    w = make_world(0, dict(sft=10, preference=10, unlabeled=10, val=10, eval=max(100, a.prompts), pretrain=2000))
    instr = [dict(instruction=r['instruction'], input=r['input']) for r in w.splits['eval'][:a.prompts]]
    with tempfile.TemporaryDirectory() as d:
        policy = a.policy
        if policy is None:
            m, t = make_pocket_model('pocket-tiny', w.pretrain_corpus + [format_prompt('', '')] * 100)
            save_policy(m, t, Path(d) / 'pol'); policy = str(Path(d) / 'pol')
        rm = load_reward_model(a.reward_model) if a.reward_model else make_reward_model(policy)
        rm[0].eval()
        cfg = BestOfNConfig.resolve('pocket', dict(max_new_tokens=a.max_new_tokens, batch_size=a.batch_size, score_batch_size=a.batch_size))
        samp, score, lens = [], [], []
        for i in range(a.runs):
            t0 = time.perf_counter()
            c = sample_candidates(policy, instr, a.n, cfg, seed=i, progress=False)
            t1 = time.perf_counter()
            score_candidates(rm, c, cfg.score_batch_size)
            t2 = time.perf_counter()
            samp.append(len(c) / (t1 - t0)); score.append(len(c) / (t2 - t1))
            lens.append(statistics.mean(len(x['output'].split()) for x in c))
            print(f"  run {i}: sampling {samp[-1]:.1f} samples/s ({len(c)} in {t1 - t0:.2f}s), scoring {score[-1]:.1f} samples/s "
                  f"({t2 - t1:.2f}s), mean {lens[-1]:.1f} words", flush=True)
    print(json.dumps(dict(sample_samples_per_s=_stats(samp), score_samples_per_s=_stats(score), mean_words=statistics.mean(lens),
                          prompts=a.prompts, n=a.n, max_new_tokens=a.max_new_tokens, threads=a.threads,
                          policy=str(a.policy or 'untrained pocket-tiny'))))


if __name__ == '__main__':
    main()
