"""The analysis reads what the farm writes: the farm's methods.csv and overoptimization.csv, through CSV, give the
pairing, the correlations and the Gao et al. fits that the tables were built from."""
import numpy as np
import pandas as pd

from alpacafarm_nb import analysis, farm
from alpacafarm_nb.analysis import gao_bon, overoptimization_fits, ranking_correlation, simulated_vs_human

CFG = dict(feedback=('simulated', 'human'), methods=('best_of_n', 'expert_iteration', 'ppo'))
NS = [1, 2, 4, 8, 16, 32, 64]


def bound(n):
    return float(np.log(n) - (n - 1) / n)


def farm_tables(tmp_path):
    """A combined leaderboard as the farm builds it (one row per output set), turned into the two files by the farm's own code."""
    win = {'sft10k': (36., 35.), 'base': (12., 16.), 'pocket_gpt4': (67., 64.),
           'best_of_n_simulated': (38., 30.), 'best_of_n_human': (39., 36.),
           'expert_iteration_simulated': (41., 31.), 'expert_iteration_human': (37., 34.),
           'ppo_simulated': (45., 33.), 'ppo_human': (44., 38.)}
    curve = {}
    for fb, (a, b) in (('simulated', (6.0, 2.0)), ('human', (4.0, 1.5))):
        curve[f'best_of_n_{fb}'] = dict(curve=[dict(n=n, kl_bound=bound(n), proxy_reward=0.1 * i) for i, n in enumerate(NS)])
        for n in NS:
            gain = float(gao_bon(np.sqrt(bound(n)), a, b))
            win[f'best_of_n_{fb}_n{n}'] = (30. + gain / 2, 30. + gain)     # the crowd sees twice the pool's gain
    board = pd.DataFrame([dict(generator=k, win_rate_pool=p, standard_error_pool=1., win_rate_humans=h, standard_error_humans=1.,
                               n_total=100, avg_length=50.) for k, (p, h) in win.items()]).set_index('generator')
    farm.methods_table(board, CFG).to_csv(tmp_path / 'methods.csv', index=False)
    farm.overoptimization_table(board, curve, CFG).to_csv(tmp_path / 'overoptimization.csv', index=False)
    return pd.read_csv(tmp_path / 'methods.csv'), pd.read_csv(tmp_path / 'overoptimization.csv')


def test_same_columns_as_the_farm():
    assert analysis.METHODS_COLUMNS == farm.METHODS_COLUMNS
    assert analysis.OVEROPT_COLUMNS == farm.OVEROPT_COLUMNS


def test_pairing_and_correlation_from_the_farms_methods_csv(tmp_path):
    methods, _ = farm_tables(tmp_path)
    pairs = simulated_vs_human(methods).set_index('method')
    assert sorted(pairs.index) == ['best_of_n', 'expert_iteration', 'ppo']
    # simulated: the run trained on simulated feedback judged by the pool; human: the run trained on human feedback judged by the crowd
    assert pairs.loc['ppo'].tolist() == [45., 38.] and pairs.loc['best_of_n'].tolist() == [38., 36.]
    corr = ranking_correlation(pairs['simulated'], pairs['human'], n_boot=200)
    assert corr['n'] == 3 and corr['spearman']['value'] == 0.5
    everything = simulated_vs_human(methods, include_unlearned=True).set_index('method')
    assert everything.loc['pocket_gpt4'].tolist() == [67., 64.] and len(everything) == 6


def test_gao_fits_from_the_farms_overoptimization_csv(tmp_path):
    _, overopt = farm_tables(tmp_path)
    fits = overoptimization_fits(overopt, y=['win_rate_humans', 'win_rate_pool'], n_boot=100).set_index(['feedback', 'y'])
    assert (fits['form'] == 'bon').all() and (fits['n'] == 7).all() and (fits['baseline'] == 30.).all()
    np.testing.assert_allclose(fits.loc[('simulated', 'win_rate_humans'), ['a', 'b']].tolist(), [6.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(fits.loc[('human', 'win_rate_pool'), ['a', 'b']].tolist(), [2.0, 0.75], atol=1e-6)
    np.testing.assert_allclose(fits.loc[('human', 'win_rate_humans'), 'peak_kl'], (4.0 / 3.0) ** 2, atol=1e-6)
    fig = analysis.overoptimization_figure(overopt, fits=fits.reset_index())
    assert len(fig.data) == 8    # 2 curves x 2 judges, each with its fit


# --- the figures a reader reads: Figure 4's panels, the fits' point limit, seed bands, paired differences --------------------

def curve(method, feedback, xs, kls, wins, x_name='step', **extra):
    return pd.DataFrame([dict(method=method, feedback=feedback, x_name=x_name, x=x, kl=k, proxy_reward=0.1 * i, win_rate_pool=w,
                              win_rate_humans=w - 1.0, **extra) for i, (x, k, w) in enumerate(zip(xs, kls, wins))])


def six_and_four():
    "PPO with 6 points (pool-trained) and 4 points (crowd-trained), best-of-n with 7 (both), as the farm writes them."
    d = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    wins = 30 + d * (3 - 2 * np.log(np.where(d > 0, d, 1.0)))
    parts = [curve('ppo', 'simulated', range(6), d ** 2, wins), curve('ppo', 'human', range(4), d[:4] ** 2, wins[:4])]
    for fb in ('simulated', 'human'):
        parts.append(curve('best_of_n', fb, NS, [bound(n) for n in NS], [30. + float(gao_bon(np.sqrt(bound(n)), 4.0, 1.5)) for n in NS], x_name='n'))
    return pd.concat(parts, ignore_index=True)[analysis.OVEROPT_COLUMNS]


def test_a_curve_of_4_points_is_not_fitted_and_one_of_6_is():
    fits = overoptimization_fits(six_and_four(), y=['win_rate_pool'], n_boot=100).set_index(['method', 'feedback'])
    assert fits.loc[('ppo', 'simulated'), 'fitted'] and fits.loc[('ppo', 'simulated'), 'n'] == 6
    assert not fits.loc[('ppo', 'human'), 'fitted'] and fits.loc[('ppo', 'human'), 'note'] == 'not fitted (4 points; 5 needed)'
    assert np.isnan(fits.loc[('ppo', 'human'), ['a', 'b', 'r2', 'peak_kl']].astype(float)).all()    # no exact fit reported as evidence
    np.testing.assert_allclose(fits.loc[('ppo', 'simulated'), ['a', 'b']].astype(float), [3.0, 2.0], atol=1e-6)


def test_a_fit_through_3_points_is_refused():
    import pytest
    with pytest.raises(ValueError, match='fit them exactly'):
        overoptimization_fits(six_and_four(), min_points=3)


def test_panels_split_by_feedback_source_each_with_its_own_judge():
    oo = six_and_four()
    fig = analysis.overoptimization_panels(oo, n_boot=50)
    titles = [a.text for a in fig.layout.annotations if a.text.startswith('trained on')]
    assert titles == ['trained on simulated feedback, judged by simulated pool', 'trained on human feedback, judged by humans']
    curves = [t for t in fig.data if t.mode == 'lines+markers']
    assert len(curves) == 2 * 2 * 2          # 2 methods x 2 feedback sources x (proxy reward, sqrt KL)
    crowd_ppo = [t for t in curves if t.name == 'ppo' and t.xaxis in ('x2', 'x4')]
    want = oo[(oo['method'] == 'ppo') & (oo['feedback'] == 'human')]['win_rate_humans'].tolist()
    assert all(np.allclose(list(t.y), want) for t in crowd_ppo) and len(crowd_ppo) == 2
    fitted = [t.name for t in fig.data if t.name.endswith('Gao fit')]
    assert sorted(fitted) == ['best_of_n: Gao fit', 'best_of_n: Gao fit', 'ppo: Gao fit']   # not the 4-point PPO curve
    boxes = ' '.join(a.text for a in fig.layout.annotations)
    assert 'not fitted (4 points; 5 needed)' in boxes and 'r2' not in boxes


def test_seed_bands_only_with_a_seed_column():
    oo = six_and_four()
    bands = lambda fig: [t for t in fig.data if t.name.endswith('± seed SE')]
    assert bands(analysis.overoptimization_panels(oo, n_boot=50)) == []
    seeded = pd.concat([oo.assign(seed=s, win_rate_pool=oo['win_rate_pool'] + s, win_rate_humans=oo['win_rate_humans'] - s) for s in (0, 1)])
    fig = analysis.overoptimization_panels(seeded, n_boot=50)
    assert len(bands(fig)) == 4 * 2 and '2 seeds' in fig.layout.title.text
    band = bands(fig)[0]   # the band is the mean +- the seeds' SE (here the two seeds differ by 1: SE 0.5)
    n = len(band.y) // 2
    np.testing.assert_allclose(np.asarray(band.y[:n]) - np.asarray(band.y[n:][::-1]), 1.0)


def test_error_bars_from_the_leaderboard_when_the_table_has_no_standard_errors():
    oo = six_and_four()
    board = pd.DataFrame(dict(generator=[f'best_of_n_simulated_n{n}' for n in NS], standard_error_pool=2.5, standard_error_humans=3.0))
    withse = analysis.standard_errors_from_leaderboard(oo, board)
    fig = analysis.overoptimization_panels(withse, n_boot=50)
    bon = [t for t in fig.data if t.name == 'best_of_n' and t.xaxis == 'x']
    assert list(bon[0].error_y.array) == [2.5] * 7
    assert all(t.error_y.array is None for t in analysis.overoptimization_panels(oo, n_boot=50).data)


def test_paired_differences_and_seed_errors_reach_the_ranking(tmp_path):
    methods, _ = farm_tables(tmp_path)
    sft = methods.set_index('method').loc['sft10k']
    for j in ('pool', 'humans'):
        methods[f'diff_{j}'] = methods[f'win_rate_{j}'] - sft[f'win_rate_{j}']
        methods[f'diff_{j}_low'], methods[f'diff_{j}_high'] = methods[f'diff_{j}'] - 2, methods[f'diff_{j}'] + 2
        methods[f'seed_se_{j}'] = 0.5 if j == 'pool' else 0.75
    pairs = simulated_vs_human(methods, standard_errors=True).set_index('method')
    assert pairs.loc['ppo', 'simulated_diff'] == 45. - 36. and pairs.loc['ppo', 'human_diff'] == 38. - 35.
    fig = analysis.ranking_figure(pairs.reset_index())
    assert [list(t.error_y.array) for t in fig.data[1:]] == [[0.75]] * 3 and 'over seeds' in fig.layout.title.text
    forest = analysis.paired_difference_figure(methods)
    assert len(forest.data) == 2 and 'sft10k' not in list(forest.data[0].y)
