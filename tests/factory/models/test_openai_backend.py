"""The OpenAI-compatible backend against a scripted HTTP server on 127.0.0.1, for what a real server
cannot be made to do (``test_openai_real_server`` runs it against `transformers serve`): refuse the
completions API, fail on cue, answer a malformed body, show the requests it got and how many at once."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from factory.models import Completion, ModelError, SamplingConfig, load_backend
from factory.models.openai_backend import OpenAIBackend
from tests.factory.json_server import JsonServer


class FakeCompletionsServer(JsonServer):
    """``/v1/completions`` that answers deterministically: choice ``i`` of prompt ``p`` is
    ``"<p[-6:]>|i\\ndef next():\\n"``. ``fail_first`` requests get ``fail_status``; ``delay_s`` slows each
    answer (to see concurrency); every request body and Authorization header is recorded."""

    def __init__(self):
        self.chat_only = False
        self.malformed = False
        self.fail_first = 0
        self.fail_status = 503
        self.delay_s = 0.0
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        super().__init__(self.answer)

    def answer(self, path: str, headers, body: dict) -> tuple[int, dict]:
        with self.lock:
            self.requests.append(body)
            self.auth.append(headers.get("Authorization"))
            failing = self.fail_first > 0
            self.fail_first -= failing
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay_s)
            if path == "/v1/chat/completions":
                if body["model"] != "tiny":
                    return 400, {"error": {"message": f"cannot load {body['model']}"}}
                choices = [{"index": i, "message": {"role": "assistant", "content": f"```python\ndef f2(x{i}: int):\n"
                            f"    return x{i} > 1\n```"}, "finish_reason": "stop"} for i in range(body["n"])]
                return 200, {"choices": choices, "usage": {"prompt_tokens": 7, "completion_tokens": 5 * body["n"]}}
            if path != "/v1/completions" or self.chat_only:
                return 404, {"error": {"message": f"no completions at {path}"}}
            if self.malformed:
                return 200, {"choices": [{"index": 0}]}
            if failing:
                return self.fail_status, {"error": {"message": "overloaded, try later"}}
            if body["model"] != "tiny":
                return 404, {"error": {"message": f"The model `{body['model']}` does not exist."}}
            tail = body["prompt"][-6:]
            choices = [
                {"index": i, "text": f"<{tail}>|{i}\ndef next():\n", "finish_reason": "length" if i == 2 else "stop"}
                for i in reversed(range(body["n"]))  # out of order on purpose: index decides
            ]
            return 200, {"choices": choices, "usage": {"completion_tokens": 10 * body["n"]}}
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture
def server():
    server = FakeCompletionsServer()
    yield server
    server.close()


def make_backend(server, **options):
    defaults = {
        "base_url": server.base_url,
        "timeout_s": 5.0,
        "max_retries": 3,
        "backoff_s": 0.01,
        "api_key": "",
    }
    return OpenAIBackend("tiny", **{**defaults, **options})


def test_results_in_prompt_order_with_n_per_prompt(server):
    server.delay_s = 0.2  # long enough for requests to overlap on a loaded machine
    prompts = [f"def f{i}(" + "x" * (i % 3) for i in range(12)]
    out = make_backend(server, max_concurrency=4).generate(prompts, SamplingConfig(n=3, max_new_tokens=32))
    assert len(out) == 12
    for prompt, row in zip(prompts, out, strict=True):
        assert [c.text for c in row] == [f"<{prompt[-6:]}>|{i}\ndef next():\n" for i in range(3)]
        assert [c.finished for c in row] == [True, True, False]  # finish_reason "length" -> not finished
        assert sum(c.tokens for c in row) == 30
    assert 1 < server.max_in_flight <= 4


def test_request_body(server):
    stop = ("\ndef ", "\nassert", "\nclass ", "\nif __name__", "\nprint(", "\n#")
    make_backend(server).generate(
        ["p"], SamplingConfig(n=2, max_new_tokens=50, temperature=0.5, top_p=0.9, stop=stop, seed=11)
    )
    assert server.requests == [
        {
            "model": "tiny",
            "prompt": "p",
            "n": 2,
            "max_tokens": 50,
            "temperature": 0.5,
            "top_p": 0.9,
            "seed": 11,
            "stop": list(stop[:4]),  # the API takes at most 4
        }
    ]


def test_stop_strings_are_also_cut_locally(server):
    # "\n#"-style stops beyond the 4 sent are applied here; "\ndef " is in the server's text
    sampling = SamplingConfig(n=1, stop=("\nA", "\nB", "\nC", "\nD", "\ndef "))
    [[completion]] = make_backend(server).generate(["def f1("], sampling)
    assert completion == Completion(text="<ef f1(>|0", tokens=10, finished=True, prompt_tokens=1, counted_by="estimate")


def test_auto_turns_to_chat_where_completions_are_refused(server):
    server.chat_only = True
    messages: list[str] = []
    backend = make_backend(server, api="auto", log=messages.append)
    out = backend.generate(["def f1(x: int):\n    return x\n\ndef f2("] * 2, SamplingConfig(n=2, stop=("\ndef ",)))
    assert backend.api == "chat" and "HTTP 404: no completions" in messages[0] and "api = chat" in messages[0]
    assert [c.text for c in out[0]] == ["```python\ndef f2(x0: int):\n    return x0 > 1\n```",
                                        "```python\ndef f2(x1: int):\n    return x1 > 1\n```"]
    assert all(c.reply and c.counted_by == "server" for row in out for c in row)
    assert [c.prompt_tokens for c in out[0]] == [7, 0]  # one request, its prompt counted once
    chat_request = server.requests[-1]
    assert "stop" not in chat_request and chat_request["messages"][1]["content"].endswith("def f2(\n```")


def test_auto_with_a_model_the_server_does_not_serve_names_both_refusals(server):
    backend = OpenAIBackend("no-such-model", base_url=server.base_url, timeout_s=5.0, max_retries=0, api_key="",
                            api="auto", log=lambda m: None)
    with pytest.raises(ModelError, match="on both APIs: /completions answered HTTP 404: The model `no-such-model` "
                       "does not exist.; /chat/completions answered HTTP 400: cannot load no-such-model"):
        backend.generate(["def f1("], SamplingConfig(n=1))


def test_a_malformed_body_is_a_model_error(server):
    server.malformed = True
    with pytest.raises(ModelError, match="unexpected response"):
        make_backend(server).generate(["a"], SamplingConfig())


def test_retries_after_503_then_succeeds(server):
    server.fail_first = 2
    out = make_backend(server, max_retries=3).generate(["a"], SamplingConfig(n=1))
    assert out[0][0].text.startswith("<a>|0")
    assert len(server.requests) == 3


def test_retries_on_429(server):
    server.fail_first, server.fail_status = 1, 429
    assert make_backend(server).generate(["a"], SamplingConfig())[0][0].text.startswith("<a>")
    assert len(server.requests) == 2


def test_gives_up_after_retries_with_model_error(server):
    server.fail_first = 100
    with pytest.raises(ModelError, match=r"after 3 tries \(HTTP 503: overloaded, try later\)"):
        make_backend(server, max_retries=2).generate(["a"], SamplingConfig())
    assert len(server.requests) == 3


def test_client_error_is_not_retried(server):
    with pytest.raises(ModelError, match=r"HTTP 404: The model `nope` does not exist"):
        OpenAIBackend("nope", base_url=server.base_url, backoff_s=0.01, api_key="").generate(
            ["a"], SamplingConfig()
        )
    assert len(server.requests) == 1


def test_api_key_option_and_environment(server, monkeypatch):
    make_backend(server, api_key="sk-option").generate(["a"], SamplingConfig())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    OpenAIBackend("tiny", base_url=server.base_url).generate(["a"], SamplingConfig())
    monkeypatch.delenv("OPENAI_API_KEY")
    OpenAIBackend("tiny", base_url=server.base_url).generate(["a"], SamplingConfig())
    assert server.auth == ["Bearer sk-option", "Bearer sk-env", None]


def test_base_url_from_environment(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/")
    backend = load_backend("openai", "tiny", api_key="")
    assert backend.base_url == server.base_url
    assert backend.generate(["a"], SamplingConfig())[0][0].text.startswith("<a>")


def test_unreachable_server_is_a_model_error_quickly():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = OpenAIBackend(
        "tiny", base_url=f"http://127.0.0.1:{port}/v1", timeout_s=1.0, max_retries=2, backoff_s=0.01
    )
    start = time.monotonic()
    with pytest.raises(ModelError, match=r"cannot get a completion from .* after 3 tries .*start the server"):
        backend.generate(["a", "b"], SamplingConfig())
    assert time.monotonic() - start < 3.0


def test_slow_server_times_out_into_model_error(server):
    server.delay_s = 1.0
    with pytest.raises(ModelError, match="after 1 tries"):
        make_backend(server, timeout_s=0.2, max_retries=0).generate(["a"], SamplingConfig())


def test_empty_prompt_list_sends_nothing(server):
    assert make_backend(server).generate([], SamplingConfig()) == []
    assert server.requests == []
