"""Bad input, one test per class of the bad-input catalogue (issue 12, section 4): every error is one line on stderr,
exit code 2, no traceback, naming the file (and line, row, field where there is one), and comes before any long work.
Each test runs the `alpacafarm` console script as a user would."""
import json, os, socket, subprocess, sys
from pathlib import Path

import pytest
import torch

ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")
PAIR = dict(instruction="Name a fruit.", input="", output_1="Apple.", output_2="A banana is a fruit.")


def run(args, env, cwd=None, timeout=120):
    return subprocess.run([ALPACAFARM, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def fails(args, env, *expected, cwd=None):
    """Run; assert exit code 2 and one line on stderr holding every `expected` text; return that line."""
    r = run(args, env, cwd)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, (r.returncode, r.stderr[-3000:])
    for text in expected:
        assert str(text) in lines[0], (text, lines[0])
    return lines[0]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def annotate(pairs, *more):
    return ["annotate", "--pairs", pairs, "--annotator", "pocket", *more]


# --- silent wrong results ---------------------------------------------------------------------------------------

def test_csv_cells_are_read_as_text(tmp_path, cli_env):
    """`NA`, `None`, `N/A` and number-like text stay text: an input of `NA` is not the empty input (no merged instructions)."""
    f = tmp_path / "pairs.csv"
    f.write_text("instruction,input,output_1,output_2\n"
                 "Say hi.,NA,None,N/A\n"
                 "Say hi.,,007,1e3\n")
    out = tmp_path / "ann.json"
    r = run(annotate(f, "--out", out), cli_env)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [(a["input"], a["output_1"], a["output_2"]) for a in rows] == [("NA", "None", "N/A"), ("", "007", "1e3")]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_empty_instruction_is_refused_by_annotate(tmp_path, cli_env, fmt):
    rows = [PAIR, dict(PAIR, instruction="Name a colour."), dict(PAIR, instruction="  ")]
    f = tmp_path / f"pairs.{fmt}"
    if fmt == "jsonl": write_jsonl(f, rows)
    else: f.write_text("instruction,input,output_1,output_2\n" + "".join(f"{r['instruction']},,{r['output_1']},{r['output_2']}\n" for r in rows))
    fails(annotate(f), cli_env, f, "line 4" if fmt == "csv" else "line 3", "row 2", "field 'instruction'", "the instruction is empty")


def test_empty_instruction_is_refused_by_generate(tmp_path, cli_env):
    """Checked when the file is read, before any model is loaded (the model here does not even exist)."""
    f = write_jsonl(tmp_path / "inst.jsonl", [dict(instruction="Name a fruit."), dict(instruction="")])
    fails(["generate", "--model", tmp_path / "no-model", "--instructions", f, "--out", tmp_path / "o.json"], cli_env,
          f, "line 2", "field 'instruction'", "the instruction is empty")


# --- unclear messages -------------------------------------------------------------------------------------------

def test_rows_are_named_by_their_jsonl_line(tmp_path, cli_env):
    """A blank line and a bad record on line 5: the message says line 5 (the 0-based row is 3)."""
    f = tmp_path / "pairs.jsonl"
    bad = {k: v for k, v in PAIR.items() if k != "output_2"}
    f.write_text("".join(json.dumps(r) + "\n" for r in [PAIR, PAIR | dict(instruction="b"), PAIR | dict(instruction="c")]) + "\n"
                 + json.dumps(bad) + "\n")
    fails(annotate(f), cli_env, f, "line 5, row 3, field 'output_2'")


def test_non_utf8_bytes_name_file_and_line(tmp_path, cli_env):
    f = tmp_path / "pairs.jsonl"
    f.write_bytes((json.dumps(PAIR) + "\n" + json.dumps(PAIR | dict(instruction="Caf\u00e9?"), ensure_ascii=False) + "\n").encode("latin-1"))
    fails(annotate(f), cli_env, f, "line 2", "not valid UTF-8", "0xe9")


def test_directory_given_as_a_file(tmp_path, cli_env):
    d = tmp_path / "pairs.json"
    d.mkdir()
    line = fails(annotate(d), cli_env, d, "is a directory")
    assert "no such file" not in line


def test_world_scale_lists_the_valid_names(tmp_path, cli_env):
    fails(["world", "--out", tmp_path / "w", "--scale", "huge"], cli_env, "--scale", "'huge'", "full, small, tiny", "fraction")
    assert not (tmp_path / "w").exists()


# --- outputs, checked before the work ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["a file", "under a file", "unwritable"])
def test_output_folder_is_checked_before_the_work(tmp_path, cli_env, case):
    (tmp_path / "f.json").write_text("[]")
    out = {"a file": tmp_path / "f.json", "under a file": tmp_path / "f.json" / "world",
           "unwritable": Path("/proc/alpacafarm-test/world")}[case]
    if case == "unwritable" and not Path("/proc/self").is_dir(): pytest.skip("needs Linux /proc (no one can create files there)")
    fails(["world", "--out", out, "--scale", "tiny"], cli_env, out)


def test_output_file_helper(tmp_path):
    """`check_writable_output`, for the commands that write one file (annotate, generate, leaderboard --out)."""
    from alpacafarm_nb.core import DataError, check_writable_output
    (tmp_path / "f.json").write_text("[]")
    for out, msg in [(tmp_path, "is a directory"), (tmp_path / "a.txt", "unknown file type '.txt'"),
                     (tmp_path / "f.json" / "a.json", "is a file, not a folder"), ("/proc/x/a.json", "cannot be written")]:
        with pytest.raises(DataError, match="cannot|unknown|directory|file") as e:
            check_writable_output(out)
        assert msg in str(e.value) and str(out) in str(e.value)
    assert check_writable_output(tmp_path / "new" / "a.jsonl") == tmp_path / "new" / "a.jsonl"


# --- tracebacks that became one line ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["corrupt", "directory"])
def test_bad_sqlite_cache(tmp_path, cli_env, case):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [PAIR])
    cache = tmp_path / "cache.sqlite"
    if case == "corrupt": cache.write_bytes(b"this is not a database" * 100)
    else: cache.mkdir()
    # the cache names itself and says what is wrong (the annotator's own check words it "is not a database")
    fails(annotate(pairs, "--cache", cache), cli_env, cache, "not a database" if case == "corrupt" else "is a folder")


def test_pool_with_an_unimportable_function(tmp_path, cli_env):
    pool = tmp_path / "pool.yaml"
    pool.write_text("name: broken\nannotators:\n  - {name: j, backend: python, function: 'no_such_module_xyz:judge'}\n")
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [PAIR])
    fails(["annotate", "--pairs", pairs, "--annotator", pool], cli_env, "no_such_module_xyz:judge", "cannot import")


def test_serve_judges_busy_port(cli_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); s.listen()
        port = s.getsockname()[1]
        fails(["serve-judges", "--port", port], cli_env, f"127.0.0.1:{port}", "Address already in use")


def test_serve_judges_invalid_host(cli_env):
    fails(["serve-judges", "--host", "no-such-host.invalid", "--port", "0"], cli_env, "no-such-host.invalid", "cannot listen")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda(tmp_path, cli_env):
    f = write_jsonl(tmp_path / "inst.jsonl", [dict(instruction="Name a fruit.")])
    fails(["generate", "--model", tmp_path, "--instructions", f, "--out", tmp_path / "o.json", "--device", "cuda"], cli_env,
          "device 'cuda'", "CUDA is not available")


@pytest.fixture
def online_env(cli_env):
    """Online, but the Hub is a closed port: any Hub contact fails at once (so a test can see there was none, or that it was short)."""
    env = dict(cli_env, HF_HUB_OFFLINE="0", TRANSFORMERS_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9")
    return env


@pytest.mark.parametrize("name", ["runs/x", "x/y/z", "./m", "not-a-model-folder"])
def test_missing_or_wrong_model_path_is_never_sent_to_the_hub(tmp_path, online_env, name):
    (tmp_path / "not-a-model-folder").mkdir()
    (tmp_path / "runs").mkdir()
    f = write_jsonl(tmp_path / "inst.jsonl", [dict(instruction="Name a fruit.")])
    line = fails(["generate", "--model", name, "--instructions", f, "--out", tmp_path / "o.json", "--device", "cpu"],
                 online_env, name, "holds no model" if name == "not-a-model-folder" else "not found", cwd=tmp_path)
    assert "Hub" not in line and "huggingface" not in line.lower()


@pytest.mark.parametrize("offline", [True, False])
def test_uncached_hub_id_fails_fast(tmp_path, online_env, offline):
    env = dict(online_env, HF_HUB_OFFLINE="1") if offline else online_env
    env["HF_HOME"] = str(tmp_path / "hf")   # an empty cache
    f = write_jsonl(tmp_path / "inst.jsonl", [dict(instruction="Name a fruit.")])
    fails(["generate", "--model", "someorg/no-such-model", "--instructions", f, "--out", tmp_path / "o.json", "--device", "cpu"],
          env, "'someorg/no-such-model'", "HF_HUB_OFFLINE" if offline else "the Hub cannot be reached")
