"""A fault-injecting OpenAI-compatible judge server for tests and benchmarks.

A thin wrapper over `alpacafarm_nb.serve.ChatSimulationServer` (a real HTTP server on 127.0.0.1, random free port)
whose simulated judge prefers the longer output unless given another `decide`. Import it from tests (pytest puts
the tests/ folder on sys.path because tests/ has a conftest.py and no __init__.py):

    from openai_server import FakeJudgeServer
    with FakeJudgeServer(fault_rates={'429': .1, '500': .1}, latency=0.05) as srv:
        judge = make_judge(entry, base_url=srv.base_url)
        ...
        srv.calls, srv.billed, srv.faults, srv.billed_examples

Fault kinds (alpacafarm_nb.serve.FAULT_KINDS): '429' (with Retry-After), '500', 'hang' (holds the connection past
the client's timeout, then closes it; `fault_rates={'hang': 1.0}` is a server that accepts connections and never
answers), 'nonjson' (200 with a non-JSON body), 'empty' (200 with empty content), 'truncated' (200 whose JSON body stops
halfway), 'unparsable' (200 with a well-formed reply the template cannot read). Give `fault_rates` (probabilities per request, drawn
deterministically from `fault_seed` and the request index) and/or `fault_schedule` (kinds for the first requests).
`billed` counts good answers only; `calls` counts every request.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

from alpacafarm_nb.judges import prefer_longer
from alpacafarm_nb.serve import ChatSimulationServer, FAULT_KINDS

__all__ = ['FakeJudgeServer', 'FAULT_KINDS', 'longer_wins']


def longer_wins(model: str, examples: Sequence[Mapping], seed: int) -> list[float]:
    """Deterministic simulated judge: the longer output wins, ties go to (a)."""
    return [prefer_longer(e, seed, tie=1.0) for e in examples]


class FakeJudgeServer(ChatSimulationServer):
    """`ChatSimulationServer` with test-friendly defaults: longer output wins, short hangs, `Retry-After: 1`."""

    def __init__(self, decide: Callable | None = None, *, latency: float = 0.0, fault_rates: Mapping | None = None,
                 fault_schedule: Sequence | None = None, fault_seed: int = 0, hang_seconds: float = 5.0,
                 retry_after: str | float = '1', models: Sequence[str] | None = None, **kw):
        super().__init__(decide or longer_wins, latency=latency, fault_rates=fault_rates, fault_schedule=fault_schedule,
                         fault_seed=fault_seed, hang_seconds=hang_seconds, retry_after=retry_after, models=models, **kw)

    def reset_counts(self) -> None:
        with self._lock:
            self.calls = self.billed = 0
            self.faults.clear(); self.billed_examples.clear(); self.seeds.clear()


if __name__ == '__main__':   # python tests/openai_server.py [PORT]: serve until interrupted
    import sys
    srv = FakeJudgeServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(srv.base_url, flush=True)
    try: srv.serve_forever()
    except KeyboardInterrupt: pass
