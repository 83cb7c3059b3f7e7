"""What a run produces for people and tools: status, Hugging Face export, dataset card, report."""
