"""Benchmark (not a test): wall time, per-stage seconds and peak memory of the README's main job, `alpacafarm farm --preset pocket`
(every learned method, both feedback sources, greedy-label PPO, every RL checkpoint evaluated).

Runs the job from scratch `--runs` times in fresh temporary folders (each run in its own process, so the peak resident
memory of each is measured separately) and prints every run, the median wall time and the median seconds of each stage.

It first measures this machine's fp32 matmul peak (`matmul_peak.measure`, a few seconds, with the thread count the farm will use)
and ends with a per-stage table: seconds, the tokens each stage pushed through models (`gen`: the sampler's prefill and decode
forwards; `fwd`: other forward-only passes, i.e. scoring, reference log-probs, evaluation; `train`: forward + backward), tokens/s,
achieved GFLOP/s (analytic: 2 N FLOPs per forward token, 6 N per trained token, N the model's matmul weights; see
`models.WORK`) and its fraction of the measured peak. `--from-run DIR` prints that table for an existing run folder instead
(from its results.json; a run made before the accounting existed has seconds only).
Targets (issue 19): the whole pocket farm at its proxy-chosen budgets in 20 minutes or less on 2 CPU cores (pocket-quick under 3), peak memory under 4 GB. Timings on shared machines are
noisy: report the median and the load average printed with it.

    .venv/bin/python benchmarks/farm_pocket.py --runs 2 [--preset pocket] [--methods dpo,ppo] [--keep DIR]
    .venv/bin/python benchmarks/farm_pocket.py --from-run /work/runs/after-pocket

`--keep DIR` keeps each run's folder as DIR/run1, DIR/run2, ... (by default they are temporary and deleted).
"""
import argparse, contextlib, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from matmul_peak import measure

ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")
# issue 19's targets: the whole pocket farm in 20 minutes or less, pocket-quick (CI's smoke table) under 3; both under 4 GB
TARGET_S, TARGET_MB = {'pocket': 20 * 60, 'pocket-quick': 3 * 60}, 4096
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
                    work={k: v["work"] for k, v in res["stages"].items() if "work" in v}, load_before=load0, load_after=os.getloadavg())


def farm_threads() -> int:
    "The threads torch will use in the farm's process: OMP_NUM_THREADS when set, else torch's default (the cores)."
    import torch
    return int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads())


def measured_peak(threads: int) -> float:
    "This machine's fp32 matmul peak in FLOP/s on `threads` threads (3 runs of 3 sizes, a few seconds)."
    return measure(threads=(threads,), sizes=(256, 512, 1024), runs=3, min_seconds=0.3)["peak_gflops"][str(threads)] * 1e9


def work_table(stages: dict, work: dict, peak_flops: float | None) -> str:
    """One line per stage: seconds, tokens by kind (k = thousands), tokens/s, achieved GFLOP/s and its % of `peak_flops`;
    `stages` {name: seconds}, `work` {name: results.json's stages[name]['work']} (stages without work show seconds only)."""
    head = f"  {'stage':44s} {'seconds':>8s} {'gen k':>8s} {'fwd k':>8s} {'train k':>8s} {'tok/s':>8s} {'GFLOP/s':>8s} {'% peak':>7s}"
    lines, tot_s, tot_f = [head], 0.0, 0.0
    for name, sec in stages.items():
        w = work.get(name)
        tot_s += sec
        if not w or sec <= 0 or not sum(w["tokens"].values()):         # no model work (the world, annotation, scripted systems)
            lines.append(f"  {name:44s} {sec:8.1f}"); continue
        t, flops = w["tokens"], w["total_flops"]
        tot_f += flops
        frac = f"{100 * flops / sec / peak_flops:6.1f}%" if peak_flops else "      -"
        lines.append(f"  {name:44s} {sec:8.1f} {t['generate'] / 1e3:8.1f} {t['forward'] / 1e3:8.1f} {t['train'] / 1e3:8.1f} "
                     f"{sum(t.values()) / sec:8.0f} {flops / sec / 1e9:8.2f} {frac}")
    if work and tot_s > 0:
        frac = f"{100 * tot_f / tot_s / peak_flops:6.1f}%" if peak_flops else "      -"
        lines.append(f"  {'all stages':44s} {tot_s:8.1f} {'':8s} {'':8s} {'':8s} {'':8s} {tot_f / tot_s / 1e9:8.2f} {frac}")
    if not work: lines.append("  (no work recorded: a run made before the per-stage accounting; rerun the farm for tokens and FLOP/s)")
    return "\n".join(lines)


def _stages(folder: Path) -> tuple[dict, dict]:
    res = json.loads((folder / "results.json").read_text())
    return res, res.get("stages") or res["seed_runs"][str(res["seed"])]["stages"]


def from_run(folder: Path, peak_flops: float | None, work_from: Path | None = None):
    """The table of a run folder; with `work_from`, the tokens and FLOPs of that other run folder's stages (valid when both ran the
    same stages on the same data, e.g. a run at the code before a speed-up that changes no result) over `folder`'s seconds."""
    res, st = _stages(folder)
    if work_from is not None:
        other = _stages(work_from)[1]
        st = {k: dict(v, work=other[k]["work"]) if "work" in other.get(k, {}) else v for k, v in st.items()}
        print(f"(tokens and FLOPs of {work_from}, seconds of {folder})")
    print(f"{folder}: preset {res.get('preset')}, commit {(res.get('provenance') or {}).get('git_commit')}; per-stage work "
          f"(peak {peak_flops / 1e9:.1f} GFLOP/s measured now, on this machine):" if peak_flops else f"{folder}: per-stage work:")
    print(work_table({k: v["seconds"] for k, v in st.items()}, {k: v["work"] for k, v in st.items() if "work" in v}, peak_flops))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--preset", default="pocket")
    p.add_argument("--methods", default=None, help="comma-separated learned methods (default: the farm's default, every method)")
    p.add_argument("--keep", type=Path, default=None, help="keep run i's folder as KEEP/run<i> (default: temporary folders)")
    p.add_argument("--from-run", type=Path, default=None, help="only print the per-stage work table of this existing run folder")
    p.add_argument("--work-from", type=Path, default=None, help="with --from-run: take the tokens and FLOPs from this run folder "
                   "(one with the accounting, same preset and results) and the seconds from --from-run's (a run made before the accounting)")
    p.add_argument("--no-peak", action="store_true", help="do not measure the matmul peak (no %% of peak in the table)")
    a = p.parse_args()
    threads = farm_threads()
    peak = None if a.no_peak else measured_peak(threads)
    if peak: print(f"measured fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s on {threads} thread(s), load average {os.getloadavg()}", flush=True)
    if a.from_run is not None:
        if not (a.from_run / "results.json").is_file(): sys.exit(f"{a.from_run}: no results.json (not a farm run folder)")
        return from_run(a.from_run, peak, a.work_from)
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
    med = {n: statistics.median(r["stages"].get(n, 0.0) for r in runs) for n in runs[0]["stages"]}
    work = {}
    for n in med:          # the work of the run whose seconds for this stage are closest to the median (its rates match its seconds)
        have = [r for r in runs if n in r["work"]]
        if have: work[n] = min(have, key=lambda r: abs(r["stages"][n] - med[n]))["work"][n]
    print("per-stage work (median seconds):\n" + work_table(med, work, peak))
    print(f"median of {a.runs}: wall {wall:.1f} s ({wall / 60:.1f} min), peak memory {peak:.0f} MB (preset {a.preset}; {target})")


if __name__ == "__main__":
    main()
