"""Benchmark (not a test): the default farm's main kinds of work at the `pocket` sizes, each as tokens/s, achieved GFLOP/s and its
fraction of this machine's fp32 matmul peak measured in the same process (with the same thread count) just before.

Kinds, on a finished pocket run folder's models (`--run`, default /work/runs/after-pocket):
  sft_step      SFT10k training steps (batch 32, the trainer's order and padding), forward + backward (6 N per real token)
  sample        `generate` with the farm's sampling settings (T 0.7, 96 new tokens, batch 128) on evaluation instructions
  score_rm      reward-model scoring of best-of-n candidates (length-sorted batches of 256), forward only
FLOPs are `models.WORK`'s analytic count over real (unpadded) tokens, so padding, small-matrix inefficiency and Python overhead all
show as a lower fraction. The same fractions for whole farm stages come from `farm_pocket.py`. Noisy on a shared machine.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/stage_kernels.py [--run DIR] [--reps 3]
"""
import argparse, json, os, statistics, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from matmul_peak import measure


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("/work/runs/after-pocket"))
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads())
    torch.set_num_threads(threads)
    from alpacafarm_nb.models import load_policy, WORK
    from alpacafarm_nb.world import make_world
    from alpacafarm_nb.methods.sft import tokenize_sft
    from alpacafarm_nb.methods.reward_model import load_reward_model, score_rewards
    from alpacafarm_nb.sampling import generate_outputs
    from alpacafarm_nb.trainer import stream_indices, collate_lm, lm_loss, example_length
    w = make_world(0, None)
    base, tok = load_policy(a.run / "models" / "base", dtype=torch.float32)
    sft = load_policy(a.run / "models" / "sft10k", dtype=torch.float32)
    rm = load_reward_model(a.run / "models" / "reward_simulated")
    ex = tokenize_sft(w.splits["sft"], tok, 384)
    batches = [collate_lm(sorted([ex[i] for i in stream_indices(len(ex), s * 32, 32, 0)], key=example_length), tok.pad_token_id) for s in range(4)]
    cands = [json.loads(l) for l in open(a.run / "samples" / "best_of_n_eval.jsonl")][:2048]
    evals = w.splits["eval"][:256]
    base.train()

    def sft_step():
        for b in batches:
            lm_loss(base, b).backward(); base.zero_grad(set_to_none=True)
    kinds = dict(sft_step=sft_step,
                 sample=lambda: generate_outputs(sft, evals, temperature=0.7, max_new_tokens=96, batch_size=128, seed=0),
                 score_rm=lambda: score_rewards(rm, cands, 256))
    res = {k: [] for k in kinds}
    peaks = []
    for _ in range(a.reps):
        peaks.append(measure(threads=(threads,), sizes=(256, 512, 1024), runs=1, min_seconds=0.3)["peak_gflops"][str(threads)])
        for k, f in kinds.items():
            w0, t0 = WORK.snapshot(), time.perf_counter(); f(); dt = time.perf_counter() - t0
            res[k].append(WORK.since(w0, dt))
    peak = statistics.median(peaks)
    print(f"matmul peak {peak:.1f} GFLOP/s (median of {peaks}) on {threads} thread(s); load average {os.getloadavg()}")
    for k, rs in res.items():
        r = sorted(rs, key=lambda x: x["flops_per_s"])[len(rs) // 2]
        print(f"  {k:10s} {sum(r['tokens'].values()):8d} tokens  {r['tokens_per_s']:9.0f} tokens/s  {r['flops_per_s'] / 1e9:6.2f} GFLOP/s  "
              f"{100 * r['flops_per_s'] / 1e9 / peak:5.1f}% of peak  (median of {len(rs)}: {[round(x['flops_per_s'] / 1e9, 2) for x in rs]})")


if __name__ == "__main__":
    main()
