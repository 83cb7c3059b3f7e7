"""scripts/gpu_check.sh: one round of the GPU path where a CUDA GPU is, a clean "nothing run" elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.sh"


def run_script(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT)], env={**os.environ, "PY": sys.executable, **env}, capture_output=True, text=True, timeout=1800
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the round below runs instead")
def test_without_a_gpu_it_says_so_and_runs_nothing():
    done = run_script()
    assert done.returncode == 0 and "no CUDA GPU here" in done.stdout and "nothing run" in done.stdout


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_one_round_on_the_gpu_prints_stages_tokens_and_memory(tmp_path, synthetic_tiny_model):
    done = run_script(MODEL=str(synthetic_tiny_model), PUZZLES="8", ATTEMPTS="2", EVAL_SAMPLES="2", EVAL_LIMIT="4",
                      RUN_DIR=str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "propose.generate" in done.stdout and "tokens/s" in done.stdout and "GPU memory: peak" in done.stdout
