"""Preference data, reward models, best-of-n and expert iteration across modules: bad input gets one line and exit code 2,
a saved reward model gives the same rewards through a plain Hugging Face forward as through `alpacafarm reward`, and the
`reward_model` judge uses the same rewards."""
import json, math, os, subprocess, sys
from pathlib import Path

import pytest
import torch

from alpacafarm_nb.core import read_records, write_records
from alpacafarm_nb.data import format_prompt

ROOT = Path(__file__).resolve().parent.parent

CLI = {  # the functions behind `alpacafarm preferences | train reward | reward | best-of-n`
    'preferences': ('alpacafarm_nb.preferences', 'preferences_cli'),
    'train-reward': ('alpacafarm_nb.methods.reward_model', 'train_reward_cli'),
    'reward': ('alpacafarm_nb.methods.reward_model', 'reward_cli'),
    'best-of-n': ('alpacafarm_nb.methods.best_of_n', 'best_of_n_cli'),
}
SUBCOMMAND = {'train-reward': 'train reward'}   # the name `alpacafarm` gives it in its messages


def run_cli(name, *args, env=None):
    mod, fn = CLI[name]
    sub = SUBCOMMAND.get(name, name)    # through the one error handler of the `alpacafarm` command, as a user runs it
    code = f"import sys; from alpacafarm_nb.cli import run_subcommand; from {mod} import {fn}; sys.exit(run_subcommand({sub!r}, {fn}, sys.argv[1:]))"
    e = dict(os.environ if env is None else env)
    e['PYTHONPATH'] = str(ROOT) + os.pathsep + e.get('PYTHONPATH', '')
    e.setdefault('OMP_NUM_THREADS', '1'); e.setdefault('HF_HUB_OFFLINE', '1')
    return subprocess.run([sys.executable, '-c', code, *map(str, args)], capture_output=True, text=True, timeout=300, env=e)


def one_line_error(r):
    "Exit code 2 and exactly one non-empty line on stderr, no traceback."
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert len(lines) == 1, r.stderr[-2000:]
    return lines[0]


WORDS = "cat dog bird fish tree lake hill road star moon".split()


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    "A tiny policy folder and a reward model trained on it for a few steps ('longer is better')."
    from alpacafarm_nb.models import make_pocket_model, save_policy
    from alpacafarm_nb.methods.reward_model import train_reward_model, RewardModelConfig
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp('methods')
    m, t = make_pocket_model('pocket-tiny', [' '.join(WORDS)] * 20 + [format_prompt('Say it.', '')] * 10,
                             n_layer=1, n_embd=32, n_head=2, vocab_size=300)
    save_policy(m, t, d / 'sft')
    pairs = [dict(instruction=f'Say {w}.', input='', output_1=' '.join(WORDS[:a]), output_2=' '.join(WORDS[:b]),
                  preference=1.0 if a > b else 2.0)
             for w in WORDS for a, b in [(3, 1), (2, 5), (7, 4)]]
    cfg = RewardModelConfig.resolve('pocket-quick', dict(max_steps=5, eval_pairs=5, crowd_humans=0, progress=False, report_to='none'))
    train_reward_model(d / 'sft', pairs, d / 'rm', cfg)
    return dict(dir=d, policy=d / 'sft', rm=d / 'rm', pairs=pairs)


def test_preference_outside_the_allowed_labels_is_one_line(models, tmp_path):
    bad = models['pairs'][:3]
    bad[2] = dict(bad[2], preference=3)
    write_records(bad, tmp_path / 'prefs.json')
    line = one_line_error(run_cli('train-reward', '--model', models['policy'], '--data', tmp_path / 'prefs.json', '--out', tmp_path / 'rm'))
    assert 'prefs.json' in line and 'row 2' in line and "field 'preference'" in line, line
    # a continuous preference (allowed by AlpacaEval annotations) is not a preference-data label either
    write_records([dict(models['pairs'][0], preference=1.3)], tmp_path / 'p2.json')
    line = one_line_error(run_cli('train-reward', '--model', models['policy'], '--data', tmp_path / 'p2.json', '--out', tmp_path / 'rm'))
    assert 'row 0' in line and "field 'preference'" in line, line


def test_causal_lm_given_as_reward_model_is_one_line(models, tmp_path):
    write_records([dict(instruction='Say cat.', input='', output='cat')], tmp_path / 'outs.json')
    line = one_line_error(run_cli('reward', '--model', models['policy'], '--outputs', tmp_path / 'outs.json', '--out', tmp_path / 'x.json'))
    assert 'not a reward model' in line and 'config.json' in line and "field 'architectures'" in line, line
    line = one_line_error(run_cli('best-of-n', '--policy', models['policy'], '--reward-model', models['policy'],
                                  '--instructions', tmp_path / 'outs.json', '--n', '2', '--out', tmp_path / 'b.json'))
    assert 'not a reward model' in line, line


def test_n_below_one_is_one_line(models, tmp_path):
    write_records([dict(instruction='Say cat.', input='')], tmp_path / 'i.json')
    line = one_line_error(run_cli('best-of-n', '--policy', models['policy'], '--reward-model', models['rm'],
                                  '--instructions', tmp_path / 'i.json', '--n', '0', '--out', tmp_path / 'b.json'))
    assert '--n must be >= 1' in line, line


def test_instructions_without_instruction_is_one_line(models, tmp_path):
    write_records([dict(instruction='Say cat.'), dict(prompt='Say dog.')], tmp_path / 'i.json')
    for r in (run_cli('best-of-n', '--policy', models['policy'], '--reward-model', models['rm'], '--instructions', tmp_path / 'i.json',
                      '--n', '2', '--out', tmp_path / 'b.json'),
              run_cli('preferences', '--policy', models['policy'], '--instructions', tmp_path / 'i.json', '--annotator', 'human',
                      '--out', tmp_path / 'p.json')):
        line = one_line_error(r)
        assert 'i.json' in line and 'row 1' in line and "field 'instruction'" in line, line


def test_hf_forward_equals_alpacafarm_reward(models, tmp_path):
    "The saved reward model, loaded the plain Hugging Face way, gives `alpacafarm reward`'s rewards to 1e-5."
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    recs = [dict(instruction=f'Say {w}.', input='with some input' if i % 3 == 0 else '', output=' '.join(WORDS[:1 + i % 9]))
            for i, w in enumerate(WORDS * 2)]
    write_records(recs, tmp_path / 'outs.json')
    r = run_cli('reward', '--model', models['rm'], '--outputs', tmp_path / 'outs.json', '--out', tmp_path / 'scored.json', '--batch-size', '7')
    assert r.returncode == 0, r.stderr[-2000:]
    scored = read_records(tmp_path / 'scored.json')
    assert [s['output'] for s in scored] == [x['output'] for x in recs]
    model = AutoModelForSequenceClassification.from_pretrained(models['rm']).eval()
    tok = AutoTokenizer.from_pretrained(models['rm'])
    assert type(model).__name__ == 'GPT2ForSequenceClassification' and model.config.num_labels == 1
    hf = []
    for x in recs:
        ids = (tok(format_prompt(x['instruction'], x['input']), add_special_tokens=True).input_ids
               + tok(x['output'], add_special_tokens=False).input_ids + [tok.eos_token_id])
        with torch.no_grad(): hf.append(float(model(torch.tensor([ids])).logits[0, 0]))
    assert max(abs(a - s['reward']) for a, s in zip(hf, scored)) < 1e-5
    assert max(hf) - min(hf) > 1e-3   # the rewards differ: the comparison is not vacuous


def test_reward_model_judge_uses_the_reward_model(models):
    "The `reward_model` judge backend: preference = 1 + sigmoid(beta * (r_2 - r_1)) with the reward model's rewards."
    from alpacafarm_nb.judges import make_judge
    from alpacafarm_nb.methods.reward_model import score_rewards
    pair = dict(instruction='Say cat.', input='', output_1='cat', output_2='cat dog bird fish')
    j = make_judge(dict(backend='reward_model', model=str(models['rm']), beta=2.0, name='rm'))
    pref = j.judge_batch([pair])[0]['preference']
    r1, r2 = score_rewards(str(models['rm']), [dict(pair, output=pair['output_1']), dict(pair, output=pair['output_2'])])
    assert abs(pref - (1 + 1 / (1 + math.exp(-2.0 * (r2 - r1))))) < 1e-6


def test_best_of_n_samples_once_for_two_reward_models(models, tmp_path):
    "The farm's pattern: one candidates file, scored by two reward models; a larger n's run answers a smaller n exactly."
    from alpacafarm_nb.methods.best_of_n import BestOfNConfig, sample_candidates, score_candidates, select_best
    from alpacafarm_nb.methods.reward_model import make_reward_model
    instr = [dict(instruction=f'Say {w}.', input='') for w in WORDS[:4]]
    cfg = BestOfNConfig.resolve('pocket-quick', dict(max_new_tokens=6))
    cands = sample_candidates(models['policy'], instr, 8, cfg, seed=1, candidates_path=tmp_path / 'c.jsonl', progress=False)
    mtime = (tmp_path / 'c.jsonl').stat().st_mtime_ns
    again = sample_candidates(models['policy'], instr, 4, cfg, seed=1, candidates_path=tmp_path / 'c.jsonl', progress=False)
    assert (tmp_path / 'c.jsonl').stat().st_mtime_ns == mtime                     # no new samples
    assert [c['output'] for c in again] == [c['output'] for c in cands if c['sample_id'] < 4]
    other = make_reward_model(models['policy'], seed=7)
    a, b = score_candidates(str(models['rm']), cands), score_candidates(other, cands)
    assert [x['output'] for x in a] == [x['output'] for x in b]
    fresh = sample_candidates(models['policy'], instr, 4, cfg, seed=1, progress=False)
    assert [c['output'] for c in select_best(score_candidates(str(models['rm']), fresh), 4)] == [c['output'] for c in select_best(a, 4)]


def test_preferences_cli_writes_alpacafarm_pairs(models, tmp_path, cli_env):
    write_records([dict(instruction=f'Say {w}.', input='') for w in WORDS[:5]], tmp_path / 'i.json')
    args = ['--policy', models['policy'], '--instructions', tmp_path / 'i.json', '--preset', 'pocket-quick', '--set', 'max_new_tokens=6',
            '--samples', tmp_path / 's.jsonl']
    r = run_cli('preferences', *args, '--annotator', 'simulated', '--out', tmp_path / 'sim.json', env=cli_env)
    assert r.returncode == 0, r.stderr[-2000:]
    mtime = (tmp_path / 's.jsonl').stat().st_mtime_ns
    r = run_cli('preferences', *args, '--annotator', 'human', '--out', tmp_path / 'hum.json', env=cli_env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / 's.jsonl').stat().st_mtime_ns == mtime          # the second feedback source did not sample again
    sim, hum = read_records(tmp_path / 'sim.json'), read_records(tmp_path / 'hum.json')
    assert [x['output_1'] for x in sim] == [x['output_1'] for x in hum]
    for row in sim + hum:
        assert {'instruction', 'input', 'output_1', 'output_2', 'preference', 'annotator', 'sample_seed'} <= set(row)
        assert row['preference'] in (1.0, 2.0, 1.5, None)
    assert {x['annotator'] for x in hum if x['output_1'] != x['output_2']} <= {f'pocket_human_{i:02d}' for i in range(16)}
