"""Chat prompting on a local model: the embedded chat template, ``--chat-template``, and reading the
replies (``function_sources``)."""

from __future__ import annotations

import shutil

import pytest

from factory.config import RunConfig
from factory.errors import ModelError, SettingError, UserError
from factory.models import Completion, SamplingConfig, load_backend
from factory.models.base import function_sources
from factory.models.chat import chat_messages
from factory.models.embedded import CHAT_TEMPLATE_FILE, add_chat_template

PROMPT = "from typing import List\n\ndef f1(x: int):\n    return x > 3\n\ndef f2("


def test_a_chat_message_carries_the_program_and_its_target():
    system, user = chat_messages(PROMPT)
    assert system["role"] == "system" and "P3" in system["content"] and "```python" in system["content"]
    assert user["role"] == "user" and user["content"].endswith(f"```python\n{PROMPT}\n```")
    assert "`def f2(`" in user["content"]


def test_the_embedded_template_gives_the_completion_as_the_reply(synthetic_tiny_model, one_torch_thread):
    sampling = SamplingConfig(n=1, max_new_tokens=12, temperature=0)
    chat = load_backend("transformers", str(synthetic_tiny_model), api="chat")
    plain = load_backend("transformers", str(synthetic_tiny_model))
    [[reply]], [[completion]] = chat.generate([PROMPT], sampling), plain.generate([PROMPT], sampling)
    assert reply.reply and not completion.reply
    assert reply.text == completion.text


def test_a_model_without_a_template_needs_one(synthetic_tiny_model, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(synthetic_tiny_model, bare, ignore=shutil.ignore_patterns(CHAT_TEMPLATE_FILE))
    with pytest.raises(ModelError, match="has no chat template: give chat_template"):
        load_backend("transformers", str(bare), api="chat")
    with pytest.raises(UserError, match="does not exist"):
        load_backend("transformers", str(bare), chat_template=str(tmp_path / "missing.jinja"))
    template = tmp_path / "t.jinja"
    template.write_text("{{ messages[-1].content }}")
    backend = load_backend("transformers", str(bare), chat_template=str(template))
    assert backend.render(PROMPT) == chat_messages(PROMPT)[-1]["content"]
    add_chat_template(bare)  # what loading a cached embedded model does
    assert (bare / CHAT_TEMPLATE_FILE).exists()
    assert load_backend("transformers", str(bare), api="chat").render(PROMPT) == PROMPT


def test_replies_without_code_are_refused_in_one_line():
    prose = [[Completion("I would write a loop here.", 5, True, reply=True)],
             [Completion("Sure! The answer is a list of numbers.", 3, True, reply=True)]]
    with pytest.raises(ModelError, match=r"none of m's 2 chat replies held code, only prose \(the first began 'I would") as e:
        function_sources("m", ["def f2(", "def f2("], prose)
    assert "\n" not in str(e.value)
    mixed = [prose[0], [Completion("```python\ndef f2(x: int):\n    return x > 1\n```", 9, True, reply=True)]]
    assert function_sources("m", ["def f2(", "def f2("], mixed) == [["def f2("], ["def f2(x: int):\n    return x > 1"]]
    junk = [[Completion("((((", 4, True)]]  # a completion is never refused: it is only a bad sample
    assert function_sources("m", ["def f2("], junk) == [["def f2((((("]]
    broken = [[Completion("x: int(n, b=6) -> bool: return len(ys) == n and all", 9, True, reply=True)]]
    assert function_sources("m", ["def f2("], broken) == [["def f2("]]  # a weak model's broken code: a bad sample


def test_chat_template_is_for_local_models_prompted_through_chat():
    with pytest.raises(SettingError, match="chat_template is for a local model"):
        RunConfig(model="m", backend="openai", train=False, chat_template="t.jinja")
    with pytest.raises(SettingError, match="chat_template is for a local model"):
        RunConfig(api="completions", chat_template="t.jinja")
    with pytest.raises(SettingError, match="api must be one of"):
        RunConfig(api="messages")
