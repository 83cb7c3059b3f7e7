"""Generation through any OpenAI-compatible ``/v1/completions`` server (``vllm serve``, TGI, OpenAI).

Standard library only: one POST per prompt (``n`` samples each), ``max_concurrency`` requests in flight,
retries with exponential backoff on 429, 5xx, timeouts and connection errors.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from factory.errors import ModelError
from factory.models.base import Completion, SamplingConfig, cut_at_stop

MAX_API_STOP = 4  # OpenAI accepts at most 4 stop strings; the rest are applied locally
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIBackend:
    """``model``: the model name the server serves. ``base_url``: up to and including ``/v1``
    (default ``$OPENAI_BASE_URL`` or ``http://127.0.0.1:8000/v1``). ``api_key``: default ``$OPENAI_API_KEY``
    (none sent when unset). A request is tried ``1 + max_retries`` times, waiting ``backoff_s * 2**attempt``
    (at most ``max_backoff_s``, or the server's Retry-After) between tries, each limited to ``timeout_s``."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ):
        self.name = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1").rstrip(
            "/"
        )
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.max_concurrency = max(1, max_concurrency)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[list[Completion]]:
        if isinstance(prompts, str):
            raise TypeError("generate takes a sequence of prompts, not a single string")
        if not prompts:
            return []
        pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(prompts)))
        try:
            return list(pool.map(lambda prompt: self._complete(prompt, sampling), prompts))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        pass

    def _complete(self, prompt: str, sampling: SamplingConfig) -> list[Completion]:
        body = {
            "model": self.name,
            "prompt": prompt,
            "n": sampling.n,
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p if sampling.temperature > 0 else 1.0,
            "seed": sampling.seed,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop[:MAX_API_STOP])
        response = self._post("/completions", body)
        try:
            choices = sorted(response["choices"], key=lambda c: c.get("index", 0))
            texts = [c["text"] for c in choices]
            reasons = [c.get("finish_reason") for c in choices]
        except (KeyError, TypeError) as exc:
            raise ModelError(
                f"{self.base_url}/completions returned an unexpected response (no choices/text)"
            ) from exc
        if len(texts) != sampling.n:
            raise ModelError(f"{self.base_url}/completions returned {len(texts)} choices for n={sampling.n}")
        usage = (response.get("usage") or {}).get("completion_tokens")
        counts = _split_token_count(usage, texts)
        completions = []
        for text, reason, tokens in zip(texts, reasons, counts, strict=True):
            cut, stopped = cut_at_stop(text, sampling.stop)
            completions.append(Completion(text=cut, tokens=tokens, finished=stopped or reason != "length"))
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
                    raise ModelError(
                        f"{url} answered HTTP {exc.code}: {detail} (check the model name and options)"
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


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read().decode(errors="replace")
    except OSError:
        return exc.reason or ""
    try:
        message = json.loads(raw).get("error", {})
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
