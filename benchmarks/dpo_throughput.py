"""Benchmark: DPO training pairs/s of our trainer (`alpacafarm_nb.methods.dpo`) against TRL's `DPOTrainer` (issue 10).
Same model (a pocket SFT10k folder), same preference pairs, batch size and max length, fp32 on CPU, reference log-probs
precomputed on both sides (ours: `reference_logprobs`; TRL: `precompute_ref_log_probs=True`, done in its constructor),
no gradient checkpointing on either side. Each run trains --steps optimizer steps from the same starting weights; the
rate is measured between the end of step 1 and the end of the last step (no warm-up step, no final save), and the two
are interleaved run by run, median of --runs runs (2 shared cores: single runs are noisy).

TRL is not a project dependency: run it in a separate venv (see tests/test_dpo_trl.py):
    /work/wt/venv-trl/bin/python benchmarks/dpo_throughput.py --model runs/pocket/models/sft10k --pairs runs/pocket/preferences/human.json
        [--runs 3] [--steps 6] [--batch-size 32] [--max-length 256] [--threads 2]

Aim (in this script, not in a test): ours >= 1.0x TRL's pairs/s.
"""
import argparse, json, statistics, tempfile, time

import torch


def ours_once(a, pairs):
    from alpacafarm_nb.methods.dpo import dpo
    with tempfile.TemporaryDirectory() as d:
        dpo(a.model, pairs, d, preset='pocket', max_steps=a.steps, batch_size=a.batch_size, micro_batch_size=a.batch_size,
            max_length=a.max_length, val_size=0, log_every=1, progress=False, report_to='none', mixed_precision='no')
        t = [json.loads(l)['elapsed_s'] for l in open(f'{d}/metrics.jsonl')]
    return (a.steps - 1) * a.batch_size / (t[-1] - t[0])


def trl_once(a, pairs):
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer
    from alpacafarm_nb.models import load_policy
    from alpacafarm_nb.methods.dpo import preference_pairs
    model, tok = load_policy(a.model, dtype=torch.float32, device='cpu')
    ds = Dataset.from_list([dict(prompt=p['prompt'], chosen=p['chosen'], rejected=p['rejected']) for p in preference_pairs(pairs, quiet=True)])
    times = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw): times.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as d:
        args = DPOConfig(output_dir=d, beta=0.1, loss_type=['sigmoid'], learning_rate=1e-4, max_steps=a.steps,
                         per_device_train_batch_size=a.batch_size, max_length=a.max_length, precompute_ref_log_probs=True,
                         use_cpu=True, bf16=False, fp16=False, report_to=[], save_strategy='no', logging_steps=1000,
                         lr_scheduler_type='cosine', warmup_steps=1, dataloader_num_workers=0, disable_tqdm=True)  # ours: 3% of 5 steps -> 1
        trainer = DPOTrainer(model=model, args=args, processing_class=tok, train_dataset=ds, callbacks=[Clock()])
        trainer.train()
    return (a.steps - 1) * a.batch_size / (times[-1] - times[0])


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--model', required=True, help='pocket SFT10k folder')
    p.add_argument('--pairs', required=True, help='preference file (AlpacaFarm pairs)')
    p.add_argument('--n-pairs', type=int, default=512)
    p.add_argument('--runs', type=int, default=3)
    p.add_argument('--steps', type=int, default=6)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--max-length', type=int, default=256)
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    pairs = json.load(open(a.pairs))[:a.n_pairs]
    res = {'ours': [], 'trl': []}
    for i in range(a.runs):
        order = [('ours', ours_once), ('trl', trl_once)]
        if i % 2: order.reverse()                                          # interleave, alternating which goes first
        for name, fn in order:
            res[name].append(fn(a, pairs))
            print(f"run {i}: {name} {res[name][-1]:.1f} pairs/s", flush=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    import trl
    print(json.dumps(dict(ours_pairs_per_s=round(med['ours'], 2), trl_pairs_per_s=round(med['trl'], 2),
                          ratio=round(med['ours'] / med['trl'], 3), trl_version=trl.__version__, runs=a.runs, steps=a.steps,
                          batch_size=a.batch_size, max_length=a.max_length, threads=a.threads, all=res)))


if __name__ == '__main__':
    main()
