"""The self-play loop: models, prompts, rounds, store, fine-tuning, evaluation, daemon, export, CLI."""
