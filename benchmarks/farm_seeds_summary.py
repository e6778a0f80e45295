"""The figures a closing note or a paper section takes from a several-seed farm run (`alpacafarm farm --seeds 0,1,2`): not a test.

    .venv/bin/python benchmarks/farm_seeds_summary.py RUN [--fit-boot 300]

Prints, from RUN's tables (nothing is recomputed but the Gao fits):
- every method row of methods.csv: pool and crowd win rates (sampled mean over seeds ± seed SE, expected), the paired difference
  from SFT10k with its 95% interval (intervals combined over seeds as methods_over_seeds does), and the average length;
- ranking.json: the learned methods and AlpacaFarm's Figure 3 system set, with intervals over methods and over seeds and instructions;
- the length-controlled win rates (methods.csv's `lc_win_rate_*`, AlpacaEval 2's GLM) of every learned method's row and SFT10k,
  per judge, mean over seeds, next to the raw ones and the average length: how much of a gain is length;
- the over-optimisation curves of PPO (every feedback source), best-of-n and expert iteration: per checkpoint the KL, proxy reward
  and the feedback source's own judge's win rate (mean over seeds ± seed SE), and Gao et al.'s fits (analysis.overoptimization_fits).
"""
import argparse, json
from pathlib import Path

import pandas as pd

from alpacafarm_nb.analysis import overoptimization_fits, curve_points, FEEDBACK_JUDGE


def fmt(v, se=None, signed=False):
    if pd.isna(v): return '-'
    s = f"{v:+.1f}" if signed else f"{v:.1f}"
    return s + (f" ± {se:.1f}" if se is not None and not pd.isna(se) else '')


def methods_table(m: pd.DataFrame) -> str:
    lines = ["| method | trained on | pool (mean ± seed SE) | pool expected | diff pool [95% CI] | crowd (mean ± seed SE) | crowd expected | diff crowd [95% CI] | length |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in m.to_dict('records'):
        d = lambda j: (f"{fmt(r[f'diff_{j}'], signed=True)} [{fmt(r[f'diff_{j}_low'], signed=True)}, {fmt(r[f'diff_{j}_high'], signed=True)}]"
                       if f'diff_{j}' in r and not pd.isna(r[f'diff_{j}']) else '-')
        lines.append(f"| {r['method']} | {r['feedback']} | {fmt(r['win_rate_pool'], r.get('seed_se_pool'))} | {fmt(r.get('expected_win_rate_pool'))} | {d('pool')} "
                     f"| {fmt(r['win_rate_humans'], r.get('seed_se_humans'))} | {fmt(r.get('expected_win_rate_humans'))} | {d('humans')} | {r['avg_length']:.0f} |")
    return '\n'.join(lines)


def corr_line(r: dict) -> str:
    parts = [f"{k} {r[k]['value']:.2f} [{r[k]['ci_low']:.2f}, {r[k]['ci_high']:.2f}]" for k in ('spearman', 'kendall', 'pearson') if isinstance(r.get(k), dict)]
    return '; '.join(parts) or r.get('note', '')


def lc_table(m: pd.DataFrame):
    "Length-controlled win rates (methods.csv's `lc_win_rate_*`, fitted over each seed's rows, mean over seeds) of SFT10k and every learned row."
    if 'lc_win_rate_pool' not in m:
        print("\n(no lc_win_rate_* columns: a run from before they were added; `alpacafarm farm` on the folder rewrites the tables)"); return
    t = m[(m['feedback'] != 'none') | (m['method'] == 'sft10k')].sort_values('win_rate_humans', ascending=False)
    print("\nlength-controlled win rates (methods.csv: fitted over each seed's rows, mean over seeds; raw -> LC):")
    for r in t.to_dict('records'):
        name = r['method'] if r['feedback'] == 'none' else f"{r['method']}_{r['feedback']}"
        print(f"  {name:36s} pool {r['win_rate_pool']:5.1f} -> {r['lc_win_rate_pool']:5.1f}   "
              f"crowd {r['win_rate_humans']:5.1f} -> {r['lc_win_rate_humans']:5.1f}   length {r['avg_length']:4.0f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('run', type=Path)
    p.add_argument('--fit-boot', type=int, default=300, help='bootstrap resamples of each Gao fit')
    a = p.parse_args()
    res = json.loads((a.run / 'results.json').read_text())
    print(f"{a.run}: preset {res['preset']}, seeds {res.get('seeds', [res['seed']])}\n")
    m = pd.read_csv(a.run / 'methods.csv')
    print(methods_table(m), '\n')
    rank = json.loads((a.run / 'ranking.json').read_text())
    for name, r in (('learned methods', rank), ("AlpacaFarm's Figure 3 system set", rank.get('system_set') or {})):
        if not r: continue
        print(f"ranking, {name} (n = {r.get('n')}): over methods: {corr_line(r)}")
        si = r.get('seeds_and_instructions')
        if si: print(f"    resampling seeds and instructions ({si.get('n_seeds')} seeds): {corr_line(si)}")
    lc_table(m)
    over = pd.read_csv(a.run / 'overoptimization.csv')
    pts = curve_points(over, ['win_rate_pool', 'win_rate_humans'])
    print()
    for (meth, fb), g in pts.groupby(['method', 'feedback'], sort=False):
        if meth not in ('ppo', 'best_of_n', 'expert_iteration'): continue
        j = FEEDBACK_JUDGE.get(fb, 'win_rate_pool')
        se = 'seed_se_' + j[len('win_rate_'):]
        cells = [f"x={int(r['x'])}: KL {r['kl']:.1f}, proxy {r['proxy_reward']:+.2f}, {fmt(r[j], r.get(se))}"
                 for r in g.sort_values('x').to_dict('records')]
        print(f"{meth} on {fb} feedback, judged by {j[len('win_rate_'):]}: " + ' | '.join(cells))
    fits = overoptimization_fits(over[over['method'].isin(['ppo', 'best_of_n'])], ['win_rate_pool', 'win_rate_humans'], n_boot=a.fit_boot)
    print("\nGao et al. fits (gain over the start, points; peak KL and value with bootstrap intervals):")
    for r in fits.to_dict('records'):
        if not r['fitted']: print(f"  {r['method']} {r['feedback']} {r['y']}: not fitted ({r['note']})"); continue
        peak = (f"peak {r['peak_value']:+.1f} [{r['peak_value_low']:+.1f}, {r['peak_value_high']:+.1f}] at KL {r['peak_kl']:.2f} [{r['peak_low']**2 if r['peak_low'] == r['peak_low'] else float('nan'):.2f}, "
                f"{r['peak_high']**2 if r['peak_high'] == r['peak_high'] else float('nan'):.2f}]" if r['has_peak'] else "no peak (never turns down)")
        print(f"  {r['method']} {r['feedback']} judged by {r['y'][len('win_rate_'):]}: {r['form']} form, {peak}, in range {r['peak_in_range']}, r2 {r['r2']:.2f}, {r['n']} points")


if __name__ == '__main__':
    main()
