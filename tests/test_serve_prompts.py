"""`serve-judges` reads the field's pairwise prompts by their structure and answers in the format each asks for.

Every prompt here is written for this test (our own wording) in the structure of a prompt family the field sends: AlpacaFarm's
batched `Output (a)`/`Output (b)` blocks with shown examples answered in the text, a chat with shown examples as earlier turns,
plain text with inline fields and bare `(a)` answers, JSON booleans, AlpacaEval 2's `m`/`M` identifiers read through
`top_logprobs`, a ranking of `model_1`/`model_2`, a function call, and `Output A`/`Output B`. The answers are read back the way
those clients read them (their regular expressions, `ast.literal_eval`, the log-probability ratio), and must equal the
in-process pocket judge on the pairs as shown, for the same seed."""
import ast, json, math, re, urllib.error, urllib.request

import openai
import pytest

from alpacafarm_nb.annotators import AnnotatorPool
from alpacafarm_nb.judges import prefer_longer
from alpacafarm_nb.pocket_judges import pocket_judge, pocket_judge_prob
from alpacafarm_nb.serve import ChatSimulationServer, make_pocket_server
from alpacafarm_nb.world import make_world, pocket_human, pocket_human_prob

AB = re.compile(r'(?:^|\n) ?Output \(([ab])\)')                 # how AlpacaFarm-style clients read an answer
BARE = re.compile(r'\n\(([ab])\)')


@pytest.fixture(scope='module')
def pairs():
    w = make_world(5, dict(sft=10, preference=40, unlabeled=10, val=10, eval=10, pretrain=10))
    insts = w.splits['preference']
    a = w.generate('pocket_demonstrator', insts, seed=1, temperature=1.3)
    b = w.generate('pocket_chatgpt', insts, seed=2)
    rows = [dict(instruction=x['instruction'], input=x['input'], output_1=x['output'].strip(), output_2=y['output'].strip())
            for x, y in zip(a, b) if x['output'].strip() != y['output'].strip()]
    assert any(r['input'] for r in rows) and any(not r['input'] for r in rows)
    return rows


@pytest.fixture(scope='module')
def server():
    with make_pocket_server() as srv: yield srv


@pytest.fixture(scope='module')
def client(server): return openai.OpenAI(base_url=server.base_url, api_key='unused', max_retries=0)


def chat(client, model, messages, **kw):
    if isinstance(messages, str): messages = [dict(role='user', content=messages)]
    return client.chat.completions.create(model=model, messages=messages, **kw).choices[0]


def judged(model, examples, seed=0):
    return [pocket_judge(e, seed, judge=model) if not model.startswith('pocket_human') else pocket_human(e, seed, human=model) for e in examples]


def swap(e): return dict(e, output_1=e['output_2'], output_2=e['output_1'])


# --- prompts in the structures of the field's templates (our own wording) ---------------------------------------------------
SHOWN = dict(instruction='Name a primary colour.', input='', output_1='Red.', output_2='A bicycle.')


def batch_ab(examples, shown=SHOWN):
    "AlpacaFarm's batched structure: a guideline, one shown example answered in the text, then numbered examples under ### headings."
    def block(k, e):
        s = f"## Example {k}\n\n### Instruction {k}:\n{e['instruction']}\n\n"
        if e['input']: s += f"### Input {k}:\n{e['input']}\n\n"
        return s + f"### Output (a) for example {k}:\n{e['output_1']}\n\n### Output (b) for example {k}:\n{e['output_2']}\n\n"
    n = len(examples)
    return ("## How to judge\nFor every example, say which output serves the person better.\n\n## A worked example\n\n" + block(1, shown) +
            "### Which is better for example 1, Output (a) or Output (b)?:\nOutput (a)\n\nThe second output ignores the request.\n\n"
            f"## Your batch\nRead all {n} examples, then answer one line each.\n\n" +
            ''.join(block(k, e) for k, e in enumerate(examples, 2)) + f"## Better outputs for examples 2-{n + 1}:\n")


def chat_fewshot(e):
    "A chat whose shown examples are earlier user/assistant turns; plain `Label:` lines."
    def user(x, lead=''):
        inp = f"Input:\n{x['input']}\n\n" if x['input'] else ''
        return f"{lead}Instruction:\n{x['instruction']}\n\n{inp}Output (a):\n{x['output_1']}\n\nOutput (b):\n{x['output_2']}\n\nWhich one is better, Output (a) or Output (b)?"
    return [dict(role='system', content='You compare two answers and reply with Output (a) or Output (b) only.'),
            dict(role='user', content=user(SHOWN)), dict(role='assistant', content='Output (a)'),
            dict(role='user', content=user(e, 'Right: the first one answers. Next one.\n\n'))]


def inline_text(e):
    "Plain text for a completions endpoint: inline fields, shown answers `(a)` after a colon."
    inp = f"Input: {e['input']}\n" if e['input'] else ''
    return ("Decide which output fits the instruction.\n\nInstruction: Name a primary colour.\nOutput (a): Red.\nOutput (b): A bicycle.\n"
            f"Best output: (a)\n\nInstruction: {e['instruction']}\n{inp}Output (a): {e['output_1']}\nOutput (b): {e['output_2']}\nBest output:")


def json_batch(examples):
    "A batch answered by one JSON object per example with a boolean field naming both outputs."
    shown = ('{"Short reason": "the second output ignores the request", "Output (a) is better than Output (b)": true}')
    blocks = ''.join(f"### Instruction for example {k}:\n{e['instruction']}\n\n" + (f"### Input for example {k}:\n{e['input']}\n\n" if e['input'] else '') +
                     f"### Output (a) for example {k}:\n{e['output_1']}\n\n"
                     f"### Output (b) for example {k}:\n{e['output_2']}\n\n" for k, e in enumerate(examples, 2))
    return ("Answer each example with a JSON object holding \"Short reason\" and \"Output (a) is better than Output (b)\".\n\n"
            f"### Instruction for example 1:\n{SHOWN['instruction']}\n\n### Output (a) for example 1:\n{SHOWN['output_1']}\n\n"
            f"### Output (b) for example 1:\n{SHOWN['output_2']}\n\n### Answer for example 1:\n{shown}\n\n## The examples to answer\n\n"
            + blocks + "## Answers:\n")


def identifiers(e, ids=('m', 'M'), id_key='model_identifier', out_key='output', tail=None):
    "AlpacaEval 2's structure: the instruction and the outputs as dictionaries, each output named by a model identifier."
    entries = ',\n'.join(f'    {{\n        "{id_key}": "{i}",\n        "{out_key}": """{o}"""\n    }}' for i, o in zip(ids, (e['output_1'], e['output_2'])))
    instruction = e['instruction'] + (f"\n\n{e['input']}" if e['input'] else '')
    return (f'Help us rank chat models.\n\n## The request\n\n{{\n    "instruction": """{instruction}""",\n}}\n\n## What the models wrote\n\n'
            f'{{\n{entries}\n}}\n\n## Your answer\n\n' + (tail or f"Write only the identifier of the best model: {ids[0]} or {ids[1]}."))


def letters(e):
    "Outputs named `Output A`/`Output B`, answered `A` or `B`."
    inp = f"## Input:\n{e['input']}\n" if e['input'] else ''
    return (f"Reply A or B.\n# Sample\n## Instruction:\n{SHOWN['instruction']}\n## Output A:\n{SHOWN['output_1']}\n## Output B:\n{SHOWN['output_2']}\n"
            f"## Which is better, A or B?\nA\n# Now yours\n## Instruction:\n{e['instruction']}\n{inp}## Output A:\n{e['output_1']}\n## Output B:\n"
            f"{e['output_2']}\n## Which is better, A or B?\n")


def shown_pair(e):
    "A pair as the identifier prompts show it (the input joined to the instruction, as alpaca_eval does)."
    return dict(e, instruction=e['instruction'] + (f"\n\n{e['input']}" if e['input'] else ''), input='')


# --- the tests ------------------------------------------------------------------------------------------------------------------
def test_models_listed_and_unknown_id(server, client):
    ids = [m['id'] for m in json.load(urllib.request.urlopen(server.base_url + '/models'))['data']]
    assert ids[:2] == ['pocket_pool', 'pocket_crowd'] and len(ids) == 2 + 14 + 16 and 'pocket_greedy' in ids and 'pocket_human_15' in ids
    with pytest.raises(openai.NotFoundError) as ex: chat(client, 'gpt-4-turbo', identifiers(SHOWN))
    assert 'The model `gpt-4-turbo` does not exist; served models: pocket_pool, pocket_crowd, ' in str(ex.value)
    assert all(i in str(ex.value) for i in ids)


def test_unreadable_prompt_is_400_naming_the_structures(client):
    with pytest.raises(openai.BadRequestError) as ex:
        chat(client, 'pocket_greedy', 'Which reply is kinder?\nReply one: hello\nReply two: go away')
    msg = str(ex.value)
    assert 'no pairwise judging prompt found' in msg and '`Output (a)`/`Output (b)`' in msg and 'model identifiers' in msg
    with pytest.raises(openai.BadRequestError, match='stream=true is not supported'):
        client.chat.completions.create(model='pocket_greedy', messages=[dict(role='user', content=identifiers(SHOWN))], stream=True)


@pytest.mark.parametrize('model,seed', [('pocket_strong_batch5_lines', 0), ('pocket_weak_batch5_lines', 3), ('pocket_human_05', 1)])
def test_batched_output_ab(client, pairs, model, seed):
    batch = pairs[:5]
    got = AB.findall(chat(client, model, batch_ab(batch), seed=seed).message.content)
    assert [{'a': 1.0, 'b': 2.0}[x] for x in got] == judged(model, batch, seed)


def test_batched_output_ab_with_inputs_as_content_parts(client, pairs):
    batch = [p for p in pairs if p['input']][:3] + [p for p in pairs if not p['input']][:2]
    msgs = [dict(role='system', content='You judge outputs.'), dict(role='user', content=[dict(type='text', text=batch_ab(batch))])]
    got = AB.findall(chat(client, 'pocket_strong_json', msgs).message.content)
    assert [{'a': 1.0, 'b': 2.0}[x] for x in got] == judged('pocket_strong_json', batch)


def test_swapping_the_outputs_flips_a_deterministic_judge(pairs):
    longer = lambda model, examples, seed: [prefer_longer(e) for e in examples]
    batch = [p for p in pairs if len(p['output_1']) != len(p['output_2'])][:5]
    with ChatSimulationServer(longer) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key='unused', max_retries=0)
        first = AB.findall(chat(c, 'any', batch_ab(batch)).message.content)
        flipped = AB.findall(chat(c, 'any', batch_ab([swap(e) for e in batch])).message.content)
    assert len(first) == 5 and set(first) == {'a', 'b'}
    assert flipped == [{'a': 'b', 'b': 'a'}[x] for x in first]


def test_chat_with_shown_turns(client, pairs):
    for e in [p for p in pairs if p['input']][:2] + pairs[:2]:
        got = AB.findall(chat(client, 'pocket_medium_chat_fewshot', chat_fewshot(e), seed=2).message.content)
        assert [{'a': 1.0, 'b': 2.0}[x] for x in got] == judged('pocket_medium_chat_fewshot', [e], 2)


def test_plain_text_completions_with_bare_labels(client, pairs):
    for e in pairs[:4]:
        c = client.completions.create(model='pocket_human_02', prompt=inline_text(e), logprobs=2).choices[0]
        want = judged('pocket_human_02', [e])[0]
        assert c.text == (' (b)' if want == 2.0 else ' (a)')
        i = c.logprobs.tokens.index('b' if want == 2.0 else 'a')
        p2 = pocket_human_prob(e, 0, human='pocket_human_02')
        assert math.exp(c.logprobs.token_logprobs[i]) == pytest.approx(p2 if want == 2.0 else 1 - p2, abs=1e-9)
    several = client.completions.create(model='pocket_human_02', prompt=[inline_text(e) for e in pairs[:4]]).choices   # clients batch prompts
    assert [c.text for c in sorted(several, key=lambda c: c.index)] == [' (b)' if p == 2.0 else ' (a)' for p in judged('pocket_human_02', pairs[:4])]
    text = batch_ab(pairs[:2]).replace('Output (a)\n\nThe second', '(a)\n\nThe second')   # bare labels shown on their own line
    got = BARE.findall(chat(client, 'pocket_greedy', text).message.content)
    assert [{'a': 1.0, 'b': 2.0}[x] for x in got] == judged('pocket_greedy', pairs[:2])


def test_json_boolean_answers(client, pairs):
    batch = pairs[5:9]
    content = chat(client, 'pocket_strong_chat_fewshot', json_batch(batch)).message.content
    objs = [json.loads(x) for x in content.split('\n\n')]
    assert all(set(o) == {'Short reason', 'Output (a) is better than Output (b)'} for o in objs)
    assert [1.0 if o['Output (a) is better than Output (b)'] else 2.0 for o in objs] == judged('pocket_strong_chat_fewshot', batch)
    assert re.findall(r': (true|false)', content) == ['true' if o['Output (a) is better than Output (b)'] else 'false' for o in objs]


@pytest.mark.parametrize('model', ['pocket_strong_json', 'pocket_greedy', 'pocket_human_09'])
def test_identifiers_with_top_logprobs(client, pairs, model):
    "AlpacaEval 2's weighted judges: the preference is 2 - p(m) / (p(m) + p(M)) over the first token's top_logprobs."
    for e in pairs[:6]:
        c = chat(client, model, identifiers(e), logprobs=True, top_logprobs=5, max_tokens=1)
        shown = shown_pair(e)
        p2 = pocket_judge_prob(shown, 0, judge=model) if 'human' not in model else pocket_human_prob(shown, 0, human=model)
        assert c.message.content == ('M' if judged(model, [shown])[0] == 2.0 else 'm')
        assert len(c.logprobs.content) == 1 and c.logprobs.content[0].token == c.message.content
        chosen = p2 if c.message.content == 'M' else 1 - p2
        assert math.exp(c.logprobs.content[0].logprob) == pytest.approx(chosen, abs=1e-9)
        top = {t.token: math.exp(t.logprob) for t in c.logprobs.content[0].top_logprobs}
        assert 2 - top['m'] / (top['m'] + top['M']) == pytest.approx(1 + p2, abs=1e-9)


def test_identifiers_swapped_order_and_seed(client, pairs):
    "The identifier names the output as shown: swapping the two outputs swaps the log-probabilities of m and M."
    e = next(p for p in pairs if 0.05 < pocket_judge_prob(shown_pair(p), 0, judge='pocket_strong_persona_verbose') < 0.95)
    probs = []
    for x in (e, swap(e)):
        top = chat(client, 'pocket_strong_persona_verbose', identifiers(x), logprobs=True, top_logprobs=2).logprobs.content[0].top_logprobs
        probs.append({t.token: math.exp(t.logprob) for t in top}['M'])
    assert probs[0] == pytest.approx(pocket_judge_prob(shown_pair(e), 0, judge='pocket_strong_persona_verbose'), abs=1e-9)
    assert probs[1] == pytest.approx(pocket_judge_prob(shown_pair(swap(e)), 0, judge='pocket_strong_persona_verbose'), abs=1e-9)


def test_ranking_answer(client, pairs):
    tail = ("Rank the two models, best first, and reply only with a Python list like\n[\n    {'model': <name>, 'rank': <rank>},\n"
            "    {'model': <name>, 'rank': <rank>}\n]")
    for e in pairs[:4]:
        text = chat(client, 'pocket_medium_json', identifiers(e, ('model_1', 'model_2'), 'model', 'answer', tail)).message.content
        rank_1 = next(d['rank'] for d in ast.literal_eval(text) if d['model'] == 'model_1')
        assert float(rank_1) == judged('pocket_medium_json', [shown_pair(e)])[0]


def test_function_call(client, pairs):
    tool = dict(type='function', function=dict(name='make_leaderboard', parameters=dict(type='object', properties=dict(
        reason=dict(type='string'), ordered_models=dict(type='array', items=dict(type='object', properties=dict(
            model=dict(type='string'), rank=dict(type='number'))))))))
    for e in pairs[:3]:
        c = chat(client, 'pocket_strong_persona_concise', identifiers(e, tail='Call make_leaderboard.'), tools=[tool],
                 tool_choice=dict(type='function', function=dict(name='make_leaderboard')))
        args = json.loads(c.message.tool_calls[0].function.arguments)
        best = next(d['model'] for d in args['ordered_models'] if d['rank'] == 1)
        assert best == ('M' if judged('pocket_strong_persona_concise', [shown_pair(e)])[0] == 2.0 else 'm')


def test_output_letters(client, pairs):
    for e in pairs[:4]:
        c = chat(client, 'pocket_weak_chat_fewshot', letters(e), logprobs=True, top_logprobs=2)
        assert c.message.content == ('B' if judged('pocket_weak_chat_fewshot', [e])[0] == 2.0 else 'A')
        top = {t.token: math.exp(t.logprob) for t in c.logprobs.content[0].top_logprobs}
        assert top['B'] == pytest.approx(pocket_judge_prob(e, 0, judge='pocket_weak_chat_fewshot'), abs=1e-9)


def test_pool_and_crowd(client, pairs):
    "`pocket_pool` answers with the judge the pocket pool assigns to the pair and seed; `pocket_crowd` with the crowd's assigned human."
    pool, crowd = AnnotatorPool('pocket'), AnnotatorPool('pocket_humans')
    seen = set()
    for i, e in enumerate(pairs[:8]):
        shown = shown_pair(e)
        for name, p, prob in [('pocket_pool', pool, lambda who: pocket_judge_prob(shown, i, judge=who)),
                              ('pocket_crowd', crowd, lambda who: pocket_human_prob(shown, i, human=who))]:
            who = p.judges[p.assign(shown, i)].name
            seen.add(who)
            c = chat(client, name, identifiers(e), seed=i, logprobs=True, top_logprobs=2)
            assert c.message.content == ('M' if judged(who, [shown], i)[0] == 2.0 else 'm')
            assert {t.token: math.exp(t.logprob) for t in c.logprobs.content[0].top_logprobs}['M'] == pytest.approx(prob(who), abs=1e-9)
    assert len({w for w in seen if w.startswith('pocket_human')}) >= 3 and len({w for w in seen if not w.startswith('pocket_human')}) >= 3
