"""The daemon's configuration file (TOML): parsed, type-checked and validated before anything starts.

Three sections, each the fields of settings records (``factory.settings``)::

    [run]     run_dir, SandboxSettings (sandbox, workers, ray_address, generation_replicas) and every
              RunConfig field (same names, same defaults)
    [stop]    StopConditions: rounds, pairs, hours: the daemon stops at the first one met; none means
              run until stopped
    [daemon]  DaemonSettings: metrics_port, log_file, backoff_initial_seconds, backoff_max_seconds,
              stop_timeout_seconds

Defaults, help and rules live in the records: a key left out of the file is simply not passed, and
``example_config()`` reads them from there. `factory round/run --config FILE` read the same file
(``read_tables``). Every mistake (unknown section or key, a wrong type, an impossible value) is a
``UserError`` whose one-line message names the file, section and key. Relative paths (``run_dir``,
``log_file``) are relative to the directory that holds the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from factory.config import RunConfig, SandboxSettings
from factory.errors import SettingError, UserError
from factory.settings import (
    check_declared,
    example_line,
    example_lines,
    field_hints,
    kind_of,
    load_toml,
    record_from,
    reject_unknown,
    setting,
    table_values,
)

DEFAULT_CONFIG_NAME = "factory.toml"
SECTIONS = ("run", "stop", "daemon")
RUN_DIR_HELP = "the run's store, checkpoints and summaries (required)"


@dataclass(frozen=True)
class StopConditions:
    """When the daemon stops by itself. None: no such limit."""

    rounds: int | None = setting(None, "stop once this many rounds of the run are finished", minimum=1, example=10)
    pairs: int | None = setting(
        None, "stop once this many verified generated pairs are stored (checked after each round)", minimum=1,
        example=10000,
    )
    hours: float | None = setting(
        None, "stop after this many hours of this daemon (checked between batches)", example=24.0
    )
    cost: float | None = setting(
        None, "stop once the run's tokens cost this much at [run] price_per_mtok (checked after each round)",
        example=50.0,
    )

    def __post_init__(self) -> None:
        check_declared(self)
        for name in ("hours", "cost"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise SettingError(name, f"{name} must be positive (got {value})")

    def describe(self) -> str:
        parts = [
            f"{self.rounds} rounds" if self.rounds is not None else "",
            f"{self.pairs} pairs" if self.pairs is not None else "",
            f"{self.hours:g} hours" if self.hours is not None else "",
            f"a cost of {self.cost:g}" if self.cost is not None else "",
        ]
        return ", ".join(p for p in parts if p) or "never (until stopped)"


@dataclass(frozen=True)
class DaemonSettings:
    metrics_port: int = setting(0, "Prometheus /metrics on 127.0.0.1:PORT; 0 = off")
    log_file: Path | None = setting(None, "JSON log lines, appended (default: stderr)", example="daemon.log")
    backoff_initial_seconds: float = setting(1.0, "first wait while the Docker engine is unreachable")
    backoff_max_seconds: float = setting(300.0, "the wait doubles up to this")
    stop_timeout_seconds: float = setting(5.0, "after SIGTERM/SIGINT, interrupt the current step after this long")

    def __post_init__(self) -> None:
        if not 0 <= self.metrics_port <= 65535:
            raise SettingError("metrics_port", f"metrics_port must be in 0..65535 (got {self.metrics_port})")
        for name in ("backoff_initial_seconds", "backoff_max_seconds", "stop_timeout_seconds"):
            if getattr(self, name) <= 0:
                raise SettingError(name, f"{name} must be positive (got {getattr(self, name)})")
        if self.backoff_initial_seconds > self.backoff_max_seconds:
            raise SettingError(
                "backoff_initial_seconds", "backoff_initial_seconds must not exceed backoff_max_seconds"
            )


@dataclass(frozen=True)
class DaemonConfig:
    run_dir: Path
    run: RunConfig = field(default_factory=RunConfig)
    placement: SandboxSettings = field(default_factory=SandboxSettings)
    stop: StopConditions = field(default_factory=StopConditions)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    source: Path | None = None  # the file it was read from

    def generation_options(self) -> dict[str, object]:
        """``load_backend``'s options for where generation runs (``factory.loop.context.prepare_run``)."""
        from factory.models import replica_options

        return replica_options(self.placement.generation_replicas, self.placement.ray_address)


# The keys of each section: [run] is the run directory, where the run runs, and the run's settings.
SECTION_KEYS = {
    "run": {"run_dir": Path, **field_hints(SandboxSettings), **field_hints(RunConfig)},
    "stop": field_hints(StopConditions),
    "daemon": field_hints(DaemonSettings),
}


# ---------------------------------------------------------------------------------------------------
# reading


def load_config(path: Path | str) -> DaemonConfig:
    """Read and validate a daemon config file; raises UserError naming the file, section and key."""
    path = Path(path)
    return parse_config(load_toml(path, f"write an example with `factory init {path}`"), path)


def read_tables(data: dict, path: Path | str = DEFAULT_CONFIG_NAME) -> dict[str, dict]:
    """Each section's values, every key known and of its type (paths resolved against ``path``'s
    directory); the rules on the values are the records' (``parse_config``, or a command's flags)."""
    where = str(path)
    reject_unknown(where, "", data, SECTIONS, is_section=True)
    for name in SECTIONS:
        if name in data and not isinstance(data[name], dict):
            raise UserError(f"{where}: {name} must be a section ([{name}]), not {kind_of(data[name])}")
    base = Path(path).resolve().parent
    return {name: table_values(where, name, data.get(name, {}), SECTION_KEYS[name], base) for name in SECTIONS}


def split_run_table(values: dict) -> tuple[Path | None, dict, dict]:
    """[run]'s values as (run_dir or None, SandboxSettings values, RunConfig values)."""
    placement_keys = field_hints(SandboxSettings)
    placement = {k: v for k, v in values.items() if k in placement_keys}
    run = {k: v for k, v in values.items() if k not in placement_keys and k != "run_dir"}
    return values.get("run_dir"), placement, run


def in_section(where: str, section: str):
    """``record_from``'s ``where`` for values read from ``section`` of the file ``where``."""
    return lambda name: (f"{where}: [{section}] ", "")


def parse_config(data: dict, path: Path | str = DEFAULT_CONFIG_NAME) -> DaemonConfig:
    """A DaemonConfig from parsed TOML; relative paths resolve against ``path``'s directory."""
    path, where = Path(path), str(path)
    tables = read_tables(data, path)
    run_dir, placement, run = split_run_table(tables["run"])
    if run_dir is None:
        raise UserError(f"{where}: [run] run_dir is required: the directory of the run's store and checkpoints")
    config = DaemonConfig(
        run_dir=run_dir,
        run=record_from(RunConfig, run, in_section(where, "run")),  # every rule on the values is RunConfig's
        placement=record_from(SandboxSettings, placement, in_section(where, "run")),
        stop=record_from(StopConditions, tables["stop"], in_section(where, "stop")),
        daemon=record_from(DaemonSettings, tables["daemon"], in_section(where, "daemon")),
        source=path,
    )
    if config.stop.cost is not None and config.run.prices() is None:
        raise UserError(f"{where}: [stop] cost needs the token prices: set price_per_mtok in [run]")
    return config


# ---------------------------------------------------------------------------------------------------
# the example file


def example_config() -> str:
    """A commented factory.toml: every key with its default (from the records), all but run_dir off."""
    lines = [
        "# Settings of `factory daemon --config FILE` (and of `factory run --config FILE`: its [run]).",
        "# Every commented line shows the default; uncomment and edit what you need. Relative paths are",
        "# relative to this file's directory. The [run] settings that define the experiment (model,",
        "# backend, seed, eval_*) cannot change once a run directory holds a run: use a new run_dir for a",
        "# new experiment.",
        "",
        "[run]",
        example_line("run_dir", "run", RUN_DIR_HELP, active=True),
        *example_lines(SandboxSettings),
        *example_lines(RunConfig),
        "",
        "[stop]",
        "# The daemon stops at the first condition met; with none it runs until stopped.",
        *example_lines(StopConditions),
        "",
        "[daemon]",
        *example_lines(DaemonSettings),
    ]
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
