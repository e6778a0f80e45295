"""The guide examples/trl_dpo/: pairs exported by `alpacafarm export-trl`, trained by TRL's DPOTrainer in a separate
environment (examples/trl_dpo/train_dpo_trl.py), and the result sampled by `alpacafarm generate`.

The script's bad-input checks run here (they come before TRL is imported). The training test needs a Python with TRL,
which is not a project dependency: it uses this interpreter when TRL imports here, else the one named by TRL_PYTHON:
    python3 -m venv /tmp/venv-trl && /tmp/venv-trl/bin/pip install torch==2.13.0 && /tmp/venv-trl/bin/pip install 'trl==1.16.*'
    TRL_PYTHON=/tmp/venv-trl/bin/python .venv/bin/python -m pytest -q tests/test_trl_guide.py
"""
import importlib.util, json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "trl_dpo" / "train_dpo_trl.py"
ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")


def run_script(python, *args, timeout=120):
    return subprocess.run([python, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


@pytest.mark.parametrize("content,says", [(None, "dpo_train.jsonl: no such file"),
                                          ('{"prompt": "p", "chosen": "a"}\n', "line 1: field 'rejected' missing"),
                                          ('{"prompt": "p", "chosen": "a", "rejected": "b"}\nnot json\n', "line 2: not JSON"),
                                          ("", "no pairs")])
def test_script_bad_data_is_one_line(tmp_path, content, says):
    if content is not None: (tmp_path / "dpo_train.jsonl").write_text(content)
    r = run_script(sys.executable, "--model", tmp_path / "m", "--data", tmp_path, "--out", tmp_path / "o")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train_dpo_trl: error: ") and says in lines[0], lines


def test_script_checks_batch_sizes(tmp_path):
    r = run_script(sys.executable, "--model", "m", "--data", tmp_path, "--out", "o", "--batch-size", "48", "--micro-batch-size", "32")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "train_dpo_trl: error: --batch-size 48 is not a multiple of --micro-batch-size 32"]


def trl_python():
    if importlib.util.find_spec("trl") is not None: return sys.executable
    p = os.environ.get("TRL_PYTHON")
    if p and subprocess.run([p, "-c", "import trl"], capture_output=True).returncode == 0: return p
    pytest.skip("TRL is not installed here (it is not a project dependency): set TRL_PYTHON to a Python with 'trl==1.16.*' "
                "(see this file's docstring)")


def test_trl_dpo_on_exported_pairs_then_generate(tmp_path):
    python = trl_python()
    from alpacafarm_nb.core import write_records
    from alpacafarm_nb.data import format_prompt
    from alpacafarm_nb.models import make_pocket_model, load_policy
    words = "cat dog bird fish tree lake hill road star moon sun rain".split()
    corpus = [f"the {a} and the {b} {b.upper()}" for a in words for b in words] + [format_prompt("", "")] * 20
    make_pocket_model("pocket-tiny", corpus, out_dir=tmp_path / "sft", n_layer=1, n_embd=32, n_head=2, vocab_size=300)
    prefs = [dict(instruction=f"Say the word {w}.", input="", output_1=w, output_2=w.upper(), preference=2 - (i % 5 == 0))
             for i, w in enumerate(words * 4)]
    write_records(prefs, tmp_path / "prefs.json")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([ALPACAFARM, "export-trl", "--model", str(tmp_path / "sft"), "--preferences", str(tmp_path / "prefs.json"),
                        "--val-size", "8", "--out", str(tmp_path / "data")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_script(python, "--model", tmp_path / "sft", "--data", tmp_path / "data", "--out", tmp_path / "trl", "--epochs", 2,
                   "--batch-size", 8, "--micro-batch-size", 4, "--lr", 1e-3, "--max-length", 256, "--threads", 1, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / "trl" / "trl_summary.json").read_text())
    assert s["train_pairs"] == 40 and s["val_pairs"] == 8 and s["steps"] == 10, s
    start, trained = load_policy(tmp_path / "sft")[0], load_policy(tmp_path / "trl")[0]
    assert any((a - b).abs().max() > 0 for a, b in zip(start.parameters(), trained.parameters()))   # DPO moved the weights
    write_records([dict(instruction="Say the word cat.", input="")], tmp_path / "instr.json")
    r = subprocess.run([ALPACAFARM, "generate", "--model", str(tmp_path / "trl"), "--instructions", str(tmp_path / "instr.json"),
                        "--out", str(tmp_path / "out.json"), "--max-new-tokens", "8", "--device", "cpu"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "out.json").read_text())[0]["generator"] == "trl"


CONVERT = ROOT / "examples" / "trl_dpo" / "to_alpaca_eval.py"


def test_to_alpaca_eval_merges_the_input(tmp_path):
    rows = [dict(instruction="Say a word.", input="", output="cat", generator="m"),
            dict(instruction="Remove the word sun.", input="The sun is out.", output="The is out.", generator="m")]
    (tmp_path / "o.json").write_text(json.dumps(rows))
    r = subprocess.run([sys.executable, str(CONVERT), tmp_path / "o.json", tmp_path / "ae.json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "ae.json").read_text()) == [
        dict(instruction="Say a word.", output="cat", generator="m"),
        dict(instruction="Remove the word sun.\n\nThe sun is out.", output="The is out.", generator="m")]
    (tmp_path / "bad.json").write_text(json.dumps([dict(instruction="a")]))
    r = subprocess.run([sys.executable, str(CONVERT), tmp_path / "bad.json", tmp_path / "x.json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"to_alpaca_eval: error: {tmp_path / 'bad.json'}: row 0: field 'output' missing or not a string"]
