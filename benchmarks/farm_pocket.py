"""Benchmark (not a test): wall time, per-stage seconds and peak memory of the README's main job, `alpacafarm farm --preset pocket`
(every learned method, both feedback sources, greedy-label PPO, every RL checkpoint evaluated).

Runs the job from scratch `--runs` times in fresh temporary folders (each run in its own process, so the peak resident
memory of each is measured separately) and prints every run, the median wall time and the median seconds of each stage.
Targets: the whole pocket farm under 30 minutes on 2 CPU cores (pocket-quick under 3), peak memory under 4 GB. Timings on shared machines are
noisy: report the median and the load average printed with it.

    .venv/bin/python benchmarks/farm_pocket.py --runs 2 [--preset pocket] [--methods dpo,ppo] [--keep DIR]

`--keep DIR` keeps each run's folder as DIR/run1, DIR/run2, ... (by default they are temporary and deleted).
"""
import argparse, contextlib, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")
# the targets: the whole pocket farm under 30 minutes, pocket-quick (CI's smoke table) under 3; both under 4 GB
TARGET_S, TARGET_MB = {'pocket': 30 * 60, 'pocket-quick': 3 * 60}, 4096
# GNU time is not always installed; measure the child's peak RSS with a tiny Python wrapper instead
WRAPPER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
           "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)")


def one_run(preset: str, methods: str | None, keep: Path | None = None) -> dict:
    with (tempfile.TemporaryDirectory() if keep is None else contextlib.nullcontext(str(keep))) as d:
        if keep is not None and keep.exists() and any(keep.iterdir()):
            sys.exit(f"{keep}: not empty; a benchmark run starts from an empty folder")
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        extra = ["--methods", methods] if methods else []
        r = subprocess.run([sys.executable, "-c", WRAPPER, ALPACAFARM, "farm", "--preset", preset, "--out", d, "--no-progress", *extra],
                           capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"farm failed:\n{r.stderr[-3000:]}")
        peak_kb = int(r.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
        res = json.loads((Path(d) / "results.json").read_text())
        return dict(wall_s=wall, peak_mb=peak_kb / 1024, groups=res["timings_s"], stages={k: v["seconds"] for k, v in res["stages"].items()},
                    load_before=load0, load_after=os.getloadavg())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--preset", default="pocket")
    p.add_argument("--methods", default=None, help="comma-separated learned methods (default: the farm's default, every method)")
    p.add_argument("--keep", type=Path, default=None, help="keep run i's folder as KEEP/run<i> (default: temporary folders)")
    a = p.parse_args()
    runs = []
    for i in range(a.runs):
        runs.append(one_run(a.preset, a.methods, None if a.keep is None else a.keep / f"run{i + 1}"))
        r = runs[-1]
        print(f"run {i + 1}: wall {r['wall_s']:.1f} s, peak memory {r['peak_mb']:.0f} MB, load average before {r['load_before']} "
              f"after {r['load_after']}\n  groups {r['groups']}", flush=True)
    print("median seconds per stage:")
    for name in runs[0]["stages"]:
        print(f"  {name:50s} {statistics.median(r['stages'].get(name, 0.0) for r in runs):8.1f}")
    wall, peak = statistics.median(r["wall_s"] for r in runs), statistics.median(r["peak_mb"] for r in runs)
    target_s = TARGET_S.get(a.preset)
    if target_s is None: target = f"no wall-time target for {a.preset}; memory < {TARGET_MB} MB: {'met' if peak < TARGET_MB else 'NOT met'}"
    else: target = f"target < {target_s // 60} min and < {TARGET_MB} MB on 2 CPU cores: {'met' if wall < target_s and peak < TARGET_MB else 'NOT met'}"
    print(f"median of {a.runs}: wall {wall:.1f} s ({wall / 60:.1f} min), peak memory {peak:.0f} MB (preset {a.preset}; {target})")


if __name__ == "__main__":
    main()
