"""End-to-end tests of `alpacafarm leaderboard`: it must reproduce the published AlpacaEval leaderboards exactly."""
import json, math, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")
COLUMNS = ["win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total", "discrete_win_rate", "avg_length"]
COUNTS = ["n_wins", "n_wins_base", "n_draws", "n_total", "avg_length"]
CASES = [("annotations_alpaca_eval_gpt4_dev.jsonl", "leaderboard_alpaca_eval_gpt4_dev.csv"),
         ("annotations_weighted_alpaca_eval_gpt4_turbo_dev.jsonl", "leaderboard_weighted_alpaca_eval_gpt4_turbo_dev.csv")]


def run(args, env, timeout=300):
    return subprocess.run([ALPACAFARM, "leaderboard", *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def check_against_published(ours: pd.DataFrame, pub: pd.DataFrame):
    assert sorted(ours.index) == sorted(pub.index)
    pub = pub.loc[ours.index]
    for c in ["win_rate", "standard_error", "discrete_win_rate"]:
        np.testing.assert_allclose(ours[c].to_numpy(float), pub[c].to_numpy(float), rtol=0, atol=1e-6, err_msg=c)
    for c in COUNTS:
        assert ours[c].astype(int).tolist() == pub[c].astype(int).tolist(), c
    assert list(ours["win_rate"]) == sorted(ours["win_rate"], reverse=True)  # sorted by win rate


@pytest.mark.parametrize("ann,lb", CASES)
def test_reproduces_published_leaderboard(shared, cli_env, tmp_path, ann, lb):
    out = tmp_path / "lb.csv"
    r = run([shared / "alpaca_eval" / ann, "--out", out], cli_env)
    assert r.returncode == 0, r.stderr[-3000:]
    ours = pd.read_csv(out, index_col=0)
    assert list(ours.columns) == COLUMNS
    check_against_published(ours, pd.read_csv(shared / "alpaca_eval" / lb, index_col=0))
    assert ours.index[0] in r.stdout.splitlines()[1]  # the printed table starts with the best model


def test_null_preference_is_counted_in_a_warning(shared, cli_env):
    r = run([shared / "alpaca_eval" / CASES[0][0]], cli_env)
    assert r.returncode == 0
    assert "text_davinci_001: dropped 1 of 805 preferences (1 null" in r.stderr


def test_row_order_and_file_split_do_not_matter(shared, cli_env, tmp_path):
    """Shuffled rows, split over a JSON list and a JSONL file: same leaderboard (grouping is by generator_2, not order)."""
    df = pd.read_json(shared / "alpaca_eval" / CASES[1][0], lines=True).sample(frac=1, random_state=3)
    half = len(df) // 2
    a, b = tmp_path / "a.json", tmp_path / "b.jsonl"
    a.write_text(df.iloc[:half].to_json(orient="records"))
    b.write_text(df.iloc[half:].to_json(orient="records", lines=True))
    out = tmp_path / "lb.csv"
    r = run([a, b, "--out", out], cli_env)
    assert r.returncode == 0, r.stderr[-3000:]
    check_against_published(pd.read_csv(out, index_col=0), pd.read_csv(shared / "alpaca_eval" / CASES[1][1], index_col=0))


def test_swapped_sides_are_not_the_same_leaderboard(shared, cli_env, tmp_path):
    """A file with output_1/output_2 exchanged (and preferences flipped) must give 100 - win rate, not the same table."""
    df = pd.read_json(shared / "alpaca_eval" / CASES[0][0], lines=True)
    df = df[df.generator_2 == "gpt4"]
    sw = df.rename(columns={"output_1": "output_2", "output_2": "output_1"})
    sw["preference"] = sw["preference"].map(lambda p: p if pd.isna(p) or p in (0, 1.5) else 3 - p)
    f = tmp_path / "sw.jsonl"; f.write_text(sw.to_json(orient="records", lines=True))
    out = tmp_path / "lb.csv"
    assert run([f, "--out", out], cli_env).returncode == 0
    ours = pd.read_csv(out, index_col=0)
    assert abs(ours.loc["gpt4", "win_rate"] - (100 - 95.27950310559004)) < 1e-6
    assert ours.loc["gpt4", "avg_length"] != 1365  # lengths are read from output_2, the model's side


def test_length_controlled_columns(shared, cli_env, tmp_path):
    ann, lb = CASES[1]
    out = tmp_path / "lb.csv"
    r = run([shared / "alpaca_eval" / ann, "--lc", "--out", out], cli_env)
    assert r.returncode == 0, r.stderr[-3000:]
    ours = pd.read_csv(out, index_col=0)
    assert list(ours.columns) == COLUMNS + ["length_controlled_winrate", "lc_standard_error"]
    pub = pd.read_csv(shared / "alpaca_eval" / lb, index_col=0).loc[ours.index]
    check_against_published(ours[COLUMNS], pub)
    # not exact (AlpacaEval's GLM uses leaderboard-wide instruction difficulties), but close
    assert (ours["length_controlled_winrate"] - pub["length_controlled_winrate"]).abs().max() < 10
    assert (ours["lc_standard_error"] > 0).all() and (ours["lc_standard_error"] < 10).all()


def _rows():
    return [dict(instruction=f"q{i}", output_1="ref", generator_1="r", output_2="out" * (i + 1), generator_2="m",
                 preference=[1, 2, 1.5][i % 3]) for i in range(6)]


@pytest.mark.parametrize("mutate,expect", [
    (lambda rows: rows[3].pop("generator_2"), "row 3, field 'generator_2'"),
    (lambda rows: rows[2].update(preference=3), "row 2, field 'preference'"),
    (lambda rows: rows[4].update(preference="B"), "row 4, field 'preference'"),
    (lambda rows: rows[1].pop("output_2"), "row 1, field 'output_2'"),
    (lambda rows: rows[5].update(instruction=None), "row 5, field 'instruction'"),
])
def test_bad_rows_give_a_clear_error(cli_env, tmp_path, mutate, expect):
    rows = _rows(); mutate(rows)
    f = tmp_path / "bad.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = run([f], cli_env, timeout=120)
    assert r.returncode != 0
    assert expect in r.stderr and str(f) in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("content,expect", [("", "empty"), ("{not json\n", "not valid JSON"), ('{"a": 1}', "expected a JSON list")])
def test_bad_files_give_a_clear_error(cli_env, tmp_path, content, expect):
    f = tmp_path / ("bad.jsonl" if "not json" in content else "bad.json")
    f.write_text(content)
    r = run([f], cli_env, timeout=120)
    assert r.returncode != 0 and expect in r.stderr and "Traceback" not in r.stderr
    r = run([tmp_path / "missing.json"], cli_env, timeout=120)
    assert r.returncode != 0 and "no such file" in r.stderr and "Traceback" not in r.stderr


def test_small_file_by_hand(cli_env, tmp_path):
    f = tmp_path / "a.json"
    f.write_text(json.dumps(_rows()))
    out = tmp_path / "lb.csv"
    assert run([f, "--out", out], cli_env, timeout=120).returncode == 0
    row = pd.read_csv(out, index_col=0).loc["m"]
    # prefs 1,2,1.5,1,2,1.5 -> x = 0,1,.5,0,1,.5
    assert math.isclose(row["win_rate"], 50.0)
    assert math.isclose(row["standard_error"], 100 * np.std([0, 1, .5, 0, 1, .5], ddof=1) / math.sqrt(6))
    assert [int(row[c]) for c in ["n_wins", "n_wins_base", "n_draws", "n_total"]] == [2, 2, 2, 6]
    assert int(row["avg_length"]) == int(np.mean([3 * (i + 1) for i in range(6)]))


def test_length_controlled_on_the_16_development_models(shared, cli_env, tmp_path):
    """AlpacaEval 2's 16 development models fitted jointly: the LC win rates rank like the published ones and are close."""
    from scipy.stats import spearmanr
    names = ["annotations_weighted_alpaca_eval_gpt4_turbo_dev.jsonl", "annotations_weighted_alpaca_eval_gpt4_turbo_lcdev.jsonl"]
    out = tmp_path / "lb.csv"
    r = run([shared / "alpaca_eval" / n for n in names] + ["--lc", "--out", out], cli_env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ours = pd.read_csv(out, index_col=0)
    pub = pd.concat([pd.read_csv(shared / "alpaca_eval" / n.replace("annotations_", "leaderboard_").replace(".jsonl", ".csv"), index_col=0)
                     for n in names]).loc[ours.index]
    assert len(ours) == 16
    check_against_published(ours[COLUMNS], pub)  # the plain win rates stay exact
    lc, lc_pub = ours["length_controlled_winrate"], pub["length_controlled_winrate"]
    assert spearmanr(lc, lc_pub).statistic >= 0.98
    assert (lc - lc_pub).abs().median() <= 0.5
    assert abs(lc["gpt4_gamed"] - lc_pub["gpt4_gamed"]) < 3   # very short answers: the length slope needs the regularisation
    assert lc["gpt4_1106_preview"] == 50.0 and ours.loc["gpt4_1106_preview", "lc_standard_error"] == 0.0


@pytest.mark.parametrize("args,expect", [
    (["--n-instructions", "0"], "--n-instructions must be a positive integer, got 0"),
    (["--n-instructions", "-5"], "--n-instructions must be a positive integer, got -5"),
    (["--n-instructions", "3"], "model 'm' was judged on 6 distinct instructions"),
    (["--difficulty", "d.csv"], "--difficulty is used only with --lc"),
])
def test_options_that_would_be_ignored_are_errors(cli_env, tmp_path, args, expect):
    f = tmp_path / "a.json"; f.write_text(json.dumps(_rows()))
    r = run([f, *args], cli_env, timeout=120)
    assert r.returncode == 2 and expect in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""


def test_length_controlled_on_too_few_rows_warns(cli_env, tmp_path):
    """A model with one or two rows cannot identify the GLM: among models that can, it gets no LC value (and no absurd
    standard error) and a clear warning; when no model has enough rows, --lc is an error naming the file (tests/test_errors.py)."""
    many = [dict(r, instruction=f"q{i}", output_2="x" * (i % 9 + 1), preference=[1, 2, 1.5, 2][i % 4])
            for i, r in enumerate(_rows() * 5)]                                     # 30 rows of m
    rows = many + [dict(r, generator_2="m2") for r in _rows()[:1]] + [dict(r, generator_2="m3") for r in _rows()[:2]]
    f = tmp_path / "a.json"; f.write_text(json.dumps(rows))
    out = tmp_path / "lb.csv"
    r = run([f, "--lc", "--out", out], cli_env, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "m3: only 2 judged rows; the length-controlled win rate needs at least 20" in r.stderr
    assert "m2: only 1 judged rows" in r.stderr
    lb = pd.read_csv(out, index_col=0)
    assert lb.loc[["m2", "m3"], "length_controlled_winrate"].isna().all() and lb.loc[["m2", "m3"], "lc_standard_error"].isna().all()
    assert lb.loc["m", ["length_controlled_winrate", "lc_standard_error"]].notna().all()


def test_difficulty_file(shared, cli_env, tmp_path):
    """--difficulty CSV: used with --lc (instructions joined in AlpacaEval form); a bad file is one line naming it."""
    from alpacafarm_nb.evaluate import instruction_difficulty
    ann = shared / "alpaca_eval" / CASES[0][0]
    d = tmp_path / "d.csv"
    instruction_difficulty(pd.read_json(ann, lines=True)).to_frame().to_csv(d)
    out = tmp_path / "lb.csv"
    r = run([ann, "--lc", "--difficulty", d, "--out", out], cli_env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "without a difficulty" not in r.stderr
    lb = pd.read_csv(out, index_col=0)
    assert lb["length_controlled_winrate"].between(5, 95).all()
    bad = tmp_path / "bad.csv"; bad.write_text("instruction,level\nq,1\n")
    r = run([ann, "--lc", "--difficulty", bad], cli_env)
    assert r.returncode == 2 and "field 'difficulty'" in r.stderr and str(bad) in r.stderr and "Traceback" not in r.stderr
