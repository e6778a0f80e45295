"""Benchmark: this machine's measured peak of fp32 matrix multiplication (GFLOP/s) with torch on 1 and 2 threads, and a
helper that turns a stage's (parameters, tokens, seconds) into achieved FLOP/s and its fraction of that peak.

    .venv/bin/python benchmarks/matmul_peak.py [--threads 1,2] [--sizes 256,512,1024,2048] [--runs 7] [--out FILE.json]

For each thread count and square size n, one n x n by n x n product is 2 n^3 FLOPs; each run times enough products to
last about --min-seconds, and the median GFLOP/s of --runs runs is kept. The peak is the best size's median (small sizes do
not saturate the cores, large ones fall out of cache). A shared machine gives noisy numbers: note the load average printed
beside them, and run it on an idle machine for figures to quote.

`stage_efficiency(params, tokens, seconds, peak_flops, training=False)` counts 2 N FLOPs per token for a forward pass
(sampling, scoring) and 6 N for a training step (forward and backward), N the model's parameters (embeddings included;
attention's own FLOPs, ~2 * n_layer * context * d_model per token, are left out: small for the pocket models' short
contexts), e.g.

    from benchmarks.matmul_peak import stage_efficiency
    stage_efficiency(0.9e6, 150_000, 40.0, peak_flops=60e9)   # {'flops_per_s': 6.75e9, 'fraction_of_peak': 0.1125, ...}
"""
import argparse, json, os, statistics, sys, time

FORWARD_FLOPS_PER_PARAM = 2     # one multiply and one add per parameter per token
TRAINING_FLOPS_PER_PARAM = 6    # forward (2) + backward (4: gradients of activations and of weights)


def stage_efficiency(params: float, tokens: float, seconds: float, peak_flops: float, training: bool = False) -> dict:
    "Achieved FLOP/s of a stage that processed `tokens` tokens of a model of `params` parameters in `seconds`, and its share of `peak_flops`."
    if params <= 0 or tokens < 0 or seconds <= 0 or peak_flops <= 0:
        raise ValueError(f"need params > 0, tokens >= 0, seconds > 0, peak_flops > 0; got {params}, {tokens}, {seconds}, {peak_flops}")
    per_token = (TRAINING_FLOPS_PER_PARAM if training else FORWARD_FLOPS_PER_PARAM) * params
    flops = per_token * tokens / seconds
    return dict(flops_per_s=flops, fraction_of_peak=flops / peak_flops, tokens_per_s=tokens / seconds, flops_per_token=per_token)


def matmul_gflops(n: int, threads: int, min_seconds: float = 0.3) -> float:
    "GFLOP/s of repeated fp32 n x n matrix products on `threads` threads (one timed run)."
    import torch
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)                                     # warm-up (allocations, thread pool)
    reps, t0 = 0, time.perf_counter()
    while True:
        torch.mm(a, b, out=out); reps += 1
        dt = time.perf_counter() - t0
        if dt >= min_seconds: break
    return 2 * n ** 3 * reps / dt / 1e9


def measure(threads=(1, 2), sizes=(256, 512, 1024, 2048), runs: int = 7, min_seconds: float = 0.3) -> dict:
    "Median GFLOP/s per (threads, size) over `runs` runs, interleaving sizes within each run, and the peak per thread count."
    res = {t: {n: [] for n in sizes} for t in threads}
    loads = []
    for _ in range(runs):
        for t in threads:
            for n in sizes: res[t][n].append(matmul_gflops(n, t, min_seconds))
        loads.append(round(os.getloadavg()[0], 2))
    med = {t: {n: statistics.median(v) for n, v in r.items()} for t, r in res.items()}
    return dict(median_gflops={str(t): {str(n): round(g, 2) for n, g in m.items()} for t, m in med.items()},
                peak_gflops={str(t): round(max(m.values()), 2) for t, m in med.items()},
                best_size={str(t): max(m, key=m.get) for t, m in med.items()},
                load_avg_1min_runs=loads, runs=runs, cpu_count=os.cpu_count())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--threads', default='1,2', help='thread counts, comma-separated (default 1,2)')
    p.add_argument('--sizes', default='256,512,1024,2048', help='square matrix sizes, comma-separated')
    p.add_argument('--runs', type=int, default=7, help='runs per (threads, size); the median is kept (default 7)')
    p.add_argument('--min-seconds', type=float, default=0.3, help='seconds of products per timed run (default 0.3)')
    p.add_argument('--out', default=None, help='also write the JSON here')
    a = p.parse_args(argv)
    try:
        threads = [int(x) for x in a.threads.split(',')]; sizes = [int(x) for x in a.sizes.split(',')]
        if min(threads) < 1 or min(sizes) < 1 or a.runs < 1 or a.min_seconds <= 0: raise ValueError
    except ValueError:
        print("matmul_peak.py: error: --threads and --sizes are positive integers (comma-separated), --runs >= 1, --min-seconds > 0",
              file=sys.stderr); return 2
    import torch
    res = dict(measure(threads, sizes, a.runs, a.min_seconds), torch=torch.__version__)
    txt = json.dumps(res, indent=1)
    print(txt)
    if a.out: open(a.out, 'w').write(txt + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
