"""The OpenAI backend against `transformers serve` serving the embedded-format tiny model: both APIs,
concurrent requests, a server that ignores ``n`` and samples greedily, and its errors."""

from __future__ import annotations

import pytest

from factory.models import ModelError, SamplingConfig
from factory.models.openai_backend import OpenAIBackend

pytestmark = pytest.mark.slow

PROMPTS = [f"from typing import List\n\ndef f1(x: int):\n    return x > {i}\n\ndef f2(" for i in range(5)]


def backend(server, api: str, messages: list[str], model: str | None = None) -> OpenAIBackend:
    return OpenAIBackend(
        model or server.model, base_url=server.base_url, api=api, max_concurrency=4, max_retries=1,
        backoff_s=0.05, log=messages.append,
    )


def test_completions_are_topped_up_when_the_server_ignores_n(real_server):
    messages: list[str] = []
    out = backend(real_server, "completions", messages).generate(PROMPTS, SamplingConfig(n=3, max_new_tokens=12))
    assert [len(row) for row in out] == [3] * len(PROMPTS)
    assert any("ignores n" in m for m in messages)
    assert any("identical" in m for m in messages)  # the tiny model's generation config is greedy
    alone = [backend(real_server, "completions", []).generate([p], SamplingConfig(n=1, max_new_tokens=12))[0][0]
             for p in PROMPTS]
    for row, single in zip(out, alone, strict=True):  # each prompt got its own answers, in order
        assert {c.text for c in row} == {single.text}
        assert all(c.counted_by == "server" and c.prompt_tokens > 0 and c.tokens > 0 for c in row)
        assert not any(c.reply for c in row)


def test_a_chat_reply_carries_the_same_program(real_server):
    """The embedded chat template renders the program of the chat message, so the greedy reply is
    the greedy completion of the few-shot prompt."""
    sampling = SamplingConfig(n=1, max_new_tokens=12, temperature=0)
    chat = backend(real_server, "chat", []).generate(PROMPTS[:2], sampling)
    plain = backend(real_server, "completions", []).generate(PROMPTS[:2], sampling)
    for [reply], [completion] in zip(chat, plain, strict=True):
        assert reply.reply and reply.counted_by == "server"
        assert reply.text == completion.text


def test_auto_chooses_completions_where_the_server_offers_it(real_server):
    messages: list[str] = []
    chosen = backend(real_server, "auto", messages)
    chosen.generate(PROMPTS[:1], SamplingConfig(n=1, max_new_tokens=4))
    assert chosen.api == "completions" and "using /completions" in messages[0]


def test_an_unknown_model_name_is_a_one_line_model_error(real_server):
    with pytest.raises(ModelError) as refused:
        backend(real_server, "auto", [], model="no-such-model").generate(PROMPTS[:1], SamplingConfig())
    message = str(refused.value)
    assert "HTTP 400" in message and "no-such-model" in message and "\n" not in message
    assert refused.value.exit_code == 5
