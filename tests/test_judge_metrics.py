"""End-to-end tests of `alpacafarm judge-metrics` on the real GPT-4 cross-annotations and on hand-made files."""
import json, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")
CROSS = "crossannotation_pairs_gpt4_seeds.jsonl"


def run(args, env, timeout=300):
    return subprocess.run([ALPACAFARM, "judge-metrics", *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def independent_variance(df: pd.DataFrame, annotator: str) -> float:
    """Straightforward re-implementation for binary labels and an odd number of other repeats (no ties)."""
    g = df[df.annotator == annotator]
    t = g.pivot_table(index=["instruction", "input", "output_1", "output_2"], columns="seed", values="preference", aggfunc="first")
    agree = []
    for s in t.columns:
        others = t.drop(columns=s)
        maj = np.where((others == 2).sum(axis=1) > (others == 1).sum(axis=1), 2, 1)
        agree.append((t[s].to_numpy() == maj).mean())
    return 1 - float(np.mean(agree))


def test_crossannotation_metrics(shared, cli_env, tmp_path):
    out = tmp_path / "m.csv"
    r = run([shared / "alpaca_eval" / CROSS, "--repeat-key", "seed", "--out", out], cli_env)
    assert r.returncode == 0, r.stderr[-3000:]
    m = pd.read_csv(out, index_col=0)
    assert list(m.index) == ["gpt4_b1", "gpt4_b5"]
    assert list(m.columns) == ["variance", "proba_prefer_longer", "proba_prefer_lists", "n_parsed",
                               "price_per_1000_examples", "time_per_1000_examples", "n_pairs", "n_repeats"]
    assert m["n_pairs"].tolist() == [648, 648] and m["n_repeats"].tolist() == [4, 4] and m["n_parsed"].tolist() == [2592, 2592]
    df = pd.read_json(shared / "alpaca_eval" / CROSS, lines=True)
    for a in m.index:
        assert abs(m.loc[a, "variance"] - independent_variance(df, a)) < 1e-12
        g = df[df.annotator == a]
        assert abs(m.loc[a, "price_per_1000_examples"] - 1000 * g.price_per_example.mean()) < 1e-9
        assert abs(m.loc[a, "time_per_1000_examples"] - 1000 * g.time_per_example.mean()) < 1e-9
        # longer-output bias on the first seed, computed directly
        f = g[g.seed == g.seed.min()]
        l1, l2 = f.output_1.str.len(), f.output_2.str.len()
        keep = (l1 - l2).abs() > 30
        longer = np.where(l2 > l1, 2, 1)
        assert abs(m.loc[a, "proba_prefer_longer"] - (f.preference.to_numpy()[keep] == longer[keep]).mean()) < 1e-12
    assert ((m["variance"] > 0.05) & (m["variance"] < 0.4)).all()
    assert ((m["proba_prefer_longer"] > 0.5) & (m["proba_prefer_lists"] > 0.5)).all()


def test_swapped_repeat_is_the_same_pair(shared, cli_env, tmp_path):
    """Showing some pairs in the other order (outputs exchanged, preference flipped) changes nothing."""
    df = pd.read_json(shared / "alpaca_eval" / CROSS, lines=True)
    sw = df.copy()
    idx = sw.index[(sw.seed == 2)][::3]
    sw.loc[idx, ["output_1", "output_2"]] = sw.loc[idx, ["output_2", "output_1"]].to_numpy()
    sw.loc[idx, "preference"] = 3 - sw.loc[idx, "preference"]
    f = tmp_path / "sw.jsonl"; f.write_text(sw.to_json(orient="records", lines=True))
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert run([shared / "alpaca_eval" / CROSS, "--repeat-key", "seed", "--out", a], cli_env).returncode == 0
    assert run([f, "--repeat-key", "seed", "--out", b], cli_env).returncode == 0
    pd.testing.assert_frame_equal(pd.read_csv(a, index_col=0), pd.read_csv(b, index_col=0))


def _crowd_rows():
    crowd = [[1, 1, 2], [2, 2, 2], [1, 2, 1], [2, 1, 2]]
    rows = []
    for k, hs in enumerate(crowd):
        base = dict(instruction=f"q{k}", input="", output_1=f"o1-{k}", output_2=f"o2-{k}")
        rows += [dict(base, annotator="humans", seed=f"h{s}", preference=p) for s, p in enumerate(hs)]
        maj = 1 if hs.count(1) > 1 else 2
        rows += [dict(base, annotator="copy", seed=0, preference=maj), dict(base, annotator="contrarian", seed=0, preference=3 - maj)]
    return rows


def test_reference_annotator(cli_env, tmp_path):
    f = tmp_path / "c.json"; f.write_text(json.dumps(_crowd_rows()))
    out = tmp_path / "m.csv"
    r = run([f, "--repeat-key", "seed", "--reference-annotator", "humans", "--out", out], cli_env, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    m = pd.read_csv(out, index_col=0)
    assert abs(m.loc["copy", "agreement_with_reference"] - 0.75) < 1e-12      # leave-one-out, hand computed
    assert abs(m.loc["contrarian", "agreement_with_reference"] - 0.25) < 1e-12
    assert abs(m.loc["humans", "agreement_with_reference"] - (1 - m.loc["humans", "variance"])) < 1e-12


@pytest.mark.parametrize("args,mutate,expect", [
    (["--repeat-key", "seed"], lambda rows: rows[3].pop("seed"), "row 3, field 'seed'"),
    ([], lambda rows: rows[2].pop("annotator"), "row 2, field 'annotator'"),
    ([], lambda rows: rows[1].update(preference=5), "row 1, field 'preference'"),
    (["--reference-annotator", "nobody"], lambda rows: None, "'nobody' has no annotations"),
])
def test_bad_input(cli_env, tmp_path, args, mutate, expect):
    rows = _crowd_rows(); mutate(rows)
    f = tmp_path / "bad.jsonl"; f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = run([f, *args], cli_env, timeout=120)
    assert r.returncode != 0 and expect in r.stderr and "Traceback" not in r.stderr


def test_list_definitions_reproduce_alpaca_eval(shared, cli_env, tmp_path):
    """Default: today's AlpacaEval `contains_list` (39 of 53 pairs for gpt4_b1). `alpaca_eval_2023`: the May-2023
    unanchored patterns, which give the published evaluator-leaderboard value 0.5893 (66 of 112); nothing else changes."""
    tables = {}
    for definition in [None, "alpaca_eval_2023"]:
        out = tmp_path / f"{definition}.csv"
        r = run([shared / "alpaca_eval" / CROSS, "--repeat-key", "seed", "--out", out]
                + (["--list-definition", definition] if definition else []), cli_env)
        assert r.returncode == 0, r.stderr[-3000:]
        tables[definition] = pd.read_csv(out, index_col=0)
    now, old = tables[None], tables["alpaca_eval_2023"]
    assert abs(now.loc["gpt4_b1", "proba_prefer_lists"] - 39 / 53) < 1e-12
    assert abs(old.loc["gpt4_b1", "proba_prefer_lists"] - 66 / 112) < 1e-12
    b1 = old.loc["gpt4_b1"]
    assert [round(b1[c], 4) for c in ["variance", "proba_prefer_longer", "proba_prefer_lists"]] == [0.1493, 0.6, 0.5893]
    assert [int(b1[c]) for c in ["n_parsed", "n_pairs", "n_repeats"]] == [2592, 648, 4]
    pd.testing.assert_frame_equal(now.drop(columns="proba_prefer_lists"), old.drop(columns="proba_prefer_lists"))
    # an independent reading of both definitions on the first seed (no canonical ordering, AlpacaEval's own procedure)
    import re
    df = pd.read_json(shared / "alpaca_eval" / CROSS, lines=True)
    first = df[(df.annotator == "gpt4_b1") & (df.seed == 0)]
    best = np.where(first.preference == 1, first.output_1, first.output_2)
    worse = np.where(first.preference == 1, first.output_2, first.output_1)
    today = [r"(?m)^\s*[*•-]\s*\W*\w", r"(?m)^\s*\d+[.)]\s*\W*\w", r"(?m)^\s*[a-zA-Z][.)]\s+\W*\w"]
    may_2023 = [r"\s*[•*]\s*\w", r"\s*\d+[.)]\s*\w", r"\s*[a-zA-Z][.)]\s*\w"]
    for pats, table in [(today, now), (may_2023, old)]:
        has = lambda t: any(re.search(p, t) for p in pats)
        b, w = np.array([has(t) for t in best]), np.array([has(t) for t in worse])
        assert abs(table.loc["gpt4_b1", "proba_prefer_lists"] - (b & ~w).sum() / (b != w).sum()) < 1e-12


def test_unknown_list_definition_is_one_line(cli_env, tmp_path):
    f = tmp_path / "c.json"; f.write_text(json.dumps(_crowd_rows()))
    r = run([f, "--list-definition", "mine"], cli_env, timeout=120)
    assert r.returncode == 2 and "invalid choice: 'mine'" in r.stderr and "Traceback" not in r.stderr
