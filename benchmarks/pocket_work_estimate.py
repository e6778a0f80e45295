"""Benchmark helper (not a test): the tokens and analytic FLOPs of the pocket farm's largest stages recomputed from a run folder's
artifacts, for runs made before the per-stage accounting (`results.json` `stages[name].work`) existed, over the seconds of a
`farm_pocket.py` report. It gives the "before" fractions of peak; a run at current code records them itself.

Stages: sft10k (3 epochs of the SFT split: 6 N per real token), best_of_n_samples, preference_samples, expert_iteration_samples
(the sampler: each sample's prompt tokens (prefill, head on the last position only) and its sampled tokens but the last) and
best_of_n_simulated (reward-model scoring of every candidate: 2 N per token). N from `models.matmul_params`, as the counter does.

    .venv/bin/python benchmarks/pocket_work_estimate.py [--run /work/runs/after-pocket]
        [--seconds benchmarks/results/farm_pocket_2026-12-02.txt] [--peak-gflops 178]
"""
import argparse, json, re
from pathlib import Path

import torch


def report_seconds(path: Path) -> dict:
    "{stage: median seconds} from the 'median seconds per stage' block of a farm_pocket.py report."
    out, on = {}, False
    for line in path.read_text().splitlines():
        if line.startswith("median seconds per stage"): on = True; continue
        m = re.fullmatch(r"\s+(\S+)\s+([\d.]+)", line) if on else None
        if m: out[m.group(1)] = float(m.group(2))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("/work/runs/after-pocket"))
    p.add_argument("--seconds", type=Path, default=Path(__file__).resolve().parent / "results" / "farm_pocket_2026-12-02.txt")
    p.add_argument("--peak-gflops", type=float, default=178.0, help="the machine's measured matmul peak for the threads of --seconds' runs")
    a = p.parse_args()
    from alpacafarm_nb.models import load_policy, matmul_params
    from alpacafarm_nb.data import format_prompt
    from alpacafarm_nb.world import make_world
    from alpacafarm_nb.methods.sft import tokenize_sft
    from alpacafarm_nb.sampling import encode_prompts, encode_responses
    from alpacafarm_nb.methods.reward_model import load_reward_model
    secs, R = report_seconds(a.seconds), a.run
    pol, tok = load_policy(R / "models" / "sft10k", dtype=torch.float32)
    body, head = matmul_params(pol)
    rm, rtok = load_reward_model(R / "models" / "reward_simulated")
    rbody, rhead = matmul_params(rm)
    cfg = json.loads((R / "models" / "sft10k" / "train_config.json").read_text())
    print(f"{R}; seconds from {a.seconds}; policy N = {body} + head {head}, reward model N = {rbody} + head {rhead}; peak {a.peak_gflops} GFLOP/s")

    def row(name, tokens, flops):
        s = secs[name]
        print(f"  {name:26s} {s:7.1f} s {tokens / 1e3:8.0f}k tokens {tokens / s:8.0f} tokens/s {flops / s / 1e9:7.2f} GFLOP/s "
              f"{100 * flops / s / 1e9 / a.peak_gflops:5.1f}% of peak")
    ex = tokenize_sft(make_world(0, None).splits["sft"], tok, 384)
    t = round(cfg["epochs"] * sum(len(e["input_ids"]) for e in ex))
    row("sft10k", t, 6 * (body + head) * t)

    def sampled(recs, keys):
        P = encode_prompts(tok, [format_prompt(r["instruction"], r.get("input") or "", tok) for r in recs])
        tokens = flops = 0
        for k in keys:
            for q, r in zip(P, encode_responses(tok, [x[k] for x in recs])):
                dec = len(r) - 1
                tokens += len(q) + dec; flops += 2 * (body * (len(q) + dec) + head * (1 + dec))
        return tokens, flops
    read = lambda f: [json.loads(l) for l in open(R / "samples" / f)]
    for name, f, keys in (("best_of_n_samples", "best_of_n_eval.jsonl", ["output"]), ("preference_samples", "preference_pairs.jsonl", ["output_1", "output_2"]),
                          ("expert_iteration_samples", "expert_iteration_unlabeled.jsonl", ["output"])):
        row(name, *sampled(read(f), keys))
    recs = read("best_of_n_eval.jsonl")
    P = encode_prompts(rtok, [format_prompt(r["instruction"], r.get("input") or "", rtok) for r in recs])
    t = sum(len(q) + len(r) for q, r in zip(P, encode_responses(rtok, [r["output"] for r in recs])))
    row("best_of_n_simulated", t, 2 * (rbody + rhead) * t)


if __name__ == "__main__":
    main()
