"""Fast CPU generation for small Llama-style causal LMs: a plain torch decode loop over the model's own
weights, with a preallocated KV cache and continuous batching.

Why not ``model.generate``: on CPU with tiny models, most of a decode step went to growing the dynamic KV
cache (``torch.cat`` of every layer's keys and values at every step), to attention over left padding, and
to decoding every row's whole completion for the stop check. Here:

* preallocated caches, reused between calls: a prompt slot holds one prompt's keys and values, prefilled
  once for its ``n`` samples; each of its ``n`` sample slots holds that sample's generated keys and
  values. A decode step writes one position per sample and attends over the shared prompt keys (one
  matrix product for the ``n`` samples) and over its own keys, merged by log-sum-exp; each group of
  neighbouring slots attends only up to its own longest context (prompts are taken shortest first);
* a prompt slot whose samples all finished is refilled with the next waiting prompt (continuous
  batching), so a batch never waits for its longest row (only a prompt for its longest sample);
* stop strings are checked on each row's newly decoded text only (incremental detokenization);
* sampling (temperature, top-p nucleus, greedy at temperature 0) is done in torch with a private
  generator seeded from ``SamplingConfig.seed``: same seed, same machine, same samples.

Results follow the transformers backend: prompts cut from the left to leave room for ``max_new_tokens``,
text cut before the first stop string, ``tokens`` = tokens generated until EOS / the stop was seen,
``finished`` False when cut by ``max_new_tokens``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
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


def _config_supported(config) -> bool:
    return (
        getattr(config, "model_type", None) in SUPPORTED_MODEL_TYPES
        and getattr(config, "hidden_act", "silu") == "silu"
        and getattr(config, "pretraining_tp", 1) == 1
    )


class _Layer:
    __slots__ = ("ln1", "ln2", "eps1", "eps2", "q", "k", "v", "o", "gate", "up", "down")

    def __init__(self, layer):
        attn, mlp = layer.self_attn, layer.mlp
        self.ln1, self.eps1 = layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon
        self.ln2, self.eps2 = (
            layer.post_attention_layernorm.weight,
            layer.post_attention_layernorm.variance_epsilon,
        )
        self.q, self.k, self.v, self.o = attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj
        self.gate, self.up, self.down = mlp.gate_proj, mlp.up_proj, mlp.down_proj


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


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
        self.name = str(model)
        self.batch_size = batch_size
        self.device = torch.device("cpu")
        self.model, self.tokenizer = load_pretrained(model, torch.float32)
        self.model.eval()
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

    # -- the model -------------------------------------------------------------------------------------

    def _rope(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = self.rotary(x, positions)
        return cos.unsqueeze(1), sin.unsqueeze(1)  # [B, 1, T, D] against [B, H, T, D]

    def _project(self, layer: _Layer, h: torch.Tensor, cos, sin):
        b, t, _ = h.shape
        q = layer.q(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = layer.k(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = layer.v(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        return q, k, v

    def _attend(self, q, k, v, mask=None, causal=False):
        if self.kv_heads != self.heads:
            groups = self.heads // self.kv_heads
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=self.scale)

    def _finish_layer(self, layer: _Layer, x, attn):
        b, _, t, _ = attn.shape
        x = x + layer.o(attn.transpose(1, 2).reshape(b, t, -1))
        h = _rms_norm(x, layer.ln2, layer.eps2)
        return x + layer.down(F.silu(layer.gate(h)) * layer.up(h))

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(_rms_norm(x, self.norm, self.norm_eps)).float()

    def _prefill(self, ids: list[list[int]], cache, units: list[int]) -> torch.Tensor:
        """Run right-padded prompts ``ids``; store prompt ``j``'s keys and values in the prompt cache row
        ``units[j]`` (once for all its samples). Returns the logits after each prompt's last token."""
        width = max(len(p) for p in ids)
        pad = self.eos if self.eos is not None else 0
        tokens = torch.tensor([p + [pad] * (width - len(p)) for p in ids])
        positions = torch.arange(width).expand(len(ids), width)
        x = F.embedding(tokens, self.embed)
        cos, sin = self._rope(x, positions)
        target = torch.tensor(units)
        for layer, (kc, vc) in zip(self.layers, cache, strict=True):
            q, k, v = self._project(layer, _rms_norm(x, layer.ln1, layer.eps1), cos, sin)
            kc[target, :, :width] = k
            vc[target, :, :width] = v
            x = self._finish_layer(layer, x, self._attend(q, k, v, causal=True))
        last = torch.tensor([len(p) - 1 for p in ids])
        return self._logits(x[torch.arange(len(ids)), last])

    ATTENTION_GROUP = (
        16  # sample slots whose attention runs together, each group over its own longest context
    )

    def _decode(self, tokens, prompt_len, gen, prompt_cache, gen_cache, n: int) -> torch.Tensor:
        """One step for every sample slot ``i`` (of prompt slot ``i // n``): token ``tokens[i]`` goes to
        index ``gen[i]`` of the slot's own cache of generated keys, at position ``prompt_len + gen[i]``.
        Attention is split in two: over the prompt's keys, stored once and shared by its ``n`` samples
        (one matrix product for all of them), and over the sample's own generated keys; the two are
        merged by their log-sum-exp. Each group of neighbouring slots attends up to its own longest
        prompt and generation (slots are filled in prompt-length order, so neighbours are alike)."""
        slots = tokens.shape[0]
        units = slots // n
        rows = torch.arange(slots)
        x = F.embedding(tokens[:, None], self.embed)
        cos, sin = self._rope(x, (prompt_len.repeat_interleave(n) + gen)[:, None])
        groups = []
        step = max(1, self.ATTENTION_GROUP // n)
        for a in range(0, units, step):
            b = min(a + step, units)
            lp = int(prompt_len[a:b].max())
            keep = torch.arange(lp)[None, :] < prompt_len[a:b, None]
            pmask = torch.zeros(b - a, 1, 1, lp).masked_fill_(~keep[:, None, None, :], float("-inf"))
            g = gen[a * n : b * n]
            lg = int(g.max()) + 1
            keep = torch.arange(lg)[None, :] <= g[:, None]
            gmask = torch.zeros((b - a) * n, 1, 1, lg).masked_fill_(~keep[:, None, None, :], float("-inf"))
            groups.append((a, b, lp, pmask, lg, gmask))
        for layer, (kp, vp), (kg, vg) in zip(self.layers, prompt_cache, gen_cache, strict=True):
            q, k, v = self._project(layer, _rms_norm(x, layer.ln1, layer.eps1), cos, sin)
            kg[rows, :, gen] = k[:, :, 0]
            vg[rows, :, gen] = v[:, :, 0]
            attn = torch.cat(
                [
                    self._attend_split(
                        q[a * n : b * n],
                        (kp[a:b, :, :lp], vp[a:b, :, :lp], pmask),
                        (kg[a * n : b * n, :, :lg], vg[a * n : b * n, :, :lg], gmask),
                        n,
                    )
                    for a, b, lp, pmask, lg, gmask in groups
                ]
            )
            x = self._finish_layer(layer, x, attn)
        return self._logits(x[:, 0])

    def _attend_split(self, q, prompt, own, n: int) -> torch.Tensor:
        """Attention of ``q`` [m*n, H, 1, D] over m prompts' keys (each shared by n queries) and over each
        query's own keys, as one softmax over both."""
        flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
        (kp, vp, pmask), (kg, vg, gmask) = prompt, own
        if self.kv_heads != self.heads:
            groups = self.heads // self.kv_heads
            kp, vp, kg, vg = (t.repeat_interleave(groups, dim=1) for t in (kp, vp, kg, vg))
        m = kp.shape[0]
        shared = q[:, :, 0].reshape(m, n, self.heads, self.head_dim).transpose(1, 2)  # [m, H, n, D]
        op, lp = flash(shared, kp, vp, 0.0, False, attn_mask=pmask, scale=self.scale)
        og, lg = flash(q, kg, vg, 0.0, False, attn_mask=gmask, scale=self.scale)
        op = op.transpose(1, 2).reshape(m * n, self.heads, 1, self.head_dim)
        lp = lp.transpose(1, 2).reshape(m * n, self.heads, 1)
        top = torch.maximum(lp, lg)
        wp, wg = (lp - top).exp().unsqueeze(-1), (lg - top).exp().unsqueeze(-1)
        return (op * wp + og * wg) / (wp + wg)

    # -- sampling --------------------------------------------------------------------------------------

    @staticmethod
    def _sample(logits: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator) -> torch.Tensor:
        if sampling.temperature == 0:
            return logits.argmax(-1)
        probs = (logits / sampling.temperature).softmax(-1)
        # the nucleus: the likeliest tokens until their mass reaches top_p (as transformers' TopPLogitsWarper,
        # which drops the tokens whose ascending cumulative mass is <= 1 - top_p). A full sort of the
        # vocabulary is slow on CPU: look in the top-k first, and sort everything only when they fall short.
        if sampling.top_p == 1:
            top, order = probs, None
        else:
            top, order = probs.topk(min(probs.shape[1], 128), dim=-1)
            if top.shape[1] < probs.shape[1] and bool((top.sum(-1) < sampling.top_p).any()):
                top, order = probs.sort(-1, descending=True)
            before = top.cumsum(-1) - top  # mass of the likelier tokens
            top = top.masked_fill(before >= sampling.top_p, 0.0)  # the first token is always kept
        cdf = top.cumsum(-1)
        u = torch.rand(cdf.shape[0], 1, generator=generator) * cdf[:, -1:]
        pick = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[1] - 1)
        return pick[:, 0] if order is None else order.gather(1, pick)[:, 0]

    # -- the loop --------------------------------------------------------------------------------------

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[list[Completion]]:
        if isinstance(prompts, str):
            raise TypeError("generate takes a sequence of prompts, not a single string")
        if not prompts:
            return []
        encoded = self._encode(list(prompts), sampling)
        results = self._run(encoded, sampling)
        return [results[i : i + sampling.n] for i in range(0, len(results), sampling.n)]

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

    @torch.no_grad()
    def _run(self, encoded: list[list[int]], sampling: SamplingConfig) -> list[Completion]:
        n, limit = sampling.n, sampling.max_new_tokens
        # prompt slots ("units"), each with n sample slots: sample slot i belongs to unit i // n
        units = max(1, min(max(self.batch_size, self.MIN_SLOTS) // n, len(encoded)))
        slots = units * n
        prompt_cache = self._cache("prompt", units, max(len(p) for p in encoded))
        gen_cache = self._cache("generated", slots, limit)
        generator = torch.Generator().manual_seed(sampling.seed)
        stops = sampling.stop
        tail = max((len(s) for s in stops), default=1) - 1
        # shortest prompts first, so that neighbouring slots (and the prompts prefilled together) are alike
        waiting = deque(sorted(range(len(encoded)), key=lambda p: (len(encoded[p]), p)))
        rows: list[_Row | None] = [None] * slots
        prompt_len = torch.ones(
            units, dtype=torch.long
        )  # a free unit keeps one (stale) key: never all masked
        gen = torch.zeros(slots, dtype=torch.long)  # where each sample slot's next token goes
        next_tokens = torch.zeros(slots, dtype=torch.long)
        results: list[Completion | None] = [None] * (len(encoded) * n)
        refill_at = max(1, units // 8)

        def finish(slot: int, row: _Row, stopped: bool) -> None:
            text, cut = cut_at_stop(self.tokenizer.decode(row.tokens, skip_special_tokens=True), stops)
            results[row.index] = Completion(text=text, tokens=len(row.tokens), finished=stopped or cut)
            rows[slot] = None

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

        def unit_free(u: int) -> bool:
            return all(rows[s] is None for s in range(u * n, (u + 1) * n))

        while True:
            free = [u for u in range(units) if unit_free(u)]
            if len(free) == units and not waiting:
                break
            if waiting and (len(free) >= refill_at or len(free) == units):
                taken = [(u, waiting.popleft()) for u in free[: len(waiting)]]
                for chunk in self._prefill_chunks([len(encoded[p]) for _, p in taken]):
                    part = [taken[j] for j in chunk]
                    logits = self._prefill([encoded[p] for _, p in part], prompt_cache, [u for u, _ in part])
                    first = self._sample(logits.repeat_interleave(n, dim=0), sampling, generator).tolist()
                    for (u, p), tokens in zip(
                        part, (first[j : j + n] for j in range(0, len(first), n)), strict=True
                    ):
                        prompt_len[u] = len(encoded[p])
                        for j, token in enumerate(tokens):
                            slot = u * n + j
                            rows[slot] = _Row(p * n + j)
                            gen[slot] = 0
                            accept(slot, rows[slot], token)
                continue
            active = [s for s in range(slots) if rows[s] is not None]
            if (
                not waiting
                and len(units_left := [u for u in range(units) if u not in set(free)]) <= units // 2
            ):
                keep_units = torch.tensor(units_left)
                keep = torch.tensor([u * n + j for u in units_left for j in range(n)])
                prompt_cache = [(k[keep_units], v[keep_units]) for k, v in prompt_cache]
                gen_cache = [(k[keep], v[keep]) for k, v in gen_cache]
                rows = [rows[s] for s in keep.tolist()]
                prompt_len, gen, next_tokens = prompt_len[keep_units], gen[keep], next_tokens[keep]
                units, slots = len(units_left), len(units_left) * n
                active = [s for s in range(slots) if rows[s] is not None]
            logits = self._decode(next_tokens, prompt_len, gen, prompt_cache, gen_cache, n)
            sampled = self._sample(logits, sampling, generator).tolist()
            gen[active] += 1  # finished samples stay where they are
            for slot in active:
                accept(slot, rows[slot], sampled[slot])
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
