"""Benchmark (not a test): where an SFT training step of the pocket model loses time, and what the changes that would alter results
(to float rounding, then through training everything downstream) would buy. Nothing here changes the farm; it informs a decision.

Measured on the farm's SFT10k batches (batch 32, the trainer's stream order, sorted and right-padded as `trainer._micro_batches` does):
  - padding: the share of the padded batch that is real tokens (what packing or length-bucketed batches could recover);
  - activation: GPT-2's `gelu_new` (a Python formula of 8 element-wise ops, each stored for backward) vs `gelu_pytorch_tanh`
    (`F.gelu(approximate='tanh')`, one fused kernel; equal to ~2e-7, not bit-identical);
  - `--compile`: `torch.compile` of the model (inductor on CPU; compile time printed apart).
Interleaved, median of --reps; ratios are what to read on a shared machine.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train_step_overhead.py [--policy RUN/models/base] [--steps 6] [--reps 3] [--compile]
"""
import argparse, copy, os, statistics, time

import torch


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", default="/work/runs/after-pocket/models/base")
    p.add_argument("--steps", type=int, default=6, help="training batches per timing")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--compile", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads()))
    from transformers.activations import ACT2FN
    from alpacafarm_nb.models import load_policy
    from alpacafarm_nb.world import make_world
    from alpacafarm_nb.methods.sft import tokenize_sft
    from alpacafarm_nb.trainer import stream_indices, collate_lm, lm_loss, example_length
    model, tok = load_policy(a.policy, dtype=torch.float32)
    ex = tokenize_sft(make_world(0, None).splits["sft"], tok, 384)
    real = padded = 0
    for s in range(len(ex) // 32):                      # one epoch in the trainer's order: real vs padded tokens
        L = [len(ex[i]["input_ids"]) for i in stream_indices(len(ex), s * 32, 32, 0)]
        real, padded = real + sum(L), padded + max(L) * len(L)
    print(f"SFT10k epoch: {real} real tokens in {padded} padded ({100 * real / padded:.0f}% real; packing could save up to {100 * (1 - real / padded):.0f}% of the step)")
    batches = [collate_lm(sorted([ex[i] for i in stream_indices(len(ex), s * 32, 32, 0)], key=example_length), tok.pad_token_id) for s in range(a.steps)]
    variants = {"gelu_new (now)": model}
    fused = copy.deepcopy(model)
    for blk in fused.transformer.h: blk.mlp.act = ACT2FN["gelu_pytorch_tanh"]
    variants["gelu_pytorch_tanh"] = fused
    if a.compile:
        c = torch.compile(copy.deepcopy(model))
        t0 = time.perf_counter(); lm_loss(c, batches[0]).backward(); c.zero_grad(); print(f"torch.compile: first step (compiling) {time.perf_counter() - t0:.1f} s")
        variants["torch.compile"] = c
    for m in variants.values(): m.train()

    def steps(m):
        t0 = time.perf_counter()
        for b in batches:
            lm_loss(m, b).backward(); m.zero_grad(set_to_none=True)
        return time.perf_counter() - t0
    times = {k: [] for k in variants}
    for _ in range(a.reps):
        for k, m in variants.items(): times[k].append(steps(m))
    base = statistics.median(times["gelu_new (now)"])
    l0 = lm_loss(model, batches[0]); l0.backward(); g0 = model.transformer.h[0].mlp.c_fc.weight.grad.clone(); model.zero_grad()
    print(f"{a.steps} steps of batch 32, {torch.get_num_threads()} thread(s), load {os.getloadavg()}")
    for k, m in variants.items():
        l = lm_loss(m, batches[0]); l.backward(); g = dict(m.named_parameters())[next(n for n, _ in m.named_parameters() if n.endswith("h.0.mlp.c_fc.weight"))].grad
        med = statistics.median(times[k])
        print(f"  {k:20s} median {med:6.2f} s of {[round(t, 2) for t in times[k]]}  speed-up x{base / med:.2f}  "
              f"loss diff {float(l - l0):+.2e}, max |grad diff| {float((g - g0).abs().max()):.1e}")
        m.zero_grad()


if __name__ == "__main__":
    main()
