"""Local generation with Hugging Face transformers: batched, left-padded, stop strings, seeded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from factory.errors import ModelError
from factory.models.base import Completion, SamplingConfig, cut_at_stop


class StopOnStrings:
    """A transformers stopping criterion: row ``i`` is done once its generated text (the part after the
    prompt) contains a stop string, or it emitted EOS. Records how many tokens each row generated until
    then. ``generate`` stops when every row is done."""

    def __init__(self, tokenizer, prompt_length: int, stop: Sequence[str], eos_token_id: int | None):
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.stop = tuple(stop)
        self.eos_token_id = eos_token_id
        self.done_at: dict[int, int] = {}  # row -> generated tokens when it finished

    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_length
        for row in range(input_ids.shape[0]):
            if row in self.done_at:
                continue
            new = input_ids[row, self.prompt_length :]
            if self.eos_token_id is not None and int(new[-1]) == self.eos_token_id:
                self.done_at[row] = generated
            elif (
                self.stop and cut_at_stop(self.tokenizer.decode(new, skip_special_tokens=True), self.stop)[1]
            ):
                self.done_at[row] = generated
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        done[list(self.done_at)] = True
        return done


class TransformersBackend:
    """``AutoModelForCausalLM`` on cuda if available, else cpu. ``model``: checkpoint dir or Hub id.

    ``batch_size``: sequences (prompts x n) per forward batch. Generation is seeded with
    ``sampling.seed`` (plus the batch index) for reproducible samples on a given machine.
    """

    def __init__(
        self, model: str | Path, *, batch_size: int = 16, device: str | None = None, dtype: str | None = None
    ):
        self.name = str(model)
        self.batch_size = batch_size
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is None:
            dtype = "bfloat16" if self.device.type == "cuda" else "float32"
        self.model, self.tokenizer = load_pretrained(model, getattr(torch, dtype))
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        self.max_positions = getattr(self.model.config, "max_position_embeddings", None)

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[list[Completion]]:
        if isinstance(prompts, str):
            raise TypeError("generate takes a sequence of prompts, not a single string")
        rows = [p for p in prompts for _ in range(sampling.n)]  # n samples per prompt, prompt order kept
        flat: list[Completion] = []
        for index, start in enumerate(range(0, len(rows), self.batch_size)):
            torch.manual_seed(sampling.seed + index)
            flat += self._generate_batch(rows[start : start + self.batch_size], sampling)
        return [flat[i : i + sampling.n] for i in range(0, len(flat), sampling.n)]

    @torch.no_grad()
    def _generate_batch(self, prompts: list[str], sampling: SamplingConfig) -> list[Completion]:
        from transformers import GenerationConfig, StoppingCriteriaList

        # Keep the end of a prompt that would not leave room for the completion: the end holds the
        # puzzle being asked about; the examples before it are what can be lost.
        room = self.max_positions - sampling.max_new_tokens if self.max_positions else None
        if room is not None and room < 1:
            raise ModelError(
                f"max_new_tokens {sampling.max_new_tokens} leaves no room for a prompt in {self.max_positions} positions"
            )
        self.tokenizer.truncation_side = "left"
        inputs = self.tokenizer(
            prompts, return_tensors="pt", padding=True, truncation=room is not None, max_length=room
        ).to(self.device)
        prompt_length = inputs["input_ids"].shape[1]
        eos = self.tokenizer.eos_token_id
        criterion = StopOnStrings(self.tokenizer, prompt_length, sampling.stop, eos)
        greedy = sampling.temperature == 0
        config = GenerationConfig(
            max_new_tokens=sampling.max_new_tokens,
            do_sample=not greedy,
            temperature=None if greedy else sampling.temperature,
            top_p=None if greedy else sampling.top_p,
            top_k=None if greedy else 0,  # 0: no top-k (None would take transformers' default of 50)
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=eos,
            bos_token_id=self.tokenizer.bos_token_id,
        )
        output = self.model.generate(
            **inputs, generation_config=config, stopping_criteria=StoppingCriteriaList([criterion])
        )
        completions = []
        for row in range(len(prompts)):
            tokens = criterion.done_at.get(row, sampling.max_new_tokens)
            new = output[row, prompt_length : prompt_length + tokens]
            text, stopped = cut_at_stop(self.tokenizer.decode(new, skip_special_tokens=True), sampling.stop)
            finished = stopped or row in criterion.done_at
            completions.append(Completion(text=text, tokens=tokens, finished=finished))
        return completions

    def close(self) -> None:
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def load_pretrained(model: str | Path, dtype: torch.dtype = torch.float32):
    """(model, tokenizer) from a checkpoint directory or a Hub id; the pad token falls back to EOS.

    Raises ModelError when the directory does not exist or the model cannot be loaded (no download offline).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(model).exists()
    if not local and (str(model).startswith((".", "/", "~")) or str(model).count("/") > 1):
        raise ModelError(
            f"model directory {model} does not exist; build or download a checkpoint there first"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model), local_files_only=local)
        loaded = AutoModelForCausalLM.from_pretrained(str(model), local_files_only=local, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load model {model}: {str(exc).strip().splitlines()[0]} "
            "(give a checkpoint directory, or a Hub id on a machine that can download it)"
        ) from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return loaded, tokenizer
