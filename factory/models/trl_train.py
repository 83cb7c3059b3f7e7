"""One fine-tuning through TRL, in a process of its own: ``python -m factory.models.trl_train SPEC.json``
(or ``accelerate launch -m factory.models.trl_train SPEC.json`` for several processes).

``factory.models.train`` writes the spec (a ``TrainSpec`` as JSON) and the rows (JSON lines: ``prompt`` and
``completion`` for SFT, ``prompt``, ``chosen`` and ``rejected`` for DPO), starts this module and reads
back the result file: ``{"steps": ..., "final_loss": ...}``, or ``{"error": "one line"}`` with exit
status 1. The checkpoint (merged weights when ``lora``, and the tokenizer) goes to ``spec.out_dir``;
only the main process writes. Running apart means a failed or killed training cannot take the
caller down with it, and whatever the caller's generation engine held is not shared with training.
One CPU process trains in the caller instead (``outcome``), after its generation engine is closed:
a child would pay ~7 s of imports (transformers' Trainer, TRL) for every training.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

SFT = "sft"
DPO = "dpo"
GRPO = "grpo"
PROGRESS = "factory-train: "  # the lines of stderr the caller shows as progress
LOG_EVERY = 25


@dataclass(frozen=True)
class TrainSpec:
    objective: str  # SFT, DPO or GRPO
    base_model: str
    data: str  # JSON lines of rows
    out_dir: str
    result: str  # where the result JSON goes
    steps: int  # optimizer steps; the learning-rate schedule spans them
    batch_size: int  # rows per optimizer step, over all processes
    learning_rate: float
    max_length: int = 1024
    lora: bool = False
    seed: int = 0
    max_seconds: float | None = None
    threads: int | None = None  # torch CPU threads per process
    ref_model: str | None = None  # DPO's reference model (default: the base model)
    beta: float = 0.1  # DPO's KL strength
    processes: int = 1
    # named sets of (prompt, completion) rows whose mean completion loss under the starting model is
    # measured before training (``probe_loss`` of the result)
    probes: dict | None = None
    # the names of probes measured again after training, under the trained model (``probe_loss_after``)
    probes_after: list | None = None
    grpo: dict | None = None  # GRPO's settings (``factory.models.grpo_train.GrpoSettings`` as JSON)

    def to_json(self) -> dict:
        return asdict(self)


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _rows(path: str):
    from datasets import Dataset

    with open(path, encoding="utf-8") as lines:
        return Dataset.from_list([json.loads(line) for line in lines])


def _common_args(spec: TrainSpec, world_size: int) -> dict:
    return {
        "output_dir": str(Path(spec.out_dir).parent / "trainer"),
        "max_steps": spec.steps,
        "per_device_train_batch_size": max(1, -(-spec.batch_size // world_size)),
        "gradient_accumulation_steps": 1,
        "learning_rate": spec.learning_rate,
        # the schedule of the project's own loop: warmup over 5% of the steps, cosine to 10% of the peak
        "lr_scheduler_type": "cosine_with_min_lr",
        "lr_scheduler_kwargs": {"min_lr_rate": 0.1},
        "warmup_steps": max(1, spec.steps // 20),
        "optim": "adamw_torch",
        "adam_beta2": 0.95,
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "seed": spec.seed,
        "data_seed": spec.seed,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "gradient_checkpointing": False,
        "bf16": False,
        "use_cpu": not _cuda(),
        "max_length": spec.max_length,
        "dataloader_num_workers": 0,
    }


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _load(path: str):
    import torch

    from factory.models.transformers_backend import load_pretrained

    try:
        return load_pretrained(path, torch.float32)
    except Exception as e:  # noqa: BLE001 - any failure to load a user's checkpoint is one line
        from factory.errors import ModelError

        if isinstance(e, ModelError):
            raise
        raise ModelError(f"cannot load {path} for fine-tuning: {first_line(e)}") from e


def _with_lora(model):
    from factory.errors import ModelError
    from factory.models.torch_setup import lora_targets

    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ModelError("fine-tuning LoRA adapters needs the peft package: pip install peft") from None
    try:
        targets = lora_targets(model)
    except ValueError as e:
        raise ModelError(str(e)) from None
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets,
                        fan_in_fan_out=targets == ["c_attn"])
    return get_peft_model(model, config)


def mean_completion_loss(model, tokenizer, rows, max_length: int) -> float | None:
    """Mean per-token loss of ``model`` on the completions (+ EOS) of ``rows`` after their prompts."""
    import torch

    total, count = 0.0, 0
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    model.eval()
    with torch.no_grad():
        for row in rows:
            prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"] if row["prompt"] else []
            completion = tokenizer(row["completion"], add_special_tokens=False)["input_ids"] + eos
            ids = (prompt + completion)[:max_length]
            labels = ([-100] * len(prompt) + completion)[:max_length]
            n = sum(1 for t in labels[1:] if t != -100)
            if n == 0:
                continue
            device = next(model.parameters()).device
            out = model(input_ids=torch.tensor([ids], device=device), labels=torch.tensor([labels], device=device))
            total += out.loss.item() * n
            count += n
    model.train()
    return total / count if count else None


def _print_progress(line: str) -> None:
    print(f"{PROGRESS}{line}", file=sys.stderr, flush=True)


def train(spec: TrainSpec, progress: Callable[[str], None] = _print_progress) -> dict:
    """Run the spec's training and save its checkpoint; returns steps done and the final loss."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from factory.models.torch_setup import deterministic

    class TimeBudget(TrainerCallback):
        """Stops once ``max_seconds`` have passed; says how far it is every ``LOG_EVERY`` steps."""

        def __init__(self) -> None:
            self.start = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            if spec.max_seconds is not None and time.monotonic() - self.start > spec.max_seconds:
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            step = state.global_step
            if logs and "loss" in logs and (step % LOG_EVERY == 0 or step == spec.steps) and state.is_world_process_zero:
                progress(f"step {step}/{spec.steps} loss {logs['loss']:.3f} {time.monotonic() - self.start:.0f}s")

    with deterministic(spec.seed, spec.threads), ExitStack() as resources:
        from accelerate import PartialState

        model, tokenizer = _load(spec.base_model)
        model.to(PartialState().device)
        probe_loss = {
            name: mean_completion_loss(model, tokenizer, rows, spec.max_length) for name, rows in (spec.probes or {}).items()
        }
        if spec.lora:
            model = _with_lora(model)
        dataset = _rows(spec.data)
        world = PartialState().num_processes
        common = _common_args(spec, world)
        if spec.objective == SFT:
            # batches of similar lengths, as the project's own loop made them: far less padding
            args = SFTConfig(**common, completion_only_loss=True, packing=False, dataset_num_proc=None,
                             train_sampling_strategy="group_by_length")
            trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                 callbacks=[TimeBudget()])
        elif spec.objective == DPO:
            ref = None
            if spec.ref_model is not None and not spec.lora:  # with LoRA the base without adapters is the reference
                ref, _ = _load(spec.ref_model)
            elif not spec.lora:
                ref, _ = _load(spec.base_model)
            args = DPOConfig(**common, beta=spec.beta, precompute_ref_log_probs=False)
            trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=dataset,
                                 processing_class=tokenizer, callbacks=[TimeBudget()])
        elif spec.objective == GRPO:
            from factory.models.grpo_trainer import GrpoSettings, grpo_trainer

            settings = GrpoSettings(**(spec.grpo or {}))
            trainer = grpo_trainer(settings, spec.seed, spec.lora, model, tokenizer, dataset, common, [TimeBudget()],
                                   resources)
        else:
            raise ValueError(f"unknown objective {spec.objective!r}")
        # with tqdm off the Trainer prints every log dict to stdout: in this process that is the command's own
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        final_loss = sum(losses[-10:]) / max(1, len(losses[-10:]))
        probe_loss_after = {}
        if trainer.accelerator.is_main_process:
            model = trainer.accelerator.unwrap_model(trainer.model)
            if spec.lora:
                model = model.merge_and_unload()
            probe_loss_after = {
                name: mean_completion_loss(model, tokenizer, spec.probes[name], spec.max_length)
                for name in spec.probes_after or () if name in (spec.probes or {})
            }
            model.save_pretrained(spec.out_dir)
            tokenizer.save_pretrained(spec.out_dir)
        trainer.accelerator.wait_for_everyone()
        result = {"steps": trainer.state.global_step, "final_loss": final_loss, "probe_loss": probe_loss,
                  "probe_loss_after": probe_loss_after}
        if spec.objective == GRPO:
            from factory.models.grpo_trainer import grpo_facts

            result["grpo"] = grpo_facts(trainer)
        return result


def outcome(spec: TrainSpec, progress: Callable[[str], None] = _print_progress) -> dict:
    """``train``'s result, or ``{"error": "one line"}`` when the training failed."""
    import torch

    from factory.errors import ModelError

    try:
        return train(spec, progress)
    except (torch.OutOfMemoryError, MemoryError) as e:
        return {"error": f"fine-tuning {spec.base_model} ran out of memory ({first_line(e)}): train with lora, "
                         "or a smaller model"}
    except ModelError as e:
        return {"error": str(e)}
    except Exception as e:  # noqa: BLE001 - the caller raises it as one line
        return {"error": f"fine-tuning {spec.base_model} failed: {first_line(e)}"}


def main(argv: list[str] | None = None) -> int:
    spec = TrainSpec(**json.loads(Path((argv or sys.argv[1:])[0]).read_text()))
    result = outcome(spec)
    from accelerate import PartialState

    if PartialState().is_main_process:
        Path(spec.result).write_text(json.dumps(result))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
