"""Line helpers shared by parsing and by cutting model output: splitting, indentation, def lines."""

from __future__ import annotations

import re

DEF_LINE = re.compile(r"[ \t]*(?:async[ \t]+)?def[ \t]+[^\W\d]\w*[ \t]*\(")  # a line that starts a function definition


def split_lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def leading_whitespace(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def indent_width(line: str) -> int:
    return len(leading_whitespace(line).expandtabs(8))
