"""Train a policy with TRL's `DPOTrainer` on preference pairs exported by `alpacafarm export-trl`, starting from the
farm's SFT10k, with the settings of alpacafarm's own `pocket` DPO preset (see README.md beside this file).

It needs TRL, not alpacafarm_nb: run it in a separate environment,
    python3 -m venv venv-trl && venv-trl/bin/pip install torch==2.13.0 && venv-trl/bin/pip install 'trl==1.16.*'
    venv-trl/bin/python examples/trl_dpo/train_dpo_trl.py --model RUN/models/sft10k --data EXPORT_DIR --out OUT_DIR
It writes a standard Hugging Face folder (weights, config, tokenizer) that `alpacafarm generate --model OUT_DIR` samples,
and OUT_DIR/trl_summary.json (steps, final train loss, held-out reward accuracy, seconds)."""
import argparse, json, sys, time
from pathlib import Path


def read_pairs(path: Path, may_be_empty: bool = False) -> list[dict]:
    "The rows of a prompt/chosen/rejected JSONL file; a bad file is one line on stderr and exit code 2."
    def fail(msg): print(f"train_dpo_trl: error: {msg}", file=sys.stderr); sys.exit(2)
    if not path.is_file(): fail(f"{path}: no such file (write it with `alpacafarm export-trl --preferences ...`)")
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip(): continue
        try: r = json.loads(line)
        except json.JSONDecodeError as e: fail(f"{path}, line {i}: not JSON ({e.msg})")
        missing = [k for k in ('prompt', 'chosen', 'rejected') if not isinstance(r.get(k), str)]
        if missing: fail(f"{path}, line {i}: field '{missing[0]}' missing or not a string")
        rows.append(dict(prompt=r['prompt'], chosen=r['chosen'], rejected=r['rejected']))
    if not rows and not may_be_empty: fail(f"{path}: no pairs")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True, help="starting policy and DPO reference: the farm's RUN/models/sft10k")
    p.add_argument('--data', required=True, help='folder written by `alpacafarm export-trl` (dpo_train.jsonl, dpo_val.jsonl)')
    p.add_argument('--out', required=True, help='output folder (the trained policy)')
    # alpacafarm's `pocket` DPO preset (alpacafarm_nb.methods.dpo.DPOConfig.presets['pocket'], beta = DEFAULT_BETA['sigmoid'])
    p.add_argument('--beta', type=float, default=0.1)
    p.add_argument('--lr', type=float, default=1e-4)
    p.add_argument('--epochs', type=float, default=0.85)
    p.add_argument('--batch-size', type=int, default=64, help='pairs per optimizer step')
    p.add_argument('--micro-batch-size', type=int, default=32, help='pairs per forward pass (gradient accumulation makes up the rest)')
    p.add_argument('--max-length', type=int, default=256, help='prompt + response tokens')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    a = p.parse_args(argv)
    if a.batch_size % a.micro_batch_size:
        print(f"train_dpo_trl: error: --batch-size {a.batch_size} is not a multiple of --micro-batch-size {a.micro_batch_size}", file=sys.stderr)
        return 2
    data = Path(a.data)
    train_rows = read_pairs(data/'dpo_train.jsonl')
    val_rows = read_pairs(data/'dpo_val.jsonl', may_be_empty=True) if (data/'dpo_val.jsonl').is_file() else []   # export-trl --val-size 0: empty

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer
    torch.set_num_threads(a.threads)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    args = DPOConfig(
        output_dir=a.out, beta=a.beta, loss_type=['sigmoid'], learning_rate=a.lr, num_train_epochs=a.epochs,
        per_device_train_batch_size=a.micro_batch_size, gradient_accumulation_steps=a.batch_size // a.micro_batch_size,
        per_device_eval_batch_size=64, lr_scheduler_type='cosine', warmup_steps=0.03, weight_decay=0.0,
        adam_beta1=0.9, adam_beta2=0.98, max_grad_norm=1.0, max_length=a.max_length,
        precompute_ref_log_probs=True,      # the reference (SFT10k) scores every pair once, as alpacafarm's DPO does
        seed=a.seed, logging_steps=10, save_strategy='no', eval_strategy='no', report_to=[],
        use_cpu=True, bf16=False, fp16=False, dataloader_num_workers=0)
    trainer = DPOTrainer(model=model, args=args, processing_class=tokenizer, train_dataset=Dataset.from_list(train_rows),
                         eval_dataset=Dataset.from_list(val_rows) if val_rows else None)
    t0 = time.perf_counter()
    out = trainer.train()
    seconds = time.perf_counter() - t0
    summary = dict(steps=out.global_step, train_loss=out.training_loss, train_pairs=len(train_rows), seconds=round(seconds, 1))
    if val_rows:
        ev = trainer.evaluate()
        summary.update(val_pairs=len(val_rows), val_loss=ev.get('eval_loss'), val_reward_accuracy=ev.get('eval_rewards/accuracies'),
                       val_reward_margin=ev.get('eval_rewards/margins'))
    trainer.save_model(a.out)                # weights, config and the tokenizer, a standard Hugging Face folder
    tokenizer.save_pretrained(a.out)
    (Path(a.out)/'trl_summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    print(json.dumps(summary))
    return 0


if __name__ == '__main__':
    sys.exit(main())
