"""A cold start: fine-tune the policy on correct completions before RL (the recipe's ``sft`` section).

The completions are the env's gold ones (``sft.source: gold``) or the model's own samples that its
correctness reward scores 1.0 (``rejection``). Each becomes token ids and a loss mask built the way the RL
rollout builds them: the prompt as ``encode_prompt`` writes it, then the assistant turns (each with its
end-of-turn token, in the loss) and, for tool envs, the env's replies between them (out of the loss). TRL's
``SFTTrainer`` trains on those rows; its own ``assistant_only_loss`` needs ``{% generation %}`` markers in the
chat template, which SmolLM2's and most small models' templates lack, so the mask is built here.

The stage trains the policy object the RL stage then continues from, saves the adapter to
``RUN_DIR/checkpoints/sft/adapter``, and writes checkpoint step 0, so ``--resume`` never runs it again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rlhub.errors import ConfigError, RLHubError
from rlhub.generation.rollout import reply_tokens, rollout
from rlhub.types import Message

if TYPE_CHECKING:
    from rlhub.trainers.loop import Run

log = logging.getLogger(__name__)


def transcript_tokens(tokenizer, prompt_ids: list[int], prompt: list[Message], transcript) -> tuple[list, list]:
    """Token ids of a prompt and its completion, and the loss mask (1 on the assistant's tokens only).

    Args:
        tokenizer: The policy's tokenizer (its chat template writes the turns).
        prompt_ids: The prompt's ids, as the rollout encodes them (``Run.encode``).
        prompt: The prompt's chat messages.
        transcript: A completion string, or assistant and tool messages (a multi-turn gold transcript).

    Returns:
        ``(input_ids, mask)`` of equal length.
    """
    messages = [{"role": "assistant", "content": transcript}] if isinstance(transcript, str) else transcript
    ids, mask, history = list(prompt_ids), [0] * len(prompt_ids), list(prompt)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        head = tokenizer.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template([*history, message], tokenize=False).rstrip()
        if not full.startswith(head):
            raise RLHubError(
                "the chat template writes an assistant turn differently from the generation prompt it samples after; "
                "use sft.source=rejection (the model's own tokens) or a template that appends turns"
            )
        turn = tokenizer.encode(full[len(head) :], add_special_tokens=False)  # the text and its end-of-turn token
        history.append(message)
        replies = []
        for reply in messages[i + 1 :]:
            if reply["role"] == "assistant":
                break
            replies.append(reply)
        glue = reply_tokens(tokenizer, history, replies) if replies else []
        history += replies
        ids += turn + glue
        mask += [1] * len(turn) + [0] * len(glue)
    return ids, mask


def gold_rows(run: Run, examples: list) -> list[dict]:
    """One training row per example from the env's gold completion."""
    rows = []
    for example in examples:
        try:
            gold = run.env.gold_completion(example)
        except NotImplementedError:
            raise ConfigError(f"{run.recipe.env.id} has no gold completions; set sft.source=rejection") from None
        ids, mask = transcript_tokens(run.tokenizer, run.encode(example), example.prompt, gold)
        rows.append({"input_ids": ids, "assistant_masks": mask})
    return rows


def rejection_rows(run: Run, examples: list) -> list[dict]:
    """The policy's own samples (``sft.samples`` per example, the recipe's sampling settings) that its first
    reward function, the correctness check, scores 1.0; their sampled tokens are kept as they are."""
    k = run.recipe.sft.samples
    prompt_ids = [run.encode(ex) for ex in examples]
    samples = rollout(run.engine, run.env, examples, prompt_ids, k, run.sampling)
    scores = run.env.score_batch([s.output for s in samples], [examples[s.prompt_index] for s in samples])
    first = run.env.rubric.names[0]
    rows = []
    for sample, score in zip(samples, scores):
        if (score.rewards.get(first) or 0.0) >= 1.0:
            prompt = prompt_ids[sample.prompt_index]
            mask = [0] * len(prompt) + sample.loss_mask
            rows.append({"input_ids": prompt + sample.token_ids, "assistant_masks": mask})
    if not rows:
        raise RLHubError(
            f"sft.source=rejection kept nothing: none of {len(samples)} samples scored {first}=1.0; "
            "set sft.source=gold, or raise sft.samples or sft.examples"
        )
    return rows


def cold_start(run: Run) -> None:
    """Run the recipe's ``sft`` stage on ``run.policy`` with TRL's ``SFTTrainer``; log ``sft/*``, save the
    adapter, and hand the weights to the RL stage (its sampler and checkpoint step 0)."""
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    recipe, section = run.recipe, run.recipe.sft
    if run.world > 1:
        raise ConfigError(
            "the sft stage runs in one process only; train this recipe without accelerate launch, or remove sft"
        )
    examples = run.env.examples("train", limit=section.examples, seed=recipe.training.seed)
    rows = gold_rows(run, examples) if section.source == "gold" else rejection_rows(run, examples)
    out = run.run_dir / "checkpoints" / "sft"

    class LogToRun(TrainerCallback):
        """SFTTrainer's logs go to the run's metrics (step 0 of the RL steps; ``sft/step`` counts the stage's)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            numbers = {f"sft/{k}": v for k, v in (logs or {}).items() if isinstance(v, (int, float))}
            run.tracker.log({"sft/step": state.global_step, **numbers}, step=0)

    # transformers 5.2x renamed gradient checkpointing (the old name warns); SFTConfig turns it on by default.
    checkpointing = (
        "activation_checkpointing" if hasattr(SFTConfig, "activation_checkpointing") else "gradient_checkpointing"
    )
    config = SFTConfig(
        output_dir=str(out),
        num_train_epochs=section.epochs,
        max_steps=section.max_steps or -1,
        learning_rate=section.learning_rate,
        per_device_train_batch_size=section.batch_size,
        lr_scheduler_type="constant",
        max_grad_norm=recipe.training.max_grad_norm,
        seed=recipe.training.seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        max_length=None,  # whole rows: a completion cut short would teach the model not to stop
        **{checkpointing: False},  # the policy is built with it when model.gradient_checkpointing asks
        bf16=False,  # the policy keeps model.dtype; LoRA weights stay float32
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,  # the run's metrics and the line logged below report the stage
    )
    was_training = run.policy.training
    trainer = SFTTrainer(
        model=run.policy,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=run.tokenizer,
        callbacks=[LogToRun()],
    )
    trainer.remove_callback(PrinterCallback)
    result = trainer.train()
    run.policy.train(was_training)
    log.info(
        "sft: %d steps on %d completions (%s), mean loss %.3f",
        result.global_step,
        len(rows),
        section.source,
        result.training_loss,
    )
    run.policy.save_pretrained(out / ("adapter" if hasattr(run.policy, "peft_config") else "model"))
    run.engine.sync_weights(run.policy)  # vLLM samples the first RL step from the fine-tuned weights
    run.save(0)
