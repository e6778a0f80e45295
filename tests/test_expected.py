"Cross-module tests of expected win rates (nbs/22_expected_win_rate.ipynb) and of the benchmark helpers they sit beside."
import ast, importlib.util, math, re
from pathlib import Path

import numpy as np
import pytest

from alpacafarm_nb.annotators import annotate_pairs, annotate_vs_reference
from alpacafarm_nb.evaluate import win_rate_stats
from alpacafarm_nb.expected import (expected_vs_reference, expected_win_rate, paired_difference, pool_has_probabilities)

ROOT = Path(__file__).resolve().parents[1]


def _notebook_number(module: str) -> int:
    "The number of the notebook that exports `alpacafarm_nb.<module>` (its `#| default_exp` cell)."
    for nb in (ROOT / 'nbs').glob('*.ipynb'):
        if re.search(rf'#\|\s*default_exp\s+{re.escape(module)}(?=["\\])', nb.read_text()):
            return int(re.match(r'\d+', nb.name).group())
    raise LookupError(module)


def test_expected_imports_only_earlier_modules():
    tree = ast.parse((ROOT / 'alpacafarm_nb' / 'expected.py').read_text())
    used = {n.module.split('.')[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module}
    used |= {a.name.split('.')[1] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names if a.name.startswith('alpacafarm_nb.')}
    assert used, "expected.py imports no package module: the parse went wrong"
    for m in used: assert _notebook_number(m) < 22, m


def _world_pairs(n=24):
    from alpacafarm_nb.world import make_world, scaled_sizes
    w = make_world(0, scaled_sizes('tiny'))
    ref = w.splits['eval'][:n]
    return w, ref


@pytest.mark.parametrize('pool', ['pocket', 'pocket_humans'])
def test_pocket_expected_matches_sampled(pool):
    "On the pocket world, the pool's (or crowd's) expected win rate is the mean of many sampled ones (within 3 SE of that mean)."
    if not pool_has_probabilities(pool): pytest.skip(f"the {pool} pool's probability functions are not on this branch yet")
    w, ref = _world_pairs()
    outs = w.generate('pocket_llama', ref)
    exact = expected_win_rate(expected_vs_reference(outs, ref, pool).to_dict('records'), pool)
    wrs = np.array([win_rate_stats(annotate_vs_reference(outs, ref, pool, seed=s, progress=False)['preference'])['win_rate']
                    for s in range(60)])
    assert abs(wrs.mean() - exact['expected_win_rate']) < 3 * wrs.std(ddof=1) / math.sqrt(len(wrs)) + 1e-9


def test_paired_difference_of_sampled_annotations_matches_evaluate_paired_test():
    "paired_difference on two sampled annotation sets gives evaluate.paired_test's mean difference (same instructions, same sign)."
    from alpacafarm_nb.evaluate import paired_test
    import pandas as pd
    pool = dict(name='toy', annotators=[dict(name='long', backend='python', function='alpacafarm_nb.expected:length_judge',
                                             params=dict(slope=2.0))])
    ref = [dict(instruction=f'q{i}', input='', output='r' * 10, generator='ref') for i in range(30)]
    a = [dict(instruction=f'q{i}', input='', output='a' * (5 + i % 11), generator='a') for i in range(30)]
    b = [dict(r, output='b' * 6, generator='b') for r in a]
    da, db = annotate_vs_reference(a, ref, pool, progress=False), annotate_vs_reference(b, ref, pool, progress=False)
    mine = paired_difference(da, db, method='bootstrap')
    theirs = paired_test(pd.concat([da, db]), 'a', 'b')
    assert mine['n'] == theirs['n'] == 30
    assert mine['mean_diff'] == pytest.approx(theirs['mean_diff'], abs=1e-9)


def _benchmark(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / 'benchmarks' / f'{name}.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def test_stage_efficiency_counts_2n_forward_6n_training():
    m = _benchmark('matmul_peak')
    fwd = m.stage_efficiency(1e6, 1000, 2.0, peak_flops=1e10)
    assert fwd['flops_per_s'] == pytest.approx(1e9) and fwd['fraction_of_peak'] == pytest.approx(0.1)
    assert m.stage_efficiency(1e6, 1000, 2.0, peak_flops=1e10, training=True)['flops_per_s'] == pytest.approx(3e9)
    with pytest.raises(ValueError): m.stage_efficiency(1e6, 1000, 0.0, peak_flops=1e10)


def test_matmul_peak_runs_and_refuses_bad_flags(capsys):
    m = _benchmark('matmul_peak')
    assert m.main(['--threads', '1', '--sizes', '32,64', '--runs', '1', '--min-seconds', '0.01']) == 0
    out = capsys.readouterr().out
    import json
    res = json.loads(out)
    assert res['peak_gflops']['1'] > 0 and res['best_size']['1'] in (32, 64)
    assert m.main(['--sizes', 'x']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'error' in err
