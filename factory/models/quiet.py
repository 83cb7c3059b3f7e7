"""Library chatter kept off a command's output: ``datasets`` progress bars and deprecation warnings of
the libraries, for work whose progress the command reports itself."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def without_library_chatter() -> Iterator[None]:
    """No ``datasets`` progress bars and no FutureWarning/DeprecationWarning inside the block; the
    previous progress-bar setting comes back after."""
    import datasets

    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        if enabled:
            datasets.enable_progress_bars()
