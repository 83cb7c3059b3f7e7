"""The `factory` command: ``build_parser`` joins the command groups (one module each), ``main`` runs
one command and maps every error a user can cause to one line on stderr (``factory: ...``) and its
exit code (factory.errors): a ``UserError`` its ``exit_code`` (2; 4 for the store, 5 for a model), an
unusable sandbox 3, Ctrl-C 130, SIGTERM 143. A bad flag is one line too (exit 2). Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import signal
import threading
import typing
import warnings

from factory.cli.daemon import add_daemon_commands
from factory.cli.evaluate import add_eval_commands
from factory.cli.experiment import add_experiment_commands
from factory.cli.outputs import add_export_commands
from factory.cli.rounds import add_round_commands
from factory.cli.sandbox import add_sandbox_commands
from factory.cli.verify import add_verify_commands
from factory.errors import INTERRUPTED_EXIT, SANDBOX_EXIT, TERMINATED_EXIT, USAGE_EXIT, UserError
from sandbox.backend import log_to_stderr
from sandbox.engine import SandboxUnavailable

COMMAND_GROUPS = (
    add_verify_commands,  # verify
    add_sandbox_commands,  # sandbox build, sandbox status
    add_round_commands,  # round, run
    add_eval_commands,  # eval
    add_experiment_commands,  # experiment
    add_export_commands,  # export, report
    add_daemon_commands,  # daemon, init, status
)


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line like every other error (the subcommands inherit it)."""

    def error(self, message: str) -> typing.NoReturn:
        command = self.prog.partition(" ")[2]
        where = f"{command}: " if command else ""
        self.exit(USAGE_EXIT, f"factory: {where}{message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="factory", description="A verified code self-play data factory.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in COMMAND_GROUPS:
        add(subparsers)
    return parser


class Terminated(SystemExit):
    """SIGTERM, raised in the main thread: it unwinds every ``finally`` and ``with`` (containers are
    removed) and, being no ``Exception``, passes every ``except Exception`` on its way to ``main``."""

    def __init__(self) -> None:
        super().__init__(TERMINATED_EXIT)


def terminate(signum: int, frame: object) -> None:
    """SIGTERM's handler while a command runs: raises ``Terminated`` once. Further SIGTERMs are ignored,
    so that none cuts the clean-up short (containers left running) or raises where no handler waits
    for it (a traceback from threading's shutdown); ``main`` restores the previous handler at its end."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


def fail(message: str, code: int) -> int:
    line = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    log_to_stderr(f"factory: {line}")
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Model output is parsed in many places; Python's warnings about odd literals in it are noise.
    warnings.filterwarnings("ignore", category=SyntaxWarning)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate) if in_main else None
    try:
        return args.handler(args)
    except UserError as e:
        return fail(str(e), e.exit_code)
    except SandboxUnavailable as e:
        return fail(f"sandbox unavailable: {e}", SANDBOX_EXIT)
    except KeyboardInterrupt:
        return fail("interrupted", INTERRUPTED_EXIT)
    except Terminated:
        return fail("stopped by SIGTERM", TERMINATED_EXIT)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
