"""The self-play loop: models, prompts, rounds, store, fine-tuning, evaluation, daemon, export, CLI."""

import os

# torch's OpenMP threads spin while waiting for each other; on a machine whose cores are shared with
# other busy processes (the sandbox workers, say) that makes CPU generation and training 10-50x
# slower. Passive waiting costs nothing on an idle machine. It must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
