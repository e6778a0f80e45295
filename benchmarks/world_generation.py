"""Benchmark: time to generate all splits of the pocket world at full size (target < 30 s). Median of several runs.

    .venv/bin/python benchmarks/world_generation.py [--runs 3] [--seed 0]
"""
import argparse, statistics, time

from alpacafarm_nb import world as W


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    times = []
    for i in range(a.runs):
        W.parse_task.cache_clear(); W._analyze.cache_clear()    # no warm caches between runs
        t = time.perf_counter(); w = W.make_world(a.seed + i); times.append(time.perf_counter() - t)
        print(f"run {i}: {times[-1]:.2f}s  {w!r}", flush=True)
    med = statistics.median(times)
    print(f"world generation (all splits + pretrain corpus): median {med:.2f}s over {a.runs} runs (target < 30 s): {'OK' if med < 30 else 'TOO SLOW'}")


if __name__ == "__main__":
    main()
