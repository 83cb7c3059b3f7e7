#!/usr/bin/env bash
# The GPU path, checked: one self-play round (base evaluation, propose, solve, TRL fine-tuning, the
# trained model's evaluation) of a Hugging Face-format checkpoint with the transformers backend on a
# CUDA GPU; prints seconds per stage, tokens/s and GPU memory. Without a CUDA GPU it says so and exits 0.
#
#   scripts/gpu_check.sh [MODEL_DIR_OR_HUB_ID]     (or $MODEL; default: the embedded default model, built if needed)
#
# Settings: PUZZLES (64), ATTEMPTS (8), EVAL_SAMPLES (5), EVAL_LIMIT (40), RUN_DIR (a new temporary
# directory), PY (the venv's python). Nothing is downloaded unless MODEL is a Hub id.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: no CUDA GPU here (torch.cuda.is_available() is False): nothing run"
  exit 0
fi
RUN_DIR=${RUN_DIR:-$(mktemp -d)/run}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
exec "$PY" - "${1:-${MODEL:-}}" "$RUN_DIR" <<'PYTHON'
import json
import os
import sys
import time

import torch

from factory.config import RunConfig
from factory.loop.context import prepare_run
from factory.loop.corpus import embedded_model_path
from factory.loop.rounds import rounds_finished, run_rounds
from sandbox.backend import open_sandbox

model = sys.argv[1] or embedded_model_path()
run_dir = sys.argv[2]
env = lambda name, default: int(os.environ.get(name, default))
config = RunConfig(
    model=model, backend="transformers", puzzles=env("PUZZLES", 64), attempts=env("ATTEMPTS", 8),
    batch_size=32, eval_samples=env("EVAL_SAMPLES", 5), eval_limit=env("EVAL_LIMIT", 40), epochs=1.0,
)
print(f"gpu_check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, model {model}, run {run_dir}")
torch.cuda.reset_peak_memory_stats()
started = time.perf_counter()
with open_sandbox("auto", log=print) as sandbox, prepare_run(run_dir, config, sandbox, show_progress=False) as ctx:
    run_rounds(ctx, rounds_finished(1))
total = time.perf_counter() - started
summary = json.loads(open(f"{run_dir}/rounds/round-1.json").read())
print(f"round 1: {summary['seconds']:.1f} s of {total:.1f} s with the base evaluation")
for stage, seconds in summary["timings"].items():
    print(f"  {stage:<24} {seconds:8.1f} s")
print(f"  tokens: {summary['tokens']} generated, {summary['tokens_per_second']:.0f} tokens/s while generating")
print(f"  funnel: {json.dumps(summary['funnel'])}")
print(f"  pass@k: {summary['eval']['pass_at_k']} (base {summary['eval']['base_pass_at_k']})")
free, capacity = torch.cuda.mem_get_info()
print(f"  GPU memory: peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated by this process "
      f"(training may run in its own), {(capacity - free) / 2**30:.2f} of {capacity / 2**30:.1f} GiB in use now")
PYTHON
