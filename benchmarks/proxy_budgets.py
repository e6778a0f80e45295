"""Proxy curves that choose each learned method's `pocket` budget (issue 19, item 1). A benchmark, not a test: long.

For every method, train once to well past its preset on the pool-labelled (`simulated`) feedback of an existing farm run
folder (read only; everything is written under --work), record a held-out proxy at budget points, and choose the budget
with `alpacafarm_nb.budgets.choose_budget` (the one-standard-error rule). No win rate on the evaluation set is read.

    OMP_NUM_THREADS=1 python benchmarks/proxy_budgets.py --run /work/runs/after-pocket --out benchmarks/results/proxy_budgets \
        [--methods reward,dpo,...] [--work /tmp/proxy_budgets]

Writes `<out>/<method>.csv` (budget, proxy columns, se, seconds) and `<out>/budgets.json` (chosen budget per method, the rule,
the command, the commit). A method whose csv exists is skipped (resumable); RL runs resume from their checkpoints.
Curves come from one long run read at its eval points / checkpoints: for the pairwise and SFT-style methods the learning-rate
schedule of the long run decays more slowly than a run stopped at the chosen budget would (say so when citing a point);
the RL methods' schedule is constant after warmup, so a checkpoint is exactly a shorter run."""
from __future__ import annotations
import argparse, json, math, subprocess, sys, time
from pathlib import Path

import numpy as np
import pandas as pd

from alpacafarm_nb.budgets import choose_budget, binomial_se, mean_se
from alpacafarm_nb.core import read_records, read_jsonl_prefix

# a priori: AlpacaFarm's Figure 4 over-optimisation curves span sqrt(KL) up to about 4.5, i.e. KL of about 20 nats
KL_CAP = 20.0
NLL_TOL = 0.005       # nats per token: held-out NLL differences below this are not a reason to train longer (no per-row SE logged)
RL_MAX_STEPS, RL_SAVE_EVERY = 60, 6
BON_N = 128
READ_ONLY = False     # --read-only: curves from the runs already in --work, nothing trained
PAIR_EPOCHS = 3.0
N_VAL = 200           # val instructions for the RL proxy reward (distinct, in split order)
BON_VAL = 100         # val instructions for best-of-n (n candidates each): the farm's n_val
SAMPLE = dict(temperature=0.7, max_new_tokens=96, batch_size=128)    # the farm's sampling settings
RL = ('ppo', 'rloo', 'grpo', 'quark', 'quark_full')
PAIRWISE = ('dpo', 'ipo', 'simpo', 'kto')
ALL = ('reward', 'binary_feedme', 'binary_reward_conditioning', 'best_of_n', 'expert_iteration', 'dpo', 'ipo', 'simpo', *RL)


def _metrics(model_dir:Path) -> list[dict]: return read_jsonl_prefix(Path(model_dir)/'metrics.jsonl')

def _evals(model_dir:Path, key:str) -> list[dict]:
    "The eval records (those with `key`) of a training run, one per step (the last one written wins)."
    by_step = {r['step']: r for r in _metrics(model_dir) if key in r}
    return [by_step[s] for s in sorted(by_step)]

def _eval_every(n_train:int, batch_size:int, per_epoch:int=4) -> int: return max(1, round(n_train / batch_size / per_epoch))

class Ctx:
    def __init__(self, run:Path, work:Path):
        self.run, self.work = run, work
        self.sft10k = str(run/'models'/'sft10k')
        self.rm = run/'models'/'reward_simulated'
        self.pairs_path = run/'preferences'/'simulated.json'
        self._world = self._rm = None
    @property
    def world(self):
        if self._world is None:
            from alpacafarm_nb.world import make_world
            self._world = make_world(0, None)
        return self._world
    def val(self, n:int|None=None) -> list[dict]:
        rows, seen = [], set()
        for r in self.world.splits['val']:
            k = (r['instruction'], r['input'])
            if k not in seen: seen.add(k); rows.append(dict(instruction=r['instruction'], input=r['input']))
        return rows[:n or N_VAL]
    def reward_model(self):
        if self._rm is None:
            from alpacafarm_nb.methods.reward_model import load_reward_model
            self._rm = load_reward_model(self.rm)
        return self._rm
    def pairs(self): return read_records(self.pairs_path, 'pair')


def curve_reward(c:Ctx) -> tuple[pd.DataFrame, dict]:
    from alpacafarm_nb.methods.reward_model import RewardModelConfig, train_reward_model
    cfg0 = RewardModelConfig.resolve('pocket')
    n_train = 3341                                            # the farm's reward_simulated: 4000 pairs - 159 ties - 500 held out
    cfg = RewardModelConfig.resolve('pocket', dict(epochs=PAIR_EPOCHS, eval_every=_eval_every(n_train, cfg0.batch_size), progress=False))
    out = c.work/'reward'
    s = {} if READ_ONLY else train_reward_model(c.sft10k, c.pairs(), out, config=cfg, resume=True)
    n_held = s.get('n_heldout', 500)
    rows = [dict(epochs=r['epoch'], pairs_seen=r['step'] * cfg.batch_size, val_accuracy=r['val_accuracy'], val_loss=r['val_loss'],
                 se=binomial_se(r['val_accuracy'], n_held), seconds=r['elapsed_s']) for r in _evals(out, 'val_accuracy')]
    df = pd.DataFrame(rows)
    pick = choose_budget(df.epochs, df.val_accuracy, df.se)
    return df, dict(budget='epochs', value=pick, proxy='val_accuracy', higher_is_better=True, held_out=n_held)


def curve_pairwise(c:Ctx, method:str) -> tuple[pd.DataFrame, dict]:
    from alpacafarm_nb.methods.dpo import DPOConfig, dpo
    loss = dict(dpo='sigmoid', ipo='ipo', simpo='simpo', kto='kto')[method]
    cfg0 = DPOConfig.resolve('pocket')
    pairs = c.pairs()
    n_train = len(pairs) - cfg0.val_size
    cfg = DPOConfig.resolve('pocket', dict(loss_type=loss, epochs=PAIR_EPOCHS, eval_every=_eval_every(n_train, cfg0.batch_size), progress=False))
    out = c.work/method
    s = {} if READ_ONLY else dpo(c.sft10k, pairs, out, config=cfg, resume=True)
    n_val = s.get('val_pairs') or cfg.val_size
    rows = [dict(epochs=r['epoch'], pairs_seen=r['step'] * cfg.batch_size, val_accuracy=r['val_reward_accuracy'],
                 val_margin=r.get('val_reward_margin'), val_loss=r['val_loss'], se=binomial_se(r['val_reward_accuracy'], n_val),
                 seconds=r['elapsed_s']) for r in _evals(out, 'val_reward_accuracy')]
    df = pd.DataFrame(rows)
    pick = choose_budget(df.epochs, df.val_accuracy, df.se)
    return df, dict(budget='epochs', value=pick, proxy='val_accuracy', higher_is_better=True, held_out=n_val, pairs=s.get('pairs'))


def curve_binary(c:Ctx, method:str) -> tuple[pd.DataFrame, dict]:
    from alpacafarm_nb.methods.binary import FeedMEConfig, RewardConditioningConfig, feedme, reward_conditioning
    cls, fn = (FeedMEConfig, feedme) if method == 'binary_feedme' else (RewardConditioningConfig, reward_conditioning)
    cfg0 = cls.resolve('pocket')
    pairs = c.pairs()
    per_pair = 1 if method == 'binary_feedme' else 2
    n_train = (len(pairs) - cfg0.val_size) * per_pair
    cfg = cls.resolve('pocket', dict(epochs=PAIR_EPOCHS, eval_every=_eval_every(n_train, cfg0.batch_size), progress=False))
    out = c.work/method
    if not READ_ONLY: fn(c.sft10k, pairs, out, config=cfg, resume=True)
    rows = [dict(epochs=r['epoch'], val_nll=r['val_loss'], se=NLL_TOL, seconds=r['elapsed_s']) for r in _evals(out, 'val_loss')]
    df = pd.DataFrame(rows)
    pick = choose_budget(df.epochs, df.val_nll, None, higher_is_better=False, tol=NLL_TOL)
    return df, dict(budget='epochs', value=pick, proxy='val_nll', higher_is_better=False, tol=NLL_TOL)


def _bon_rows(scored:list[dict], ns) -> list[dict]:
    from alpacafarm_nb.methods.best_of_n import select_best, kl_bound
    out = []
    for n in ns:
        r = [x['reward'] for x in select_best(scored, n)]
        out.append(dict(n=n, kl_bound=kl_bound(n), proxy_reward=float(np.mean(r)), se=mean_se(r)))
    return out

def curve_best_of_n(c:Ctx) -> tuple[pd.DataFrame, dict]:
    from alpacafarm_nb.methods.best_of_n import BestOfNConfig, sample_candidates, score_candidates
    cfg = BestOfNConfig.resolve('pocket')
    n_max = BON_N
    t0 = time.time()
    cands = sample_candidates(c.sft10k, c.val(BON_VAL), n_max, cfg, 0, c.work/'best_of_n_val.jsonl', False, generator='sft10k')
    t_sample = time.time() - t0
    scored = score_candidates(c.reward_model(), cands, cfg.score_batch_size)
    t_score = time.time() - t0 - t_sample
    per_cand = (t_sample + t_score) / len(cands)
    ns = [2 ** k for k in range(int(math.log2(n_max)) + 1)]
    df = pd.DataFrame(_bon_rows(scored, ns))
    # seconds: what sampling + scoring n candidates for each of the farm's 805 evaluation instructions costs at this rate
    df['seconds'] = [per_cand * n * 805 for n in df.n]
    pick = choose_budget(df.n, df.proxy_reward, df.se)
    return df, dict(budget='n', value=int(pick), proxy='proxy_reward', higher_is_better=True, val_instructions=BON_VAL,
                    seconds_per_candidate=per_cand)


def curve_expert_iteration(c:Ctx, n:int) -> tuple[pd.DataFrame, dict]:
    "SFT epochs by the held-out NLL of held-out best-of-n samples (the farm's candidates, `n` per prompt, scored by the pool RM)."
    from alpacafarm_nb.methods.best_of_n import score_candidates, select_best
    from alpacafarm_nb.methods.expert_iteration import ExpertIterationConfig
    from alpacafarm_nb.methods.sft import SFTConfig, sft
    ei = ExpertIterationConfig.resolve('pocket')
    cands = read_jsonl_prefix(c.run/'samples'/'expert_iteration_unlabeled.jsonl')
    have = 1 + max(int(x['sample_id']) for x in cands)
    n = min(n, have)
    scored = score_candidates(c.reward_model(), [x for x in cands if int(x['sample_id']) < n], 256)
    chosen = [dict(instruction=x['instruction'], input=x['input'], output=x['output']) for x in select_best(scored, n)]
    held, train = chosen[:50], chosen[50:]
    base = SFTConfig.resolve(ei.sft_preset, dict(lr=ei.sft_lr) if ei.sft_lr else {})
    cfg = SFTConfig.resolve(ei.sft_preset, dict(epochs=PAIR_EPOCHS, lr=base.lr, eval_every=_eval_every(len(train), base.batch_size), progress=False))
    out = c.work/'expert_iteration'
    sft(c.sft10k, train, out, val_rows=held, config=cfg, resume=True)
    rows = [dict(epochs=r['epoch'], val_nll=r['val_loss'], se=NLL_TOL, seconds=r['elapsed_s']) for r in _evals(out, 'val_loss')]
    df = pd.DataFrame(rows)
    pick = choose_budget(df.epochs, df.val_nll, None, higher_is_better=False, tol=NLL_TOL)
    return df, dict(budget='sft_epochs', value=pick, proxy='val_nll', higher_is_better=False, tol=NLL_TOL, n=n,
                    candidates_on_disk=have, train_prompts=len(train), held_out_prompts=len(held))


def _kl_window(logged:dict, step:int, every:int) -> float|None:
    "Mean logged KL (on each step's rollouts) over the steps since the previous checkpoint: one step's value is noisy."
    v = [logged[s]['kl'] for s in range(max(1, step - every + 1), step + 1) if s in logged and logged[s].get('kl') is not None]
    return float(np.mean(v)) if v else None

def _rl_seconds(logged:dict, step:int) -> float:
    "Training seconds up to `step`: the sum of the logged step times (a resumed run restarts its elapsed clock)."
    return float(sum(logged[s].get('step_seconds') or 0.0 for s in logged if s <= step))

def curve_rl(c:Ctx, method:str) -> tuple[pd.DataFrame, dict]:
    """Train in chunks of `save_every` steps (resuming), stop once the KL (mean over the chunk) passes KL_CAP or at
    RL_MAX_STEPS; then sample every checkpoint on the val prompts and score the samples with the pool reward model."""
    from alpacafarm_nb.registry import REGISTRY
    from alpacafarm_nb.stages import sample_policy
    from alpacafarm_nb.methods.reward_model import score_rewards
    m = REGISTRY[method]
    every = max(1, RL_MAX_STEPS // 10)
    over = {**m.per_feedback.get('simulated', {}), 'max_steps': RL_MAX_STEPS, 'save_every': every, **m.fixed, 'progress': False}
    cfg = m.config.resolve('pocket', over)
    out = c.work/method
    t0 = time.time()
    prompts = list(c.world.splits['unlabeled'])
    for stop in range(every, RL_MAX_STEPS + 1, every):
        if READ_ONLY or (out/'checkpoints'/f'step_{stop:07d}'/'policy').is_dir(): continue
        m.train(c.sft10k, c.rm, prompts, out, config=cfg, resume=True, stop_after=stop if stop < RL_MAX_STEPS else None)
        kl = _kl_window({r['step']: r for r in _metrics(out)}, stop, every)
        print(f'{method}: step {stop}, KL {kl}', flush=True)
        if kl is not None and kl > KL_CAP: break
    t_train = time.time() - t0
    logged = {r['step']: r for r in _metrics(out)}
    val = c.val()
    first = logged.get(1, {})
    rows = []
    # step 0: SFT10k itself on the val prompts (KL 0)
    points = [(0, Path(c.sft10k))] + sorted((int(d.name.split('_')[1]), d/'policy') for d in (out/'checkpoints').glob('step_*') if (d/'policy').is_dir())
    for step, folder in points:
        t1 = time.time()
        samples = sample_policy(folder, val, f'{method}_step{step}', 0, False, **SAMPLE)
        r = score_rewards(c.reward_model(), samples, 128)
        rows.append(dict(steps=step, kl=0.0 if step == 0 else _kl_window(logged, step, every), kl_step=0.0 if step == 0 else logged.get(step, {}).get('kl'),
                         proxy_reward=float(np.mean(r)), se=mean_se(r), train_reward=logged.get(step, first).get('reward'),
                         seconds=_rl_seconds(logged, step), eval_seconds=time.time() - t1))
    df = pd.DataFrame(rows)
    ok = df[(df.steps > 0) & (df.kl.fillna(0) <= KL_CAP)]
    pick = int(choose_budget(ok.steps, ok.proxy_reward, ok.se))
    return df, dict(budget='max_steps', value=pick, proxy='proxy_reward', higher_is_better=True, kl_cap=KL_CAP,
                    save_every=max(1, pick // 5), train_seconds_this_run=round(t_train, 1), val_instructions=len(val), max_steps_tried=RL_MAX_STEPS)


def _commit() -> str:
    try: return subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True, check=True).stdout.strip()
    except Exception: return 'unknown'

def main(argv=None) -> int:
    global PAIR_EPOCHS, RL_MAX_STEPS, BON_N, READ_ONLY
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--run', required=True, help='a complete farm run folder (read only)')
    p.add_argument('--out', default='benchmarks/results/proxy_budgets')
    p.add_argument('--work', default='/tmp/proxy_budgets', help='where the training runs go')
    p.add_argument('--methods', default=','.join(ALL))
    p.add_argument('--pair-epochs', type=float, default=PAIR_EPOCHS, help='how far the pairwise / SFT-style curves go')
    p.add_argument('--rl-max-steps', type=int, default=RL_MAX_STEPS, help='how far the RL curves go')
    p.add_argument('--read-only', action='store_true', help='train nothing: read the curve from the training runs already in --work (a run cut short by time)')
    p.add_argument('--bon-n', type=int, default=128, help='the largest n of the best-of-n curve (a power of 2)')
    a = p.parse_args(argv)
    PAIR_EPOCHS, RL_MAX_STEPS, BON_N, READ_ONLY = a.pair_epochs, a.rl_max_steps, a.bon_n, a.read_only
    run, out, work = Path(a.run), Path(a.out), Path(a.work)
    if not (run/'preferences'/'simulated.json').is_file():
        print(f"{run}: not a farm run folder (no preferences/simulated.json)", file=sys.stderr); return 2
    out.mkdir(parents=True, exist_ok=True); work.mkdir(parents=True, exist_ok=True)
    c = Ctx(run, work)
    for method in [m.strip() for m in a.methods.split(',') if m.strip()]:
        csv, meta_path = out/f'{method}.csv', out/f'{method}.json'
        if csv.is_file() and meta_path.is_file(): print(f'{method}: {csv} exists, skipped', flush=True); continue
        t0 = time.time()
        if method == 'reward': df, meta = curve_reward(c)
        elif method in PAIRWISE: df, meta = curve_pairwise(c, method)
        elif method.startswith('binary_'): df, meta = curve_binary(c, method)
        elif method == 'best_of_n': df, meta = curve_best_of_n(c)
        elif method == 'expert_iteration':
            bon = out/'best_of_n.json'
            n = json.loads(bon.read_text())['value'] if bon.is_file() else 16
            df, meta = curve_expert_iteration(c, n)
        elif method in RL: df, meta = curve_rl(c, method)
        else: print(f"--methods: unknown method {method!r}; choose from {', '.join(ALL)}", file=sys.stderr); return 2
        last = df.iloc[-1]
        meta['curve_end_is_best'] = bool(last[meta['proxy']] == (df[meta['proxy']].max() if meta['higher_is_better'] else df[meta['proxy']].min()))
        meta['read_only'] = READ_ONLY
        meta.update(method=method, wall_seconds=round(time.time() - t0, 1), feedback='simulated', curve_epochs=PAIR_EPOCHS if method not in RL else None,
                    load_note='measured on 2 cores shared with other jobs: seconds are slower than an idle machine')
        df.round(6).to_csv(csv, index=False)
        meta_path.write_text(json.dumps(meta, indent=1, default=float) + '\n')
        print(f"{method}: {meta['budget']}={meta['value']} ({meta['proxy']}); {meta['wall_seconds']} s", flush=True)
    chosen = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob('*.json')) if p.name != 'budgets.json'}
    (out/'budgets.json').write_text(json.dumps(dict(
        rule='one-standard-error rule: the smallest budget whose held-out proxy is within one SE (at the best point; NLL: a tolerance '
             f'of {NLL_TOL} nats/token) of the best point of the curve (alpacafarm_nb.budgets.choose_budget); RL: checkpoints with KL <= {KL_CAP} nats',
        feedback='simulated (the pool-labelled preferences of the run folder)', run=str(run),
        command='OMP_NUM_THREADS=1 python ' + ' '.join([sys.argv[0], *(argv or sys.argv[1:])]), commit=_commit(),
        methods=chosen), indent=1, default=float) + '\n')
    return 0

if __name__ == '__main__': sys.exit(main())
