"""``function_from_reply``: the function a chat model's reply writes, from a fence or plain text, and
never prose."""

from __future__ import annotations

import pytest

from puzzles.completion import function_from_reply

from .test_parse import HOSTILE


@pytest.mark.parametrize(
    ("prefix", "reply", "function"),
    [
        # a fenced block among prose, the function named as the prompt's
        ("def g2(a=1):", "Sure! Here it is:\n```python\ndef g2(a=1):\n    return [a]\n```\nIt returns a list.",
         "def g2(a=1):\n    return [a]"),
        # an unlabelled fence; a helper before it; the reply's own signature kept
        ("def g2():", "```\ndef helper():\n    pass\n\ndef g2() -> int:\n    return 5\n```", "def g2() -> int:\n    return 5"),
        # the second fence holds the function, the first does not parse
        ("def f4(", "```python\nthis is not code\n```\n```py\ndef f4(x: int):\n    return x > 2\n```",
         "def f4(x: int):\n    return x > 2"),
        # plain text that continues the prompt, as a completion would (the embedded model's replies)
        ("def f4(", "x: int):\n    return x > 3\n\nassert f4(5)\n\ndef f5(", "def f4(x: int):\n    return x > 3"),
        ("def g2(a=1):", "\n    return [a]\n", "def g2(a=1):\n    return [a]"),
        # plain text with the whole function, indented
        ("def g1():", "    def g1():\n        return 'ok'", "def g1():\n        return 'ok'"),
    ],
)
def test_the_function_is_found_in_a_reply(prefix, reply, function):
    assert function_from_reply(prefix, reply) == function


@pytest.mark.parametrize(
    "reply",
    [
        "I think the answer is a list of three numbers.",
        "Here is the solution:\n\nThe function should return 5.",
        "```python\nthe function returns x\n```",
        "def g9():\n    return 1",  # another function than the one asked for
        "",
    ],
)
def test_prose_is_never_code(reply):
    assert function_from_reply("def g2():", reply) is None


@pytest.mark.parametrize("name", sorted(name for name, text in HOSTILE.items() if isinstance(text, str)))
def test_hostile_replies_give_a_function_or_none(name):
    found = function_from_reply("def f7(", HOSTILE[name])
    assert found is None or found.startswith("def f7(")


def test_a_prefix_that_starts_no_function_is_a_programming_error():
    with pytest.raises(ValueError, match="does not start a function"):
        function_from_reply("x = ", "1")
