"""The GRPO trainer run through its real entry points on a tiny randomly initialized model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

# Every step checkpointed and its completions logged, for the tests to read (tiny runs: tests/conftest.py).
LOGGED = {"training.save_every": 1, "logging.completions_every": 1}


def as_set_arguments(settings: dict) -> list[str]:
    """``--set key=value`` arguments of the CLI for dotted recipe overrides."""
    return [a for k, v in settings.items() for a in ("--set", f"{k}={json.dumps(v)}")]


def test_grpo_two_steps_updates_the_adapter_and_logs(tiny_model_dir, tiny_run, spread_reward, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    overrides = {"rewards": {spread_reward: 1.0}, "logging.wandb": True, "eval.every": 2, "eval.n": 3}
    result = tiny_run(out, recipe_name="tiny", **LOGGED, **overrides)

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/reward" in r]
    assert [r["step"] for r in evals] == [0, 2] and "eval/correct" in evals[0]
    rows = [r for r in rows if "reward" in r]
    assert [r["step"] for r in rows] == [1, 2]
    for key in (
        "reward",
        "rewards/correct/mean",
        f"rewards/{spread_reward}/mean",
        "losses/clip_fraction",
        "losses/entropy",
        "charts/tokens_per_s",
        "charts/learning_rate",
        "completions/mean_length",
    ):
        assert key in rows[0], key
    assert rows[0][f"rewards/{spread_reward}/std"] > 0  # the spread reward gave GRPO something to learn
    table = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert len(table) == 2 * 2 * 4 and {"prompt", "completion", "advantage", "reward"} <= set(table[0])

    adapter = Path(result.summary["checkpoint"]) / "adapter"
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trained = PeftModel.from_pretrained(base, adapter)
    lora_b = [p for n, p in trained.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b), "LoRA B starts at zero; training must move it"
    assert (out / "checkpoints" / "step-000002" / "optimizer.pt").is_file()
    assert result.summary["steps"] == 2 and len(result.rewards) == 2

    # W&B ran offline on its own (no API key) and says how to upload later.
    assert result.summary["wandb_sync"].startswith("wandb sync ")
    assert list((out / "wandb").glob("offline-run-*"))

    # The reward-curve PNG through the real CLI.
    png = tmp_path / "curves.png"
    proc = subprocess.run([shutil.which("rlhub"), "plot", str(out), "-o", str(png)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_kl_to_reference_is_logged_and_nonnegative(tiny_run, spread_reward, tmp_path):
    out = tmp_path / "run"
    tiny_run(out, recipe_name="tiny", rewards={spread_reward: 1.0}, **LOGGED, **{"algorithm.beta": 0.1})
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["losses/kl"] == pytest.approx(0.0, abs=1e-6)  # step 1: policy == reference
    assert rows[1]["losses/kl"] > 0  # after one update the adapter has moved away


@pytest.mark.parametrize("algorithm", ["ppo", "rloo", "reinforce_pp", "rlhub.trainers.grpo:GRPO"])
def test_each_algorithm_plugs_into_the_same_loop(algorithm, tiny_run, spread_reward, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "run"
    overrides = {"rewards": {spread_reward: 1.0}, "algorithm.name": algorithm, "eval.before_after": True, "eval.n": 2}
    result = tiny_run(out, steps=1, **LOGGED, **overrides)
    adapter = load_file(str(Path(result.summary["checkpoint"]) / "adapter" / "adapter_model.safetensors"))
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)
    # Evaluated before and after training (eval.every is 0): the summary carries both and the gain.
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval/pass@1" in r] == [0, 1]
    gain = result.summary["eval"]["eval/reward"]
    assert gain["gain"] == pytest.approx(gain["after"] - gain["before"]) and 0 <= gain["before"] <= 1


@pytest.mark.parametrize("kind", ["shared", "separate"])
def test_ppo_warms_up_its_critic_then_resumes_policy_and_critic_exactly(kind, tiny_run, spread_reward, tmp_path):
    from safetensors.torch import load_file

    def run(out, steps, resume=False):
        extra = {"rewards": {spread_reward: 1.0}, "algorithm.name": "ppo", "algorithm.beta": 0.05}
        extra |= {"critic.kind": kind, "critic.warmup_steps": 1}
        return tiny_run(out, steps, resume=resume, **LOGGED, **extra)

    straight = tmp_path / "straight"
    run(straight, 3)
    rows = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["charts/policy_frozen"] for r in rows] == [1.0, 0.0, 0.0]
    assert rows[0]["values/mean"] == 0.0 and rows[1]["values/mean"] != 0.0  # the zero-initialized head learned
    assert all(r["losses/value_loss"] > 0 and "values/explained_variance" in r for r in rows)

    def adapter(run, step):
        return load_file(str(run / f"checkpoints/step-{step:06d}/adapter/adapter_model.safetensors"))

    assert any(v.abs().sum() > 0 for k, v in adapter(straight, 3).items() if "lora_B" in k)
    critic = torch.load(straight / "checkpoints/step-000003/critic.pt", weights_only=True)
    assert critic and any(v.abs().sum() > 0 for v in critic.values())
    if kind == "separate":
        assert any("lora_B" in k for k in critic)  # the separate critic has its own adapter
    assert (straight / "checkpoints/step-000003/critic_optimizer.pt").is_file()

    # Stop after 2 steps, resume to 3: policy and critic end bit-identical to the straight run.
    split = tmp_path / "split"
    run(split, 2)
    # Warm-up trains the critic only: after step 1 the policy's LoRA B matrices are still all zero.
    assert all(v.abs().sum() == 0 for k, v in adapter(split, 1).items() if "lora_B" in k)
    run(split, 3, resume=True)
    assert (split / "final-params-rank0.sha256").read_text() == (straight / "final-params-rank0.sha256").read_text()


def test_unknown_algorithm_is_a_clear_error(tiny_run, tmp_path):
    from rlhub.errors import ConfigError

    with pytest.raises(ConfigError, match=r"algorithm\.name 'ppo2' is neither one of"):
        tiny_run(tmp_path / "run", **LOGGED, **{"algorithm.name": "ppo2"})


def _cli(args, env=None):
    return subprocess.Popen(
        [shutil.which("rlhub"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_kill_9_then_resume_matches_an_uninterrupted_run(tiny_settings, spread_reward, tmp_path):
    steps = 5
    ref_dir, crash_dir = tmp_path / "straight", tmp_path / "crashed"
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("logging: {wandb: false}\n")
    common = ["--set", f"rewards={json.dumps({spread_reward: 1.0})}", "--no-plot"]

    def args(out):
        return [
            "train",
            str(recipe),
            *as_set_arguments(tiny_settings(out, steps, **LOGGED)),
            *common,
        ]

    straight = _cli(args(ref_dir))
    assert straight.wait(timeout=300) == 0, straight.stdout.read()

    victim = _cli(args(crash_dir))
    deadline = time.time() + 300
    while not (crash_dir / "checkpoints" / "step-000002" / "state.json").is_file():
        assert victim.poll() is None and time.time() < deadline, "run ended before its second checkpoint"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    saved = json.loads(
        (crash_dir / "checkpoints" / (crash_dir / "checkpoints" / "latest").read_text() / "state.json").read_text()
    )
    assert 2 <= saved["step"] < steps
    # The hack watch's windows are in the checkpoint: the resumed run's watch sees the steps before the crash.
    assert len(saved["hack_watch"]["history"]) == saved["step"]

    resumed = _cli([*args(crash_dir), "--resume"])
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()

    def history(run):  # the last value logged for each step (a crashed step is logged again on resume)
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: (r["reward"], r["completions/mean_length"]) for r in rows}

    # Same prompts and same sampling RNG after the resume: identical rewards at every step.
    assert history(crash_dir) == history(ref_dir) and sorted(history(ref_dir)) == list(range(1, steps + 1))
    # Same weights, bit for bit: the training forward's summation order is fixed (see trainers/forward.py).
    final = lambda d: (d / "final-params-rank0.sha256").read_text()
    assert final(crash_dir) == final(ref_dir)
    from safetensors.torch import load_file

    adapter = load_file(str(crash_dir / f"checkpoints/step-{steps:06d}/adapter/adapter_model.safetensors"))
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)


# The spread reward, which also notes which process scored which prompt (RANK is set by the launcher).
RANK_SPY_REWARD = """
from spread_reward import vowel_share


def vowel_share_noting_the_rank(completions, steps, **kwargs):
    import json, os

    with open(os.path.join(os.environ["PROMPT_LOG"], f"rank{os.environ.get('RANK', '0')}.jsonl"), "a") as log:
        for key in steps:  # arithmetic's worked steps: one value per prompt
            log.write(json.dumps(key) + "\\n")
    return vowel_share(completions)
"""


@pytest.mark.parametrize(
    "algorithm, launcher",
    [("grpo", "accelerate launch"), ("ppo", "rlhub train --nproc")],
)
def test_two_processes_end_with_identical_adapters(algorithm, launcher, tiny_settings, spread_reward, tmp_path):
    out, prompt_log = tmp_path / "ddp", tmp_path / "prompts"
    prompt_log.mkdir()
    (tmp_path / "rank_spy_reward.py").write_text(RANK_SPY_REWARD)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("logging: {wandb: false}\n")
    # monitor.rescore=0: the hack watch's re-scoring would call the spy reward again.
    settings = tiny_settings(out, 2, **LOGGED, **{"algorithm.name": algorithm, "monitor.rescore": 0})
    overrides = as_set_arguments(settings)
    reward = json.dumps({"rank_spy_reward:vowel_share_noting_the_rank": 1.0})
    train_args = ["train", str(recipe), *overrides, "--set", f"rewards={reward}", "--no-plot"]
    if launcher == "accelerate launch":  # the shipped config, as the README launches it, on 2 processes
        config = Path(__file__).resolve().parents[1] / "recipes" / "accelerate" / "ddp.yaml"
        # `accelerate launch`, run by this interpreter so that the processes it starts run this checkout's rlhub.
        # No --cpu: with it accelerate starts one process whatever --num_processes says; without a GPU the
        # trainer's Accelerator runs on the CPU by itself.
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
        launch += ["--num_processes", "2"]
        cmd = [*launch, "-m", "rlhub", *train_args]
    else:
        cmd = [shutil.which("rlhub"), *train_args[:2], "--nproc", "2", *train_args[2:]]
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, "PROMPT_LOG": str(prompt_log)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rank0, rank1 = (
        (out / "final-params-rank0.sha256").read_text(),
        (out / "final-params-rank1.sha256").read_text(),
    )
    assert rank0 == rank1
    # Equal weights prove gradient sync only if the ranks' updates were real: they sampled different prompts.
    seen = [[json.loads(line) for line in (prompt_log / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    assert [len(s) for s in seen] == [2 * 2 * 4] * 2  # 2 steps x 2 prompts x 4 completions per process
    assert len(set(seen[0])) == len(set(seen[1])) == 4 and not set(seen[0]) & set(seen[1])
    from safetensors.torch import load_file

    adapter = load_file(str(out / "checkpoints" / "step-000002" / "adapter" / "adapter_model.safetensors"))
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    # A random model writes no correct answer in 8 tokens.
    assert first["charts/samples_per_s"] > 0 and first["rewards/correct/mean"] == 0.0
    initial = torch.load(out / "checkpoints" / "step-000001" / "rng-rank1.pt", weights_only=False)
    assert "sampler" in initial  # each rank saved its own RNG state
