"""Benchmark: reward-model training throughput (preference pairs/s) on the shared trainer (median of several runs).

    .venv/bin/python benchmarks/reward_model_training.py [--backbone SFT_DIR] [--pairs 512] [--steps 8] [--batch-size 32]
                                                        [--runs 3] [--threads 2] [--max-new-words 40]

Without --backbone, an untrained pocket-tiny model (3 layers, n_embd 128) stands in for SFT10k (same shapes, so the same
speed). The pairs are pocket-world preference instructions with two synthetic answers of 5..max-new-words words (the pocket
SFT model's answers average 14 words). pairs/s = pairs trained per second of the training loop (forward + backward of both
outputs of each pair, optimizer step), from the trainer's elapsed_s at the last step; model build and final save are not timed.
"""
import argparse, json, statistics, sys, tempfile, time
from pathlib import Path

import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--backbone', default=None, help='SFT model folder (default: an untrained pocket-tiny)')
    p.add_argument('--pairs', type=int, default=512)
    p.add_argument('--steps', type=int, default=8)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--runs', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--max-new-words', type=int, default=25)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    import random
    from alpacafarm_nb.world import make_world
    from alpacafarm_nb.models import make_pocket_model, save_policy
    from alpacafarm_nb.data import format_prompt
    from alpacafarm_nb.methods.reward_model import RewardModelConfig, train_reward_model
    w = make_world(0, dict(sft=10, preference=a.pairs, unlabeled=10, val=10, eval=100, pretrain=2000))
    r = random.Random(0)
    vocab = ' '.join(w.pretrain_corpus[:200]).split()
    ans = lambda: ' '.join(r.choice(vocab) for _ in range(r.randint(5, a.max_new_words)))
    pairs = [dict(instruction=x['instruction'], input=x['input'], output_1=ans(), output_2=ans(), preference=float(r.choice([1, 2])))
             for x in w.splits['preference']]
    with tempfile.TemporaryDirectory() as d:
        backbone = a.backbone
        if backbone is None:
            m, t = make_pocket_model('pocket-tiny', w.pretrain_corpus + [format_prompt('', '')] * 100)
            save_policy(m, t, Path(d) / 'sft'); backbone = Path(d) / 'sft'
        xs = []
        for i in range(a.runs):
            cfg = RewardModelConfig.resolve('pocket', dict(max_steps=a.steps, batch_size=a.batch_size, micro_batch_size=a.batch_size,
                                                           eval_pairs=0, crowd_humans=0, progress=False, report_to='none', seed=i,
                                                           log_every=a.steps))
            train_reward_model(backbone, pairs, Path(d) / f'rm{i}', cfg)
            # the loop's own time at the last step (metrics.jsonl elapsed_s): not the model build nor the final save
            loop_s = [json.loads(l) for l in open(Path(d) / f'rm{i}' / 'metrics.jsonl')][-1]['elapsed_s']
            rate = a.steps * a.batch_size / loop_s
            xs.append(rate)
            print(f"  run {i}: {rate:.1f} pairs/s ({a.steps} steps of {a.batch_size} pairs in {loop_s:.2f}s)", flush=True)
    res = dict(pairs_per_s=dict(median=statistics.median(xs), min=min(xs), max=max(xs), runs=len(xs)), threads=a.threads,
               batch_size=a.batch_size, steps=a.steps, backbone=str(a.backbone or 'untrained pocket-tiny'))
    print(json.dumps(res))


if __name__ == '__main__':
    main()
