"""The fast CPU backend against the transformers backend on the same tiny model: greedy completions,
sampled token distributions, stop strings, max_new_tokens, seeding, n > 1, continuous batching."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
import torch

from factory.models import ModelBackend, SamplingConfig, load_backend
from factory.models.embedded import BuildConfig, llama_config
from factory.models.fast_cpu import FastCPUBackend, supports
from factory.models.transformers_backend import TransformersBackend

PROMPTS = [
    "from typing import List\n\ndef f1(s: str, n=5):\n    return len(s) == n\n\ndef g1(n=5):\n    return 'a' * n\n\nassert f1(g1())\n\ndef f2(",
    "def f1(x: int, a=3, b=7):\n    return x + a == b\n\ndef g1(",
    "def f3(",
    "def f1(li: List[int]):\n    return sorted(li) == li\n\ndef g1():\n",
]
STOP = ("\ndef ", "\nassert", "\n#")


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def slow(synthetic_tiny_model):
    backend = TransformersBackend(synthetic_tiny_model, batch_size=4, device="cpu")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def fast(synthetic_tiny_model):
    backend = FastCPUBackend(synthetic_tiny_model)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def few_slots(synthetic_tiny_model):
    """Two slots for many sequences: every slot is refilled many times (continuous batching)."""
    backend = FastCPUBackend(synthetic_tiny_model, batch_size=2)
    backend.MIN_SLOTS = 1
    yield backend
    backend.close()


def test_satisfies_the_protocol_and_load_backend_picks_it(fast, synthetic_tiny_model):
    assert isinstance(fast, ModelBackend)
    assert fast.name == str(synthetic_tiny_model)
    assert supports(synthetic_tiny_model, device="cpu")
    assert not supports(synthetic_tiny_model, device="cpu", dtype="bfloat16")
    assert isinstance(load_backend("transformers", synthetic_tiny_model, device="cpu"), FastCPUBackend)
    forced = load_backend("transformers", synthetic_tiny_model, device="cpu", fast=False)
    assert type(forced) is TransformersBackend


@pytest.mark.parametrize("stop", [(), STOP, ("((((", "\n\n\n", "\n    ")])
def test_greedy_completions_equal_the_transformers_backend(slow, fast, few_slots, stop):
    greedy = SamplingConfig(temperature=0, max_new_tokens=40, stop=stop, n=2)
    expected = slow.generate(PROMPTS, greedy)
    assert fast.generate(PROMPTS, greedy) == expected
    assert few_slots.generate(PROMPTS, greedy) == expected
    assert all(row[0] == row[1] for row in expected)
    if "((((" in stop:
        assert any(c.finished for row in expected for c in row)  # some stop strings really fired


def test_greedy_with_prompts_cut_from_the_left(slow, fast):
    """max_new_tokens close to the context: the prompt keeps only its end, as in the transformers backend."""
    room = fast.max_positions - 16
    sampling = SamplingConfig(temperature=0, max_new_tokens=room, stop=STOP)
    long_prompt = PROMPTS[0] * 4
    assert len(fast.tokenizer(long_prompt)["input_ids"]) > 16
    assert fast.generate([long_prompt, PROMPTS[2]], sampling) == slow.generate(
        [long_prompt, PROMPTS[2]], sampling
    )


def _nucleus(model, tokenizer, prompt: str, temperature: float, top_p: float) -> dict[str, float]:
    """The exact next-token distribution after ``prompt`` under temperature and top-p, by token text."""
    with torch.no_grad():
        logits = model(**tokenizer(prompt, return_tensors="pt")).logits[0, -1] / temperature
    probs = logits.softmax(-1)
    order = probs.argsort(descending=True)
    kept, mass = [], 0.0
    for token in order.tolist():
        kept.append(token)
        mass += float(probs[token])
        if mass >= top_p:
            break
    total = sum(float(probs[t]) for t in kept)
    by_text: Counter = Counter()
    for t in kept:
        by_text[tokenizer.decode([t], skip_special_tokens=True)] += float(probs[t]) / total
    return dict(by_text)


def _first_tokens(backend, prompt: str, sampling: SamplingConfig) -> Counter:
    return Counter(c.text for c in backend.generate([prompt], sampling)[0])


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_sampled_first_tokens_follow_the_models_distribution(slow, fast, temperature, top_p):
    """Many seeded one-token samples of both backends against the exact (tempered, nucleus) distribution:
    total variation distance under a loose bound, and nothing outside the nucleus."""
    prompt = PROMPTS[1]
    samples = 2000
    sampling = SamplingConfig(n=samples, max_new_tokens=1, temperature=temperature, top_p=top_p, seed=5)
    exact = _nucleus(fast.model, fast.tokenizer, prompt, temperature, top_p)
    assert len(exact) > 3  # a real distribution, not one likely token
    buckets = sorted(exact, key=exact.get, reverse=True)[:10]  # the 10 likeliest texts, then the rest
    for backend in (slow, fast):
        counts = _first_tokens(backend, prompt, sampling)
        assert set(counts) <= set(exact), "a token outside the nucleus was sampled"
        seen = [counts.get(t, 0) / samples for t in buckets]
        truth = [exact[t] for t in buckets]
        seen.append(1 - sum(seen))
        truth.append(1 - sum(truth))
        distance = 0.5 * sum(abs(a - b) for a, b in zip(seen, truth, strict=True))
        assert distance < 0.08, (type(backend).__name__, distance)


def test_sampled_completion_lengths_match(slow, fast):
    """Whole sampled sequences: how many tokens pass before a stop string ("\n", which this model often
    writes) follows the same distribution in both backends (a loose bound on the total variation)."""
    sampling = SamplingConfig(n=400, max_new_tokens=12, temperature=0.8, top_p=0.95, stop=("\n",), seed=2)
    a = Counter(c.tokens for c in slow.generate([PROMPTS[1]], sampling)[0])
    b = Counter(c.tokens for c in fast.generate([PROMPTS[1]], sampling)[0])
    assert len(a) > 3 and len(b) > 3  # lengths really vary
    distance = 0.5 * sum(abs(a[t] - b[t]) / 400 for t in set(a) | set(b))
    assert distance < 0.2, (sorted(a.items()), sorted(b.items()))


def test_same_seed_same_samples_other_seed_others(fast, few_slots):
    sampling = SamplingConfig(n=3, max_new_tokens=24, temperature=0.8, stop=STOP, seed=7)
    first = fast.generate(PROMPTS, sampling)
    assert fast.generate(PROMPTS, sampling) == first
    assert fast.generate(PROMPTS, SamplingConfig(**{**sampling.__dict__, "seed": 8})) != first
    assert few_slots.generate(PROMPTS, sampling) == few_slots.generate(PROMPTS, sampling)
    assert len(first) == len(PROMPTS) and all(len(row) == 3 for row in first)
    assert any(len({c.text for c in row}) > 1 for row in first)  # n samples differ


def test_stop_strings_cut_before_the_first_and_max_new_tokens_marks_unfinished(fast):
    """One sequence per call, so a stop changes nothing before it: the same seed draws the same tokens
    with and without the stop string; the stopped text is the free text cut before the stop's first
    occurrence, after the fewest tokens that contain it."""
    checked = 0
    for seed in range(8):
        free = SamplingConfig(temperature=1.0, max_new_tokens=30, seed=seed)
        (c,) = fast.generate([PROMPTS[seed % len(PROMPTS)]], free)[0]
        if c.finished:  # the model wrote EOS before max_new_tokens
            assert c.tokens < 30
            continue
        assert c.tokens == 30
        stop = c.text[8:11]  # a stop string that occurs after the start of the free text
        if len(stop) < 3:
            continue
        cut = SamplingConfig(temperature=1.0, max_new_tokens=30, seed=seed, stop=("no such stop", stop))
        (stopped,) = fast.generate([PROMPTS[seed % len(PROMPTS)]], cut)[0]
        assert stopped.finished
        assert stopped.text == c.text[: c.text.find(stop)]
        assert stopped.tokens < 30
        shorter = fast.generate(
            [PROMPTS[seed % len(PROMPTS)]],
            SamplingConfig(**{**free.__dict__, "max_new_tokens": stopped.tokens}),
        )
        assert stop in shorter[0][0].text
        if stopped.tokens > 1:
            shorter = fast.generate(
                [PROMPTS[seed % len(PROMPTS)]],
                SamplingConfig(**{**free.__dict__, "max_new_tokens": stopped.tokens - 1}),
            )
            assert stop not in shorter[0][0].text
        checked += 1
    assert checked >= 3


def test_empty_prompt_list_and_single_string(fast):
    assert fast.generate([], SamplingConfig()) == []
    with pytest.raises(TypeError):
        fast.generate("def f(", SamplingConfig())


def test_more_samples_than_slots_and_odd_counts(slow, few_slots):
    """n larger than the batch, prompts refilled one at a time: greedy still equals the transformers backend."""
    greedy = SamplingConfig(temperature=0, max_new_tokens=10, n=3, stop=("((((",))
    assert few_slots.generate(PROMPTS[:3], greedy) == slow.generate(PROMPTS[:3], greedy)


def test_grouped_query_attention_model(synthetic_tiny_model, tmp_path):
    """A Llama model with fewer key/value heads than heads (random weights, the tiny model's tokenizer)."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(synthetic_tiny_model)
    shape = replace(BuildConfig.tiny(), hidden_size=64, intermediate_size=96, num_heads=4, context_length=256)
    config = llama_config(shape, tokenizer, kv_heads=2)
    config.tie_word_embeddings = False  # an output head of its own, as most Hub models have
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    greedy = SamplingConfig(temperature=0, max_new_tokens=12, n=2)
    fast = load_backend("transformers", str(tmp_path), device="cpu")
    assert isinstance(fast, FastCPUBackend)
    expected = TransformersBackend(tmp_path, device="cpu").generate(PROMPTS, greedy)
    assert fast.generate(PROMPTS, greedy) == expected


def test_decode_steps_match_a_full_forward_with_idle_units_and_finished_samples(fast):
    """The cache layout by hand: three units, the middle one idle (skipped), samples fed different tokens,
    one sample of the first unit finished after a step (its lane still written, never seen by the other).
    Each live sample's logits equal the model's own on its whole sequence."""
    n, tokenizer = 2, fast.tokenizer
    prompts = [tokenizer(p)["input_ids"] for p in (PROMPTS[1], PROMPTS[2], PROMPTS[3])]
    with torch.inference_mode():
        fast._rope_table(1024)
        cache = fast._cache("kv", 3, max(len(p) for p in prompts) + n * 8)
        fast._prefill(prompts, cache, [0, 1, 2])
        lengths, steps = [len(p) for p in prompts], [0, 0, 0]
        fed = {s: [] for s in range(6)}
        busy = [0, 2]
        for step in range(4):
            tokens = [5 + 3 * s + step for s in range(6)]
            hidden, slots = fast._decode(busy, tokens, lengths, steps, cache, n)
            logits = fast._logits(hidden)
            for u in busy:
                steps[u] += 1
            for i, s in enumerate(slots):
                fed[s].append(tokens[s])
                if s == 1 and step > 0:
                    continue  # finished after its first step
                sequence = torch.tensor([prompts[s // n] + fed[s]])
                expected = fast.model(sequence).logits[0, -1]
                assert torch.allclose(logits[i], expected, atol=1e-4), (step, s)


@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.95, 0.999])
def test_candidates_hold_exactly_the_full_sorts_nucleus(top_p):
    """The top-k shortcut keeps the same tokens with the same mass as sorting the whole vocabulary, on
    peaked rows (covered by the first width), flat rows (a full sort) and rows in between."""
    torch.manual_seed(0)
    logits = torch.randn(12, 2048) * torch.tensor([0.5, 1, 2, 4, 8, 16] * 2)[:, None]
    probs = logits.softmax(-1)
    top, order = FastCPUBackend._candidates(probs, top_p)
    full, full_order = probs.sort(-1, descending=True)
    for kept_probs, kept_order in ((top, order), (full, full_order)):
        before = kept_probs.cumsum(-1) - kept_probs
        kept_probs.masked_fill_(before >= top_p, 0.0)
        kept_order.masked_fill_(kept_probs == 0, -1)  # outside the nucleus (or padding)
    for r in range(12):
        a = {t: p for t, p in zip(order[r].tolist(), top[r].tolist(), strict=True) if t >= 0}
        b = {t: p for t, p in zip(full_order[r].tolist(), full[r].tolist(), strict=True) if t >= 0}
        assert a.keys() == b.keys()
        assert all(abs(a[t] - b[t]) < 1e-9 for t in a)


def test_a_draw_rounded_up_to_the_whole_mass_picks_a_kept_token(monkeypatch):
    """``u = rand * mass`` can round up to the mass; the pick is then the last kept token, never a
    zero-probability one past the nucleus (nor a padding id)."""
    logits = torch.tensor([[4.0, 3.0, 2.0] + [-30.0] * 61])
    monkeypatch.setattr(torch, "rand", lambda *shape, generator=None: torch.ones(*shape))
    for top_p, expected in ((0.5, 0), (0.99, 2)):
        sampling = SamplingConfig(temperature=1.0, top_p=top_p)
        assert FastCPUBackend._sample(logits, sampling, torch.Generator()).tolist() == [expected]


def test_many_samples_are_split_over_prompt_slots_in_order(slow, fast):
    """n above MAX_LANES: each prompt takes several prompt slots; results keep prompt order (greedy: all
    n samples of a prompt are the transformers backend's completion of that prompt)."""
    n = 2 * FastCPUBackend.MAX_LANES
    greedy = SamplingConfig(temperature=0, max_new_tokens=12, n=n, stop=STOP)
    expected = slow.generate(PROMPTS, replace(greedy, n=1))
    got = fast.generate(PROMPTS, greedy)
    assert [len(row) for row in got] == [n] * len(PROMPTS)
    assert [row[0] for row in expected] == [row[0] for row in got]
    assert all(len(set(row)) == 1 for row in got)
    sampled = fast.generate(PROMPTS[:2], replace(greedy, temperature=0.8, seed=3))
    assert sampled == fast.generate(PROMPTS[:2], replace(greedy, temperature=0.8, seed=3))
