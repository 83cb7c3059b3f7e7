"""Execution and verification of untrusted (puzzle, solution) pairs.

Nothing here imports a model or training library: the sandbox must start fast.
"""
