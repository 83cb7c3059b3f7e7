"""Errors a user can cause, and the exit code of each: every command prints the message on one line.

Exit codes of `factory` (README, "Exit codes"): 0 done; 2 bad input, flag or config (``UserError``);
3 the sandbox cannot be used (``sandbox.engine.SandboxUnavailable``); 4 the run store cannot be used
(``StoreError``); 5 a model cannot be loaded, reached or trained (``ModelError``); 130 interrupted
(Ctrl-C); 143 stopped by SIGTERM. Library messages say what was wrong and what to do, in terms of the
library's own settings, never of a command-line flag.
"""

USAGE_EXIT = 2
SANDBOX_EXIT = 3
STORE_EXIT = 4
MODEL_EXIT = 5
INTERRUPTED_EXIT = 130
TERMINATED_EXIT = 143  # 128 + SIGTERM


class UserError(Exception):
    """Bad input, a missing file, a broken config: the message says what was wrong and what to do."""

    exit_code = USAGE_EXIT


class SettingError(UserError):
    """A setting (a field of a settings record such as ``RunConfig``, named by ``setting``) has an
    impossible value. The message names the setting; a front end (CLI flag, config key) may add where
    the value came from."""

    def __init__(self, setting: str, message: str):
        super().__init__(message)
        self.setting = setting

    def __reduce__(self):  # pickles (a process pool) with both arguments
        return type(self), (self.setting, str(self))


class StoreError(UserError):
    """The run store cannot do what was asked (corrupt, locked, newer schema...); the message says why."""

    exit_code = STORE_EXIT


class VerifierError(UserError):
    """The sandbox gave a canary pair the wrong verdict: its verdicts cannot be trusted (nothing of the
    batch was stored)."""

    exit_code = SANDBOX_EXIT


class ModelError(UserError):
    """A model cannot be loaded, reached or fine-tuned; the message says what to do (one line)."""

    exit_code = MODEL_EXIT
