"""Benchmark: training tokens/s and sampling tokens/s of the pocket presets (median of several runs).

    .venv/bin/python benchmarks/train_and_sample.py [--presets pocket-tiny pocket-small] [--runs 3] [--train-steps 10]
                                                   [--prompts 64] [--max-new-tokens 64] [--threads 2] [--device cpu|cuda]
    .venv/bin/python benchmarks/train_and_sample.py --big          # a >=100M-parameter GPT-2 built from config (GPU, bf16)

Training: SFT steps (effective batch 32) on pocket-world demonstrations through the shared trainer (accelerate), tokens/s
counts the non-padding tokens fed to the model. Sampling: 64 eval prompts, temperature 0.7, up to 64 new tokens, with the
hand-written KV-cache loop (alpacafarm_nb.sampling.generate) and with transformers' model.generate for comparison; tokens/s
counts generated tokens up to and including EOS. Models are untrained (random init) except where --trained DIR is given:
random models rarely emit EOS early, so the sampling figure is close to the "all sequences run to max_new_tokens" worst case.
On a shared machine the numbers are noisy: the median of --runs runs is reported along with the min and max.
"""
import argparse, json, os, resource, statistics, sys, tempfile, time
from pathlib import Path

import torch


def _stats(xs):
    return dict(median=statistics.median(xs), min=min(xs), max=max(xs), runs=len(xs))


def bench_preset(preset, rows, corpus, prompts, a, model_dir=None):
    from alpacafarm_nb.models import make_pocket_model, load_policy, count_params
    from alpacafarm_nb.data import format_prompt
    from alpacafarm_nb.trainer import train
    from alpacafarm_nb.methods.sft import tokenize_sft
    from alpacafarm_nb.sampling import time_sampling
    if model_dir:
        model, tok = load_policy(model_dir, device=a.device)
    else:
        model, tok = make_pocket_model(preset, corpus + [format_prompt("", "")] * 200)
        model.to(a.device)
    ex = tokenize_sft(rows, tok, max_length=256)
    res = dict(preset=preset, params=count_params(model), device=str(a.device), threads=torch.get_num_threads())
    tr = []
    for i in range(a.runs):
        m, _ = (load_policy(model_dir, device=a.device) if model_dir else make_pocket_model(preset, tokenizer=tok))
        with tempfile.TemporaryDirectory() as d:
            s = train(m, ex, d, dict(max_steps=a.train_steps, batch_size=32, micro_batch_size=32, lr=1e-3, progress=False,
                                     report_to="none", log_every=a.train_steps, seed=i))
        tr.append(s["tokens_per_s"])
        print(f"  {preset} train run {i}: {s['tokens_per_s']:.0f} tok/s ({s['seconds']:.1f}s for {a.train_steps} steps)", flush=True)
    res["train_tokens_per_s"] = _stats(tr)
    for use_hf in (False, True):
        xs = []
        for i in range(a.runs):
            r = time_sampling(model, tok, prompts, max_new_tokens=a.max_new_tokens, batch_size=64, use_hf=use_hf, seed=i, temperature=0.7)
            xs.append(r["tokens_per_s"])
            print(f"  {preset} sample ({'model.generate' if use_hf else 'ours'}) run {i}: {r['tokens_per_s']:.0f} tok/s "
                  f"({r['tokens']} tokens in {r['seconds']:.2f}s)", flush=True)
        res["sample_tokens_per_s_hf_generate" if use_hf else "sample_tokens_per_s"] = _stats(xs)
    return res


def bench_big(a):
    """A 124M-parameter GPT-2 (n_embd 768, 12 layers) built from config: training and sampling tokens/s, bf16 where supported."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from alpacafarm_nb.models import train_tokenizer, count_params
    from alpacafarm_nb.trainer import train
    from alpacafarm_nb.sampling import time_sampling
    from alpacafarm_nb.world import make_world
    w = make_world(0, dict(sft=2000, preference=10, unlabeled=10, val=10, eval=805, pretrain=2000))
    tok = train_tokenizer(w.pretrain_corpus, vocab_size=8192, model_max_length=1024)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    from alpacafarm_nb.methods.sft import tokenize_sft
    ex = tokenize_sft(w.splits["sft"], tok, 512)
    out = dict(params=count_params(GPT2LMHeadModel(cfg)), device=a.device)
    with tempfile.TemporaryDirectory() as d:
        m = GPT2LMHeadModel(cfg)
        s = train(m, ex, d, dict(max_steps=a.train_steps, batch_size=64, micro_batch_size=64, lr=3e-4, progress=False, report_to="none"))
    out["train_tokens_per_s"] = s["tokens_per_s"]
    dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    m = GPT2LMHeadModel(cfg).to(a.device, dtype).eval()
    prompts = [r["instruction"] for r in w.splits["eval"][:256]]
    out["sample"] = time_sampling(m, tok, prompts, max_new_tokens=a.max_new_tokens, batch_size=128, temperature=0.7)
    out["sample_dtype"] = str(dtype)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["pocket-tiny", "pocket-small"])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--train-steps", type=int, default=10)
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--trained", default=None, help="benchmark this trained model folder instead of fresh presets")
    p.add_argument("--big", action="store_true", help="benchmark a 124M GPT-2 from config instead (meant for a GPU)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    if a.big:
        results = dict(big=bench_big(a))
    else:
        from alpacafarm_nb.world import make_world
        from alpacafarm_nb.data import format_prompt
        w = make_world(0, dict(sft=1000, preference=10, unlabeled=10, val=10, eval=805, pretrain=5000))
        prompts = [format_prompt(r["instruction"], r["input"]) for r in w.splits["eval"][:a.prompts]]
        results = {}
        for preset in ([Path(a.trained).name] if a.trained else a.presets):
            print(f"{preset}:", flush=True)
            results[preset] = bench_preset(preset, w.splits["sft"], w.pretrain_corpus, prompts, a, model_dir=a.trained)
    results["_meta"] = dict(threads=a.threads, cpu_count=os.cpu_count(), device=a.device, wall_s=time.perf_counter() - t0,
                            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                            note="shared machine (other users' jobs run concurrently): figures are noisy")
    print(json.dumps(results, indent=1, default=str))
    print("\nsummary (median tokens/s):")
    for k, r in results.items():
        if k.startswith("_") or "train_tokens_per_s" not in r or not isinstance(r["train_tokens_per_s"], dict): continue
        print(f"  {k:14s} {r['params']:>10,} params | train {r['train_tokens_per_s']['median']:>8.0f} | sample (ours) "
              f"{r['sample_tokens_per_s']['median']:>8.0f} | sample (model.generate) {r['sample_tokens_per_s_hf_generate']['median']:>8.0f}")
    if a.json: Path(a.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
