"""SmolLM2-135M-Instruct's own outputs on the AlpacaEval evaluation set, judged against the reference (text-davinci-003) by the
local judges backed by the same model: the pairwise pool `smollm2_pairwise.yaml` (through the annotator pool, with its
position randomisation) and the likelihood judge `hf_logprob` (mean token log-prob under the Alpaca prompt).

    nice -n 19 .venv/bin/python benchmarks/smol_outputs_judged.py [--outputs /work/runs/smol805.json] [--n 200] [--hf-logprob N]
                                                                  [--out benchmarks/results/smol_outputs_judged.json]

`--outputs`: the rows `alpacafarm generate --model <SmolLM2 folder> --instructions ../shared/data/alpaca_eval/eval_set.jsonl`
wrote (instruction, input, output, generator). The first `--n` are judged by the pairwise pool and the first `--hf-logprob`
by the likelihood judge. Win rate: AlpacaEval's (a tie counts 1/2), with its standard error over instructions. A 135M judge is
close to a coin against GPT-4 (benchmarks/results/real_model_judge.json): these win rates say how the judge behaves on this
model's own text, not how good the text is. Needs the real-model extra and ../shared/data/alpaca_eval.
"""
import argparse, json, os, sys, tempfile, time
from pathlib import Path

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--outputs', default='/work/runs/smol805.json')
    ap.add_argument('--n', type=int, default=200)
    ap.add_argument('--hf-logprob', type=int, default=200, metavar='N')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--out', default='benchmarks/results/smol_outputs_judged.json')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from alpacafarm_nb.core import shared_data, read_records
    from alpacafarm_nb.annotators import annotate_vs_reference, join_reference
    from alpacafarm_nb.evaluate import leaderboard
    from alpacafarm_nb.judges import make_judge
    from alpacafarm_nb.model_import import import_model
    ref_file = shared_data('alpaca_eval', 'eval_set.jsonl')
    if ref_file is None: print("SKIP: needs ../shared/data/alpaca_eval/eval_set.jsonl", file=sys.stderr); return 2
    if not Path(a.outputs).is_file():
        print(f"{a.outputs}: no such file; make it with `alpacafarm generate --model $(alpacafarm import-model smollm2-135m-instruct) "
              f"--instructions {ref_file} --out {a.outputs}`", file=sys.stderr); return 2
    outputs = [dict(instruction=r['instruction'], input=r.get('input') or '', output=r['output'], generator=r.get('generator') or 'smollm2')
               for r in read_records(a.outputs, 'output')]
    reference = [dict(instruction=r['instruction'], input=r.get('input') or '', output=r['output_text_davinci_003']) for r in read_records(ref_file)]
    res, judged = dict(outputs=a.outputs, reference=str(ref_file), reference_generator='text_davinci_003', threads=a.threads,
                       note='CPU timings on a shared, loaded machine (nice 19): indicative only'), {}

    if a.n:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            df = annotate_vs_reference(outputs[:a.n], reference, annotator='smollm2_pairwise', seed=a.seed, cache_path=Path(d)/'cache.sqlite', progress=True)
        judged['smollm2_pairwise'] = (df, time.perf_counter() - t0)

    if a.hf_logprob:
        folder = import_model('smollm2-135m-instruct')
        j = make_judge(dict(name='hf_logprob_smollm2', backend='hf_logprob', model=str(folder)))
        pairs = join_reference(outputs[:a.hf_logprob], reference)
        t0, rows = time.perf_counter(), []
        for i, p in enumerate(pairs):
            rows.append(dict(p, generator_2=outputs[i]['generator'], generator_1='text_davinci_003', preference=j.judge_batch([p])[0]['preference']))
            if (i + 1) % 20 == 0: print(f"hf_logprob: {i + 1}/{len(pairs)}, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        import pandas as pd
        judged['hf_logprob'] = (pd.DataFrame(rows), time.perf_counter() - t0)

    res['judges'] = {}
    for name, (df, secs) in judged.items():
        lb = leaderboard(df).iloc[0]
        prefs = df['preference'].dropna()
        res['judges'][name] = dict(n=int(len(df)), n_judged=int(len(prefs)), win_rate=round(float(lb['win_rate']), 2),
                                   standard_error=round(float(lb['standard_error']), 2), ties=int((prefs == 1.5).sum()),
                                   seconds=round(secs, 1), seconds_per_judgement=round(secs / max(1, len(df)), 2))
        print(name, json.dumps(res['judges'][name]), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
