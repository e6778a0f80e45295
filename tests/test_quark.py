"""Quark from folders and through `alpacafarm train quark`: both variants end to end, exact resume, bad input (one line, exit 2)."""
import copy, json, os, subprocess, sys
from pathlib import Path

import pytest
import torch

from alpacafarm_nb.models import make_pocket_model, load_policy
from alpacafarm_nb.trainer import params_equal

SETS = ['--set', 'rollout_batch_size=8', '--set', 'minibatch_size=4', '--set', 'micro_batch_size=4', '--set', 'max_new_tokens=6',
        '--set', 'save_every=2', '--set', 'progress=false', '--set', 'lr=1e-2']


# the same tiny policy, reward model (same tokenizer) and instructions as the other RL methods' tests
from test_rl import folders, _toy_corpus  # noqa: F401  (folders is a pytest fixture)


def _weights(folder):
    return load_policy(folder, device='cpu', dtype=torch.float32)[0]


def _base(folders, out):
    return ['train', 'quark', '--model', str(folders/'sft'), '--reward-model', str(folders/'rm'), '--data', str(folders/'instructions.json'),
            '--out', str(out), '--preset', 'pocket-quick', '--threads', '1']


@pytest.mark.parametrize('variant', ['alpacafarm', 'full'])
def test_cli_end_to_end(folders, tmp_path, capsys, variant):
    "`alpacafarm train quark` runs each variant: summary line, metrics, checkpoints, the policy; the full variant samples after its best token."
    from alpacafarm_nb.cli import main
    out = tmp_path/variant
    rc = main(_base(folders, out) + ['--max-steps', '4', '--set', f'variant={variant}'] + SETS)
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['step'] == 4 and summary['prompts'] == 8 and summary['reward'] is not None
    recs = [json.loads(l) for l in (out/'metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in recs] == [1, 2, 3, 4]
    need = {'reward', 'kl', 'entropy', 'response_length', 'loss', 'nll', 'kl_loss', 'top_quantile_threshold', 'pool_size', 'train_rows'}
    assert all(need <= set(r) for r in recs)
    assert abs(recs[0]['kl']) < 1e-4                              # the first rollout samples the reference itself (full: resized vocabulary)
    assert [r['pool_size'] for r in recs] == ([8] * 4 if variant == 'alpacafarm' else [8, 16, 24, 32])
    assert [r['train_rows'] for r in recs] == ([2] * 4 if variant == 'alpacafarm' else [8] * 4)
    ck = sorted((out/'checkpoints').glob('step_*'))
    assert [c.name for c in ck] == ['step_0000002', 'step_0000004']
    st = json.loads((ck[0]/'trainer_state.json').read_text())
    assert st['step'] == 2 and {'reward', 'kl'} <= set(st['metrics'])
    cfg = json.loads((out/'run_config.json').read_text())
    assert cfg['config_class'] == 'QuarkConfig' and cfg['preset'] == 'pocket-quick' and cfg['variant'] == variant
    assert not params_equal(_weights(out), _weights(folders/'sft'))
    if variant == 'alpacafarm':
        assert not (out/'control_tokens.json').exists()
        assert _weights(ck[0]/'policy').get_input_embeddings().weight.shape == _weights(folders/'sft').get_input_embeddings().weight.shape
        return
    from alpacafarm_nb.methods.binary import control_tokens_of, generate_conditioned
    assert control_tokens_of(out)['positive'] == '<|quantile_0|>' and control_tokens_of(out)['negative'] == '<|quantile_3|>'
    for c in ck: assert control_tokens_of(c/'policy')['positive'] == '<|quantile_0|>'
    assert _weights(out).get_input_embeddings().weight.shape[0] == _weights(folders/'sft').get_input_embeddings().weight.shape[0] + 4
    rows = generate_conditioned(out, [dict(instruction='say a')], n=2, max_new_tokens=6)
    assert len(rows) == 2 and all('<|quantile_0|>' not in r['output'] for r in rows)


def test_exact_resume_alpacafarm_variant(folders, tmp_path):
    "An AlpacaFarm-variant run stopped after step 1 and resumed ends bit-identical to an uninterrupted one, with the same metrics."
    from alpacafarm_nb.methods.quark import quark
    kw = dict(max_steps=3, rollout_batch_size=8, minibatch_size=4, micro_batch_size=2, max_new_tokens=6, save_every=0, progress=False, lr=1e-2)
    args = (folders/'sft', folders/'rm', folders/'instructions.json')
    full = quark(*args, tmp_path/'full', preset='pocket-quick', **kw)
    part = quark(*args, tmp_path/'part', preset='pocket-quick', stop_after=1, **kw)
    assert part['stopped'] and part['step'] == 1
    resumed = quark(*args, tmp_path/'part', preset='pocket-quick', resume=True, **kw)
    assert resumed['step'] == full['step'] == 3 and [Path(c).parent.name for c in resumed['checkpoints']] == ['step_0000001', 'step_0000003']
    assert params_equal(_weights(tmp_path/'full'), _weights(tmp_path/'part'))
    lines = lambda p: [(r['step'], r['loss'], r['reward'], r['kl']) for r in map(json.loads, (p/'metrics.jsonl').read_text().splitlines())]
    assert lines(tmp_path/'full') == lines(tmp_path/'part')


def test_cli_bad_input_is_one_line(folders, tmp_path, capsys):
    from alpacafarm_nb.cli import main
    from transformers import GPT2ForSequenceClassification
    other, otok = make_pocket_model('pocket-tiny', _toy_corpus()[:60], n_layer=1, n_embd=32, n_head=2, vocab_size=300, n_positions=128)
    cfg = copy.deepcopy(other.config); cfg.num_labels = 1; cfg.pad_token_id = otok.pad_token_id
    GPT2ForSequenceClassification(cfg).save_pretrained(tmp_path/'rm_other'); otok.save_pretrained(tmp_path/'rm_other')
    base = _base(folders, tmp_path/'o')
    cases = {
        'kl_coef must be >= 0': base + ['--set', 'kl_coef=-0.1'],
        'n_quantiles must be >= 2': base + ['--set', 'n_quantiles=1'],
        'smaller than n_quantiles': base + ['--set', 'rollout_batch_size=4', '--set', 'minibatch_size=4', '--set', 'n_quantiles=8'],
        'unknown Quark variant': base + ['--set', 'variant=best'],
        'tokenizer differs': [a if a != str(folders/'rm') else str(tmp_path/'rm_other') for a in base],
        'not a reward model': [a if a != str(folders/'rm') else str(folders/'sft') for a in base],
    }
    for expect, argv in cases.items():
        capsys.readouterr()
        rc = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2, (expect, err)
        assert len(err) == 1 and err[0].startswith('alpacafarm train quark: error:') and expect in err[0], (expect, err)
    assert not (tmp_path/'o'/'metrics.jsonl').exists()


def test_console_script_bad_variant_no_traceback(folders, tmp_path):
    "The installed `alpacafarm` script: exit 2, one line on stderr, no traceback."
    exe = Path(sys.executable).with_name('alpacafarm')
    cmd = [str(exe)] if exe.exists() else [sys.executable, '-c', 'import sys; from alpacafarm_nb.cli import main; sys.exit(main())']
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), OMP_NUM_THREADS='1')
    p = subprocess.run(cmd + _base(folders, tmp_path/'o') + ['--set', 'variant=quark'], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and 'unknown Quark variant' in lines[0] and 'Traceback' not in p.stderr
