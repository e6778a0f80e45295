"""Every subcommand of the `alpacafarm` console script exists and answers --help."""
import subprocess, sys
from pathlib import Path

import pytest

from alpacafarm_nb.cli import SUBCOMMANDS

ALPACAFARM = str(Path(sys.executable).parent / "alpacafarm")


def test_top_level_help():
    r = subprocess.run([ALPACAFARM, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for name in SUBCOMMANDS:
        assert name in r.stdout


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommand_help(name):
    r = subprocess.run([ALPACAFARM, name, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "usage: alpacafarm " + name.split()[0] in r.stdout


@pytest.mark.parametrize("args", [["leaderboard", "{d}"], ["judge-metrics", "{d}"], ["annotate", "--pairs", "{d}"],
                                  ["generate", "--model", "{d}", "--instructions", "{d}", "--out", "{d}/o.json"]])
def test_bad_input_is_one_line_for_every_file_reading_subcommand(tmp_path, cli_env, args):
    """A folder where a file of records is expected: one line naming it, exit code 2, whichever subcommand reads it."""
    d = tmp_path / "records.jsonl"
    d.mkdir()
    r = subprocess.run([ALPACAFARM, *[a.format(d=d) for a in args]], capture_output=True, text=True, env=cli_env, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [f"alpacafarm {args[0]}: error: file {d}: is a directory, not a file of records (.json, .jsonl or .csv)"]
