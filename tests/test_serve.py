"""`alpacafarm serve-judges`: the pocket judges and simulated humans served as an OpenAI-compatible API give, for the same seed,
exactly the preferences of in-process annotation (python backend)."""
import json, re, subprocess, sys, time
from pathlib import Path

import pytest
import yaml

from alpacafarm_nb.core import read_records, write_records
from alpacafarm_nb.world import make_world

ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")


@pytest.fixture
def server(cli_env):
    p = subprocess.Popen([ALPACAFARM, "serve-judges", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=cli_env)
    try:
        line = p.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:(\d+)/v1)", line)
        assert m, f"no URL printed: {line!r} {p.stderr.read() if p.poll() is not None else ''}"
        yield m.group(1)
    finally:
        p.terminate()
        try: p.wait(10)
        except subprocess.TimeoutExpired: p.kill()
        assert p.returncode is not None


@pytest.fixture
def pairs_file(tmp_path):
    w = make_world(5, dict(sft=10, preference=60, unlabeled=10, val=10, eval=10, pretrain=10))
    insts = w.splits["preference"]
    a = w.generate("pocket_demonstrator", insts, seed=1, temperature=1.3)
    b = w.generate("pocket_chatgpt", insts, seed=2)
    rows = [dict(instruction=x["instruction"], input=x["input"], output_1=x["output"], output_2=y["output"],
                 generator_1="pocket_demonstrator", generator_2="pocket_chatgpt") for x, y in zip(a, b)]
    rows.append(dict(rows[0], output_2=rows[0]["output_1"]))   # identical outputs: a tie without a call
    assert any(r["input"] for r in rows) and any(not r["input"] for r in rows)
    return write_records(rows, tmp_path / "pairs.json")


def annotate(cli_env, tmp_path, pairs, annotator, seed, tag, base_url=None):
    out = tmp_path / f"ann_{tag}.json"
    cmd = [ALPACAFARM, "annotate", "--pairs", str(pairs), "--annotator", str(annotator), "--seed", str(seed), "--out", str(out),
           "--cache", str(tmp_path / f"cache_{tag}.sqlite"), "--no-progress", "--concurrency", "4"]
    if base_url: cmd += ["--base-url", base_url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=cli_env)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-2000:]
    return read_records(out)


def test_models_listed(server):
    import urllib.request
    ids = {m["id"] for m in json.load(urllib.request.urlopen(server + "/models"))["data"]}
    assert len([i for i in ids if i.startswith("pocket_human_")]) >= 13
    assert {"pocket_greedy", "pocket_strong_chat_fewshot", "pocket_weak_persona_verbose"} <= ids
    assert len(ids) == 14 + 16 + 2 and {"pocket_pool", "pocket_crowd"} <= ids   # judges, humans, the pool and the crowd


@pytest.mark.parametrize("seed", [0, 3])
def test_pool_served_equals_in_process(server, pairs_file, cli_env, tmp_path, seed):
    local = annotate(cli_env, tmp_path, pairs_file, "pocket", seed, f"local{seed}")
    served = annotate(cli_env, tmp_path, pairs_file, "pocket_api", seed, f"served{seed}", base_url=server)
    assert len(local) == len(served) == 61
    assert [r["annotator"] for r in local] == [r["annotator"] for r in served]
    assert len({r["annotator"] for r in local}) >= 8                        # many judges of the pool took part
    assert [r["preference"] for r in local] == [r["preference"] for r in served]
    assert set(r["preference"] for r in local) == {1.0, 2.0, 1.5}
    assert all(r["raw_completion"] for r in served if r["preference"] != 1.5)  # really answered over HTTP
    if seed == 3:   # another seed changes some answers (sampling judges, order, assignment)
        other = annotate(cli_env, tmp_path, pairs_file, "pocket", 0, "local0b")
        assert [r["preference"] for r in other] != [r["preference"] for r in local]


@pytest.mark.parametrize("model,template,batch_size,function,param", [
    ("pocket_weak_batch5_lines", "batch_lines", 5, "alpacafarm_nb.pocket_judges:pocket_judge", "judge"),
    ("pocket_greedy", "greedy", 1, "alpacafarm_nb.pocket_judges:pocket_judge", "judge"),
    ("pocket_human_04", "json_verdict", 1, "alpacafarm_nb.world:pocket_human", "human")])
def test_single_model_served_equals_in_process(server, pairs_file, cli_env, tmp_path, model, template, batch_size, function, param):
    api = tmp_path / "api.yaml"; py = tmp_path / "py.yaml"
    api.write_text(yaml.safe_dump(dict(name="one_api", annotators=[dict(name=model, backend="openai", model=model, template=template,
                                                                          batch_size=batch_size, temperature=1.0)])))
    py.write_text(yaml.safe_dump(dict(name="one_py", annotators=[dict(name=model, backend="python", function=function,
                                                                        params={param: model}, batch_size=batch_size)])))
    local = annotate(cli_env, tmp_path, pairs_file, py, 7, "py")
    served = annotate(cli_env, tmp_path, pairs_file, api, 7, "api", base_url=server)
    assert [r["preference"] for r in local] == [r["preference"] for r in served]
