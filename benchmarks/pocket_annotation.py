"""Benchmark: annotating 10,000 pairs with the in-process pocket pool (13 judges, python backend) through the annotator
framework (alpacafarm_nb.annotators.annotate_pairs, no cache), target < 30 s. Median of several runs, fresh seeds each run.

    .venv/bin/python benchmarks/pocket_annotation.py [--runs 3] [--n 10000] [--pool pocket]
"""
import argparse, statistics, time

from alpacafarm_nb import world as W
from alpacafarm_nb.annotators import annotate_pairs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--pool", default="pocket")
    a = p.parse_args(argv)
    w = W.make_world(0, dict(sft=10, preference=a.n, unlabeled=10, val=10, eval=10, pretrain=10))
    insts = w.splits["preference"]
    x = w.generate("pocket_demonstrator", insts, seed=1, temperature=1.3)
    y = w.generate("pocket_chatgpt", insts, seed=2)
    pairs = [dict(instruction=r["instruction"], input=r["input"], output_1=o1["output"], output_2=o2["output"]) for r, o1, o2 in zip(insts, x, y)]
    times = []
    for i in range(a.runs):
        W._analyze.cache_clear(); W.parse_task.cache_clear()    # judges read the texts afresh
        t = time.perf_counter()
        df = annotate_pairs(pairs, a.pool, seed=100 + i, cache_path=False, progress=False)
        times.append(time.perf_counter() - t)
        print(f"run {i}: {times[-1]:.2f}s for {len(df)} pairs ({len(df) / times[-1]:.0f} pairs/s), missing {int(df['preference'].isna().sum())}", flush=True)
    med = statistics.median(times)
    print(f"in-process {a.pool} pool, {a.n} pairs: median {med:.2f}s over {a.runs} runs (target < 30 s): {'OK' if med < 30 else 'TOO SLOW'}")


if __name__ == "__main__":
    main()
