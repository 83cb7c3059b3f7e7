"""The daemon's configuration file (TOML): parsed, type-checked and validated before anything starts.

Three sections::

    [run]     run_dir, sandbox, workers, ray_address, and every RunConfig field (same names, same defaults)
    [stop]    rounds, pairs, hours: the daemon stops at the first one met; none means run until stopped
    [daemon]  metrics_port, log_file, backoff_initial_seconds, backoff_max_seconds, stop_timeout_seconds

Defaults of the [run] fields live in one place, ``RunConfig``: a key left out of the file is simply not
passed, and ``example_config()`` reads them from there. Every mistake (unknown section or key, a wrong
type, an impossible value) is a ``UserError`` whose one-line message names the file, section and key.
Relative paths (``run_dir``, ``log_file``) are relative to the directory that holds the file.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from factory.config import RunConfig
from factory.errors import UserError
from sandbox.backend import KINDS as SANDBOX_KINDS  # docker, process, auto, ray

DEFAULT_CONFIG_NAME = "factory.toml"


@dataclass(frozen=True)
class StopConditions:
    """When the daemon stops by itself. None: no such limit."""

    rounds: int | None = None  # once this many rounds of the run are finished
    pairs: int | None = None  # once the run holds this many verified generated pairs (checked after a round)
    hours: float | None = None  # after this many hours of this daemon process (checked between batches)

    def describe(self) -> str:
        parts = [
            f"{self.rounds} rounds" if self.rounds is not None else "",
            f"{self.pairs} pairs" if self.pairs is not None else "",
            f"{self.hours:g} hours" if self.hours is not None else "",
        ]
        return ", ".join(p for p in parts if p) or "never (until stopped)"


@dataclass(frozen=True)
class DaemonSettings:
    metrics_port: int = 0  # Prometheus text format on 127.0.0.1:PORT/metrics; 0 = off
    log_file: Path | None = None  # JSON log lines go here (appended); None = stderr
    backoff_initial_seconds: float = 1.0  # first wait while the sandbox engine is unreachable
    backoff_max_seconds: float = 300.0  # the wait doubles up to this
    stop_timeout_seconds: float = 5.0  # after SIGTERM/SIGINT, interrupt the current step after this long


@dataclass(frozen=True)
class DaemonConfig:
    run_dir: Path
    run: RunConfig = field(default_factory=RunConfig)
    sandbox: str = "docker"  # a daemon runs unattended: no silent fall-back to unisolated processes
    workers: int | None = None  # None: one per CPU (with sandbox = "ray": per node)
    ray_address: str | None = None  # sandbox = "ray": the cluster; None: $RAY_ADDRESS, else a local Ray
    generation_replicas: int = 0  # >= 1: generate with that many model replicas as Ray actors
    stop: StopConditions = field(default_factory=StopConditions)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    source: Path | None = None  # the file it was read from

    def generation_options(self) -> dict[str, object]:
        """``load_backend``'s options for where generation runs (``factory.loop.context.prepare_run``)."""
        from factory.models import replica_options

        return replica_options(self.generation_replicas, self.ray_address)


# What each key means: the comments of the example file. The [run] settings of RunConfig carry their
# own help (and example values) in their field metadata; these are the keys around them.
RUN_EXTRA_HELP = {
    "run_dir": "the run's store, checkpoints and summaries (required)",
    "sandbox": "docker (hardened containers), process (NO isolation), auto (docker if reachable at start) "
    "or ray (docker on every node of a Ray cluster)",
    "workers": "parallel sandbox workers (default: one per CPU; with ray, per node)",
    "ray_address": "the Ray cluster of sandbox = \"ray\" and generation replicas (default: $RAY_ADDRESS, else a local Ray)",
    "generation_replicas": "generate with N model replicas as Ray actors (same samples for any N >= 1); 0: no Ray",
}
STOP_HELP = {
    "rounds": "stop once this many rounds of the run are finished",
    "pairs": "stop once this many verified generated pairs are stored (checked after each round)",
    "hours": "stop after this many hours of this daemon (checked between batches)",
}
DAEMON_HELP = {
    "metrics_port": "Prometheus /metrics on 127.0.0.1:PORT; 0 = off",
    "log_file": "JSON log lines, appended (default: stderr)",
    "backoff_initial_seconds": "first wait while the Docker engine is unreachable",
    "backoff_max_seconds": "the wait doubles up to this",
    "stop_timeout_seconds": "after SIGTERM/SIGINT, interrupt the current step after this long",
}
EXAMPLE_VALUES = {  # shown for keys whose default is None (RunConfig's: its fields' "example")
    "workers": 4,
    "ray_address": "10.0.0.1:6379",
    "rounds": 10,
    "pairs": 10000,
    "hours": 24.0,
    "log_file": "daemon.log",
}


# ---------------------------------------------------------------------------------------------------
# reading


def load_config(path: Path | str) -> DaemonConfig:
    """Read and validate a daemon config file; raises UserError naming the file, section and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"no config file at {path}: write an example with `factory init {path}`") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read the config file {path}: {e}") from None
    toml = _toml_module()
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML: {e}") from None
    return parse_config(data, path)


def _toml_module():
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise UserError("reading a config file needs Python 3.11+ (tomllib) or `pip install tomli`") from None
    return tomllib


def parse_config(data: dict, path: Path | str = DEFAULT_CONFIG_NAME) -> DaemonConfig:
    """A DaemonConfig from parsed TOML; relative paths resolve against ``path``'s directory."""
    path = Path(path)
    where = str(path)
    _reject_unknown(where, "", data, {"run", "stop", "daemon"}, is_section=True)
    for name in ("run", "stop", "daemon"):
        if name in data and not isinstance(data[name], dict):
            raise UserError(f"{where}: {name} must be a section ([{name}]), not {_kind(data[name])}")
    base = path.resolve().parent
    run_section = dict(data.get("run", {}))
    run_hints = typing.get_type_hints(RunConfig)
    extra_hints = {"run_dir": str, "sandbox": str, "workers": int, "ray_address": str, "generation_replicas": int}
    _reject_unknown(where, "run", run_section, set(run_hints) | set(extra_hints))

    if "run_dir" not in run_section:
        raise UserError(f"{where}: [run] run_dir is required: the directory of the run's store and checkpoints")
    run_dir = _typed(where, "run", "run_dir", run_section.pop("run_dir"), str)
    if not run_dir.strip():
        raise UserError(f"{where}: [run] run_dir must not be empty")
    run_dir = _resolve(base, run_dir)
    sandbox = _typed(where, "run", "sandbox", run_section.pop("sandbox", DaemonConfig.sandbox), str)
    if sandbox not in SANDBOX_KINDS:
        raise UserError(f"{where}: [run] sandbox must be one of {', '.join(SANDBOX_KINDS)}, not {sandbox!r}")
    workers = run_section.pop("workers", None)
    if workers is not None:
        workers = _typed(where, "run", "workers", workers, int)
        _at_least(where, "run", "workers", workers, 1)
    ray_address = run_section.pop("ray_address", None)
    if ray_address is not None:
        ray_address = _typed(where, "run", "ray_address", ray_address, str)
        if not ray_address.strip():
            raise UserError(f"{where}: [run] ray_address must not be empty (leave it out for $RAY_ADDRESS)")
    replicas = _typed(where, "run", "generation_replicas", run_section.pop("generation_replicas", 0), int)
    _at_least(where, "run", "generation_replicas", replicas, 0)

    values = {key: _typed(where, "run", key, value, run_hints[key]) for key, value in run_section.items()}
    try:
        run = RunConfig(**values)  # every rule on the values is RunConfig's
    except UserError as e:
        raise UserError(f"{where}: [run] {e}") from None

    stop = _section(where, "stop", data.get("stop", {}), StopConditions)
    for key in ("rounds", "pairs"):
        if getattr(stop, key) is not None:
            _at_least(where, "stop", key, getattr(stop, key), 1)
    if stop.hours is not None and stop.hours <= 0:
        raise UserError(f"{where}: [stop] hours must be positive (got {stop.hours})")

    daemon_section = dict(data.get("daemon", {}))
    log_file = daemon_section.pop("log_file", None)
    settings = _section(where, "daemon", daemon_section, DaemonSettings, extra={"log_file"})
    if log_file is not None:
        log_file = _typed(where, "daemon", "log_file", log_file, str)
        if not log_file.strip():
            raise UserError(f"{where}: [daemon] log_file must not be empty (leave it out to log to stderr)")
        settings = _replace(settings, log_file=_resolve(base, log_file))
    if not 0 <= settings.metrics_port <= 65535:
        raise UserError(f"{where}: [daemon] metrics_port must be in 0..65535 (got {settings.metrics_port})")
    for key in ("backoff_initial_seconds", "backoff_max_seconds", "stop_timeout_seconds"):
        if getattr(settings, key) <= 0:
            raise UserError(f"{where}: [daemon] {key} must be positive (got {getattr(settings, key)})")
    if settings.backoff_initial_seconds > settings.backoff_max_seconds:
        raise UserError(f"{where}: [daemon] backoff_initial_seconds must not exceed backoff_max_seconds")
    return DaemonConfig(run_dir=run_dir, run=run, sandbox=sandbox, workers=workers, ray_address=ray_address,
                        generation_replicas=replicas, stop=stop, daemon=settings, source=path)


def _section(where: str, name: str, data: dict, cls: type, extra: set[str] = frozenset()):
    hints = typing.get_type_hints(cls)
    _reject_unknown(where, name, data, set(hints) | set(extra))
    return cls(**{key: _typed(where, name, key, value, hints[key]) for key, value in data.items()})


def _reject_unknown(where: str, section: str, data: dict, known: set[str], *, is_section: bool = False) -> None:
    for key in data:
        if key in known:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1) or sorted(k for k in known if key in k or k in key)
        hint = f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(sorted(known))})"
        if is_section:
            raise UserError(f"{where}: unknown section [{key}]{hint}")
        raise UserError(f"{where}: unknown key [{section}] {key}{hint}")


def _typed(where: str, section: str, key: str, value: object, hint: object):
    """``value`` checked against a type hint (``int``, ``float``, ``bool``, ``str``, ``X | None``,
    ``tuple[int, ...]``, ``Path``); ints are accepted as floats. TOML has no null: None never comes in."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint is Path:
        hint = str
    wanted = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if typing.get_origin(hint) is tuple:
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        if not isinstance(value, list):
            raise UserError(f"{where}: [{section}] {key} must be a list of {_plural(item)}, not {_kind(value)} ({_show(value)})")
        return tuple(_typed(where, section, f"{key}[{i}]", v, item) for i, v in enumerate(value))
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(hint)
    if ok is None:  # pragma: no cover - a new field type: teach _typed about it
        raise TypeError(f"cannot check [{section}] {key} against {hint!r}")
    if not ok:
        raise UserError(f"{where}: [{section}] {key} must be {wanted[hint]}, not {_kind(value)} ({_show(value)})")
    return float(value) if hint is float else value


def _at_least(where: str, section: str, key: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise UserError(f"{where}: [{section}] {key} must be at least {minimum} (got {value})")


def _kind(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _plural(hint: object) -> str:
    return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(hint, str(hint))


def _show(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _replace(settings: DaemonSettings, **changes) -> DaemonSettings:
    import dataclasses

    return dataclasses.replace(settings, **changes)


# ---------------------------------------------------------------------------------------------------
# the example file


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string uses JSON's escapes


def _line(key: str, value: object, help: str, active: bool) -> str:
    text = f"{'' if active else '# '}{key} = {toml_value(value)}"
    return f"{text:<44} # {help}" if help else text


def example_config() -> str:
    """A commented factory.toml: every key with its default (from the dataclasses), all but run_dir off."""
    lines = [
        "# Settings of `factory daemon --config FILE`. Every commented line shows the default;",
        "# uncomment and edit what you need. Relative paths are relative to this file's directory.",
        "# The [run] settings that define the experiment (model, backend, seed, eval_*) cannot change",
        "# once a run directory holds a run: use a new run_dir for a new experiment.",
        "",
        "[run]",
        _line("run_dir", "run", RUN_EXTRA_HELP["run_dir"], active=True),
        _line("sandbox", DaemonConfig.sandbox, RUN_EXTRA_HELP["sandbox"], active=False),
        _line("workers", EXAMPLE_VALUES["workers"], RUN_EXTRA_HELP["workers"], active=False),
        _line("ray_address", EXAMPLE_VALUES["ray_address"], RUN_EXTRA_HELP["ray_address"], active=False),
        _line("generation_replicas", DaemonConfig.generation_replicas, RUN_EXTRA_HELP["generation_replicas"],
              active=False),
    ]
    for f in fields(RunConfig):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        shown = f.metadata.get("example", "") if default is None else default
        lines.append(_line(f.name, shown, f.metadata["help"], active=False))
    lines += ["", "[stop]", "# The daemon stops at the first condition met; with none it runs until stopped."]
    for f in fields(StopConditions):
        lines.append(_line(f.name, EXAMPLE_VALUES[f.name], STOP_HELP[f.name], active=False))
    lines += ["", "[daemon]"]
    for f in fields(DaemonSettings):
        shown = EXAMPLE_VALUES.get(f.name, "") if f.default is None else f.default
        lines.append(_line(f.name, shown, DAEMON_HELP[f.name], active=False))
    return "\n".join(lines) + "\n"


def write_example_config(path: Path | str) -> Path:
    """Write ``example_config()`` to ``path``; refuses to overwrite anything there."""
    path = Path(path)
    if path.is_dir():
        path = path / DEFAULT_CONFIG_NAME
    try:
        with open(path, "x", encoding="utf-8") as out:
            out.write(example_config())
    except FileExistsError:
        raise UserError(f"{path} already exists: edit it, or give another path to `factory init`") from None
    except OSError as e:
        raise UserError(f"cannot write {path}: {e}") from None
    return path
