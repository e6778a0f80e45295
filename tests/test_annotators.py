"""`alpacafarm annotate` end to end against a real OpenAI-compatible HTTP server (tests/openai_server.py) started here:
30% faulty requests, a SIGKILLed run resumed with a count of billed calls, concurrent processes on one cache,
API keys never written, a budget cap, and the 805 shared evaluation instructions with the greedy judge + leaderboard."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import warnings

from alpacafarm_nb.annotators import AnnotatorPool, annotate_pairs
from alpacafarm_nb.core import read_records, write_records
from openai_server import FakeJudgeServer, longer_wins

ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")

# greedy, with short timeouts and backoff so that faults cost little test time (Retry-After still honoured, capped at 1 s)
FAST_POOL = """name: greedy_fast
models: {strong: gpt-4o}
prices: {gpt-4o: {input: 2.5, output: 10.0}}
defaults: {backend: openai, api_key_env: OPENAI_API_KEY, timeout: 1.5, max_retries: 12, backoff_base: 0.02,
           backoff_max: 0.3, retry_after_max: 1.0}
annotators:
  - {name: greedy, model: strong, template: greedy, batch_size: 1, temperature: 0.0, max_tokens: 16}
"""


def make_pairs(n):
    """n distinct pairs, every third with an input; lengths differ so the simulated judge (longer wins) is unambiguous."""
    out = []
    for i in range(n):
        l1 = 12 + (i * 7) % 31
        l2 = l1 + (1 + i % 5) * (1 if i % 2 else -1)
        out.append(dict(instruction=f"Question {i}: explain item {i}.", input=f"context {i}" if i % 3 == 0 else "",
                        output_1="a" * l1, output_2="b" * max(l2, 1), generator_1="m1", generator_2="m2"))
    return out


def expected(p):
    return 2.0 if len(p["output_2"]) > len(p["output_1"]) else 1.0


def pair_id(ex):
    """A pair regardless of the order it was shown in."""
    return (ex["instruction"], ex.get("input") or "", frozenset([ex["output_1"], ex["output_2"]]))


@pytest.fixture
def pool_yaml(tmp_path):
    p = tmp_path / "greedy_fast.yaml"
    p.write_text(FAST_POOL)
    return p


def run_cli(args, env, timeout=300):
    return subprocess.run([ALPACAFARM, "annotate", *args, "--no-progress"], capture_output=True, text=True, env=env, timeout=timeout)


def cached_rows(path, polling=False):
    """The pairs (as shown) in an annotation cache; while polling a starting run, a cache not yet created reads as empty."""
    try:
        con = sqlite3.connect(str(path), timeout=30)
        try:
            return [json.loads(e) for (e,) in con.execute("SELECT example FROM annotations")]
        finally:
            con.close()
    except sqlite3.OperationalError:
        if polling:
            return []
        raise


# the default retry budget (max_retries 6, as in greedy.yaml), short timeouts so that a hung request costs 1 s
FAULT_POOL = FAST_POOL.replace("max_retries: 12", "max_retries: 6").replace("timeout: 1.5", "timeout: 1.0")


@pytest.mark.parametrize("n", [400])
def test_30_percent_faults_every_pair_annotated_in_one_run(tmp_path, cli_env, n):
    """30% of requests fail (429 with Retry-After, 500, hung, non-JSON body, empty or truncated reply): one run annotates
    every pair, each billed once; transport garbage is retried like a 500, never charged to the parse budget."""
    (tmp_path / "pool.yaml").write_text(FAULT_POOL)
    pairs = make_pairs(n)
    write_records(pairs, tmp_path / "pairs.jsonl")
    rates = {"429": 0.05, "500": 0.05, "hang": 0.05, "nonjson": 0.05, "empty": 0.05, "truncated": 0.05}   # 30% of requests fail
    with FakeJudgeServer(fault_rates=rates, fault_seed=1, hang_seconds=3, retry_after="0.2") as srv:
        t0 = time.time()
        r = run_cli(["--pairs", str(tmp_path / "pairs.jsonl"), "--annotator", str(tmp_path / "pool.yaml"), "--base-url", srv.base_url,
                     "--out", str(tmp_path / "ann.json")], cli_env)
        elapsed = time.time() - t0
        assert r.returncode == 0, r.stderr[-3000:]
        assert all(srv.faults[k] > 0 for k in rates), srv.faults              # every kind of fault really happened
        assert 0.25 < sum(srv.faults.values()) / srv.calls < 0.35
        assert srv.billed == n                                                # billed calls == unique pairs
        assert set(Counter(pair_id(e) for e in srv.billed_examples).values()) == {1}
    ann = read_records(tmp_path / "ann.json", "annotation")
    assert [a["preference"] for a in ann] == [expected(p) for p in pairs]   # all annotated, in input order, right side
    assert [a["instruction"] for a in ann] == [p["instruction"] for p in pairs]
    assert f"annotated {n}/{n} pairs" in r.stdout and f"{n} new judge answers" in r.stdout
    print(f"{n} pairs under 30% faults in {elapsed:.1f} s, {srv.calls} requests")


def test_unparsed_replies_are_cached_and_not_paid_twice(tmp_path, cli_env, pool_yaml):
    """A well-formed reply that does not parse has a small budget of its own; it is paid, kept, and a re-run does not
    send it again unless --retry-unparsed."""
    pairs = make_pairs(12)
    write_records(pairs, tmp_path / "pairs.json")
    undecided = {pairs[3]["instruction"], pairs[7]["instruction"]}
    state = {"fixed": False}

    def decide(model, examples, seed):   # no verdict ("I cannot tell") for two pairs, until fixed
        return [None if e["instruction"] in undecided and not state["fixed"] else longer_wins(model, [e], seed)[0] for e in examples]
    args = ["--pairs", str(tmp_path / "pairs.json"), "--annotator", str(pool_yaml), "--cache", str(tmp_path / "c.sqlite"),
            "--out", str(tmp_path / "ann.json")]
    with FakeJudgeServer(decide) as srv:
        r = run_cli([*args, "--base-url", srv.base_url], cli_env)
        assert r.returncode == 1 and "2 pairs got replies that could not be parsed" in r.stdout, r.stdout + r.stderr
        assert srv.calls == 10 + 2 * 3                                        # 1 + max_parse_retries (2) requests each
        ann = read_records(tmp_path / "ann.json", "annotation")
        assert [a["annotation_source"] for a in ann].count("unparsed") == 2
        assert ann[3]["preference"] is None and "cannot tell" in ann[3]["raw_completion"]
        srv.reset_counts()
        r = run_cli([*args, "--base-url", srv.base_url], cli_env)             # the same command: nothing is sent
        assert r.returncode == 1 and srv.calls == 0 and "10 from the cache" in r.stdout
        state["fixed"] = True
        r = run_cli([*args, "--base-url", srv.base_url, "--retry-unparsed"], cli_env)
        assert r.returncode == 0 and srv.calls == 2, r.stdout + r.stderr
    assert [a["preference"] for a in read_records(tmp_path / "ann.json")] == [expected(p) for p in pairs]


def closed_port_url():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def test_refused_connection_fails_fast_with_one_line(tmp_path, cli_env):
    write_records(make_pairs(50), tmp_path / "pairs.json")
    url = closed_port_url()
    t0 = time.time()
    r = run_cli(["--pairs", str(tmp_path / "pairs.json"), "--annotator", "greedy", "--base-url", url,
                 "--out", str(tmp_path / "ann.json")], cli_env, timeout=120)
    assert r.returncode == 2 and time.time() - t0 < 15, (r.returncode, time.time() - t0, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and url in lines[0] and "connection refused" in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "ann.json").exists()


@pytest.mark.parametrize("out", ["folder", "ann.txt", "file/ann.json"])
def test_bad_out_is_checked_before_any_request(tmp_path, cli_env, pool_yaml, out):
    (tmp_path / "folder").mkdir(); (tmp_path / "file").write_text("x")
    write_records(make_pairs(5), tmp_path / "pairs.json")
    with FakeJudgeServer() as srv:
        r = run_cli(["--pairs", str(tmp_path / "pairs.json"), "--annotator", str(pool_yaml), "--base-url", srv.base_url,
                     "--out", str(tmp_path / out)], cli_env)
        assert r.returncode == 2 and srv.calls == 0, r.stderr                # nothing asked, nothing paid
    assert len(r.stderr.strip().splitlines()) == 1 and str(tmp_path / out) in r.stderr and "Traceback" not in r.stderr


def test_pool_with_an_unimportable_function_is_one_line(tmp_path, cli_env):
    (tmp_path / "pool.yaml").write_text("name: bad\nannotators:\n  - {name: x, backend: python, function: 'no_such_module:judge'}\n")
    write_records(make_pairs(3), tmp_path / "pairs.json")
    r = run_cli(["--pairs", str(tmp_path / "pairs.json"), "--annotator", str(tmp_path / "pool.yaml")], cli_env)
    assert r.returncode == 2 and "no_such_module:judge" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["folder", "corrupt"])
def test_bad_cache_is_one_line(tmp_path, cli_env, kind):
    cache = tmp_path / "cache.sqlite"
    cache.mkdir() if kind == "folder" else cache.write_bytes(b"SQLite format 2, or so it says" * 100)
    write_records(make_pairs(3), tmp_path / "pairs.json")
    r = run_cli(["--pairs", str(tmp_path / "pairs.json"), "--annotator", "greedy", "--base-url", closed_port_url(),
                 "--cache", str(cache)], cli_env)
    assert r.returncode == 2 and str(cache) in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_hung_endpoint_is_reported_quickly_with_status_lines(tmp_path, cli_env, pool_yaml):
    """A server that accepts connections and never answers: status lines while waiting, then one error line naming the URL."""
    (tmp_path / "slow.yaml").write_text(FAST_POOL.replace("timeout: 1.5", "timeout: 3"))
    write_records(make_pairs(20), tmp_path / "pairs.json")
    with FakeJudgeServer(fault_rates={"hang": 1.0}, hang_seconds=60) as srv:
        t0 = time.time()
        r = subprocess.run([ALPACAFARM, "annotate", "--pairs", str(tmp_path / "pairs.json"), "--annotator", str(tmp_path / "slow.yaml"),
                            "--base-url", srv.base_url, "--status-every", "1"], capture_output=True, text=True, env=cli_env, timeout=120)
        elapsed = time.time() - t0
    assert r.returncode == 2 and elapsed < 30, (r.returncode, elapsed, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert any("0/20 pairs" in l and "requests in flight" in l and srv.base_url in l for l in lines[:-1]), r.stderr  # not silent
    assert srv.base_url in lines[-1] and "no answer" in lines[-1] and "Traceback" not in r.stderr, r.stderr
    with FakeJudgeServer(fault_rates={"hang": 1.0}, hang_seconds=60) as srv:   # --no-progress: a stall is still reported
        r = run_cli(["--pairs", str(tmp_path / "pairs.json"), "--annotator", str(tmp_path / "slow.yaml"), "--base-url", srv.base_url,
                     "--status-every", "1"], cli_env)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and any("requests in flight" in l for l in lines[:-1]) and "no answer" in lines[-1], r.stderr


class Gate:
    """A simulated judge that answers the first `k` requests, then holds every further request until released;
    held requests are then dropped unanswered (and unbilled) when `abort` is set."""
    def __init__(self, k):
        self.k, self.n, self.lock, self.release, self.abort = k, 0, threading.Lock(), threading.Event(), False

    def __call__(self, model, examples, seed):
        with self.lock:
            self.n += 1
            n = self.n
        if n > self.k:
            self.release.wait(60)
            if self.abort:
                raise ConnectionAbortedError("client was killed")
        return longer_wins(model, examples, seed)


def test_kill_and_resume_pays_each_pair_once(tmp_path, cli_env, pool_yaml):
    n, k = 80, 25
    pairs = make_pairs(n)
    write_records(pairs, tmp_path / "pairs.json")
    cache = tmp_path / "cache.sqlite"
    args = ["--pairs", str(tmp_path / "pairs.json"), "--annotator", str(pool_yaml), "--concurrency", "4",
            "--cache", str(cache), "--out", str(tmp_path / "ann.json"), "--no-progress"]
    gate = Gate(k)
    with FakeJudgeServer(gate, latency=0.02) as srv:
        proc = subprocess.Popen([ALPACAFARM, "annotate", *args, "--base-url", srv.base_url], env=cli_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        t0 = time.time()
        while True:   # wait until the k answered pairs are committed to the cache (the rest are held in flight)
            if cache.exists() and len(cached_rows(cache, polling=True)) >= k: break
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.time() - t0 < 120, "the run made no progress"
            time.sleep(0.1)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        assert not (tmp_path / "ann.json").exists()                        # killed mid-run: no output yet
        gate.abort = True; gate.release.set(); time.sleep(0.5)            # the held requests die unanswered
        done_before = {pair_id(e) for e in cached_rows(cache)}
        assert len(done_before) == k and srv.billed == k
        gate.abort, gate.k = False, 10 ** 9
        r = run_cli([*args[:-1], "--base-url", srv.base_url], cli_env)      # the same command again
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"{k} from the cache" in r.stdout and f"{n - k} new judge answers" in r.stdout
        billed = Counter(pair_id(e) for e in srv.billed_examples)
        assert srv.billed == n == len(billed)                              # billed calls == unique pairs
        assert all(billed[p] == 1 for p in done_before)                     # no finished pair judged twice
    ann = read_records(tmp_path / "ann.json", "annotation")
    assert [a["preference"] for a in ann] == [expected(p) for p in pairs]


def test_kill_at_a_random_moment_never_rejudges_a_finished_pair(tmp_path, cli_env, pool_yaml):
    """No gate: SIGKILL whenever; a pair paid for but not yet saved at that instant may be paid again, a saved one never."""
    n = 60
    pairs = make_pairs(n)
    write_records(pairs, tmp_path / "pairs.json")
    cache = tmp_path / "cache.sqlite"
    args = ["--pairs", str(tmp_path / "pairs.json"), "--annotator", str(pool_yaml), "--concurrency", "4",
            "--cache", str(cache), "--out", str(tmp_path / "ann.json")]
    with FakeJudgeServer(latency=0.05, fault_rates={"500": 0.1, "429": 0.05}, retry_after="0") as srv:
        proc = subprocess.Popen([ALPACAFARM, "annotate", *args, "--base-url", srv.base_url, "--no-progress"], env=cli_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        t0 = time.time()
        while not (cache.exists() and len(cached_rows(cache, polling=True)) >= 15):
            assert proc.poll() is None and time.time() - t0 < 120
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL); proc.wait(30)
        time.sleep(0.3)                                                    # requests in flight finish on the server
        saved = {pair_id(e) for e in cached_rows(cache)}
        paid_unsaved = len(srv.billed_examples) - len(saved)
        assert 0 <= paid_unsaved <= 4                                      # at most the requests in flight
        r = run_cli([*args, "--base-url", srv.base_url], cli_env)
        assert r.returncode == 0, r.stderr[-3000:]
        billed = Counter(pair_id(e) for e in srv.billed_examples)
        assert len(billed) == n and srv.billed == n + paid_unsaved
        assert all(billed[p] == 1 for p in saved)
    assert [a["preference"] for a in read_records(tmp_path / "ann.json")] == [expected(p) for p in pairs]


def test_concurrent_processes_share_one_cache(tmp_path, cli_env, pool_yaml):
    pairs = make_pairs(40)
    write_records(pairs[:30], tmp_path / "a.json"); write_records(pairs[10:], tmp_path / "b.json")
    cache = tmp_path / "shared.sqlite"
    with FakeJudgeServer(latency=0.01) as srv:
        procs = [subprocess.Popen([ALPACAFARM, "annotate", "--pairs", str(tmp_path / f"{x}.json"), "--annotator", str(pool_yaml),
                                   "--base-url", srv.base_url, "--cache", str(cache), "--out", str(tmp_path / f"ann_{x}.json"),
                                   "--concurrency", "8", "--no-progress"], env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for x in "ab"]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-3000:]
        assert 40 <= srv.billed <= 60                                      # overlapping pairs may be asked by both at once
    con = sqlite3.connect(cache)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT COUNT(*) FROM annotations").fetchone()[0] == 40
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    for x, sl in (("a", pairs[:30]), ("b", pairs[10:])):
        assert [a["preference"] for a in read_records(tmp_path / f"ann_{x}.json")] == [expected(p) for p in sl]


def test_api_key_is_never_written(tmp_path, cli_env, pool_yaml):
    sentinel = "sk-SENTINEL-must-not-leak-4f7c1e"
    env = dict(cli_env, OPENAI_API_KEY=sentinel)
    write_records(make_pairs(12), tmp_path / "pairs.json")
    cache = tmp_path / "cache.sqlite"
    with FakeJudgeServer(fault_schedule=["500", "nonjson"]) as srv:
        r = run_cli(["--pairs", str(tmp_path / "pairs.json"), "--annotator", str(pool_yaml), "--base-url", srv.base_url,
                     "--cache", str(cache), "--out", str(tmp_path / "ann.jsonl")], env)
        assert r.returncode == 0, r.stderr[-3000:]
        r2 = run_cli(["--pairs", str(tmp_path / "pairs.json"), "--annotator", str(pool_yaml), "--base-url", srv.base_url,
                      "--cache", str(cache)], env)                          # annotations on stdout
    assert r2.returncode == 0
    assert sentinel not in r.stdout + r.stderr + r2.stdout + r2.stderr      # nor printed (logs, warnings, annotations)
    files = [p for p in tmp_path.iterdir() if p.is_file()]
    assert any(p.name.startswith("cache.sqlite") for p in files) and (tmp_path / "ann.jsonl").exists()
    for p in files:
        assert sentinel.encode() not in p.read_bytes(), p
    for text in (r.stdout, r.stderr, r2.stdout, r2.stderr):
        assert sentinel not in text


def test_budget_stops_before_it_is_exceeded(tmp_path, cli_env, pool_yaml):
    write_records(make_pairs(30), tmp_path / "pairs.json")
    with FakeJudgeServer() as srv:
        r = run_cli(["--pairs", str(tmp_path / "pairs.json"), "--annotator", str(pool_yaml), "--base-url", srv.base_url,
                     "--budget", "0.004", "--out", str(tmp_path / "ann.json")], cli_env)
        billed = srv.billed
    assert r.returncode == 1, r.stderr[-3000:]                             # some pairs are missing
    ann = read_records(tmp_path / "ann.json")
    done = [a for a in ann if a["preference"] is not None]
    assert 0 < len(done) < 30 and len(done) == billed
    assert sum(a["price_per_example"] for a in done) <= 0.004
    assert "budget $0.0040 reached" in r.stdout and "budget of $0.0040 reached" in r.stderr


def test_batched_prompts_are_used_over_http(tmp_path):
    """Annotators with batch_size 4 or 5 send several pairs per request; every pair still gets its own verdict."""
    from alpacafarm_nb.judges import load_pool_config
    cfg = load_pool_config("alpacafarm_v1")
    cfg["annotators"] = [dict(a, timeout=5, backoff_base=0.01) for a in cfg["annotators"] if a["batch_size"] > 1]
    pairs = make_pairs(60)
    with FakeJudgeServer(models=list(cfg["models"].values())) as srv:
        df = annotate_pairs(pairs, cfg, base_url=srv.base_url, cache_path=tmp_path / "c.sqlite", progress=False)
        s = df.attrs["summary"]
        assert s["n_annotated"] == 60 and srv.calls == s["n_calls"] <= 60 / 4 + 2 * len(cfg["annotators"])
        assert len(srv.billed_examples) >= 60                            # padded batches carry copies
    assert df["preference"].tolist() == [expected(p) for p in pairs]


def test_one_broken_annotator_does_not_kill_the_pool(tmp_path, capsys):
    """A retired model (HTTP 404) loses only its own pairs, said in one line on stderr naming the judge (no Python warning)."""
    pool = {"name": "two", "models": {"ok": "good-model", "gone": "retired-model"},
            "defaults": {"backend": "openai", "timeout": 2, "backoff_base": 0.01},
            "annotators": [{"name": "alive", "model": "ok", "template": "greedy"},
                           {"name": "retired", "model": "gone", "template": "greedy"}]}
    pairs = make_pairs(30)
    with FakeJudgeServer(models=["good-model"]) as srv, warnings.catch_warnings():
        warnings.simplefilter("error")
        df = annotate_pairs(pairs, pool, base_url=srv.base_url, cache_path=tmp_path / "c.sqlite", progress=False)
    err = [l for l in capsys.readouterr().err.splitlines() if "cannot work" in l]
    assert len(err) == 1 and "(retired)" in err[0] and "retired-model" in err[0] and "404" in err[0], err
    alive = df["annotator"] == "alive"
    assert 5 < alive.sum() < 25
    assert df.loc[alive, "preference"].tolist() == [expected(p) for p, a in zip(pairs, alive) if a]
    assert df.loc[~alive, "preference"].isna().all()


@pytest.fixture
def eval_files(shared):
    outputs = shared / "alpaca_farm_examples" / "eval_gpt-3.5-turbo-0301.json"
    reference = shared / "alpaca_eval" / "eval_set.jsonl"
    if not (outputs.exists() and reference.exists()):
        pytest.skip("shared eval files absent")
    return outputs, reference


def test_805_eval_instructions_with_greedy_then_leaderboard(tmp_path, cli_env, eval_files):
    outputs, reference = eval_files
    out = tmp_path / "ann.json"
    with FakeJudgeServer() as srv:
        t0 = time.time()
        r = run_cli(["--annotator", "greedy", "--base-url", f"{srv.base_url}", "--outputs", str(outputs),
                     "--reference", str(reference), "--out", str(out)], cli_env, timeout=600)
        elapsed = time.time() - t0
        assert r.returncode == 0, r.stderr[-3000:]
        billed = srv.billed
        srv.reset_counts()                                                   # a fully cached re-run pays nothing
        t0 = time.time()
        r2 = run_cli(["--annotator", "greedy", "--base-url", srv.base_url, "--outputs", str(outputs), "--reference",
                      str(reference), "--out", str(tmp_path / "ann2.json")], cli_env)
        elapsed2 = time.time() - t0
        assert r2.returncode == 0 and srv.calls == 0, r2.stderr[-3000:]
    print(f"805 pairs annotated in {elapsed:.1f}s (fully cached re-run {elapsed2:.1f}s); {r.stdout.strip()}")
    ann = read_records(out, "annotation")
    same = [a for a in ann if a["output_1"] == a["output_2"]]                  # 6 model outputs equal the reference
    assert len(ann) == 805 and billed == 805 - len(same) and len(same) < 20
    assert all(a["preference"] == 1.5 for a in same) and all(a["preference"] in (1.0, 2.0) for a in ann if a not in same)
    assert f"{805 - len(same)} new judge answers" in r.stdout and f"{len(same)} identical pairs" in r.stdout
    assert {a["generator_1"] for a in ann} == {"text_davinci_003"} and {a["generator_2"] for a in ann} == {"gpt-3.5-turbo-0301"}
    # the join is on instruction + input, not row order: each row holds the model's and the reference's output of its item
    model = {(o["instruction"], o["input"]): o["output"] for o in json.loads(outputs.read_text())}
    ref = {}
    for line in reference.read_text().splitlines():
        e = json.loads(line)
        ref[(e["alpacafarm_instruction"], e["alpacafarm_input"] or "")] = e["output_text_davinci_003"]
    assert all(a["output_2"] == model[(a["instruction"], a["input"])] for a in ann)
    assert all(a["output_1"] == ref[(a["instruction"], a["input"])] for a in ann)
    # the simulated judge prefers the longer output
    for a in ann:
        if len(a["output_1"]) != len(a["output_2"]):
            assert a["preference"] == (2.0 if len(a["output_2"]) > len(a["output_1"]) else 1.0)
    win_rate = 100 * sum(a["preference"] - 1 for a in ann) / len(ann)
    lb = subprocess.run([ALPACAFARM, "leaderboard", str(out)], capture_output=True, text=True, env=cli_env, timeout=120)
    assert lb.returncode == 0, lb.stderr[-3000:]
    print(lb.stdout)
    assert "gpt-3.5-turbo-0301" in lb.stdout and f"{win_rate:.2f}" in lb.stdout
    assert f"{805 - len(same)} from the cache" in r2.stdout and "cost $0.0000 new" in r2.stdout
    assert [a["preference"] for a in read_records(tmp_path / "ann2.json")] == [a["preference"] for a in ann]


def test_outputs_missing_from_the_reference_is_a_clear_error(tmp_path, cli_env, eval_files):
    outputs, reference = eval_files
    rows = json.loads(outputs.read_text())[:3] + [dict(instruction="Not an eval instruction", input="", output="x", generator="m")]
    write_records(rows, tmp_path / "o.json")
    r = run_cli(["--annotator", "greedy", "--base-url", "http://127.0.0.1:9/v1", "--outputs", str(tmp_path / "o.json"),
                 "--reference", str(reference), "--out", str(tmp_path / "a.json")], cli_env)
    assert r.returncode == 2 and "row 3, field 'instruction'" in r.stderr and "no reference output" in r.stderr


def test_annotate_samples_on_the_shared_multisamples(tmp_path, shared):
    """AlpacaFarm's multisample file (8 instructions x 4 samples) becomes 16 adjacent pairs, annotated by a python judge."""
    from alpacafarm_nb.annotators import annotate_samples, samples_to_pairs
    f = shared / "alpaca_farm_examples" / "multisamples_sft.json"
    if not f.exists():
        pytest.skip("multisamples_sft.json absent")
    rows = json.loads(f.read_text())
    pairs = samples_to_pairs(rows)
    assert len(pairs) == sum(len(r["output"]) // 2 for r in rows)
    pool = {"name": "py", "annotators": [{"name": "longer", "backend": "python", "function": "alpacafarm_nb.judges:prefer_longer"}]}
    df = annotate_samples(rows, pool, p_label_flip=0.0, cache_path=tmp_path / "c.sqlite", progress=False)
    assert df["preference"].notna().all() and len(df) == len(pairs)
    assert df["preference"].tolist() == [1.0 if len(p["output_1"]) > len(p["output_2"]) else 2.0 if len(p["output_2"]) > len(p["output_1"])
                                         else 1.5 for p in pairs]
