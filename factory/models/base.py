"""The model backend interface: two records and one protocol, like vLLM's ``LLM.generate(prompts, SamplingParams)``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from factory.errors import ModelError
from factory.store.records import TokenUsage
from puzzles.completion import complete_function, function_from_reply


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample: ``n`` completions per prompt; ``temperature == 0`` means greedy decoding.

    ``stop``: strings that end a completion; the text is cut before the first one found.
    ``seed``: makes sampling reproducible where the backend allows it.
    """

    n: int = 1
    max_new_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"SamplingConfig.n must be >= 1, got {self.n}")
        if self.max_new_tokens < 1:
            raise ValueError(f"SamplingConfig.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"SamplingConfig.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingConfig.top_p must be in (0, 1], got {self.top_p}")
        if isinstance(self.stop, str):  # a bare string would be read as a tuple of characters
            raise TypeError("SamplingConfig.stop must be a tuple of strings, not a string")
        object.__setattr__(self, "stop", tuple(self.stop))
        if any(not s for s in self.stop):
            raise ValueError("SamplingConfig.stop must not contain empty strings")


@dataclass(frozen=True)
class Completion:
    """One sampled continuation of a prompt (the prompt itself excluded), cut before the first stop string.

    ``tokens``: tokens the model generated for it. ``finished``: False when cut by ``max_new_tokens``.
    ``reply``: True for a chat model's reply, which holds the code rather than continuing the prompt
    (``function_sources`` reads both kinds). ``prompt_tokens``: the tokens of the prompt as sent, on the
    first completion of each request (a sum counts every request's prompt once). ``counted_by``: where
    the token counts come from: "local" (the backend's tokenizer), "server" (the reply's ``usage``) or
    "estimate" (characters / 4, when a server reports no usage).
    """

    text: str
    tokens: int
    finished: bool
    reply: bool = False
    prompt_tokens: int = 0
    counted_by: str = "local"


@runtime_checkable
class ModelBackend(Protocol):
    """Anything that turns prompts into completions. ``generate`` returns ``n`` completions per prompt,
    in prompt order."""

    name: str

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[list[Completion]]: ...

    def close(self) -> None: ...


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest occurrence of any stop string; also say whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


SENTENCE = re.compile(r"\b[A-Za-z]+(?:,? [A-Za-z']+){4,}")  # five words in a row: prose, not code


def function_sources(model: str, prefixes: Sequence[str], outputs: Sequence[Sequence[Completion]]) -> list[list[str]]:
    """The function each completion writes for its prompt, which ended with its prefix: the prefix
    continued (``complete_function``), or the function found in a chat reply (``function_from_reply``;
    a reply with no code gives the bare prefix, which no parser accepts, like an invalid completion).
    Raises ``ModelError`` when every one of ``model``'s replies is prose without code: it does not
    follow the chat prompt (a weak model's broken code is only a bad sample)."""
    sources, replies, coded, prose = [], 0, 0, 0
    for prefix, completions in zip(prefixes, outputs, strict=True):
        row = []
        for c in completions:
            found = function_from_reply(prefix, c.text) if c.reply else complete_function(prefix, c.text)
            replies += c.reply
            coded += c.reply and found is not None
            prose += c.reply and found is None and SENTENCE.search(c.text) is not None
            row.append(found if found is not None else prefix)
        sources.append(row)
    if replies and prose == replies:
        first = next(c.text for cs in outputs for c in cs if c.reply)
        raise ModelError(
            f"none of {model}'s {replies} chat replies held code, only prose (the first began {' '.join(first.split())[:80]!r}); "
            "use a model that follows instructions, or api = completions"
        )
    return sources


def token_usage(outputs: Sequence[Sequence[Completion]]) -> TokenUsage:
    """The tokens of one generate call's completions, and who counted them."""
    completions = [c for row in outputs for c in row]
    return TokenUsage(
        prompt_tokens=sum(c.prompt_tokens for c in completions),
        completion_tokens=sum(c.tokens for c in completions),
        counted_by="+".join(sorted({c.counted_by for c in completions})) or "local",
    )
