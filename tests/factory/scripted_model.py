"""A scripted model behind a real OpenAI-compatible HTTP server: its proposals are valid, invalid or
trivial puzzles of three families, and its solutions right, wrong or raising, so a real round on it
stores every kind of row the store has (the tiny trained model writes almost no parsable puzzle)."""

from __future__ import annotations

import ast
import hashlib
import re
import time

from tests.factory.json_server import JsonServer


def _families(n: int, a: int, b: int) -> list[tuple[str, list[str]]]:
    """(puzzle continuation after ``def fK(``, solution bodies: two right, one wrong, one raising)."""
    c = 1 + a % 4
    length = 5 + n % 8
    lo, hi = 200 + a % 800, 200 + b % 800
    size, total = 3 + n % 4, 50 + b % 50
    return [
        (f"s: str, n={length}, c={c}):\n    return len(s) == n and s.count('z') == c\n",
         ["'z' * c + 'a' * (n - c)", "'a' * (n - c) + 'z' * c", "'z' * n", "'z' * c + 1"]),
        (f"x: int, a={lo}, b={hi}):\n    return x - a == b\n",
         ["a + b", "b + a + 0", "a - b", "a // 0"]),
        (f"li: List[int], n={size}, t={total}):\n    return len(li) == n and sum(li) == t\n",
         ["[t - n + 1] + [1] * (n - 1)", "[1] * (n - 1) + [t - n + 1]", "[t] * n", "[t] * None"]),
    ]


def _digest(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\x00".join(map(str, parts)).encode()).digest()[:8], "big")


def scripted_completion(prompt: str, seed: int, index: int) -> str:
    """What the scripted model writes after ``prompt``, which ends in ``def fK(`` (propose) or in
    ``def gK(`` or ``def gK(a=..., b=...):`` (solve)."""
    h = _digest(prompt, seed, index)
    if re.search(r"def f\d+\($", prompt):
        choice = h % 10
        if choice == 0:
            return "x: int:\n    return x\n"  # invalid
        if choice == 1:
            return "b: bool):\n    return b\n"  # trivial
        puzzle, _ = _families(h >> 8 & 0xFF, h >> 16 & 0x3FF, h >> 26 & 0x3FF)[choice % 3]
        return puzzle + "\ndef next_one("
    target = prompt[: prompt.rfind("\n\ndef g")]
    try:
        function = ast.parse(target[target.rfind("\ndef f") :]).body[-1]
        names = [arg.arg for arg in function.args.args]
        defaults = {arg.arg: ast.literal_eval(d) for arg, d in zip(function.args.args[1:], function.args.defaults, strict=True)}
    except (SyntaxError, ValueError, IndexError, AttributeError):
        return "):\n    return None\n"
    shapes = {("s", "n", "c"): 0, ("x", "a", "b"): 1, ("li", "n", "t"): 2}
    family = shapes.get(tuple(names))
    if family is None:
        return "):\n    return None\n"
    body = f"\n    return {_families(0, 0, 0)[family][1][h % 4]}\n"
    if prompt.endswith(":"):  # the prompt ends with the solution's whole signature
        return body
    return ", ".join(f"{k}={v!r}" for k, v in defaults.items()) + "):" + body


class ScriptedModelServer(JsonServer):
    """``POST /v1/completions`` on 127.0.0.1, answering with ``completion(prompt, seed, index)``
    (``scripted_completion`` unless given) after ``delay_s``."""

    def __init__(self, delay_s: float = 0.0, completion=scripted_completion):
        self.delay_s = delay_s
        self.completion = completion
        self.requests = 0  # requests received so far (counted before the delay)
        super().__init__(self.answer)

    def answer(self, path: str, headers, body: dict) -> tuple[int, dict]:
        self.requests += 1
        time.sleep(self.delay_s)
        texts = [self.completion(body["prompt"], body.get("seed", 0), i) for i in range(body["n"])]
        choices = [{"index": i, "text": t, "finish_reason": "stop"} for i, t in enumerate(texts)]
        return 200, {"choices": choices, "usage": {"completion_tokens": sum(len(t) // 4 for t in texts)}}
