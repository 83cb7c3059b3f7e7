"""Settings records and the one parser that reads them from flags and from TOML tables.

A settings record is a frozen dataclass whose fields are made with ``setting``: each field's metadata
holds its ``help`` (the CLI's --help, the comments of an example file) and optionally ``choices``,
``minimum`` (an integer's least value), ``flag`` (the CLI spelling when it is not ``--`` + the name
with dashes), ``repeat`` (a tuple given as a repeatable option), ``metavar`` and ``example`` (shown in an example file for a setting whose default is
None). The record checks its values in ``__post_init__`` and raises a ``SettingError`` naming the
field; ``check_declared`` checks the rules the metadata states (``choices``, ``minimum``).

``add_options`` derives argparse options from a record's fields (booleans as ``--name/--no-name``,
``tuple[int, ...]`` as comma-separated integers unless ``repeat``) and remembers which were given on the command line
(``given_on_command_line``), so that a settings file fills in only the others. ``table_values`` reads a
TOML table into typed values: an unknown key, a wrong type or an empty path is one line naming the
file, the section and the key (with a close match when there is one).
"""

from __future__ import annotations

import argparse
import difflib
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, Field, field, fields
from pathlib import Path
from typing import Any

from factory.errors import SettingError, UserError

GIVEN = "given_on_command_line"  # the namespace attribute: the dests of the options given as flags
FROM_FILE = "from_settings_file"  # the namespace attribute: (the file and section, the dests read from it)


def setting(default: Any, help: str, **extra: Any) -> Any:
    """A settings field: its default, what it means (``help``), and optional ``choices``, ``minimum``,
    ``flag``, ``metavar``, ``example`` (see the module docstring)."""
    return field(default=default, metadata={"help": help, **extra})


def check_declared(record: object) -> None:
    """The rules ``record``'s field metadata states: a value among ``choices``, an integer of at least
    ``minimum`` (None, where the default is None, passes both)."""
    for f in fields(record):
        value = getattr(record, f.name)
        if value is None:
            continue
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise SettingError(f.name, f"{f.name} must be one of {', '.join(choices)}, not {value!r}")
        minimum = f.metadata.get("minimum")
        if minimum is not None and value < minimum:
            raise SettingError(f.name, f"{f.name} must be at least {minimum} (got {value})")


def field_hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def value_type(hint: object) -> type:
    """``int``, ``float``, ``str``, ``bool``, ``Path`` or ``tuple`` (a ``tuple[int, ...]``): the type
    of a setting's values, None left out."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


# ---------------------------------------------------------------------------------------------------
# flags


def int_list(text: str) -> tuple[int, ...]:
    """``"1,5,10"`` -> ``(1, 5, 10)``."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,5, got {text!r}") from None


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum} (got {value})")
        return value

    return parse


def flag_of(f: Field) -> str:
    return f.metadata.get("flag", "--" + f.name.replace("_", "-"))


def _note_given(namespace: argparse.Namespace, dest: str) -> None:
    setattr(namespace, GIVEN, getattr(namespace, GIVEN, frozenset()) | {dest})


class _Store(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        _note_given(namespace, self.dest)


class _Repeat(argparse.Action):
    """A repeatable option: its values in the order given, as a tuple."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = self.dest in given_on_command_line(namespace)
        setattr(namespace, self.dest, (*(getattr(namespace, self.dest) if given else ()), values))
        _note_given(namespace, self.dest)


class _Switch(argparse.BooleanOptionalAction):
    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        _note_given(namespace, self.dest)


def add_options(parser: argparse.ArgumentParser, cls: type, names: Iterable[str] | None = None) -> None:
    """One option per field of the settings record ``cls`` (all, or ``names``), derived from the field:
    its flag, type, default, ``choices``, ``minimum`` and help."""
    hints = field_hints(cls)
    wanted = None if names is None else set(names)
    for f in fields(cls):
        if wanted is not None and f.name not in wanted:
            continue
        kind = value_type(hints[f.name])
        help = f.metadata["help"].replace("%", "%%")
        if f.default not in (None, ()):
            shown = ",".join(map(str, f.default)) if kind is tuple else f.default
            help += f" (default: {shown})"
        if kind is bool:
            parser.add_argument(flag_of(f), dest=f.name, action=_Switch, default=f.default, help=help)
            continue
        choices = f.metadata.get("choices")
        action: type[argparse.Action] = _Store
        if kind is tuple and f.metadata.get("repeat"):
            (item,) = {a for a in typing.get_args(hints[f.name]) if a is not Ellipsis}
            action, convert, metavar = _Repeat, item, f.name.upper()
        elif kind is tuple:
            convert, metavar = int_list, "K,K"
        elif "minimum" in f.metadata:
            convert, metavar = int_at_least(f.metadata["minimum"]), "N"
        else:
            convert = kind
            metavar = None if choices else {int: "N", float: "X"}.get(kind, f.name.upper())
        parser.add_argument(
            flag_of(f), dest=f.name, action=action, type=convert, default=f.default, choices=choices,
            metavar=f.metadata.get("metavar", metavar), help=help,
        )


def given_on_command_line(args: argparse.Namespace) -> frozenset[str]:
    """The dests of the options of ``add_options`` that were given as flags."""
    return getattr(args, GIVEN, frozenset())


def with_file_values(args: argparse.Namespace, values: Mapping[str, object], source: str) -> argparse.Namespace:
    """``args`` with ``values`` (read from ``source``, "FILE: [section]") in place of every option not
    given on the command line: flags win over the file."""
    given = given_on_command_line(args)
    taken = {name: value for name, value in values.items() if name not in given}
    return argparse.Namespace(**{**vars(args), **taken, FROM_FILE: (source, frozenset(taken))})


def record_from(cls: type, values: Mapping[str, object], where: Callable[[str], tuple[str, str]]):
    """``cls(**values)``; a refused value is a one-line UserError saying where it came from:
    ``where(name)`` gives the text before the message and after it (a file and section, or a flag)."""
    try:
        return cls(**values)
    except SettingError as e:
        before, after = where(e.setting)
        raise UserError(f"{before}{e}{after}") from None


def record_from_args(cls: type, args: argparse.Namespace):
    """The record ``cls`` of the options ``add_options`` added for it (a field without one keeps its
    default); a refused value names its flag, or the file and section it was read from
    (``with_file_values``)."""
    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    flags = flags_of(cls, values)
    source, from_file = getattr(args, FROM_FILE, ("", frozenset()))

    def where(name: str) -> tuple[str, str]:
        if name in from_file:
            return f"{source} ", ""
        return "", f" (flag {flags[name]})" if name in flags else ""

    return record_from(cls, values, where)


def flags_of(cls: type, values: Mapping[str, object]) -> dict[str, str]:
    """Each field's flag; for a boolean, the one that turns it the other way (the one to use instead)."""
    flags = {f.name: flag_of(f) for f in fields(cls)}
    for name, value in values.items():
        if isinstance(value, bool) and name in flags:
            flags[name] = "--no-" + flags[name][2:] if value else flags[name]
    return flags


# ---------------------------------------------------------------------------------------------------
# TOML


def load_toml(path: Path, missing: str) -> dict:
    """The parsed TOML file at ``path``; a missing, unreadable or invalid file is a one-line UserError
    (``missing``: what to do when there is none)."""
    tomllib = _toml_module()
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise UserError(f"no config file at {path}: {missing}") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read the config file {path}: {e}") from None


def _toml_module():
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise UserError("reading a config file needs Python 3.11+ (tomllib) or `pip install tomli`") from None
    return tomllib


def reject_unknown(where: str, section: str, data: Mapping, known: Iterable[str], *, is_section: bool = False) -> None:
    """A key of ``data`` outside ``known`` is a UserError naming it, with the closest known key."""
    known = sorted(known)
    for key in data:
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1) or [k for k in known if key in k or k in key]
        hint = f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(known)})"
        if is_section:
            raise UserError(f"{where}: unknown section [{key}]{hint}")
        raise UserError(f"{where}: unknown key [{section}] {key}{hint}")


def table_values(where: str, section: str, table: Mapping, hints: Mapping[str, object], base: Path) -> dict:
    """The values of a TOML table whose keys are those of ``hints`` (field name -> type hint), each
    checked against its type; a ``Path`` must not be empty and is relative to ``base``."""
    reject_unknown(where, section, table, hints)
    values = {}
    for key, value in table.items():
        if value_type(hints[key]) is Path:
            text = typed(where, section, key, value, str)
            if not text.strip():
                raise UserError(f"{where}: [{section}] {key} must not be empty")
            path = Path(text).expanduser()
            values[key] = path if path.is_absolute() else base / path
        else:
            values[key] = typed(where, section, key, value, hints[key])
    return values


def typed(where: str, section: str, key: str, value: object, hint: object):
    """``value`` checked against a type hint (``int``, ``float``, ``bool``, ``str``, ``X | None``,
    ``tuple[int, ...]``); ints are accepted as floats. TOML has no null: None never comes in."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    wanted = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if typing.get_origin(hint) is tuple:
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        if not isinstance(value, list):
            raise UserError(
                f"{where}: [{section}] {key} must be a list of {_plural(item)}, not {kind_of(value)} ({_show(value)})"
            )
        return tuple(typed(where, section, f"{key}[{i}]", v, item) for i, v in enumerate(value))
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(hint)
    if ok is None:  # pragma: no cover - a new field type: teach typed about it
        raise TypeError(f"cannot check [{section}] {key} against {hint!r}")
    if not ok:
        raise UserError(f"{where}: [{section}] {key} must be {wanted[hint]}, not {kind_of(value)} ({_show(value)})")
    return float(value) if hint is float else value


def kind_of(value: object) -> str:
    """How a TOML value reads in a message: "an integer", "a table", ..."""
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _plural(hint: object) -> str:
    return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(hint, str(hint))


def _show(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------------------------------------------
# example files


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string uses JSON's escapes


def example_line(key: str, value: object, help: str, active: bool) -> str:
    text = f"{'' if active else '# '}{key} = {toml_value(value)}"
    return f"{text:<44} # {help}" if help else text


def example_lines(cls: type) -> list[str]:
    """A commented line per field of ``cls``: its default (its ``example`` where the default is None)
    and its help."""
    lines = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        shown = f.metadata.get("example", "") if default is None else default
        lines.append(example_line(f.name, shown, f.metadata["help"], active=False))
    return lines
