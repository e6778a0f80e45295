"""Calibrate the pocket crowd, the 13-judge pocket pool and the greedy pocket judge to AlpacaEval's published evaluator rows.

On the fixed pocket cross-annotation set (`pocket_judges.cross_annotation_pairs`, 2,200 pairs; 4 humans per pair, 4 seeded
repeats of the pool and of the greedy judge), the four figures of each annotator (agreement with the human majority, variance,
P(prefer longer), P(prefer lists) with the 2023 list definition) are computed *in expectation* from the exact choice
probabilities (`pocket_human_prob`, `pocket_judge_prob`): a smooth objective that a small Nelder-Mead search can minimise.
The search moves only the crowd's and the judges' parameters; the world, the quality function and the evaluator are untouched.

    PYTHONPATH=. python benchmarks/calibrate_pocket.py            # print expected and sampled figures for the current constants
    PYTHONPATH=. python benchmarks/calibrate_pocket.py --search   # also search, print the parameters to paste into the notebooks
    PYTHONPATH=. python benchmarks/calibrate_pocket.py --out-annotations /tmp/cross.json   # then `alpacafarm judge-metrics` on it
"""
import argparse, dataclasses, sys, time
import numpy as np, pandas as pd
from scipy.optimize import minimize

from alpacafarm_nb import world, pocket_judges as pj
from alpacafarm_nb.core import stable_rng
from alpacafarm_nb.annotators import make_pool, pair_decisions, shown_example, annotate_pairs
from alpacafarm_nb.judge_metrics import judge_metrics, has_list_2023

TARGETS = dict(humans=(0.657, 0.343, 0.636, 0.607), pocket=(0.606, 0.324, 0.591, 0.616), pocket_greedy=(0.665, 0.184, 0.587, 0.598))
FIGURES = ('agreement', 'variance', 'p_longer', 'p_lists')

def crowd_assignment(pairs, n_humans=4):
    names = sorted(world.CROWD)
    return [list(stable_rng('calibration-humans', i).choice(names, n_humans, replace=False)) for i in range(len(pairs))]

def pool_assignment(pairs, pool_name, seeds=range(4)):
    pool = make_pool(pool_name)
    return [[(pool.judges[pool.assign(r, s)].name, pair_decisions(r, s)['swap']) for s in seeds] for r in pairs]

def crowd_probs(pairs, humans):
    return np.array([[world.pocket_human_prob(r, 0, human=h) for h in hs] for r, hs in zip(pairs, humans)])

def judge_probs(pairs, assign):
    out = np.empty((len(pairs), len(assign[0])))
    for n, (r, row) in enumerate(zip(pairs, assign)):
        for s, (j, swap) in enumerate(row):
            p = pj.pocket_judge_prob(shown_example(r, swap), s, judge=j)
            out[n, s] = 1 - p if swap else p
    return out

def _maj3(a, b, c): return a*b + a*c + b*c - 2*a*b*c          # P(majority of three independent votes says output_2)

def _maj_others(P, j):
    o = np.delete(P, j, 1); return _maj3(o[:, 0], o[:, 1], o[:, 2])

def expected_figures(P, H, longer2, keep_len, list2, keep_list, reference=False):
    "Expected agreement with the human majority, variance, P(longer), P(lists) of an annotator with per-repeat probabilities P."
    agree_self = [np.mean(P[:, i]*_maj_others(P, i) + (1-P[:, i])*(1-_maj_others(P, i))) for i in range(P.shape[1])]
    variance = 1 - np.mean(agree_self)
    if reference: agreement = 1 - variance
    else: agreement = np.mean([np.mean(P[:, i]*_maj_others(H, j) + (1-P[:, i])*(1-_maj_others(H, j)))
                              for j in range(H.shape[1]) for i in range(P.shape[1])])
    p0 = P[:, 0]
    p_longer = np.mean(np.where(longer2, p0, 1 - p0)[keep_len])
    p_lists = np.mean(np.where(list2, p0, 1 - p0)[keep_list])
    return np.array([agreement, variance, p_longer, p_lists])

def sampled_annotations(pairs, humans, seeds=range(4)):
    "The cross-annotations as the calibration report builds them: 4 humans per pair, 4 seeded repeats of each pool."
    rows = [dict(r, annotator='humans', seed=k, judge=h, preference=world.pocket_human(r, 0, human=h))
            for r, hs in zip(pairs, humans) for k, h in enumerate(hs)]
    frames = [pd.DataFrame(rows)]
    for pool in ('pocket', 'pocket_greedy'):
        for s in seeds:
            d = annotate_pairs(pairs, pool, seed=s, cache_path=False, progress=False)
            frames.append(d.assign(judge=d['annotator'], annotator=pool, seed=s))
    return pd.concat(frames, ignore_index=True)

def sampled_figures(ann):
    jm = judge_metrics(ann, 'seed', reference_annotator='humans', list_definition='alpaca_eval_2023')
    return jm.rename(columns=dict(agreement_with_reference='agreement', proba_prefer_longer='p_longer',
                                  proba_prefer_lists='p_lists'))[list(FIGURES)]

# --- the parameters the search moves --------------------------------------------------------------------------------------
def set_crowd(len_mid, list_mid, temp_scale, sweet_scale):
    len_mid, list_mid, sweet_scale = np.clip(len_mid, 0, 4), np.clip(list_mid, -0.05, 0.6), np.clip(sweet_scale, 0.5, 2.5)
    R = dict(w_length=(round(len_mid - 0.3, 3), round(len_mid + 0.3, 3)), w_list=(round(list_mid - 0.25, 3), round(list_mid + 0.25, 3)),
             temperature=(round(1.0 * temp_scale, 3), round(1.6 * temp_scale, 3)), sweet_words=(round(15 * sweet_scale, 1), round(40 * sweet_scale, 1)))
    world.CROWD.clear(); world.CROWD.update(world._make_crowd(ranges=R))
    return R

BASE_STYLES = {k: dict(v) for k, v in pj.STYLES.items()}
BASE_TIERS = {k: dict(v) for k, v in pj.TIERS.items()}
def set_pool(d_len, d_list, noise_scale, shared):
    pj.SHARED_OPINION = round(shared, 3)
    for k, v in BASE_STYLES.items():
        if k != 'greedy': pj.STYLES[k].update(w_len=round(v['w_len'] + d_len, 3), w_list=round(v['w_list'] + d_list, 3))
    for k, v in BASE_TIERS.items(): pj.TIERS[k]['noise'] = round(v['noise'] * noise_scale, 3)

def set_greedy(w_len, w_list, opinion, shared):
    pj.STYLES['greedy'].update(w_len=round(w_len, 3), w_list=round(w_list, 3))
    pj.JUDGES['pocket_greedy'] = dataclasses.replace(pj.JUDGES['pocket_greedy'], opinion=round(max(opinion, 0), 3), shared=round(max(shared, 0), 3))

def main(argv=None):
    ap = argparse.ArgumentParser(); ap.add_argument('--search', action='store_true'); ap.add_argument('--no-sampled', action='store_true')
    ap.add_argument('--out-annotations', metavar='JSON', help='also write the sampled cross-annotations (for `alpacafarm judge-metrics`)')
    a = ap.parse_args(argv)
    t0 = time.time()
    pairs = pj.cross_annotation_pairs()
    humans = crowd_assignment(pairs)
    pool_as, greedy_as = pool_assignment(pairs, 'pocket'), pool_assignment(pairs, 'pocket_greedy')
    l1 = np.array([len(r['output_1']) for r in pairs]); l2 = np.array([len(r['output_2']) for r in pairs])
    h1 = np.array([has_list_2023(r['output_1']) for r in pairs]); h2 = np.array([has_list_2023(r['output_2']) for r in pairs])
    geo = dict(longer2=l2 > l1, keep_len=np.abs(l1 - l2) > 30, list2=h2, keep_list=h1 != h2)
    print(f"{len(pairs)} pairs; {geo['keep_len'].sum()} differ in length by > 30 chars, {geo['keep_list'].sum()} have exactly one list (2023 def) [{time.time()-t0:.0f}s]")
    def figs():
        H = crowd_probs(pairs, humans)
        return dict(humans=expected_figures(H, H, **geo, reference=True), pocket=expected_figures(judge_probs(pairs, pool_as), H, **geo),
                    pocket_greedy=expected_figures(judge_probs(pairs, greedy_as), H, **geo))
    def show(f, title):
        print(title)
        for k, v in f.items(): print(f"  {k:14s} " + '  '.join(f"{n}={x:.3f} (target {t:.3f})" for n, x, t in zip(FIGURES, v, TARGETS[k])))
    show(figs(), 'expected figures, current constants:')
    if a.search:
        loss = lambda f, k: float(np.sum(((f - np.array(TARGETS[k])) / np.array([0.03, 0.04, 0.03, 0.03]))**2))
        def crowd_loss(x):
            set_crowd(*x); H = crowd_probs(pairs, humans); return loss(expected_figures(H, H, **geo, reference=True), 'humans')
        x0 = np.array([2.5, -0.05, 1.3, 1.5])
        r = minimize(crowd_loss, x0, method='Nelder-Mead', options=dict(maxfev=70, xatol=0.01, fatol=0.01,
                     initial_simplex=[x0] + [x0 + d for d in np.diag([0.3, 0.1, 0.15, 0.3])]))
        print('crowd:', set_crowd(*r.x), 'loss', r.fun)
        H = crowd_probs(pairs, humans)
        def pool_loss(x):
            set_pool(*x); return loss(expected_figures(judge_probs(pairs, pool_as), H, **geo), 'pocket')
        x0 = np.array([0.465, 0.195, 2.369, 0.62])
        r = minimize(pool_loss, x0, method='Nelder-Mead', options=dict(maxfev=70, xatol=0.01, fatol=0.01,
                     initial_simplex=[x0] + [x0 + d for d in np.diag([0.1, 0.1, -0.2, 0.2])]))
        set_pool(*r.x); print("pool: SHARED_OPINION", pj.SHARED_OPINION, "STYLES", pj.STYLES, "TIERS", pj.TIERS, "loss", r.fun)
        def greedy_loss(x):
            set_greedy(*x); return loss(expected_figures(judge_probs(pairs, greedy_as), H, **geo), 'pocket_greedy')
        x0 = np.array([0.325, 0.626, 0.857, 0.238])
        r = minimize(greedy_loss, x0, method='Nelder-Mead', options=dict(maxfev=50, xatol=0.01, fatol=0.01,
                     initial_simplex=[x0] + [x0 + d for d in np.diag([0.1, 0.1, 0.2, 0.3])]))
        set_greedy(*r.x); print('greedy:', pj.STYLES['greedy'], pj.JUDGES['pocket_greedy'], 'loss', r.fun)
        show(figs(), 'expected figures, searched constants:')
    if not a.no_sampled:
        print('sampled figures (judge_metrics, --list-definition alpaca_eval_2023):')
        ann = sampled_annotations(pairs, humans)
        print(sampled_figures(ann).round(3).to_string())
        if a.out_annotations:
            cols = ['annotator', 'seed', 'judge', 'instruction', 'input', 'output_1', 'output_2', 'generator_1', 'generator_2', 'stratum', 'preference']
            costs = [pj.simulated_cost(j) for j in ann['judge']]      # the published price and time of each, simulated
            ann = ann.assign(price_per_example=[c['price_per_example'] for c in costs], time_per_example=[c['time_per_example'] for c in costs],
                             price_is_simulated=True)
            ann[cols + ['price_per_example', 'time_per_example', 'price_is_simulated']].to_json(a.out_annotations, orient='records')
            print(f"wrote {a.out_annotations}: alpacafarm judge-metrics {a.out_annotations} --repeat-key seed --reference-annotator humans "
                  "--list-definition alpaca_eval_2023")
    print(f"[{time.time()-t0:.0f}s]")

if __name__ == '__main__': sys.exit(main())
