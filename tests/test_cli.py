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
