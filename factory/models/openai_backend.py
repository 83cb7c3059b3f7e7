"""Generation through any OpenAI-compatible server (``vllm serve``, ``transformers serve``, TGI, a hosted
API), over ``/v1/completions`` or ``/v1/chat/completions``.

Standard library only: one POST per prompt (``n`` samples each), ``max_concurrency`` requests in flight,
retries with exponential backoff on 429, 5xx, timeouts and connection errors.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from factory.errors import ModelError
from factory.models.base import Completion, SamplingConfig, cut_at_stop
from factory.models.chat import chat_messages

MAX_API_STOP = 4  # OpenAI accepts at most 4 stop strings; the rest are applied locally
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIBackend:
    """``model``: the model name the server serves. ``base_url``: up to and including ``/v1``
    (default ``$OPENAI_BASE_URL`` or ``http://127.0.0.1:8000/v1``). ``api_key``: default ``$OPENAI_API_KEY``
    (none sent when unset). ``api``: "completions" (``/v1/completions``: the prompt is continued),
    "chat" (``/v1/chat/completions``: the prompt's ``chat_messages``, the replies hold the code) or
    "auto" (the first request goes to ``/v1/completions``; if the server refuses it for the model,
    chat from then on; ``log`` says which). A request is tried ``1 + max_retries`` times, waiting
    ``backoff_s * 2**attempt`` (at most ``max_backoff_s``, or the server's Retry-After) between tries,
    each limited to ``timeout_s``.

    The server's answers are checked, not trusted: one that returns fewer choices than ``n`` (some
    ignore it) gets more requests, one sample each from then on; samples that never differ at a
    temperature above 0 are reported once through ``log``. Token counts come from the reply's ``usage``
    (``Completion.counted_by`` "server"), else a chars/4 estimate ("estimate")."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api: str = "completions",
        max_concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        log: Callable[[str], None] | None = None,
    ):
        if api not in ("auto", "chat", "completions"):
            raise ValueError(f"api must be auto, chat or completions, not {api!r}")
        self.name = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1").rstrip(
            "/"
        )
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.api = api
        self.max_concurrency = max(1, max_concurrency)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.log = log or _stderr
        self.ignores_n = False
        self.warned_identical = False

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[list[Completion]]:
        if isinstance(prompts, str):
            raise TypeError("generate takes a sequence of prompts, not a single string")
        if not prompts:
            return []
        got: list[list[Completion]] = [[] for _ in prompts]
        if self.api == "auto":
            got[0] = self._choose_api(prompts[0], sampling)
        pool = ThreadPoolExecutor(max_workers=self.max_concurrency)
        try:
            while missing := [(i, len(g)) for i, g in enumerate(got) if len(g) < sampling.n]:
                jobs: list[tuple[int, int, int]] = []  # (prompt, its first sample, samples)
                for i, have in missing:
                    if self.ignores_n:
                        jobs += [(i, sample, 1) for sample in range(have, sampling.n)]
                    else:
                        jobs.append((i, have, sampling.n - have))
                answers = pool.map(lambda job: self._request(prompts[job[0]], sampling, job[1], job[2]), jobs)
                for (i, _, count), completions in zip(jobs, answers, strict=True):
                    self._check_count(len(completions), count)
                    got[i] += completions
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        self._check_samples_differ(got, sampling)
        return got

    def close(self) -> None:
        pass

    def _choose_api(self, prompt: str, sampling: SamplingConfig) -> list[Completion]:
        """``api = "auto"``: the first prompt's request, to /completions, else to /chat/completions."""
        try:
            self.api = "completions"
            completions = self._request(prompt, sampling, 0, sampling.n)
        except RefusedRequest as refused:
            self.api = "chat"
            self.log(
                f"{self.name} at {self.base_url}: /completions refused it ({refused.detail}); "
                "using /chat/completions (api = chat)"
            )
            try:
                completions = self._request(prompt, sampling, 0, sampling.n)
            except RefusedRequest as also:  # say both: the first refusal is often the one that explains
                raise RefusedRequest(
                    f"{self.base_url} refused model {self.name!r} on both APIs: /completions answered "
                    f"{refused.detail}; /chat/completions answered {also.detail} (check the model name and options)",
                    also.detail,
                ) from also
        else:
            self.log(f"{self.name} at {self.base_url}: using /completions (api = completions)")
        self._check_count(len(completions), sampling.n)
        return completions

    def _check_count(self, got: int, asked: int) -> None:
        if got > asked or got == 0:
            raise ModelError(f"{self.base_url}/{self._path()} returned {got} choices for n={asked}")
        if got < asked and not self.ignores_n:
            self.ignores_n = True
            self.log(
                f"{self.base_url} returned {got} choice(s) for n={asked}: it ignores n; "
                "sending one request per sample"
            )

    def _check_samples_differ(self, got: list[list[Completion]], sampling: SamplingConfig) -> None:
        if self.warned_identical or sampling.temperature == 0 or sampling.n == 1:
            return
        if all(len({c.text for c in row}) == 1 for row in got):
            self.warned_identical = True
            self.log(
                f"{self.name} at {self.base_url}: the {sampling.n} samples of every prompt are identical at "
                f"temperature {sampling.temperature}: the server may ignore temperature and seed (some decide "
                "sampling by the model's generation config)"
            )

    def _path(self) -> str:
        return "chat/completions" if self.api == "chat" else "completions"

    def _request(self, prompt: str, sampling: SamplingConfig, first_sample: int, n: int) -> list[Completion]:
        """``n`` samples of ``prompt`` in one request, seeded apart from the samples before ``first_sample``."""
        chat = self.api == "chat"
        body: dict[str, object] = {"model": self.name}
        body.update({"messages": chat_messages(prompt)} if chat else {"prompt": prompt})
        body.update({
            "n": n,
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p if sampling.temperature > 0 else 1.0,
            "seed": sampling.seed + first_sample,
        })
        if sampling.stop and not chat:  # a reply may open with a fence: its code is cut out afterwards
            body["stop"] = list(sampling.stop[:MAX_API_STOP])
        response = self._post("/" + self._path(), body)
        try:
            choices = sorted(response["choices"], key=lambda c: c.get("index", 0))
            texts = [c["message"]["content"] if chat else c["text"] for c in choices]
            reasons = [c.get("finish_reason") for c in choices]
            usage = dict(response.get("usage") or {})
            if any(not isinstance(t, str) for t in texts):
                raise TypeError("a choice's text is not a string")
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ModelError(
                f"{self.base_url}/{self._path()} returned an unexpected response (no choices with text)"
            ) from exc
        counts = _split_token_count(usage.get("completion_tokens"), texts)
        counted_by = "server" if {"prompt_tokens", "completion_tokens"} <= usage.keys() else "estimate"
        prompt_tokens = usage.get("prompt_tokens")
        if prompt_tokens is None:
            prompt_tokens = len(prompt) // 4
        completions = []
        for index, (text, reason, tokens) in enumerate(zip(texts, reasons, counts, strict=True)):
            cut, stopped = (text, False) if chat else cut_at_stop(text, sampling.stop)
            completions.append(Completion(
                text=cut, tokens=tokens, finished=stopped or reason != "length", reply=chat,
                prompt_tokens=prompt_tokens if index == 0 else 0, counted_by=counted_by,
            ))
        return completions

    def _post(self, path: str, body: dict) -> dict:
        url = self.base_url + path
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode()
        for attempt in range(self.max_retries + 1):
            wait = min(self.max_backoff_s, self.backoff_s * 2**attempt) * (1 + 0.1 * random.random())
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                    payload = reply.read()
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                if exc.code not in RETRY_STATUS:
                    raise RefusedRequest(
                        f"{url} answered HTTP {exc.code}: {detail} (check the model name and options)",
                        f"HTTP {exc.code}: {detail}",
                    ) from exc
                problem = f"HTTP {exc.code}: {detail}"
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                if retry_after and retry_after.isdigit():
                    wait = min(self.max_backoff_s, float(retry_after))
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                problem = str(getattr(exc, "reason", exc)) or type(exc).__name__
            else:
                try:
                    return json.loads(payload)
                except json.JSONDecodeError as exc:
                    raise ModelError(
                        f"{url} returned invalid JSON; is it an OpenAI-compatible server?"
                    ) from exc
            if attempt < self.max_retries:
                time.sleep(wait)
        raise ModelError(
            f"cannot get a completion from {url} after {self.max_retries + 1} tries ({problem}); "
            "start the server (e.g. `vllm serve MODEL`) or fix the base URL"
        )


class RefusedRequest(ModelError):
    """The server answered a request with a client error (4xx): trying again would not help."""

    def __init__(self, message: str, detail: str):
        super().__init__(message)
        self.detail = detail

    def __reduce__(self):
        return type(self), (str(self), self.detail)


def _stderr(message: str) -> None:
    print(f"[openai] {message}", file=sys.stderr, flush=True)


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read().decode(errors="replace")
    except OSError:
        return exc.reason or ""
    try:
        payload = json.loads(raw)
        message = payload.get("error") or payload.get("detail")  # OpenAI's shape, FastAPI's
        message = message.get("message", message) if isinstance(message, dict) else message
    except (ValueError, AttributeError):
        message = raw
    return " ".join(str(message or exc.reason).split())[:200]


def _split_token_count(total: int | None, texts: list[str]) -> list[int]:
    """Per-choice token counts. The API reports only the total over all ``n`` choices, so with n > 1 it is
    split in proportion to text length (exact sum, approximate parts); no usage -> a chars/4 estimate."""
    if total is None:
        return [max(1, len(t) // 4) if t else 0 for t in texts]
    if len(texts) == 1:
        return [total]
    weights = [len(t) + 1 for t in texts]
    counts = [total * w // sum(weights) for w in weights]
    counts[0] += total - sum(counts)
    return counts
