"""Benchmark (not a test): wall time and peak memory of the README's main job, `alpacafarm farm --preset pocket`.

Runs the job from scratch `--runs` times in fresh temporary folders (each run in its own process, so the peak resident
memory of each is measured separately) and prints every run and the median. Target of the first cut: under 5 minutes
on 2 CPU cores. Timings on shared machines are noisy: report the median.

    .venv/bin/python benchmarks/farm_pocket.py --runs 3 [--preset pocket]
"""
import argparse, json, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")
# GNU time is not always installed; measure the child's peak RSS with a tiny Python wrapper instead
WRAPPER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
           "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)")


def one_run(preset: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", WRAPPER, ALPACAFARM, "farm", "--preset", preset, "--out", d, "--no-progress"],
                           capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"farm failed:\n{r.stderr[-3000:]}")
        peak_kb = int(r.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
        res = json.loads((Path(d) / "results.json").read_text())
        return dict(wall_s=wall, peak_mb=peak_kb / 1024, stages=res["timings_s"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--preset", default="pocket")
    a = p.parse_args()
    runs = []
    for i in range(a.runs):
        runs.append(one_run(a.preset))
        r = runs[-1]
        print(f"run {i + 1}: wall {r['wall_s']:.1f} s, peak memory {r['peak_mb']:.0f} MB, stages {r['stages']}", flush=True)
    print(f"median of {a.runs}: wall {statistics.median(r['wall_s'] for r in runs):.1f} s, "
          f"peak memory {statistics.median(r['peak_mb'] for r in runs):.0f} MB "
          f"(preset {a.preset}; target < 300 s on 2 CPU cores)")


if __name__ == "__main__":
    main()
