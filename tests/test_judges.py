"""The OpenAI backend (alpacafarm_nb.judge_client) against a real local HTTP server (tests/openai_server.py), with faults."""
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from alpacafarm_nb.judges import JudgeConfigError, JudgeUnreachable, TEMPLATES, load_pool_config, make_judge, prefer_longer
from alpacafarm_nb.judge_client import Endpoint, OpenAIJudge
from openai_server import FakeJudgeServer

FAST = dict(backoff_base=0.001, backoff_max=0.01, timeout=2.0)


def pair(i=0, inp=''):
    """A pair whose second output is longer when i is even (so the simulated judge says 2), first when odd."""
    short, long_ = f"ans {i}", f"a much longer answer {i}\nwith a second line"
    return dict(instruction=f"Question {i}?", input=inp, output_1=long_ if i % 2 else short, output_2=short if i % 2 else long_)


def expected(ex):
    return prefer_longer(ex, tie=1.0)


@pytest.fixture(scope='module')
def greedy_entry():
    return load_pool_config('greedy')['annotators'][0]


@pytest.fixture
def server():
    with FakeJudgeServer() as srv:
        yield srv


def test_fake_server_is_importable_and_real_http(server):
    import urllib.request
    with urllib.request.urlopen(server.base_url.replace('/v1', '/v1/models'), timeout=5) as r:
        assert json.load(r)['object'] == 'list'
    assert server.base_url.startswith('http://127.0.0.1:')


def test_greedy_round_trip_and_order_is_respected(server, greedy_entry):
    j = make_judge(greedy_entry, base_url=server.base_url, **FAST)
    ex = pair(0)
    swapped = dict(ex, output_1=ex['output_2'], output_2=ex['output_1'])
    r = j.judge_batch([ex], seed=3)
    assert r[0]['preference'] == 2.0 and r[0]['raw_completion'] == 'Output (b)'
    assert j.judge_batch([swapped], seed=3)[0]['preference'] == 1.0      # the judge does not swap; the pool does
    assert server.seeds == [3, 3]                                           # the request seed reaches decide()
    assert server.billed == server.calls == 2
    assert r[0]['time_per_example'] > 0


@pytest.mark.parametrize('fault', ['429', '500', 'hang', 'nonjson', 'empty', 'truncated', 'unparsable'])
def test_each_fault_is_retried(fault, greedy_entry):
    with FakeJudgeServer(fault_schedule=[fault], retry_after='0', hang_seconds=3) as srv:
        j = make_judge(greedy_entry, base_url=srv.base_url, **dict(FAST, timeout=0.4))
        r = j.judge_batch([pair(1)], seed=0)
        assert r[0]['preference'] == 1.0
        assert (srv.calls, srv.billed, dict(srv.faults)) == (2, 1, {fault: 1})
        assert j.stats['billed'] == (2 if fault == 'unparsable' else 1)   # an unreadable reply is paid for, then re-asked


def test_retry_after_is_honoured(greedy_entry):
    with FakeJudgeServer(fault_schedule=['429'], retry_after='1') as srv:
        j = make_judge(greedy_entry, base_url=srv.base_url, **FAST)
        t0 = time.perf_counter()
        assert j.judge_batch([pair(0)], 0)[0]['preference'] == 2.0
        assert time.perf_counter() - t0 >= 0.95          # the backoff alone would be ~1 ms
        assert j.stats['http_429'] == 1
    with FakeJudgeServer(fault_schedule=['429'], retry_after='30') as srv:   # capped by retry_after_max
        j = make_judge(greedy_entry, base_url=srv.base_url, retry_after_max=0.2, **FAST)
        t0 = time.perf_counter()
        assert j.judge_batch([pair(0)], 0)[0]['preference'] == 2.0
        assert 0.19 <= time.perf_counter() - t0 < 5


def test_exponential_backoff_with_jitter(greedy_entry):
    j = make_judge(greedy_entry, backoff_base=0.1, backoff_max=1.0)
    waits = [[j._wait(k, None) for _ in range(200)] for k in range(6)]
    for k, w in enumerate(waits):
        cap = min(1.0, 0.1 * 2 ** k)
        assert cap * 0.5 <= min(w) and max(w) <= cap        # exponential, capped, jittered in [cap/2, cap]
        assert len(set(w)) > 100                            # really random
    assert j._wait(0, 0.7) >= 0.7                           # never shorter than Retry-After
    with FakeJudgeServer(fault_schedule=['500'] * 4) as srv:
        j = make_judge(greedy_entry, base_url=srv.base_url, backoff_base=0.05, backoff_max=10, timeout=2)
        t0 = time.perf_counter()
        assert j.judge_batch([pair(0)], 0)[0]['preference'] == 2.0
        dt = time.perf_counter() - t0
        assert 0.37 <= dt < 2.0, dt                         # 0.05+0.1+0.2+0.4 = 0.75 at most, half that at least
        assert srv.calls == 5


def test_exhausted_retries_give_none_not_an_exception(greedy_entry):
    with FakeJudgeServer(fault_rates={'500': 1.0}) as srv:
        j = make_judge(greedy_entry, base_url=srv.base_url, max_retries=2, **FAST)
        r = j.judge_batch([pair(0)], 0)
        assert r[0]['preference'] is None and r[0]['raw_completion'] is None and r[0]['price_per_example'] == 0
        assert r[0]['failure'] == 'transient'                # not paid: the pool asks again later in the run
        assert srv.calls == 3 and srv.billed == 0


def test_bounded_parse_retries(greedy_entry):
    with FakeJudgeServer(fault_rates={'unparsable': 1.0}) as srv:
        j = make_judge(greedy_entry, base_url=srv.base_url, max_parse_retries=2, **FAST)
        r = j.judge_batch([pair(0)], seed=5)
        assert r[0]['preference'] is None
        assert r[0]['raw_completion'] == 'Both outputs have their merits.'
        assert r[0]['failure'] == 'unparsed'                 # paid: the pool caches it and does not ask again
        assert srv.calls == 3 and j.stats['unparsed'] == 3


def test_batched_prompt_partial_parse_and_per_pair_answers():
    entry = next(a for a in load_pool_config('alpacafarm_v1')['annotators'] if a['batch_size'] == 5)

    def decide(model, examples, seed):   # no verdict for pair 3: its line is missing from the reply
        return [None if e['instruction'] == 'Question 2?' else prefer_longer(e, tie=1.0) for e in examples]
    with FakeJudgeServer(decide) as srv:
        j = make_judge(entry, base_url=srv.base_url, max_parse_retries=1, **FAST)
        batch = [pair(i, inp='some input\nwith lines') for i in range(5)]
        r = j.judge_batch(batch, seed=0)
        assert [x['preference'] for x in r] == [2.0, 1.0, None, 1.0, 2.0]
        assert srv.calls == 2 and srv.seeds == [0, 1]        # re-asked once with a moved seed, then given up
        assert srv.billed_examples[:5] == batch              # the server read back exactly what was sent


def test_every_annotator_of_the_pool_over_http():
    pool = load_pool_config('alpacafarm_v1')
    with FakeJudgeServer(models=list(pool['models'].values())) as srv:
        for entry in pool['annotators']:
            j = make_judge(entry, base_url=srv.base_url, **FAST)
            batch = [pair(i, inp='ctx' if j.batch_size > 1 else '') for i in range(j.batch_size)]
            assert [x['preference'] for x in j.judge_batch(batch, 0)] == [expected(e) for e in batch], entry['name']
            assert all(x['price_per_example'] > 0 for x in j.judge_batch(batch, 0))   # priced from usage x prices
        assert srv.billed == srv.calls == 26


def test_unknown_model_is_a_configuration_error(greedy_entry):
    with FakeJudgeServer(models=['gpt-4o']) as srv:
        j = make_judge(greedy_entry, base_url=srv.base_url, model='gpt-retired-2023', **FAST)
        with pytest.raises(JudgeConfigError, match='gpt-retired-2023'):
            j.judge_batch([pair(0)], 0)
        assert srv.calls == 1                                 # not retried


def test_price_is_zero_for_models_without_a_price(server, greedy_entry):
    j = make_judge(greedy_entry, base_url=server.base_url, model='local-judge', **FAST)
    assert j.judge_batch([pair(0)], 0)[0]['price_per_example'] == 0.0
    j = make_judge(greedy_entry, base_url=server.base_url, **FAST)      # gpt-4o has a price in greedy.yaml
    assert j.judge_batch([pair(0)], 0)[0]['price_per_example'] > 0


def test_api_key_is_never_stored(server, greedy_entry, monkeypatch):
    secret = 'sk-test-DO-NOT-LEAK-1234567890'
    monkeypatch.setenv('MY_JUDGE_KEY', secret)
    j = make_judge(greedy_entry, base_url=server.base_url, api_key_env='MY_JUDGE_KEY', **FAST)
    r = j.judge_batch([pair(0)], 0)
    assert r[0]['preference'] == 2.0
    blob = json.dumps([j.cache_identity(), r, j.config, repr(j)], default=str)
    assert secret not in blob and 'MY_JUDGE_KEY' not in json.dumps(j.cache_identity())
    assert j.client.api_key == secret                         # it is used, only in the client


def test_missing_key(monkeypatch, greedy_entry, server):
    monkeypatch.delenv('OPENAI_API_KEY', raising=False)
    j = make_judge(greedy_entry, base_url='https://api.example.invalid/v1', **FAST)
    with pytest.raises(JudgeConfigError, match='OPENAI_API_KEY'):
        j.judge_batch([pair(0)], 0)
    j = make_judge(greedy_entry, base_url=server.base_url, **FAST)   # a local server needs no key
    assert j.judge_batch([pair(0)], 0)[0]['preference'] == 2.0 and j.client.api_key == 'EMPTY'


def test_concurrent_calls_with_30_percent_faults(greedy_entry):
    rates = {'429': 0.08, '500': 0.08, 'hang': 0.03, 'nonjson': 0.04, 'empty': 0.04, 'unparsable': 0.03}
    with FakeJudgeServer(fault_rates=rates, fault_seed=1, retry_after='0', hang_seconds=2) as srv:
        j = make_judge(greedy_entry, base_url=srv.base_url, max_retries=10, **dict(FAST, timeout=0.5))
        exs = [pair(i) for i in range(60)]
        with ThreadPoolExecutor(16) as pool:
            res = list(pool.map(lambda e: j.judge_batch([e], 0)[0], exs))
        assert [r['preference'] for r in res] == [expected(e) for e in exs]
        assert srv.billed == len(exs) and sum(srv.faults.values()) >= 10
        assert sorted(e['instruction'] for e in srv.billed_examples) == sorted(e['instruction'] for e in exs)


def test_extract_rejects_foreign_prompts():
    msgs = [dict(role='system', content='You are a judge.'), dict(role='user', content='Which is better?')]
    assert not any(t.matches(msgs) for t in TEMPLATES.values())
    with FakeJudgeServer() as srv:
        import openai
        c = openai.OpenAI(base_url=srv.base_url, api_key='EMPTY', max_retries=0)
        with pytest.raises(openai.BadRequestError):
            c.chat.completions.create(model='m', messages=msgs)


def test_transport_garbage_is_transient_not_a_parse_failure(greedy_entry):
    """Non-JSON, truncated and empty bodies use the retry budget, not the small parse budget (which stays for real replies)."""
    with FakeJudgeServer(fault_schedule=['nonjson', 'truncated', 'empty', 'nonjson', 'truncated']) as srv:
        j = make_judge(greedy_entry, base_url=srv.base_url, max_parse_retries=0, max_retries=6, **FAST)
        r = j.judge_batch([pair(0)], 0)
        assert r[0]['preference'] == 2.0 and srv.calls == 6 and j.stats['unparsed'] == 0


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_refused_connection_fails_fast_naming_url_and_cause(greedy_entry):
    url = f"http://127.0.0.1:{free_port()}/v1"                       # nothing listens there
    j = make_judge(greedy_entry, base_url=url, max_retries=6, backoff_base=1.0, timeout=5)
    t0 = time.perf_counter()
    with pytest.raises(JudgeUnreachable) as e:
        j.judge_batch([pair(0)], 0)
    assert time.perf_counter() - t0 < 6                               # a short connect budget, not 6 backoffs
    assert url in str(e.value) and 'connection refused' in str(e.value)
    t0 = time.perf_counter()
    with pytest.raises(JudgeUnreachable):                             # every other request on that endpoint stops at once
        j.judge_batch([pair(1)], 0)
    assert time.perf_counter() - t0 < 0.5


def test_hung_endpoint_is_named_after_two_timeouts(greedy_entry):
    with FakeJudgeServer(fault_rates={'hang': 1.0}, hang_seconds=20) as srv:
        j = make_judge(greedy_entry, base_url=srv.base_url, timeout=0.5, max_retries=6, backoff_base=0.01)
        t0 = time.perf_counter()
        with pytest.raises(JudgeUnreachable) as e:
            j.judge_batch([pair(0)], 0)
        assert time.perf_counter() - t0 < 5 and srv.calls == 2
        assert srv.base_url in str(e.value) and 'no answer' in str(e.value) and '0.5 s' in str(e.value)


def test_a_hang_after_answers_is_only_a_retry(greedy_entry):
    with FakeJudgeServer(fault_schedule=[None, 'hang', 'hang', 'hang'], hang_seconds=3) as srv:
        j = make_judge(greedy_entry, base_url=srv.base_url, **dict(FAST, timeout=0.3))
        assert j.judge_batch([pair(0)], 0)[0]['preference'] == 2.0
        assert j.judge_batch([pair(1)], 0)[0]['preference'] == 1.0   # three timeouts, then the answer
        assert j.stats['timeout'] == 3


def test_endpoint_limit_is_aimd():
    ep = Endpoint('http://x/v1', ceiling=64)
    for _ in range(40): ep.acquire()
    ep.slow_down()
    assert ep.limit == 20                                             # half of the 40 in flight
    ep.slow_down()
    assert ep.limit == 20                                             # a burst of 429s cuts once (at most once a second)
    for _ in range(40): ep.release()
    for _ in range(20): ep.answered(ok=True)
    assert 20.9 < ep.limit < 21.1                                     # one slot more per window of answers
    ep.last_cut -= 2                                                  # a second later, with 10 in flight
    for _ in range(10): ep.acquire()
    ep.slow_down()
    assert ep.limit == 5
