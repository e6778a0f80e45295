"""Write an alpacafarm outputs file (instruction, input, output, generator; JSON list or JSONL) in alpaca_eval's format:
one record per example with `instruction`, `output` and `generator`, the input (where there is one) appended to the
instruction after a blank line, as AlpacaEval's own evaluation set holds it. Standard library only, so any Python runs it:
    python3 examples/trl_dpo/to_alpaca_eval.py OUTPUTS.json ALPACA_EVAL_OUTPUTS.json [--generator NAME]
A bad file is one line on stderr and exit code 2."""
import argparse, json, sys
from pathlib import Path


def read_rows(path: Path) -> list:
    text = path.read_text()
    if path.suffix == '.jsonl': return [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = json.loads(text)
    if not isinstance(rows, list): raise ValueError("not a JSON list of records")
    return rows


def to_alpaca_eval(rows: list, generator: str = None) -> list:
    out = []
    for i, r in enumerate(rows):
        missing = [k for k in ('instruction', 'output') if not isinstance(r.get(k) if isinstance(r, dict) else None, str)]
        if missing: raise ValueError(f"row {i}: field '{missing[0]}' missing or not a string")
        text = r['instruction'] + (f"\n\n{r['input']}" if r.get('input') else '')
        out.append(dict(instruction=text, output=r['output'], generator=generator or r.get('generator') or 'model'))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('outputs'); p.add_argument('out')
    p.add_argument('--generator', default=None, help="generator name to write (default: each row's)")
    a = p.parse_args(argv)
    try: rows = to_alpaca_eval(read_rows(Path(a.outputs)), a.generator)
    except (OSError, ValueError) as e:
        print(f"to_alpaca_eval: error: {a.outputs}: {getattr(e, 'strerror', None) or e}", file=sys.stderr); return 2
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=1, ensure_ascii=False) + '\n')
    print(f"wrote {len(rows)} records to {a.out}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
