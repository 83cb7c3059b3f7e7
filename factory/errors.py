"""Errors a user can cause: the CLI prints their message on one line and exits non-zero."""


class UserError(Exception):
    """Bad input, a missing file, a broken config: the message says what was wrong and what to do."""

    exit_code = 2
