"""The README and docs/ say what the code does: every `factory <command>` they show exists and takes the
flags shown with it (checked against the parser `factory` itself builds), and every relative link in
them and in benchmarks/RESULTS.md reaches a file and, with an anchor, one of its headings."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from factory.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
COMMAND_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK_PAGES = [*COMMAND_PAGES, ROOT / "benchmarks" / "RESULTS.md"]

FENCE = re.compile(r"^\s*```")
CODE_SPAN = re.compile(r"`([^`]+)`")
COMMAND = re.compile(r"(?:^|[\s/(])factory\s+([a-z][a-z0-9-]*)(.*)")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def code_lines(text: str) -> list[str]:
    """The page's code: each line of a fenced block (a line ending in a backslash joined to the next)
    and each inline code span."""
    lines, fenced, pending = [], False, ""
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            lines.append(pending + line)
            pending = ""
        else:
            lines.extend(CODE_SPAN.findall(line))
    return lines


def shown_commands(text: str) -> list[tuple[str, list[str], str]]:
    """(command, flags shown with it, the line) for each `factory <command>` in the page's code."""
    shown = []
    for line in code_lines(text):
        match = COMMAND.search(line)
        if match is None:
            continue
        rest = match.group(2).split(" #", 1)[0]  # a shell comment is not part of the command
        shown.append((match.group(1), FLAG.findall(rest), line))
    return shown


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(
        (a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {}
    )


def unknown_flags(command: str, flags: list[str], line: str) -> list[str]:
    parsers = subcommands(build_parser())
    assert command in parsers, f"`factory {command}` does not exist (shown as: {line})"
    parser = parsers[command]
    nested = subcommands(parser)
    words = line.split()
    after = words[words.index(command) + 1] if command in words[:-1] else ""
    if after in nested:  # factory sandbox build
        parser = nested[after]
    return [flag for flag in flags if flag not in parser._option_string_actions]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    fenced = False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        if fenced or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


@pytest.mark.parametrize("page", COMMAND_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_shown_exists_with_its_flags(page: Path) -> None:
    shown = shown_commands(page.read_text())
    wrong = {line: bad for command, flags, line in shown if (bad := unknown_flags(command, flags, line))}
    assert not wrong, f"flags that the command does not take, in {page.name}: {wrong}"


def test_the_readme_shows_every_command() -> None:
    shown = {command for command, _, _ in shown_commands((ROOT / "README.md").read_text())}
    assert shown >= set(subcommands(build_parser())), "the README's command table misses a command"


@pytest.mark.parametrize("page", LINK_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # a URL
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(target)
    assert not broken, f"links in {page.relative_to(ROOT)} that lead nowhere: {broken}"


def test_a_misspelled_flag_is_caught() -> None:
    shown = shown_commands("```bash\nfactory run --rounds 3 \\\n  --run-dir runs/a --puzles 64  # a typo\n```")
    assert shown and unknown_flags(*shown[0]) == ["--puzles"]
    assert unknown_flags("sandbox", ["--base"], "factory sandbox build --base x") == []
    assert unknown_flags("sandbox", ["--base"], "factory sandbox status --base x") == ["--base"]
