"""The `factory` command: one module per command group; ``main`` maps every user error to one line."""

from factory.cli.main import main

__all__ = ["main"]
