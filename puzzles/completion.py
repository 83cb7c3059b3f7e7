"""Cutting the completed function out of model output: the prompt ended inside a def line and the
model went on; where does that function end? A chat model replies instead of continuing:
``function_from_reply`` finds the function in its reply, refusing prose. (Nothing here validates the
code beyond its syntax: ``puzzles.parse`` does.)"""

from __future__ import annotations

import re

from puzzles.records import InvalidProgram
from puzzles.source import parse_source
from puzzles.text import DEF_LINE, indent_width, split_lines

FENCED_BLOCK = re.compile(r"^[ \t]*```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
FUNCTION_NAME = re.compile(r"def[ \t]+(\w+)[ \t]*\(")


def complete_function(prefix: str, completion: str) -> str:
    """``prefix + completion`` cut at the end of the first function; no validation.

    The prompt ended with ``prefix`` (e.g. ``"def f7("``) and the model continued with ``completion``.
    The function ends at the first line after the def line that starts a statement at the def line's
    indentation or less (lines inside an open bracket or string, comment lines and blank lines do not
    end it), or at a markdown fence; trailing blank and comment lines are dropped.
    """
    lines = split_lines(prefix + completion)
    start = next((i for i, line in enumerate(lines) if DEF_LINE.match(line)), 0)
    end = _block_end(lines, start)
    indent = indent_width(lines[start]) if lines else 0
    kept = lines[:start] + _strip_trailing(lines[start:end], indent)
    return "\n".join(kept)


def _block_end(lines: list[str], start: int) -> int:
    """Index just past the block that begins with the def line ``lines[start]``."""
    if start >= len(lines):
        return len(lines)
    indent = indent_width(lines[start])
    scanner = _LineScanner()
    scanner.feed(lines[start])
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if scanner.at_statement_start():
            stripped = line.strip()
            if stripped.startswith("```"):
                return index
            if stripped and not stripped.startswith("#") and indent_width(line) <= indent:
                return index
        scanner.feed(line)
    return len(lines)


class _LineScanner:
    """Tracks brackets, strings and backslash continuations across lines, roughly as Python does."""

    def __init__(self) -> None:
        self.depth = 0
        self.quote: str | None = None
        self.continued = False

    def at_statement_start(self) -> bool:
        return self.depth == 0 and self.quote is None and not self.continued

    def feed(self, line: str) -> None:
        position, length = 0, len(line)
        self.continued = False
        string_continues = False
        while position < length:
            char = line[position]
            if self.quote is not None:
                if char == "\\":
                    string_continues = position == length - 1
                    position += 2  # skip the escaped character
                    continue
                if line.startswith(self.quote, position):
                    position += len(self.quote)
                    self.quote = None
                    continue
                position += 1
                continue
            if char == "#":
                break
            if char in "([{":
                self.depth += 1
            elif char in ")]}":
                self.depth = max(0, self.depth - 1)
            elif char in "'\"":
                self.quote = char * 3 if line.startswith(char * 3, position) else char
                position += len(self.quote)
                continue
            elif char == "\\" and position == length - 1:
                self.continued = True
            position += 1
        if self.quote is not None and len(self.quote) == 1 and not string_continues:
            self.quote = None  # an unterminated one-line string ends with its line


def _strip_trailing(lines: list[str], indent: int) -> list[str]:
    kept = list(lines)
    while kept and (
        not kept[-1].strip() or (kept[-1].strip().startswith("#") and indent_width(kept[-1]) <= indent)
    ):
        kept.pop()
    return kept


def function_from_reply(prefix: str, reply: str) -> str | None:
    """The function a chat reply writes for a prompt that ended with ``prefix`` (``"def f7("``, or a
    solution's whole signature); None when the reply holds no code.

    The code is read from the reply's fenced blocks (python or unlabelled), in order, else from the
    whole reply as plain text. In each, the function is the one named as in ``prefix`` (its own def
    line kept), else the text continues ``prefix`` as a completion would. The first candidate whose
    function is valid Python is the answer: prose never parses as a function, so it is never code.
    """
    name = FUNCTION_NAME.search(prefix)
    if name is None:
        raise ValueError(f"the prompt's prefix {prefix!r} does not start a function")
    head = f"def {name.group(1)}("
    for code in [m.group(1) for m in FENCED_BLOCK.finditer(reply)] or [reply]:
        lines = split_lines(code)
        start = next((i for i, line in enumerate(lines) if DEF_LINE.match(line) and head in line), None)
        if start is None:
            source = complete_function(prefix, code)
        else:
            own = lines[start].lstrip()
            cut = own.index("(") + 1
            source = complete_function(own[:cut], "\n".join([own[cut:], *lines[start + 1 :]]))
        try:
            parse_source(source, "reply")
        except InvalidProgram:
            continue
        return source
    return None
