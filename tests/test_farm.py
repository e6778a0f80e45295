"""End-to-end: the main job `alpacafarm farm` (quick preset on every run; the full pocket preset checks the claims of the
AlpacaFarm design: SFT10k far above the pretrained base, the strong scripted systems above SFT10k, with both judges)."""
import json, os, re, signal, subprocess, sys, time
from pathlib import Path

import pandas as pd
import pytest

ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")


def run_farm_cli(out, env, preset="pocket-quick", timeout=900, extra=()):
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


def test_farm_quick_and_resume(tmp_path, cli_env):
    out = tmp_path / "run"
    r = run_farm_cli(out, cli_env)
    assert r.returncode == 0, r.stderr[-3000:]
    lb, res = check_run_files(out)
    assert {"base", "sft10k", "pocket_gpt4", "pocket_llama"} <= set(lb.index)
    assert list(lb.columns) == ["win_rate_pool", "standard_error_pool", "win_rate_humans", "standard_error_humans", "n_total", "avg_length"]
    # the annotation files are AlpacaEval format: `alpacafarm leaderboard` reads them and agrees with the farm
    ann = out / res["files"]["annotations"]["pool"]["pocket_gpt4"]
    r2 = subprocess.run([ALPACAFARM, "leaderboard", str(ann), "--out", str(tmp_path / "lb.csv")], capture_output=True, text=True, env=cli_env)
    assert r2.returncode == 0, r2.stderr
    assert abs(pd.read_csv(tmp_path / "lb.csv", index_col=0).loc["pocket_gpt4", "win_rate"] - lb.loc["pocket_gpt4", "win_rate_pool"]) < 1e-9
    # re-running resumes: every stage is skipped, the results are the same, models are not retrained
    mtime = (out / "stages" / "sft10k.json").stat().st_mtime
    r3 = run_farm_cli(out, cli_env)
    assert r3.returncode == 0, r3.stderr[-3000:]
    assert (out / "stages" / "sft10k.json").stat().st_mtime == mtime
    assert set(json.loads((out / "results.json").read_text())["stages"][n]["action"] for n in res["stages"]) == {"skipped"}
    pd.testing.assert_frame_equal(pd.read_csv(out / "leaderboard.csv", index_col=0), lb)


def test_farm_killed_mid_run_resumes(tmp_path, cli_env):
    "Kill the job during training; the same command finishes the run."
    out = tmp_path / "run"
    p = subprocess.Popen([ALPACAFARM, "farm", "--preset", "pocket-quick", "--out", str(out), "--no-progress"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "stages" / "base.json").exists():
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not (out / "results.json").exists()
    r = run_farm_cli(out, cli_env)
    assert r.returncode == 0, r.stderr[-3000:]
    check_run_files(out)


def test_farm_seed_change_redoes_seed_dependent_stages(tmp_path, cli_env):
    """A run with --seed 1 into a seed-0 folder redoes every seed-dependent stage (says why) and reports exactly the numbers of
    a fresh seed-1 run; the world (seed-independent) is kept."""
    out, fresh = tmp_path / "run", tmp_path / "fresh"
    assert run_farm_cli(out, cli_env).returncode == 0
    lb0 = pd.read_csv(out / "leaderboard.csv", index_col=0)
    r = run_farm_cli(out, cli_env, extra=("--seed", "1"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "base: redo (pretrain.seed 0 -> 1)" in r.stderr and "world: done before, skipped" in r.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["seed"] == 1
    assert res["stages"]["world"]["action"] == "skipped"
    assert all(v["action"].startswith("ran") for k, v in res["stages"].items() if k != "world"), res["stages"]
    lb1 = pd.read_csv(out / "leaderboard.csv", index_col=0)
    assert not lb1.equals(lb0)
    assert run_farm_cli(fresh, cli_env, extra=("--seed", "1")).returncode == 0
    pd.testing.assert_frame_equal(lb1, pd.read_csv(fresh / "leaderboard.csv", index_col=0))


def test_farm_preset_change_redoes_everything(tmp_path, cli_env):
    "Another --preset into the same folder never mixes evaluations: the world's identity changes, so every stage is redone."
    out = tmp_path / "run"
    assert run_farm_cli(out, cli_env).returncode == 0
    r = subprocess.run([ALPACAFARM, "farm", "--preset", "pocket", "--out", str(out), "--dry-run"], capture_output=True, text=True, env=cli_env)
    assert r.returncode == 0, r.stderr
    plan = dict(line.split(": ", 1) for line in r.stdout.strip().splitlines())
    assert plan["world"].startswith("redo (sizes") and all(v.startswith("redo") for v in plan.values()), plan
    r = subprocess.run([ALPACAFARM, "farm", "--preset", "pocket-quick", "--out", str(out), "--dry-run"], capture_output=True, text=True, env=cli_env)
    assert set(dict(line.split(": ", 1) for line in r.stdout.strip().splitlines()).values()) == {"skip"}


def test_farm_pocket_full(tmp_path, cli_env):
    "The README's main job on the full pocket world: the leaderboard orders the systems as AlpacaFarm's Table 2 does."
    out = tmp_path / "pocket"
    r = run_farm_cli(out, cli_env, preset="pocket", timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    lb, res = check_run_files(out)
    for judge in ("pool", "humans"):
        wr = lb[f"win_rate_{judge}"]
        assert wr["sft10k"] > wr["base"] + 10, (judge, wr.to_dict())      # SFT10k beats the pretrained base by a wide margin
        assert wr["pocket_gpt4"] > wr["sft10k"] and wr["pocket_chatgpt"] > wr["sft10k"], (judge, wr.to_dict())
        assert wr["pocket_gpt4"] > wr["pocket_llama"]
    print(lb.round(2).to_string())
    print(json.dumps(res["timings_s"]), res["peak_memory_mb"])
