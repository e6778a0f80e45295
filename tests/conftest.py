"""Shared pytest fixtures: the shared real data (skipped with a reason where absent) and `--runslow`."""
import os
from pathlib import Path

import pytest

from alpacafarm_nb.core import shared_data, SHARED_DATA_MISSING

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def shared():
    """The shared data folder (../shared/data); skips the test where it is absent (a user's fresh clone)."""
    p = shared_data()
    if p is None:
        pytest.skip(SHARED_DATA_MISSING)
    return p


@pytest.fixture
def cli_env(tmp_path):
    """Environment for running the `alpacafarm` console script in a subprocess, isolated from the user's cache."""
    env = dict(os.environ)
    env["ALPACAFARM_CACHE_PATH"] = str(tmp_path / "cache.sqlite")
    env["ALPACAFARM_RUNS_DIR"] = str(tmp_path / "runs")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env
