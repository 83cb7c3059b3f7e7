"""The self-play loop: prompts, corpus, filters, evaluation, pass@k and the round's stages."""
