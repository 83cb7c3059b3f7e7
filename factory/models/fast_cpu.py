"""Fast CPU generation for small Llama-style causal LMs: a plain torch decode loop over the model's own
weights, with a preallocated KV cache and continuous batching.

Why not ``model.generate``: on CPU with tiny models, most of a decode step went to growing the dynamic KV
cache (``torch.cat`` of every layer's keys and values at every step), to attention over left padding, and
to decoding every row's whole completion for the stop check. Here:

* preallocated caches, reused between calls: a prompt slot holds one prompt's keys and values,
  prefilled once for its ``n`` samples, then its samples' generated keys and values, interleaved. A
  decode step writes one position per sample and runs one attention per group of neighbouring prompt
  slots, each query masked to its prompt and its own keys (the prompt's keys read once for all ``n``);
  each group attends only up to its own longest row (prompts are taken shortest first). Prompt slots
  whose samples all finished are skipped, neither read nor computed;
* q/k/v and gate/up projections are one matmul each (weights concatenated at load); the prefill's last
  layer runs only for each prompt's last token;
* a prompt slot whose samples all finished is refilled with the next waiting prompt (continuous
  batching), so a batch never waits for its longest row (only a prompt for its longest sample);
* stop strings are checked on each row's newly decoded text only (incremental detokenization);
* sampling (temperature, top-p nucleus, greedy at temperature 0) is done in torch with a private
  generator seeded from ``SamplingConfig.seed``: same seed, same machine, same samples. The nucleus is
  found in each row's top-k where that provably holds it, by a full sort of the row only where not.

Results follow the transformers backend: prompts cut from the left to leave room for ``max_new_tokens``,
text cut before the first stop string, ``tokens`` = tokens generated until EOS / the stop was seen,
``finished`` False when cut by ``max_new_tokens``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from factory.errors import ModelError
from factory.models.base import Completion, SamplingConfig, cut_at_stop

SUPPORTED_MODEL_TYPES = ("llama",)


def supports(model: str | Path, device: str | None = None, dtype: str | None = None) -> bool:
    """Whether the fast path applies: a local Llama-style checkpoint, on CPU, in float32."""
    if device is not None and torch.device(device).type != "cpu":
        return False
    if device is None and torch.cuda.is_available():
        return False
    if dtype not in (None, "float32"):
        return False
    if not (Path(model) / "config.json").exists():
        return False
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(model), local_files_only=True)
    except (OSError, ValueError):
        return False
    return _config_supported(config)


def supports_model(model) -> bool:
    """Whether the fast path applies to a loaded model: on CPU, in float32, of a supported architecture."""
    parameter = next(model.parameters())
    return parameter.device.type == "cpu" and parameter.dtype == torch.float32 and _config_supported(model.config)


def _config_supported(config) -> bool:
    return (
        getattr(config, "model_type", None) in SUPPORTED_MODEL_TYPES
        and getattr(config, "hidden_act", "silu") == "silu"
        and getattr(config, "pretraining_tp", 1) == 1
    )


class _Layer:
    """One decoder layer's weights, with q/k/v and gate/up concatenated once so that each is one matmul."""

    __slots__ = ("ln1", "ln2", "eps1", "eps2", "qkv", "qkv_bias", "o", "gate_up", "gate_up_bias", "down")

    def __init__(self, layer):
        attn, mlp = layer.self_attn, layer.mlp
        self.ln1, self.eps1 = layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon
        self.ln2, self.eps2 = (
            layer.post_attention_layernorm.weight,
            layer.post_attention_layernorm.variance_epsilon,
        )
        self.qkv, self.qkv_bias = _concat(attn.q_proj, attn.k_proj, attn.v_proj)
        self.gate_up, self.gate_up_bias = _concat(mlp.gate_proj, mlp.up_proj)
        self.o, self.down = attn.o_proj, mlp.down_proj


def _concat(*linears) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weights (and biases, if any) of ``linears`` stacked along the output dimension."""
    with torch.no_grad():
        weight = torch.cat([m.weight for m in linears]).contiguous()
        if all(m.bias is None for m in linears):
            return weight, None
        bias = [m.bias if m.bias is not None else torch.zeros(m.out_features) for m in linears]
        return weight, torch.cat(bias)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """An additive attention mask [len(lengths), 1, 1, width]: 0 before each row's length, -inf after."""
    keep = torch.arange(width)[None, :] < lengths[:, None]
    return torch.zeros(len(lengths), 1, 1, width).masked_fill_(~keep[:, None, None, :], float("-inf"))


class _Row:
    """One sequence being generated: its tokens and the incremental decoding of them."""

    __slots__ = ("index", "tokens", "text", "prefix", "read")

    def __init__(self, index: int):
        self.index = index
        self.tokens: list[int] = []
        self.text = ""  # decoded text of tokens[:read]
        self.prefix = 0  # tokens[prefix:read] is the context for decoding what follows read
        self.read = 0


class FastCPUBackend:
    """A small Llama-style HF checkpoint (such as the embedded default model) decoded on CPU with a static
    KV cache and continuous batching. ``batch_size``: sequences decoded together (at least 64, a multiple
    of ``n``: on CPU a bigger batch costs little more per step; capped by the sequences asked for).
    Float32 only, as the transformers backend on CPU. Raises ModelError for other architectures."""

    MIN_SLOTS = 64

    def __init__(
        self, model: str | Path, *, batch_size: int = 64, device: str | None = None, dtype: str | None = None
    ):
        from factory.models.transformers_backend import load_pretrained

        if device is not None and torch.device(device).type != "cpu":
            raise ModelError(f"the fast CPU backend runs on cpu, not {device}")
        if dtype not in (None, "float32"):
            raise ModelError(f"the fast CPU backend runs in float32, not {dtype}")
        loaded, tokenizer = load_pretrained(model, torch.float32)
        loaded.eval()
        self._bind(loaded, tokenizer, str(model), batch_size)

    @classmethod
    def of_model(cls, model, tokenizer, *, batch_size: int = 64) -> FastCPUBackend:
        """The fast path over a loaded float32 CPU model, with its weights as they are now (a training
        step changes them: build another after it). Raises ModelError for other architectures."""
        backend = cls.__new__(cls)
        backend._bind(model, tokenizer, str(getattr(model, "name_or_path", "") or "model"), batch_size)
        return backend

    def _bind(self, model, tokenizer, name: str, batch_size: int) -> None:
        self.name = name
        self.batch_size = batch_size
        self.device = torch.device("cpu")
        self.model, self.tokenizer = model, tokenizer
        config = self.model.config
        if not _config_supported(config):
            raise ModelError(
                f"the fast CPU backend does not support {getattr(config, 'model_type', '?')} models"
            )
        self.max_positions = getattr(config, "max_position_embeddings", None)
        core = self.model.model
        self.embed = core.embed_tokens.weight
        self.layers = [_Layer(layer) for layer in core.layers]
        self.norm, self.norm_eps = core.norm.weight, core.norm.variance_epsilon
        self.lm_head = self.model.lm_head
        self.rotary = core.rotary_emb
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.scale = self.head_dim**-0.5
        self.eos = self.tokenizer.eos_token_id
        self._buffers: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.qkv_split = [self.heads * self.head_dim] + [self.kv_heads * self.head_dim] * 2
        self._cos = self._sin = torch.empty(0, self.head_dim)  # rotary tables, by position

    # -- the model -------------------------------------------------------------------------------------

    def _rope_table(self, length: int) -> None:
        """cos and sin of every position below ``length`` (at least), from the model's own rotary module;
        sin with its first half negated, so that rotating is ``x * cos + swap_halves(x) * sin``."""
        if self._cos.shape[0] >= length:
            return
        length = max(length, self.max_positions or 0)
        cos, sin = self.rotary(self.embed[:1][None], torch.arange(length)[None])
        half = self.head_dim // 2
        self._cos, self._sin = cos[0], torch.cat((-sin[0, :, :half], sin[0, :, half:]), dim=-1)

    def _project(self, layer: _Layer, h: torch.Tensor, cos, sin):
        """q, k, v of ``h`` [B, T, hidden] as [B, T, heads, head_dim], q and k rotated by ``cos``/``sin``."""
        b, t, _ = h.shape
        qkv = F.linear(h, layer.qkv, layer.qkv_bias)
        rotated = self.heads + self.kv_heads
        qk = qkv[..., : rotated * self.head_dim].view(b, t, rotated, self.head_dim)
        half = self.head_dim // 2
        qk = qk * cos + torch.cat((qk[..., half:], qk[..., :half]), dim=-1) * sin
        v = qkv[..., rotated * self.head_dim :].view(b, t, self.kv_heads, self.head_dim)
        return qk[:, :, : self.heads], qk[:, :, self.heads :], v

    def _expand_kv(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kv_heads == self.heads:
            return k, v
        groups = self.heads // self.kv_heads
        return k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)

    def _finish_layer(self, layer: _Layer, x, attn):
        """The rest of a layer after attention; ``attn`` [B, T, heads, head_dim]."""
        b, t = attn.shape[:2]
        x = x + layer.o(attn.reshape(b, t, -1))
        h = _rms_norm(x, layer.ln2, layer.eps2)
        gate, up = F.linear(h, layer.gate_up, layer.gate_up_bias).chunk(2, dim=-1)
        return x + layer.down(F.silu(gate) * up)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(_rms_norm(x, self.norm, self.norm_eps)).float()

    def _prefill(self, ids: list[list[int]], cache, units: list[int]) -> torch.Tensor:
        """Run right-padded prompts ``ids``; store prompt ``j``'s keys and values in the cache row
        ``units[j]`` (once for all its samples). Returns the logits after each prompt's last token."""
        width = max(len(p) for p in ids)
        pad = self.eos if self.eos is not None else 0
        tokens = torch.tensor([p + [pad] * (width - len(p)) for p in ids])
        x = F.embedding(tokens, self.embed)
        cos, sin = self._cos[None, :width, None], self._sin[None, :width, None]
        target = torch.tensor(units)
        rows = torch.arange(len(ids))
        last = torch.tensor([len(p) - 1 for p in ids])
        for i, (layer, (kc, vc)) in enumerate(zip(self.layers, cache, strict=True)):
            q, k, v = self._project(layer, _rms_norm(x, layer.ln1, layer.eps1), cos, sin)
            k, v = k.transpose(1, 2), v.transpose(1, 2)
            kc[target, :, :width] = k
            vc[target, :, :width] = v
            k, v = self._expand_kv(k, v)
            if i < len(self.layers) - 1:
                attn = F.scaled_dot_product_attention(q.transpose(1, 2), k, v, is_causal=True, scale=self.scale)
                x = self._finish_layer(layer, x, attn.transpose(1, 2))
            else:  # only the last token of each prompt is needed from here on
                mask = _mask(last + 1, width)
                q = q[rows, last][:, :, None]  # [B, H, 1, D]
                attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
                x = self._finish_layer(layer, x[rows, last][:, None], attn.transpose(1, 2))
        return self._logits(x[:, 0])

    ATTENTION_GROUP = 16  # sample slots whose attention runs together, each group over its own longest context

    def _decode(
        self, busy: list[int], tokens: list[int], prompt_len: list[int], steps: list[int], cache, n: int
    ) -> tuple[torch.Tensor, list[int]]:
        """One step for the ``n`` sample slots of each prompt slot ("unit") in ``busy`` (ascending; the
        other units are skipped: their caches are neither read nor written). A unit's cache row holds its
        prompt's keys, then its samples' generated keys interleaved: the key of sample ``j``'s step ``t``
        is at ``prompt_len[u] + t * n + j`` (its position is ``prompt_len[u] + t``); the samples of a unit
        step together, ``steps[u]`` being the step now decoded. So one attention over the row serves the
        unit's ``n`` queries (the prompt's keys read once for all of them), each masked to the prompt and
        its own keys. Each run of neighbouring busy units (at most ATTENTION_GROUP samples) attends up to
        its own longest row (units are filled in prompt-length order, so neighbours are alike). Sample
        slot ``u * n + j`` feeds ``tokens[u * n + j]``. Returns the last hidden states of the busy units'
        sample slots and those slots, in order."""
        slots = [u * n + j for u in busy for j in range(n)]
        m = len(busy)
        lengths = torch.tensor([prompt_len[u] for u in busy])
        step = torch.tensor([steps[u] for u in busy])
        lane = torch.arange(n)
        positions = (lengths + step).repeat_interleave(n)
        where = ((lengths + step * n)[:, None] + lane).reshape(-1)
        owner = torch.tensor(busy).repeat_interleave(n)
        x = F.embedding(torch.tensor([tokens[s] for s in slots])[:, None], self.embed)
        cos, sin = self._cos[positions][:, None, None], self._sin[positions][:, None, None]
        ends = lengths + (step + 1) * n
        width = int(ends.max())
        rel = (torch.arange(width)[None, :] - lengths[:, None])[:, None, :]  # [m, 1, width]
        seen = (rel < 0) | ((rel < ((step + 1) * n)[:, None, None]) & (rel.remainder(n) == lane[None, :, None]))
        mask = torch.zeros(m, 1, n, width).masked_fill_(~seen[:, None], float("-inf"))
        groups = []
        per = max(1, self.ATTENTION_GROUP // n)
        c = 0
        while c < m:
            e = c + 1
            while e < m and e - c < per and busy[e] == busy[e - 1] + 1:
                e += 1
            wide = int(ends[c:e].max())
            groups.append((c, e, busy[c], busy[e - 1] + 1, wide, mask[c:e, :, :, :wide]))
            c = e
        flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
        for layer, (kc, vc) in zip(self.layers, cache, strict=True):
            q, k, v = self._project(layer, _rms_norm(x, layer.ln1, layer.eps1), cos, sin)
            kc[owner, :, where] = k[:, 0]
            vc[owner, :, where] = v[:, 0]
            q = q.view(m, n, self.heads, self.head_dim).transpose(1, 2)  # [m, H, n, D]
            parts = [
                flash(q[c:e], *self._expand_kv(kc[a:b, :, :wide], vc[a:b, :, :wide]), 0.0, False,
                      attn_mask=gmask, scale=self.scale)[0]
                for c, e, a, b, wide, gmask in groups
            ]
            attn = parts[0] if len(parts) == 1 else torch.cat(parts)
            x = self._finish_layer(layer, x, attn.transpose(1, 2).reshape(m * n, 1, self.heads, self.head_dim))
        return x[:, 0], slots

    # -- sampling --------------------------------------------------------------------------------------

    CANDIDATES = (16, 256)  # top-k widths tried for the nucleus before a full sort of the vocabulary

    @classmethod
    def _sample(cls, logits: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator) -> torch.Tensor:
        if sampling.temperature == 0:
            return logits.argmax(-1)
        probs = (logits / sampling.temperature).softmax(-1)
        # the nucleus: the likeliest tokens until their mass reaches top_p (as transformers' TopPLogitsWarper,
        # which drops the tokens whose ascending cumulative mass is <= 1 - top_p)
        if sampling.top_p >= 1:
            top, order = probs, None
        else:
            top, order = cls._candidates(probs, sampling.top_p)
            before = top.cumsum(-1) - top  # mass of the likelier tokens
            top = top.masked_fill(before >= sampling.top_p, 0.0)  # the first token is always kept
        cdf = top.cumsum(-1)
        u = torch.rand(cdf.shape[0], 1, generator=generator) * cdf[:, -1:]
        pick = torch.searchsorted(cdf, u, right=True)
        over = (pick[:, 0] >= cdf.shape[1]).nonzero()[:, 0].tolist()
        for row in over:  # u rounded up to the whole mass: the last token with any
            pick[row, 0] = int((top[row] > 0).nonzero()[-1, 0])
        return pick[:, 0] if order is None else order.gather(1, pick)[:, 0]

    @classmethod
    def _candidates(cls, probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's likeliest tokens (probabilities, descending, and their ids), enough of them to hold
        the row's nucleus: the top ``k`` hold it when their mass reaches ``top_p`` (every token after
        them has at least that much likelier mass). A full sort of the vocabulary is slow on CPU: try the
        widths of CANDIDATES first, each on the rows still short, then sort the rows short of them all.
        Rows narrower than the widest are padded with zero probabilities."""
        vocab = probs.shape[1]
        top = order = rows = None
        for k in (*(k for k in cls.CANDIDATES if k < vocab), vocab):
            sub = probs if rows is None else probs[rows]
            t, o = sub.sort(-1, descending=True) if k == vocab else sub.topk(k, dim=-1)
            if rows is None:
                top, order = t, o
            else:
                top, order = F.pad(top, (0, k - top.shape[1])), F.pad(order, (0, k - order.shape[1]))
                top[rows], order[rows] = t, o
            if k == vocab:
                break
            short = (t.sum(-1) < top_p).nonzero()[:, 0]
            if not len(short):
                break
            rows = short if rows is None else rows[short]
        return top, order

    # -- the loop --------------------------------------------------------------------------------------

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[list[Completion]]:
        if isinstance(prompts, str):
            raise TypeError("generate takes a sequence of prompts, not a single string")
        if not prompts:
            return []
        encoded = self._encode(list(prompts), sampling)
        results = self._run(encoded, sampling)
        return [results[i : i + sampling.n] for i in range(0, len(results), sampling.n)]

    def encode(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[list[int]]:
        """The token ids ``generate`` conditions each prompt on (cut from the left to leave room)."""
        return self._encode(list(prompts), sampling)

    def _encode(self, prompts: list[str], sampling: SamplingConfig) -> list[list[int]]:
        room = self.max_positions - sampling.max_new_tokens if self.max_positions else None
        if room is not None and room < 1:
            raise ModelError(
                f"max_new_tokens {sampling.max_new_tokens} leaves no room for a prompt in {self.max_positions} positions"
            )
        self.tokenizer.truncation_side = "left"
        ids = self.tokenizer(prompts, truncation=room is not None, max_length=room)["input_ids"]
        fallback = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.eos
        return [list(p) if p else [fallback if fallback is not None else 0] for p in ids]

    MAX_LANES = 8  # samples sharing one prompt slot: its attention costs grow with their square

    @torch.inference_mode()
    def _run(self, encoded: list[list[int]], sampling: SamplingConfig) -> list[Completion]:
        n, limit = sampling.n, sampling.max_new_tokens
        lanes = max(d for d in range(1, min(n, self.MAX_LANES) + 1) if n % d == 0)
        if lanes < n:  # each prompt in n // lanes prompt slots of ``lanes`` samples; the same result order
            return self._run([p for p in encoded for _ in range(n // lanes)], replace(sampling, n=lanes))
        # prompt slots ("units"), each with n sample slots: sample slot i belongs to unit i // n
        units = max(1, min(max(self.batch_size, self.MIN_SLOTS) // n, len(encoded)))
        slots = units * n
        longest = max(len(p) for p in encoded)
        cache = self._cache("kv", units, longest + n * limit)
        self._rope_table(longest + limit)
        generator = torch.Generator().manual_seed(sampling.seed)
        stops = sampling.stop
        tail = max((len(s) for s in stops), default=1) - 1
        # shortest prompts first, so that neighbouring slots (and the prompts prefilled together) are alike
        waiting = deque(sorted(range(len(encoded)), key=lambda p: (len(encoded[p]), p)))
        rows: list[_Row | None] = [None] * slots
        live = [0] * units  # unfinished samples of each unit
        prompt_len = [1] * units
        steps = [0] * units  # decode steps done by each unit's samples (together)
        next_tokens = [0] * slots
        results: list[Completion | None] = [None] * (len(encoded) * n)
        refill_at = max(1, units // 8)

        def finish(slot: int, row: _Row, stopped: bool) -> None:
            text, cut = cut_at_stop(self.tokenizer.decode(row.tokens, skip_special_tokens=True), stops)
            results[row.index] = Completion(text=text, tokens=len(row.tokens), finished=stopped or cut)
            rows[slot] = None
            live[slot // n] -= 1

        def accept(slot: int, row: _Row, token: int) -> None:
            """Record ``token`` for ``row``; finish it on EOS, a stop string or ``max_new_tokens``."""
            row.tokens.append(token)
            if self.eos is not None and token == self.eos:
                return finish(slot, row, True)
            if stops:
                new = self._new_text(row)
                if new and any(s in row.text[-(len(new) + tail) :] for s in stops):
                    return finish(slot, row, True)
            if len(row.tokens) >= limit:
                return finish(slot, row, False)
            next_tokens[slot] = token

        while True:
            free = [u for u in range(units) if not live[u]]
            if len(free) == units and not waiting:
                break
            if waiting and (len(free) >= refill_at or len(free) == units):
                taken = [(u, waiting.popleft()) for u in free[: len(waiting)]]
                for chunk in self._prefill_chunks([len(encoded[p]) for _, p in taken]):
                    part = [taken[j] for j in chunk]
                    logits = self._prefill([encoded[p] for _, p in part], cache, [u for u, _ in part])
                    first = self._sample(logits.repeat_interleave(n, dim=0), sampling, generator).tolist()
                    for (u, p), tokens in zip(
                        part, (first[j : j + n] for j in range(0, len(first), n)), strict=True
                    ):
                        prompt_len[u] = len(encoded[p])
                        live[u], steps[u] = n, 0
                        for j, token in enumerate(tokens):
                            slot = u * n + j
                            rows[slot] = _Row(p * n + j)
                            accept(slot, rows[slot], token)
                continue
            busy = [u for u in range(units) if live[u]]
            hidden, stepped = self._decode(busy, next_tokens, prompt_len, steps, cache, n)
            for u in busy:
                steps[u] += 1
            alive = [i for i, s in enumerate(stepped) if rows[s] is not None]  # not the finished samples
            if len(alive) < len(stepped):
                hidden = hidden[alive]
            sampled = self._sample(self._logits(hidden), sampling, generator).tolist()
            for i, token in zip(alive, sampled, strict=True):
                accept(stepped[i], rows[stepped[i]], token)
        return results  # type: ignore[return-value]

    def _cache(self, name: str, rows: int, length: int):
        """Per layer (keys, values) of [rows, kv_heads, length, head_dim]: views of buffers kept between
        calls (zeroing ~1 GB at every call is slow). Stale values are finite and always masked."""
        buffers = self._buffers.get(name, [])
        have = buffers[0][0].shape if buffers else (0, 0, 0, 0)
        if have[0] < rows or have[2] < length:
            self._buffers[name] = []  # free the old ones first
            shape = (max(rows, have[0]), self.kv_heads, max(length, have[2]), self.head_dim)
            self._buffers[name] = buffers = [(torch.zeros(shape), torch.zeros(shape)) for _ in self.layers]
        return [(k[:rows, :, :length], v[:rows, :, :length]) for k, v in buffers]

    PREFILL_TOKENS = 4096  # padded prompt tokens per prefill forward

    def _prefill_chunks(self, lengths: list[int]) -> list[list[int]]:
        """Indices of ``lengths`` in consecutive chunks of at most PREFILL_TOKENS padded tokens (or one)."""
        chunks: list[list[int]] = []
        width = 0
        for i, length in enumerate(lengths):
            width = max(width, length)
            if chunks and chunks[-1] and width * (len(chunks[-1]) + 1) <= self.PREFILL_TOKENS:
                chunks[-1].append(i)
            else:
                chunks.append([i])
                width = length
        return chunks

    def _new_text(self, row: _Row) -> str:
        """Decode ``row``'s tokens past ``read`` in the context of the few before (so tokenizers that drop
        a leading space, or split a character over tokens, decode as in the whole text); append the new
        text to ``row.text`` once complete (no trailing replacement character). Returns the new text."""
        decode = self.tokenizer.decode
        before = decode(row.tokens[row.prefix : row.read], skip_special_tokens=True)
        whole = decode(row.tokens[row.prefix :], skip_special_tokens=True)
        if len(whole) <= len(before) or whole.endswith("\ufffd"):
            return ""
        new = whole[len(before) :]
        row.text += new
        row.prefix, row.read = row.read, len(row.tokens)
        return new

    def close(self) -> None:
        self.model = None
        self.layers = []
        self._buffers = {}
