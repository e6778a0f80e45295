"""Parity of our DPO losses with TRL's `DPOTrainer` (TRL 1.16): same policy, same reference, same batch of token ids.

TRL is not a dependency of the project (it pulls in `datasets` and more); run this test in a separate environment:
    python3 -m venv /work/wt/venv-trl && /work/wt/venv-trl/bin/pip install torch==2.13.0
    /work/wt/venv-trl/bin/pip install -e . 'trl==1.16.*' pytest
    /work/wt/venv-trl/bin/python -m pytest -q tests/test_dpo_trl.py
"""
import math

import pytest
import torch

trl = pytest.importorskip('trl', reason="TRL is not installed here (it is not a project dependency): install 'trl==1.16.*' "
                                        "in a separate venv to run the parity test (see this file's docstring)")

from alpacafarm_nb.data import format_prompt
from alpacafarm_nb.models import make_pocket_model
from alpacafarm_nb.methods.dpo import encode_pairs, reference_logprobs, collate_pairs, make_loss_fn

WORDS = "cat dog bird fish tree lake hill road star moon sun rain".split()


def make_setup():
    torch.manual_seed(0)
    corpus = [f"the {a} and the {b}" for a in WORDS for b in WORDS] + [format_prompt('', '')] * 20
    policy, tok = make_pocket_model('pocket-tiny', corpus, n_layer=1, n_embd=48, n_head=2, vocab_size=300, seed=1)
    ref, _ = make_pocket_model('pocket-tiny', tokenizer=tok, n_layer=1, n_embd=48, n_head=2, seed=2)
    pairs = [dict(prompt=format_prompt(f"Say the word {w}."), chosen=f"{w.upper()} {w}" * (1 + i % 3), rejected=w)
             for i, w in enumerate(WORDS[:6])]
    ex = encode_pairs(tok, pairs, max_length=256)
    return policy.float().eval(), ref.float().eval(), tok, pairs, ex


@pytest.fixture(scope='module')
def setup(): return make_setup()


def trl_loss(setup, loss_type, beta, label_smoothing=0.0):
    "TRL's DPOTrainer loss on the batch: its own collator over our token ids, its reference forward (no precompute)."
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference
    import tempfile
    policy, ref, tok, pairs, ex = setup
    losses = [loss_type] if loss_type != 'robust' else ['robust']
    with tempfile.TemporaryDirectory() as d:
        args = DPOConfig(output_dir=d, beta=beta, loss_type=losses, label_smoothing=label_smoothing, report_to=[],
                         max_length=None, per_device_train_batch_size=len(pairs), use_cpu=True, bf16=False, fp16=False,
                         precompute_ref_log_probs=False)
        trainer = DPOTrainer(model=policy, ref_model=ref, args=args, processing_class=tok,
                             train_dataset=Dataset.from_list(pairs))
        batch = DataCollatorForPreference(pad_token_id=tok.pad_token_id)(
            [dict(prompt_ids=e['prompt'], chosen_ids=e['chosen'], rejected_ids=e['rejected']) for e in ex])
        with torch.no_grad():
            return float(trainer.compute_loss(trainer.model, batch))


def our_loss(setup, loss_type, beta, label_smoothing=0.0, robust=False):
    policy, ref, tok, pairs, ex = setup
    ex, _ = reference_logprobs(ref, ex, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        loss, _ = make_loss_fn(loss_type, beta, label_smoothing, pad_token_id=tok.pad_token_id, robust=robust)(policy, collate_pairs(ex))
    return float(loss) / len(ex)


@pytest.mark.parametrize('loss_type,beta', [('sigmoid', 0.1), ('sigmoid', 0.5), ('ipo', 0.1), ('ipo', 0.5)])
def test_loss_matches_trl(setup, loss_type, beta):
    ours, theirs = our_loss(setup, loss_type, beta), trl_loss(setup, loss_type, beta)
    at_init = {'sigmoid': math.log(2), 'ipo': (1 / (2 * beta)) ** 2}[loss_type]
    assert abs(ours - at_init) > 1e-3, ours          # policy != reference: not the trivial case
    assert abs(ours - theirs) < 1e-5, (loss_type, beta, ours, theirs)


def test_robust_matches_trl(setup):
    "label smoothing in TRL's unbiased `robust` form (rDPO)."
    ours, theirs = our_loss(setup, 'sigmoid', 0.1, 0.2, robust=True), trl_loss(setup, 'robust', 0.1, 0.2)
    assert abs(ours - theirs) < 1e-5, (ours, theirs)
