"""RL methods across modules: exact resume of PPO from folders, 2 processes under accelerate, CLI errors (one line, exit 2)."""
import copy, json, os, random
from pathlib import Path

import pytest
import torch

from alpacafarm_nb.data import format_prompt
from alpacafarm_nb.models import make_pocket_model, load_policy
from alpacafarm_nb.trainer import params_equal

TINY = dict(max_steps=4, rollout_batch_size=8, minibatch_size=4, micro_batch_size=2, epochs_per_rollout=2, lr=1e-2, warmup_steps=2,
            max_new_tokens=6, save_every=2, sample_batch_size=8, progress=False)


def _toy_corpus():
    r = random.Random(0)
    return [f"{a} {b} {a} {b}" for a, b in ((r.choice('abcdefgh'), r.choice('ijklmnop')) for _ in range(200))] + \
           [format_prompt('say a'), format_prompt('say b', 'x y')] * 20


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    "A tiny policy folder, a tiny reward model folder (one-label GPT-2 on the same tokenizer), an instructions file."
    from transformers import GPT2ForSequenceClassification
    d = tmp_path_factory.mktemp('rl')
    torch.set_num_threads(1)
    pol, tok = make_pocket_model('pocket-tiny', _toy_corpus(), n_layer=1, n_embd=32, n_head=2, vocab_size=400, n_positions=128, seed=0)
    pol.save_pretrained(d/'sft'); tok.save_pretrained(d/'sft')
    cfg = copy.deepcopy(pol.config); cfg.num_labels = 1; cfg.pad_token_id = tok.pad_token_id
    torch.manual_seed(1)
    rm = GPT2ForSequenceClassification(cfg)
    rm.save_pretrained(d/'rm'); tok.save_pretrained(d/'rm')
    (d/'instructions.json').write_text(json.dumps([dict(instruction=w) for w in 'say a|tell a|give a|write a|print a|show a|make a|list a'.split('|')]))
    return d


def _weights(folder):
    return load_policy(folder, device='cpu', dtype=torch.float32)[0]


def test_ppo_exact_resume_from_folders(folders, tmp_path):
    "A PPO run killed after step 1 and resumed ends bit-identical (policy and value model) to an uninterrupted run."
    from alpacafarm_nb.methods.ppo import ppo
    from transformers import AutoModelForSequenceClassification
    args = (folders/'sft', folders/'rm', folders/'instructions.json')
    full = ppo(*args, tmp_path/'full', preset='pocket-quick', **TINY)
    part = ppo(*args, tmp_path/'part', preset='pocket-quick', stop_after=1, **TINY)
    assert part['stopped'] and part['step'] == 1
    resumed = ppo(*args, tmp_path/'part', preset='pocket-quick', resume=True, **TINY)
    assert resumed['step'] == full['step'] == 4
    assert params_equal(_weights(tmp_path/'full'), _weights(tmp_path/'part'))
    assert not params_equal(_weights(tmp_path/'full'), _weights(folders/'sft'))
    v1 = AutoModelForSequenceClassification.from_pretrained(tmp_path/'full'/'value_model')
    v2 = AutoModelForSequenceClassification.from_pretrained(tmp_path/'part'/'value_model')
    assert params_equal(v1, v2) and v1.score.weight.abs().sum() > 0       # the zero-initialised head has learned
    lines = lambda p: [(r['step'], r['loss'], r['reward'], r['kl']) for r in map(json.loads, (p/'metrics.jsonl').read_text().splitlines())]
    assert lines(tmp_path/'full') == lines(tmp_path/'part')
    # checkpoints usable as policies, each with its step's metrics for the over-optimisation table
    ck = sorted((tmp_path/'full'/'checkpoints').glob('step_*'))
    assert [c.name for c in ck] == ['step_0000002', 'step_0000004']
    assert json.loads((ck[0]/'trainer_state.json').read_text())['metrics']['step'] == 2
    _weights(ck[0]/'policy')
    # a fresh run into the same folder does not keep the earlier run's checkpoints
    ppo(*args, tmp_path/'full', preset='pocket-quick', **dict(TINY, max_steps=1))
    assert [c.name for c in (tmp_path/'full'/'checkpoints').glob('step_*')] == ['step_0000001']
    assert json.loads((tmp_path/'full'/'run_config.json').read_text())['preset'] == 'pocket-quick'


def _two_process_run(sft, rm, instr, out):
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(True)          # the forked child must not inherit the parent's single-process state
    os.environ['ACCELERATE_USE_CPU'] = 'yes'
    torch.set_num_threads(1)
    from alpacafarm_nb.methods.ppo import ppo
    s = ppo(sft, rm, instr, out, preset='pocket-quick', **TINY)
    st = AcceleratorState()
    Path(out, f'done_{st.process_index}_{st.num_processes}').write_text(json.dumps(s['last']['reward']))


def test_ppo_two_processes(folders, tmp_path):
    "The same PPO code under 2 CPU processes (accelerate's debug launcher, gloo): it runs, logs once per step, saves one policy."
    from accelerate import debug_launcher
    out = tmp_path/'ddp'
    debug_launcher(_two_process_run, args=(str(folders/'sft'), str(folders/'rm'), str(folders/'instructions.json'), str(out)), num_processes=2)
    assert sorted(p.name for p in out.glob('done_*')) == ['done_0_2', 'done_1_2']
    recs = [json.loads(l) for l in (out/'metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in recs] == [1, 2, 3, 4]
    assert not params_equal(_weights(out), _weights(folders/'sft'))
    cfg = json.loads((out/'run_config.json').read_text())
    assert cfg['rollout_batch_size'] == 8


def _cli(capsys, fn, argv):
    "`fn` through the one error handler of `alpacafarm train KIND` (the kind read from the function's name)."
    from alpacafarm_nb.cli import run_subcommand
    capsys.readouterr()                          # drop what the test's own setup printed
    rc = run_subcommand(f"train {fn.__name__.removeprefix('train_').removesuffix('_cli')}", fn, argv)
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


@pytest.mark.parametrize('kind', ['ppo', 'rloo', 'grpo'])
def test_cli_bad_input_is_one_line(folders, tmp_path, capsys, kind):
    from alpacafarm_nb.methods.ppo import train_ppo_cli
    from alpacafarm_nb.methods.rloo import train_rloo_cli
    from alpacafarm_nb.methods.grpo import train_grpo_cli
    fn = dict(ppo=train_ppo_cli, rloo=train_rloo_cli, grpo=train_grpo_cli)[kind]
    base = ['--model', str(folders/'sft'), '--reward-model', str(folders/'rm'), '--data', str(folders/'instructions.json'),
            '--out', str(tmp_path/'o'), '--preset', 'pocket-quick', '--threads', '1']
    cases = {
        'kl_coef must be >= 0': base + ['--set', 'kl_coef=-0.1'],
        'not divisible by minibatch_size': base + ['--set', 'rollout_batch_size=16', '--set', 'minibatch_size=6'],
        'not a reward model': [a if a != str(folders/'rm') else str(folders/'sft') for a in base],
        'unknown': base + ['--set', 'no_such_option=1'],
        'model folder': [a if a != str(folders/'sft') else str(tmp_path/'missing') for a in base],
    }
    bad = tmp_path/'bad.json'; bad.write_text(json.dumps([dict(instruction='ok'), dict(prompt='no instruction here')]))
    cases["row 1, field 'instruction'"] = [a if a != str(folders/'instructions.json') else str(bad) for a in base]
    for expect, argv in cases.items():
        rc, err = _cli(capsys, fn, argv)
        assert rc == 2, (expect, err)
        assert len(err) == 1 and err[0].startswith(f'alpacafarm train {kind}: error:') and expect in err[0], (expect, err)


def test_reward_model_with_other_tokenizer_and_reference_with_other_vocab(folders, tmp_path, capsys):
    from alpacafarm_nb.methods.ppo import train_ppo_cli, PPO, PPOConfig
    from alpacafarm_nb.methods.rollouts import rl_train
    from transformers import GPT2ForSequenceClassification
    pol, tok = make_pocket_model('pocket-tiny', _toy_corpus()[:60], n_layer=1, n_embd=32, n_head=2, vocab_size=300, n_positions=128)
    cfg = copy.deepcopy(pol.config); cfg.num_labels = 1; cfg.pad_token_id = tok.pad_token_id
    GPT2ForSequenceClassification(cfg).save_pretrained(tmp_path/'rm_other'); tok.save_pretrained(tmp_path/'rm_other')
    rc, err = _cli(capsys, train_ppo_cli, ['--model', str(folders/'sft'), '--reward-model', str(tmp_path/'rm_other'),
                                           '--data', str(folders/'instructions.json'), '--out', str(tmp_path/'o'), '--preset', 'pocket-quick'])
    assert rc == 2 and len(err) == 1 and "tokenizer differs" in err[0]
    sft, stok = load_policy(folders/'sft', device='cpu', dtype=torch.float32)
    with pytest.raises(ValueError, match='vocabulary differs'):
        rl_train(PPO(PPOConfig()), sft, stok, ['p'], [[1]], tmp_path/'x', PPOConfig.resolve('pocket-quick', TINY), reward_fn=lambda P, R: torch.zeros(len(P)),
                 value_model=object(), ref_policy=pol)


def test_cli_runs_and_prints_summary(folders, tmp_path, capsys):
    from alpacafarm_nb.methods.grpo import train_grpo_cli
    rc = train_grpo_cli(['--model', str(folders/'sft'), '--reward-model', str(folders/'rm'), '--data', str(folders/'instructions.json'),
                         '--out', str(tmp_path/'g'), '--preset', 'pocket-quick', '--max-steps', '2', '--threads', '1',
                         '--set', 'rollout_batch_size=8', '--set', 'minibatch_size=4', '--set', 'max_new_tokens=6', '--set', 'progress=false'])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['step'] == 2 and summary['prompts'] == 8
    recs = [json.loads(l) for l in (tmp_path/'g'/'metrics.jsonl').read_text().splitlines()]
    assert all({'step', 'loss', 'elapsed_s', 'reward', 'kl'} <= set(r) for r in recs)
    _weights(tmp_path/'g')


def test_algorithms_implement_the_explicit_interface():
    "PPO, RLOO and GRPO are `RLAlgorithm`s holding their own config: no method of the interface takes a config."
    import inspect
    from alpacafarm_nb.methods.rollouts import RLAlgorithm
    from alpacafarm_nb.methods.ppo import PPO, PPOConfig
    from alpacafarm_nb.methods.rloo import RLOO, RLOOConfig
    from alpacafarm_nb.methods.grpo import GRPO, GRPOConfig
    for algo in (PPO(PPOConfig()), RLOO(RLOOConfig(k=3)), GRPO(GRPOConfig(k=2))):
        assert isinstance(algo, RLAlgorithm)
        for name in ('prepare', 'units', 'loss', 'next_kl_coef'):
            assert 'cfg' not in inspect.signature(getattr(algo, name)).parameters, (type(algo).__name__, name)
    assert (RLOO(RLOOConfig(k=3)).k, GRPO(GRPOConfig(k=2)).k, PPO(PPOConfig()).k) == (3, 2, 1)
    ppo = PPO(PPOConfig(adaptive_kl=True, target_kl=6.0, kl_horizon=10000, rollout_batch_size=512))
    assert ppo.next_kl_coef(0.1, 12.0) > 0.1 and PPO(PPOConfig()).next_kl_coef(0.1, 12.0) == 0.1   # the controller moves only when on
