"""End-to-end: the main job `alpacafarm farm` (quick preset on every run; the full pocket preset checks the claims of the
AlpacaFarm design: SFT10k far above the pretrained base, the strong scripted systems above SFT10k, with both judges)."""
import io, json, os, re, signal, subprocess, sys, time
from pathlib import Path

import pandas as pd
import pytest

ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")


# the seed-change and kill tests check the stage logic: one sampling method and one RL method (with its checkpoints) cover it
# at a fraction of the cost of every method (the quick run fixture has every method)
SUBSET = "best_of_n,ppo"


def run_farm_cli(out, env, preset="pocket-quick", timeout=2400, extra=()):
    return subprocess.run([ALPACAFARM, "farm", "--preset", preset, "--out", str(out), "--no-progress", *extra],
                          capture_output=True, text=True, timeout=timeout, env=env)


def check_run_files(out):
    lb = pd.read_csv(out / "leaderboard.csv", index_col=0)
    res = json.loads((out / "results.json").read_text())
    assert res["schema_version"] == 2
    assert set(res["leaderboard"]) == {"pool", "humans"}
    for judge, rows in res["leaderboard"].items():
        for r in rows:
            assert 0 <= r["win_rate"] <= 100 and r["n_total"] > 0
    for rel in [*res["files"]["outputs"].values(), *(p for d in res["files"]["annotations"].values() for p in d.values())]:
        assert (out / rel).is_file(), rel
    page = (out / "report.html").read_text()
    # plotly.js is inline (works offline): no script is loaded from anywhere
    assert "<script" in page and "Plotly" in page and not re.search(r"<script[^>]*\bsrc=", page)
    return lb, res


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    "One pocket-quick farm run (seed 0) shared by the tests below; each test that changes it works on a copy."
    d = tmp_path_factory.mktemp("farm")
    env = dict(os.environ, ALPACAFARM_CACHE_PATH=str(d / "cache.sqlite"), ALPACAFARM_RUNS_DIR=str(d / "runs"))
    env.setdefault("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    r = run_farm_cli(d / "run", env)
    # the wall time of pocket-quick with every method, for the record (timings are noisy: no assertion)
    print(f"\npocket-quick farm (every method): {time.perf_counter() - t0:.0f} s, load average {os.getloadavg()}")
    assert r.returncode == 0, r.stderr[-3000:]
    return d / "run", r


def expected_method_rows():
    "(method, feedback) of every learned method of the default farm: both feedback sources, and greedy labels for PPO."
    from alpacafarm_nb.farm import FEEDBACK, EXTRA_FEEDBACK
    from alpacafarm_nb.registry import REGISTRY, default_methods
    return ({(m, fb) for m in default_methods() for fb in FEEDBACK}
            | {(m, fb) for m in default_methods() if REGISTRY[m].extra_feedback for fb in EXTRA_FEEDBACK})


def check_learned_methods(out, res):
    "methods.csv has a row per (method, feedback); every RL run's checkpoints are points of overoptimization.csv; ranking.json."
    from alpacafarm_nb.registry import REGISTRY
    methods = pd.read_csv(out / "methods.csv")
    pairs = set(zip(methods["method"], methods["feedback"]))
    assert expected_method_rows() <= pairs, expected_method_rows() - pairs
    assert ("ppo", "greedy") in pairs and ("dpo", "greedy") not in pairs          # greedy labels train PPO only
    assert not methods.duplicated(["method", "feedback"]).any()
    over = pd.read_csv(out / "overoptimization.csv")
    lb = pd.read_csv(out / "leaderboard.csv", index_col=0)
    for m, fb in expected_method_rows():
        if not REGISTRY[m].checkpoints: continue
        g = over[(over.method == m) & (over.feedback == fb)].sort_values("x")
        assert len(g) >= 2 and set(g["x_name"]) == {"step"} and g["kl"].notna().all() and g["proxy_reward"].notna().all(), (m, fb, g)
        sel = res["selected_checkpoints"][f"{m}_{fb}"]
        assert sel["step"] in set(g["x"]) and sel["judge"] == {"human": "humans"}.get(fb, "pool")
        # the method's row is the selected checkpoint: its win rates are that checkpoint's
        pt = g.set_index("x").loc[sel["step"]]
        row = methods.set_index(["method", "feedback"]).loc[(m, fb)]
        assert row["win_rate_pool"] == pt["win_rate_pool"] and row["win_rate_humans"] == pt["win_rate_humans"], (m, fb)
        assert lb.loc[f"{m}_{fb}_step{sel['step']}", "win_rate_humans"] == row["win_rate_humans"]
        assert (out / "val" / "outputs" / f"{m}_{fb}_step{sel['step']}.json").is_file()
    rank = json.loads((out / "ranking.json").read_text())
    assert rank == res["ranking"] and rank["n"] == len(rank["methods"])
    if rank["n"] >= 3 and "spearman" in rank:
        for k in ("spearman", "kendall", "pearson"):
            assert -1 <= rank[k]["value"] <= 1 and rank[k]["ci_low"] <= rank[k]["ci_high"]
    else: assert rank["note"].startswith("no correlation"), rank
    assert {r["method"] for r in rank["system_set"]["methods"]} >= {"sft10k", "base"}   # Figure 3's set adds the systems without feedback
    for name, st in res["stages"].items():
        if st["action"].startswith("ran"):
            assert 0 < st["peak_memory_mb"] <= res["peak_memory_mb"] and st["peak_memory_increase_mb"] >= 0, (name, st)
    assert res["peak_memory_mb"] < 4096
    # per-stage work (models.WORK): training stages train, sampling stages generate, scoring stages only run forwards
    work = {n: st["work"] for n, st in res["stages"].items()}
    assert work["sft10k"]["tokens"]["train"] > 0 and work["outputs_sft10k"]["tokens"]["generate"] > work["outputs_sft10k"]["generated_tokens"] > 0
    assert work["best_of_n_simulated"]["tokens"] == dict(generate=0, forward=work["best_of_n_simulated"]["tokens"]["forward"], train=0) \
        and work["best_of_n_simulated"]["tokens"]["forward"] > 0
    assert sum(work["world"]["tokens"].values()) == 0 and all(w["flops_per_s"] >= 0 for w in work.values())


def copy_run(quick_run, tmp_path):
    import shutil
    return Path(shutil.copytree(quick_run[0], tmp_path / "run"))


def test_farm_quick_files(quick_run, tmp_path, cli_env):
    out, _ = quick_run
    lb, res = check_run_files(out)
    assert {"base", "sft10k", "pocket_gpt4", "pocket_llama", "best_of_n_simulated", "expert_iteration_human"} <= set(lb.index)
    assert list(lb.columns) == ["win_rate_pool", "standard_error_pool", "win_rate_humans", "standard_error_humans", "n_total", "avg_length"]
    # the annotation files are AlpacaEval format: `alpacafarm leaderboard` reads them and agrees with the farm
    ann = out / res["files"]["annotations"]["pool"]["pocket_gpt4"]
    r2 = subprocess.run([ALPACAFARM, "leaderboard", str(ann), "--out", str(tmp_path / "lb.csv")], capture_output=True, text=True, env=cli_env)
    assert r2.returncode == 0, r2.stderr
    assert abs(pd.read_csv(tmp_path / "lb.csv", index_col=0).loc["pocket_gpt4", "win_rate"] - lb.loc["pocket_gpt4", "win_rate_pool"]) < 1e-9
    # the contracts of issue 8: methods.csv, overoptimization.csv, preference files, models and outputs per (method, feedback)
    methods = pd.read_csv(out / "methods.csv")
    from alpacafarm_nb.registry import METHODS_COLUMNS
    assert METHODS_COLUMNS == ["method", "feedback", "win_rate_pool", "standard_error_pool", "win_rate_humans", "standard_error_humans", "avg_length"]
    assert list(methods.columns) == METHODS_COLUMNS + [f"expected_{k}_{j}" for j in ("pool", "humans") for k in ("win_rate", "standard_error")] + [
        f"{p}_{j}{s}" for p in ("diff", "expected_diff") for j in ("pool", "humans") for s in ("", "_low", "_high")] + [
        f"lc_{k}_{j}" for j in ("pool", "humans") for k in ("win_rate", "standard_error")]
    # expected win rates (pocket judges know their probabilities) and paired differences from SFT10k on the same instructions
    m = methods.set_index(["method", "feedback"])
    for j in ("pool", "humans"):
        assert m[f"expected_win_rate_{j}"].between(0, 100).all() and (m[f"expected_standard_error_{j}"] > 0).all()
        assert (m[f"diff_{j}_low"] <= m[f"diff_{j}"]).all() and (m[f"diff_{j}"] <= m[f"diff_{j}_high"]).all()
        assert m.loc[("sft10k", "none"), [f"diff_{j}", f"expected_diff_{j}"]].tolist() == [0.0, 0.0]
        assert abs(m.loc[("pocket_gpt4", "none"), f"diff_{j}"] - (m.loc[("pocket_gpt4", "none"), f"win_rate_{j}"] - m.loc[("sft10k", "none"), f"win_rate_{j}"])) < 1e-9
    assert (out / "expected" / "pool" / "sft10k.json").is_file()
    # AlpacaEval 2's length-controlled win rate of every row, with its standard error
    assert m["lc_win_rate_pool"].between(0, 100).all() and (m["lc_standard_error_humans"] > 0).all()
    # what the annotations would have cost with real annotators (simulated): crowd labels are the dearest
    cost = res["annotation_cost"]
    assert cost["total"]["simulated"] and cost["total"]["price"] > 0
    assert cost["preferences"]["human"]["price"] > 10 * cost["preferences"]["simulated"]["price"] > 0
    pairs = set(zip(methods["method"], methods["feedback"]))
    assert {("sft10k", "none"), ("base", "none"), ("pocket_gpt4", "none")} <= pairs
    assert {(m, fb) for m in ("best_of_n", "expert_iteration") for fb in ("simulated", "human")} <= pairs
    row = methods.set_index(["method", "feedback"]).loc[("best_of_n", "simulated")]
    assert row["win_rate_pool"] == lb.loc["best_of_n_simulated", "win_rate_pool"]
    over = pd.read_csv(out / "overoptimization.csv")
    assert list(over.columns) == ["method", "feedback", "x_name", "x", "kl", "proxy_reward", "win_rate_pool", "win_rate_humans",
                                  "standard_error_pool", "standard_error_humans"]
    assert (over["standard_error_pool"] > 0).all()
    for fb in ("simulated", "human"):
        g = over[(over.method == "best_of_n") & (over.feedback == fb)].sort_values("x")
        assert list(g["x"]) == [1, 2, 4, 8] and g["kl"].iloc[0] == 0 and g["kl"].is_monotonic_increasing
        assert g["proxy_reward"].is_monotonic_increasing            # best-of-n raises the proxy reward by construction
        assert (out / "preferences" / f"{fb}.json").is_file() and (out / "outputs" / f"expert_iteration_{fb}.json").is_file()
    from transformers import AutoModelForSequenceClassification
    rm = AutoModelForSequenceClassification.from_pretrained(out / "models" / "reward_simulated")
    assert rm.config.num_labels == 1 and rm.config.pad_token_id is not None
    assert set(res["reward_models"]) == {"simulated", "human", "greedy"} and "accuracy" in res["reward_models"]["simulated"]["eval"]
    check_learned_methods(out, res)
    # one progress line per stage that ran, with an ETA
    lines = [l for l in quick_run[1].stderr.splitlines() if re.match(r"\[farm [0-9:]+\] \d+/\d+ ", l)]
    assert len(lines) == len(res["stages"]) and all("ETA ~" in l for l in lines if ": run (" in l), lines[:5]


def test_farm_rerun_skips_everything(quick_run, tmp_path, cli_env):
    """Re-running resumes: every stage is skipped, the results are the same, models are not retrained. A folder made with
    another torch version says so in one line (results.json's provenance)."""
    out = copy_run(quick_run, tmp_path)
    lb = pd.read_csv(out / "leaderboard.csv", index_col=0)
    mtime = (out / "stages" / "sft10k.json").stat().st_mtime
    res0 = json.loads((out / "results.json").read_text())
    assert {"cpu_model", "cpu_cores", "cpu_threads", "torch", "transformers", "accelerate", "git_commit"} <= set(res0["provenance"])
    res0["provenance"]["torch"] = "0.0.1"
    (out / "results.json").write_text(json.dumps(res0))
    r3 = run_farm_cli(out, cli_env)
    assert r3.returncode == 0, r3.stderr[-3000:]
    warn = [l for l in r3.stderr.splitlines() if "another CPU or library version" in l]
    assert len(warn) == 1 and "torch 0.0.1 -> " in warn[0], r3.stderr[-2000:]
    assert (out / "stages" / "sft10k.json").stat().st_mtime == mtime
    res = json.loads((out / "results.json").read_text())
    assert {v["action"] for v in res["stages"].values()} == {"skipped"}
    pd.testing.assert_frame_equal(pd.read_csv(out / "leaderboard.csv", index_col=0), lb)


def test_farm_killed_mid_run_resumes(tmp_path, cli_env):
    "Kill the job during training; the same command finishes the run."
    out = tmp_path / "run"
    p = subprocess.Popen([ALPACAFARM, "farm", "--preset", "pocket-quick", "--out", str(out), "--no-progress", "--methods", SUBSET],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "stages" / "base.json").exists():
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not (out / "results.json").exists()
    r = run_farm_cli(out, cli_env, extra=("--methods", SUBSET))
    assert r.returncode == 0, r.stderr[-3000:]
    check_run_files(out)


def test_farm_resumed_checkpoint_stage_resamples_stale_outputs(quick_run, tmp_path, cli_env):
    """A killed RL checkpoint stage keeps what it sampled only if it was sampled for exactly the current instructions: a val
    file with a repeated instruction (as older code wrote) and a truncated evaluation file are sampled again, and equal the
    first run's (sampling is seeded)."""
    out = copy_run(quick_run, tmp_path)
    stages = out / "stages"
    (stages / "checkpoints_ppo_simulated.json").rename(stages / "checkpoints_ppo_simulated.started.json")
    val_file, eval_file = out / "val" / "outputs" / "ppo_simulated_step1.json", out / "outputs" / "ppo_simulated_step2.json"
    val0, eval0 = json.loads(val_file.read_text()), json.loads(eval_file.read_text())
    val_file.write_text(json.dumps(val0 + val0[:1]))
    eval_file.write_text(json.dumps(eval0[:3]))
    r = run_farm_cli(out, cli_env, extra=("--methods", SUBSET))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "checkpoints_ppo_simulated: run (resuming an unfinished run)" in r.stderr
    assert json.loads(val_file.read_text()) == val0 and json.loads(eval_file.read_text()) == eval0


def test_farm_seed_change_redoes_seed_dependent_stages(quick_run, tmp_path, cli_env):
    """A run with --seed 1 into a seed-0 folder redoes every seed-dependent stage (says why) and reports exactly the numbers of
    a fresh seed-1 run; the world (seed-independent) is kept."""
    out, fresh = copy_run(quick_run, tmp_path), tmp_path / "fresh"
    lb0 = pd.read_csv(out / "leaderboard.csv", index_col=0)
    r = run_farm_cli(out, cli_env, extra=("--seed", "1", "--methods", SUBSET))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "base: redo (pretrain.seed 0 -> 1)" in r.stderr and "world: done before, skipped" in r.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["seed"] == 1
    assert res["stages"]["world"]["action"] == "skipped"
    assert all(v["action"].startswith("ran") for k, v in res["stages"].items() if k != "world"), res["stages"]
    lb1 = pd.read_csv(out / "leaderboard.csv", index_col=0)
    assert not lb1.equals(lb0)
    assert run_farm_cli(fresh, cli_env, extra=("--seed", "1", "--methods", SUBSET)).returncode == 0
    pd.testing.assert_frame_equal(lb1, pd.read_csv(fresh / "leaderboard.csv", index_col=0))
    for f in ("methods.csv", "overoptimization.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / f), pd.read_csv(fresh / f))


def test_farm_two_seeds(quick_run, tmp_path, cli_env):
    """`--seeds 0,1` on a seed-0 run folder: seed 0 retrains nothing (its stages keep their identities), seed 1 runs in seeds/seed_1;
    methods.csv holds means with seed SEs, methods_by_seed.csv every seed's rows, overoptimization.csv a seed column, ranking.json
    intervals over seeds and instructions."""
    out = copy_run(quick_run, tmp_path)
    before = (out / "methods.csv").read_text()
    r = run_farm_cli(out, cli_env, extra=("--seeds", "0,1", "--methods", "best_of_n,dpo,ppo"))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["seeds"] == [0, 1] and all(st["action"] == "skipped" for st in res["seed_runs"]["0"]["stages"].values())
    assert all(st["action"].startswith("ran") for st in res["seed_runs"]["1"]["stages"].values())
    assert (out / "seeds" / "seed_1" / "methods.csv").is_file() and (out / "report.html").is_file()
    by_seed, methods = pd.read_csv(out / "methods_by_seed.csv"), pd.read_csv(out / "methods.csv")
    assert list(by_seed.columns[:3]) == ["seed", "method", "feedback"] and set(by_seed["seed"]) == {0, 1}
    assert list(methods.columns[-3:]) == ["seed_se_pool", "seed_se_humans", "n_seeds"] and (methods["n_seeds"] == 2).all()
    g = by_seed.groupby(["method", "feedback"], sort=False)["win_rate_pool"]
    m = methods.set_index(["method", "feedback"])
    assert ((m["win_rate_pool"] - g.mean()).abs() < 1e-9).all() and ((m["seed_se_pool"] - g.std() / 2 ** 0.5).abs() < 1e-9).all()
    # seed 0's rows are the one-seed run's, to the last digit (its columns as they were)
    one = pd.read_csv(io.StringIO(before)).set_index(["method", "feedback"])
    zero = by_seed[by_seed.seed == 0].drop(columns="seed").set_index(["method", "feedback"])
    cols = ["win_rate_pool", "standard_error_pool", "win_rate_humans", "standard_error_humans", "avg_length", "diff_pool", "expected_win_rate_humans"]
    assert len(zero) >= 9 and zero[cols].equals(one.loc[zero.index, cols])
    over = pd.read_csv(out / "overoptimization.csv")
    assert set(over["seed"]) == {0, 1}
    rank = json.loads((out / "ranking.json").read_text())
    si = rank["seeds_and_instructions"]
    assert si["n_seeds"] == 2 and si["n"] == 3 and si["spearman"]["ci_low"] <= si["spearman"]["ci_high"]
    # AlpacaFarm's Figure 3 set: the 3 learned methods and every system trained on no feedback (its rows in methods.csv)
    unlearned = set(methods.loc[methods.feedback == "none", "method"])
    ss = rank["system_set"]
    assert {r["method"] for r in ss["methods"]} == {"best_of_n", "dpo", "ppo"} | unlearned and ss["n"] == 3 + len(unlearned)
    assert ss["seeds_and_instructions"]["n"] == ss["n"] and ss["seeds_and_instructions"]["n_seeds"] == 2
    assert res["annotation_cost"]["total"]["price"] > res["annotation_cost"]["per_seed"]["1"]["total"]["price"] > 0


def test_farm_preset_change_redoes_everything(quick_run, cli_env):
    "Another --preset into the same folder never mixes evaluations: the world's identity changes, so every stage is redone."
    out = quick_run[0]
    r = subprocess.run([ALPACAFARM, "farm", "--preset", "pocket", "--out", str(out), "--dry-run"], capture_output=True, text=True, env=cli_env)
    assert r.returncode == 0, r.stderr
    plan = dict(line.split(": ", 1) for line in r.stdout.strip().splitlines())
    # every stage of the quick run is redone; the full preset's extra systems are new ("run"); nothing is skipped
    assert plan["world"].startswith("redo (sizes") and "skip" not in plan.values(), plan
    assert all(plan[k].startswith("redo") for k in ("base", "sft10k", "outputs_sft10k", "evaluate_sft10k", "outputs_pocket_gpt4")), plan
    r = subprocess.run([ALPACAFARM, "farm", "--preset", "pocket-quick", "--out", str(out), "--dry-run"], capture_output=True, text=True, env=cli_env)
    assert set(dict(line.split(": ", 1) for line in r.stdout.strip().splitlines()).values()) == {"skip"}


def test_farm_bad_out_and_corrupt_stage_file(quick_run, tmp_path, cli_env):
    "--out that is a file: one line, exit 2, nothing done. A corrupt stage file: a warning, and that stage is redone."
    f = tmp_path / "afile"; f.write_text("x")
    r = run_farm_cli(f, cli_env)
    assert r.returncode == 2 and "is not a folder" in r.stderr and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    out = copy_run(quick_run, tmp_path)
    (out / "stages" / "outputs_pocket_gpt4.json").write_text('{"identity": "abc", "summ')
    r = run_farm_cli(out, cli_env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "unreadable" in r.stderr and "outputs_pocket_gpt4: run" in r.stderr and "sft10k: done before, skipped" in r.stderr


@pytest.mark.slow
def test_farm_pocket_full(tmp_path, cli_env):
    """The README's main job on the full pocket world: the leaderboard orders the systems as AlpacaFarm's Table 2 does.
    About an hour on 2 cores with every method at its proxy-chosen budget, so `slow` (pytest --runslow); benchmarks/farm_pocket.py times it."""
    out = tmp_path / "pocket"
    r = run_farm_cli(out, cli_env, preset="pocket", timeout=7200)
    assert r.returncode == 0, r.stderr[-3000:]
    lb, res = check_run_files(out)
    for judge in ("pool", "humans"):
        wr = lb[f"win_rate_{judge}"]
        assert wr["sft10k"] > wr["base"] + 10, (judge, wr.to_dict())      # SFT10k beats the pretrained base by a wide margin
        assert wr["pocket_gpt4"] > wr["sft10k"] and wr["pocket_chatgpt"] > wr["sft10k"], (judge, wr.to_dict())
        assert wr["pocket_gpt4"] > wr["pocket_llama"]
    check_learned_methods(out, res)
    print(lb.round(2).to_string())
    print(pd.read_csv(out / "methods.csv").round(2).to_string())
    print(json.dumps(res["timings_s"]), res["peak_memory_mb"])
    print(json.dumps({k: v["seconds"] for k, v in res["stages"].items()}))


def test_evaluate_reproduces_the_run_rows(quick_run, tmp_path, cli_env):
    """`alpacafarm evaluate` on a run's own outputs file gives that method's methods.csv row (win rates, expected win rates, paired
    differences from SFT10k) to the last digit, writing nothing into the run; a file that is not an outputs file: one line, exit 2."""
    out = quick_run[0]
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    src = tmp_path / "mine.json"                     # the run's DPO outputs under another generator name
    src.write_text(json.dumps([dict(r, generator="mine") for r in json.loads((out / "outputs" / "dpo_simulated.json").read_text())]))
    r = subprocess.run([ALPACAFARM, "evaluate", str(src), "--run", str(out), "--out", str(tmp_path / "e"), "--compare", "dpo_simulated",
                        "--no-progress"], capture_output=True, text=True, env=cli_env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "mine" in r.stdout and "dpo_simulated" in r.stdout and "sft10k" in r.stdout, r.stdout
    table = pd.read_csv(tmp_path / "e" / "evaluation.csv").set_index("output_set")
    row = pd.read_csv(out / "methods.csv").set_index(["method", "feedback"]).loc[("dpo", "simulated")]
    for c in ("win_rate_pool", "standard_error_pool", "win_rate_humans", "expected_win_rate_pool", "expected_win_rate_humans",
              "diff_pool", "diff_humans_low", "avg_length"):
        assert table.loc["mine", c] == row[c] == table.loc["dpo_simulated", c], c
    assert table.loc["sft10k", "diff_pool"] == 0
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before        # the run folder is only read
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instruction": "x", "input": ""}]))
    r = subprocess.run([ALPACAFARM, "evaluate", str(bad), "--run", str(out), "--out", str(tmp_path / "e2")], capture_output=True, text=True, env=cli_env)
    assert r.returncode == 2 and "bad.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
