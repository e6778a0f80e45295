"""DPO across modules: the `train dpo` CLI on bad preference files, exact resume, and the reference log-prob cache."""
import json

import pytest
import torch

from alpacafarm_nb.data import format_prompt
from alpacafarm_nb.models import make_pocket_model, save_policy, load_policy
from alpacafarm_nb.trainer import params_equal
from alpacafarm_nb.methods.dpo import dpo, train_dpo_cli, REF_CACHE

WORDS = "cat dog bird fish tree lake hill road star moon sun rain".split()
FAST = dict(preset='pocket-quick', batch_size=8, micro_batch_size=8, lr=3e-3, progress=False, report_to='none', log_every=1,
            max_length=128, val_size=8)


@pytest.fixture(scope='module')
def sft_dir(tmp_path_factory):
    torch.set_num_threads(1)
    corpus = [f"the {a} and the {b}" for a in WORDS for b in WORDS] + [format_prompt('', '')] * 20
    m, tok = make_pocket_model('pocket-tiny', corpus, n_layer=1, n_embd=32, n_head=2, vocab_size=300, seed=0)
    return save_policy(m, tok, tmp_path_factory.mktemp('sft'))


def pairs(n=40, seed=0):
    import random
    r = random.Random(seed)
    out = []
    for _ in range(n):
        w = r.choice(WORDS); up = r.random() < 0.5
        out.append(dict(instruction=f"Say {w}.", input='', output_1=w.upper() if up else w, output_2=w if up else w.upper(),
                        preference=1 if up else 2, annotator='toy'))
    return out


def write(path, rows):
    path.write_text(json.dumps(rows)); return path


def run_cli(sft_dir, data, out, *extra):
    "`alpacafarm train dpo ...`: `train_dpo_cli` through the one error handler of the `alpacafarm` command."
    from alpacafarm_nb.cli import run_subcommand
    return run_subcommand('train dpo', train_dpo_cli, ['--model', str(sft_dir), '--data', str(data), '--out', str(out), '--threads', '1',
                                                       '--set', 'progress=false', '--set', 'report_to=none', *extra])


@pytest.mark.parametrize('rows,expect', [
    ([], 'holds no records'),
    ({'not': 'a list'}, 'expected a JSON list'),
    ([dict(instruction='a', output_1='x', output_2='y')], "row 0, field 'preference'"),
    ([dict(instruction='a', output_1='x', output_2='y', preference=1), dict(instruction='b', output_1='x', preference=1)], "row 1, field 'output_2'"),
    ([dict(instruction='a', output_1='x', output_2='y', preference=3)], "row 0, field 'preference'"),
    ([dict(instruction='a', output_1='x', output_2='y', preference=1.5), dict(instruction='a', output_1='x', output_2='x', preference=1)],
     'no usable preference pair among 2 rows (1 tie, 1 identical)'),
])
def test_cli_bad_preference_file_is_one_line(sft_dir, tmp_path, capsys, rows, expect):
    f = tmp_path/'prefs.json'; f.write_text(json.dumps(rows))
    assert run_cli(sft_dir, f, tmp_path/'out') == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('alpacafarm train dpo: error:'), err
    assert str(f) in err and expect in err, err


def test_cli_bad_config_and_model(sft_dir, tmp_path, capsys):
    f = write(tmp_path/'p.json', pairs())
    for extra, expect in [(['--set', 'beta=-0.1'], 'beta must be > 0'), (['--set', 'loss_type=dpo'], 'loss_type'),
                          (['--set', 'nonsense=1'], 'unknown DPOConfig option')]:
        assert run_cli(sft_dir, f, tmp_path/'out', *extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expect in err, err
    assert run_cli(tmp_path/'no_model', f, tmp_path/'out', '--set', 'val_size=0') == 2
    assert 'no_model' in capsys.readouterr().err


def test_identical_outputs_and_ties_dropped_with_count(sft_dir, tmp_path, capsys):
    rows = pairs(30) + [dict(instruction='x', output_1='same', output_2='same', preference=2),
                        dict(instruction='y', output_1='a', output_2='b', preference=1.5),
                        dict(instruction='z', output_1='a', output_2='b', preference=None)]
    f = write(tmp_path/'p.json', rows)
    assert run_cli(sft_dir, f, tmp_path/'out', '--preset', 'pocket-quick', '--max-steps', '1', '--set', 'batch_size=8',
                   '--set', 'micro_batch_size=8', '--set', 'val_size=0') == 0
    out = capsys.readouterr()
    assert 'kept 30 of 33; dropped 1 tie, 1 missing, 1 identical' in out.err
    assert json.loads(out.out.strip().splitlines()[-1])['pairs'] == 30
    cfg = json.loads((tmp_path/'out'/'run_config.json').read_text())
    assert cfg['preset'] == 'pocket-quick' and cfg['max_steps'] == 1
    rec = [json.loads(l) for l in (tmp_path/'out'/'metrics.jsonl').read_text().splitlines()]
    assert {'step', 'loss', 'elapsed_s', 'reward_accuracy', 'reward_margin', 'reward_chosen', 'reward_rejected'} <= set(rec[-1])


@pytest.mark.parametrize('loss_type', ['sigmoid', 'kto'])
def test_resume_is_exact_and_reuses_the_reference_cache(sft_dir, tmp_path, loss_type):
    data = pairs(48)
    full = dpo(sft_dir, data, tmp_path/'full', loss_type=loss_type, max_steps=4, **FAST)
    assert full['reference_cache'] == 'computed' and (tmp_path/'full'/REF_CACHE).is_file()
    part = dpo(sft_dir, data, tmp_path/'part', loss_type=loss_type, max_steps=4, stop_after=2, **FAST)
    assert part['stopped'] and part['reference_cache'] == 'computed'
    cache = (tmp_path/'part'/REF_CACHE).read_text()
    done = dpo(sft_dir, data, tmp_path/'part', loss_type=loss_type, max_steps=4, resume=True, **FAST)
    assert done['reference_cache'] == 'reused' and (tmp_path/'part'/REF_CACHE).read_text() == cache
    assert params_equal(load_policy(tmp_path/'full', dtype=torch.float32)[0], load_policy(tmp_path/'part', dtype=torch.float32)[0])
    l_full = [json.loads(l)['loss'] for l in (tmp_path/'full'/'metrics.jsonl').read_text().splitlines()]
    l_part = [json.loads(l)['loss'] for l in (tmp_path/'part'/'metrics.jsonl').read_text().splitlines()]
    assert l_full == l_part


def test_reference_cache_keyed_by_data_and_reference(sft_dir, tmp_path):
    data, other_data = pairs(24), pairs(24, seed=1)
    other = tmp_path/'other'                 # another reference model: the trained policy of a previous run
    dpo(sft_dir, data, other, max_steps=2, **FAST)
    assert dpo(sft_dir, data, tmp_path/'o', max_steps=1, **FAST)['reference_cache'] == 'computed'
    assert dpo(sft_dir, data, tmp_path/'o', max_steps=1, **FAST)['reference_cache'] == 'reused'
    # each change of one input makes the cached values inapplicable: the pairs, then the reference model
    assert dpo(sft_dir, other_data, tmp_path/'o', max_steps=1, **FAST)['reference_cache'] == 'computed'
    assert dpo(sft_dir, other_data, tmp_path/'o', max_steps=1, reference=str(other), **FAST)['reference_cache'] == 'computed'
    assert dpo(sft_dir, other_data, tmp_path/'o', max_steps=1, reference=str(other), **FAST)['reference_cache'] == 'reused'
