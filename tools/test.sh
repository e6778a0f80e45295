#!/usr/bin/env bash
# The whole test suite (README's `make test`):
# 1. nbdev-export must not change the package (notebooks are the source; the package is never hand-edited),
# 2. nbdev-clean must not change the notebooks,
# 3. nbdev-test runs every notebook's tests, 4. pytest runs the cross-module tests in tests/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export PATH="$PWD/$BIN:$PATH"
# Jupyter and friends write into HOME; keep them inside a scratch folder so tests work as root and in CI.
export JUPYTER_CONFIG_DIR="${JUPYTER_CONFIG_DIR:-$(mktemp -d)}"
export JUPYTER_DATA_DIR="${JUPYTER_DATA_DIR:-$(mktemp -d)}"
export MPLCONFIGDIR="${MPLCONFIGDIR:-$(mktemp -d)}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONHASHSEED=0
# Notebook checks that cannot run here (no shared data, no optional extra) print `SKIP: reason` and append it to this
# file (core.skip_note), so the summary counts them instead of counting them as passed.
export ALPACAFARM_SKIP_LOG="${ALPACAFARM_SKIP_LOG:-$(mktemp)}"

snapshot() { find "$@" -type f \( -name '*.py' -o -name '*.ipynb' -o -name '*.yaml' \) -not -path '*/.ipynb_checkpoints/*' -print0 | sort -z | xargs -0 sha1sum; }

echo "== nbdev-export (the package must already match nbs/)"
before=$(snapshot alpacafarm_nb)
nbdev-export
after=$(snapshot alpacafarm_nb)
if [ "$before" != "$after" ]; then
  echo "FAIL: nbdev-export changed the package: notebooks and alpacafarm_nb/ are out of sync:"
  diff <(echo "$before") <(echo "$after") || true
  exit 1
fi

echo "== nbdev-clean (notebooks must already be clean)"
before=$(snapshot nbs)
nbdev-clean
after=$(snapshot nbs)
if [ "$before" != "$after" ]; then
  echo "FAIL: nbdev-clean changed notebooks: run 'make clean-nbs' and commit:"
  diff <(echo "$before") <(echo "$after") || true
  exit 1
fi

echo "== nbdev-test (one torch thread per notebook: two notebooks run at once on two cores)"
OMP_NUM_THREADS=1 nbdev-test --n-workers "${NBDEV_TEST_WORKERS:-2}" --timing

n_skip=$(sort -u "$ALPACAFARM_SKIP_LOG" | grep -c . || true)
echo "== notebook checks skipped: $n_skip"
sort -u "$ALPACAFARM_SKIP_LOG" | sed 's/^/  /'

echo "== pytest"
python -m pytest -q tests "$@"
