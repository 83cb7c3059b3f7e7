"""Model backends: the transformers backend on a tiny model built here, load_backend, the vLLM adapter."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from factory.models import Completion, ModelBackend, ModelError, SamplingConfig, load_backend
from factory.models.base import cut_at_stop
from factory.models.transformers_backend import TransformersBackend
from factory.models.vllm_backend import completions_from_outputs

PROMPTS = [
    "from typing import List\n\ndef f1(s: str, n=5):\n    return len(s) == n\n\ndef g1(n=5):\n    return 'a' * n\n\nassert f1(g1())\n\ndef f2(",
    "def f1(x: int, a=3, b=7):\n    return x + a == b\n\ndef g1(",
    "def f3(",
]
GREEDY = SamplingConfig(temperature=0, max_new_tokens=24)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def tiny_model(synthetic_tiny_model):
    return synthetic_tiny_model


@pytest.fixture(scope="module")
def backend(tiny_model):
    backend = TransformersBackend(tiny_model, batch_size=4)
    yield backend
    backend.close()


def test_backend_satisfies_the_protocol(backend, tiny_model):
    assert isinstance(backend, ModelBackend)
    assert backend.name == str(tiny_model)


def test_n_completions_per_prompt_in_prompt_order(backend):
    out = backend.generate(PROMPTS, SamplingConfig(n=3, max_new_tokens=12, seed=1))
    assert len(out) == len(PROMPTS)
    assert all(len(row) == 3 and all(isinstance(c, Completion) for c in row) for row in out)
    # each prompt's row is that prompt's own greedy answer, whatever its position in the batch
    greedy = backend.generate(PROMPTS, SamplingConfig(n=2, temperature=0, max_new_tokens=12))
    for prompt, row in zip(PROMPTS, greedy, strict=True):
        alone = backend.generate([prompt], SamplingConfig(temperature=0, max_new_tokens=12))[0][0]
        assert row == [alone, alone]


def test_left_padding_batched_equals_one_at_a_time(backend):
    batched = [row[0] for row in backend.generate(PROMPTS, GREEDY)]
    single = [backend.generate([p], GREEDY)[0][0] for p in PROMPTS]
    assert batched == single
    assert len({len(p) for p in PROMPTS}) == len(PROMPTS)  # the prompts really differ in length
    assert any(c.text.strip() for c in batched)


def test_cut_before_first_stop_string(backend):
    raw = backend.generate(PROMPTS[:1], SamplingConfig(temperature=0, max_new_tokens=40))[0][0].text
    assert len(raw) > 12
    stop = raw[8:11]  # something the model really generates
    expected = raw[: raw.find(stop)]
    done = backend.generate(
        PROMPTS[:1], SamplingConfig(temperature=0, max_new_tokens=40, stop=("@@never@@", stop))
    )
    completion = done[0][0]
    assert completion.text == expected
    assert completion.finished
    assert 0 < completion.tokens < 40  # stopped early: fewer tokens than the budget


def test_no_stop_string_in_any_sampled_completion(backend):
    stop = ("\ndef ", "\nassert", "\n\n")
    out = backend.generate(PROMPTS, SamplingConfig(n=4, max_new_tokens=40, stop=stop, seed=3))
    for row in out:
        for c in row:
            assert not any(s in c.text for s in stop)


def test_max_new_tokens_cut_is_not_finished(backend):
    c = backend.generate(PROMPTS[:1], SamplingConfig(temperature=0, max_new_tokens=3))[0][0]
    assert c.tokens == 3 and c.finished is False


def test_sampling_is_deterministic_for_a_seed(backend):
    sampling = SamplingConfig(n=2, max_new_tokens=16, temperature=1.0, seed=7)
    first = backend.generate(PROMPTS, sampling)
    assert backend.generate(PROMPTS, sampling) == first
    others = [
        backend.generate(PROMPTS, SamplingConfig(n=2, max_new_tokens=16, temperature=1.0, seed=s))
        for s in (8, 9)
    ]
    assert any(o != first for o in others)


def test_batch_size_one_still_works(tiny_model):
    backend = TransformersBackend(tiny_model, batch_size=1)
    out = backend.generate(PROMPTS[:2], SamplingConfig(n=2, temperature=0, max_new_tokens=8))
    assert [len(r) for r in out] == [2, 2]


def test_empty_prompt_list(backend):
    assert backend.generate([], GREEDY) == []


def test_single_string_is_rejected(backend):
    with pytest.raises(TypeError):
        backend.generate("def f(", GREEDY)


def test_missing_model_directory_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_backend("transformers", str(tmp_path / "no-such-model"))


def test_directory_without_a_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="cannot load model"):
        load_backend("transformers", str(tmp_path))


def test_unknown_backend_kind():
    with pytest.raises(ModelError, match="choose one of"):
        load_backend("llamacpp", "x")


def test_openai_backend_needs_a_model_name():
    with pytest.raises(ModelError, match="model name"):
        load_backend("openai", None)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_missing_is_a_clear_model_error():
    with pytest.raises(ModelError, match=r"pip install 'selfplay-factory\[vllm\]' on a CUDA machine"):
        load_backend("vllm", "some/model")


def test_vllm_output_mapping_unit():
    """Unit test of the RequestOutput -> Completion mapping, with stand-in objects (no vLLM here)."""

    def out(text, reason, n_tokens):
        return SimpleNamespace(text=text, finish_reason=reason, token_ids=list(range(n_tokens)))

    outputs = [
        SimpleNamespace(outputs=[out("x + 1\n", "stop", 4), out("x + 2", "length", 8)]),
        SimpleNamespace(outputs=[out("y", "length", 16)]),
    ]
    mapped = completions_from_outputs(outputs, stop=("\ndef ",))
    assert mapped == [
        [Completion("x + 1\n", 4, True), Completion("x + 2", 8, False)],
        [Completion("y", 16, False)],
    ]
    assert completions_from_outputs(
        [SimpleNamespace(outputs=[out("a\ndef b", "length", 5)])], ("\ndef ",)
    ) == [[Completion("a", 5, True)]]


def test_cut_at_stop_picks_the_earliest_stop():
    assert cut_at_stop("abc\n#x\ndef y", ("\ndef ", "\n#")) == ("abc", True)
    assert cut_at_stop("abc", ("\ndef ",)) == ("abc", False)
    assert cut_at_stop("abc", ()) == ("abc", False)


def test_sampling_config_validates():
    with pytest.raises(ValueError):
        SamplingConfig(n=0)
    with pytest.raises(TypeError):
        SamplingConfig(stop="\ndef ")
    assert SamplingConfig(stop=["\n#"]).stop == ("\n#",)
