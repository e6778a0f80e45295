"""Policies end to end: save/load of pocket models, exact checkpoint/resume of SFT on pocket-tiny,
`alpacafarm generate` and `alpacafarm train` round trips (subprocess), and (slow) the pocket SFT quality check."""
import json, os, subprocess, sys
from pathlib import Path

import pytest
import torch

from alpacafarm_nb.core import read_records, write_records
from alpacafarm_nb.data import format_prompt
from alpacafarm_nb.models import make_pocket_model, load_policy, count_params
from alpacafarm_nb.sampling import generate_outputs, generate, encode_prompts, score_responses
from alpacafarm_nb.trainer import params_equal, latest_checkpoint
from alpacafarm_nb.methods.sft import sft, pretrain

torch.set_num_threads(min(2, os.cpu_count() or 1))
ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")
SIZES = dict(sft=96, preference=10, unlabeled=10, val=16, eval=100, pretrain=200)


@pytest.fixture(scope="module")
def world():
    from alpacafarm_nb.world import make_world
    return make_world(0, SIZES)


@pytest.fixture(scope="module")
def base_dir(world, tmp_path_factory):
    """An untrained pocket-tiny base model (full preset architecture) with dropout on, tokenizer trained on the corpus."""
    d = tmp_path_factory.mktemp("base")
    make_pocket_model("pocket-tiny", world.pretrain_corpus + [format_prompt("", "")] * 50, out_dir=d,
                      resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)
    return d


def test_save_load_roundtrip(base_dir):
    model, tok = load_policy(base_dir)
    assert count_params(model) < 1_000_000
    assert (model.config.pad_token_id, model.config.bos_token_id, model.config.eos_token_id) == \
           (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert model.config.vocab_size == len(tok)
    ref, _ = make_pocket_model("pocket-tiny", tokenizer=tok, resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)
    assert params_equal(model, ref)                      # same seed, same init: the saved weights are the built ones
    x = torch.tensor([tok(format_prompt("Name a red fruit.")).input_ids])
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, ref.eval()(x).logits)


def test_sft_resume_is_exact(world, base_dir, tmp_path):
    """SFT interrupted after step 3 and resumed ends bit-identical to an uninterrupted run (dropout + accumulation on)."""
    kw = dict(val_rows=world.splits["val"], max_steps=7, batch_size=16, micro_batch_size=8, lr=2e-3, warmup_ratio=0.2,
              progress=False, report_to="none", log_every=1, eval_every=3)
    rows = world.splits["sft"]
    full = sft(base_dir, rows, tmp_path / "full", **kw)
    part = sft(base_dir, rows, tmp_path / "part", stop_after=3, **kw)
    assert part["stopped"] and part["step"] == 3 and latest_checkpoint(tmp_path / "part").name == "step_0000003"
    resumed = sft(base_dir, rows, tmp_path / "part", resume=True, **kw)
    assert resumed["step"] == full["step"] == 7 and not resumed["stopped"]
    m_full, _ = load_policy(tmp_path / "full")
    m_res, _ = load_policy(tmp_path / "part")
    m_base, _ = load_policy(base_dir)
    assert params_equal(m_full, m_res)
    assert not params_equal(m_full, m_base)
    assert resumed["val_loss"] == full["val_loss"]
    log = lambda p: [(r["step"], r["loss"]) for r in map(json.loads, (p / "metrics.jsonl").read_text().splitlines())]
    assert log(tmp_path / "part") == log(tmp_path / "full")
    # resuming without an interruption to continue from is a no-op that keeps the result
    again = sft(base_dir, rows, tmp_path / "part", resume=True, **kw)
    assert again["step"] == 7
    assert params_equal(load_policy(tmp_path / "part")[0], m_full)


def test_generate_cli_roundtrip(world, base_dir, tmp_path, cli_env):
    instr = [dict(instruction=r["instruction"], input=r["input"], dataset="pocket") for r in world.splits["eval"][:5]]
    write_records(instr, tmp_path / "instr.jsonl")
    out = tmp_path / "outs.json"
    r = subprocess.run([ALPACAFARM, "generate", "--model", str(base_dir), "--instructions", str(tmp_path / "instr.jsonl"),
                        "--out", str(out), "--n", "2", "--max-new-tokens", "12", "--temperature", "0.8", "--seed", "5",
                        "--generator", "pocket_base"], capture_output=True, text=True, env=cli_env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(out.read_text())                                # AlpacaFarm form: a JSON list
    assert isinstance(rows, list) and len(rows) == 10
    assert [(x["instruction"], x["input"], x["sample_id"]) for x in rows] == \
           [(i["instruction"], i["input"], j) for i in instr for j in range(2)]
    assert {x["generator"] for x in rows} == {"pocket_base"} and {x["dataset"] for x in rows} == {"pocket"}
    read_records(out, kind="output")                                  # the evaluator's reader accepts it
    same = generate_outputs(load_policy(base_dir), instr, generator="pocket_base", n=2, max_new_tokens=12, temperature=0.8, seed=5)
    assert [x["output"] for x in rows] == [x["output"] for x in same]


def test_sampler_logprobs_match_teacher_forcing(base_dir):
    model, tok = load_policy(base_dir)
    prompts = [format_prompt("Describe a cat."), format_prompt("Sort these numbers.", "3, 1, 2"), format_prompt("Hi")]
    res = generate(model, tok, prompts, n=3, max_new_tokens=20, temperature=0.9, top_p=0.95, batch_size=4, seed=1)
    enc = encode_prompts(tok, prompts)
    tf = score_responses(model, [enc[r["prompt_index"]] for r in res], [r["token_ids"] for r in res], temperature=0.9)
    assert len(res) == len(tf) == 9 and sum(len(r["token_ids"]) for r in res) > 0      # 3 samples per prompt, not vacuous
    for r, lp in zip(res, tf):
        torch.testing.assert_close(torch.tensor(r["logprobs"]), torch.tensor(lp), atol=1e-4, rtol=1e-4)


def test_train_cli_pretrain_then_sft(world, tmp_path, cli_env):
    write_records([dict(text=t) for t in world.pretrain_corpus], tmp_path / "corpus.jsonl")
    write_records(world.splits["sft"], tmp_path / "sft.jsonl")
    base, tuned = tmp_path / "base", tmp_path / "sft"
    common = ["--set", "progress=false", "--set", "report_to=none", "--set", "batch_size=8", "--set", "micro_batch_size=8"]
    r = subprocess.run([ALPACAFARM, "train", "pretrain", "--preset", "pocket", "--data", str(tmp_path / "corpus.jsonl"),
                        "--out", str(base), "--max-steps", "3", *common], capture_output=True, text=True, env=cli_env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([ALPACAFARM, "train", "sft", "--preset", "pocket", "--model", str(base), "--data", str(tmp_path / "sft.jsonl"),
                        "--val", str(tmp_path / "sft.jsonl"), "--out", str(tuned), "--max-steps", "2", *common],
                       capture_output=True, text=True, env=cli_env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["step"] == 2 and summary["val_loss"] > 0
    m0, _ = load_policy(base); m1, _ = load_policy(tuned)
    assert not params_equal(m0, m1)


@pytest.mark.slow
def test_pocket_sft_follows_instructions(tmp_path):
    """The pocket recipe (full world): SFT's outputs are far better than the base model's by the world's quality score."""
    from alpacafarm_nb.world import make_world, quality
    w = make_world(0)
    pretrain(w.pretrain_corpus, tmp_path / "base", progress=False)
    sft(tmp_path / "base", w.splits["sft"], tmp_path / "sft", val_rows=w.splits["val"], progress=False)
    ev = w.splits["eval"][:200]
    q = {}
    for name in ("base", "sft"):
        outs = generate_outputs(tmp_path / name, ev, generator=name, max_new_tokens=96, temperature=0.7)
        q[name] = sum(quality(r["instruction"], r["input"], r["output"]) for r in outs) / len(outs)
    print(q)
    assert q["sft"] > q["base"] + 0.2


def test_one_logprob_for_sampler_judge_and_sft_loss(base_dir, world, tmp_path):
    """The same texts get the same log-prob (1e-4) from the sampler, the `hf_logprob` judge, the one log-prob function and
    the SFT loss: all encode BOS + prompt, then the response tokens (+ EOS where the response must end)."""
    from alpacafarm_nb.judges import make_judge
    from alpacafarm_nb.sampling import encode_responses, score_texts
    from alpacafarm_nb.methods.sft import tokenize_sft
    from alpacafarm_nb.trainer import collate_lm, lm_loss
    model, tok = load_policy(base_dir)
    rows = world.splits["eval"][:20]
    prompts = [format_prompt(r["instruction"], r["input"]) for r in rows]
    res = generate(model, tok, prompts, n=2, max_new_tokens=4, temperature=1.0, seed=0)
    # texts that re-encode to the sampled ids (short samples of an untrained model mostly do); EOS-ended ones keep their EOS
    same = [r for r in res if encode_responses(tok, [r["text"]], add_eos=r["finish_reason"] == "eos")[0] == r["token_ids"]]
    assert len(same) >= 5, len(same)
    judge = make_judge(dict(backend="hf_logprob", model=str(base_dir), aggregate="sum", name="lp"))
    for r in same:
        prompt, text = prompts[r["prompt_index"]], r["text"]
        with_eos = score_texts(model, tok, [prompt], [text])[0]["logprob"]
        if r["finish_reason"] == "eos":
            assert abs(sum(r["logprobs"]) - with_eos) < 1e-4                        # sampler == primitive
        else:
            assert abs(sum(r["logprobs"]) - score_texts(model, tok, [prompt], [text], add_eos=False)[0]["logprob"]) < 1e-4
        pair = dict(instruction=rows[r["prompt_index"]]["instruction"], input=rows[r["prompt_index"]]["input"], output_1=text, output_2="x")
        assert abs(json.loads(judge.judge_batch([pair])[0]["raw_completion"])["score_1"] - with_eos) < 1e-4   # judge == primitive
        ex = tokenize_sft([dict(instruction=pair["instruction"], input=pair["input"], output=text)], tok, max_length=10_000)
        with torch.no_grad(): sft_lp = -float(lm_loss(model, collate_lm(ex, tok.pad_token_id)))
        assert abs(sft_lp - with_eos) < 1e-4                                              # SFT loss == primitive
    # the old bug: without BOS the same text scores differently (so the check above is not vacuous)
    p_ids = tok(prompts[0], add_special_tokens=False)["input_ids"]
    r_ids = encode_responses(tok, ["the answer"])[0]
    no_bos = score_responses(model, [p_ids], [r_ids])[0]
    assert abs(sum(no_bos) - score_texts(model, tok, [prompts[0]], ["the answer"])[0]["logprob"]) > 1e-3


@pytest.mark.parametrize("args, msg", [
    (["--set", "lr=abc"], "lr expects a number, got 'abc'"),
    (["--set", "learning_rate=1e-3"], "unknown SFTConfig option(s) learning_rate"),
])
def test_train_cli_bad_config_is_one_line(args, msg, base_dir, tmp_path, cli_env):
    "Bad hyperparameters fail at once (before loading data or models): one line on stderr, exit code 2, no traceback."
    r = subprocess.run([ALPACAFARM, "train", "sft", "--model", str(base_dir), "--data", str(tmp_path / "none.json"),
                        "--out", str(tmp_path / "o"), *args], capture_output=True, text=True, env=cli_env, timeout=120)
    assert r.returncode == 2 and msg in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
