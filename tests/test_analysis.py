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
