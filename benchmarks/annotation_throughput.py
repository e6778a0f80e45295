"""Annotation throughput against a local OpenAI-compatible judge server (not a test: it prints figures).

Starts `alpacafarm_nb.judges.ChatSimulationServer` in a separate process (so the client and the server do not share a
GIL) with a fixed latency per request (default 50 ms), then annotates N distinct pairs with
`alpacafarm_nb.annotators.annotate_pairs` through the `greedy` pool (one request per pair) at several concurrency
limits, each run with a fresh SQLite cache, and finally re-runs the last one on its full cache (no request is made).
Reports the median over --repeats runs.

    .venv/bin/python benchmarks/annotation_throughput.py [--pairs 200] [--latency 0.05] [--concurrency 1 4 16] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = """
import sys
from alpacafarm_nb.judges import ChatSimulationServer, prefer_longer
srv = ChatSimulationServer(lambda model, exs, seed: [prefer_longer(e, tie=1.0) for e in exs], latency=float(sys.argv[1]), record=False)
print(srv.base_url, flush=True)
srv.serve_forever()
"""


def make_pairs(n: int, tag: str) -> list[dict]:
    return [dict(instruction=f"[{tag}] Question {i}: explain item {i}.", input='', output_1=f"Short answer {i}.",
                 output_2=f"A longer answer to question {i}, with some detail.", generator_1='a', generator_2='b')
            for i in range(n)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--pairs', type=int, default=200)
    ap.add_argument('--latency', type=float, default=0.05, help='seconds per request at the server')
    ap.add_argument('--concurrency', type=int, nargs='+', default=[1, 4, 16])
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--annotator', default='greedy')
    a = ap.parse_args(argv)
    from alpacafarm_nb.annotators import annotate_pairs

    proc = subprocess.Popen([sys.executable, '-c', SERVER, str(a.latency)], stdout=subprocess.PIPE, text=True)
    try:
        base_url = proc.stdout.readline().strip()
        print(f"server {base_url}, latency {a.latency * 1000:.0f} ms/request, {a.pairs} pairs, annotator {a.annotator}, "
              f"median of {a.repeats} runs")
        with tempfile.TemporaryDirectory() as d:
            results, cached = {}, []
            for c in a.concurrency:
                rates = []
                for r in range(a.repeats):
                    cache = Path(d) / f"c{c}_r{r}.sqlite"
                    pairs = make_pairs(a.pairs, f"c{c}r{r}")
                    t0 = time.perf_counter()
                    df = annotate_pairs(pairs, a.annotator, seed=0, concurrency=c, cache_path=cache, base_url=base_url,
                                        progress=False)
                    dt = time.perf_counter() - t0
                    assert df['preference'].notna().all() and (df['preference'] == 2.0).all(), df['preference'].value_counts()
                    rates.append(a.pairs / dt)
                    if c == a.concurrency[-1]:
                        t0 = time.perf_counter()
                        df2 = annotate_pairs(pairs, a.annotator, seed=0, concurrency=c, cache_path=cache, base_url=base_url,
                                             progress=False)
                        cached.append(time.perf_counter() - t0)
                        assert list(df2['preference']) == list(df['preference'])
                results[c] = statistics.median(rates)
                print(f"concurrency {c:>3}: {results[c]:8.1f} annotations/s  (runs: {', '.join(f'{x:.1f}' for x in rates)})",
                      flush=True)
            med = statistics.median(cached)
            print(f"fully cached re-run of {a.pairs} pairs: {med:.3f} s ({a.pairs / med:.0f} annotations/s; runs: "
                  f"{', '.join(f'{x:.3f}' for x in cached)})")
    finally:
        proc.terminate(); proc.wait(5)
    return 0


if __name__ == '__main__':
    sys.exit(main())
