"""Adding a method is one registry entry: a toy method, declared in a few lines, runs through the pocket-quick farm."""
import json, shutil
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
import pytest

from alpacafarm_nb.config import Config
from alpacafarm_nb.registry import Method, register, unregister, farm_methods, default_methods


@dataclass
class ToyConfig(Config):
    presets: ClassVar[dict] = {'pocket': {}, 'pocket-quick': {}}
    seed: int = 0
    progress: bool = True


def copy_sft(policy, pairs, out_dir, config, resume=False):
    "The toy method: the SFT10k policy, unchanged (it only counts the pairs it was given)."
    shutil.copytree(policy, out_dir, dirs_exist_ok=True)
    return dict(pairs=len(pairs), seed=config.seed)


@pytest.fixture
def toy():
    register(Method('toy', ToyConfig, copy_sft, needs=('sft', 'pairs'), default=False))
    yield 'toy'
    unregister('toy')


def test_toy_method_is_registered(toy):
    assert 'toy' in farm_methods() and 'toy' not in default_methods()
    from alpacafarm_nb.farm import get_preset, farm_stages
    names = [s.name for s in farm_stages(get_preset('pocket-quick', methods=('toy',)), 0)[0]]
    assert {'toy_simulated', 'outputs_toy_simulated', 'evaluate_toy_human'} <= set(names)
    assert not any(n.startswith('reward_') for n in names)          # the toy needs no reward model: none is trained


def test_toy_method_runs_through_the_quick_farm(toy, tmp_path, monkeypatch):
    from alpacafarm_nb.farm import run_farm
    monkeypatch.setenv('ALPACAFARM_CACHE_PATH', str(tmp_path / 'cache.sqlite'))
    res = run_farm(tmp_path / 'run', preset='pocket-quick', progress=False, methods=('toy',))
    methods = pd.read_csv(tmp_path / 'run' / 'methods.csv').set_index(['method', 'feedback'])
    assert {('toy', 'simulated'), ('toy', 'human')} <= set(methods.index)
    summary = json.loads((tmp_path / 'run' / 'stages' / 'toy_human.json').read_text())['summary']
    assert summary['pairs'] == len(json.loads((tmp_path / 'run' / 'preferences' / 'human.json').read_text())) > 0
    # the toy policy is SFT10k itself, sampled with the same seed: its row is SFT10k's
    cols = ['win_rate_pool', 'win_rate_humans', 'avg_length']
    assert methods.loc[('toy', 'human'), cols].tolist() == methods.loc[('sft10k', 'none'), cols].tolist()
    assert res['config']['methods'] == ['toy'] or tuple(res['config']['methods']) == ('toy',)
