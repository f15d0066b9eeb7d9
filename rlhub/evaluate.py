"""``rlhub eval``: score a model (or a trained LoRA adapter) on an environment's test split.

Reports pass@1 and pass@k (the unbiased estimator of Chen et al. 2021), the mean of each reward
function, the format-error rate and the mean completion length. A sample "passes" when the env's
first reward function (its correctness reward, by convention) scores 1.0.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlhub.errors import RLHubError


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples, drawn from n of which c pass, passes.

    >>> pass_at_k(n=4, c=1, k=1), pass_at_k(n=4, c=1, k=4), pass_at_k(n=4, c=0, k=2)
    (0.25, 1.0, 0.0)
    """
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass
class EvalResult:
    env_id: str
    model: str
    examples: int
    samples_per_example: int
    pass_at_1: float
    pass_at_k: dict[str, float]
    rewards: dict[str, float]
    mean_reward: float
    format_error_rate: float | None
    mean_length: float
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self, with_records: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_records:
            d.pop("records")
        return d


def load_for_eval(model: str, dtype: str = "float32"):
    """A model name/path, or a PEFT adapter folder (its base model is read from adapter_config.json)."""
    from rlhub.models import load_model_and_tokenizer

    path = Path(model)
    config = path / "adapter_config.json"
    if config.is_file():
        from peft import PeftModel

        base_name = json.loads(config.read_text()).get("base_model_name_or_path")
        if not base_name:
            raise RLHubError(f"{config} names no base_model_name_or_path; cannot rebuild the model it adapts")
        base, tokenizer = load_model_and_tokenizer(base_name, dtype=dtype, device="cpu")
        return PeftModel.from_pretrained(base, path), tokenizer
    return load_model_and_tokenizer(model, dtype=dtype, device="cpu")


def evaluate_env(
    env_id: str,
    model: str,
    *,
    n: int = 64,
    k: int = 1,
    temperature: float | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 16,
    seed: int = 0,
    env_config: dict[str, Any] | None = None,
    progress: bool = True,
) -> EvalResult:
    """Evaluate ``model`` on ``n`` test examples of ``env_id`` with ``k`` samples each.

    ``temperature`` defaults to 0 (greedy) for k=1 and 1.0 for k>1.
    """
    import torch
    from tqdm.auto import tqdm

    import rlhub
    from rlhub.rollout import HFRolloutEngine, encode_prompt, rollout, stop_token_ids

    env = rlhub.make(env_id, **(env_config or {}))
    examples = env.examples("test", limit=n, seed=seed)
    if not examples:
        raise RLHubError(f"{env_id} has no test examples")
    if temperature is None:
        temperature = 0.0 if k == 1 else 1.0
    if k > 1 and temperature == 0:
        raise RLHubError("k > 1 samples per example need temperature > 0 (greedy samples are all the same)")
    policy, tokenizer = load_for_eval(model)
    engine = HFRolloutEngine(policy, tokenizer, stop_token_ids(tokenizer, policy), torch.Generator().manual_seed(seed))
    first = env.rubric.names[0]
    records: list[dict[str, Any]] = []
    bar = tqdm(total=len(examples), desc=f"eval {env_id}", disable=not progress)
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        ids = [encode_prompt(tokenizer, env, ex) for ex in chunk]
        completions = rollout(engine, env, chunk, ids, k, max_new_tokens, temperature, 1.0)
        rows = [chunk[c.prompt_index] for c in completions]
        scores = env.score_batch([c.output for c in completions], rows)
        for c, ex, s in zip(completions, rows, scores):
            records.append(
                {
                    "id": ex.id,
                    "completion": c.text,
                    "reward": s.reward,
                    "rewards": s.rewards,
                    "length": sum(c.loss_mask),
                    "passed": (s.rewards.get(first) or 0.0) >= 1.0,
                }
            )
        bar.update(len(chunk))
    bar.close()

    by_example: dict[str, list[bool]] = {}
    for r in records:
        by_example.setdefault(r["id"], []).append(r["passed"])
    ks = sorted({1, k})
    pass_k = {
        f"pass@{kk}": sum(pass_at_k(len(v), sum(v), kk) for v in by_example.values()) / len(by_example) for kk in ks
    }
    names = env.rubric.names
    means = {name: _mean([r["rewards"][name] for r in records]) for name in names}
    format_errors = (
        _mean([1.0 if (r["rewards"]["format"] or 0) == 0 else 0.0 for r in records]) if "format" in names else None
    )
    return EvalResult(
        env_id=env_id,
        model=model,
        examples=len(examples),
        samples_per_example=k,
        pass_at_1=pass_k["pass@1"],
        pass_at_k=pass_k,
        rewards=means,
        mean_reward=_mean([r["reward"] for r in records]),
        format_error_rate=format_errors,
        mean_length=_mean([r["length"] for r in records]),
        records=records,
    )


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(sum(values) / len(values)) if values else 0.0
