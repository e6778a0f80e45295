"""Errors a user can act on: a configuration that no retry can fix, and input the evaluator cannot rank, fail before any
work with one line on stderr (exit 2, no traceback) naming the variable, file or key. A pool where only some judges cannot
work goes on, and says in one line which judges and why (not a Python warning with a source line)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from openai_server import FakeJudgeServer

ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")


def cli(args, env, timeout=120):
    return subprocess.run([ALPACAFARM, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def one_line_error(r, *names):
    "Exit 2, exactly one line on stderr, no traceback, every name in it."
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert len(lines) == 1 and "Traceback" not in r.stderr and "Warning" not in r.stderr, r.stderr[-3000:]
    for n in names: assert str(n) in lines[0], (n, lines[0])
    return lines[0]


def pairs_file(tmp_path, n=6):
    rows = [dict(instruction=f"Q{i}?", input="", output_1="a" * (i + 2), output_2="b" * (9 - i), generator_1="m1",
                 generator_2="m2") for i in range(n)]
    p = tmp_path / "pairs.json"; p.write_text(json.dumps(rows))
    return p


# ---- annotation: configurations that no retry can fix

def test_no_api_key_for_any_judge(tmp_path, cli_env):
    env = {k: v for k, v in cli_env.items() if k != "OPENAI_API_KEY"}
    r = cli(["annotate", "--pairs", pairs_file(tmp_path), "--annotator", "alpacafarm_v1", "--out", tmp_path / "a.json"], env)
    line = one_line_error(r, "OPENAI_API_KEY", "alpacafarm_v1")
    assert "no annotator of pool" in line and "re-run" not in line
    assert not (tmp_path / "a.json").exists()


def test_no_api_key_for_some_judges(tmp_path, cli_env):
    "The pool goes on with the judges that can work; one line says which cannot and why; no Python warning."
    with FakeJudgeServer() as srv:
        (tmp_path / "pool.yaml").write_text(f"""name: half
defaults: {{backend: openai, template: greedy, timeout: 2, backoff_base: 0.01}}
annotators:
  - {{name: local, model: m, base_url: "{srv.base_url}"}}
  - {{name: remote, model: m, base_url: "https://judge.example.invalid/v1", api_key_env: NO_SUCH_KEY_FOR_THE_TEST}}
""")
        env = {k: v for k, v in cli_env.items() if k != "NO_SUCH_KEY_FOR_THE_TEST"}
        r = cli(["annotate", "--pairs", pairs_file(tmp_path, 40), "--annotator", tmp_path / "pool.yaml", "--no-progress",
                 "--out", tmp_path / "a.json"], env)
    assert r.returncode == 1, r.stderr[-3000:]                                  # the remote judge's pairs are missing
    said = [l for l in r.stderr.splitlines() if "cannot work" in l]
    assert len(said) == 1 and "remote" in said[0] and "NO_SUCH_KEY_FOR_THE_TEST" in said[0], r.stderr
    assert "Warning" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    rows = json.loads((tmp_path / "a.json").read_text())
    assert {r["annotator"] for r in rows if r["preference"] is not None} == {"local"}


def test_unimportable_judge_function_names_the_file_and_key(tmp_path, cli_env):
    pool = tmp_path / "pool.yaml"
    pool.write_text("name: bad\nannotators:\n  - {name: x, backend: python, function: 'no_such_module:judge'}\n")
    r = cli(["annotate", "--pairs", pairs_file(tmp_path), "--annotator", pool], cli_env)
    one_line_error(r, pool, "'function'", "no_such_module:judge", "annotator 'x'")


def test_unknown_model(tmp_path, cli_env):
    "A model the server does not have (HTTP 404 for every judge of the pool): no retry can fix it."
    with FakeJudgeServer(models=["good-model"]) as srv:
        r = cli(["annotate", "--pairs", pairs_file(tmp_path), "--annotator", "greedy", "--base-url", srv.base_url,
                 "--model", "no-such-model", "--no-progress"], cli_env)
    one_line_error(r, "no-such-model", "404")


def test_unknown_pool(tmp_path, cli_env):
    r = cli(["annotate", "--pairs", pairs_file(tmp_path), "--annotator", "no_such_pool"], cli_env)
    one_line_error(r, "no_such_pool")


# ---- the evaluator: input it cannot rank

def annotations(tmp_path, prefs, g2="m", n=None):
    rows = [dict(instruction=f"q{i}", input="", output_1="ref", generator_1="ref", output_2="x" * (i % 7 + 1),
                 generator_2=g2, preference=p) for i, p in enumerate(prefs)]
    f = tmp_path / "ann.json"; f.write_text(json.dumps(rows))
    return f


@pytest.mark.parametrize("prefs,g2,lc,expect", [
    ([None] * 30, "m", True, "no usable preference: all 30 are null"),            # was a pandas KeyError
    ([None] * 30, "m", False, "no usable preference"),                            # was a table of NaN, exit 0
    ([1.5] * 30, "m", True, "every usable preference (30) is a tie"),
    ([2.0], "m", True, "needs at least 20 judged rows per model; the most any model has is 1"),
    ([1.0, 2.0] * 15, "ref", False, "compares 'ref' with itself"),
], ids=["all-null-lc", "all-null", "all-ties-lc", "one-row-lc", "one-model"])
def test_degenerate_leaderboard_input(tmp_path, cli_env, prefs, g2, lc, expect):
    f = annotations(tmp_path, prefs, g2)
    r = cli(["leaderboard", f] + (["--lc"] if lc else []), cli_env)
    one_line_error(r, f, expect)
