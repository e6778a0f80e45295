"""The pocket world: full-size splits, eval held out, determinism across processes, the `alpacafarm world` command."""
import json, os, subprocess, sys
from pathlib import Path

import pytest

from alpacafarm_nb.core import alpaca_eval_instruction, read_records
from alpacafarm_nb.world import (make_world, parse_task, quality, pocket_human, CROWD, FAMILIES, DEFAULT_SIZES, SYSTEMS,
                                 REFERENCE_SYSTEM, _is_eval_item)

ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")


@pytest.fixture(scope="module")
def world():
    return make_world(0)


def test_full_sizes_and_columns(world):
    assert {k: len(v) for k, v in world.splits.items()} == {k: DEFAULT_SIZES[k] for k in ("sft", "preference", "unlabeled", "val", "eval")}
    assert len(world.pretrain_corpus) == DEFAULT_SIZES["pretrain"]
    for name in ("sft", "val", "eval"):
        assert all(r["output"].strip() for r in world.splits[name])
    assert all(set(r) >= {"instruction", "input"} for r in world.splits["preference"])
    assert {r["generator"] for r in world.splits["eval"]} == {REFERENCE_SYSTEM}
    assert len({r["family"] for r in world.splits["eval"]}) == len(FAMILIES) >= 10


def test_eval_never_in_training(world):
    ev = {(r["instruction"], r["input"]) for r in world.splits["eval"]}
    assert len({alpaca_eval_instruction(*k) for k in ev}) == 805           # unique, also in AlpacaEval form
    for name in ("sft", "preference", "unlabeled", "val"):
        train = {(r["instruction"], r["input"]) for r in world.splits[name]}
        assert not ev & train, name
        assert not {alpaca_eval_instruction(*k) for k in ev} & {alpaca_eval_instruction(*k) for k in train}
    # the partition is a property of the text, so no world with another seed trains on this eval set either
    other = make_world(1, dict(sft=3000, preference=10, unlabeled=10, val=10, eval=10, pretrain=10))
    assert not ev & {(r["instruction"], r["input"]) for r in other.splits["sft"]}
    assert all(_is_eval_item(*k) for k in ev)


def test_vocabulary_closed_and_texts_short(world):
    words = lambda rows, f: {w for r in rows for w in r[f].lower().split()}
    train_vocab = words(world.splits["sft"], "output") | words(world.splits["sft"], "instruction") | {w for t in world.pretrain_corpus for w in t.lower().split()}
    eval_vocab = words(world.splits["eval"], "output") | words(world.splits["eval"], "instruction")
    assert len(train_vocab) < 2500
    assert len(eval_vocab - train_vocab) / len(eval_vocab) < 0.02          # the eval set speaks the training language
    lens = sorted(len(r["output"].split()) for r in world.splits["sft"])
    assert lens[int(0.95 * len(lens))] < 60


def test_systems_ordered_by_quality(world):
    insts = world.splits["eval"][:400]
    mq = {s: sum(quality(o["instruction"], o["input"], o["output"]) for o in world.generate(s, insts)) / len(insts) for s in SYSTEMS}
    assert mq["pocket_gpt4"] > mq["pocket_chatgpt"] > mq["pocket_demonstrator"] > mq["pocket_davinci001"] > mq["pocket_llama"]
    refs = [r["output"] for r in world.splits["eval"][:50]]
    assert refs != [o["output"] for o in world.generate(REFERENCE_SYSTEM, world.splits["eval"][:50], seed=1)]  # other seed, other samples


def test_deterministic_across_processes(tmp_path):
    code = ("import json; from alpacafarm_nb.world import make_world, pocket_human\n"
            "w = make_world(2, dict(sft=50, preference=20, unlabeled=20, val=10, eval=30, pretrain=20))\n"
            "ex = dict(instruction=w.splits['sft'][0]['instruction'], input=w.splits['sft'][0]['input'], output_1=w.splits['sft'][0]['output'], output_2='No.')\n"
            "print(json.dumps([w.splits, w.pretrain_corpus, [pocket_human(ex, s, human=h) for h in ['pocket_human_00', 'pocket_human_09'] for s in range(20)]]))")
    outs = []
    for hs in ("1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hs)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(json.loads(r.stdout))
    assert outs[0] == outs[1]


def test_crowd_is_stochastic_but_seeded():
    assert len(CROWD) >= 13
    ex = dict(instruction="Name three fruits.", input="", output_1="1. apple\n2. pear\n3. plum", output_2="apple, pear and hammer.")
    votes = [pocket_human(ex, s, human=h) for h in CROWD for s in range(20)]
    assert 0.7 < votes.count(1.0) / len(votes) < 1.0
    assert votes == [pocket_human(ex, s, human=h) for h in CROWD for s in range(20)]


def test_world_cli(tmp_path, cli_env):
    r = subprocess.run([ALPACAFARM, "world", "--out", str(tmp_path / "w"), "--seed", "4", "--scale", "0.02"], capture_output=True,
                       text=True, env=cli_env, timeout=120)
    assert r.returncode == 0, r.stderr
    sft = read_records(tmp_path / "w" / "sft.json", "output")
    ev = read_records(tmp_path / "w" / "eval.json", "output", unique_instruction=True)
    assert (len(sft), len(ev)) == (200, 100)
    meta = json.loads((tmp_path / "w" / "world.json").read_text())
    assert meta["seed"] == 4 and meta["sizes"]["sft"] == 200
    assert sft == make_world(4, meta["sizes"]).splits["sft"]
    pre = read_records(tmp_path / "w" / "pretrain.json")
    assert len(pre) == 400 and all(isinstance(p["text"], str) and p["text"] for p in pre)
    bad = subprocess.run([ALPACAFARM, "world", "--out", str(tmp_path / "x"), "--scale", "7"], capture_output=True, text=True, env=cli_env)
    assert bad.returncode == 2 and "--scale" in bad.stderr


def _cross_pairs(n_per_stratum=6):
    from alpacafarm_nb.pocket_judges import cross_annotation_pairs
    return cross_annotation_pairs(n_per_stratum)


def test_choice_probabilities_match_sampled_answers():
    "Issue 18/19 contract: the mean sampled answer over many seeds is the exact probability, for humans and judges alike."
    import numpy as np
    from alpacafarm_nb.world import pocket_human_prob
    from alpacafarm_nb.pocket_judges import JUDGES, pocket_judge, pocket_judge_prob
    pairs = _cross_pairs(2)[:12]
    seeds = range(600)
    for i, e in enumerate(pairs):
        h, j = sorted(CROWD)[i % len(CROWD)], sorted(JUDGES)[i % len(JUDGES)]
        for ask, prob, name in ((pocket_human, pocket_human_prob, dict(human=h)), (pocket_judge, pocket_judge_prob, dict(judge=j))):
            p = prob(e, 0, **name)
            assert 0.0 <= p <= 1.0 and p == prob(e, 7, **name)
            share = np.mean([ask(e, s, **name) == 2.0 for s in seeds])
            assert abs(share - p) < 0.07, (name, p, share)
            # the relation is exact: 2.0 whenever the seeded uniform falls below the probability
            assert all(ask(e, s, **name) == 2.0 for s in seeds) == (p == 1.0)
    same = dict(pairs[0], output_2=pairs[0]["output_1"])
    assert (pocket_human_prob(same), pocket_judge_prob(same, judge="pocket_greedy")) == (0.5, 0.5)
    assert (pocket_human(same), pocket_judge(same, judge="pocket_greedy")) == (1.5, 1.5)


def test_cross_annotation_set_is_fixed_across_processes():
    code = ("import json; from alpacafarm_nb.pocket_judges import cross_annotation_pairs\n"
            "print(json.dumps(cross_annotation_pairs(3)))")
    outs = []
    for hs in ("1", "999"):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONHASHSEED=hs), timeout=300)
        assert r.returncode == 0, r.stderr
        outs.append(json.loads(r.stdout))
    assert outs[0] == outs[1] == _cross_pairs(3)
    assert len(outs[0]) == 33 and len({r["stratum"] for r in outs[0]}) == 11
