"""Prompting a chat model: the few-shot program becomes instructions and a chat message
(``chat_messages``); a local model renders them with its chat template (``ChatTemplateBackend``), an
OpenAI-compatible server with its own. Either way the completions are replies, read by
``factory.models.base.function_sources``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from factory.errors import ModelError, UserError
from factory.models.base import Completion, ModelBackend, SamplingConfig

SYSTEM_PROMPT = (
    "You write Python programming puzzles in the P3 format. A puzzle is a function f(answer, ...) that "
    "returns True exactly when its first argument is a correct answer; every other argument has a "
    "default value. A solution is a function g(...) taking those same defaulted arguments and returning "
    "an answer, so that `assert f(g())` holds. Reply with one ```python code block holding the function "
    "you are asked for, and nothing else."
)


def chat_messages(prompt: str) -> list[dict[str, str]]:
    """The chat form of a few-shot ``prompt`` that ends with the first line of the function to write:
    the same program and target, with the task said in words."""
    last_line = prompt.rstrip("\n").rsplit("\n", 1)[-1]
    task = (
        f"The program below ends with the first line of a function, `{last_line.strip()}`. Write that whole "
        "function, following the pattern of the examples before it."
    )
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"{task}\n\n```python\n{prompt}\n```"},
    ]


def chat_tokenizer(model: str, template_file: str | None = None):
    """``model``'s tokenizer with a chat template: ``template_file``'s (Jinja) when given, else its own."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    if template_file is not None:
        path = Path(template_file)
        if not path.is_file():
            raise UserError(f"chat template {path} does not exist: give a Jinja template file")
        tokenizer.chat_template = path.read_text()
    if not tokenizer.chat_template:
        raise ModelError(
            f"{model} has no chat template: give chat_template = FILE (a Jinja template), or api = completions"
        )
    return tokenizer


class ChatTemplateBackend:
    """A local backend prompted through a chat template: each prompt's ``chat_messages`` rendered by
    ``tokenizer``, sampled without the few-shot stop strings (a reply may begin with a fence or prose:
    the function is cut out of it afterwards)."""

    def __init__(self, inner: ModelBackend, tokenizer):
        self.inner = inner
        self.name = inner.name
        self.tokenizer = tokenizer

    def render(self, prompt: str) -> str:
        return self.tokenizer.apply_chat_template(chat_messages(prompt), tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[list[Completion]]:
        outputs = self.inner.generate([self.render(p) for p in prompts], replace(sampling, stop=()))
        return [[replace(c, reply=True) for c in completions] for completions in outputs]

    def close(self) -> None:
        self.inner.close()
