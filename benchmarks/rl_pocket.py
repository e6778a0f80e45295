"""PPO, RLOO and GRPO on a pocket SFT10k: proxy reward and KL over steps, seconds per step, rollout tokens/s, update samples/s.

The reward model is trained here (so this script does not depend on `methods.reward_model`): the SFT10k backbone with a one-label
head, Bradley-Terry on pairs of SFT10k samples (temperature 1) on the `preference` split, labelled by the pocket world's latent
quality (gold labels, no noise). Its held-out accuracy is printed. Then each method runs from SFT10k on `pocket:unlabeled` with its
`pocket` preset, and the gold quality of the samples of the first and last checkpoints is reported next to the proxy reward.

    PYTHONPATH=. .venv/bin/python benchmarks/rl_pocket.py --sft runs/pocket/models/sft10k --out /tmp/rl_bench [--steps 20]
"""
import argparse, json, os, sys, time
from pathlib import Path

import torch
import torch.nn.functional as F


def train_gold_rm(sft_dir, out_dir, n_instructions=400, epochs=2, lr=3e-4, seed=0):
    from transformers import GPT2ForSequenceClassification
    from alpacafarm_nb.models import load_policy
    from alpacafarm_nb.world import make_world, quality
    from alpacafarm_nb.sampling import generate, encode_prompts, encode_responses
    from alpacafarm_nb.data import format_prompt
    from alpacafarm_nb.methods.rollouts import _backbone_hidden, reward_scores
    t0 = time.perf_counter()
    pol, tok = load_policy(sft_dir, device='cpu', dtype=torch.float32)
    rows = make_world(0).splits['preference'][:n_instructions]
    prompts = [format_prompt(r['instruction'], r.get('input') or '') for r in rows]
    samples = generate(pol, tok, prompts, n=2, max_new_tokens=96, temperature=1.0, seed=seed)
    pairs = []
    for i, r in enumerate(rows):
        a, b = samples[2 * i], samples[2 * i + 1]
        qa, qb = quality(r['instruction'], r.get('input') or '', a['text']), quality(r['instruction'], r.get('input') or '', b['text'])
        if qa == qb: continue
        good, bad = (a, b) if qa > qb else (b, a)
        pairs.append((i, good['token_ids'], bad['token_ids']))
    P = encode_prompts(tok, prompts)
    cfg = pol.config.__class__.from_dict(pol.config.to_dict()); cfg.num_labels = 1; cfg.pad_token_id = tok.pad_token_id
    rm = GPT2ForSequenceClassification(cfg)
    rm.transformer.load_state_dict(pol.transformer.state_dict())
    n_val = len(pairs) // 5
    val, train = pairs[:n_val], pairs[n_val:]
    opt = torch.optim.Adam(rm.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)

    def margins(batch):
        prm = [P[i] for i, _, _ in batch] * 2
        rsp = [c for _, c, _ in batch] + [r for _, _, r in batch]
        h, _, tlen = _backbone_hidden(rm, prm, rsp, tok.pad_token_id)
        s = rm.score(h[torch.arange(len(prm)), tlen - 1]).squeeze(-1)
        return s[:len(batch)] - s[len(batch):]

    def accuracy(ps):
        rm.eval()
        with torch.no_grad(): acc = float((margins(ps) > 0).float().mean())
        rm.train(); return acc
    acc0 = accuracy(val)
    rm.train()
    for _ in range(epochs):
        for s in range(0, len(train), 16):
            idx = torch.randperm(len(train), generator=g).tolist() if s == 0 else idx
            b = [train[j] for j in idx[s:s + 16]]
            loss = -F.logsigmoid(margins(b)).mean()
            opt.zero_grad(); loss.backward(); opt.step()
    rm.eval()
    acc1 = accuracy(val)
    rm.save_pretrained(out_dir); tok.save_pretrained(out_dir)
    return dict(pairs=len(pairs), train_pairs=len(train), val_pairs=n_val, val_accuracy_before=acc0, val_accuracy=acc1,
                seconds=time.perf_counter() - t0)


def gold_quality(policy_dir, n=128, seed=1):
    "Mean latent (gold) quality of samples (temperature 1) of a policy on the first `n` eval instructions."
    from alpacafarm_nb.models import load_policy
    from alpacafarm_nb.world import make_world, quality
    from alpacafarm_nb.sampling import generate
    from alpacafarm_nb.data import format_prompt
    pol, tok = load_policy(policy_dir, device='cpu', dtype=torch.float32)
    rows = make_world(0).splits['eval'][:n]
    outs = generate(pol, tok, [format_prompt(r['instruction'], r.get('input') or '') for r in rows], max_new_tokens=96, temperature=1.0, seed=seed)
    return sum(quality(r['instruction'], r.get('input') or '', o['text']) for r, o in zip(rows, outs)) / len(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--sft', required=True); p.add_argument('--out', required=True)
    p.add_argument('--steps', type=int, default=20); p.add_argument('--methods', default='ppo,rloo,grpo')
    p.add_argument('--threads', type=int, default=2); p.add_argument('--set', action='append', default=[])
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    if not (out/'rm'/'config.json').is_file():
        info = train_gold_rm(a.sft, out/'rm')
        (out/'rm_info.json').write_text(json.dumps(info, indent=1))
    info = json.loads((out/'rm_info.json').read_text())
    print(f"reward model: {info['train_pairs']} gold pairs, held-out accuracy {info['val_accuracy_before']:.3f} -> {info['val_accuracy']:.3f} "
          f"({info['val_pairs']} pairs), {info['seconds']:.0f}s")
    from alpacafarm_nb.methods.ppo import ppo
    from alpacafarm_nb.methods.rloo import rloo
    from alpacafarm_nb.methods.grpo import grpo
    from alpacafarm_nb.config import parse_sets
    fns = dict(ppo=ppo, rloo=rloo, grpo=grpo)
    sft_gold = gold_quality(a.sft)
    print(f"SFT10k gold quality (128 eval instructions, T=1): {sft_gold:.3f}")
    for m in a.methods.split(','):
        d = out/m
        s = fns[m](a.sft, out/'rm', 'pocket:unlabeled', d, preset='pocket', max_steps=a.steps, progress=False, **parse_sets(a.set))
        recs = [json.loads(l) for l in (d/'metrics.jsonl').read_text().splitlines()]
        print(f"\n{m}: {s['prompts']} prompts ({s['prompts_dropped']} dropped), {s['seconds']:.0f}s for {s['step']} steps")
        print(f"{'step':>4} {'reward':>7} {'pen.':>7} {'KL':>6} {'entropy':>7} {'len':>5} {'apxKL':>6} {'clip':>5} {'EV':>5} {'s/step':>6} {'roll tok/s':>10} {'upd smp/s':>9}")
        for r in recs:
            print(f"{r['step']:>4} {r['reward']:>7.3f} {r['reward_penalized']:>7.3f} {r['kl']:>6.2f} {r['entropy']:>7.1f} {r['response_length']:>5.1f} "
                  f"{r['approx_kl']:>6.3f} {r['clipfrac']:>5.2f} {r.get('value_explained_variance', float('nan')):>5.2f} {r['step_seconds']:>6.1f} "
                  f"{r['rollout_tokens_per_s']:>10.0f} {r['update_samples_per_s']:>9.1f}")
        med = sorted(r['step_seconds'] for r in recs)[len(recs) // 2]
        golds = {Path(c).parent.name: round(gold_quality(c), 3) for c in (s['checkpoints'][0], s['checkpoints'][-1])}
        print(f"{m}: median {med:.1f} s/step; gold quality of checkpoints {golds} (SFT10k {sft_gold:.3f})")
        (out/f'{m}_summary.json').write_text(json.dumps(dict(median_step_seconds=med, gold=golds, sft_gold=sft_gold, last=recs[-1]), indent=1))


if __name__ == '__main__':
    main()
